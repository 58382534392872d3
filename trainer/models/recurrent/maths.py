"""The RNN the temporal models share (Boulanger-Lewandowski, Bengio & Vincent,
ICML 2012): maths only.

`RecurrentBiases` sets each frame's biases from an RNN over the frames before
it; the RNN-RBM (trainer/models/rnn_rbm) puts an RBM on each frame, the
RNN-NADE (trainer/models/rnn_nade) a NADE. Also here: the plain `FrameRNN` of
the paper's pretraining, and the sums over a batch's real frames that both
models' training signals are made of (`frame_mask`, `masked_sum`,
`num_frames`).

This file must not do I/O, read flags or run a training loop.
"""

import numpy as np
import tensorflow as tf

from trainer.models.rbm.maths import visible_bias_from_means
from trainer.models.rnn_rbm.settings import RECURRENCES
from trainer.random_streams import UINT16_SCALE, keyed_uint16

# Frames per Philox stream in `frame_noise`: one stream per chunk of 16 frames.
# Smaller wastes less noise on the last, partly padded chunk; larger makes
# fewer random ops per Gibbs half-step (ceil(T / 16) of them).
FRAME_CHUNK = 16
# Chunks per stream family: sequences up to 16 * 2^20 frames.
_CHUNKS_PER_FAMILY = 2**20


def frame_noise(seed, family, row_start, num_rows, num_frames,
                width: int, chunk_start=0) -> tf.Tensor:
  """Uniform noise [num_rows, num_frames, width] keyed by (row, frame).

  Entry (r, t, :) depends only on (seed, family, row_start + r, t, width):
  frames [16c, 16c + 16) of every row come from stream
  family * 2^20 + c, as one `keyed_uint16` row of 16 * width numbers, scaled
  to [0, 1) on a grid of 2^-16 (float32). With chunk_start = k, frame t of
  the result is frame 16k + t of the sequence (a later part of it, drawing
  exactly the noise the whole sequence would).

  Args:
    seed: integer scalar.
    family: integer scalar < 2^43 (family * 2^20 + chunk must fit in int64),
      e.g. step * STREAMS_PER_STEP + purpose.
    row_start: global index of the first row (sequence or sample), or a
      vector of num_rows global row indices (any order: e.g. sequences
      batched by length), each row drawing the noise it would draw alone.
    num_rows: integer scalar.
    num_frames: integer scalar (may be a tensor).
    width: Python int, units per frame.
    chunk_start: the first frame's chunk of FRAME_CHUNK frames.
  """
  family = tf.cast(family, tf.int64)
  chunk_start = tf.cast(chunk_start, tf.int64)
  num_chunks = (tf.cast(num_frames, tf.int32) + FRAME_CHUNK - 1) // FRAME_CHUNK

  row_start = tf.convert_to_tensor(row_start)
  rows = row_start if row_start.shape.rank == 1 else None

  def chunk(c):
    stream = family * _CHUNKS_PER_FAMILY + chunk_start + tf.cast(c, tf.int64)
    if rows is None:
      return keyed_uint16(seed, stream, row_start, num_rows,
                          FRAME_CHUNK * width)
    # A row's Philox counters start at its index: one call per row.
    return tf.concat([keyed_uint16(seed, stream, rows[i], 1,
                                   FRAME_CHUNK * width)
                      for i in range(rows.shape[0])], 0)

  static_frames = tf.get_static_value(num_frames)
  if static_frames is not None:
    # Known length (fixed crops, generation, tests): unrolled calls, without
    # the while loop of map_fn, which costs more than the noise at small T.
    chunks = tf.stack([chunk(c) for c in range(
        max(1, (int(static_frames) + FRAME_CHUNK - 1) // FRAME_CHUNK))])
  else:
    chunks = tf.map_fn(chunk, tf.range(num_chunks),
                       fn_output_signature=tf.uint16)  # [C, rows, 16 * width]
  # Moved and cut as 16-bit integers, converted once: half the bytes. Rows
  # are reordered chunk-major -> row-major by a gather of whole chunk rows
  # (memcpy): tf.transpose would go through oneDNN, which has no integer
  # transpose here and logs an error line for each one.
  order = tf.range(num_rows * num_chunks)
  rows = tf.gather(tf.reshape(chunks, [num_chunks * num_rows, -1]),
                   order % num_chunks * num_rows + order // num_chunks)
  noise = tf.reshape(rows, [num_rows, num_chunks * FRAME_CHUNK, width])
  return tf.cast(noise[:, :num_frames], tf.float32) * UINT16_SCALE


def mixed_frames(v, own, seed, choice_family, row_start, rate):
  """Scheduled sampling's history: each frame of v [B, T, V] is replaced by
  the model's own frame `own` with probability `rate` (the choice: noise
  family `choice_family`, keyed by sequence and frame). No gradient flows
  through it."""
  pick = frame_noise(seed, choice_family, row_start, dim(v, 0), dim(v, 1),
                     1) < rate
  return tf.stop_gradient(tf.where(pick, own, v))


def dim(x, axis):
  """x's size on `axis`: a Python int when static (keeps `frame_noise`
  unrolled), else a tensor."""
  return x.shape[axis] if x.shape[axis] is not None else tf.shape(x)[axis]


def dot(x, matrix):
  """x [..., A] @ matrix [A, B] -> [..., B] as one 2-D matmul."""
  lead = tf.shape(x)[:-1]
  flat = tf.matmul(tf.reshape(x, [-1, x.shape[-1]]), matrix)
  return tf.reshape(flat, tf.concat([lead, [matrix.shape[-1]]], 0))


def frame_mask(lengths, num_frames):
  """[B, T] float mask of real frames (lengths None: every frame is real)."""
  if lengths is None:
    return None
  return tf.sequence_mask(lengths, num_frames, dtype=tf.float32)


def masked_sum(values, mask):
  return tf.reduce_sum(values if mask is None else values * mask)


def num_frames(v, mask):
  if mask is None:
    return tf.cast(tf.shape(v)[0] * tf.shape(v)[1], tf.float32)
  return tf.reduce_sum(mask)


def gate_width(recurrence: str) -> int:
  """Columns of W_vu, W_uu and b_u per recurrent unit: tanh 1; gru 3 (the
  reset gate's, the update gate's and the candidate's, in that order)."""
  if recurrence not in RECURRENCES:
    raise ValueError(f"recurrence={recurrence!r}: choose from "
                     f"{', '.join(RECURRENCES)}.")
  return 3 if recurrence == "gru" else 1


def recurrence_step(x, u, w_uu, recurrence: str):
  """u(t) from u(t-1) = u [B, U] and the frame's input x = b_u + v(t) W_vu.

  tanh: u(t) = tanh(x + u W_uu), the paper's.
  gru (Cho et al. 2014): r, z = sigmoid(x_r + u W_r), sigmoid(x_z + u W_z);
  c = tanh(x_c + (r * u) W_c); u(t) = z * u + (1 - z) * c, so a unit whose
  update gate z is near 1 keeps its value from frame to frame.
  """
  if recurrence == "tanh":
    return tf.tanh(x + tf.matmul(u, w_uu))
  n = u.shape[-1]
  x_gates, x_candidate = tf.split(x, [2 * n, n], axis=1)
  w_gates, w_candidate = tf.split(w_uu, [2 * n, n], axis=1)
  gates = tf.sigmoid(x_gates + tf.matmul(u, w_gates))  # [reset, update]
  # r * u and z * u as one product, and the splits as one op each: in the
  # gradient no tensor of the step then sums more than two terms. Written
  # with slices and three uses of u, the training loop failed on the chorales
  # demo dataset with ALREADY_EXISTS on an AddN's temporary variable inside
  # the scan's gradient (grappler's accumulate rewrite, cf. tensorflow#23780;
  # not reproduced on the tests' small datasets).
  reset_u, update_u = tf.split(gates * tf.tile(u, [1, 2]), 2, axis=1)
  candidate = tf.tanh(x_candidate + tf.matmul(reset_u, w_candidate))
  return update_u + (1.0 - gates[:, n:]) * candidate


def run_recurrence(v, w_vu, w_uu, b_u, u0, u_start=None,
                   recurrence: str = "tanh"):
  """The RNN over [B, T, V] frames.

  The input projection v W_vu + b_u of all frames is one matmul; only
  `recurrence_step` runs in the loop over time.

  Args:
    v: [B, T, V], T >= 1; u_start: [B, U] state before the first frame
      (None: u0); recurrence: the cell (RECURRENCES).
  Returns:
    (u_prev [B, T, U]: the state each frame's biases come from, i.e.
     u(t-1) for frame t; u_last [B, U]: the state after the last frame,
     padding included).
  """
  batch = tf.shape(v)[0]
  if u_start is None:
    u_start = tf.broadcast_to(u0, [batch, u0.shape[0]])
  x = tf.transpose(dot(v, w_vu) + b_u, [1, 0, 2])  # [T, B, gU], time-major
  states = tf.scan(lambda u, x_t: recurrence_step(x_t, u, w_uu, recurrence),
                   x, initializer=u_start)  # [T, B, U]: u(1..T)
  states = tf.transpose(states, [1, 0, 2])
  u_prev = tf.concat([u_start[:, None, :], states[:, :-1]], axis=1)
  return u_prev, states[:, -1]


def normal(shape, seed, index, stddev):
  return tf.random.stateless_normal(shape, seed=[seed, index], stddev=stddev)


class FrameRNN(tf.Module):
  """A plain RNN predicting the next frame, for the paper's pretraining.

  The same recurrence as `RecurrentBiases`; its output is p(v(t)_i = 1 |
  history) = sigmoid(output_bias + u(t-1) W_uv)_i, independent units, so the
  cross-entropy is exact. After training, `RecurrentBiases.copy_rnn_from`
  takes its W_vu, W_uu, b_u, u0 and W_uv.
  """

  def __init__(self, n_visible: int, n_hidden_recurrent: int, unit_means=None,
               seed: int = 0, recurrence: str = "tanh",
               name: str | None = None):
    super().__init__(name=name)
    v, u = int(n_visible), int(n_hidden_recurrent)
    self.n_visible, self.n_hidden_recurrent = v, u
    self.recurrence = recurrence
    g = gate_width(recurrence)
    # The RNN's own weights need a usable scale to learn from scratch:
    # 1/sqrt(fan-in) (RecurrentBiases' 1e-4 would leave u ~ 0 for a long
    # time).
    self.w_vu = tf.Variable(normal([v, g * u], seed, 0, 1.0 / np.sqrt(v)),
                            name="w_vu")
    self.w_uu = tf.Variable(normal([u, g * u], seed, 1, 1.0 / np.sqrt(u)),
                            name="w_uu")
    self.w_uv = tf.Variable(tf.zeros([u, v]), name="w_uv")
    self.b_u = tf.Variable(tf.zeros([g * u]), name="b_u")
    self.u0 = tf.Variable(tf.zeros([u]), name="u0")
    self.output_bias = tf.Variable(
        tf.zeros([v]) if unit_means is None else
        visible_bias_from_means(unit_means), name="output_bias")

  def cross_entropy_terms(self, v, lengths=None):
    """Sums over real frames of -log p(v(t) | history) (nats), and the count.

    Args:
      v: [B, T, V] binary frames; lengths: [B] real frames per row or None.
    Returns:
      dict: cross_entropy_sum (scalar, differentiable), num_frames.
    """
    u_prev, _ = run_recurrence(v, self.w_vu, self.w_uu, self.b_u, self.u0,
                               recurrence=self.recurrence)
    logits = dot(u_prev, self.w_uv) + self.output_bias
    per_frame = tf.reduce_sum(
        tf.nn.sigmoid_cross_entropy_with_logits(labels=v, logits=logits), -1)
    mask = frame_mask(lengths, tf.shape(v)[1])
    return {"cross_entropy_sum": masked_sum(per_frame, mask),
            "num_frames": num_frames(v, mask)}


class RecurrentBiases(tf.Module):
  """The RNN both frame models share: frame t's biases from the frames before.

      b_v(t) = b_v + u(t-1) W_uv,     b_h(t) = b_h + u(t-1) W_uh,
      u(t)   = tanh(b_u + v(t) W_vu + u(t-1) W_uu),     u(0) = u0 (learned).

  The RNN-RBM (trainer/models/rnn_rbm) puts an RBM on each frame, the
  RNN-NADE (trainer/models/rnn_nade) a NADE; both read these biases, start
  the RNN from a pretrained `FrameRNN` and continue a primer from
  `initial_state`. With recurrence="gru" the tanh update above is a gated
  recurrent unit (`recurrence_step`).
  A subclass sets n_visible, n_hidden, n_hidden_recurrent, visible_bias [V]
  and hidden_bias [H], and calls `_init_rnn`.
  """

  def _init_rnn(self, seed: int, zero_bias_projections: bool,
                recurrence: str = "tanh") -> None:
    """W_uv, W_uh, W_vu, W_uu ~ N(0, 0.0001^2) (the Theano tutorial's), b_u
    and u0 zero; W_uv and W_uh exactly zero with zero_bias_projections."""
    v, h, u = self.n_visible, self.n_hidden, self.n_hidden_recurrent
    self.recurrence = recurrence
    g = gate_width(recurrence)
    small = (lambda shape, i: tf.zeros(shape)) if zero_bias_projections else (
        lambda shape, i: normal(shape, seed, i, 1e-4))
    self.w_uv = tf.Variable(small([u, v], 1), name="w_uv")
    self.w_uh = tf.Variable(small([u, h], 2), name="w_uh")
    self.w_vu = tf.Variable(normal([v, g * u], seed, 3, 1e-4), name="w_vu")
    self.w_uu = tf.Variable(normal([u, g * u], seed, 4, 1e-4), name="w_uu")
    self.b_u = tf.Variable(tf.zeros([g * u]), name="b_u")
    self.u0 = tf.Variable(tf.zeros([u]), name="u0")

  def copy_rnn_from(self, rnn: FrameRNN) -> None:
    """W_vu, W_uu, b_u, u0 and W_uv from a pretrained `FrameRNN`."""
    if (rnn.n_visible, rnn.n_hidden_recurrent, rnn.recurrence) != (
        self.n_visible, self.n_hidden_recurrent, self.recurrence):
      raise ValueError(
          f"the pretrained RNN has V={rnn.n_visible}, U="
          f"{rnn.n_hidden_recurrent}, a {rnn.recurrence} cell; this model has "
          f"V={self.n_visible}, U={self.n_hidden_recurrent}, a "
          f"{self.recurrence} cell.")
    for mine, theirs in ((self.w_vu, rnn.w_vu), (self.w_uu, rnn.w_uu),
                         (self.b_u, rnn.b_u), (self.u0, rnn.u0),
                         (self.w_uv, rnn.w_uv)):
      mine.assign(theirs)

  # Arrays a subclass trains beside PARAMS (the RNN-NADE's count head).
  extra_params: tuple = ()

  def sizes(self) -> dict:
    """model.json's "sizes": what rebuilds this model's shapes."""
    return {"n_visible": self.n_visible, "n_hidden": self.n_hidden,
            "n_hidden_recurrent": self.n_hidden_recurrent,
            "recurrence": self.recurrence}

  def frame_conditionals(self, v, u_start=None):
    """What each frame's model is given by the frames before it (here its
    biases, (b_v(t), b_h(t))), and the RNN state after the last frame: the
    first arguments of the subclass's `sample_frames`."""
    b_v, b_h, u_last = self.frame_biases(v, u_start)
    return (b_v, b_h), u_last

  def frame_biases(self, v, u_start=None):
    """Every frame's biases given the frames before it.

    Args:
      v: [B, T, V]; u_start: [B, U] state before frame 0 (None: u0).
    Returns:
      (b_v(t) [B, T, V], b_h(t) [B, T, H], u_last [B, U]).
    """
    u_prev, u_last = self.states_before(v, u_start)
    return (*self.biases_from_states(u_prev), u_last)

  def states_before(self, v, u_start=None):
    """(u(t-1) for every frame t [B, T, U], u after the last frame [B, U])."""
    return run_recurrence(v, self.w_vu, self.w_uu, self.b_u, self.u0, u_start,
                          self.recurrence)

  def biases_from_states(self, u_prev):
    """(b_v(t), b_h(t)) from the states before the frames."""
    return (self.visible_bias + dot(u_prev, self.w_uv),
            self.hidden_bias + dot(u_prev, self.w_uh))

  def initial_state(self, num_samples: int, primer=None):
    """RNN state [num_samples, U] to generate from: u0, or after a primer.

    Args:
      primer: [P, V] frames every sample continues (None: no primer).
    """
    if primer is None or len(primer) == 0:
      u = self.u0[None, :]
    else:
      _, _, u = self.frame_biases(tf.cast(primer, tf.float32)[None])
    return tf.broadcast_to(u, [num_samples, self.n_hidden_recurrent])
