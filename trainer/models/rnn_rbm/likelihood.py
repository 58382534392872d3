"""The RNN-RBM's held-out likelihood: log p(v(t) | v(<t)) per frame, each
frame's log Z(t) by AIS, against independent Bernoulli units with the
(smoothed) means of the training frames. Reads files, writes none.
"""

import numpy as np

from preprocess import records
from trainer import data
from trainer.models import ais
from trainer.models import base

# Sequences per AIS call (memory: sequences x frames x chains x V).
_SEQUENCE_BATCH = 8


def _batches_by_length(data_dir: str, split: str, spec):
  """(frames [B, T, V], lengths [B], rows) of `split`'s sequences, sorted by
  length so a batch pads little (AIS pays for every padded frame: in data
  order, 8 chorales were 44% padding). rows: each sequence's index in data
  order, which keys its noise (an int when consecutive: one Philox call), so
  every frame's estimate is the one of the data-order batches."""
  pieces = [(int(n[0]), index, seq[0, :int(n[0])].numpy())
            for index, (seq, n) in enumerate(
                data.make_sequence_dataset(data_dir, split, 1, spec))]
  pieces.sort(key=lambda piece: piece[:2])
  for first in range(0, len(pieces), _SEQUENCE_BATCH):
    group = pieces[first:first + _SEQUENCE_BATCH]
    longest = max(n for n, _, _ in group)
    batch = np.zeros([len(group), longest, group[0][2].shape[-1]], np.float32)
    for r, (n, _, seq) in enumerate(group):
      batch[r, :n] = seq
    rows = [index for _, index, _ in group]
    consecutive = rows == list(range(rows[0], rows[0] + len(rows)))
    yield (batch, np.array([n for n, _, _ in group], np.int32),
           rows[0] if consecutive else np.array(rows, np.int64))


def evaluate(loaded: base.LoadedModel, spec: records.DatasetSpec,
             model_dir: str, data_dir: str, split: str, ais_config) -> dict:
  """log p(v(t) | v(<t)) per frame of `split`, each frame's log Z(t) by AIS.

  Sequences are whole pieces or fixed windows, each scored from the RNN's
  initial state. The frames' AIS runs are independent, so their variances
  add: log_z_stderr is the standard error of loglik_per_frame. The baseline
  is independent Bernoulli units with the (smoothed) means of the training
  frames, stored in model.json.

  Returns:
    The keys of the window RBM's evaluation (loglik_per_window and its baseline only for
    fixed windows; per sequence for whole pieces: loglik_per_sequence).
  """
  base.check_same_frames(loaded.dataset, spec, model_dir, data_dir)
  model = loaded.model
  stats = loaded.info.get("frame_statistics", {})
  means, trained_on = stats.get("means"), int(stats.get("frames", 0))
  base_biases = ais.base_rate_biases(means, trained_on)
  p = ais.smoothed_means(means, trained_on)
  log_p, log_q = np.log(p), np.log1p(-p)
  nll = variance = frames = baseline = 0.0
  sequences = 0
  for batch, lengths, rows in _batches_by_length(data_dir, split, spec):
    out = model.nll_ais(batch, lengths, ais_config, base_biases,
                        row_start=rows)
    nll += out["nll_sum"]
    variance += out["nll_variance"]
    frames += out["num_frames"]
    baseline += base.masked_baseline_sum(batch, lengths, log_p, log_q)
    sequences += len(batch)
  per_frame = -nll / frames
  result = {
      "model": loaded.name, "model_dir": model_dir, "data_dir": data_dir,
      "split": split, "sequences": sequences, "frames": int(frames),
      "num_timesteps": spec.num_timesteps,
      "log_z_stderr": float(np.sqrt(variance) / frames),
      "ais_chains": ais_config.num_chains, "ais_betas": ais_config.num_betas,
      "ais_seed": ais_config.seed,
      "loglik_per_frame": per_frame,
      "baseline_loglik_per_frame": baseline / frames,
      "baseline_train_frames": trained_on,
      "gain_per_frame": per_frame - baseline / frames,
  }
  if spec.num_timesteps:
    result["windows"] = sequences
    result["loglik_per_window"] = -nll / sequences
    result["baseline_loglik_per_window"] = baseline / sequences
  else:
    result["loglik_per_sequence"] = -nll / sequences
  return result
