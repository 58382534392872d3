"""The Bernoulli baseline's settings (no TensorFlow).

It has none of its own: one pass over the training frames fits it exactly, and
sampling draws each unit of each frame on its own (--num_frames, --seed).
"""

import dataclasses

# One epoch fits the means exactly; more would count every frame again.
DEFAULTS = {"epochs": 1, "momentum": False, "weight_decay": 0.0}
AIS_DEFAULTS = {}  # its likelihood is exact


@dataclasses.dataclass(frozen=True)
class Training:
  """No settings of its own."""

  def check_training(self) -> None:
    pass


def shape_fields(config) -> tuple[str, ...]:
  del config
  return ()


@dataclasses.dataclass(frozen=True)
class Sampling:
  """No settings of its own."""

  def check_sampling(self) -> None:
    pass
