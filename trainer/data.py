"""Reads what preprocessing wrote: dataset.json and the TFRecord windows.

Windows arrive bit-packed (see preprocess/records.py) and are unpacked here with
tf.bitwise, in the input pipeline, so the host sends 8x fewer bytes to devices.
Paths go through tf.io.gfile: local folders here, gs:// natively in the cloud.
"""

import os

import tensorflow as tf

from common import cli
from preprocess import records

SPLITS = (records.TRAIN_PREFIX, records.EVAL_PREFIX)


def load_dataset_spec(data_dir: str) -> records.DatasetSpec:
  """Loads DATA_DIR/dataset.json, with a clear error if it is missing or bad."""
  path = os.path.join(data_dir, records.SPEC_FILENAME)
  if not tf.io.gfile.exists(path):
    raise FileNotFoundError(
        f"{path} does not exist: --data_dir must be the --output_dir of "
        "preprocess.main (it writes dataset.json and *.tfrecord there).")
  with tf.io.gfile.GFile(path) as f:
    spec = records.DatasetSpec.from_json(f.read(), source=path)
  check_record_sizes(data_dir, spec)
  return spec


class RecordSizeError(cli.UsageError):
  """The shards' windows are not the size dataset.json says."""


def _size_error(path, got: int, spec, expected: int) -> RecordSizeError:
  return RecordSizeError(
      f"{path}: its windows are {got} bytes but dataset.json "
      f"({spec.encoding}, n_visible={spec.n_visible}) means {expected}: the "
      "shards and dataset.json come from different preprocess runs; rerun "
      "preprocess.main into an empty --output_dir.")


def check_record_sizes(data_dir: str, spec: records.DatasetSpec) -> None:
  """The first window of every shard must have dataset.json's size.

  decode_windows would otherwise cut (or zero-pad) every window to
  n_visible bits and train on garbage with exit 0, e.g. a roll dataset.json
  next to onoff shards. One record per shard keeps the check cheap; every
  record is checked again as it is decoded (`decode_windows`).

  Raises:
    RecordSizeError: naming the shard and both sizes.
  """
  if not spec.n_visible:
    return  # whole pieces: their length is per record
  expected = -(-spec.n_visible // 8)
  for split in SPLITS:
    for path in split_files(data_dir, split):
      record = _first_record(path)
      if record is None:
        continue
      example = tf.train.Example.FromString(record)
      got = len(example.features.feature["window"].bytes_list.value[0])
      if got != expected:
        raise _size_error(path, got, spec, expected)


def _first_record(path: str) -> bytes | None:
  """A TFRecord file's first record (length, crc, data), read with gfile.

  Not with tf.data: this runs before the trainer builds its strategy, and
  MultiWorkerMirroredStrategy must come before any TensorFlow op runs.
  """
  with tf.io.gfile.GFile(path, "rb") as f:
    header = f.read(12)  # uint64 length, uint32 masked crc of the length
    if len(header) < 12:
      return None
    return f.read(int.from_bytes(header[:8], "little"))


def split_files(data_dir: str, split: str) -> list[str]:
  """The TFRecord shards of `split` ("train" or "eval"), sorted."""
  if split not in SPLITS:
    raise ValueError(f"split={split!r}; use one of {SPLITS}.")
  pattern = os.path.join(data_dir, f"{split}-*{records.TFRECORD_SUFFIX}")
  return sorted(tf.io.gfile.glob(pattern))


def num_windows(spec: records.DatasetSpec, split: str) -> int:
  """Windows in `split` as counted by the pipeline (dataset.json)."""
  return int(spec.counts.get("windows", {}).get(split, 0))


def decode_windows(serialized, n_visible: int) -> tf.Tensor:
  """Serialized Examples [B] -> float32 windows [B, n_visible] of 0/1."""
  parsed = tf.io.parse_example(
      serialized, {"window": tf.io.FixedLenFeature([], tf.string)})
  packed = tf.io.decode_raw(parsed["window"], tf.uint8)  # [B, ceil(V / 8)]
  # Every record, not only each shard's first (check_record_sizes): a window
  # of another size would otherwise be cut to n_visible bits silently.
  tf.debugging.assert_equal(
      tf.shape(packed)[1], -(-n_visible // 8),
      message=f"a window's size differs from dataset.json's n_visible="
      f"{n_visible}: rerun preprocess.main into an empty --output_dir")
  shifts = tf.constant([7, 6, 5, 4, 3, 2, 1, 0], tf.uint8)  # packbits is big-endian
  bits = tf.bitwise.bitwise_and(
      tf.bitwise.right_shift(packed[:, :, None], shifts), 1)
  bits = tf.reshape(bits, [tf.shape(packed)[0], -1])[:, :n_visible]
  return tf.cast(bits, tf.float32)


def make_dataset(data_dir: str, split: str, batch_size: int,
                 spec: records.DatasetSpec | None = None, *,
                 shuffle: bool = False, repeat: bool = False, seed: int = 0,
                 drop_remainder: bool = False,
                 shuffle_buffer: int = 100_000) -> tf.data.Dataset:
  """Batches of windows [batch_size, n_visible] from `split`.

  Raises:
    ValueError: the split has no windows (e.g. a corpus with no usable file,
      or --eval_fraction=0 and split="eval").
  """
  spec = spec or load_dataset_spec(data_dir)
  files = split_files(data_dir, split)
  if not files or num_windows(spec, split) == 0:
    raise ValueError(
        f"{data_dir} has no {split} windows (dataset.json counts "
        f"{num_windows(spec, split)} in {len(files)} shard(s)); check the "
        "preprocessing errors-*.jsonl, or --eval_fraction if this is eval.")
  ds = tf.data.Dataset.from_tensor_slices(files)
  if shuffle:
    ds = ds.shuffle(len(files), seed=seed, reshuffle_each_iteration=True)
  # Deterministic even when shuffled: a seed gives the same order every run.
  ds = ds.interleave(tf.data.TFRecordDataset, cycle_length=min(8, len(files)),
                     num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
  if shuffle:
    ds = ds.shuffle(shuffle_buffer, seed=seed, reshuffle_each_iteration=True)
  if repeat:
    ds = ds.repeat()
  ds = ds.batch(batch_size, drop_remainder=drop_remainder)
  ds = ds.map(lambda s: decode_windows(s, spec.n_visible),
              num_parallel_calls=tf.data.AUTOTUNE)
  return ds.prefetch(tf.data.AUTOTUNE)
