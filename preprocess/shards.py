"""TFRecord shards whose bytes depend on the corpus alone.

Beam's WriteToTFRecord deals records to shards from a random starting shard
(or writes one file per bundle) in the order they arrive, so two runs of the
same command wrote different shards, and the trainer, which reads shards in
name order before its seeded shuffle, trained a different model. Here each
file's windows go, in the order they were cut, to the shard a hash of the
file's path picks; a shard holds its files sorted by path. The same corpus
at the same paths gives the same shard bytes, on any runner.

    windows of each file -> (shard of its path, (path, examples))
        -> GroupByKey -> sorted by path -> beam-temp-SPLIT-UUID/NAME
        -> one finalize: renamed to SPLIT-NNNNN-of-NNNNN.tfrecord (shards no
           file hashed to are written empty), the temporary folder removed

The temporary folder is named as Beam's sinks name theirs, so a failed run's
clean-up (preprocess/outputs.py) removes it too. A retried write rewrites the
same bytes under the same name.
"""

import hashlib
import uuid

import apache_beam as beam
from apache_beam.io import tfrecordio
from apache_beam.io.filesystems import FileSystems

from preprocess import outputs
from preprocess import records

# --num_shards=0: as many shards as hold this many serialized bytes each (at
# least one). A shard is sorted in one worker's memory.
SHARD_BYTES = 64 << 20


def shard_name(split: str, index: int, count: int) -> str:
  return f"{split}-{index:05d}-of-{count:05d}{records.TFRECORD_SUFFIX}"


def shard_count(total_bytes: int, num_shards: int) -> int:
  """num_shards when given, else one shard per SHARD_BYTES (at least 1)."""
  return num_shards or max(1, -(-total_bytes // SHARD_BYTES))


def shard_of(path: str, count: int) -> int:
  """The shard of a file: a stable hash of its path, modulo count."""
  digest = hashlib.sha256(path.encode("utf-8")).digest()
  return int.from_bytes(digest[:8], "big") % count


def _write(shard, temp_dir: str, split: str, count: int) -> int:
  """Writes one shard's files, sorted by path, into temp_dir; its index."""
  index, files = shard
  with FileSystems.create(outputs.join(temp_dir, shard_name(
      split, index, count))) as f:
    for _, examples in sorted(files, key=lambda file: file[0]):
      for example in examples:
        tfrecordio._TFRecordUtil.write_record(f, example)  # pylint: disable=protected-access
  return index


def _finalize(_, temp_dir: str, output_dir: str, split: str, count: int,
              written: list) -> list:
  """Moves the written shards into output_dir, writes the empty ones (no
  file hashed to them) and removes temp_dir; the shards' paths."""
  # A retried finalize finds some shards already moved.
  names = [n for n in (shard_name(split, i, count) for i in sorted(written))
           if FileSystems.exists(outputs.join(temp_dir, n))]
  if names:
    FileSystems.rename([outputs.join(temp_dir, n) for n in names],
                       [outputs.join(output_dir, n) for n in names])
  for i in sorted(set(range(count)) - set(written)):
    outputs.write_file(outputs.join(output_dir, shard_name(split, i, count)),
                       b"")
  if FileSystems.exists(temp_dir):  # a local folder; objects have none
    FileSystems.delete([temp_dir])
  return [outputs.join(output_dir, shard_name(split, i, count))
          for i in range(count)]


class WriteShards(beam.PTransform):
  """(path, [serialized Example]) of one split's files -> its shards in
  output_dir; the output is the shards' paths, once all are in place."""

  def __init__(self, output_dir: str, split: str, num_shards: int):
    super().__init__()
    self._output_dir, self._split = output_dir, split
    self._num_shards = num_shards

  def expand(self, files):
    split, output_dir = self._split, self._output_dir
    # Beam's own temporary folder name (outputs.temp_folders finds it).
    temp_dir = outputs.join(output_dir,
                            f"beam-temp-{split}-{uuid.uuid4().hex}")
    count = beam.pvalue.AsSingleton(
        files
        | "Bytes" >> beam.Map(lambda f: sum(len(e) for e in f[1]))
        | "TotalBytes" >> beam.CombineGlobally(sum)
        | "ShardCount" >> beam.Map(shard_count, self._num_shards))
    written = (
        files
        | "ToShard" >> beam.Map(lambda f, n: (shard_of(f[0], n), f), count)
        | "ByShard" >> beam.GroupByKey()
        | "WriteShard" >> beam.Map(_write, temp_dir, split, count))
    return (
        files.pipeline
        | "Once" >> beam.Create([None])
        | "Finalize" >> beam.FlatMap(_finalize, temp_dir, output_dir, split,
                                     count, beam.pvalue.AsList(written)))
