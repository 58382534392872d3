"""--fit_corpus: the grid and note range derived from hand-built corpora with
known answers, recorded in dataset.json, refused next to the flags it sets."""

import dataclasses
import json
import os
import random
import subprocess
import sys

import numpy as np
import pytest

from preprocess import config as config_lib
from preprocess import corpus_fit
from preprocess import pipeline
from preprocess import records
from preprocess import steps
from tests import midi_builders

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _line(step, pitches=(60, 62, 64, 65, 67), count=64, start=0.0):
  """`count` notes of `step` quarters each, cycling through `pitches`."""
  return [(pitches[i % len(pitches)], start + i * step, start + (i + 1) * step)
          for i in range(count)]


def _write(folder, pieces, tempo=120.0):
  folder.mkdir(parents=True, exist_ok=True)
  for i, notes in enumerate(pieces):
    (folder / f"p{i:03d}.mid").write_bytes(
        midi_builders.make_midi(notes, tempo=tempo))
  return str(folder / "*.mid")


def _fit(glob, **config):
  return pipeline.fit_layout(
      pipeline.list_inputs([glob]),
      config_lib.PreprocessConfig(eval_fraction=0.0, **config))


@pytest.mark.parametrize("step, grid, quantize", [
    (1.0, 1, "sample"),          # quarters
    (0.5, 2, "sample"),          # 8ths
    (1 / 3, 3, "sample"),        # 8th triplets
    (0.25, 4, "round"),          # 16ths
    (1 / 6, 6, "round"),         # 16th triplets
    (0.125, 8, "round"),         # 32nds
])
def test_the_coarsest_grid_holding_the_onsets(tmp_path, step, grid, quantize):
  # Tempo does not matter: the grid is in quarter notes.
  glob = _write(tmp_path / "c", [_line(step), _line(step, start=8.0)], tempo=97)
  config, fitted = _fit(glob)
  assert (config.steps_per_quarter, config.quantize) == (grid, quantize)
  assert fitted["steps_per_quarter"] == grid
  assert fitted["onset_share"][str(grid)] == 1.0


def test_a_grid_must_hold_95_percent_of_the_onsets(tmp_path):
  # 8ths with a dotted-8th + 16th figure in some bars: 16ths hold every
  # onset; 8ths hold 98% of them with 2 figures, 91% with 10.
  def tune(figures):
    notes, t = [], 0.0
    for i in range(100 - figures):
      notes.append((60 + i % 7, t, t + 0.5))
      t += 0.5
    for _ in range(figures):
      notes += [(67, t, t + 0.75), (65, t + 0.75, t + 1.0)]
      t += 1.0
    return notes
  few = _write(tmp_path / "few", [tune(2)])
  many = _write(tmp_path / "many", [tune(10)])
  assert _fit(few)[0].steps_per_quarter == 2
  assert _fit(many)[0].steps_per_quarter == 4


def test_performed_midi_falls_back_to_16ths_rounded(tmp_path):
  rng = random.Random(0)
  notes, t = [], 0.0
  for i in range(400):
    length = rng.uniform(0.2, 0.9)
    notes.append((60 + i % 12, t, t + length))
    t += length
  config, fitted = _fit(_write(tmp_path / "perf", [notes]))
  assert (config.steps_per_quarter, config.quantize) == (
      corpus_fit.FALLBACK_GRID, "round")
  assert max(fitted["onset_share"].values()) < corpus_fit.ONSET_SHARE


def test_the_range_leaves_out_stray_notes_and_widens_for_transposition(
    tmp_path):
  # 2,000 notes over 55..76 and one stray low note: the stray one is out.
  pitches = tuple(range(55, 77))
  pieces = [_line(0.5, pitches, count=1000), _line(0.5, pitches, count=1000)]
  pieces[0].append((21, 600.0, 601.0))
  glob = _write(tmp_path / "r", pieces)
  config, fitted = _fit(glob)
  assert (config.low_note, config.high_note) == (55, 77)
  assert fitted["notes_outside"] == pytest.approx(1 / 2001, abs=1e-6)
  config, _ = _fit(glob, transpose=5)
  assert (config.low_note, config.high_note) == (50, 82)


def test_held_out_files_are_not_read(tmp_path):
  train = _write(tmp_path / "train", [_line(0.5, (60, 62, 64))])
  _write(tmp_path / "test", [_line(0.25, (30, 100))])
  listed = pipeline.list_inputs([train])
  eval_files = pipeline.check_inputs([str(tmp_path / "test" / "*.mid")])
  config = config_lib.PreprocessConfig(eval_fraction=0.0)
  fitted_config, fitted = pipeline.fit_layout(listed, config, eval_files)
  assert (fitted_config.low_note, fitted_config.high_note) == (60, 65)
  assert fitted_config.steps_per_quarter == 2
  assert fitted["files"] == 1


def test_the_sample_does_not_depend_on_listing_order():
  listed = [steps.ListedFile(f"/c/{i}.mid", 10, f"{i}.mid") for i in range(50)]
  shuffled = listed[:]
  random.Random(1).shuffle(shuffled)
  assert corpus_fit.sample_files(listed, 7) == corpus_fit.sample_files(
      shuffled, 7)
  assert len(corpus_fit.sample_files(listed, 7)) == 7


def test_profiles_add_up():
  a = corpus_fit.piece_profile(np.array([60, 60]), np.array([0.0, 0.5]),
                               np.array([0.5, 1.0]))
  b = corpus_fit.piece_profile(np.array([70]), np.array([0.25]),
                               np.array([0.5]))
  total = a + b
  assert (total.files, total.notes) == (2, 3)
  assert total.pitch_counts[[60, 70]].tolist() == [2, 1]
  # 0.0 is on every grid, 0.5 on all but quarters, 0.25 on 16ths and finer.
  assert total.onsets_on_grid.tolist() == [1, 2, 1, 3, 2, 3, 3]
  # The second 60 starts where the first ends: a re-strike on every grid
  # but quarters, where both round to one onset.
  assert total.restrikes_on_grid.tolist() == [0, 1, 1, 1, 1, 1, 1]


@pytest.mark.parametrize("notes, on_8ths", [
    ([(60, 0, 1), (60, 1, 2)], 1),           # struck again as it ends
    ([(60, 0, 2), (60, 1, 2)], 1),           # struck again while it sounds
    ([(60, 0, 1), (60, 1.5, 2)], 0),         # a rest between: not a re-strike
    ([(60, 0, 1), (62, 1, 2)], 0),           # another pitch
    ([(60, 0, 4), (60, 1, 1.5), (60, 2, 3)], 2),  # inside a long note, twice
    ([(60, 0, 1), (60, 1.05, 2)], 1),        # off by less than half a step
    ([(60, 0, 1), (60, 0, 1)], 0),           # a doubled note is one onset
])
def test_restrikes_on_known_pieces(notes, on_8ths):
  pitch, start, end = (np.array(x, np.float64) for x in zip(*notes))
  counts = corpus_fit.restrikes_on_grids(pitch.astype(np.int64), start, end)
  assert counts[corpus_fit.GRIDS.index(2)] == on_8ths


def test_a_corpus_without_restrikes_gets_the_roll_encoding(tmp_path):
  # Held notes and steps between pitches, never the same pitch struck again
  # as it ends: a piano roll. Repeated notes in 1 of 100: onoff.
  roll = _write(tmp_path / "roll", [_line(0.5, (60, 62, 64), count=300)])
  config, fitted = _fit(roll)
  assert config.encoding == "roll" and fitted["restrike_share"] == 0
  assert "--encoding=roll (0.00% of notes re-struck)" in corpus_fit.describe(
      fitted)
  repeated = _line(0.5, (60, 62, 64), count=297) + [
      (67, 148.5 + i * 0.5, 149 + i * 0.5) for i in range(3)]
  config, fitted = _fit(_write(tmp_path / "rep", [repeated]))
  assert config.encoding == "onoff"
  assert fitted["restrike_share"] == pytest.approx(2 / 300, abs=1e-6)
  # Given, it is kept.
  listed = pipeline.list_inputs([roll])
  config, fitted = pipeline.fit_layout(
      listed, config_lib.PreprocessConfig(eval_fraction=0.0),
      layout_given=("encoding",))
  assert config.encoding == "onoff" and fitted["given"] == ["encoding"]


def test_a_corpus_without_notes_is_refused(tmp_path):
  folder = tmp_path / "bad"
  folder.mkdir()
  (folder / "a.mid").write_bytes(b"not midi at all")
  with pytest.raises(pipeline.InputError, match="--fit_corpus: none of the 1"):
    _fit(str(folder / "*.mid"))


def test_dataset_json_records_the_fit_and_the_windows_use_it(tmp_path):
  glob = _write(tmp_path / "c", [_line(0.5, (48, 52, 55, 60), count=80)] * 3)
  out = tmp_path / "out"
  pipeline.run_pipeline([glob], str(out), config_lib.PreprocessConfig(
      fit_corpus=True, eval_fraction=0.0, num_timesteps=8, stride=8))
  spec = records.DatasetSpec.from_json((out / "dataset.json").read_text())
  assert (spec.steps_per_quarter, spec.quantize) == (2, "sample")
  assert (spec.low_note, spec.high_note) == (48, 61)
  assert spec.encoding == "roll"  # no note is struck again
  assert spec.n_visible == 8 * 13
  assert spec.fitted["steps_per_quarter"] == 2
  assert spec.fitted["files"] == 3
  # 80 8ths = 40 quarters = 80 steps: 10 windows of 8 per file.
  assert spec.counts["windows"]["train"] == 30


def test_layout_flags_given_are_kept(tmp_path):
  glob = _write(tmp_path / "c", [_line(0.5, (60, 64, 67))])
  listed = pipeline.list_inputs([glob])
  config = config_lib.PreprocessConfig(eval_fraction=0.0, steps_per_quarter=4,
                                       low_note=48)
  fitted_config, fitted = pipeline.fit_layout(
      listed, config, layout_given=("steps_per_quarter", "low_note"))
  assert (fitted_config.steps_per_quarter, fitted_config.low_note,
          fitted_config.high_note) == (4, 48, 68)
  assert fitted["given"] == ["low_note", "steps_per_quarter"]
  assert "4 steps per quarter (given; 100.0% of onsets on it)" in (
      corpus_fit.describe(fitted))
  # A given bound beyond the fitted other one: one line naming both.
  with pytest.raises(pipeline.InputError, match="--low_note with the fitted"):
    pipeline.fit_layout(listed, dataclasses.replace(config, low_note=90),
                        layout_given=("low_note",))


def test_the_cli_keeps_a_given_grid(tmp_path):
  glob = _write(tmp_path / "c", [_line(0.5)])
  result = subprocess.run(
      [sys.executable, "-m", "preprocess.main", f"--input={glob}",
       f"--output_dir={tmp_path / 'out'}", "--fit_corpus",
       "--steps_per_quarter=4", "--eval_fraction=0"],
      cwd=REPO, capture_output=True, text=True, timeout=300, check=False)
  assert result.returncode == 0, result.stderr
  assert "4 steps per quarter (given" in result.stdout
  spec = json.loads((tmp_path / "out" / "dataset.json").read_text())
  assert (spec["steps_per_quarter"], spec["low_note"]) == (4, 60)
  assert spec["fitted"]["given"] == ["steps_per_quarter"]


def test_the_cli_prints_the_fit(tmp_path):
  glob = _write(tmp_path / "c", [_line(1 / 3, count=90)] * 2)
  result = subprocess.run(
      [sys.executable, "-m", "preprocess.main", f"--input={glob}",
       f"--output_dir={tmp_path / 'out'}", "--fit_corpus",
       "--eval_fraction=0"],
      cwd=REPO, capture_output=True, text=True, timeout=300, check=False)
  assert result.returncode == 0, result.stderr
  assert ("fitted to 2 training files (180 notes): 3 steps per quarter "
          "(100.0% of onsets on it), --quantize=sample, --encoding=roll "
          "(0.00% of notes re-struck), notes 60..67"
          in result.stdout)
  spec = json.loads((tmp_path / "out" / "dataset.json").read_text())
  assert spec["fitted"]["steps_per_quarter"] == 3
