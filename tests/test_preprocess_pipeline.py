"""The Beam pipeline: transforms under TestPipeline, and whole runs to disk and GCS."""

import json
import os
import random

import apache_beam as beam
from apache_beam.io.filesystems import FileSystems
from apache_beam.testing import test_pipeline
from apache_beam.testing.util import assert_that
from apache_beam.testing.util import equal_to
import mido
import numpy as np
import pytest

from preprocess import pipeline
from preprocess import records
from tests import midi_builders
from trainer import data

CONFIG = pipeline.PreprocessConfig(eval_fraction=0.0)


def write_corpus(folder, n=6, length=40):
  os.makedirs(folder, exist_ok=True)
  for i in range(n):
    with open(os.path.join(folder, f"piece{i}.mid"), "wb") as f:
      f.write(midi_builders.make_midi(
          midi_builders.scale(length + 8 * i, low=48 + i)))


def absurd_ticks_midi() -> bytes:
  mid = mido.MidiFile(ticks_per_beat=480)
  track = mido.MidiTrack([mido.Message("note_on", note=60, velocity=90),
                          mido.Message("note_off", note=60, time=2**31)])
  mid.tracks.append(track)
  path = os.path.join(os.environ.get("TMPDIR", "/tmp"), f"abs{os.getpid()}.mid")
  mid.save(path)
  with open(path, "rb") as f:
    return f.read()


def absurd_tempo_midi() -> bytes:
  """1 microsecond per quarter: 60 million bpm. The grid is in beats, so fine."""
  mid = mido.MidiFile(ticks_per_beat=480)
  events = [mido.MetaMessage("set_tempo", tempo=1)]
  for i in range(32):
    events += [mido.Message("note_on", note=60 + i % 5, velocity=90),
               mido.Message("note_off", note=60 + i % 5, time=120)]
  mid.tracks.append(mido.MidiTrack(events))
  path = os.path.join(os.environ.get("TMPDIR", "/tmp"), f"tempo{os.getpid()}.mid")
  mid.save(path)
  with open(path, "rb") as f:
    return f.read()


def test_convert_corpus_transform(tmp_path):
  write_corpus(str(tmp_path), n=2)
  (tmp_path / "bad.mid").write_bytes(b"\x00" * 64)
  (tmp_path / "notes.txt").write_text("x")
  files = [(str(p), p.stat().st_size) for p in sorted(tmp_path.iterdir())]
  with test_pipeline.TestPipeline() as p:
    out = p | beam.Create(files) | pipeline.ConvertCorpus(CONFIG)
    assert_that(out["errors"] | "ErrorNames" >> beam.Map(lambda e: (os.path.basename(e["path"]),
                                                   e["reason"])),
                equal_to([("bad.mid", "corrupt_midi")]), label="errors")
    assert_that(out["stats"] | "StatNames" >> beam.Map(lambda s: (os.path.basename(s["path"]),
                                                  s["status"])),
                equal_to([("bad.mid", "failed"), ("notes.txt", "skipped"),
                          ("piece0.mid", "converted"),
                          ("piece1.mid", "converted")]), label="stats")
    # piece0: 40 steps -> 2 windows; piece1: 48 steps -> 3 windows
    assert_that(out["train"] | "CountTrain" >> beam.combiners.Count.Globally(),
                equal_to([5]),
                label="train")
    assert_that(out["eval"] | "CountEval" >> beam.combiners.Count.Globally(),
                equal_to([0]),
                label="eval")


def test_end_to_end_to_a_local_dir_read_back_with_tf_data(tmp_path):
  corpus, out = str(tmp_path / "corpus"), str(tmp_path / "out")
  write_corpus(corpus, n=12)
  config = pipeline.PreprocessConfig(eval_fraction=0.3, transpose=1,
                                     num_shards=2)
  counts = pipeline.run_pipeline([os.path.join(corpus, "*.mid")], out, config)
  spec = data.load_dataset_spec(out)
  assert spec.n_visible == 2340 and spec.num_timesteps == 15
  assert counts["files_seen"] == 12 == counts["converted"]
  assert counts["files"]["train"] + counts["files"]["eval"] == 12
  assert 0 < counts["files"]["eval"] < 12  # both splits used at 0.3 of 12
  assert len(data.split_files(out, "train")) == 2

  windows = {}
  sources = {}
  for split in ("train", "eval"):
    got = np.concatenate([b.numpy() for b in data.make_dataset(out, split, 7)])
    assert got.shape[1] == 2340 and set(np.unique(got)) <= {0.0, 1.0}
    assert len(got) == counts["windows"][split]
    windows[split] = got
    examples = [records.parse_example(r) for path in data.split_files(out, split)
                for r in _tfrecords(path)]
    sources[split] = {e["source"] for e in examples}
    transposes = {e["transpose"] for e in examples}
    assert transposes == ({-1, 0, 1} if split == "train" else {0})
  assert not sources["train"] & sources["eval"]  # no piece in both splits
  np.testing.assert_allclose(spec.unit_means, windows["train"].mean(axis=0),
                             atol=1e-6)


def _tfrecords(path):
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  return [r.numpy() for r in tf.data.TFRecordDataset(path)]


def test_hostile_files_are_all_accounted_for(tmp_path):
  corpus, out = tmp_path / "corpus", str(tmp_path / "out")
  write_corpus(str(corpus), n=2)
  good = midi_builders.make_midi(midi_builders.scale(40))
  hostile = {
      "empty.mid": b"",
      "truncated.mid": good[:len(good) // 2],
      "random.mid": random.Random(0).randbytes(len(good)),
      # header chunk claims 2 GB
      "bad_header.mid": b"MThd" + (2**31 - 1).to_bytes(4, "big") + good[8:],
      "no_notes.mid": midi_builders.make_midi([]),
      "only_drums.midi": midi_builders.make_midi([], drums=[(36, 0, 1)] * 4),
      "absurd_ticks.mid": absurd_ticks_midi(),
      "huge.mid": good * 50,
      "short.mid": midi_builders.make_midi(midi_builders.scale(4)),
      "readme.txt": b"not music",
  }
  for name, content in hostile.items():
    (corpus / name).write_bytes(content)
  (corpus / "absurd_tempo.mid").write_bytes(absurd_tempo_midi())
  config = pipeline.PreprocessConfig(eval_fraction=0.0,
                                     max_file_bytes=len(good) * 10)
  counts = pipeline.run_pipeline([str(corpus / "*")], out, config)

  n_files = 2 + len(hostile) + 1
  assert counts["files_seen"] == n_files
  assert counts["converted"] + counts["failed"] + counts["skipped"] == n_files
  assert counts["converted"] == 3  # the two pieces and the absurd tempo
  assert counts["skipped_reasons"] == {"not_midi": 1, "shorter_than_window": 1}
  errors = {}
  for path in FileSystems.match([os.path.join(out, "errors-*.jsonl")])[0].metadata_list:
    with open(path.path) as f:
      for line in f:
        e = json.loads(line)
        errors[os.path.basename(e["path"])] = e["reason"]
  assert errors == {
      "empty.mid": "empty_file", "truncated.mid": "corrupt_midi",
      "random.mid": "corrupt_midi", "bad_header.mid": "corrupt_midi",
      "no_notes.mid": "no_notes", "only_drums.midi": "only_drums",
      "absurd_ticks.mid": "corrupt_midi", "huge.mid": "too_large"}
  assert counts["failed_reasons"] == {
      "empty_file": 1, "corrupt_midi": 4, "no_notes": 1, "only_drums": 1,
      "too_large": 1}


def test_existing_output_is_never_clobbered_without_overwrite(tmp_path):
  corpus, out = str(tmp_path / "corpus"), str(tmp_path / "out")
  write_corpus(corpus, n=2)
  pipeline.run_pipeline([os.path.join(corpus, "*.mid")], out, CONFIG)
  before = sorted(os.listdir(out))
  with pytest.raises(FileExistsError, match="--overwrite"):
    pipeline.run_pipeline([os.path.join(corpus, "*.mid")], out, CONFIG)
  assert sorted(os.listdir(out)) == before
  config = pipeline.PreprocessConfig(eval_fraction=0.0, num_shards=3)
  pipeline.run_pipeline([os.path.join(corpus, "*.mid")], out, config,
                        overwrite=True)
  assert len(data.split_files(out, "train")) == 3  # stale shards removed


def test_glob_matching_nothing_is_a_clear_error(tmp_path):
  with pytest.raises(ValueError, match="nothing.mid.*matches no file"):
    pipeline.run_pipeline([str(tmp_path / "nothing.mid")], str(tmp_path / "o"),
                          CONFIG)


def test_gcs_input_and_output_on_the_emulator(gcs_bucket, tmp_path):
  from google.cloud import storage  # pylint: disable=g-import-not-at-top
  bucket = storage.Client().bucket(gcs_bucket)
  for i in range(3):
    bucket.blob(f"corpus/p{i}.mid").upload_from_string(
        midi_builders.make_midi(midi_builders.scale(45, low=50 + i)))
  bucket.blob("corpus/broken.mid").upload_from_string(b"MThd nope")
  out = f"gs://{gcs_bucket}/dataset"
  counts = pipeline.run_pipeline([f"gs://{gcs_bucket}/corpus/*.mid"], out,
                                 CONFIG)
  assert counts["converted"] == 3 and counts["failed"] == 1
  names = {b.name for b in bucket.list_blobs(prefix="dataset/")}
  assert "dataset/dataset.json" in names
  assert any(n.startswith("dataset/train-") for n in names)
  spec = records.DatasetSpec.from_json(
      bucket.blob("dataset/dataset.json").download_as_text())
  assert spec.counts["windows"]["train"] == 9
  # The windows are really there: copy the shards locally for TF to read.
  local = tmp_path / "copy"
  local.mkdir()
  for n in names:
    bucket.blob(n).download_to_filename(str(local / os.path.basename(n)))
  assert sum(len(b) for b in data.make_dataset(str(local), "train", 4)) == 9
  errors = bucket.blob([n for n in names if "errors-" in n][0]).download_as_text()
  assert json.loads(errors)["reason"] == "corrupt_midi"
