"""Submitting the jobs to Vertex AI and Dataflow."""

import common.quiet_fluidsynth  # noqa: F401  # pyfluidsynth must not print to stdout
