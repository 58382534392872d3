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


def test_valid_split_is_read_and_preferred_for_model_selection(tmp_path):
  train = fake_dataset.structured_windows(10, seed=1)
  eval_ = fake_dataset.structured_windows(3, seed=2)
  valid = fake_dataset.structured_windows(4, seed=3)
  old, new = str(tmp_path / "old"), str(tmp_path / "new")
  fake_dataset.write_dataset(old, train, eval_)  # before the valid split
  fake_dataset.write_dataset(new, train, eval_, valid=valid)
  assert data.validation_split(data.load_dataset_spec(old)) == "eval"
  assert data.validation_split(data.load_dataset_spec(new)) == "valid"
  got = np.concatenate([b.numpy() for b in data.make_dataset(new, "valid", 3)])
  assert sorted(map(bytes, got.astype(np.uint8))) == sorted(
      map(bytes, valid.reshape(4, -1)))
  with pytest.raises(data.MissingSplitError,
                     match="no valid windows.*--valid_fraction"):
    data.make_dataset(old, "valid", 4)
  none = str(tmp_path / "none")
  fake_dataset.write_dataset(none, train, train[:0])
  assert data.validation_split(data.load_dataset_spec(none)) is None


def test_older_dataset_json_without_the_valid_fields_loads(tmp_path):
  import json  # pylint: disable=g-import-not-at-top
  spec = fake_dataset.write_dataset(
      str(tmp_path), fake_dataset.structured_windows(4),
      fake_dataset.structured_windows(2))
  fields = json.loads(spec.to_json())
  del fields["valid_fraction"], fields["explicit_splits"]
  (tmp_path / records.SPEC_FILENAME).write_text(json.dumps(fields))
  loaded = data.load_dataset_spec(str(tmp_path))
  assert loaded.valid_fraction == 0.0 and loaded.explicit_splits == []
  assert data.num_windows(loaded, "valid") == 0


def test_corrupt_dataset_json_is_a_clear_error(tmp_path):
  (tmp_path / records.SPEC_FILENAME).write_text("{not json")
  with pytest.raises(ValueError, match="not valid JSON"):
    data.load_dataset_spec(str(tmp_path))


def test_whole_pieces_read_back_with_their_lengths(tmp_path):
  pieces = fake_dataset.cycle_pieces([5, 9, 3, 20, 1], seed=1)
  spec = fake_dataset.write_piece_dataset(str(tmp_path), pieces, pieces[:1])
  assert data.is_whole_pieces(spec) and data.num_frames(spec, "train") == 38
  got = []
  for frames, lengths in data.make_sequence_dataset(str(tmp_path), "train", 2):
    assert frames.shape[1] == max(lengths.numpy())  # padded to the longest
    for f, n in zip(frames.numpy(), lengths.numpy()):
      assert not f[n:].any()  # padding is silence
      got.append(f[:n].astype(np.uint8).tobytes())
  assert sorted(got) == sorted(p.tobytes() for p in pieces)


def test_crops_are_contiguous_keyed_and_padded_to_the_crop_length(tmp_path):
  pieces = fake_dataset.cycle_pieces([30, 4], seed=2)
  fake_dataset.write_piece_dataset(str(tmp_path), pieces, pieces, num_shards=1)

  def crops(seed):
    return [(f.numpy(), n.numpy()) for f, n in data.make_sequence_dataset(
        str(tmp_path), "train", 2, crop_length=8, seed=seed)]
  [(frames, lengths)] = crops(0)
  assert frames.shape == (2, 8, 12) and list(lengths) == [8, 4]
  assert any(np.array_equal(frames[0], pieces[0][o:o + 8])
             for o in range(30 - 8 + 1))
  np.testing.assert_array_equal(frames[1, :4], pieces[1])
  np.testing.assert_array_equal(crops(0)[0][0], frames)  # same seed, same crop
  offsets = {crops(s)[0][0][0].tobytes() for s in range(6)}
  assert len(offsets) > 1  # the seed moves the crop


def test_fixed_windows_read_as_sequences_of_their_frames(tmp_path):
  train = fake_dataset.structured_windows(6, seed=1)
  fake_dataset.write_dataset(str(tmp_path), train, train[:2], num_shards=1)
  frames, lengths = next(iter(data.make_sequence_dataset(str(tmp_path),
                                                         "train", 6)))
  assert list(lengths.numpy()) == [fake_dataset.SMALL_TIMESTEPS] * 6
  np.testing.assert_array_equal(frames.numpy(), train.astype(np.float32))
