"""The RNN-NADE's held-out likelihood: log p(v(t) | v(<t)) per frame,
exactly (no AIS), against the same Bernoulli baseline as the RNN-RBM's.
Reads files, writes none.
"""

from preprocess import records
from trainer.models import base
from trainer.models.recurrent import likelihood as sequence_likelihood


def evaluate(loaded: base.LoadedModel, spec: records.DatasetSpec,
             model_dir: str, data_dir: str, split: str, ais_config,
             max_frames: int = 0) -> dict:
  """Every sequence of `split` scored exactly (`exact`: true, no standard
  error); ais_config is not used. A split of 20,000 frames takes seconds,
  so the --max_frames cap is refused."""
  del ais_config
  base.refuse_frame_cap(max_frames, "RNN-NADE")

  def score(batch, lengths, rows):
    del rows  # no noise
    return loaded.model.nll_rows(batch, lengths), 0.0

  result, _ = sequence_likelihood.evaluate_sequences(
      loaded, spec, model_dir, data_dir, split, score)
  result["exact"] = True
  return result
