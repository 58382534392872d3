"""preprocess/shards.py: the same corpus gives the same TFRecord shards.

Before, Beam's WriteToTFRecord dealt records to shards from a random start in
arrival order: the same command wrote different shards, and the trainer
trained a different model from them.
"""

import dataclasses
import os
import pathlib

import apache_beam as beam
from apache_beam.testing import test_pipeline
import pytest

from preprocess import pipeline
from preprocess import shards
from tests.test_preprocess_pipeline import CONFIG
from tests.test_preprocess_pipeline import write_corpus
# TensorFlow's reader, as the trainer's: it checks the framing and the CRCs.
from tests.test_preprocess_pipeline import _tfrecords  # pylint: disable=g-bad-import-order


def shard_files(folder):
  return {name: pathlib.Path(folder, name).read_bytes()
          for name in sorted(os.listdir(folder)) if name.endswith(".tfrecord")}


FILES = [(f"/corpus/piece{i}.mid", [f"piece{i} window{k}".encode()
                                    for k in range(i + 1)]) for i in range(9)]


@pytest.mark.parametrize("num_shards", [0, 4])
def test_the_order_files_arrive_in_does_not_change_the_bytes(tmp_path,
                                                             num_shards):
  written = []
  for name, files in (("a", FILES), ("b", FILES[::-1]),
                      ("c", FILES[4:] + FILES[:4])):
    out = tmp_path / name
    out.mkdir()
    with test_pipeline.TestPipeline() as p:
      _ = (p | beam.Create(files, reshuffle=False)
           | shards.WriteShards(str(out), "train", num_shards))
    written.append(shard_files(out))
    assert sorted(os.listdir(out)) == sorted(written[-1])  # no temp folder
  assert written[0] == written[1] == written[2]
  count = num_shards or 1
  assert sorted(written[0]) == [f"train-{i:05d}-of-{count:05d}.tfrecord"
                                for i in range(count)]
  # Every record once; each shard's files sorted by path, windows in order.
  by_shard = {name: _tfrecords(str(tmp_path / "a" / name)) for name in written[0]}
  assert sorted(r for rs in by_shard.values() for r in rs) == sorted(
      e for _, examples in FILES for e in examples)
  for name, got in by_shard.items():
    index = int(name.split("-")[1])
    assert got == [e for path, examples in FILES
                   if shards.shard_of(path, count) == index for e in examples]


def test_shard_count_follows_the_bytes_when_not_given():
  assert shards.shard_count(0, 0) == 1
  assert shards.shard_count(shards.SHARD_BYTES, 0) == 1
  assert shards.shard_count(shards.SHARD_BYTES + 1, 0) == 2
  assert shards.shard_count(10 * shards.SHARD_BYTES, 3) == 3


def test_a_shard_no_file_hashes_to_is_written_empty(tmp_path):
  # 2 files over 8 shards: at least 6 shards hold nothing, yet -of-00008
  # promises eight files.
  with test_pipeline.TestPipeline() as p:
    _ = (p | beam.Create(FILES[:2])
         | shards.WriteShards(str(tmp_path), "eval", 8))
  got = shard_files(tmp_path)
  assert sorted(got) == [f"eval-{i:05d}-of-00008.tfrecord" for i in range(8)]
  assert sum(1 for data in got.values() if not data) >= 6


def test_two_runs_over_differently_ordered_globs_write_the_same_dataset(
    tmp_path):
  corpus = tmp_path / "corpus"
  write_corpus(corpus, n=6)
  first, second = tmp_path / "one", tmp_path / "two"
  config = dataclasses.replace(CONFIG, num_shards=3)
  pipeline.run_pipeline([f"{corpus}/piece[0-2].mid", f"{corpus}/piece[3-5].mid"],
                        str(first), config)
  pipeline.run_pipeline([f"{corpus}/piece[3-5].mid", f"{corpus}/piece[0-2].mid"],
                        str(second), config)
  one, two = shard_files(first), shard_files(second)
  assert one == two
  train = [name for name in one if name.startswith("train-")]
  assert len(train) == 3
  assert sum(len(_tfrecords(str(first / name))) for name in train) > 6


def test_a_retried_finalize_keeps_the_shards_it_already_moved(tmp_path):
  # Dataflow retries a step that failed after part of its work: the shards
  # renamed by the first attempt are no longer in the temporary folder.
  temp = tmp_path / "beam-temp-train-0123456789abcdef0123456789abcdef"
  temp.mkdir()
  for i in (0, 2):
    (temp / shards.shard_name("train", i, 3)).write_bytes(b"shard %d" % i)
  first = shards._finalize(None, str(temp), str(tmp_path), "train", 3, [0, 2])  # pylint: disable=protected-access
  again = shards._finalize(None, str(temp), str(tmp_path), "train", 3, [0, 2])  # pylint: disable=protected-access
  assert first == again and not temp.exists()
  assert [pathlib.Path(p).read_bytes() for p in again] == [
      b"shard 0", b"", b"shard 2"]
