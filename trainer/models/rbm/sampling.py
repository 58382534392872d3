"""The window RBM's sampler: pieces as chained windows of Gibbs samples.

Sample i is row i % BLOCK of a [BLOCK, V] chain (the block's shape decides the
float rounding) and its noise is keyed by (seed, i, window, candidate) through
trainer/random_streams.py, so shards, block splits and resumes give the same
bytes. Each window after the first is clamped to the previous one's end and
chosen among --candidates continuations. The generation job
(trainer/generation) calls `sample(blocks, attempt)` and writes the pieces.
This module must not write files.
"""

import dataclasses
import hashlib

import numpy as np
import tensorflow as tf

from preprocess import pianoroll
from trainer import config as config_lib
from trainer import data as data_lib
from trainer import random_streams
from trainer import primer as primer_lib
from trainer.models import base
from trainer.models.rbm import maths as model_lib

BLOCK = config_lib.GENERATION_BLOCK
GenerateError = base.GenerateError


@tf.function
def _gibbs_blocks(weights, visible_bias, hidden_bias, v, clamp_mask,
                  clamp_values, seed, stream_bases, row_starts, steps,
                  init_streams, random_init, clamped, temperature,
                  threshold_mask, threshold, thresholded):
  """Gibbs chains for [blocks, BLOCK, V] states, block by block.

  Each block is its own [BLOCK, V] chain, so a sample's arithmetic never
  depends on how many blocks a call holds (two blocks run at once, on their
  own). Block b draws its noise from stream_bases[b] (and init_streams[b])
  for rows from row_starts[b]: the candidates of one block of samples are
  blocks with the same rows and other streams. With random_init the chains
  start from a sample of the visible biases, else from v. `clamped` (a Python
  bool) passes clamp_mask to the chain; without clamping it skips the pass.
  The chain runs at `temperature`; with `thresholded` (a Python bool) its
  last step sets the units of threshold_mask to p(v | h) >= threshold. The
  parameters are arguments, not captured variables, so one trace serves every
  model loaded in this process (models/rbm.py, RBMTensors).
  """
  rbm = model_lib.RBMTensors(weights, visible_bias, hidden_bias)

  def one_block(args):
    state, values, row_start, stream_base, init_stream = args
    if random_init:
      state = rbm.visible_bias_samples(seed, init_stream, row_start, BLOCK)
    return rbm.gibbs_chain(state, steps, seed, stream_base, row_start,
                           clamp_mask if clamped else None,
                           values if clamped else None, temperature,
                           threshold_mask if thresholded else None, threshold)
  return tf.map_fn(one_block, (v, clamp_values, row_starts, stream_bases,
                               init_streams),
                   fn_output_signature=v.dtype, parallel_iterations=2)


@tf.function
def _choose(weights, visible_bias, hidden_bias, candidates, projection,
            profile, by_free_energy):
  """Best of candidates [K, rows, V] per row: (chosen [rows, V], index).

  by_free_energy (a Python bool): the model's lowest F(v); else the best
  agreement of the projected profile with `profile` (models/rbm.py).
  """
  if by_free_energy:
    rbm = model_lib.RBMTensors(weights, visible_bias, hidden_bias)
    k, rows = tf.shape(candidates)[0], tf.shape(candidates)[1]
    # Block by block, as the chains: a matmul's rounding depends on its
    # shape, and a sample's choice must not depend on the call's blocks.
    blocks = tf.reshape(candidates, [-1, BLOCK, candidates.shape[-1]])
    scores = -tf.reshape(tf.map_fn(rbm.free_energy, blocks), [k, rows])
  else:
    # Exact whatever the shape: binary units times 0/1 weights sum to
    # integers; the rest is per row.
    scores = tf.map_fn(
        lambda c: model_lib.profile_agreement(c, projection, profile),
        candidates)
  return model_lib.best_of(candidates, scores)


def pitch_class_projection(spec: pianoroll.RollSpec, num_timesteps: int,
                           skip_steps: int) -> np.ndarray:
  """[V, 12]: each play unit of steps skip_steps.. to its pitch class.

  Sounding steps (play units), not onsets: a duration-weighted profile, as
  key profiles are, and the same for onoff and roll layouts.
  """
  columns = spec.n_columns
  projection = np.zeros((num_timesteps, columns, 12), np.float32)
  pitches = np.arange(spec.n_pitches) + spec.low_note
  projection[skip_steps:, np.arange(spec.n_pitches), pitches % 12] = 1.0
  return projection.reshape(num_timesteps * columns, 12)


class Generator:
  """Samples pieces block by block (see the module docstring)."""

  def __init__(self, loaded: base.LoadedModel, config: config_lib.GenerateConfig,
               primer: np.ndarray | None, data_windows: np.ndarray | None):
    self.rbm = loaded.model
    self.spec = loaded.dataset.roll_spec
    self.num_timesteps = loaded.dataset.num_timesteps
    self.columns = self.spec.n_columns
    self.config = config
    self.overlap = config.overlap or max(1, self.num_timesteps // 3)
    if self.overlap >= self.num_timesteps and (config.num_windows > 1 or
                                               primer is not None):
      raise GenerateError(f"--overlap={self.overlap} must be shorter than the "
                          f"model's window of {self.num_timesteps} steps.")
    self.primer = primer
    self.data_windows = data_windows
    # A roll model has no articulate unit: the default threshold does not
    # apply to it, and one given on the command line is a mistake.
    if (config.given("articulate_threshold") and config.articulate_threshold
        and self.spec.encoding != "onoff"):
      raise GenerateError(
          f"--articulate_threshold={config.articulate_threshold} needs an "
          f"onoff model; this one is {self.spec.encoding!r}: pass 0.")
    # The last Gibbs step's thresholds: articulate units (the second half of
    # every step's row) at --articulate_threshold, play units at
    # --play_threshold; 0 leaves a unit sampled.
    articulate = np.tile(np.arange(self.columns) >= self.spec.n_pitches,
                         self.num_timesteps)
    self.thresholds = np.where(articulate, config.articulate_threshold,
                               config.play_threshold).astype(np.float32)
    self.threshold_mask = self.thresholds > 0
    # Candidates are scored on the steps they add, not the clamped overlap
    # all of them share; the piece's profile grows by the kept window's.
    self.projection = pitch_class_projection(self.spec, self.num_timesteps,
                                             self.overlap)

  def _init(self, rows, window, attempt):
    """[blocks * BLOCK, V] starting states, keyed by sample index.

    Zeros for init="random" too: the sampler draws those in the graph.
    """
    if self.config.init == "data":
      picks = [int.from_bytes(hashlib.sha256(
          f"{self.config.seed}/{i}/{window}/{attempt}".encode()).digest()[:8],
                              "big") % len(self.data_windows) for i in rows]
      return self.data_windows[picks]
    return np.zeros((len(rows), self.rbm.n_visible), np.float32)

  def _chains(self, blocks, v, mask, values, chain, num_candidates):
    """[num_candidates, rows, V] windows: candidate k of every row draws from
    random_streams.generation_candidate(chain, k)."""
    n_visible = self.rbm.n_visible
    chains = [random_streams.generation_candidate(chain, k)
              for k in range(num_candidates)]
    tile = lambda x: np.tile(x.reshape(len(blocks), BLOCK, n_visible),
                             (num_candidates, 1, 1))
    out = _gibbs_blocks(
        self.rbm.weights, self.rbm.visible_bias, self.rbm.hidden_bias,
        tf.constant(tile(v), tf.float32), tf.constant(mask),
        tf.constant(tile(values)), tf.constant(self.config.seed, tf.int64),
        tf.constant([random_streams.generation_base(c) for c in chains
                     for _ in blocks], tf.int64),
        tf.constant([b * BLOCK for _ in chains for b in blocks], tf.int64),
        tf.constant(self.config.gibbs_steps),
        tf.constant([random_streams.generation_init(c) for c in chains
                     for _ in blocks], tf.int64),
        self.config.init == "random", bool(mask.any()),
        tf.constant(self.config.temperature, tf.float32),
        tf.constant(self.threshold_mask), tf.constant(self.thresholds),
        bool(self.threshold_mask.any()))
    return tf.reshape(out, [num_candidates, len(blocks) * BLOCK, n_visible])

  def _profile(self, windows: np.ndarray, skip: int) -> np.ndarray:
    """[rows, 12] pitch-class counts of windows [rows, steps, columns] from
    step `skip` on, by the projection the scores use."""
    projection = pitch_class_projection(self.spec, windows.shape[1], skip)
    return windows.reshape(len(windows), -1).astype(np.float32) @ projection

  def sample(self, blocks: list, attempt: int) -> np.ndarray:
    """Pieces [len(blocks) * BLOCK, steps, columns] (uint8) for `blocks`.

    Each window after the first (or every one after a primer) is the best
    of --candidates continuations: the piece's tonal context is its
    pitch-class profile so far, which the 15-step window cannot see.
    """
    rows = np.concatenate([np.arange(b * BLOCK, (b + 1) * BLOCK) for b in blocks])
    n_visible, t, c = self.rbm.n_visible, self.num_timesteps, self.columns
    clamp_units = self.overlap * c
    pieces = []
    context = None
    profile = np.zeros((len(rows), 12), np.float32)
    if self.primer is not None:
      context = np.broadcast_to(self.primer[-self.overlap:].reshape(-1),
                                (len(rows), clamp_units))
      profile += self._profile(self.primer[None], 0)
    for window in range(self.config.num_windows):
      mask = np.zeros(n_visible, bool)
      values = np.zeros((len(rows), n_visible), np.float32)
      if context is not None:
        mask[:clamp_units] = True
        values[:, :clamp_units] = context
      # Nothing to agree with before the first window: one candidate.
      k = self.config.candidates if context is not None else 1
      candidates = self._chains(blocks, self._init(rows, window, attempt),
                                mask, values,
                                attempt * self.config.num_windows + window, k)
      if k > 1:
        chosen, _ = _choose(
            self.rbm.weights, self.rbm.visible_bias, self.rbm.hidden_bias,
            candidates, tf.constant(self.projection), tf.constant(profile),
            self.config.candidate_score == "free_energy")
      else:
        chosen = candidates[0]
      win = chosen.numpy().reshape(len(rows), t, c).astype(np.uint8)
      # Later windows repeat the clamped overlap: keep only what is new.
      pieces.append(win[:, self.overlap:] if window > 0 else win)
      # The profile counts each step once (a primer's tail is in it already).
      profile += self._profile(win, self.overlap if context is not None else 0)
      context = win[:, -self.overlap:].reshape(len(rows), -1)
    return np.concatenate(pieces, axis=1)


def _load_primer(path: str, spec, overlap_needed: int) -> np.ndarray:
  matrix = primer_lib.load_primer(path, spec)
  if len(matrix) < overlap_needed:
    raise GenerateError(
        f"--primer={path} has {len(matrix)} steps in the model's range; at "
        f"least --overlap={overlap_needed} are needed.")
  return matrix


def _load_data_windows(data_dir: str, dataset, limit: int = 20000) -> np.ndarray:
  spec = data_lib.load_dataset_spec(data_dir)
  data_layout, model_layout = spec.layout(), dataset.layout()
  for field, value in model_layout.items():
    if data_layout[field] != value:
      raise GenerateError(f"--data_dir={data_dir} has {field}="
                          f"{data_layout[field]} but the model was trained on "
                          f"{field}={value}.")
  ds = data_lib.make_dataset(data_dir, "train", 1000, spec).unbatch().take(limit)
  return np.stack([w.numpy() for w in ds])


def check_flags(config, loaded: base.LoadedModel) -> None:
  """Frame models' flags name the window RBM's own."""
  t = loaded.dataset.num_timesteps
  if config.given("num_frames") and config.num_frames:
    overlap = config.overlap or max(1, t // 3)
    windows = 1 + max(0, -(-(config.num_frames - t) // max(1, t - overlap)))
    raise GenerateError(
        f"--num_frames={config.num_frames} sets an RNN-RBM's length; this "
        f"model is a window RBM of {t} steps: pass --num_windows={windows} "
        f"(K windows make {t} + (K-1)x{t - overlap} steps).")
  if config.given("gibbs_steps_per_frame"):
    raise GenerateError(
        f"--gibbs_steps_per_frame={config.gibbs_steps_per_frame} is for "
        f"RNN-RBM models; this window RBM takes --gibbs_steps (per window).")


# Windows per sample for a dataset.json written before piece lengths were
# counted: 13 windows of 15 steps with a 5-step overlap reach 8.4 bars.
FALLBACK_NUM_WINDOWS = 13


def with_length(config, loaded: base.LoadedModel):
  """`config` with --num_windows=0 resolved: enough windows to reach the
  corpus's median piece (base.default_steps), within what a MIDI file holds."""
  if config.num_windows:
    return config
  spec = loaded.dataset
  if spec.median_piece_bars() is None:
    return dataclasses.replace(config, num_windows=FALLBACK_NUM_WINDOWS)
  t = spec.num_timesteps
  stride = max(1, t - (config.overlap or max(1, t // 3)))
  steps = base.default_steps(spec, config_lib.MIN_BARS,
                             config_lib.DEFAULT_BARS)
  most = base.max_piece_steps(spec.roll_spec)
  return dataclasses.replace(config, num_windows=1 + max(0, min(
      -(-(steps - t) // stride), (most - t) // stride)))


def make_generator(loaded: base.LoadedModel,
                   config: config_lib.GenerateConfig) -> "Generator":
  """The Generator with its primer and --init=data windows loaded.

  Raises:
    GenerateError: pieces longer than a MIDI file can hold, or a primer or
      dataset the model cannot use.
  """
  t = loaded.dataset.num_timesteps
  overlap = config.overlap or max(1, t // 3)
  steps = t + (config.num_windows - 1) * max(1, t - overlap)
  most = base.max_piece_steps(loaded.dataset.roll_spec)
  if steps > most:
    raise GenerateError(
        f"--num_windows={config.num_windows} makes pieces of {steps} steps; a "
        f"MIDI file can hold {most} (readers refuse longer ones as corrupt): "
        f"use --num_windows <= {1 + (most - t) // max(1, t - overlap)}.")
  primer = (_load_primer(config.primer, loaded.dataset.roll_spec, overlap)
            if config.primer else None)
  data_windows = (_load_data_windows(config.data_dir, loaded.dataset)
                  if config.init == "data" else None)
  return Generator(loaded, config, primer, data_windows)
