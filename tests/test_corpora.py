"""benchmarks.corpora: the piano-roll sets come back exactly, folders hold one corpus.

Offline: the .mat sets are read from benchmarks.corpora.DEFAULT_POLYPHONIC_DIR
(skipped where absent), the Essen tunes from music21's own corpus.
"""

import dataclasses
import os
import subprocess
import sys

import numpy as np
import pytest

from benchmarks import corpora
from common import cli
from preprocess import pianoroll

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# Decoding must not depend on how notes are quantised: they sit on grid ticks.
SPECS = (corpora.ROLL_SPEC, dataclasses.replace(corpora.ROLL_SPEC, quantize="round"))


def _assert_round_trip(roll):
  data = corpora.roll_to_midi(roll)
  np.testing.assert_array_equal(corpora.read_roll(data), roll)
  # pianoroll's decoder alone: the same frames, up to the last note's end.
  sounding = np.flatnonzero(roll.any(axis=1))
  end = sounding[-1] + 1 if len(sounding) else 0
  pm = pianoroll.parse_midi(data)
  for spec in SPECS:
    np.testing.assert_array_equal(pianoroll.midi_to_matrix(pm, spec), roll[:end])


@pytest.mark.parametrize("corpus", list(corpora.ROLL_FILES))
def test_published_sets_round_trip_exactly(corpus):
  pytest.importorskip("scipy")
  path = os.path.join(corpora.DEFAULT_POLYPHONIC_DIR, corpora.ROLL_FILES[corpus])
  if not os.path.exists(path):
    pytest.skip(f"{path} is not on this machine")
  rolls = corpora.load_rolls(path)
  for pieces in rolls.values():
    for piece in pieces[:3]:
      assert corpora.piece_problem(piece) is None
      _assert_round_trip(piece[:400])
  # The pieces that end in silence, with their endings.
  silent_endings = [p for pieces in rolls.values() for p in pieces
                    if not p[-1].any()]
  assert len(silent_endings) == {"nottingham": 2, "piano_midi": 0,
                                 "musedata": 1}[corpus]
  for piece in silent_endings:
    _assert_round_trip(piece[-400:])


def _roll(frames, notes):
  """A [frames, 88] roll with 1s at (first frame, end frame, column)."""
  roll = np.zeros((frames, corpora.N_KEYS), np.uint8)
  for start, end, column in notes:
    roll[start:end, column] = 1
  return roll


# Leading and trailing silence, a repeated note (two runs of column 39, C4),
# a chord, and a note at each edge of the range (A0, C8).
EDGES = _roll(12, [(2, 4, 39), (5, 7, 39), (2, 9, 43), (5, 9, 46), (3, 6, 0),
                   (6, 9, 87)])
SILENT = _roll(5, [])
ONE_FRAME = _roll(1, [(0, 1, 87)])
PIECES = {"train": [EDGES, ONE_FRAME], "valid": [SILENT], "test": [EDGES[2:]]}


def _save_mat(folder, name, pieces_by_split):
  scipy_io = pytest.importorskip("scipy.io")
  arrays = {}
  for split, key in corpora.SPLITS.items():
    pieces = pieces_by_split[split]
    arrays[key] = np.empty((1, len(pieces)), object)
    for i, piece in enumerate(pieces):
      arrays[key][0, i] = piece
  os.makedirs(folder, exist_ok=True)
  scipy_io.savemat(os.path.join(folder, name), arrays)


def test_synthetic_set_exports_exactly_and_folders_hold_one_corpus(tmp_path):
  _save_mat(tmp_path / "mat", "Nottingham.mat", PIECES)
  out = str(tmp_path / "out")
  result = corpora.export("nottingham", out, str(tmp_path / "mat"))
  assert result.files == {"train": 2, "valid": 1, "test": 1}
  assert not result.skipped and result.written_now == 4
  assert not result.already_complete
  for split, pieces in PIECES.items():
    names = sorted(os.listdir(os.path.join(out, split)))
    assert names == [f"nottingham-{split}-{i:04d}.mid" for i in range(len(pieces))]
    for name, piece in zip(names, pieces):
      with open(os.path.join(out, split, name), "rb") as f:
        data = f.read()
      np.testing.assert_array_equal(corpora.read_roll(data), piece)
      _assert_round_trip(piece)
  marker = corpora.read_marker(out)
  assert marker["corpus"] == "nottingham" and marker["complete"]
  assert marker["files"] == result.files
  assert marker["frames"] == {"train": 13, "valid": 5, "test": 10}
  assert marker["source"] == "Nottingham.mat"
  assert marker["grid"]["steps_per_quarter"] == 2
  assert sorted(os.listdir(out)) == [corpora.MARKER, "test", "train", "valid"]

  # A finished folder is left as it is.
  again = corpora.export("nottingham", out, str(tmp_path / "mat"))
  assert again.already_complete and again.files == result.files
  assert "nothing to do" in corpora.describe(again, out)
  # Another corpus' folder, and a folder of someone else's files, are refused
  # and left untouched.
  with pytest.raises(cli.UsageError, match="holds the nottingham export"):
    corpora.export("piano_midi", out, str(tmp_path / "mat"))
  foreign = tmp_path / "foreign"
  foreign.mkdir()
  (foreign / "mine.mid").write_bytes(b"not ours")
  with pytest.raises(cli.UsageError, match="did not write"):
    corpora.export("nottingham", str(foreign), str(tmp_path / "mat"))
  assert sorted(os.listdir(foreign)) == ["mine.mid"]
  assert (foreign / "mine.mid").read_bytes() == b"not ours"


def test_an_unfinished_export_resumes_and_bad_pieces_are_skipped(tmp_path):
  bad = np.full((4, corpora.N_KEYS), 2, np.uint8)
  _save_mat(tmp_path, "MuseData.mat", {"train": [EDGES, bad],
                                       "valid": [SILENT], "test": [EDGES]})
  out = tmp_path / "out"
  corpora.claim_folder(str(out), "musedata")  # as a run killed at its start
  result = corpora.export("musedata", str(out), str(tmp_path))
  assert result.files == {"train": 1, "valid": 1, "test": 1}
  assert result.skipped == {"musedata-train-0001": "values other than 0 and 1"}
  assert sorted(os.listdir(out / "train")) == ["musedata-train-0000.mid"]


def test_cli_one_line_and_refusal(tmp_path):
  _save_mat(tmp_path / "mat", "Piano_midi.mat", PIECES)
  args = [sys.executable, "-m", "benchmarks.corpora", "--corpus=piano_midi",
          f"--polyphonic_dir={tmp_path / 'mat'}"]
  done = subprocess.run(args + [f"--output_dir={tmp_path / 'out'}"], cwd=ROOT,
                        capture_output=True, text=True, timeout=120, check=False)
  assert done.returncode == 0, done.stderr
  assert done.stdout.splitlines() == [
      f"{tmp_path / 'out'}: piano_midi: 2 train, 1 valid, 1 test files written, "
      "0 skipped"]
  (tmp_path / "other").mkdir()
  (tmp_path / "other" / "notes.txt").write_text("x")
  refused = subprocess.run(args + [f"--output_dir={tmp_path / 'other'}"], cwd=ROOT,
                           capture_output=True, text=True, timeout=120, check=False)
  assert refused.returncode == 2 and not refused.stdout
  assert len(refused.stderr.strip().splitlines()) == 1, refused.stderr
  assert "holds files this tool did not write (notes.txt)" in refused.stderr


def test_a_missing_source_writes_nothing(tmp_path):
  pytest.importorskip("scipy")
  with pytest.raises(cli.UsageError, match="MuseData.mat does not exist"):
    corpora.export("musedata", str(tmp_path / "out"), str(tmp_path / "none"))
  assert not os.path.exists(tmp_path / "out")


def test_missing_scipy_is_one_line_naming_the_extra(monkeypatch, tmp_path):
  monkeypatch.setitem(sys.modules, "scipy", None)
  with pytest.raises(cli.UsageError, match=r"pip install -e '\.\[bench\]'"):
    corpora.load_rolls(str(tmp_path / "Nottingham.mat"))


def test_tune_names_stay_unique():
  assert corpora.tune_names("erk5", ["1", "2", None, "2", "7 a"]) == [
      "erk5-1", "erk5-2", "erk5-at3", "erk5-at4", "erk5-7_a"]


def test_an_essen_opus_gives_one_file_per_tune(tmp_path):
  pytest.importorskip("music21")
  sources = [p for p in corpora.essen_sources()
             if os.path.basename(p) == "erk5.abc"]  # 27 tunes, parsed in ~1 s
  if not sources:
    pytest.skip("music21's corpus has no essenFolksong/erk5.abc")
  with open(sources[0], encoding="latin-1") as f:
    numbers = [line[2:].strip() for line in f if line.startswith("X:")]
  written, kept, failed = corpora.export_source(sources[0], str(tmp_path))
  # Tunes 4 and 26 share a TimeSignature between two measures, which
  # music21's MIDI writer refuses unless unshared.
  assert (written, kept, failed) == (27, 0, {})
  names = sorted(os.listdir(tmp_path))
  assert names == sorted(f"erk5-{n}.mid" for n in numbers) and len(names) == 27
  for name in names:
    with open(tmp_path / name, "rb") as f:
      notes = pianoroll.parse_midi(f.read()).instruments[0].notes
    assert notes, name
  # A rerun keeps what is there.
  assert corpora.export_source(sources[0], str(tmp_path)) == (0, 27, {})
