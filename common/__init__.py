"""Helpers every job shares (no TensorFlow, no Beam)."""

from common import quiet_fluidsynth  # noqa: F401  # pyfluidsynth must not print to stdout
