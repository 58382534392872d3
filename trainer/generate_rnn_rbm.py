"""Generation from an RNN-RBM: long pieces frame by frame, in generate_lib's jobs.

trainer/generate_lib.py runs the job (blocks aligned to global indices,
manifest, progress, resume, GCS, previews) and asks `prepare` for the sampler
of the loaded model: None for a window RBM (its own Generator), an
`RNNRBMGenerator` for an RNN-RBM. Both answer `sample(blocks, attempt)` with
uint8 pieces [len(blocks) * BLOCK, steps, columns], so nothing downstream
knows which model made them.

Determinism. Sample i is row i % BLOCK of a [BLOCK, ...] chain (the shapes
decide the float rounding) and its noise is keyed by (seed, i, frame, Gibbs
step) in the model (models/rnn_rbm.py `generate`): shards, block splits and
resumes give the same bytes. Long pieces are made FRAMES_PER_CALL frames at a
time, carrying the RNN state (the same arithmetic per frame as one call, and
memory bounded). Attempt a of `--resample_empty` keys its frames from
a * ATTEMPT_FRAMES on, never reached by attempt a - 1.

This module must not write files: generate_lib does.
"""

import concurrent.futures
import dataclasses
import os

import numpy as np
import tensorflow as tf

from common import cli
from trainer import config as config_lib
from trainer import export
from trainer import primer as primer_lib

BLOCK = config_lib.GENERATION_BLOCK
# Frames per model call: bounds a block's float32 frames to 128 x 512 x V.
FRAMES_PER_CALL = 512
# Blocks sampled at once per core, each in a thread running one op at a time:
# with two, a core has a block to run while the other's thread is in Python
# (between frames and calls). Measured at the tutorial's shape, 2 cores, load
# 10-16, two runs each: 4 blocks 37-39 pieces/s at 7.5 ms CPU per piece,
# 2 blocks 30-41 at 7.7-8.0 (wall rates within the noise). Not measured idle.
BLOCKS_PER_CORE = 2
# Attempt a's frames are keyed from a * 2^32: > MAX_NUM_FRAMES, and
# (a * 2^32 + t) * 2^12 streams fit in int64 for any sane attempt count.
ATTEMPT_FRAMES = 2**32


class RNNRBMGenerateError(cli.UsageError):
  """A flag or primer an RNN-RBM (or a window RBM) cannot use; nothing written."""


def configure_threads(model_dir: str) -> bool:
  """One thread per TensorFlow op for an RNN-RBM's job; call before any op runs.

  An RNN-RBM block's ops are small (a Gibbs step: two 128 x 88 x 150 matmuls
  and two Philox draws of 11-20k numbers). Split over TensorFlow's intra-op
  pool they cost about 30% more CPU (hand-offs, threads spinning while they
  wait) and finish no sooner, since every core already runs a block of its
  own (`RNNRBMGenerator.sample`). Measured at the tutorial's shape, 2 cores:
  9.3 -> 6.6-7.2 ms of CPU per frame and block. The bytes do not depend on it
  (tests/test_generate_rnn_rbm.py compares the CLI with an in-process run).
  The setting is process-wide, so the entry point calls this
  (trainer/generate.py, benchmarks/bench_generate.py), not generate_lib.

  Returns:
    True if set; False for a window RBM (its chains run as before) or when
    TensorFlow is already running in this process (nothing changes).
  """
  return (export.model_kind(model_dir) == export.RNN_RBM and
          one_thread_per_op())


def one_thread_per_op() -> bool:
  """Sets TensorFlow's intra-op pool to one thread (see `configure_threads`);
  False when TensorFlow is already running in this process."""
  try:
    tf.config.threading.set_intra_op_parallelism_threads(1)
  except RuntimeError:  # already initialised: its pools stay as they are
    return False
  return True


def _cores() -> int:
  """Cores this process may run on (the affinity mask, not the host's)."""
  try:
    return len(os.sched_getaffinity(0))
  except AttributeError:  # not on Linux
    return os.cpu_count() or 1


def _given(config, name: str) -> bool:
  """True when the user set `name`: given as a flag (config.explicit, from
  the command line), or else, for a config built in code, not its default."""
  if config.explicit is not None:
    return name in config.explicit
  field = {f.name: f for f in dataclasses.fields(config)}[name]
  return getattr(config, name) != field.default


def _check_window_rbm(config, loaded: export.LoadedModel) -> None:
  """A window RBM: the RNN-RBM's flags name the RBM's own."""
  t = loaded.dataset.num_timesteps
  if _given(config, "num_frames") and config.num_frames:
    overlap = config.overlap or max(1, t // 3)
    windows = 1 + max(0, -(-(config.num_frames - t) // max(1, t - overlap)))
    raise RNNRBMGenerateError(
        f"--num_frames={config.num_frames} sets an RNN-RBM's length; this "
        f"model is a window RBM of {t} steps: pass --num_windows={windows} "
        f"(K windows make {t} + (K-1)x{t - overlap} steps).")
  if _given(config, "gibbs_steps_per_frame"):
    raise RNNRBMGenerateError(
        f"--gibbs_steps_per_frame={config.gibbs_steps_per_frame} is for "
        f"RNN-RBM models; this window RBM takes --gibbs_steps (per window).")


# The window RBM's levers and the value at which each does nothing. An
# RNN-RBM takes them only at that value, and records that value (not the
# window RBM's tuned defaults) in generation.json.
_WINDOW_LEVERS = {"num_windows": 1, "overlap": 0, "articulate_threshold": 0.0,
                  "play_threshold": 0.0, "candidates": 1}
# Levers with their own message below.
_OWN_MESSAGE = ("articulate_threshold", "play_threshold", "candidates")


def _check_rnn_rbm(config, loaded: export.LoadedModel) -> None:
  """An RNN-RBM: refuse the window RBM's levers, naming what to use."""
  spec = loaded.dataset.roll_spec
  if _given(config, "gibbs_steps"):
    raise RNNRBMGenerateError(
        f"--gibbs_steps={config.gibbs_steps} counts a window RBM's steps; "
        f"this model is an RNN-RBM: pass --gibbs_steps_per_frame="
        f"{config.gibbs_steps} (default 25).")
  if any(_given(config, name) and getattr(config, name) != neutral
         for name, neutral in _WINDOW_LEVERS.items()
         if name not in _OWN_MESSAGE):
    raise RNNRBMGenerateError(
        f"--num_windows/--overlap chain a window RBM's windows; an RNN-RBM "
        f"makes one piece frame by frame: pass --num_frames=N (e.g. "
        f"{128 * spec.steps_per_quarter} = 32 bars).")
  if config.init == "data" or config.data_dir:
    raise RNNRBMGenerateError(
        "--init=data/--data_dir start a window RBM's chains from training "
        "windows; an RNN-RBM's frames follow its RNN: pass --primer=FILE.mid "
        "to start from music.")
  if _given(config, "articulate_threshold") and config.articulate_threshold:
    raise RNNRBMGenerateError(
        f"--articulate_threshold={config.articulate_threshold} is for window "
        "RBMs (an RNN-RBM feeds each sampled frame to its RNN): pass 0 "
        "(--temperature works for both).")
  if ((_given(config, "candidates") and config.candidates != 1) or
      config.play_threshold):
    raise RNNRBMGenerateError(
        f"--candidates={config.candidates}/--play_threshold="
        f"{config.play_threshold} choose and decode a window RBM's windows; an "
        "RNN-RBM carries its context in its RNN: leave them out.")


def prepare(loaded: export.LoadedModel, config):
  """The sampler for `loaded`, and the config it runs with.

  For an RNN-RBM the config gets num_frames (default: 32 bars), the window
  levers at their neutral values, and temperature 1 (the model's own
  distribution) unless --temperature was given: the window RBM's tuned
  temperature does not carry over. Unless set, blocks_per_call becomes
  BLOCKS_PER_CORE blocks per core: each block of a call runs in a thread of
  its own on one core at a time (see `configure_threads`). It does not change
  the bytes.

  Returns:
    (config, None) for a window RBM (generate_lib builds its Generator);
    (config with num_frames > 0, RNNRBMGenerator) for an RNN-RBM.
  Raises:
    RNNRBMGenerateError: a flag of the other kind of model, or a bad primer.
    FileNotFoundError: --primer does not exist.
  """
  if loaded.kind != export.RNN_RBM:
    _check_window_rbm(config, loaded)
    return config, None
  _check_rnn_rbm(config, loaded)
  spq = loaded.dataset.roll_spec.steps_per_quarter
  config = dataclasses.replace(
      config, **_WINDOW_LEVERS,
      num_frames=config.num_frames or config_lib.DEFAULT_BARS * 4 * spq,
      temperature=config.temperature if _given(config, "temperature") else 1.0,
      blocks_per_call=(config.blocks_per_call
                       if _given(config, "blocks_per_call") else
                       max(config.blocks_per_call,
                           BLOCKS_PER_CORE * _cores())))
  primer = (primer_lib.load_primer(config.primer, loaded.dataset.roll_spec)
            if config.primer else None)
  return config, RNNRBMGenerator(loaded, config, primer)


class RNNRBMGenerator:
  """Samples RNN-RBM pieces block by block (see the module docstring)."""

  def __init__(self, loaded: export.LoadedModel, config, primer=None):
    self.model = loaded.rnn_rbm
    self.config = config
    # Every sample continues the same primer: one RNN pass, broadcast.
    self.u_start = self.model.initial_state(BLOCK, primer)

  def sample(self, blocks: list, attempt: int) -> np.ndarray:
    """Pieces [len(blocks) * BLOCK, num_frames, columns] (uint8).

    Blocks run in threads of their own: a frame's ops are too small for
    TensorFlow to spread one block over the cores, and TensorFlow releases
    the GIL. Each block runs the same graph on the same shapes as alone.
    (trainer/generate.py gives each op one thread: `configure_threads`.)
    """
    if len(blocks) == 1:
      return self._block(blocks[0], attempt)
    with concurrent.futures.ThreadPoolExecutor(len(blocks)) as pool:
      pieces = list(pool.map(lambda b: self._block(b, attempt), blocks))
    return np.concatenate(pieces)

  def _block(self, block: int, attempt: int) -> np.ndarray:
    config, u = self.config, self.u_start
    pieces = []
    for start in range(0, config.num_frames, FRAMES_PER_CALL):
      frames, u = self.model.generate(
          BLOCK, min(FRAMES_PER_CALL, config.num_frames - start), config.seed,
          row_start=block * BLOCK, gibbs_steps=config.gibbs_steps_per_frame,
          u_start=u, frame_start=attempt * ATTEMPT_FRAMES + start,
          temperature=config.temperature)
      pieces.append(frames.numpy().astype(np.uint8))
    return np.concatenate(pieces, axis=1)
