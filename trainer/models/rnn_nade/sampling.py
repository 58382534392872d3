"""The RNN-NADE's sampler: the temporal models' (recurrent/sampling.py:
blocks, threads, long pieces in calls of FRAMES_PER_CALL frames, attempts,
the window RBM's levers refused) with exact frames instead of Gibbs chains.

This module must not write files: the generation job does.
"""

from trainer.models import base
from trainer.models.recurrent import sampling as frame_sampling

TITLE = "RNN-NADE"


def prepare(loaded: base.LoadedModel, config):
  """The config the sampler runs with, and the sampler (see
  recurrent/sampling.prepare); each frame is drawn unit by unit, so there
  is no chain length to set.

  Raises:
    GenerateError: a flag of another model, or a bad primer.
  """
  for flag in ("gibbs_steps_per_frame", "gibbs_steps"):
    if config.given(flag):
      raise base.GenerateError(
          f"--{flag}={getattr(config, flag)} sets an RBM's Gibbs chain; this "
          f"model is an {TITLE}, which draws each frame exactly: leave it out.")
  return frame_sampling.prepare(loaded, config, TITLE, lambda _: {})
