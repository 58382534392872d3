"""The RNN-NADE (Boulanger-Lewandowski, Bengio & Vincent, ICML 2012): maths only.

The RNN-RBM's recurrence (recurrent/maths.RecurrentBiases) with a NADE
(Larochelle & Murray, AISTATS 2011) in place of each frame's RBM. Frame t's
V units are predicted one after another, in column order (low to high pitch;
with the onoff encoding every play column before every articulate column):

    p(v_i = 1 | v_<i, history) = sigmoid(b_v(t)_i + h_i . W_out[i]),
    h_i = sigmoid(b_h(t) + sum_{j<i} v_j W[j]),

with b_v(t), b_h(t) the RNN's biases after the frames before t. So
log p(v(t) | history) is an exact sum of V log-sigmoids: training follows its
exact gradient (no CD chain), evaluation needs no AIS, and a frame
is sampled exactly, unit by unit, without a Markov chain to mix. Because
each unit sees the ones before it, a frame's notes can depend on how many
are already sounding: the per-frame polyphony an RBM of 150 hidden units
spreads (benchmarks/RESULTS.md, the RNN-RBM drift section).

With a count head (`count_units` = P > 0, --count_head), a frame is drawn
in two parts: first k, how many of its first P units are on (its pitches'
play columns: how many notes sound), from a softmax over 0..P given the
history, then the units given k:

    p(v(t)) = p(k | history) * prod_i p(v_i | v_<i, r_i, history),
    p(k | history) = softmax(b_k + u(t-1) W_uk),

where r_i = k - sum_{j<i} v_j (notes still to place among units i..P-1;
0 from unit P on) adds E[r_i] to h_i's pre-activation, and a unit whose
value r_i fixes (r_i = 0: off; r_i = P - i: on) is certain. The product is
a distribution over the frames with exactly k notes, so the likelihood
stays exact; the count, the texture a corpus keeps from frame to frame
(four voices in a chorale, one in a folk tune, silence between phrases),
is learned as one categorical instead of emerging from V conditionals.

With the articulation rules (`articulated_pitches` = P of an onoff frame,
V = 2P, --articulation_rules), the articulate units the codec decides are
certain: a silent pitch is not struck, and a pitch that sounds where the
previous frame was silent is struck (`articulation_fixed`; on the first
frame of a crop, or of a piece drawn without a primer, the previous frame
is unknown and only the first rule holds).
The data's frames always follow them, so the likelihood stays exact and no
probability goes to frames no MIDI file gives; the state the model carries
is then the RNN's and the previous frame's play columns.

Generation draws float32 uniforms keyed by (seed, row, frame): one Philox
stream per frame (`keyed_uniform`), a row of V numbers per sample (V + 1
with a count head: the last draws k). Training
draws noise only for scheduled sampling (`nll_terms`), through the 16-bit
recurrent/maths.py `frame_noise` keyed by (seed, step, sequence, frame).

This file must not do I/O, read flags or run a training loop.
"""

import numpy as np
import tensorflow as tf

from trainer.models.rbm.maths import visible_bias_from_means
from trainer.models.recurrent import maths as recurrent
from trainer.random_streams import STREAMS_PER_STEP, keyed_uniform

# Frames per call of the exact log-probability in evaluation: memory is
# sequences x frames x V x H floats, a few of them (8 x 512 x 88 x 150 x 4
# bytes = 216 MB each), flat in the piece's length.
LOG_PROB_FRAMES = 512
# The count head's arrays (params.npz), after the RNN-NADE's own.
COUNT_PARAMS = ("count_bias", "w_uk", "count_embedding")


def nade_logits(v, weights, output_weights, visible_bias, hidden_bias,
                extra_hidden=None):
  """Each unit's logit given the units before it in its frame.

  Args:
    v: [..., V] binary frames; weights, output_weights: [V, H];
    visible_bias: [..., V]; hidden_bias: [..., H] (each frame's own);
    extra_hidden: None, or [..., V, H] added to unit i's hidden
      pre-activation (the count head's E[r_i]).
  Returns:
    [..., V]: b_v_i + sigmoid(b_h + sum_{j<i} v_j W[j]) . W_out[i].
  """
  n_visible, n_hidden = weights.shape
  lead = tf.shape(v)[:-1]
  flat = tf.reshape(v, [-1, n_visible])
  # Row (n, i) of `masked` is frame n with units i.. zeroed, so one 2-D
  # matmul gives every unit's sum_{j<i} v_j W[j]: [N * V, V] x [V, H]. It
  # does V times the MACs of an exclusive cumsum over the units, but runs
  # 2.3x faster forward and backward on CPU (the cumsum's scan over a middle
  # axis is slow; docs/DEVELOPMENT.md).
  masked = tf.reshape(_strictly_lower(n_visible)[None] * flat[:, None, :],
                      [-1, n_visible])
  before = tf.reshape(tf.matmul(masked, weights), [-1, n_visible, n_hidden])
  if extra_hidden is not None:
    before += tf.reshape(extra_hidden, [-1, n_visible, n_hidden])
  hidden = tf.sigmoid(tf.reshape(hidden_bias, [-1, 1, n_hidden]) + before)
  logits = tf.reduce_sum(hidden * output_weights, axis=-1)  # [N, V]
  return visible_bias + tf.reshape(logits, tf.concat([lead, [n_visible]], 0))


def remaining_counts(v, count_units: int):
  """[..., V] int32: r_i, the units among i..P-1 that are on (P =
  count_units: the frame's count k minus the units on before i); 0 from
  unit P on."""
  on_from = tf.cast(tf.cumsum(v[..., :count_units], axis=-1, reverse=True),
                    tf.int32)
  rest = tf.zeros(tf.concat([tf.shape(v)[:-1], [v.shape[-1] - count_units]],
                            0), tf.int32)
  return tf.concat([on_from, rest], -1)


def _fixed_units(remaining, count_units: int, n_visible: int):
  """[..., V] bool: the units r_i decides (r_i = 0 or r_i = P - i, i < P)."""
  left = tf.constant(np.concatenate([np.arange(count_units, 0, -1),
                                     np.full(n_visible - count_units, -1)]),
                     tf.int32)  # P - i; -1 past the counted units
  counted = tf.constant(np.arange(n_visible) < count_units)
  return counted & ((remaining == 0) | (remaining == left))


def articulation_fixed(v, previous, pitches: int):
  """The articulate units the codec decides, and their values.

  Units pitches..2*pitches-1 of an onoff frame strike pitches 0..pitches-1:
  a silent pitch is never struck (off), and a pitch that sounds where the
  previous frame was silent is struck (on) when that frame is known.

  Args:
    v: [..., 2 * pitches] frames (only the play columns are read);
    previous: [..., pitches + 1]: the previous frame's play columns and 1
      where it is known (0: the first frame of a crop, whose previous frame
      the model was not shown).
  Returns:
    (fixed [..., 2 * pitches] bool, values [..., 2 * pitches] float32), the
    play columns never fixed here.
  """
  play = v[..., :pitches]
  before, known = previous[..., :pitches], previous[..., pitches:]
  starts = play * (1.0 - before) * known
  silent = 1.0 - play
  none = tf.zeros_like(play)
  fixed = tf.concat([none, tf.maximum(silent, starts)], -1) > 0
  return fixed, tf.concat([none, starts], -1)


def known_frame(v, pitches: int):
  """[..., pitches + 1]: frames as the next frame's rules read them (the
  play columns, then 1: known)."""
  play = v[..., :pitches]
  return tf.concat([play, tf.ones_like(play[..., :1])], -1)


def _strictly_lower(n: int) -> tf.Tensor:
  """[n, n]: 1 below the diagonal (row i keeps units j < i)."""
  return tf.constant(np.tril(np.ones((n, n), np.float32), -1))


def nade_log_prob(v, weights, output_weights, visible_bias, hidden_bias,
                  count=None, previous=None):
  """log p(v) of each frame [...] under its NADE (exact, differentiable).

  count: None, or (count_logits [..., P + 1], embedding [P + 1, H]): the
  count head's log p(k) plus the units given k (module docstring).
  previous: None, or [..., pitches + 1] (`articulation_fixed`): the
  articulate units the codec decides are certain (frames that break the
  codec's rules have probability 0, not counted here).
  """
  free = 1.0
  if previous is not None:
    fixed, _ = articulation_fixed(v, previous, previous.shape[-1] - 1)
    free = tf.cast(~fixed, tf.float32)
  if count is None:
    logits = nade_logits(v, weights, output_weights, visible_bias,
                         hidden_bias)
    return -tf.reduce_sum(free * tf.nn.sigmoid_cross_entropy_with_logits(
        labels=v, logits=logits), -1)
  count_logits, embedding = count
  count_units = count_logits.shape[-1] - 1
  remaining = remaining_counts(v, count_units)
  logits = nade_logits(v, weights, output_weights, visible_bias, hidden_bias,
                       tf.gather(embedding, remaining))
  free *= tf.cast(~_fixed_units(remaining, count_units, v.shape[-1]),
                  tf.float32)
  units = -tf.reduce_sum(free * tf.nn.sigmoid_cross_entropy_with_logits(
      labels=v, logits=logits), -1)
  return units - tf.nn.sparse_softmax_cross_entropy_with_logits(
      labels=remaining[..., 0], logits=count_logits)


class RNNNADE(recurrent.RecurrentBiases):
  """The RNN-NADE. Create it under `strategy.scope()` to mirror it."""

  def __init__(self, n_visible: int, n_hidden: int, n_hidden_recurrent: int,
               unit_means=None, seed: int = 0, recurrence: str = "tanh",
               count_units: int = 0, articulated_pitches: int = 0,
               name: str | None = None):
    """W, W_out ~ N(0, 0.01^2) as the RNN-RBM's W; the RNN as the RNN-RBM's;
    b_v = logit(the data's unit means), b_h and u0 zero; the count head's
    W_uk ~ N(0, 0.0001^2) as the RNN's projections, E ~ N(0, 0.01^2), b_k
    zero.

    Args:
      n_visible, n_hidden, n_hidden_recurrent: V, H (the NADE's hidden
        units), U.
      unit_means: the data's per-unit means, or None.
      seed: seeds the Gaussian initial weights.
      count_units: P, the leading units the count head counts (the play
        columns); 0: no count head.
      articulated_pitches: P of an onoff frame (V = 2P) whose articulate
        units the codec's rules decide where they can
        (`articulation_fixed`); the state then carries the previous frame's
        play columns beside the RNN's. 0: every unit drawn.
    """
    super().__init__(name=name)
    v, h, u = int(n_visible), int(n_hidden), int(n_hidden_recurrent)
    self.n_visible, self.n_hidden, self.n_hidden_recurrent = v, h, u
    self.weights = tf.Variable(recurrent.normal([v, h], seed, 0, 0.01),
                               name="weights")
    self.output_weights = tf.Variable(recurrent.normal([v, h], seed, 5, 0.01),
                                      name="output_weights")
    self.visible_bias = tf.Variable(
        tf.zeros([v]) if unit_means is None else
        visible_bias_from_means(unit_means), name="visible_bias")
    self.hidden_bias = tf.Variable(tf.zeros([h]), name="hidden_bias")
    self._init_rnn(seed, zero_bias_projections=False, recurrence=recurrence)
    if not 0 <= count_units <= v:
      raise ValueError(f"count_units={count_units} must be in 0..{v}.")
    self.count_units = int(count_units)
    self.extra_params = COUNT_PARAMS if self.count_units else ()
    if self.count_units:
      k = self.count_units + 1
      self.count_bias = tf.Variable(tf.zeros([k]), name="count_bias")
      self.w_uk = tf.Variable(recurrent.normal([u, k], seed, 6, 1e-4),
                              name="w_uk")
      self.count_embedding = tf.Variable(recurrent.normal([k, h], seed, 7,
                                                          0.01),
                                         name="count_embedding")
    if articulated_pitches and 2 * articulated_pitches != v:
      raise ValueError(
          f"articulated_pitches={articulated_pitches} needs an onoff frame of "
          f"{2 * articulated_pitches} units; this one has {v}.")
    self.articulated_pitches = int(articulated_pitches)

  def sizes(self) -> dict:
    return {**super().sizes(), **(
        {"count_units": self.count_units} if self.count_units else {}), **(
        {"articulated_pitches": self.articulated_pitches}
        if self.articulated_pitches else {})}

  @property
  def state_width(self) -> int:
    """Width of the state `generate` and `log_prob` carry: the RNN's U, and
    with articulated pitches the last frame's play columns and whether it is
    known."""
    return self.n_hidden_recurrent + (self.articulated_pitches + 1
                                      if self.articulated_pitches else 0)

  def states_before(self, v, u_start=None):
    """(the state before every frame [B, T, state_width], the state after
    the last frame [B, state_width])."""
    if not self.articulated_pitches:
      return super().states_before(v, u_start)
    units = self.n_hidden_recurrent
    if u_start is None:
      u_start = self.initial_state(recurrent.dim(v, 0))
    u_prev, u_last = recurrent.run_recurrence(
        v, self.w_vu, self.w_uu, self.b_u, self.u0, u_start[:, :units],
        self.recurrence)
    previous, last = self._previous_frames(v, u_start[:, units:])
    return (tf.concat([u_prev, previous], -1),
            tf.concat([u_last, last], -1))

  def _previous_frames(self, v, before=None):
    """Each frame's previous frame as the articulation rules read it ([B, T,
    articulated_pitches + 1]: play columns, then 1 where known), `before`
    [B, P + 1] for the first (None: unknown), and the last frame's [B,
    P + 1]."""
    frames = known_frame(v, self.articulated_pitches)
    if before is None:
      before = tf.zeros_like(frames[:, 0])
    return (tf.concat([before[:, None], frames[:, :tf.shape(v)[1] - 1]], 1),
            frames[:, -1])

  def _split(self, state):
    """(u, the previous frame [..., articulated_pitches + 1] or None) of a
    state."""
    if not self.articulated_pitches:
      return state, None
    units = self.n_hidden_recurrent
    return state[..., :units], state[..., units:]

  def biases_from_states(self, u_prev):
    return super().biases_from_states(self._split(u_prev)[0])

  def initial_state(self, num_samples: int, primer=None):
    """The state [num_samples, state_width] to generate from: u0 (and no
    known previous frame), or after a primer."""
    if not self.articulated_pitches:
      return super().initial_state(num_samples, primer)
    if primer is None or len(primer) == 0:
      state = tf.concat([self.u0, tf.zeros([self.articulated_pitches + 1])],
                        0)[None]
    else:
      _, state = self.states_before(tf.cast(primer, tf.float32)[None])
    return tf.broadcast_to(state, [num_samples, self.state_width])

  def frame_conditionals(self, v, u_start=None):
    """Every frame's conditionals given the frames before it: (b_v(t)
    [B, T, V], b_h(t) [B, T, H], the count head's logits [B, T, P + 1] or
    None, the previous frame [B, T, articulated_pitches + 1] or None) and
    the state after the last frame."""
    state_prev, state_last = self.states_before(v, u_start)
    u_prev, previous = self._split(state_prev)
    count = (self.count_bias + recurrent.dot(u_prev, self.w_uk)
             if self.count_units else None)
    return (*self.biases_from_states(state_prev), count, previous), state_last

  def _count(self, count_logits):
    """nade_log_prob's `count` argument for these logits (None: none)."""
    return None if count_logits is None else (count_logits,
                                              self.count_embedding)

  def _frame_log_prob(self, v, conditionals):
    b_v, b_h, count_logits, previous = conditionals
    return nade_log_prob(v, self.weights, self.output_weights, b_v, b_h,
                         self._count(count_logits), previous)

  def log_prob(self, v, u_start=None):
    """log p(v(t) | v(<t)) per frame [B, T] (exact, differentiable), and the
    RNN state after the last frame."""
    conditionals, u_last = self.frame_conditionals(v, u_start)
    return self._frame_log_prob(v, conditionals), u_last

  def nll_terms(self, v, lengths=None, seed=0, step=0, row_start=0,
                context_rate=None) -> dict:
    """The training signal of one batch: sums over its real frames.

    With `context_rate`, parallel scheduled sampling (Bengio et al. 2015;
    Duckworth et al. 2019), as the RNN-RBM's `cd_terms`: each frame of the
    history the RNN reads is, with probability `context_rate`, the model's
    own exact sample of it given the true history, else the data frame; the
    frames scored stay the data's, and so do the frames the articulation
    rules read them against. The model learns to come back to the corpus's
    texture from histories like the ones its own pieces feed it.

    Args:
      v: [B, T, V] binary; lengths: [B] real frames per row, or None.
      seed, step: integer scalars keying the noise (step's frame_noise
        families 0: the samples, 1: the choice); row_start: global index of
        v's first sequence.
      context_rate: None (the history is the data), or a float scalar in
        [0, 1].
    Returns:
      dict: loss_sum (the exact negative log-likelihood in nats,
      differentiable), num_frames.
    """
    if context_rate is None:
      log_p, _ = self.log_prob(v)
    else:
      conditionals, _ = self.frame_conditionals(self.mixed_context(
          v, seed, tf.cast(step, tf.int64) * STREAMS_PER_STEP, row_start,
          context_rate))
      if self.articulated_pitches:
        # The rules follow the frames scored: a data frame's articulation
        # is read against the data's frame before it, whatever history the
        # RNN read (else a pitch the model's own frame held before a data
        # onset teaches it to re-strike).
        conditionals = (*conditionals[:3], self._previous_frames(v)[0])
      log_p = self._frame_log_prob(v, conditionals)
    mask = recurrent.frame_mask(lengths, tf.shape(v)[1])
    return {"loss_sum": -recurrent.masked_sum(log_p, mask),
            "num_frames": recurrent.num_frames(v, mask)}

  def mixed_context(self, v, seed, family, row_start, rate):
    """The history of scheduled sampling (`nll_terms`): frame t is, with
    probability `rate`, an exact sample of the model's frame t given the
    data's frames before it (noise: frame_noise family `family`), else the
    data's frame t (the choice: family + 1). No gradient flows through it."""
    batch, frames = recurrent.dim(v, 0), recurrent.dim(v, 1)
    conditionals, _ = self.frame_conditionals(v)
    b_v, b_h, count_logits, previous = [
        None if c is None else tf.stop_gradient(c) for c in conditionals]
    width = self.n_visible + (1 if self.count_units else 0)
    noise = recurrent.frame_noise(seed, family, row_start, batch, frames,
                                  width)
    own = _sample_frame(
        self.weights, self.output_weights,
        tf.reshape(b_v, [-1, self.n_visible]),
        tf.reshape(b_h, [-1, self.n_hidden]),
        tf.reshape(noise, [-1, width]), lambda x: x,
        self._count(None if count_logits is None else tf.reshape(
            count_logits, [-1, self.count_units + 1])),
        None if previous is None else tf.reshape(
            previous, [-1, self.articulated_pitches + 1]))
    return recurrent.mixed_frames(v, tf.reshape(own, tf.shape(v)), seed,
                                  family + 1, row_start, rate)

  def nll_rows(self, v, lengths, chunk_frames: int = LOG_PROB_FRAMES):
    """Each sequence's negative log-likelihood (nats over its real frames),
    float64 numpy [B]; the frames go through the NADE `chunk_frames` at a
    time, the RNN state carried across, so memory is flat in the length."""
    v = tf.convert_to_tensor(v, tf.float32)
    frames = int(v.shape[1])
    mask = recurrent.frame_mask(tf.constant(lengths), frames).numpy()
    total = np.zeros(int(v.shape[0]))
    u = None
    for start in range(0, frames, chunk_frames):
      log_p, u = _log_prob_chunk(self, v[:, start:start + chunk_frames], u)
      total -= (log_p.numpy().astype(np.float64) *
                mask[:, start:start + chunk_frames]).sum(1)
    return total

  def sample_frames(self, visible_bias, hidden_bias, count_logits, previous,
                    seed, temperature: float = 1.0):
    """Exact samples of the frames whose conditionals are given ([N, V],
    [N, H], [N, P + 1] or None, [N, articulated_pitches + 1] or None: e.g.
    `frame_conditionals` of the true history, to see the frames without the
    drift of a free-running piece); row r's noise is (seed, 0, r)."""
    rows = tf.shape(visible_bias)[0]
    width = self.n_visible + (1 if self.count_units else 0)
    noise = keyed_uniform(tf.constant(seed, tf.int64), tf.constant(0, tf.int64),
                          tf.constant(0, tf.int64), rows, width)
    scale = (lambda x: x / temperature) if temperature != 1.0 else (
        lambda x: x)
    return _sample_frame(self.weights, self.output_weights, visible_bias,
                         hidden_bias, noise, scale, self._count(count_logits),
                         previous)

  def generate(self, num_samples: int, num_frames: int, seed, row_start=0,
               primer=None, u_start=None, frame_start=0,
               temperature: float = 1.0):
    """Samples frame by frame, each frame unit by unit, then the RNN.

    Sample row_start + r draws the uniforms of frame t from
    (seed, stream frame_start + t, row row_start + r) alone, so it is the
    same in any block. Pass the returned state as u_start and frame_start =
    frames made so far to continue a piece.

    Args:
      num_samples: rows of this block; num_frames: frames to make.
      seed: integer; row_start: global index of the first sample.
      primer: [P, V] frames run through the RNN first (ignored with u_start).
      u_start: [num_samples, state_width] state to continue from.
      frame_start: index of the first frame made (keys the noise).
      temperature: each unit's p = sigmoid(logit / T); 1 is the model's own
        distribution (same bytes: the division is skipped).
    Returns:
      (frames [num_samples, num_frames, V] float32 binary, the state after
      them [N, state_width]).
    """
    if u_start is None:
      u_start = self.initial_state(num_samples, primer)
    count = ((self.count_bias, self.w_uk, self.count_embedding)
             if self.count_units else None)
    return _generate_frames(
        self.weights, self.output_weights, self.visible_bias,
        self.hidden_bias, self.w_uv, self.w_uh, self.w_vu, self.w_uu,
        self.b_u, count, self.articulated_pitches,
        tf.cast(u_start, tf.float32),
        tf.constant(num_frames, tf.int32), tf.constant(seed, tf.int64),
        tf.constant(row_start, tf.int64), tf.constant(frame_start, tf.int64),
        tf.constant(temperature, tf.float32), temperature != 1.0,
        self.recurrence)


def _sample_frame(weights, output_weights, visible_bias, hidden_bias, noise,
                  scale, count=None, previous=None):
  """One frame per row [N, V] drawn unit by unit (unrolled over V).

  Args:
    visible_bias: [N, V], hidden_bias: [N, H] (the rows' own); noise: [N, V]
    uniforms ([N, V + 1] with a count head: the last column draws k);
    scale: the temperature's division of a logit (or identity); count: None,
    or (count_logits [N, P + 1], embedding [P + 1, H]); previous: None, or
    [N, pitches + 1] (`articulation_fixed`: the articulate units it decides
    are set, not drawn).
  """
  n_visible = weights.shape[0]
  act, units = hidden_bias, []
  pitches = None if previous is None else previous.shape[-1] - 1
  if count is not None:
    count_logits, embedding = count
    count_units = count_logits.shape[-1] - 1
    # k by the inverse CDF: the classes whose cumulative probability is at
    # or below the uniform.
    cdf = tf.cumsum(tf.nn.softmax(scale(count_logits)), axis=-1)
    remaining = tf.reduce_sum(tf.cast(cdf[:, :-1] <= noise[:, n_visible:],
                                      tf.int32), -1)
  for i in range(n_visible):
    if count is None:
      pre = act
    elif i < count_units:
      pre = act + tf.gather(embedding, remaining)
    else:  # every counted note placed: r_i = 0
      pre = act + embedding[0]
    logit = visible_bias[:, i] + tf.linalg.matvec(tf.sigmoid(pre),
                                                  output_weights[i])
    v_i = tf.cast(noise[:, i] < tf.sigmoid(scale(logit)), tf.float32)
    if count is not None and i < count_units:
      v_i = tf.where(remaining == 0, 0.0,
                     tf.where(remaining == count_units - i, 1.0, v_i))
      remaining -= tf.cast(v_i, tf.int32)
    if previous is not None and i >= pitches:
      if i == pitches:  # every play unit drawn: the units the rules decide
        fixed, values = articulation_fixed(tf.stack(units, axis=1), previous,
                                           pitches)
      v_i = tf.where(fixed[:, i], values[:, i], v_i)
    act += v_i[:, None] * weights[i]
    units.append(v_i)
  return tf.stack(units, axis=1)


@tf.function(reduce_retracing=True)
def _log_prob_chunk(model, v, u_start):
  return model.log_prob(v, u_start)


@tf.function
def _generate_frames(weights, output_weights, b_v, b_h, w_uv, w_uh, w_vu,
                     w_uu, b_u, count, pitches: int, state, num_frames, seed,
                     row_start, frame_start, temperature, scaled: bool,
                     recurrence: str):
  """The loop of `RNNNADE.generate` (the units of a frame unrolled).

  `count` is None or the count head's (b_k, W_uk, E); `pitches` (a Python
  int) the articulated pitches (0: none; else the state ends with the
  previous frame's play columns and whether it is known); `scaled` (a Python
  bool: one trace each) is False at temperature 1; `recurrence` (a Python
  str) names the RNN's cell.
  """
  rows = tf.shape(state)[0]
  n_visible = weights.shape[0]
  units = w_uu.shape[0]
  width = n_visible + (0 if count is None else 1)
  scale = (lambda x: x / temperature) if scaled else (lambda x: x)
  out = tf.TensorArray(tf.float32, size=num_frames)
  for t in tf.range(num_frames):
    u = state[:, :units]
    previous = state[:, units:] if pitches else None
    bv_t = b_v + tf.matmul(u, w_uv)  # [N, V]
    act = b_h + tf.matmul(u, w_uh)  # [N, H]
    noise = keyed_uniform(seed, frame_start + tf.cast(t, tf.int64), row_start,
                          rows, width)
    v = _sample_frame(weights, output_weights, bv_t, act, noise, scale,
                      None if count is None else
                      (count[0] + tf.matmul(u, count[1]), count[2]),
                      previous)
    out = out.write(t, v)
    u = recurrent.recurrence_step(b_u + tf.matmul(v, w_vu), u, w_uu,
                                  recurrence)
    state = u if previous is None else tf.concat(
        [u, known_frame(v, pitches)], -1)
  return tf.transpose(out.stack(), [1, 0, 2]), state
