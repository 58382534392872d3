"""Independent Bernoulli units per frame: the baseline every model must beat.

Each unit u of a frame (a piano-roll row: play and articulate columns) is on
with probability p_u, whatever the other units and frames do. Fitted by
counting: p_u = (count_u + 1) / (frames + 2) over the training frames (the
smoothing of trainer/models/ais.py `smoothed_means`, so no unit has
probability 0 or 1), its log-likelihood is exact. This file must not do I/O,
read flags or run a training loop.
"""

import numpy as np
import tensorflow as tf

from trainer import random_streams
from trainer.models import ais


class BernoulliFrames(tf.Module):
  """p(v) = prod_u p_u^v_u (1 - p_u)^(1 - v_u) for each frame v [V]."""

  def __init__(self, n_visible: int, name: str | None = None):
    super().__init__(name=name)
    self.n_visible = int(n_visible)
    self.probs = tf.Variable(tf.fill([self.n_visible], 0.5), name="probs")

  def fit(self, unit_sums, num_frames: int) -> None:
    """Sets p from each unit's count of 1s over `num_frames` frames."""
    means = np.asarray(unit_sums, np.float64) / max(int(num_frames), 1)
    self.probs.assign(ais.smoothed_means(means, int(num_frames)).astype(
        np.float32))

  def log_prob_sums(self, frames: np.ndarray, lengths: np.ndarray) -> float:
    """Sum of log p(v) over the real frames of sequences [B, T, V]."""
    p = self.probs.numpy().astype(np.float64)
    v = frames.astype(np.float64)
    mask = np.arange(v.shape[1])[None, :] < lengths[:, None]
    return float(((v @ np.log(p) + (1 - v) @ np.log1p(-p)) * mask).sum())

  def tempered(self, temperature: float) -> tf.Tensor:
    """sigmoid(logit(p) / T): below 1 sharpens each unit towards 0 or 1."""
    if temperature == 1.0:
      return tf.identity(self.probs)
    logits = tf.math.log(self.probs) - tf.math.log1p(-self.probs)
    return tf.sigmoid(logits / temperature)


def sample_frames(probs, num_samples: int, num_frames: int, seed,
                  row_start: int, stream: int) -> tf.Tensor:
  """[num_samples, num_frames, V] uint8 frames of units on with `probs` [V];
  row r's noise is keyed by (seed, stream, row_start + r), so a sample does
  not depend on the batch it is drawn in."""
  width = int(probs.shape[0])
  noise = random_streams.keyed_uniform(seed, stream, row_start, num_samples,
                                       num_frames * width)
  on = noise < tf.tile(probs, [num_frames])[None, :]
  return tf.reshape(tf.cast(on, tf.uint8), [num_samples, num_frames, width])
