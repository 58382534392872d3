"""The Restricted Boltzmann Machine: parameters and their maths.

Binary visible units v (a flattened piano-roll window), binary hidden units h,
energy E(v, h) = -v.b_v - h.b_h - v W h. This file holds sampling, free energy,
the contrastive-divergence statistics and exact quantities for small models.
It must not do I/O, read flags or run a training loop (see
trainer/models/rbm/training.py); training, generation and monitoring call its Gibbs
chain rather than write their own.

Randomness is keyed (trainer/random_streams.py): callers pass the stream a
chain draws from, and the noise of row r depends on (seed, stream, r) only.
"""

import tensorflow as tf

from trainer import random_streams

# Probabilities are clipped away from 0 and 1 before log(p / (1 - p)), so units
# that never fire in the data start at a bias of about -6.9, not -inf.
_MIN_UNIT_MEAN = 1e-3


def sample_from_biases(biases, seed, stream, row_start, num_rows) -> tf.Tensor:
  """[num_rows, V] binary samples of independent units with logits `biases`.

  Chains start here (PCD chains, generation's "random" init, AIS's base
  model): a sample of the visible biases, i.e. near the data's unit means.
  """
  noise = random_streams.keyed_uniform(seed, stream, row_start, num_rows,
                                       biases.shape[-1])
  return tf.cast(noise < tf.sigmoid(biases)[None, :], tf.float32)


def visible_bias_from_means(unit_means) -> tf.Tensor:
  """Hinton's practical guide: b_v = log(p / (1 - p)) from the data's means."""
  p = tf.clip_by_value(
      tf.convert_to_tensor(unit_means, tf.float32), _MIN_UNIT_MEAN,
      1.0 - _MIN_UNIT_MEAN)
  return tf.math.log(p / (1.0 - p))


class RBMMaths:
  """The RBM's maths on `weights` [V, H], `visible_bias` [V], `hidden_bias`
  [H] and `n_visible`, `n_hidden`: the variables of an `RBM`, or the plain
  tensors of an `RBMTensors`."""

  def hidden_probs(self, v):
    return tf.sigmoid(tf.matmul(v, self.weights) + self.hidden_bias)

  def visible_logits(self, h):
    return tf.matmul(h, self.weights, transpose_b=True) + self.visible_bias

  def visible_probs(self, h):
    return tf.sigmoid(self.visible_logits(h))

  def free_energy(self, v):
    """F(v) = -v.b_v - sum_j softplus(b_h + v W)_j, so p(v) = exp(-F(v)) / Z."""
    return -tf.linalg.matvec(v, self.visible_bias) - tf.reduce_sum(
        tf.math.softplus(tf.matmul(v, self.weights) + self.hidden_bias), axis=-1)

  def sample_h_given_v(self, v, seed, stream, row_start=0):
    """Returns (p(h=1|v), a binary sample of it)."""
    probs = self.hidden_probs(v)
    return probs, random_streams.bernoulli(probs, seed, stream, row_start)

  def sample_v_given_h(self, h, seed, stream, row_start=0):
    """Returns (p(v=1|h), a binary sample of it)."""
    probs = self.visible_probs(h)
    return probs, random_streams.bernoulli(probs, seed, stream, row_start)

  def visible_bias_samples(self, seed, stream, row_start, num_rows):
    """[num_rows, V] samples of the visible biases: where chains start."""
    return sample_from_biases(self.visible_bias, seed, stream, row_start,
                              num_rows)

  def gibbs_step(self, v, seed, stream, row_start=0, temperature=None):
    """v -> h -> v' drawing h from `stream` and v' from `stream + 1`.

    temperature: None, or a scalar T: both conditionals use
      sigmoid(pre-activation / T) (T < 1 sharpens them; generation only).
    Returns (p(v'=1|h), v', h).
    """
    stream = tf.cast(stream, tf.int64)
    if temperature is None:
      _, h = self.sample_h_given_v(v, seed, stream, row_start)
      pv, v_new = self.sample_v_given_h(h, seed, stream + 1, row_start)
      return pv, v_new, h
    ph = tf.sigmoid((tf.matmul(v, self.weights) + self.hidden_bias) / temperature)
    h = random_streams.bernoulli(ph, seed, stream, row_start)
    pv = tf.sigmoid(self.visible_logits(h) / temperature)
    return pv, random_streams.bernoulli(pv, seed, stream + 1, row_start), h

  def gibbs_chain(self, v, num_steps, seed, stream_base, row_start=0,
                  clamp_mask=None, clamp_values=None, temperature=None,
                  threshold_mask=None, threshold=0.5):
    """The visible state after `num_steps` (>= 1) Gibbs steps from `v`.

    Step s draws h from stream stream_base + 2s and v from stream_base + 2s + 1
    (random_streams' table says which base each caller uses).

    Args:
      v: [rows, V] starting state.
      num_steps: integer scalar >= 1 (a tensor inside tf.function: one trace).
      seed: integer scalar.
      stream_base: integer scalar.
      row_start: global index of v's first row (keys the noise).
      clamp_mask: None, or bool [V]: units held at `clamp_values` at the start
        and after every visible update (conditioning, e.g. on a primer). None
        skips the clamp pass altogether (it costs ~5% of a step).
      clamp_values: [rows, V], read where clamp_mask is True.
      temperature: None (the model as it is) or a scalar T (see gibbs_step).
      threshold_mask: None, or bool [V]: on the LAST step these units are set
        to p(v=1|h) >= threshold instead of being sampled (e.g. onoff
        articulate units, which sampled re-strike held notes at random).
      threshold: scalar or [V] in [0, 1], used with threshold_mask.
    """
    stream_base = tf.cast(stream_base, tf.int64)
    if clamp_mask is not None:
      v = tf.where(clamp_mask, clamp_values, v)
    last = tf.cast(num_steps, tf.int64) - 1
    for s in tf.range(last):
      _, v, _ = self.gibbs_step(v, seed, stream_base + s * 2, row_start,
                                temperature)
      if clamp_mask is not None:
        v = tf.where(clamp_mask, clamp_values, v)
    # The last step apart: only it may be thresholded.
    pv, v, _ = self.gibbs_step(v, seed, stream_base + last * 2, row_start,
                               temperature)
    if threshold_mask is not None:
      v = tf.where(threshold_mask, tf.cast(pv >= threshold, v.dtype), v)
    if clamp_mask is not None:
      v = tf.where(clamp_mask, clamp_values, v)
    return v

  def cd_statistics(self, v0, k: int, seed, step, row_start, chain=None,
                    compute_dtype="float32"):
    """Sums of the CD-k (or PCD-k) statistics over the rows of `v0`.

    Positive phase from p(h|v0); negative phase from the visible state after k
    Gibbs steps, with hidden probabilities (not samples) in both, as the
    practical guide recommends to reduce variance. The chain's noise is
    16-bit (`random_streams.bernoulli16`). Returned as sums, not means, so
    replicas can all-reduce them and divide once by the global batch.

    Args:
      v0: [rows, n_visible] data.
      k: Gibbs steps (Python int).
      seed: integer scalar.
      step: integer scalar, the training step (keys the noise).
      row_start: global index of v0's first row (keys the noise).
      chain: None for CD; the persistent chain's visible state [rows, V] (PCD).
      compute_dtype: the matmuls' operand type ("float32", "bfloat16",
        "float16"; see `_LowPrecisionMatmuls`). Everything else, the sums
        included, is float32.

    Returns:
      dict: w [V, H], visible_bias [V], hidden_bias [H] (positive - negative,
      summed over rows), squared_error (sum over rows and units of
      (v0 - p(v|h0))^2), chain (the visible state after k steps).
    """
    base = random_streams.training_base(step)
    # float32 keeps its own ops (and so its bytes): see _LowPrecisionMatmuls.
    maths = (self if tf.as_dtype(compute_dtype) == tf.float32 else
             _LowPrecisionMatmuls(self, compute_dtype))
    ph0 = maths.hidden_probs(v0)
    h0 = random_streams.bernoulli16(ph0, seed, base, row_start)
    recon = maths.visible_probs(h0)
    if chain is None:
      v, h = v0, h0  # CD: the chain starts at the data
    else:
      v = chain
      h = random_streams.bernoulli16(maths.hidden_probs(chain), seed, base + 1,
                                     row_start)
    for i in range(k):
      stream = base + 2 + 2 * i
      # CD's first step starts from h0, whose p(v|h0) is the reconstruction:
      # reuse it rather than pay for the V x H matmul twice.
      pv = recon if (chain is None and i == 0) else maths.visible_probs(h)
      v = random_streams.bernoulli16(pv, seed, stream, row_start)
      phk = maths.hidden_probs(v)
      if i + 1 < k:
        h = random_streams.bernoulli16(phk, seed, stream + 1, row_start)
    return {
        "w": maths.weight_statistic(v0, ph0, v, phk),
        "visible_bias": tf.reduce_sum(v0 - v, axis=0),
        "hidden_bias": tf.reduce_sum(ph0 - phk, axis=0),
        "squared_error": tf.reduce_sum(tf.square(v0 - recon)),
        "chain": v,
    }

  def weight_statistic(self, v0, ph0, vk, phk):
    """v0^T p(h|v0) - vk^T p(h|vk), summed over rows: [V, H]."""
    return (tf.matmul(v0, ph0, transpose_a=True) -
            tf.matmul(vk, phk, transpose_a=True))

  def pseudo_log_likelihood(self, v, flip_index):
    """Stochastic pseudo-log-likelihood per row: n_visible * log p(v_i | v_-i).

    Args:
      v: [rows, n_visible] binary.
      flip_index: [rows] int, the unit i to score in each row.
    """
    flip = tf.one_hot(flip_index, self.n_visible, dtype=v.dtype)
    v_flipped = v + flip - 2.0 * v * flip
    return self.n_visible * tf.math.log_sigmoid(
        self.free_energy(v_flipped) - self.free_energy(v))

  def exact_log_partition(self, max_hidden: int = 24):
    """log Z by enumerating all 2^H hidden states (small models only).

    log Z = logsumexp_h [h.b_h + sum_i softplus(b_v + W h)_i].
    """
    if self.n_hidden > max_hidden:
      raise ValueError(f"exact log Z enumerates 2^{self.n_hidden} states; only "
                       f"for n_hidden <= {max_hidden}.")
    states = tf.range(2**self.n_hidden)
    bits = tf.cast(
        tf.bitwise.bitwise_and(
            tf.bitwise.right_shift(states[:, None],
                                   tf.range(self.n_hidden)[None, :]), 1),
        tf.float32)
    chunks = []
    for start in range(0, 2**self.n_hidden, 4096):
      h = bits[start:start + 4096]
      chunks.append(
          tf.linalg.matvec(h, self.hidden_bias) + tf.reduce_sum(
              tf.math.softplus(self.visible_logits(h)), axis=-1))
    return tf.reduce_logsumexp(tf.concat(chunks, 0))

  def log_likelihood_exact(self, v, max_hidden: int = 24):
    """log p(v) for small models (exact Z)."""
    return -self.free_energy(v) - self.exact_log_partition(max_hidden)


class _LowPrecisionMatmuls:
  """The CD step's three products with operands of a 16-bit `dtype`.

  Only the matmuls' operands are cast (W once per step); each product is cast
  back to float32 at once, so biases, sigmoids, the noise's comparisons and
  the statistics' sums stay float32. bfloat16 keeps float32's range with 8
  mantissa bits; float16 has 11 bits but ends at 65504 (the statistic's
  entries are at most 2 x rows; a pre-activation v W at most V max|W|, which
  overflows at V=2340 only for weights above 28).
  """

  def __init__(self, rbm: RBMMaths, dtype):
    self.rbm = rbm
    self.dtype = tf.as_dtype(dtype)
    self.weights = tf.cast(rbm.weights, self.dtype)

  def _matmul(self, a, b, **kwargs):
    return tf.cast(tf.matmul(tf.cast(a, self.dtype), b, **kwargs), tf.float32)

  def hidden_probs(self, v):
    return tf.sigmoid(self._matmul(v, self.weights) + self.rbm.hidden_bias)

  def visible_probs(self, h):
    return tf.sigmoid(self._matmul(h, self.weights, transpose_b=True) +
                      self.rbm.visible_bias)

  def weight_statistic(self, v0, ph0, vk, phk):
    """The statistic as ONE product, [v0; vk]^T [ph0; -phk]: the difference
    is accumulated inside the matmul (float32 accumulators on oneDNN and
    tensor cores) and rounded once. Two products rounded to 8 bits each and
    then subtracted would lose most of a difference that is small next to
    them (catastrophic cancellation; tests/test_mixed_precision.py measures
    both). float32 keeps RBMMaths' two products (and so its bytes): fused,
    the float32 statistic alone took 750-850 against 730-770 us of CPU at
    V=2340 H=50 B=100, and 93-94.5 against 90.5-92.5 ms at H=1024 B=1024
    (2026-12-06, benchmarks/RESULTS.md), and float32 has no rounding of the
    products to avoid."""
    return self._matmul(tf.concat([v0, vk], axis=0),
                        tf.cast(tf.concat([ph0, -phk], axis=0), self.dtype),
                        transpose_a=True)


class RBMTensors(RBMMaths):
  """The maths on tensors, e.g. a tf.function's arguments.

  A tf.function that captured an RBM's variables would be traced again for
  each RBM (about 1 s each here); generation loads a model per job, so its
  sampler takes the parameters as arguments and wraps them in this.
  """

  def __init__(self, weights, visible_bias, hidden_bias):
    self.weights = weights
    self.visible_bias = visible_bias
    self.hidden_bias = hidden_bias
    self.n_visible, self.n_hidden = weights.shape


class RBM(RBMMaths, tf.Module):
  """A binary-binary RBM. Create it under `strategy.scope()` to mirror it."""

  def __init__(self, n_visible: int, n_hidden: int, unit_means=None,
               seed: int = 0, name: str | None = None):
    """Initialises as in Hinton's practical guide (UTML TR 2010-003).

    Args:
      n_visible: visible units (2340 for the original post's 15-step onoff windows).
      n_hidden: hidden units.
      unit_means: per-visible-unit mean activation in the training data; sets
        the visible biases. None: zeros.
      seed: seeds W ~ N(0, 0.01^2).
    """
    super().__init__(name=name)
    self.n_visible = int(n_visible)
    self.n_hidden = int(n_hidden)
    self.weights = tf.Variable(
        tf.random.stateless_normal([self.n_visible, self.n_hidden],
                                   seed=[seed, 0], stddev=0.01),
        name="weights")
    if unit_means is None:
      v_bias = tf.zeros([self.n_visible])
    else:
      if len(unit_means) != self.n_visible:
        raise ValueError(f"unit_means has {len(unit_means)} entries for "
                         f"n_visible={self.n_visible}.")
      v_bias = visible_bias_from_means(unit_means)
    self.visible_bias = tf.Variable(v_bias, name="visible_bias")
    self.hidden_bias = tf.Variable(tf.zeros([self.n_hidden]), name="hidden_bias")


def profile_agreement(v, projection, profile, prior: float = 1.0):
  """How well each row's profile agrees with a running one: -KL(q || p).

  q is the row's own profile, v @ projection normalised (e.g. the pitch-class
  distribution of a window's sounding notes); p is `profile` (counts so far,
  e.g. the piece's pitch classes up to this window) plus `prior` per bin,
  normalised. Candidates that keep the piece's tonal context score near 0,
  ones that move elsewhere score lower. KL rather than the log-likelihood of
  the row's counts: a likelihood falls with every note, so it would prefer
  sparse candidates; KL compares distributions only.

  Args:
    v: [rows, V] binary states.
    projection: [V, P] non-negative: how much each unit adds to each bin (0
      for units that must not count, e.g. clamped ones).
    profile: [rows, P] non-negative counts.
    prior: pseudo-count per bin (> 0), so p has no zeros.
  Returns:
    [rows] float32, <= 0; 0 for a row with nothing in its profile.
  """
  counts = tf.matmul(v, projection)
  total = tf.reduce_sum(counts, axis=-1, keepdims=True)
  q = counts / tf.maximum(total, 1e-9)
  p = (profile + prior) / tf.reduce_sum(profile + prior, axis=-1,
                                        keepdims=True)
  # 0 log 0 = 0: bins the row does not use add nothing.
  terms = tf.where(q > 0, q * (tf.math.log(tf.maximum(q, 1e-30)) -
                               tf.math.log(p)), 0.0)
  return -tf.reduce_sum(terms, axis=-1)


def best_of(candidates, scores):
  """Per row, the candidate with the highest score (ties: the first).

  Args:
    candidates: [K, rows, V] states (K alternatives for each row).
    scores: [K, rows].
  Returns:
    (chosen [rows, V], index [rows] int32 of the chosen candidate).
  """
  index = tf.argmax(scores, axis=0, output_type=tf.int32)
  chosen = tf.gather(tf.transpose(candidates, [1, 0, 2]), index[:, None],
                     axis=1, batch_dims=1)[:, 0]
  return chosen, index


def flops_per_cd_example(n_visible: int, n_hidden: int, k: int = 1) -> float:
  """Useful FLOPs of one CD-k example: matmuls only (2 FLOPs per MAC).

  Per example: p(h|v0) (VH), reconstruction/chain p(v|h) (VH) per step,
  p(h|vk) (VH) per step, and the two outer-product statistics (2 VH).
  """
  return 2.0 * n_visible * n_hidden * (1 + 2 * k + 2)

