"""A --primer: a MIDI file read as the model's piano roll, for generation to continue.

Shared by the models' samplers (trainer/models/*/sampling.py): the
window RBM's and the RNN-RBM's. A primer the user gave that cannot be
used is a one-line usage error, never a traceback.
"""

import numpy as np
import tensorflow as tf

from common import cli
from preprocess import pianoroll


class PrimerError(cli.UsageError):
  """--primer cannot be used: SMPTE-timed, unreadable, or without notes."""


def load_primer(path: str, spec: pianoroll.RollSpec) -> np.ndarray:
  """[P, columns] frames of a MIDI file, encoded as the model's data.

  Raises:
    FileNotFoundError: no such file.
    PrimerError: SMPTE-timed, unreadable, or no step on the grid.
  """
  if tf.io.gfile.isdir(path):
    raise PrimerError(f"--primer={path} is a folder: pass one MIDI file.")
  try:
    with tf.io.gfile.GFile(path, "rb") as f:
      data = f.read()
  except tf.errors.NotFoundError:
    raise FileNotFoundError(f"--primer={path} does not exist.") from None
  from preprocess import steps  # pylint: disable=g-import-not-at-top  # Beam
  try:
    steps.check_time_division(data)
  except steps.SmpteTiming as e:
    raise PrimerError(f"--primer={path}: {e}") from None
  try:
    matrix = pianoroll.midi_to_matrix(pianoroll.parse_midi(data), spec)
  except Exception as e:  # pylint: disable=broad-except  # any parse failure
    reason = (str(e).splitlines() or [type(e).__name__])[0]
    raise PrimerError(
        f"--primer={path} is not a readable MIDI file: {reason}") from None
  if not len(matrix):
    raise PrimerError(f"--primer={path} has no notes: nothing to continue "
                      "(omit --primer).")
  return matrix.astype(np.float32)
