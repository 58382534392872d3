"""The sampler the temporal models share: long pieces frame by frame.

The generation job (trainer/generation: blocks aligned to global indices,
manifest, progress, resume, GCS, previews) asks the model for its sampler
(its model.py); `FrameGenerator.sample(blocks, attempt)` answers with uint8
pieces [len(blocks) * BLOCK, frames, columns], calling the model's
`generate` (the RNN-RBM's Gibbs chains, the RNN-NADE's exact frames).

Determinism. Sample i is row i % BLOCK of a [BLOCK, ...] chain (the shapes
decide the float rounding) and its noise is keyed by (seed, i, frame) in the
model (its maths.py `generate`): shards, block splits and resumes give the
same bytes. Long pieces are made FRAMES_PER_CALL frames at a time, carrying
the RNN state (the same arithmetic per frame as one call, and memory
bounded). Attempt a of `--resample_empty` keys its frames from
a * ATTEMPT_FRAMES on, never reached by attempt a - 1.

This module must not write files: the generation job does.
"""

import concurrent.futures
import dataclasses
import os

import numpy as np
import tensorflow as tf

from trainer import config as config_lib
from trainer import primer as primer_lib
from trainer.models import base

BLOCK = config_lib.GENERATION_BLOCK
# Frames per model call: bounds a block's float32 frames to 128 x 512 x V.
FRAMES_PER_CALL = 512
# Blocks sampled at once per core, each in a thread running one op at a time:
# with two, a core has a block to run while the other's thread is in Python
# (between frames and calls); 4 were no faster on 2 cores.
BLOCKS_PER_CORE = 2
# Attempt a's frames are keyed from a * 2^32: > MAX_NUM_FRAMES, and
# (a * 2^32 + t) * 2^12 streams fit in int64 for any sane attempt count.
ATTEMPT_FRAMES = 2**32
GenerateError = base.GenerateError


def one_thread_per_op() -> bool:
  """One thread per TensorFlow op for a temporal model's job; call before any
  op runs.

  An RNN-RBM block's ops are small (a Gibbs step: two 128 x 88 x 150 matmuls
  and two Philox draws of 11-20k numbers). Split over TensorFlow's intra-op
  pool they cost about 30% more CPU (hand-offs, threads spinning while they
  wait) and finish no sooner, since every core already runs a block of its
  own (`FrameGenerator.sample`). The bytes do not depend on it
  (tests/test_generate_rnn_rbm.py compares the CLI with an in-process run).
  The setting is process-wide, so the entry points call it (through the
  model's configure_generation), not the generation job.

  Returns:
    False when TensorFlow is already running in this process (nothing
    changes), else True.
  """
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


# The window RBM's levers and the value at which each does nothing. A
# temporal model takes them only at that value, and records that value (not
# the window RBM's tuned defaults) in generation.json.
WINDOW_LEVERS = {"num_windows": 1, "overlap": 0, "articulate_threshold": 0.0,
                  "play_threshold": 0.0, "candidates": 1}
# Levers with their own message below.
_OWN_MESSAGE = ("articulate_threshold", "play_threshold", "candidates")


def check_flags(config, loaded: base.LoadedModel, title: str) -> None:
  """Refuses the window RBM's levers, naming what to use (`title`: the
  model's name in the messages; the model refuses --gibbs_steps itself
  first, naming its own setting or none)."""
  spec = loaded.dataset.roll_spec
  if any(config.given(name) and getattr(config, name) != neutral
         for name, neutral in WINDOW_LEVERS.items()
         if name not in _OWN_MESSAGE):
    raise GenerateError(
        f"--num_windows/--overlap chain a window RBM's windows; an {title} "
        f"makes one piece frame by frame: pass --num_frames=N (e.g. "
        f"{128 * spec.steps_per_quarter} = 32 bars).")
  if config.init == "data" or config.data_dir:
    raise GenerateError(
        "--init=data/--data_dir start a window RBM's chains from training "
        f"windows; an {title}'s frames follow its RNN: pass --primer=FILE.mid "
        "to start from music.")
  if config.given("articulate_threshold") and config.articulate_threshold:
    raise GenerateError(
        f"--articulate_threshold={config.articulate_threshold} is for window "
        f"RBMs (an {title} feeds each sampled frame to its RNN): pass 0 "
        "(--temperature works for both).")
  if ((config.given("candidates") and config.candidates != 1) or
      config.play_threshold):
    raise GenerateError(
        f"--candidates={config.candidates}/--play_threshold="
        f"{config.play_threshold} choose and decode a window RBM's windows; an "
        f"{title} carries its context in its RNN: leave them out.")


def prepare(loaded: base.LoadedModel, config, title: str, model_kwargs):
  """The config the sampler runs with, and the sampler of a temporal model
  (`title`: its name in the messages; `model_kwargs`: config -> its
  generate's own keyword arguments).

  The config gets num_frames (default: 32 bars), the window levers at their
  neutral values, and temperature 1 (the model's own distribution) unless
  --temperature was given: the window RBM's tuned temperature does not carry
  over. Unless set, blocks_per_call becomes BLOCKS_PER_CORE blocks per core:
  each block of a call runs in a thread of its own on one core at a time
  (see `one_thread_per_op`). It does not change the bytes.

  Raises:
    GenerateError: a flag of a window RBM, or a bad primer.
    FileNotFoundError: --primer does not exist.
  """
  check_flags(config, loaded, title)
  config = dataclasses.replace(
      config, **WINDOW_LEVERS,
      num_frames=base.frame_model_length(config, loaded.dataset,
                                         config_lib.MIN_BARS,
                                         config_lib.DEFAULT_BARS,
                                         config_lib.MAX_NUM_FRAMES),
      temperature=config.temperature if config.given("temperature") else 1.0,
      blocks_per_call=(config.blocks_per_call
                       if config.given("blocks_per_call") else
                       max(config.blocks_per_call,
                           BLOCKS_PER_CORE * _cores())))
  primer = (primer_lib.load_primer(config.primer, loaded.dataset.roll_spec)
            if config.primer else None)
  return config, FrameGenerator(loaded, config, primer, model_kwargs(config))


class FrameGenerator:
  """Samples pieces of a recurrent frame model block by block (see the
  module docstring); model_kwargs go to its generate."""

  def __init__(self, loaded: base.LoadedModel, config, primer=None,
               model_kwargs=None):
    self.model = loaded.model
    self.config = config
    self.model_kwargs = model_kwargs or {}
    # Every sample continues the same primer: one RNN pass, broadcast.
    self.u_start = self.model.initial_state(BLOCK, primer)

  def sample(self, blocks: list, attempt: int) -> np.ndarray:
    """Pieces [len(blocks) * BLOCK, num_frames, columns] (uint8).

    Blocks run in threads of their own: a frame's ops are too small for
    TensorFlow to spread one block over the cores, and TensorFlow releases
    the GIL. Each block runs the same graph on the same shapes as alone.
    (the entry point gives each op one thread: `one_thread_per_op`.)
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
          row_start=block * BLOCK, u_start=u,
          frame_start=attempt * ATTEMPT_FRAMES + start,
          temperature=config.temperature, **self.model_kwargs)
      pieces.append(frames.numpy().astype(np.uint8))
    return np.concatenate(pieces, axis=1)
