"""Every random number of the trainer: keyed Philox noise and its streams.

Randomness is keyed, never stateful: the uniform numbers for row r come from
(seed, stream, r) through Philox counters (`keyed_uniform`), so the same
example or sample gets the same noise whatever the batch size, the number of
replicas or the shard of a job it lands in.

The table below is the one place that chooses a stream for a purpose. Two
purposes drawing from the same (seed, stream) would correlate their noise, so
each gets its own region of the 64-bit stream space. Changing a number here
changes samples and trained weights for a given seed: the numbers are the
ones the project has always used (checked byte for byte, docs/DEVELOPMENT.md).

  purpose                          streams (Gibbs step s: hidden, visible)
  CD/PCD training, step t          t * STREAMS_PER_STEP + 0 (h0), + 1 (PCD h
  (16-bit: `bernoulli16`)          of the chain), + 2 + 2i / + 3 + 2i (step i)
  PCD chains' initial state        CHAIN_INIT (row r = global batch row r)
  TensorBoard sample chains        seed + 1; step t, Gibbs step i: the chain
                                   of `monitor_base(t)`
  generation, chain c              c * GENERATION_CHAIN_STREAMS + 2s, + 2s + 1
  generation, initial state of c   CHAIN_INIT + c
  generation, candidate k of c     chain c + k * CANDIDATE_CHAINS (k = 0 is c)
  AIS base-model samples           CHAIN_INIT
  AIS transition at beta index k   2k (hidden), 2k + 1 (visible)
  RNN-RBM CD and AIS (16-bit)      families of models/recurrent/maths.frame_noise
  RNN-RBM generation, frame t,     (a * 2^32 + t) * 2^12 + 2s, + 2s + 1
  attempt a, Gibbs step s          (row = sample index)
  RNN-NADE generation, frame t,    a * 2^32 + t (row = sample index)
  attempt a
  RNN-NADE context samples, step t frame_noise families t * STREAMS_PER_STEP
  (16-bit)                         + 0 (the frames), + 1 (the choice)
  RBM training windows in memory,   EPOCH_ORDER + e (one row of N keys)
  order of epoch e
  Bernoulli generation, attempt a, `bernoulli_frames(a, c)` = BERNOULLI_FRAMES
  frame chunk c                    + a * 2^32 + c (row = sample index)

CHAIN_INIT (2^62) is far above anything the step-indexed streams reach in a
run (training: 2^10 per step; generation: 2^21 per chain).
"""

import tensorflow as tf

# Streams per training step: CD-k uses 2k + 2, so k up to ~500.
STREAMS_PER_STEP = 1024
# Streams per generation chain (one chain = one window of one attempt): two
# per Gibbs step, so at most GENERATION_CHAIN_STREAMS // 2 - 1 steps.
GENERATION_CHAIN_STREAMS = 2**21
# Candidate k > 0 of a generation chain (--candidates) is the chain
# c + k * CANDIDATE_CHAINS: chains c (attempt * windows + window) stay below it
# (config checks), and 64 candidates reach 2^51 streams, far below CHAIN_INIT.
CANDIDATE_CHAINS = 2**24
# Initial states of chains (PCD, generation, AIS): far from the step streams.
CHAIN_INIT = 2**62
# The Bernoulli baseline's generated frames: above every generation chain
# (< 2^51) and below CHAIN_INIT.
BERNOULLI_FRAMES = 2**61
# The order of each epoch's windows when the RBM holds them in memory: above
# every generation chain and training step (< 2^60 up to 2^50 steps), below
# BERNOULLI_FRAMES.
EPOCH_ORDER = 2**60
# Gibbs steps of each TensorBoard sample chain.
MONITOR_GIBBS_STEPS = 200


def training_base(step):
  """First stream of training step `step` (an int64 tensor or int)."""
  return tf.cast(step, tf.int64) * STREAMS_PER_STEP


def monitor_base(step):
  """First stream of the TensorBoard sample chain written at `step` (key:
  the training seed + 1); Gibbs step i uses 2 (step * 200 + i) and + 1."""
  return tf.cast(step, tf.int64) * (2 * MONITOR_GIBBS_STEPS)


def generation_base(chain: int) -> int:
  """First stream of generation chain `chain` = attempt * windows + window."""
  return chain * GENERATION_CHAIN_STREAMS


def generation_candidate(chain: int, k: int) -> int:
  """The chain of candidate k of generation chain `chain` (k = 0: itself, so
  one candidate draws exactly the noise it always did)."""
  if not 0 <= chain < CANDIDATE_CHAINS:
    raise ValueError(f"generation chain {chain} must be < {CANDIDATE_CHAINS}.")
  return chain + k * CANDIDATE_CHAINS


def generation_init(chain: int) -> int:
  """Stream of generation chain `chain`'s random initial state."""
  return CHAIN_INIT + chain


def bernoulli_frames(attempt: int, chunk: int) -> int:
  """Stream of the Bernoulli baseline's frames of chunk `chunk` of attempt
  `attempt` (--resample_empty)."""
  return BERNOULLI_FRAMES + attempt * 2**32 + chunk


def epoch_order(seed, epoch, num_rows: int) -> tf.Tensor:
  """A permutation of range(num_rows) (int32) keyed by (seed, epoch)."""
  keys = keyed_uniform(seed, EPOCH_ORDER + tf.cast(epoch, tf.int64), 0, 1,
                       num_rows)[0]
  return tf.cast(tf.argsort(keys, stable=True), tf.int32)


def ais_transition(k):
  """First stream (hidden; + 1 visible) of AIS's transition at beta index k."""
  return tf.cast(k, tf.int64) * 2


def keyed_uniform(seed, stream, row_start, num_rows, width) -> tf.Tensor:
  """Rows [row_start, row_start + num_rows) of a virtual uniform matrix.

  The virtual matrix is keyed by (seed, stream) and has `width` columns; row r
  depends only on (seed, stream, r, width). Philox yields 4 numbers per counter
  value, so each row is padded to a multiple of 4 and row r starts at counter
  r * padded / 4: a replica can draw exactly its own rows of a global batch.

  Args:
    seed: integer scalar (the Philox key).
    stream: non-negative integer scalar, the counter's high word (from the
      table in the module docstring).
    row_start: integer scalar, index of the first row (e.g. global example index).
    num_rows: integer scalar.
    width: Python int, columns.
  Returns:
    float32 [num_rows, width] in [0, 1).
  """
  uniform = tf.raw_ops.StatelessRandomUniformV2(
      **_philox_rows(seed, stream, row_start, num_rows, (width + 3) // 4),
      alg=1, dtype=tf.float32)  # Philox
  return uniform[:, :width]


def _philox_rows(seed, stream, row_start, num_rows, counters_per_row: int):
  """key, counter and shape of Philox numbers for rows [row_start, +num_rows)
  of a virtual matrix whose rows take `counters_per_row` counter values (4
  32-bit numbers each): row r starts at counter r * counters_per_row."""
  return {
      "key": tf.reshape(tf.cast(seed, tf.uint64), [1]),
      "counter": tf.stack([
          tf.cast(row_start, tf.uint64) *
          tf.constant(counters_per_row, tf.uint64),
          tf.cast(stream, tf.uint64)]),
      "shape": tf.stack([tf.cast(num_rows, tf.int32),
                         tf.constant(4 * counters_per_row, tf.int32)])}


def keyed_uint16(seed, stream, row_start, num_rows, width) -> tf.Tensor:
  """Rows of a virtual matrix of uniform 16-bit integers, as `keyed_uniform`.

  Half the Philox work of `keyed_uniform` for the same count: every 32-bit
  word gives two numbers, its low half first (tf.bitcast's order on the
  little-endian hosts TensorFlow runs on: x86-64, ARM64). Row r starts at
  counter r * padded / 8, `padded` being `width` rounded up to a multiple of 8,
  so row r again depends only on (seed, stream, r, width).

  For noise compared with probabilities: u = x * 2^-16 (`UINT16_SCALE`) is
  uniform on a grid of 2^-16, so a Bernoulli(p) draw `u < p` has probability
  within 2^-16 of p. The RNN-RBM's CD and AIS chains draw ~10^10 numbers per
  evaluation: half the time of their noise for a bias far below AIS's error.

  Returns:
    uint16 [num_rows, width].
  """
  counters = (width + 7) // 8  # 8 halves per counter value
  words = tf.raw_ops.StatelessRandomUniformFullIntV2(
      **_philox_rows(seed, stream, row_start, num_rows, counters),
      alg=1, dtype=tf.uint32)  # Philox
  halves = tf.reshape(tf.bitcast(words, tf.uint16), [-1, 8 * counters])
  return halves[:, :width]


# keyed_uint16 * UINT16_SCALE: uniform in [0, 1) on a grid of 2^-16 (exact in
# float32).
UINT16_SCALE = 2.0**-16


def bernoulli(probs, seed, stream, row_start) -> tf.Tensor:
  """Binary sample of `probs` [rows, width] with keyed noise."""
  noise = keyed_uniform(seed, stream, row_start, tf.shape(probs)[0],
                        probs.shape[-1])
  return tf.cast(noise < probs, probs.dtype)


def bernoulli16(probs, seed, stream, row_start) -> tf.Tensor:
  """`bernoulli` with 16-bit keyed noise (`keyed_uint16`): P(1) within 2^-16
  of `probs`, for half the Philox work. Training's CD chains use it (their
  noise was a third of a CD-1 step at the original post's shape); samples
  written for users keep `bernoulli`."""
  noise = keyed_uint16(seed, stream, row_start, tf.shape(probs)[0],
                       probs.shape[-1])
  return tf.cast(tf.cast(noise, tf.float32) * UINT16_SCALE < probs,
                 probs.dtype)
