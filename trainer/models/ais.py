"""Annealed Importance Sampling of an RBM's log partition function.

Salakhutdinov & Murray, "On the quantitative analysis of deep belief networks"
(ICML 2008). The base model A has visible biases b_A from the training data's
(smoothed) unit means and no interactions: its hidden units are uniform, so
log Z_A = sum_i softplus(b_A,i) + H log 2 exactly. The intermediate
distributions follow the geometric path p_k ~ p_A^(1 - beta_k) p_B^beta_k, with
the hidden units summed out:

    log p*_beta(v) = (1 - beta) v.b_A + beta v.b_B + sum_j softplus(beta x_j),
    x = c + v W.

Each chain starts from an exact sample of A and moves through beta_1..beta_K
with one Gibbs transition (h then v) that leaves p_beta_k invariant; its log
importance weight sums log p*_k(v_{k-1}) - log p*_{k-1}(v_{k-1}). Then
log Z_B ~= log Z_A + log mean exp(log w).

Precision: the weight increments are computed as differences directly
((beta_k - beta_{k-1}) v.(b_B - b_A) plus a softplus difference) and summed in
float64, so 10,000 small float32 increments do not accumulate rounding error;
the sampling itself is float32.

Error bar: `log_z_stderr` is the delta-method standard error of log Z_hat,
std(w) / (sqrt(M) mean(w)) over the M chains. S&M report log(mean(w) +- 3
stderr(mean w)) instead; to first order that is log_z +- 3 log_z_stderr. Both
measure the spread between chains only: if the chains never reach the modes of
B (too few betas), every chain is wrong in the same way and no error bar shows
it. The effective sample size (sum w)^2 / sum w^2 falling well below the
number of chains is the warning sign. Z_hat is unbiased, so log Z_hat is biased
low (Jensen): on average AIS underestimates log Z, i.e. overestimates the
likelihood, slightly.

Noise is keyed (seed, beta index, chain), so an estimate is reproducible; the
streams are random_streams' (AIS rows). This module must not do I/O (see
trainer/models/*/likelihood.py).
"""

import dataclasses

import numpy as np
import tensorflow as tf

from trainer import config as config_lib
from trainer import random_streams
from trainer.models.rbm import maths as model_lib


# The settings (chains, betas, seed) are declared with the other jobs' in
# trainer/config.py; this name stays for callers.
AISConfig = config_lib.AISConfig


@dataclasses.dataclass(frozen=True)
class AISResult:
  # Estimate of log Z of the target RBM.
  log_z: float
  # Delta-method standard error of log_z (see the module docstring).
  log_z_stderr: float
  # Exact log Z of the base-rate model the chains start from.
  log_z_base: float
  # (sum w)^2 / sum w^2: how many chains' worth the weighted estimate is.
  effective_sample_size: float


def beta_schedule(num_betas: int) -> np.ndarray:
  """Inverse temperatures 0 = beta_0 < ... < beta_{K-1} = 1 (float64).

  S&M's schedule shape, scaled to `num_betas`: 500 steps to 0.5, 4,000 to 0.9,
  10,000 to 1, i.e. denser where the distributions change fastest (near 1).
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


def smoothed_means(unit_means, num_windows: int) -> np.ndarray:
  """(count + 1) / (n + 2) per unit: no unit gets probability 0 or 1.

  Args:
    unit_means: each visible unit's mean over the `num_windows` training
      windows (dataset.json's unit_means).
    num_windows: how many windows the means were taken over.
  """
  means = np.asarray(unit_means, np.float64)
  return (means * num_windows + 1.0) / (num_windows + 2.0)


def base_rate_biases(unit_means, num_windows: int) -> np.ndarray:
  """b_A = log(p / (1 - p)) of the smoothed training means (S&M's base rate)."""
  p = smoothed_means(unit_means, num_windows)
  return np.log(p / (1 - p))


def estimate_log_partition(rbm: model_lib.RBM, base_biases,
                           config: AISConfig | None = None) -> AISResult:
  """AIS estimate of log Z for `rbm`, starting from the base-rate model.

  Args:
    rbm: the target model B.
    base_biases: [n_visible] visible biases b_A of the base model, e.g.
      `base_rate_biases(dataset.unit_means, train_windows)`.
    config: chains, betas and seed (None: AISConfig's defaults).

  Returns:
    AISResult.

  Raises:
    ValueError: base_biases does not have one entry per visible unit.
  """
  config = config or AISConfig()
  base_biases = np.asarray(base_biases, np.float64)
  if base_biases.shape != (rbm.n_visible,):
    raise ValueError(f"base_biases has shape {base_biases.shape}; the RBM has "
                     f"n_visible={rbm.n_visible}.")
  log_w = _run_chains(
      rbm.weights, rbm.visible_bias, rbm.hidden_bias,
      tf.constant(base_biases, tf.float32),
      tf.constant(beta_schedule(config.num_betas), tf.float64),
      tf.constant(config.num_chains), tf.constant(config.seed, tf.int64)
  ).numpy()
  # The float32 biases the chains used, so log Z_A matches the sampled A.
  b_a = base_biases.astype(np.float32).astype(np.float64)
  # At beta = 0 each hidden unit is uniform and contributes log 2.
  log_z_base = float(np.sum(np.logaddexp(0.0, b_a)) +
                     rbm.n_hidden * np.log(2.0))
  shift = log_w.max()
  w = np.exp(log_w - shift)
  mean = w.mean()
  return AISResult(
      log_z=float(log_z_base + shift + np.log(mean)),
      log_z_stderr=float(w.std(ddof=1) / np.sqrt(len(w)) / mean),
      log_z_base=log_z_base,
      effective_sample_size=float(w.sum()**2 / (w**2).sum()))


@tf.function
def _run_chains(weights, visible_bias, hidden_bias, b_a, betas, num_chains,
                seed):
  """Log importance weights [num_chains] (float64) of one AIS run."""
  # d log p*_beta(v) / d beta, visible part: v.(b_B - b_A).
  bias_gap = visible_bias - b_a
  v = model_lib.sample_from_biases(
      b_a, seed, tf.constant(random_streams.CHAIN_INIT, tf.int64), 0,
      num_chains)
  log_w = tf.zeros([num_chains], tf.float64)
  for k in tf.range(1, tf.shape(betas)[0]):
    beta_prev, beta64 = betas[k - 1], betas[k]
    beta = tf.cast(beta64, tf.float32)
    x = tf.matmul(v, weights) + hidden_bias  # [chains, H]
    x64 = tf.cast(x, tf.float64)
    log_w += ((beta64 - beta_prev) *
              tf.cast(tf.linalg.matvec(v, bias_gap), tf.float64) +
              tf.reduce_sum(tf.math.softplus(beta64 * x64) -
                            tf.math.softplus(beta_prev * x64), axis=-1))
    # One Gibbs transition h ~ p_k(h | v), v ~ p_k(v | h): leaves p_k invariant.
    stream = random_streams.ais_transition(k)
    h = random_streams.bernoulli(tf.sigmoid(beta * x), seed, stream, 0)
    # beta (h W^T + b_B) + (1 - beta) b_A, with beta folded into the small h.
    logits = (tf.matmul(beta * h, weights, transpose_b=True) +
              (b_a + beta * bias_gap))
    v = random_streams.bernoulli(tf.sigmoid(logits), seed, stream + 1, 0)
  return log_w
