"""The RNN-RBM (Boulanger-Lewandowski, Bengio & Vincent, ICML 2012): maths only.

A sequence of frames v(1..T), each V binary units, is modelled by one RBM per
frame. All of them share the weights W [V, H]; frame t's biases come from the
state of an RNN after frame t - 1 (trainer/models/recurrent/maths.py
`RecurrentBiases`, which the RNN-NADE shares):

    b_v(t) = b_v + u(t-1) W_uv,     b_h(t) = b_h + u(t-1) W_uh,
    u(t)   = tanh(b_u + v(t) W_vu + u(t-1) W_uu),     u(0) = u0 (learned).

So log p(v(1..T)) = sum_t [-F_t(v(t)) - log Z(t)], every term with its own
biases, and given the biases the frames are independent: training draws every
frame's negative sample by CD-k at once, and AIS anneals every frame at once.

Training signal (the paper's and the Theano tutorial's): with v*(t) a CD-k
sample of frame t's RBM held constant, the gradient of
F_t(v(t)) - F_t(v*(t)) is a stochastic estimate of -d log p(v(t) | history),
and it reaches W_uv, W_uh, the RNN and W by back-propagation through the
biases. Sums over real frames are returned, so replicas can all-reduce them and
divide once by the global number of frames.

Keyed noise. Every uniform number comes from Philox. Training's CD chains and
AIS draw through recurrent/maths.py `frame_noise` (16-bit uniforms,
`keyed_uint16`: half the Philox work, and noise was half of a training
step): the row is the global
sequence index and the frame index is folded into the stream in chunks of
`FRAME_CHUNK` frames. A frame's noise therefore depends on (seed, purpose,
sequence, frame) only: not on the batch, the replica, or the padded length of
the batch. Generation draws float32 uniforms (`bernoulli`) per frame, the row
being the sample index.

The RBM formulas here take per-row biases ([..., V] and [..., H] instead of
[V] and [H]); `conditional_*` functions are the candidates to move into the RBM.
This file must not do I/O, read flags or run a training loop.
"""

import numpy as np
import tensorflow as tf

from trainer.models import ais as ais_lib
from trainer.models.rbm.maths import visible_bias_from_means
from trainer.models.recurrent import maths as recurrent
from trainer.models.rnn_rbm.settings import noise_streams_per_step
from trainer.random_streams import STREAMS_PER_STEP, bernoulli

# AIS: beta index k uses families 2k and 2k + 1; exact samples of the base
# model use this one, far above any schedule.
_AIS_BASE_FAMILY = 2**40
# Generation: frame t, Gibbs step g uses streams
# t * _GEN_STREAMS_PER_FRAME + 2g (hidden) and + 2g + 1 (visible).
_GEN_STREAMS_PER_FRAME = 2**12
# AIS runs the chains of this many frames at a time (memory: sequences x
# frames x chains x V floats, a few of them): flat in the piece's length.
AIS_FRAMES = 256
# Exact log Z enumerates hidden states in chunks of this many (memory:
# rows x chunk x V floats).
_EXACT_STATE_CHUNK = 256


def _dot_t(x, matrix):
  """x [..., B] @ matrix[A, B]^T -> [..., A] as one 2-D matmul."""
  lead = tf.shape(x)[:-1]
  flat = tf.matmul(tf.reshape(x, [-1, x.shape[-1]]), matrix, transpose_b=True)
  return tf.reshape(flat, tf.concat([lead, [matrix.shape[0]]], 0))


def conditional_free_energy(v, weights, visible_bias, hidden_bias):
  """F(v) = -v.b_v - sum_j softplus(b_h + v W)_j with per-row biases.

  Args:
    v: [..., V]; visible_bias: [..., V]; hidden_bias: [..., H]; weights [V, H].
  Returns:
    [...].
  """
  return -tf.reduce_sum(v * visible_bias, axis=-1) - tf.reduce_sum(
      tf.math.softplus(recurrent.dot(v, weights) + hidden_bias), axis=-1)


def conditional_log_partition_exact(weights, visible_bias, hidden_bias,
                                    max_hidden: int = 20):
  """log Z per row by enumerating the 2^H hidden states (small H only).

  log Z = logsumexp_h [h.b_h + sum_i softplus(b_v + W h)_i], with b_v, b_h
  the row's biases.

  Args:
    weights: [V, H]; visible_bias: [N, V]; hidden_bias: [N, H].
  Returns:
    [N] float32.
  Raises:
    ValueError: H > max_hidden.
  """
  n_hidden = weights.shape[1]
  if n_hidden > max_hidden:
    raise ValueError(f"exact log Z enumerates 2^{n_hidden} hidden states; "
                     f"only for n_hidden <= {max_hidden}.")
  states = tf.range(2**n_hidden)
  bits = tf.cast(tf.bitwise.bitwise_and(
      tf.bitwise.right_shift(states[:, None], tf.range(n_hidden)[None, :]), 1),
                 tf.float32)
  parts = []
  for start in range(0, 2**n_hidden, _EXACT_STATE_CHUNK):
    h = bits[start:start + _EXACT_STATE_CHUNK]  # [S, H]
    hw = tf.matmul(h, weights, transpose_b=True)  # [S, V]
    terms = tf.matmul(hidden_bias, h, transpose_b=True) + tf.reduce_sum(
        tf.math.softplus(visible_bias[:, None, :] + hw[None]), axis=-1)
    parts.append(tf.reduce_logsumexp(terms, axis=-1))  # [N]
  return tf.reduce_logsumexp(tf.stack(parts, axis=-1), axis=-1)


def conditional_cd_negatives(v0, weights, visible_bias, hidden_bias, k: int,
                             seed, family_base, row_start):
  """Each frame's CD-k negative sample from its own RBM, all frames at once.

  The chain starts at the data, samples h then v k times (the Theano
  tutorial's `build_rbm`); noise of half-step j comes from family
  family_base + j through `frame_noise`.

  Args:
    v0: [B, T, V] data; visible_bias [B, T, V]; hidden_bias [B, T, H].
    k: Gibbs steps (Python int, 1 <= k, 2k + 1 <= STREAMS_PER_STEP).
    seed: integer scalar. family_base: integer scalar. row_start: global
      index of the first sequence.
  Returns:
    (v_k [B, T, V] binary, reconstruction p(v | h0) [B, T, V]).
  """
  batch, frames = recurrent.dim(v0, 0), recurrent.dim(v0, 1)
  n_visible, n_hidden = weights.shape

  def sample(probs, j, width):
    noise = recurrent.frame_noise(seed, family_base + j, row_start, batch,
                                  frames, width)
    return tf.cast(noise < probs, probs.dtype)

  h = sample(tf.sigmoid(recurrent.dot(v0, weights) + hidden_bias), 0,
             n_hidden)
  recon = tf.sigmoid(_dot_t(h, weights) + visible_bias)
  v = v0
  for i in range(k):
    # The first visible step's p(v | h0) is the reconstruction: reuse it.
    pv = recon if i == 0 else tf.sigmoid(_dot_t(h, weights) + visible_bias)
    v = sample(pv, 1 + 2 * i, n_visible)
    if i + 1 < k:
      h = sample(tf.sigmoid(recurrent.dot(v, weights) + hidden_bias),
                 2 + 2 * i, n_hidden)
  return v, recon


def flops_per_cd_frame(n_visible: int, n_hidden: int, n_hidden_recurrent: int,
                       k: int) -> float:
  """Useful FLOPs of one frame of `RNNRBM.cd_terms` and its gradient: matmuls
  only, 2 FLOPs per MAC (V, H, U = n_visible, n_hidden, n_hidden_recurrent).

  Forward, per frame: the RNN input projection v W_vu (VU), the recurrence
  u W_uu (UU), the bias projections u W_uv (UV) and u W_uh (UH); the CD-k
  chain h0, v1, h1, ..., v_k (2k VH: k products v W, k products h W^T); the
  two free energies' v W and v* W (2 VH).
  Backward (only the gradients the step needs; the data needs none): W from
  both free energies (2 VH); W_uv and W_uh, and u(t-1) through them (2 UV +
  2 UH); W_uu and u(t-1) through the recurrence (2 UU); W_vu (VU).

      FLOPs = 2 [(2k + 4) VH + 5 UV + 3 UH + 3 UU]

  Checked against the MatMul ops of SequenceTrainer.train_step's graph (2k +
  15 of them, the unneeded gradients pruned by the tape).
  """
  v, h, u = n_visible, n_hidden, n_hidden_recurrent
  return 2.0 * ((2 * k + 4) * v * h + 5 * u * v + 3 * u * h + 3 * u * u)


class RNNRBM(recurrent.RecurrentBiases):
  """The RNN-RBM. Create it under `strategy.scope()` to mirror it."""

  def __init__(self, n_visible: int, n_hidden: int, n_hidden_recurrent: int,
               unit_means=None, seed: int = 0,
               zero_bias_projections: bool = False, recurrence: str = "tanh",
               name: str | None = None):
    """Initialises as the Theano tutorial: W ~ N(0, 0.01^2), the RNN's
    matrices ~ N(0, 0.0001^2), biases and u0 zero.

    Args:
      n_visible, n_hidden, n_hidden_recurrent: V, H, U.
      unit_means: the data's per-unit means; b_v = logit(mean) as for the RBM.
      seed: seeds the Gaussian initial weights.
      zero_bias_projections: W_uv and W_uh start at exactly zero (the RNN
        then starts with no effect on the RBM, as after `from_rbm` pretraining).
    """
    super().__init__(name=name)
    v, h, u = int(n_visible), int(n_hidden), int(n_hidden_recurrent)
    self.n_visible, self.n_hidden, self.n_hidden_recurrent = v, h, u
    self.weights = tf.Variable(recurrent.normal([v, h], seed, 0, 0.01),
                               name="weights")
    self.visible_bias = tf.Variable(
        tf.zeros([v]) if unit_means is None else
        visible_bias_from_means(unit_means), name="visible_bias")
    self.hidden_bias = tf.Variable(tf.zeros([h]), name="hidden_bias")
    self._init_rnn(seed, zero_bias_projections, recurrence)

  # --- initialisation from pretrained parts ---------------------------------

  @classmethod
  def from_rbm(cls, rbm, n_hidden_recurrent: int, seed: int = 0,
               zero_bias_projections: bool = True, recurrence: str = "tanh",
               name: str | None = None) -> "RNNRBM":
    """An RNN-RBM whose W, b_v, b_h are a trained frame RBM's (the paper
    pretrains them). W_uv, W_uh start at zero by default, so the model starts
    as exactly that RBM on every frame."""
    n_visible, n_hidden = rbm.weights.shape
    model = cls(n_visible, n_hidden, n_hidden_recurrent, seed=seed,
                zero_bias_projections=zero_bias_projections,
                recurrence=recurrence, name=name)
    model.load_rbm(rbm)
    return model

  def load_rbm(self, rbm) -> None:
    """W, b_v, b_h from a trained frame RBM (anything with weights,
    visible_bias and hidden_bias of shapes [V, H], [V], [H]).

    Raises:
      ValueError: the shapes differ from this model's.
    """
    shape = tuple(rbm.weights.shape)
    if shape != (self.n_visible, self.n_hidden):
      raise ValueError(
          f"the RBM has weights of shape {shape}; this RNN-RBM needs a frame "
          f"RBM of shape ({self.n_visible}, {self.n_hidden}) (n_visible = one "
          f"frame's units, --num_hidden={self.n_hidden}).")
    self.weights.assign(rbm.weights)
    self.visible_bias.assign(rbm.visible_bias)
    self.hidden_bias.assign(rbm.hidden_bias)

  # --- the recurrence and the per-frame RBMs ---------------------------------

  def cd_terms(self, v, lengths, k: int, seed, step, row_start,
               context_rate=None):
    """The training signal of one batch (sums over its real frames).

    The surrogate loss is sum_t F_t(v(t)) - F_t(v*(t)), v* the CD-k samples
    held constant; its gradient estimates -d log p / d(params). The trainer
    differentiates loss_sum / (global number of real frames).

    With `context_rate`, parallel scheduled sampling (Bengio et al. 2015;
    Duckworth et al. 2019): a first pass draws each frame's own sample given
    the true history (a CD-k chain from the data, as the negatives), then
    each frame of the history the RNN reads is that sample with probability
    `context_rate`, else the data frame. The frames to predict stay the data:
    the model learns to return to the corpus's texture from contexts like
    the ones its own pieces feed it, instead of only from the corpus's.

    Args:
      v: [B, T, V] binary; lengths: [B] real frames per row, or None.
      k: CD steps (Python int); seed, step: integer scalars keying the noise;
      row_start: global index of v's first sequence.
      context_rate: None (the history is the data, as the paper trains), or
        a float scalar in [0, 1]: the share of history frames that are the
        model's own samples. Its noise uses the step's families 2k + 1 to
        4k + 2, after the negatives' (so the negatives draw the same noise
        either way).
    Returns:
      dict: loss_sum (differentiable), num_frames, squared_error_sum
      (reconstruction error from p(v | h0), summed over units and real
      frames), negatives [B, T, V] (v*).
    """
    streams = noise_streams_per_step(k, context_rate is not None)
    if k < 1 or streams > STREAMS_PER_STEP:
      raise ValueError(f"cd_k={k} needs {streams} noise streams per step; "
                       f"at most {STREAMS_PER_STEP}.")
    family = tf.cast(step, tf.int64) * STREAMS_PER_STEP
    if context_rate is None:
      b_v, b_h, _ = self.frame_biases(v)
    else:
      b_v, b_h, _ = self.frame_biases(self.mixed_context(
          v, k, seed, family + 2 * k + 1, row_start, context_rate))
    negatives, recon = conditional_cd_negatives(
        v, self.weights, tf.stop_gradient(b_v), tf.stop_gradient(b_h), k, seed,
        family, row_start)
    negatives, recon = tf.stop_gradient(negatives), tf.stop_gradient(recon)
    gap = (conditional_free_energy(v, self.weights, b_v, b_h) -
           conditional_free_energy(negatives, self.weights, b_v, b_h))
    mask = recurrent.frame_mask(lengths, tf.shape(v)[1])
    return {
        "loss_sum": recurrent.masked_sum(gap, mask),
        "num_frames": recurrent.num_frames(v, mask),
        "squared_error_sum": recurrent.masked_sum(
            tf.reduce_sum(tf.square(v - recon), -1), mask),
        "negatives": negatives,
    }

  def mixed_context(self, v, k: int, seed, family, row_start, rate):
    """The history of parallel scheduled sampling (`cd_terms`): each frame
    is, with probability `rate`, the model's own sample of it given the true
    history (a CD-k chain from the data; families family .. family + 2k),
    else the data frame (the choice: family + 2k + 1). No gradient flows
    through the choice or the samples."""
    b_v, b_h, _ = self.frame_biases(v)
    own, _ = conditional_cd_negatives(
        v, self.weights, tf.stop_gradient(b_v), tf.stop_gradient(b_h), k,
        seed, family, row_start)
    return recurrent.mixed_frames(v, own, seed, family + 2 * k + 1,
                                  row_start, rate)

  def free_energies(self, v):
    """F_t(v(t)) per frame [B, T] under each frame's own biases."""
    b_v, b_h, _ = self.frame_biases(v)
    return conditional_free_energy(v, self.weights, b_v, b_h)

  # --- likelihood -------------------------------------------------------------

  def log_partition_exact(self, v, max_hidden: int = 20):
    """Exact log Z(t) per frame [B, T] (2^H hidden states: small H only)."""
    b_v, b_h, _ = self.frame_biases(v)
    flat = conditional_log_partition_exact(
        self.weights, tf.reshape(b_v, [-1, self.n_visible]),
        tf.reshape(b_h, [-1, self.n_hidden]), max_hidden)
    return tf.reshape(flat, tf.shape(v)[:2])

  def log_prob_exact(self, v, max_hidden: int = 20):
    """log p(v(t) | v(<t)) per frame [B, T] (differentiable; small H)."""
    return -self.free_energies(v) - self.log_partition_exact(v, max_hidden)

  def nll_exact(self, v, lengths=None, max_hidden: int = 20) -> float:
    """Negative log-likelihood in nats per real frame (small H)."""
    mask = recurrent.frame_mask(lengths, tf.shape(v)[1])
    return float(
        -recurrent.masked_sum(self.log_prob_exact(v, max_hidden), mask) /
        recurrent.num_frames(v, mask))

  def log_partition_ais(self, v, config: ais_lib.AISConfig,
                        base_biases=None, row_start=0):
    """AIS estimate of log Z(t) for every frame, batched over frames.

    Shared W, per-frame biases; the path and schedule of trainer/models/ais.py,
    one set of `config.num_chains` chains per frame, the noise of frame t of
    sequence s keyed by (config.seed, s, t). The RNN runs over the whole
    sequence (exact and cheap); the chains run AIS_FRAMES frames at a time,
    so memory does not grow with the length of the piece, and the estimate
    is the one all frames at once would give. Eager only (returns numpy).

    Args:
      v: [B, T, V] frames (they set the biases; padded frames are estimated
        too, their values are meaningless).
      config: chains, betas, seed.
      base_biases: visible biases of the base model, [V] (e.g. the data's
        base rate, `ais.base_rate_biases`) or [B, T, V]; None: each frame's
        own b_v(t), clipped to [-10, 10].
      row_start: global index of v's first sequence, or the global index of
        each of v's sequences ([B]; see `frame_noise`).
    Returns:
      (log_z [B, T], log_z_stderr [B, T]) as float64 numpy arrays; the
      stderr is the delta-method one of trainer/models/ais.py, per frame.
    """
    b_v, b_h, _ = self.frame_biases(v)
    if base_biases is None:
      b_a = tf.clip_by_value(b_v, -10.0, 10.0)
    else:
      b_a = tf.broadcast_to(tf.cast(base_biases, tf.float32), tf.shape(b_v))
    log_w = self._chunked_log_weights(b_v, b_h, b_a, config, row_start)
    b_a64 = b_a.numpy().astype(np.float64)
    log_z_base = (np.logaddexp(0.0, b_a64).sum(-1) +
                  self.n_hidden * np.log(2.0))
    shift = log_w.max(-1, keepdims=True)
    w = np.exp(log_w - shift)
    mean = w.mean(-1)
    log_z = log_z_base + shift[..., 0] + np.log(mean)
    stderr = w.std(-1, ddof=1) / np.sqrt(w.shape[-1]) / mean
    return log_z, stderr

  def _chunked_log_weights(self, b_v, b_h, b_a, config, row_start,
                           chunk_frames=None) -> np.ndarray:
    """_ais_log_weights [B, T, M] of every frame, chunk_frames frames per
    call (a multiple of FRAME_CHUNK: each call draws exactly the noise of
    its frames; the last call is padded to the same shape, one trace)."""
    frames = recurrent.dim(b_v, 1)
    chunk = chunk_frames or min(
        AIS_FRAMES,
        -(-int(frames) // recurrent.FRAME_CHUNK) * recurrent.FRAME_CHUNK)
    betas = tf.constant(ais_lib.beta_schedule(config.num_betas), tf.float64)
    pad = -int(frames) % chunk
    padded = [tf.pad(x, [[0, 0], [0, pad], [0, 0]]) for x in (b_v, b_h, b_a)]
    parts = []
    for start in range(0, int(frames), chunk):
      part = [x[:, start:start + chunk] for x in padded]
      parts.append(_ais_log_weights(
          self.weights, *part, betas, config.num_chains,
          tf.constant(config.seed, tf.int64), tf.constant(row_start, tf.int64),
          tf.constant(start // recurrent.FRAME_CHUNK, tf.int64)).numpy())
    return np.concatenate(parts, axis=1)[:, :int(frames)]  # [B, T, M]

  def nll_ais(self, v, lengths, config: ais_lib.AISConfig, base_biases=None,
              row_start=0) -> dict:
    """Sums for the negative log-likelihood of a batch, log Z(t) by AIS.

    Returns:
      dict of floats: nll_sum (nats over real frames), nll_variance (the
      squared standard error of nll_sum: frames' chains are independent, so
      variances add), num_frames. Sum these over batches; the NLL per frame
      is nll_sum / num_frames, its stderr sqrt(nll_variance) / num_frames.
      And nll_rows: [B] each sequence's own sum.
    """
    log_z, stderr = self.log_partition_ais(v, config, base_biases, row_start)
    free = self.free_energies(v).numpy().astype(np.float64)
    mask = recurrent.frame_mask(lengths, tf.shape(v)[1])
    mask = np.ones_like(free) if mask is None else mask.numpy()
    rows = np.sum((free + log_z) * mask, axis=1)
    return {"nll_sum": float(np.sum(rows)),
            "nll_variance": float(np.sum(stderr**2 * mask)),
            "num_frames": float(mask.sum()), "nll_rows": rows}

  # --- generation -------------------------------------------------------------

  def sample_frames(self, visible_bias, hidden_bias, seed,
                    temperature: float = 1.0, gibbs_steps: int = 25):
    """Samples of the frames whose RBM biases are given ([N, V], [N, H]:
    e.g. the biases of the true history, to see the frames without the
    drift of a free-running piece), drawn as generation draws a frame:
    `gibbs_steps` steps from silence; row r's noise is (seed, step, r)."""
    key = lambda x: tf.constant(x, tf.int64)
    scale = lambda x: x / temperature
    v = tf.zeros_like(visible_bias)
    for g in range(gibbs_steps):
      h = bernoulli(
          tf.sigmoid(scale(recurrent.dot(v, self.weights) + hidden_bias)),
          key(seed), key(2 * g), key(0))
      v = bernoulli(tf.sigmoid(
          scale(_dot_t(h, self.weights) + visible_bias)), key(seed),
                    key(2 * g + 1), key(0))
    return v

  def generate(self, num_samples: int, num_frames: int, seed, row_start=0,
               gibbs_steps: int = 25, primer=None, u_start=None,
               frame_start=0, temperature: float = 1.0):
    """Samples frame by frame: G Gibbs steps in frame t's RBM, then the RNN.

    Each frame's chain starts from silence (the tutorial's zeros). Sample
    row_start + r draws its noise from (seed, row_start + r, frame) alone, so
    it is the same in any block. Long pieces can be made in pieces: pass the
    returned state as u_start and frame_start = frames made so far.

    Args:
      num_samples: rows of this block; num_frames: frames to make.
      seed: integer; row_start: global index of the first sample.
      gibbs_steps: G (1 <= G < 2048).
      primer: [P, V] frames run through the RNN first (ignored with u_start).
      u_start: [num_samples, U] state to continue from.
      frame_start: index of the first frame made (keys the noise).
      temperature: both conditionals use sigmoid(pre-activation / T); 1 is
        the model's own distribution (dividing by 1 is exact: same bytes).
    Returns:
      (frames [num_samples, num_frames, V] float32 binary, u_last [N, U]).
    """
    if not 1 <= gibbs_steps < _GEN_STREAMS_PER_FRAME // 2:
      raise ValueError(f"gibbs_steps={gibbs_steps} is out of range "
                       f"1..{_GEN_STREAMS_PER_FRAME // 2 - 1}.")
    if u_start is None:
      u_start = self.initial_state(num_samples, primer)
    return _generate_frames(
        self.weights, self.visible_bias, self.hidden_bias, self.w_uv,
        self.w_uh, self.w_vu, self.w_uu, self.b_u, tf.cast(u_start, tf.float32),
        tf.constant(num_frames, tf.int32), tf.constant(gibbs_steps, tf.int32),
        tf.constant(seed, tf.int64), tf.constant(row_start, tf.int64),
        tf.constant(frame_start, tf.int64),
        tf.constant(temperature, tf.float32), temperature != 1.0,
        self.recurrence)


@tf.function
def _ais_log_weights(weights, b_v, b_h, b_a, betas, num_chains: int, seed,
                     row_start, chunk_start):
  """Log importance weights [B, T, M] (float64), as trainer/models/ais.py per frame.

  Chains are rows [B, T, M, V]: frame (s, t) anneals from the base model with
  visible biases b_a(s, t) and uniform hiddens to its RBM (W, b_v, b_h).
  """
  batch, frames = recurrent.dim(b_v, 0), recurrent.dim(b_v, 1)
  n_visible, n_hidden = weights.shape
  rep = lambda x: tf.repeat(x[:, :, None, :], num_chains, axis=2)
  b_h, b_a = rep(b_h), rep(b_a)
  bias_gap = rep(b_v) - b_a

  def sample(probs, family, width):
    noise = recurrent.frame_noise(seed, family, row_start, batch, frames,
                                  num_chains * width, chunk_start)
    noise = tf.reshape(noise, [batch, frames, num_chains, width])
    return tf.cast(noise < probs, tf.float32)

  v = sample(tf.sigmoid(b_a), _AIS_BASE_FAMILY, n_visible)
  log_w = tf.zeros([batch, frames, num_chains], tf.float64)
  for k in tf.range(1, tf.shape(betas)[0]):
    # float32 betas are the ones the transitions use; consecutive ones are
    # within a factor 2, so their difference is exact (Sterbenz) and the
    # increments telescope over exactly the sampled distributions.
    beta = tf.cast(betas[k], tf.float32)
    step = beta - tf.cast(betas[k - 1], tf.float32)
    x = recurrent.dot(v, weights) + b_h
    p_h = tf.sigmoid(beta * x)
    # softplus(beta x) - softplus(beta' x) = -log1p(sigmoid(beta x)
    # expm1(-(beta - beta') x)): the difference itself to float32's relative
    # precision, where two float32 softplus values would lose it (the float64
    # difference of trainer/models/ais.py costs ~6x more here). Summed over betas
    # in float64.
    hidden_part = -tf.reduce_sum(tf.math.log1p(p_h * tf.math.expm1(-step * x)),
                                 axis=-1)
    log_w += tf.cast(step * tf.reduce_sum(v * bias_gap, -1) + hidden_part,
                     tf.float64)
    family = tf.cast(k, tf.int64) * 2
    h = sample(p_h, family, n_hidden)
    logits = _dot_t(beta * h, weights) + (b_a + beta * bias_gap)
    v = sample(tf.sigmoid(logits), family + 1, n_visible)
  return log_w


@tf.function
def _generate_frames(weights, b_v, b_h, w_uv, w_uh, w_vu, w_uu, b_u, u,
                     num_frames, gibbs_steps, seed, row_start, frame_start,
                     temperature, scaled: bool, recurrence: str):
  """The loop of `RNNRBM.generate`.

  `scaled` (a Python bool: one trace each) is False at temperature 1, where
  the division is skipped: x / 1 == x exactly, so the bytes are the same.
  `recurrence` (a Python str) names the RNN's cell.
  """
  rows = tf.shape(u)[0]
  scale = (lambda x: x / temperature) if scaled else (lambda x: x)
  out = tf.TensorArray(tf.float32, size=num_frames)
  for t in tf.range(num_frames):
    bv_t = b_v + tf.matmul(u, w_uv)
    bh_t = b_h + tf.matmul(u, w_uh)
    base = (frame_start + tf.cast(t, tf.int64)) * _GEN_STREAMS_PER_FRAME
    v = tf.zeros([rows, weights.shape[0]])
    for g in tf.range(gibbs_steps):
      stream = base + 2 * tf.cast(g, tf.int64)
      h = bernoulli(tf.sigmoid(scale(tf.matmul(v, weights) + bh_t)),
                    seed, stream, row_start)
      v = bernoulli(tf.sigmoid(
          scale(tf.matmul(h, weights, transpose_b=True) + bv_t)),
                    seed, stream + 1, row_start)
    out = out.write(t, v)
    u = recurrent.recurrence_step(b_u + tf.matmul(v, w_vu), u, w_uu,
                                  recurrence)
  return tf.transpose(out.stack(), [1, 0, 2]), u
