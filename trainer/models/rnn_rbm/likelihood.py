"""The RNN-RBM's held-out likelihood: log p(v(t) | v(<t)) per frame, each
frame's log Z(t) by AIS, scored in the loop the temporal models share
(trainer/models/recurrent/likelihood.py `evaluate_sequences`). Reads files,
writes none.
"""

import numpy as np

from preprocess import records
from trainer.models import ais
from trainer.models import base
from trainer.models.recurrent import likelihood as sequence_likelihood


def evaluate(loaded: base.LoadedModel, spec: records.DatasetSpec,
             model_dir: str, data_dir: str, split: str, ais_config,
             max_frames: int = 0) -> dict:
  """log p(v(t) | v(<t)) per frame of `split`, each frame's log Z(t) by AIS.

  The frames' AIS runs are independent, so their variances add:
  log_z_stderr is the standard error of loglik_per_frame. See
  `evaluate_sequences` for the rest.
  """
  means, trained_on = sequence_likelihood.frame_statistics(loaded)
  base_biases = ais.base_rate_biases(means, trained_on)

  def score(batch, lengths, rows):
    out = loaded.model.nll_ais(batch, lengths, ais_config, base_biases,
                               row_start=rows)
    return out["nll_rows"], out["nll_variance"]

  result, variance = sequence_likelihood.evaluate_sequences(
      loaded, spec, model_dir, data_dir, split, score, max_frames)
  result.update({
      "log_z_stderr": float(np.sqrt(variance) / result["frames"]),
      "ais_chains": ais_config.num_chains, "ais_betas": ais_config.num_betas,
      "ais_seed": ais_config.seed})
  return result
