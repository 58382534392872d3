"""Preprocessing: a MIDI corpus to TFRecord piano-roll windows (Apache Beam)."""

import common.quiet_fluidsynth  # noqa: F401  # pyfluidsynth must not print to stdout
