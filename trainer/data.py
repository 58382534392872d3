"""Reads what preprocessing wrote: dataset.json and the TFRecord windows.

Windows arrive bit-packed (see preprocess/records.py) and are unpacked here with
tf.bitwise, in the input pipeline, so the host sends 8x fewer bytes to devices.
Paths go through tf.io.gfile: local folders here, gs:// natively in the cloud.
"""

import os

import numpy as np
import tensorflow as tf

from common import cli
from preprocess import records

SPLITS = records.SPLITS  # train, eval (the test set), valid (model selection)


def load_dataset_spec(data_dir: str) -> records.DatasetSpec:
  """Loads DATA_DIR/dataset.json, with a clear error if it is missing or bad."""
  path = os.path.join(data_dir, records.SPEC_FILENAME)
  if not tf.io.gfile.exists(path):
    raise FileNotFoundError(
        f"{path} does not exist: --data_dir must be the --output_dir of "
        "preprocess.main (it writes dataset.json and *.tfrecord there).")
  with tf.io.gfile.GFile(path) as f:
    try:
      spec = records.DatasetSpec.from_json(f.read(), source=path)
    except ValueError as e:
      raise DatasetError(str(e)) from None
  check_record_sizes(data_dir, spec)
  return spec


class DatasetError(cli.UsageError):
  """dataset.json is not one preprocess.main wrote (damaged or edited)."""


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
  """The TFRecord shards of `split` (one of SPLITS), sorted."""
  if split not in SPLITS:
    raise ValueError(f"split={split!r}; use one of {SPLITS}.")
  pattern = os.path.join(data_dir, f"{split}-*{records.TFRECORD_SUFFIX}")
  return sorted(tf.io.gfile.glob(pattern))


def num_windows(spec: records.DatasetSpec, split: str) -> int:
  """Windows in `split` as counted by the pipeline (dataset.json).

  0 for a split an older dataset.json does not count (valid).
  """
  return int(spec.counts.get("windows", {}).get(split, 0))


def validation_split(spec: records.DatasetSpec) -> str | None:
  """The split model selection reads: valid if the dataset has one, else
  eval (then the reported eval figure is optimistic), else None."""
  for split in (records.VALID_PREFIX, records.EVAL_PREFIX):
    if num_windows(spec, split):
      return split
  return None


class MissingSplitError(cli.UsageError):
  """The dataset holds no windows in the split asked for."""


_HOW_TO_FILL = {
    records.EVAL_PREFIX: "preprocess with --eval_fraction > 0 or --eval_input",
    records.VALID_PREFIX: "preprocess with --valid_fraction > 0 or "
                          "--valid_input",
    records.TRAIN_PREFIX: "check the preprocessing errors-*.jsonl",
}


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


def _records(files: list, shuffle: bool, seed: int, shuffle_buffer: int,
             repeat: bool) -> tf.data.Dataset:
  """The serialized records of `files`, shuffled by file and by record.

  Deterministic even when shuffled: a seed gives the same order every run.
  """
  ds = tf.data.Dataset.from_tensor_slices(files)
  if shuffle:
    ds = ds.shuffle(len(files), seed=seed, reshuffle_each_iteration=True)
  ds = ds.interleave(tf.data.TFRecordDataset, cycle_length=min(8, len(files)),
                     num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
  if shuffle:
    ds = ds.shuffle(shuffle_buffer, seed=seed, reshuffle_each_iteration=True)
  return ds.repeat() if repeat else ds


def _nonempty_split(data_dir: str, split: str, spec, what: str) -> list:
  """The split's shards; ValueError naming the fix when it holds nothing."""
  files = split_files(data_dir, split)
  if not files or num_windows(spec, split) == 0:
    raise MissingSplitError(
        f"{data_dir} has no {split} {what} (dataset.json counts "
        f"{num_windows(spec, split)} in {len(files)} shard(s)); "
        f"{_HOW_TO_FILL[split]}.")
  return files


def make_dataset(data_dir: str, split: str, batch_size: int,
                 spec: records.DatasetSpec | None = None, *,
                 shuffle: bool = False, repeat: bool = False, seed: int = 0,
                 drop_remainder: bool = False,
                 shuffle_buffer: int = 100_000) -> tf.data.Dataset:
  """Batches of windows [batch_size, n_visible] from `split`.

  Raises:
    MissingSplitError: the split has no windows (e.g. a corpus with no
      usable file, or --eval_fraction=0 and split="eval").
  """
  spec = spec or load_dataset_spec(data_dir)
  files = _nonempty_split(data_dir, split, spec, "windows")
  ds = _records(files, shuffle, seed, shuffle_buffer, repeat)
  ds = ds.batch(batch_size, drop_remainder=drop_remainder)
  ds = ds.map(lambda s: decode_windows(s, spec.n_visible),
              num_parallel_calls=tf.data.AUTOTUNE)
  return ds.prefetch(tf.data.AUTOTUNE)


def windows_bytes(spec: records.DatasetSpec, split: str) -> int:
  """Bytes of `split`'s windows held as one byte per unit (`load_windows`)."""
  return num_windows(spec, split) * spec.n_visible


def load_windows(data_dir: str, split: str,
                 spec: records.DatasetSpec) -> np.ndarray:
  """All of `split`'s windows, uint8 [N, n_visible] of 0/1, in shard order."""
  chunks = [tf.cast(batch, tf.uint8).numpy() for batch in make_dataset(
      data_dir, split, 4096, spec)]
  return np.concatenate(chunks) if chunks else np.zeros(
      [0, spec.n_visible], np.uint8)


# --- sequences (the RNN-RBM): whole pieces or fixed windows as frames --------


def is_whole_pieces(spec: records.DatasetSpec) -> bool:
  """True for `preprocess.main --num_timesteps=0` datasets (one piece each)."""
  return spec.num_timesteps == 0


def num_frames(spec: records.DatasetSpec, split: str) -> int:
  """Frames (time steps) in `split`: counts.steps for whole pieces, else
  windows x num_timesteps."""
  if is_whole_pieces(spec):
    return int(spec.counts.get("steps", {}).get(split, 0))
  return num_windows(spec, split) * spec.num_timesteps


def decode_sequence(serialized, n_columns: int, num_timesteps: int):
  """One serialized Example -> (frames [T, n_columns] float32, T int32).

  Whole pieces carry their length in `num_steps`; a fixed window (no such
  feature) has `num_timesteps` frames.
  """
  parsed = tf.io.parse_single_example(serialized, {
      "window": tf.io.FixedLenFeature([], tf.string),
      "num_steps": tf.io.FixedLenFeature([], tf.int64,
                                         default_value=num_timesteps)})
  length = tf.cast(parsed["num_steps"], tf.int32)
  packed = tf.io.decode_raw(parsed["window"], tf.uint8)
  shifts = tf.constant([7, 6, 5, 4, 3, 2, 1, 0], tf.uint8)
  bits = tf.reshape(tf.bitwise.bitwise_and(
      tf.bitwise.right_shift(packed[:, None], shifts), 1), [-1])
  bits = bits[:length * n_columns]
  return tf.cast(tf.reshape(bits, [length, n_columns]), tf.float32), length


def random_crop(frames, length, crop_length: int, seed):
  """At most `crop_length` consecutive frames from a random offset, keyed by
  `seed` ([2] int64) alone; shorter sequences are kept whole."""
  extra = tf.maximum(length - crop_length, 0)
  offset = tf.random.stateless_uniform([], seed, 0, extra + 1, dtype=tf.int32)
  new_length = tf.minimum(length, crop_length)
  return frames[offset:offset + new_length], new_length


def make_sequence_dataset(data_dir: str, split: str, batch_size: int,
                          spec: records.DatasetSpec | None = None, *,
                          crop_length: int = 0, shuffle: bool = False,
                          seed: int = 0, drop_remainder: bool = False,
                          repeat: bool = False) -> tf.data.Dataset:
  """Padded batches of sequences: (frames [B, T, n_columns], lengths [B]).

  Whole pieces are variable length (padded with silence to the longest of
  the batch, or to crop_length when cropping); fixed windows are sequences
  of num_timesteps frames. crop_length > 0 cuts each sequence to at most that
  many frames at an offset keyed by (seed, position in the order), so a seed
  gives the same crops every run. Deterministic, like `make_dataset`.

  Raises:
    MissingSplitError: the split has no sequences.
  """
  spec = spec or load_dataset_spec(data_dir)
  files = _nonempty_split(data_dir, split, spec, "sequences")
  n_columns, num_timesteps = spec.n_columns, spec.num_timesteps
  ds = _records(files, shuffle, seed, 100_000, repeat)
  ds = ds.map(lambda s: decode_sequence(s, n_columns, num_timesteps),
              num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
  padded_length = None
  if crop_length:
    ds = ds.enumerate().map(
        lambda i, x: random_crop(x[0], x[1], crop_length,
                                 tf.stack([tf.cast(seed, tf.int64), i])),
        num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    # A static time axis: the trainer's keyed noise stays unrolled.
    padded_length = crop_length
  ds = ds.padded_batch(batch_size, padded_shapes=([padded_length, n_columns],
                                                  []),
                       drop_remainder=drop_remainder)
  return ds.prefetch(tf.data.AUTOTUNE)


# Epoch e's shuffle seed is seed * EPOCH_SEED_STRIDE + e: distinct for every
# (seed, epoch) of any realistic run.
EPOCH_SEED_STRIDE = 2**20


def resumable_epochs(make_epoch, seed: int, start_step: int,
                     steps_per_epoch: int) -> tf.data.Dataset:
  """Batches from global step `start_step` on, for ever, epoch after epoch.

  make_epoch(shuffle_seed) gives one epoch's batches (shuffled with that
  seed, its remainder dropped), so step s always sees the same batch and a
  run resumed at step N continues exactly as an uninterrupted one; resuming
  mid-epoch skips (reads) at most one epoch.
  """
  start_epoch, offset = divmod(start_step, steps_per_epoch)

  def epoch(e):
    batches = make_epoch(seed * EPOCH_SEED_STRIDE + e)
    return batches.skip(tf.where(e == start_epoch, tf.constant(offset, tf.int64),
                                 tf.constant(0, tf.int64)))

  ds = tf.data.Dataset.range(start_epoch, 2**62).flat_map(epoch)
  options = tf.data.Options()
  # The files are opened inside flat_map, where tf.data cannot shard by file:
  # with several workers each reads every file and keeps its share of batches.
  options.experimental_distribute.auto_shard_policy = (
      tf.data.experimental.AutoShardPolicy.DATA)
  return ds.prefetch(tf.data.AUTOTUNE).with_options(options)
