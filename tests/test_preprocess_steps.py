"""The pipeline's pure per-element steps and launch checks, without running Beam."""

import os
import subprocess
import sys

from apache_beam.options.pipeline_options import PipelineOptions
import numpy as np
import pytest

from preprocess import pianoroll
from preprocess import pipeline
from preprocess import records
from preprocess import steps
from preprocess import config as config_lib
from preprocess import stats
from tests import midi_builders

CONFIG = config_lib.PreprocessConfig(eval_fraction=0.0)


def parsed(notes, config=CONFIG, path="a.mid", split="train", **kw):
  return steps.parse_file(
      (path, midi_builders.make_midi(notes, **kw), split), config)


def test_split_is_stable_and_follows_the_fractions():
  keys = [f"{i}.mid" for i in range(4000)]
  splits = [steps.split_of(k, 0.25, 0.1) for k in keys]
  assert splits == [steps.split_of(k, 0.25, 0.1) for k in keys]
  assert 0.22 < splits.count("eval") / len(keys) < 0.28
  assert 0.08 < splits.count("valid") / len(keys) < 0.12
  assert {steps.split_of(k, 0.0) for k in keys} == {"train"}
  assert {steps.split_of(k, 1.0) for k in keys} == {"eval"}
  assert {steps.split_of(k, 0.0, 1.0) for k in keys} == {"valid"}
  # Eval is the bottom of [0, 1), valid the next band: growing valid never
  # moves a file out of eval, and eval keeps its files when valid is added.
  assert all(a == "eval" for a, b in zip(splits, [
      steps.split_of(k, 0.25) for k in keys]) if b == "eval")


def test_split_position_is_the_documented_formula():
  # Benchmarks predict splits from this formula: it must not drift.
  import hashlib  # pylint: disable=g-import-not-at-top
  for key in ("bach_bwv10.7.mid", "x/y.mid", "Sätze/1.mid"):
    position = int.from_bytes(hashlib.sha256(key.encode("utf-8")).digest()[:8],
                              "big") / 2**64
    for eval_fraction, valid_fraction in ((0.1, 0.1), (0.5, 0.2), (0.0, 0.3)):
      want = ("eval" if position < eval_fraction else "valid"
              if position < eval_fraction + valid_fraction else "train")
      assert steps.split_of(key, eval_fraction, valid_fraction) == want


@pytest.mark.parametrize("pattern,path,key", [
    ("data/chorales/*.mid", "data/chorales/bach_bwv10.7.mid",
     "bach_bwv10.7.mid"),
    ("/tmp/x/data/chorales/*.mid", "/tmp/x/data/chorales/bach_bwv10.7.mid",
     "bach_bwv10.7.mid"),
    ("gs://b/corpus/**/*.mid", "gs://b/corpus/x/y.mid", "x/y.mid"),
    ("gs://b/corpus/**", "gs://b/corpus/x/y.mid", "x/y.mid"),
    ("data/chor*/a.mid", "data/chorales/a.mid", "chorales/a.mid"),
    ("data/[ab].mid", "data/a.mid", "a.mid"),
    ("data/x?.mid", "data/x1.mid", "x1.mid"),
    ("*.mid", "a.mid", "a.mid"),
    ("./data/*.mid", "./data/a.mid", "a.mid"),
    # No wildcard: the file's name.
    ("data/chorales/bach_bwv10.7.mid", "data/chorales/bach_bwv10.7.mid",
     "bach_bwv10.7.mid"),
    ("gs://b/c/one.mid", "gs://b/c/one.mid", "one.mid"),
])
def test_split_key_is_the_path_below_the_globs_folder(pattern, path, key):
  assert steps.split_key(pattern, path) == key


def test_same_listing_is_kept_whatever_the_order():
  a = steps.ListedFile("c/sub/x.mid", 5, "sub/x.mid")
  b = steps.ListedFile("c/sub/x.mid", 5, "x.mid")
  e = steps.ListedFile("c/sub/x.mid", 5, "sub/x.mid", "eval")
  assert steps.preferred_listing([a, b]) == b == steps.preferred_listing([b, a])
  assert steps.preferred_listing([a, e, b]) == e  # explicit beats the hash
  assert steps.assign_split(e, 0.0, 0.0).split == "eval"
  assert steps.assign_split(b, 1.0, 0.0).split == "eval"
  assert steps.assign_split(b, 0.0, 1.0).split == "valid"


@pytest.mark.parametrize("name,midi", [("a.mid", True), ("B.MIDI", True),
                                       ("c.midi", True), ("d.txt", False),
                                       ("mid", False)])
def test_midi_extensions(name, midi):
  assert steps.is_midi_path(name) == midi


def test_windows_are_cut_serialised_and_counted():
  # 40 sixteenths: two full windows of 15, the tail of 10 is dropped.
  fw = steps.file_to_windows(parsed(midi_builders.scale(40)), CONFIG)
  assert fw.split == "train" and len(fw.examples) == 2
  ex = records.parse_example(fw.examples[1])
  assert ex["offset"] == 15 and ex["source"] == "a.mid" and ex["transpose"] == 0
  window = records.unpack_window(ex["window"], 15, 156)
  full = pianoroll.midi_to_matrix(
      pianoroll.parse_midi(midi_builders.make_midi(midi_builders.scale(40))),
      CONFIG.roll_spec)
  np.testing.assert_array_equal(window, full[15:30])
  assert fw.stats["status"] == "converted" and fw.stats["windows"] == 2
  np.testing.assert_array_equal(
      fw.stats["unit_sum"], full[:30].reshape(2, -1).sum(axis=0))


def test_quantize_setting_reaches_the_windows_and_the_spec():
  # A voice of 8ths on a quarter-note grid, 4 beats: one note per frame when
  # sampled at the beats, two when rounded.
  eighths = [(60 + i, i / 2, (i + 1) / 2) for i in range(8)]
  polyphony = {}
  for mode in ("round", "sample"):
    config = config_lib.PreprocessConfig(
        eval_fraction=0.0, encoding="roll", steps_per_quarter=1,
        num_timesteps=3, stride=3, quantize=mode)
    ex = records.parse_example(
        steps.file_to_windows(parsed(eighths, config), config).examples[0])
    polyphony[mode] = records.unpack_window(ex["window"], 3, 78).sum(axis=1)
    assert stats.make_dataset_spec(
        stats.CombineStats().create_accumulator(), config).quantize == mode
  assert polyphony["sample"].tolist() == [1, 1, 1]
  assert polyphony["round"].tolist() == [1, 2, 2]


def test_silent_windows_are_dropped_and_counted():
  notes = [(60, 0, 1), (62, 11, 12)]  # steps 0-3 and 44-47: window 1 silent
  fw = steps.file_to_windows(parsed(notes), CONFIG)
  assert len(fw.examples) == 2 and fw.stats["silent_windows"] == 1


@pytest.mark.parametrize("split", ["eval", "valid"])
def test_transposition_only_for_training_files(split):
  config = config_lib.PreprocessConfig(eval_fraction=0.0, transpose=2)
  fw = steps.file_to_windows(parsed(midi_builders.scale(15), config), config)
  assert sorted(records.parse_example(e)["transpose"]
                for e in fw.examples) == [-2, -1, 0, 1, 2]
  fw = steps.file_to_windows(
      parsed(midi_builders.scale(15), config, split=split), config)
  assert fw.split == split and fw.stats["split"] == split
  assert [records.parse_example(e)["transpose"] for e in fw.examples] == [0]
  assert fw.stats["unit_sum"] is None  # unit means are of training windows


@pytest.mark.parametrize("notes,reason", [
    (midi_builders.scale(10), "shorter_than_window"),
    # 20 steps of pitches 0..11 and 110..121: long enough, nothing in range
    ([(i % 12, i / 4, (i + 1) / 4) for i in range(10)] +
     [(110 + i % 12, i / 4, (i + 1) / 4) for i in range(10, 20)],
     "all_notes_out_of_range"),
    # one note at steps 16-17: the only full window, steps 0-14, is silent
    ([(60, 4, 4.5)], "only_silent_windows"),
])
def test_files_without_windows_are_skipped_with_a_reason(notes, reason):
  fw = steps.file_to_windows(parsed(notes), CONFIG)
  assert fw.examples == [] and fw.stats["status"] == "skipped"
  assert fw.stats["reason"] == reason


@pytest.mark.parametrize("data,error", [
    (b"", steps.EmptyFile),
    (b"not a midi file at all", steps.CorruptMidi),
    (midi_builders.make_midi(midi_builders.scale(30))[:40], steps.CorruptMidi),
    (midi_builders.make_midi([]), steps.NoNotes),
    (midi_builders.make_midi([], drums=[(36, 0, 1)]), steps.OnlyDrums),
])
def test_bad_files_raise_their_reason(data, error):
  with pytest.raises(error):
    steps.parse_file(
        steps.read_file(steps.ListedFile("x.mid", len(data), "x.mid"), 1 << 20)
        if not data else ("x.mid", data, "train"), CONFIG)


def test_too_large_is_checked_before_reading():
  with pytest.raises(steps.TooLarge, match="max_file_bytes=10"):
    steps.read_file(steps.ListedFile("/does/not/exist.mid", 11, "exist.mid"),
                    max_file_bytes=10)


def test_too_long_is_a_reason_not_a_crash():
  config = config_lib.PreprocessConfig(max_steps=100)
  with pytest.raises(steps.TooLong, match="max_steps=100"):
    parsed([(60, 0, 30)], config)


def test_dead_letter_keeps_path_and_reason():
  bad = (("p.mid", 3), (steps.NoNotes, "NoNotes('x')", ["tb"]))
  assert steps.dead_letter_to_error(bad) == {
      "path": "p.mid", "reason": "no_notes", "message": "NoNotes('x')"}
  bad = (("q.mid", 3), (ZeroDivisionError, "ZeroDivisionError()", ["tb"]))
  assert steps.dead_letter_to_error(bad)["reason"] == "unexpected_error"


def test_combine_stats_adds_everything_and_merges():
  combine = stats.CombineStats()
  records_ = [
      {"status": "converted", "split": "train", "windows": 3,
       "silent_windows": 1, "notes_out_of_range": 2, "drum_notes": 0,
       "unit_sum": np.array([1, 2])},
      {"status": "converted", "split": "eval", "windows": 1,
       "silent_windows": 0, "notes_out_of_range": 0, "drum_notes": 5,
       "unit_sum": None},
      {"status": "failed", "reason": "corrupt_midi"},
      {"status": "skipped", "reason": "not_midi"},
  ]
  a = combine.create_accumulator()
  for r in records_[:2]:
    a = combine.add_input(a, r)
  b = combine.create_accumulator()
  for r in records_[2:]:
    b = combine.add_input(b, r)
  acc = combine.merge_accumulators([a, b])
  assert acc["files_seen"] == 4 and acc["converted"] == 2
  assert acc["failed_reasons"] == {"corrupt_midi": 1}
  assert acc["windows"] == {"train": 3, "eval": 1, "valid": 0}
  assert acc["silent_windows"] == 1 and acc["drum_notes"] == 5
  np.testing.assert_array_equal(acc["unit_sum"], [1, 2])


@pytest.mark.parametrize("kwargs,match", [
    ({"num_timesteps": -1}, "num_timesteps=-1"), ({"stride": 0}, "stride=0"),
    ({"eval_fraction": 1.5}, "eval_fraction=1.5"),
    ({"valid_fraction": -0.1}, "valid_fraction=-0.1"),
    ({"eval_fraction": 0.6, "valid_fraction": 0.5}, "exceed 1"),
    ({"transpose": -1}, "transpose=-1"), ({"encoding": "x"}, "'x'")])
def test_config_errors_name_the_value(kwargs, match):
  with pytest.raises(ValueError, match=match):
    config_lib.PreprocessConfig(**kwargs)


def test_unreadable_file_has_its_own_reason():
  # Listed, then gone before it was read (or no permission): not a crash.
  with pytest.raises(steps.Unreadable, match="exist.mid"):
    steps.read_file(steps.ListedFile("/does/not/exist.mid", 5, "exist.mid"),
                    max_file_bytes=10)


def test_unexpected_errors_keep_their_traceback():
  bad = (("q.mid", 3), (KeyError, "KeyError('x')", ["Traceback\n", "  here\n"]))
  error = steps.dead_letter_to_error(bad)
  assert error["reason"] == "unexpected_error"
  assert error["traceback"] == "Traceback\n  here\n"
  bad = (("p.mid", 3), (steps.CorruptMidi, "CorruptMidi('x')", ["tb"]))
  assert "traceback" not in steps.dead_letter_to_error(bad)


@pytest.mark.parametrize("offset", [0, 15, 127, 128, 2**40])
@pytest.mark.parametrize("transpose", [0, -1, -12, 12])
def test_examples_parse_identically_with_tensorflow(offset, transpose):
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  from tensorflow.core.example import example_pb2  # pylint: disable=g-import-not-at-top
  window = np.random.default_rng(offset).integers(0, 2, (15, 156), np.uint8)
  source = "gs://bucket/Sätze/1.mid"
  serialized = records.make_example(window, source, offset, transpose)
  expected = example_pb2.Example()
  feature = expected.features.feature
  feature["window"].bytes_list.value.append(records.pack_window(window))
  feature["source"].bytes_list.value.append(source.encode("utf-8"))
  feature["offset"].int64_list.value.append(offset)
  feature["transpose"].int64_list.value.append(transpose)
  assert example_pb2.Example.FromString(serialized) == expected
  parsed = tf.io.parse_single_example(serialized, {
      "window": tf.io.FixedLenFeature([], tf.string),
      "offset": tf.io.FixedLenFeature([], tf.int64),
      "transpose": tf.io.FixedLenFeature([], tf.int64)})
  assert parsed["offset"].numpy() == offset
  assert parsed["transpose"].numpy() == transpose
  np.testing.assert_array_equal(
      records.unpack_window(parsed["window"].numpy(), 15, 156), window)


def test_workers_never_import_tensorflow():
  # A Beam worker that imported TF would pay ~4 s and ~500 MB per process.
  code = ("import sys\n"
          "from preprocess import pipeline, steps\n"
          "from preprocess import config as config_lib\n"
          "from tests import midi_builders\n"
          "c = config_lib.PreprocessConfig(eval_fraction=0.0, transpose=1)\n"
          "data = midi_builders.make_midi(midi_builders.scale(40))\n"
          "fw = steps.file_to_windows(\n"
          "    steps.parse_file(('a.mid', data, 'train'), c), c)\n"
          "assert len(fw.examples) == 6, fw.examples\n"
          "assert 'tensorflow' not in sys.modules\n")
  subprocess.run([sys.executable, "-c", code], check=True,
                 cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def test_launch_checks_name_the_bad_path(tmp_path):
  with pytest.raises(pipeline.InputError, match="is a folder.*\\*\\*"):
    pipeline.check_inputs([str(tmp_path)])
  with pytest.raises(pipeline.InputError, match="nothing.*matches no file"):
    pipeline.check_inputs([str(tmp_path / "nothing*.mid")])
  with pytest.raises(pipeline.InputError, match="--input is empty"):
    pipeline.check_inputs([])
  dataflow = PipelineOptions(["--runner=DataflowRunner"])
  with pytest.raises(pipeline.InputError, match=r"local paths \['corpus/\*'\]"):
    pipeline.check_runner_paths(["corpus/*", "gs://b/x/*"], "gs://b/out",
                                dataflow)
  pipeline.check_runner_paths(["gs://b/x/*"], "gs://b/out", dataflow)
  pipeline.check_runner_paths(["corpus/*"], "out", PipelineOptions([]))
