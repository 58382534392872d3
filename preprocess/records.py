"""The on-disk dataset contract between preprocessing and training.

One `tf.train.Example` per window:
  * ``window``: the window's bits, row-major [num_timesteps, n_columns],
    `np.packbits`-packed (big-endian bit order), zero-padded to whole bytes.
  * ``source``: the MIDI file's path.
  * ``offset``: the window's first grid step in that file.
  * ``transpose``: semitones the file was shifted by (0 = as written).

Beside the TFRecords, ``dataset.json`` (`DatasetSpec`) says what the bits mean.
Nothing here touches a file system: callers read and write the JSON text.
"""

import dataclasses
import json

import numpy as np

from preprocess import pianoroll

FORMAT_VERSION = 1
SPEC_FILENAME = "dataset.json"
TRAIN_PREFIX = "train"
EVAL_PREFIX = "eval"
ERRORS_PREFIX = "errors"
TFRECORD_SUFFIX = ".tfrecord"


@dataclasses.dataclass(frozen=True)
class DatasetSpec:
  """dataset.json: the layout of the windows and what the pipeline counted."""

  encoding: str
  low_note: int
  high_note: int
  steps_per_quarter: int
  num_timesteps: int
  stride: int
  # Length of one flattened window: num_timesteps * n_columns.
  n_visible: int
  # Mean of each visible unit over the training windows (the trainer sets
  # visible biases to log(p / (1 - p)) from these).
  unit_means: list
  # files_seen / converted / failed / skipped, reasons, windows per split, ...
  counts: dict
  transpose: int = 0
  eval_fraction: float = 0.1
  format_version: int = FORMAT_VERSION

  @property
  def roll_spec(self) -> pianoroll.RollSpec:
    return pianoroll.RollSpec(self.encoding, self.low_note, self.high_note,
                              self.steps_per_quarter)

  @property
  def n_columns(self) -> int:
    return self.roll_spec.n_columns

  def to_json(self) -> str:
    return json.dumps(dataclasses.asdict(self), indent=1, sort_keys=True)

  @classmethod
  def from_json(cls, text: str, source: str = "dataset.json") -> "DatasetSpec":
    """Parses dataset.json text. Raises ValueError naming `source` if invalid."""
    try:
      fields = json.loads(text)
    except json.JSONDecodeError as e:
      raise ValueError(f"{source} is not valid JSON ({e}); re-run "
                       "preprocess.main to rebuild it.") from None
    known = {f.name for f in dataclasses.fields(cls)}
    missing = sorted(n for n in known - set(fields) if n not in (
        "transpose", "eval_fraction", "format_version"))
    if missing:
      raise ValueError(f"{source} lacks {missing}; it was not written by "
                       "preprocess.main, or by an older version. Re-run it.")
    if fields.get("format_version", FORMAT_VERSION) != FORMAT_VERSION:
      raise ValueError(
          f"{source} has format_version={fields['format_version']}, this code "
          f"reads {FORMAT_VERSION}; re-run preprocess.main.")
    spec = cls(**{k: v for k, v in fields.items() if k in known})
    if spec.n_visible != spec.num_timesteps * spec.n_columns:
      raise ValueError(
          f"{source}: n_visible={spec.n_visible} but num_timesteps="
          f"{spec.num_timesteps} x n_columns={spec.n_columns} = "
          f"{spec.num_timesteps * spec.n_columns}.")
    if len(spec.unit_means) != spec.n_visible:
      raise ValueError(f"{source}: unit_means has {len(spec.unit_means)} "
                       f"entries, expected n_visible={spec.n_visible}.")
    return spec


def pack_window(window: np.ndarray) -> bytes:
  return np.packbits(window.astype(np.uint8).reshape(-1)).tobytes()


def unpack_window(data: bytes, num_timesteps: int,
                  n_columns: int) -> np.ndarray:
  bits = np.unpackbits(np.frombuffer(data, np.uint8))
  return bits[:num_timesteps * n_columns].reshape(num_timesteps, n_columns)


def make_example(window: np.ndarray, source: str, offset: int,
                 transpose: int = 0) -> bytes:
  """Serialises one window as a tf.train.Example."""
  from tensorflow.core.example import example_pb2  # pylint: disable=g-import-not-at-top
  example = example_pb2.Example()
  feature = example.features.feature
  feature["window"].bytes_list.value.append(pack_window(window))
  feature["source"].bytes_list.value.append(source.encode("utf-8"))
  feature["offset"].int64_list.value.append(int(offset))
  feature["transpose"].int64_list.value.append(int(transpose))
  return example.SerializeToString()


def parse_example(serialized: bytes) -> dict:
  """Reads an Example written by `make_example` (numpy side, for tests/tools)."""
  from tensorflow.core.example import example_pb2  # pylint: disable=g-import-not-at-top
  example = example_pb2.Example.FromString(serialized)
  feature = example.features.feature
  return {
      "window": feature["window"].bytes_list.value[0],
      "source": feature["source"].bytes_list.value[0].decode("utf-8"),
      "offset": feature["offset"].int64_list.value[0],
      "transpose": feature["transpose"].int64_list.value[0],
  }
