"""The Beam pipeline: transforms under TestPipeline, and whole runs to disk and GCS."""

import collections
import io
import json
import os
import random
import re

import apache_beam as beam
from apache_beam.io.filesystems import FileSystems
from apache_beam.metrics.metric import MetricsFilter
from apache_beam.testing import test_pipeline
from apache_beam.testing.util import assert_that
from apache_beam.testing.util import equal_to
import mido
import numpy as np
import pytest

from preprocess import pianoroll
from preprocess import pipeline
from preprocess import records
from preprocess import stats
from preprocess import steps
from preprocess import config as config_lib
from tests import midi_builders
from trainer import data

CONFIG = config_lib.PreprocessConfig(eval_fraction=0.0)


def write_corpus(folder, n=6, length=40, eval_fraction=None):
  """n pieces; with eval_fraction, piece0 lands in eval and piece1 in train.

  The split hashes the name below the glob's folder (steps.split_key), so
  names are picked to make both splits non-empty.
  """
  os.makedirs(folder, exist_ok=True)
  for i in range(n):
    name = f"piece{i}.mid"
    if eval_fraction is not None and i < 2:
      want = records.EVAL_PREFIX if i == 0 else records.TRAIN_PREFIX
      name = next(
          f"piece{i}-{k}.mid" for k in range(10_000)
          if steps.split_of(f"piece{i}-{k}.mid", eval_fraction) == want)
    with open(os.path.join(folder, name), "wb") as f:
      f.write(midi_builders.make_midi(
          midi_builders.scale(length + 8 * i, low=48 + i)))


def absurd_ticks_midi() -> bytes:
  mid = mido.MidiFile(ticks_per_beat=480)
  track = mido.MidiTrack([mido.Message("note_on", note=60, velocity=90),
                          mido.Message("note_off", note=60, time=2**31)])
  mid.tracks.append(track)
  return _midi_bytes(mid)


def absurd_tempo_midi() -> bytes:
  """1 microsecond per quarter: 60 million bpm. The grid is in beats, so fine."""
  mid = mido.MidiFile(ticks_per_beat=480)
  events = [mido.MetaMessage("set_tempo", tempo=1)]
  for i in range(32):
    events += [mido.Message("note_on", note=60 + i % 5, velocity=90),
               mido.Message("note_off", note=60 + i % 5, time=120)]
  mid.tracks.append(mido.MidiTrack(events))
  return _midi_bytes(mid)


def _midi_bytes(mid: mido.MidiFile) -> bytes:
  buf = io.BytesIO()
  mid.save(file=buf)
  return buf.getvalue()


def test_convert_corpus_transform(tmp_path, monkeypatch):
  write_corpus(str(tmp_path), n=3)
  (tmp_path / "bad.mid").write_bytes(b"\x00" * 64)
  (tmp_path / "notes.txt").write_text("x")
  files = [steps.ListedFile(str(p), p.stat().st_size, p.name, "train")
           for p in sorted(tmp_path.iterdir())]
  # A bug deep inside one file's conversion must become a dead letter too.
  make_example = records.make_example

  def buggy_make_example(window, source, *args):
    if source.endswith("piece2.mid"):
      raise KeyError("a bug")
    return make_example(window, source, *args)

  monkeypatch.setattr(records, "make_example", buggy_make_example)
  p = test_pipeline.TestPipeline()
  out = p | beam.Create(files) | pipeline.ConvertCorpus(CONFIG)
  assert_that(
      out["errors"] | "ErrorNames" >> beam.Map(
          lambda e: (os.path.basename(e["path"]), e["reason"],
                     "buggy_make_example" in e.get("traceback", ""))),
      equal_to([("bad.mid", "corrupt_midi", False),
                ("piece2.mid", "unexpected_error", True)]), label="errors")
  # Stats leave as per-bundle sums (stats.BundleStats): check their total.
  assert_that(
      out["stats"] | "Total" >> beam.CombineGlobally(stats.MergeStats())
      | "Outcomes" >> beam.Map(lambda acc: (
          acc["files_seen"], acc["converted"], acc["failed"], acc["skipped"],
          acc["failed_reasons"], acc["files"]["train"], acc["windows"]["train"])),
      equal_to([(5, 2, 2, 1, {"corrupt_midi": 1, "unexpected_error": 1}, 2, 5)]),
      label="stats")
  # piece0: 40 steps -> 2 windows; piece1: 48 steps -> 3 windows
  assert_that(out["train"] | "TrainWindows" >> beam.Map(
      lambda f: (os.path.basename(f[0]), len(f[1]))),
              equal_to([("piece0.mid", 2), ("piece1.mid", 3)]), label="train")
  assert_that(out["eval"] | "CountEval" >> beam.combiners.Count.Globally(),
              equal_to([0]), label="eval")
  result = p.run()
  result.wait_until_finish()
  counters = collections.Counter()  # summed over the steps that count
  for c in result.metrics().query(
      MetricsFilter().with_namespace("preprocess"))["counters"]:
    counters[c.key.metric.name] += c.committed
  assert counters == {
      "files_seen": 5, "files_converted": 2, "files_failed": 2,
      "files_skipped": 1, "failed_corrupt_midi": 1,
      "failed_unexpected_error": 1, "skipped_not_midi": 1, "windows_train": 5}


def test_end_to_end_to_a_local_dir_read_back_with_tf_data(tmp_path):
  corpus, out = str(tmp_path / "corpus"), str(tmp_path / "out")
  write_corpus(corpus, n=12, eval_fraction=0.3)
  config = config_lib.PreprocessConfig(eval_fraction=0.3, transpose=1,
                                     num_shards=2)
  counts = pipeline.run_pipeline([os.path.join(corpus, "*.mid")], out, config)
  spec = data.load_dataset_spec(out)
  assert spec.n_visible == 2340 and spec.num_timesteps == 15
  assert spec.transpose == 1 and spec.eval_fraction == 0.3
  assert counts["files_seen"] == 12 == counts["converted"]
  assert counts["files"]["train"] + counts["files"]["eval"] == 12
  assert 0 < counts["files"]["eval"] < 12  # both splits used at 0.3 of 12
  assert len(data.split_files(out, "train")) == 2
  assert counts["shards"] == sorted(
      os.path.basename(f) for split in records.SPLITS
      for f in data.split_files(out, split))

  windows = {}
  per_file = {}  # (split, source) -> Counter of transpositions
  for split in ("train", "eval"):
    got = np.concatenate([b.numpy() for b in data.make_dataset(out, split, 7)])
    assert got.shape[1] == 2340 and set(np.unique(got)) <= {0.0, 1.0}
    assert len(got) == counts["windows"][split]
    windows[split] = got
    for path in data.split_files(out, split):
      for raw in _tfrecords(path):
        e = records.parse_example(raw)
        per_file.setdefault((split, e["source"]), collections.Counter())[
            e["transpose"]] += 1
        # The bits are the codec's rendering of that file at that offset.
        with open(e["source"], "rb") as f:
          notes, _ = pianoroll.extract_notes(pianoroll.parse_midi(f.read()), 4)
        matrix, _ = pianoroll.notes_to_matrix(notes, spec.roll_spec,
                                              e["transpose"])
        np.testing.assert_array_equal(
            records.unpack_window(e["window"], 15, 156),
            matrix[e["offset"]:e["offset"] + 15])
  sources = {split: {src for s, src in per_file if s == split}
             for split in ("train", "eval")}
  assert not sources["train"] & sources["eval"]  # no piece in both splits
  assert len(sources["train"]) == counts["files"]["train"]
  assert len(sources["eval"]) == counts["files"]["eval"]
  for (split, source), by_shift in per_file.items():
    # piece i is 40 + 8i sixteenths long: (length - 15) // 15 + 1 windows,
    # each once per shift -1, 0, 1 in train and unshifted in eval.
    i = int(re.match(r"piece(\d+)", os.path.basename(source)).group(1))
    n = (40 + 8 * i - 15) // 15 + 1
    assert by_shift == ({-1: n, 0: n, 1: n} if split == "train" else {0: n})
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
      "absurd_tempo.mid": absurd_tempo_midi(),
      "huge.mid": good * 50,
      "long.mid": midi_builders.make_midi(midi_builders.scale(200)),
      "short.mid": midi_builders.make_midi(midi_builders.scale(4)),
      "readme.txt": b"not music",
      # Usable, but with something to drop and count:
      "out_of_range.mid": midi_builders.make_midi(
          midi_builders.scale(30) + [(10, 0, 1), (110, 1, 2)]),
      "with_drums.MID": midi_builders.make_midi(midi_builders.scale(30),
                                                drums=[(36, 0, 1)] * 3),
      "gap.mid": midi_builders.make_midi([(60, 0, 1), (62, 11, 12)]),
  }
  for name, content in hostile.items():
    (corpus / name).write_bytes(content)
  config = config_lib.PreprocessConfig(eval_fraction=0.0, max_steps=150,
                                     max_file_bytes=len(good) * 10)
  counts = pipeline.run_pipeline([str(corpus / "*")], out, config)

  n_files = 2 + len(hostile)
  assert counts["files_seen"] == n_files
  assert counts["converted"] + counts["failed"] + counts["skipped"] == n_files
  # the two pieces, absurd_tempo (the grid is in beats), out_of_range,
  # with_drums, gap
  assert counts["converted"] == 6 == counts["files"]["train"]
  assert counts["skipped_reasons"] == {"not_midi": 1, "shorter_than_window": 1}
  assert counts["notes_out_of_range"] == 2
  assert counts["drum_notes"] == 3  # of with_drums; failed files add nothing
  assert counts["silent_windows"] == 1
  errors = {}
  for path in FileSystems.match([os.path.join(out, "errors-*.jsonl")])[0].metadata_list:
    with open(path.path) as f:
      for line in f:
        e = json.loads(line)
        assert set(e) == {"path", "reason", "message"} and e["message"]
        errors[os.path.basename(e["path"])] = (e["reason"], e["message"])
  assert {name: reason for name, (reason, _) in errors.items()} == {
      "empty.mid": "empty_file", "truncated.mid": "corrupt_midi",
      "random.mid": "corrupt_midi", "bad_header.mid": "corrupt_midi",
      "no_notes.mid": "no_notes", "only_drums.midi": "only_drums",
      "absurd_ticks.mid": "corrupt_midi", "huge.mid": "too_large",
      "long.mid": "too_long"}
  assert "likely corrupt" in errors["absurd_ticks.mid"][1]
  assert f"max_file_bytes={len(good) * 10}" in errors["huge.mid"][1]
  assert "200 grid steps > max_steps=150" in errors["long.mid"][1]
  assert counts["failed_reasons"] == {
      "empty_file": 1, "corrupt_midi": 4, "no_notes": 1, "only_drums": 1,
      "too_large": 1, "too_long": 1}


def test_rerun_is_deterministic_and_overwrite_replaces_the_dataset(tmp_path):
  corpus, out = str(tmp_path / "corpus"), str(tmp_path / "out")
  write_corpus(corpus, n=4, eval_fraction=0.5)
  inputs = [os.path.join(corpus, "*.mid")]
  config = config_lib.PreprocessConfig(eval_fraction=0.5, num_shards=2)

  def snapshot():
    files = {n: (tmp_path / "out" / n).read_bytes() for n in os.listdir(out)}
    examples = {split: sorted(r for n in files if n.startswith(split)
                              for r in _tfrecords(os.path.join(out, n)))
                for split in ("train", "eval")}
    return files, examples

  pipeline.run_pipeline(inputs, out, config)
  files, examples = snapshot()
  assert examples["train"] and examples["eval"]
  with pytest.raises(FileExistsError, match="--overwrite"):
    pipeline.run_pipeline(inputs, out, config)
  assert snapshot()[0] == files  # untouched

  pipeline.run_pipeline(inputs, out, config, overwrite=True)
  files_again, examples_again = snapshot()
  assert files_again.keys() == files.keys()
  assert files_again["dataset.json"] == files["dataset.json"]
  assert examples_again == examples  # same Examples, shard order aside

  config = config_lib.PreprocessConfig(eval_fraction=0.5, num_shards=3)
  pipeline.run_pipeline(inputs, out, config, overwrite=True)
  # The 2-shard files of the earlier run are gone, not read as extra data.
  assert len(data.split_files(out, "train")) == 3
  assert len(data.split_files(out, "eval")) == 3
  assert snapshot()[1] == examples


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
  # Keys are relative on gs:// too: p0..p2 split as their names hash.
  config = config_lib.PreprocessConfig(eval_fraction=0.5)
  want = {f"p{i}.mid": steps.split_of(f"p{i}.mid", 0.5) for i in range(3)}
  assert sorted(want.values()) == ["eval", "train", "train"]
  counts = pipeline.run_pipeline([f"gs://{gcs_bucket}/corpus/*.mid"], out,
                                 config)
  assert counts["converted"] == 3 and counts["failed"] == 1
  names = {b.name for b in bucket.list_blobs(prefix="dataset/")}
  assert "dataset/dataset.json" in names
  assert any(n.startswith("dataset/train-") for n in names)
  spec = records.DatasetSpec.from_json(
      bucket.blob("dataset/dataset.json").download_as_text())
  assert spec.counts["windows"] == {"train": 6, "eval": 3, "valid": 0}
  # The windows are really there: copy the shards locally for TF to read.
  local = tmp_path / "copy"
  local.mkdir()
  for n in names:
    bucket.blob(n).download_to_filename(str(local / os.path.basename(n)))
  assert sum(len(b) for b in data.make_dataset(str(local), "train", 4)) == 6
  assert split_of_sources(str(local))[0] == want
  errors = bucket.blob(next(n for n in names if "errors-" in n)).download_as_text()
  assert json.loads(errors)["reason"] == "corrupt_midi"


def split_of_sources(out):
  """{source file name: split} from a dataset's shards, and the transpositions
  seen per split."""
  found, shifts = {}, collections.defaultdict(set)
  for split in records.SPLITS:
    for path in data.split_files(out, split):
      for raw in _tfrecords(path):
        e = records.parse_example(raw)
        name = e["source"].rsplit("/", 1)[-1]
        assert found.setdefault(name, split) == split, name  # one split each
        shifts[split].add(e["transpose"])
  return found, shifts


def test_same_corpus_under_two_folders_splits_the_same(tmp_path):
  names = [f"p{i}.mid" for i in range(12)]
  outs = []
  for root in ("first/deeper", "second"):
    corpus = tmp_path / root / "corpus"
    corpus.mkdir(parents=True)
    for i, name in enumerate(names):
      (corpus / name).write_bytes(midi_builders.make_midi(
          midi_builders.scale(30, low=48 + i)))
    out = str(tmp_path / root / "out")
    pipeline.run_pipeline([str(corpus / "*.mid")], out,
                          config_lib.PreprocessConfig(eval_fraction=0.3,
                                                      valid_fraction=0.3))
    outs.append(split_of_sources(out)[0])
  assert outs[0] == outs[1]
  assert outs[0] == {n: steps.split_of(n, 0.3, 0.3) for n in names}
  assert set(outs[0].values()) == {"train", "eval", "valid"}


def test_valid_split_is_written_untransposed(tmp_path):
  corpus, out = tmp_path / "corpus", str(tmp_path / "out")
  corpus.mkdir()
  names = [f"v{i}.mid" for i in range(10)]
  for i, name in enumerate(names):
    (corpus / name).write_bytes(midi_builders.make_midi(
        midi_builders.scale(30, low=48 + i)))
  config = config_lib.PreprocessConfig(eval_fraction=0.2, valid_fraction=0.4,
                                       transpose=1, num_shards=1)
  counts = pipeline.run_pipeline([str(corpus / "*.mid")], out, config)
  want = {n: steps.split_of(n, 0.2, 0.4) for n in names}
  assert {"train", "valid"} <= set(want.values())
  found, shifts = split_of_sources(out)
  assert found == want
  assert shifts["valid"] == {0} and shifts["train"] == {-1, 0, 1}
  n_valid = sum(s == "valid" for s in want.values())
  assert counts["files"]["valid"] == n_valid
  assert counts["windows"]["valid"] == 2 * n_valid  # 30 steps: 2 windows each
  assert "valid-00000-of-00001.tfrecord" in counts["shards"]
  spec = data.load_dataset_spec(out)
  assert spec.valid_fraction == 0.4 and spec.explicit_splits == []
  assert data.num_windows(spec, "valid") == 2 * n_valid


def test_explicit_split_globs_win_over_the_hash(tmp_path):
  # The JSB Chorales layout: train/, valid/, test/ folders.
  root = tmp_path / "jsb"
  layout = {"train": [f"t{i}.mid" for i in range(6)],
            "valid": ["v0.mid", "v1.mid"], "test": ["e0.mid", "e1.mid"]}
  for folder, names in layout.items():
    (root / folder).mkdir(parents=True)
    for i, name in enumerate(names):
      (root / folder / name).write_bytes(midi_builders.make_midi(
          midi_builders.scale(30, low=50 + i)))
  out = str(tmp_path / "out")
  # --input covers every folder: the explicit globs take their files out of
  # the hash (which, with eval_fraction 0 once --eval_input is given and no
  # valid_fraction, sends every other file to train).
  config = config_lib.PreprocessConfig()
  counts = pipeline.run_pipeline(
      [str(root / "**")], out, config,
      eval_inputs=[str(root / "test" / "*.mid")],
      valid_inputs=[str(root / "valid" / "*.mid")])
  found, _ = split_of_sources(out)
  assert found == {**dict.fromkeys(layout["train"], "train"),
                   **dict.fromkeys(layout["valid"], "valid"),
                   **dict.fromkeys(layout["test"], "eval")}
  assert counts["files_seen"] == 10  # each file once, though matched twice
  spec = data.load_dataset_spec(out)
  assert spec.eval_fraction == 0.0 and spec.explicit_splits == ["eval", "valid"]


def test_explicit_split_conflicts_are_refused_before_running(tmp_path):
  corpus = tmp_path / "corpus"
  corpus.mkdir()
  (corpus / "a.mid").write_bytes(midi_builders.make_midi(
      midi_builders.scale(30)))
  out = str(tmp_path / "out")
  glob = str(corpus / "*.mid")
  with pytest.raises(pipeline.InputError,
                     match="a.mid is matched by both --eval_input and "
                     "--valid_input"):
    pipeline.run_pipeline([glob], out, CONFIG, eval_inputs=[glob],
                          valid_inputs=[str(corpus / "a*")])
  with pytest.raises(ValueError, match="--eval_fraction=0.3 and --eval_input"):
    pipeline.run_pipeline([glob], out, config_lib.PreprocessConfig(
        eval_fraction=0.3), eval_inputs=[glob])
  with pytest.raises(pipeline.InputError, match="--valid_input glob .*none"):
    pipeline.run_pipeline([glob], out, CONFIG,
                          valid_inputs=[str(corpus / "none*.mid")])
  with pytest.raises(pipeline.InputError, match="--eval_input .* is a folder"):
    pipeline.run_pipeline([glob], out, CONFIG, eval_inputs=[str(corpus)])
  with pytest.raises(ValueError, match="overlaps --eval_input"):
    pipeline.run_pipeline([glob], str(corpus / "out"), CONFIG,
                          eval_inputs=[str(corpus / "**")])
  with pytest.raises(ValueError, match="--valid_input=gs://b/x/\\*.mid\\.\\.\\."):
    pipeline.run_pipeline([glob], out, CONFIG,
                          valid_inputs=["gs://b/x/*.mid?X-Goog-Signature=s"])
  assert not os.path.exists(out)
