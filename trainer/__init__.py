"""Training, evaluation, generation and comparison of the models (TensorFlow)."""

import common.quiet_fluidsynth  # noqa: F401  # pyfluidsynth must not print to stdout
