"""The held-out likelihood the temporal models share: log p(v(t) | v(<t))
per frame of a split (`evaluate_sequences`, each model scoring its batches:
the RNN-RBM by AIS, the RNN-NADE exactly), against independent Bernoulli
units with the (smoothed) means of the training frames. Reads files, writes
none.
"""

import hashlib

import numpy as np

from preprocess import records
from trainer import data
from trainer.models import ais
from trainer.models import base

# Sequences per call of a model's score (the RNN-RBM's AIS: memory is
# sequences x frames x chains x V).
_SEQUENCE_BATCH = 8


def _subset(pieces: list, max_frames: int) -> list:
  """The pieces scored under --max_frames: in the order of a hash of their
  index (not of their length or of the corpus's file order), until they
  hold max_frames frames (the piece that crosses it included)."""
  order = sorted(pieces, key=lambda piece: hashlib.sha256(
      str(piece[1]).encode()).digest())
  total = np.cumsum([n for n, _, _ in order])
  return order[:int(np.searchsorted(total, max_frames)) + 1]


def _batches_by_length(pieces: list):
  """(frames [B, T, V], lengths [B], rows) of (length, index, frames)
  pieces, sorted by length so a batch pads little (AIS pays for every padded
  frame: in data order, 8 chorales were 44% padding). rows: each sequence's
  index in data order, which keys its noise (an int when consecutive: one
  Philox call), so every frame's estimate is the one of the data-order
  batches, whatever subset is scored."""
  pieces = sorted(pieces, key=lambda piece: piece[:2])
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


def _piece_stderr(nll_rows, frames, population: int) -> float:
  """Standard error of the NLL per frame from scoring a random subset of
  the split's pieces (a ratio estimator, with the finite-population
  correction: 0 when every piece is scored)."""
  nll_rows, frames = np.asarray(nll_rows), np.asarray(frames, np.float64)
  m = len(frames)
  if m < 2:
    return float("nan")
  ratio = nll_rows.sum() / frames.sum()
  spread = np.sum((nll_rows - ratio * frames)**2) / (m - 1)
  return float(np.sqrt(spread / m * (1 - m / population)) / frames.mean())


def frame_statistics(loaded: base.LoadedModel):
  """The training frames' unit means and their count, from model.json."""
  stats = loaded.info.get("frame_statistics", {})
  return stats.get("means"), int(stats.get("frames", 0))


def evaluate_sequences(loaded: base.LoadedModel, spec: records.DatasetSpec,
                       model_dir: str, data_dir: str, split: str, score,
                       max_frames: int = 0) -> tuple[dict, float]:
  """A frame model's log p(v(t) | v(<t)) per frame of `split`.

  Sequences are whole pieces or fixed windows, each scored from the RNN's
  initial state. The baseline is independent Bernoulli units with the
  (smoothed) means of the training frames, stored in model.json.

  With max_frames, a fixed subset of the pieces (`_subset`) is scored;
  piece_stderr is then the figure's error from scoring a subset, and
  sequences_in_split, frames_in_split say of what.

  Args:
    score: (frames [B, T, V], lengths [B], rows) -> (each sequence's NLL
      [B], the variance of their sum); rows keys the noise (see
      `_batches_by_length`).
  Returns:
    (the keys of the window RBM's evaluation: loglik_per_window and its
    baseline only for fixed windows, per sequence for whole pieces:
    loglik_per_sequence; the variance of the NLL sum).
  """
  base.check_same_frames(loaded.dataset, spec, model_dir, data_dir)
  means, trained_on = frame_statistics(loaded)
  p = ais.smoothed_means(means, trained_on)
  log_p, log_q = np.log(p), np.log1p(-p)
  pieces = [(int(n[0]), index, seq[0, :int(n[0])].numpy())
            for index, (seq, n) in enumerate(
                data.make_sequence_dataset(data_dir, split, 1, spec))]
  scored = _subset(pieces, max_frames) if max_frames else pieces
  nll = variance = frames = baseline = 0.0
  sequences = 0
  piece_nll, piece_frames = [], []
  for batch, lengths, rows in _batches_by_length(scored):
    nll_rows, nll_variance = score(batch, lengths, rows)
    piece_nll.extend(nll_rows)
    piece_frames.extend(lengths)
    nll += float(np.sum(nll_rows))
    variance += nll_variance
    frames += float(np.sum(lengths))
    baseline += base.masked_baseline_sum(batch, lengths, log_p, log_q)
    sequences += len(batch)
  per_frame = -nll / frames
  result = {
      "model": loaded.name, "model_dir": model_dir, "data_dir": data_dir,
      "split": split, "sequences": sequences, "frames": int(frames),
      "num_timesteps": spec.num_timesteps,
      "loglik_per_frame": per_frame,
      "baseline_loglik_per_frame": baseline / frames,
      "baseline_train_frames": trained_on,
      "gain_per_frame": per_frame - baseline / frames,
  }
  if max_frames:
    result.update({
        "max_frames": max_frames, "sequences_in_split": len(pieces),
        "frames_in_split": int(sum(n for n, _, _ in pieces)),
        "piece_stderr": _piece_stderr(piece_nll, piece_frames,
                                      len(pieces))})
  if spec.num_timesteps:
    result["windows"] = sequences
    result["loglik_per_window"] = -nll / sequences
    result["baseline_loglik_per_window"] = baseline / sequences
  else:
    result["loglik_per_sequence"] = -nll / sequences
  return result, variance
