"""Annealed Importance Sampling of an RBM's log partition function.

Salakhutdinov & Murray, "On the quantitative analysis of deep belief networks"
(ICML 2008). The base model A has visible biases b_A from the data's (smoothed)
unit means and no interactions: its hidden units are uniform, so
log Z_A = sum_i softplus(b_A,i) + H log 2 exactly.
Intermediate distributions, hidden units summed out:

    log p*_beta(v) = (1 - beta) v.b_A + beta v.b_B + sum_j softplus(beta (c_j + v W_j))

Each chain starts from an exact sample of A and moves through beta_1..beta_K
with one Gibbs transition (h then v) that leaves p_beta invariant; its log
importance weight sums log p*_k(v_{k-1}) - log p*_{k-1}(v_{k-1}). Then
log Z_B ~= log Z_A + log mean exp(log w). Noise is keyed (seed, beta index,
chain), so an estimate is reproducible.
"""

import dataclasses

import numpy as np
import tensorflow as tf

from trainer import model as model_lib


@dataclasses.dataclass(frozen=True)
class AISConfig:
  # Independent chains (importance samples).
  num_chains: int = 100
  # Intermediate distributions (inverse temperatures) from 0 to 1.
  num_betas: int = 10000
  # Seeds the chains.
  seed: int = 0

  def __post_init__(self):
    if self.num_chains < 2 or self.num_betas < 2:
      raise ValueError(f"AIS needs >= 2 chains and >= 2 betas; got "
                       f"--ais_chains={self.num_chains}, "
                       f"--ais_betas={self.num_betas}.")


def beta_schedule(num_betas: int) -> np.ndarray:
  """S&M's schedule shape, scaled: 500 steps to 0.5, 4,000 to 0.9, 10,000 to 1.

  Denser where the distributions change fastest (near beta = 1).
  """
  if num_betas < 4:
    return np.linspace(0.0, 1.0, num_betas)
  weights = np.array([500, 4000, 10000], np.float64)
  counts = np.maximum(1, np.round(weights / weights.sum() * (num_betas - 1)))
  counts[-1] = max(1, num_betas - 1 - counts[:-1].sum())
  pieces = [np.zeros(1)]
  for (lo, hi), n in zip(((0.0, 0.5), (0.5, 0.9), (0.9, 1.0)), counts):
    pieces.append(np.linspace(lo, hi, int(n) + 1)[1:])
  return np.concatenate(pieces)


def base_rate_biases(unit_means, num_windows: int) -> np.ndarray:
  """b_A = log(p / (1 - p)) with p smoothed by (count + 1) / (n + 2)."""
  p = smoothed_means(unit_means, num_windows)
  return np.log(p / (1 - p))


def smoothed_means(unit_means, num_windows: int) -> np.ndarray:
  means = np.asarray(unit_means, np.float64)
  return (means * num_windows + 1.0) / (num_windows + 2.0)


@dataclasses.dataclass(frozen=True)
class AISResult:
  log_z: float
  # Standard error of log_z (delta method on the importance weights).
  log_z_stderr: float
  log_z_base: float
  # Effective sample size of the importance weights (chains' worth).
  effective_sample_size: float


def estimate_log_partition(rbm: model_lib.RBM, base_biases,
                           config: AISConfig = AISConfig()) -> AISResult:
  """AIS estimate of log Z for `rbm`, from the base-rate model `base_biases`."""
  b_a = tf.constant(base_biases, tf.float32)
  betas = tf.constant(beta_schedule(config.num_betas), tf.float32)
  log_w = _run_chains(rbm.weights, rbm.visible_bias, rbm.hidden_bias, b_a,
                      betas, tf.constant(config.num_chains),
                      tf.constant(config.seed, tf.int64)).numpy().astype(
                          np.float64)
  # At beta = 0 each hidden unit is uniform and contributes log 2.
  log_z_base = float(np.sum(np.logaddexp(0.0, base_biases)) +
                     rbm.n_hidden * np.log(2.0))
  shift = log_w.max()
  w = np.exp(log_w - shift)
  mean = w.mean()
  stderr = float(w.std(ddof=1) / np.sqrt(len(w)) / mean)
  ess = float(w.sum()**2 / (w**2).sum())
  return AISResult(log_z=float(log_z_base + shift + np.log(mean)),
                   log_z_stderr=stderr, log_z_base=log_z_base,
                   effective_sample_size=ess)


@tf.function
def _run_chains(weights, visible_bias, hidden_bias, b_a, betas, num_chains,
                seed):
  n_visible = weights.shape[0]

  def log_p_star(v, wx, beta):
    return ((1.0 - beta) * tf.linalg.matvec(v, b_a) +
            beta * tf.linalg.matvec(v, visible_bias) +
            tf.reduce_sum(tf.math.softplus(beta * wx), axis=-1))

  v = model_lib.bernoulli(
      tf.broadcast_to(tf.sigmoid(b_a), [num_chains, n_visible]), seed,
      tf.constant(2**62, tf.int64), 0)
  log_w = tf.zeros([num_chains])
  num_betas = tf.shape(betas)[0]
  for k in tf.range(1, num_betas):
    wx = tf.matmul(v, weights) + hidden_bias
    log_w += log_p_star(v, wx, betas[k]) - log_p_star(v, wx, betas[k - 1])
    # One Gibbs transition that leaves p_{beta_k} invariant.
    beta = betas[k]
    stream = tf.cast(k, tf.int64) * 2
    h = model_lib.bernoulli(tf.sigmoid(beta * wx), seed, stream, 0)
    logits = (1.0 - beta) * b_a + beta * (
        tf.matmul(h, weights, transpose_b=True) + visible_bias)
    v = model_lib.bernoulli(tf.sigmoid(logits), seed, stream + 1, 0)
  return log_w
