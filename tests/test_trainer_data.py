"""trainer/data.py reads exactly what records.py writes."""

import numpy as np
import pytest

from preprocess import records
from tests import fake_dataset
from trainer import data


def test_round_trip_bits_and_counts(tmp_path):
  train = fake_dataset.structured_windows(37, seed=1)
  eval_ = fake_dataset.structured_windows(5, seed=2)
  spec = fake_dataset.write_dataset(str(tmp_path), train, eval_)
  assert data.load_dataset_spec(str(tmp_path)) == spec
  got = np.concatenate([b.numpy() for b in data.make_dataset(
      str(tmp_path), "train", 8)])
  want = train.reshape(37, -1).astype(np.float32)
  # shards interleave, so compare as multisets of rows
  assert sorted(map(bytes, got.astype(np.uint8))) == sorted(
      map(bytes, want.astype(np.uint8)))


def test_missing_dataset_json_names_the_path_and_the_fix(tmp_path):
  with pytest.raises(FileNotFoundError, match="dataset.json.*preprocess.main"):
    data.load_dataset_spec(str(tmp_path))


def test_empty_split_is_a_clear_error(tmp_path):
  train = fake_dataset.structured_windows(10)
  fake_dataset.write_dataset(str(tmp_path), train, train[:0])
  with pytest.raises(ValueError, match="no eval windows"):
    data.make_dataset(str(tmp_path), "eval", 4)


def test_corrupt_dataset_json_is_a_clear_error(tmp_path):
  (tmp_path / records.SPEC_FILENAME).write_text("{not json")
  with pytest.raises(ValueError, match="not valid JSON"):
    data.load_dataset_spec(str(tmp_path))
