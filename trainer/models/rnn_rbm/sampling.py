"""The RNN-RBM's sampler: G Gibbs steps in each frame's RBM (maths.py
`generate`), frame by frame in the sampler the temporal models share
(trainer/models/recurrent/sampling.py: blocks, threads, long pieces,
attempts, the window RBM's levers refused).

This module must not write files: the generation job does.
"""

from trainer.models import base
from trainer.models.recurrent import sampling as frame_sampling

TITLE = "RNN-RBM"


def prepare(loaded: base.LoadedModel, config):
  """The config the sampler runs with, and the sampler (see
  recurrent/sampling.prepare); each frame runs --gibbs_steps_per_frame
  Gibbs steps.

  Raises:
    GenerateError: a flag of a window RBM, or a bad primer.
    FileNotFoundError: --primer does not exist.
  """
  if config.given("gibbs_steps"):
    raise base.GenerateError(
        f"--gibbs_steps={config.gibbs_steps} counts a window RBM's steps; "
        f"this model is an {TITLE}: pass --gibbs_steps_per_frame="
        f"{config.gibbs_steps} (default 25).")
  return frame_sampling.prepare(
      loaded, config, TITLE,
      lambda c: {"gibbs_steps": c.gibbs_steps_per_frame})
