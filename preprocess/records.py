"""The on-disk dataset contract between preprocessing and training.

One `tf.train.Example` per window:
  * ``window``: the window's bits, row-major [num_timesteps, n_columns],
    `np.packbits`-packed (big-endian bit order), zero-padded to whole bytes.
  * ``source``: the MIDI file's path.
  * ``offset``: the window's first grid step in that file.
  * ``transpose``: semitones the file was shifted by (0 = as written).
  * ``num_steps``: only in datasets of whole pieces (num_timesteps=0 in
    dataset.json): the piece's length in steps, i.e. the rows of ``window``.

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
# Held out for model selection (early stopping, best export), so that the
# eval split stays an untouched test set.
VALID_PREFIX = "valid"
SPLITS = (TRAIN_PREFIX, EVAL_PREFIX, VALID_PREFIX)
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
  # Older dataset.json files have no valid split.
  valid_fraction: float = 0.0
  # Splits filled from --eval_input/--valid_input globs rather than by hash
  # (their *_fraction is then 0).
  explicit_splits: list = dataclasses.field(default_factory=list)
  # Older dataset.json files have no quantize: they were rounded.
  quantize: str = "round"
  # --fit_corpus: what preprocess/corpus_fit.py measured and chose; empty
  # when the layout came from the flags.
  fitted: dict = dataclasses.field(default_factory=dict)
  format_version: int = FORMAT_VERSION

  @property
  def roll_spec(self) -> pianoroll.RollSpec:
    return pianoroll.RollSpec(self.encoding, self.low_note, self.high_note,
                              self.steps_per_quarter, self.quantize)

  @property
  def n_columns(self) -> int:
    return self.roll_spec.n_columns

  def median_piece_bars(self) -> int | None:
    """The converted pieces' median length in bars of 4 quarters (the upper
    median), or None for a dataset.json written before it was counted."""
    histogram = self.counts.get("piece_bars")
    if not isinstance(histogram, dict) or not histogram:
      return None
    try:
      lengths = sorted((int(bars), int(n)) for bars, n in histogram.items())
    except (TypeError, ValueError):
      return None  # hand-edited: the samples' length falls back to its default
    half, seen = sum(n for _, n in lengths) / 2, 0
    for bars, n in lengths:
      seen += n
      if seen > half:
        return bars
    return lengths[-1][0]

  def layout(self) -> dict:
    """The fields that fix what a window's bits mean and its shape.

    A model trained on one layout can only read windows of the same layout:
    training (resume), evaluation and generation (--init=data) compare these.
    """
    return {"encoding": self.encoding, "low_note": self.low_note,
            "high_note": self.high_note,
            "steps_per_quarter": self.steps_per_quarter,
            "num_timesteps": self.num_timesteps, "n_visible": self.n_visible}

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
    if not isinstance(fields, dict):
      raise ValueError(f"{source} holds a JSON {type(fields).__name__}, not "
                       "an object; re-run preprocess.main to rebuild it.")
    known = {f.name for f in dataclasses.fields(cls)}
    missing = sorted(n for n in known - set(fields) if n not in (
        "transpose", "eval_fraction", "valid_fraction", "explicit_splits",
        "quantize", "fitted", "format_version"))
    if missing:
      raise ValueError(f"{source} lacks {missing}; it was not written by "
                       "preprocess.main, or by an older version. Re-run it.")
    if fields.get("format_version", FORMAT_VERSION) != FORMAT_VERSION:
      raise ValueError(
          f"{source} has format_version={fields['format_version']}, this code "
          f"reads {FORMAT_VERSION}; re-run preprocess.main.")
    for field in dataclasses.fields(cls):
      if field.name in fields and not _of_type(fields[field.name], field.type):
        raise ValueError(
            f"{source}: {field.name}={fields[field.name]!r} is not of type "
            f"{getattr(field.type, '__name__', field.type)}; it was edited or "
            "damaged: re-run preprocess.main to rebuild it.")
    spec = cls(**{k: v for k, v in fields.items() if k in known})
    try:
      _ = spec.roll_spec  # RollSpec checks its own fields
    except ValueError as e:
      raise ValueError(f"{source}: {e}") from None
    if spec.n_visible != spec.num_timesteps * spec.n_columns:
      raise ValueError(
          f"{source}: n_visible={spec.n_visible} but num_timesteps="
          f"{spec.num_timesteps} x n_columns={spec.n_columns} = "
          f"{spec.num_timesteps * spec.n_columns}.")
    if len(spec.unit_means) != spec.n_visible:
      raise ValueError(f"{source}: unit_means has {len(spec.unit_means)} "
                       f"entries, expected n_visible={spec.n_visible}.")
    bad = next((i for i, m in enumerate(spec.unit_means)
                if isinstance(m, bool) or not isinstance(m, (int, float))
                or not 0 <= m <= 1), None)
    if bad is not None:
      raise ValueError(f"{source}: unit_means[{bad}]={spec.unit_means[bad]!r} "
                       "is not a mean of binary units (0..1); it was edited or "
                       "damaged: re-run preprocess.main to rebuild it.")
    return spec


def _of_type(value, kind) -> bool:
  """JSON `value` fits the dataclass field type `kind` (ints are floats too;
  bools are not ints)."""
  if isinstance(value, bool) and kind is not bool:
    return False
  if kind is float:
    return isinstance(value, (int, float))
  return isinstance(value, kind) if isinstance(kind, type) else True


def pack_window(window: np.ndarray) -> bytes:
  return np.packbits(window.astype(np.uint8).reshape(-1)).tobytes()


def unpack_window(data: bytes, num_timesteps: int,
                  n_columns: int) -> np.ndarray:
  bits = np.unpackbits(np.frombuffer(data, np.uint8))
  return bits[:num_timesteps * n_columns].reshape(num_timesteps, n_columns)


def _varint(value: int) -> bytes:
  """Protobuf base-128 varint; negative int64 as 64-bit two's complement."""
  if 0 <= value < 0x80:
    return _ONE_BYTE[value]
  value &= (1 << 64) - 1
  out = bytearray()
  while value > 0x7F:
    out.append(value & 0x7F | 0x80)
    value >>= 7
  out.append(value)
  return bytes(out)


_ONE_BYTE = [bytes((i,)) for i in range(0x80)]


def _len_field(number: int, payload: bytes) -> bytes:
  """A length-delimited protobuf field (wire type 2); number < 16."""
  return _ONE_BYTE[number << 3 | 2] + _varint(len(payload)) + payload


# Features.feature is map<string, Feature>: repeated entries {1: key, 2: value}.
_KEYS = {k: _len_field(1, k.encode()) for k in
         ("window", "source", "offset", "transpose", "num_steps")}


def _entry(key: str, feature: bytes) -> bytes:
  return _len_field(1, _KEYS[key] + _len_field(2, feature))


def make_example(window: np.ndarray, source: str, offset: int,
                 transpose: int = 0, num_steps: int | None = None) -> bytes:
  """Serialises one window as a tf.train.Example.

  Written as protobuf wire format directly (Example{1: Features{1: entries}},
  Feature{1: BytesList{1: bytes}, 3: Int64List{1: packed varints}}) rather than
  through TensorFlow's example_pb2: importing TensorFlow costs every Beam worker
  process ~4 s and ~500 MB for this one message. example_pb2 and
  tf.io.parse_example read it back identically (tests/test_preprocess_steps.py).
  `num_steps` (whole pieces only) is left out of fixed windows so that their
  bytes do not change.
  """
  window_feature = _len_field(1, _len_field(1, pack_window(window)))
  source_feature = _len_field(1, _len_field(1, source.encode("utf-8")))
  offset_feature = _len_field(3, _len_field(1, _varint(int(offset))))
  transpose_feature = _len_field(3, _len_field(1, _varint(int(transpose))))
  entries = (_entry("window", window_feature) +
             _entry("source", source_feature) +
             _entry("offset", offset_feature) +
             _entry("transpose", transpose_feature))
  if num_steps is not None:
    entries += _entry("num_steps", _len_field(3, _len_field(1, _varint(
        int(num_steps)))))
  return _len_field(1, entries)


def parse_example(serialized: bytes) -> dict:
  """Reads an Example written by `make_example` (numpy side, for tests/tools)."""
  from tensorflow.core.example import example_pb2  # pylint: disable=g-import-not-at-top
  example = example_pb2.Example.FromString(serialized)
  feature = example.features.feature
  parsed = {
      "window": feature["window"].bytes_list.value[0],
      "source": feature["source"].bytes_list.value[0].decode("utf-8"),
      "offset": feature["offset"].int64_list.value[0],
      "transpose": feature["transpose"].int64_list.value[0],
  }
  if "num_steps" in feature:
    parsed["num_steps"] = feature["num_steps"].int64_list.value[0]
  return parsed
