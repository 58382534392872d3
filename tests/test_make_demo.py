"""`make demo CORPUS=DIR OUT=DIR`: a user's own folder through the whole recipe.

The folder is read (every .mid/.midi below it) and never written to; every
output lands under OUT.
"""

import hashlib
import json
import os
import subprocess
import sys

import numpy as np
import pytest

from tests import midi_builders

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _tune(seed: int) -> list:
  """Eight bars of a two-voice tune in a random key: (pitch, start, end)."""
  rng = np.random.default_rng(seed)
  key = int(rng.integers(0, 12))
  major = np.array([0, 2, 4, 5, 7, 9, 11])
  notes, t = [], 0.0
  while t < 32:
    length = float(rng.choice([0.5, 1.0, 1.0, 2.0]))
    degree = int(rng.integers(0, 7))
    notes.append((60 + key + int(major[degree]), t, t + length))
    notes.append((48 + key + int(major[(degree + 5) % 7]), t, t + length))
    t += length
  return notes


def _tree_digest(folder: str) -> dict:
  """Every path below `folder` with its content's hash (folders: None)."""
  out = {}
  for dirpath, dirnames, names in os.walk(folder):
    for name in dirnames:
      out[os.path.relpath(os.path.join(dirpath, name), folder)] = None
    for name in names:
      path = os.path.join(dirpath, name)
      with open(path, "rb") as f:
        out[os.path.relpath(path, folder)] = hashlib.sha256(
            f.read()).hexdigest()
  return out


def _make(tmp_path, *args):
  stamp = tmp_path / "installed"  # the test's own environment is installed
  stamp.touch()
  return subprocess.run(
      ["make", "--no-print-directory", f"PY={sys.executable}",
       f"INSTALLED={stamp}", *args],
      cwd=ROOT, capture_output=True, text=True, timeout=600,
      env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})


@pytest.mark.slow
def test_demo_on_a_users_folder_writes_only_under_out(tmp_path):
  corpus = tmp_path / "my midi"  # a space, nested folders, other files
  (corpus / "set b").mkdir(parents=True)
  for i in range(12):
    name = (f"tune{i}.mid" if i % 3 else f"set b/Tune{i}.MIDI")
    (corpus / name).write_bytes(midi_builders.make_midi(_tune(i)))
  (corpus / "notes.txt").write_text("not music\n")
  before = _tree_digest(str(corpus))
  out = tmp_path / "out"
  # The default model, the RNN-NADE, tiny.
  args = (f"CORPUS={corpus}", f"OUT={out}", "NUM_SAMPLES=4",
          "TRAIN_FLAGS=--num_hidden=16 --num_hidden_recurrent=8 --epochs=2 "
          "--pretrain_rnn_epochs=1", "demo")
  done = _make(tmp_path, *args)
  assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
  assert _tree_digest(str(corpus)) == before
  spec = json.loads((out / "dataset-pieces" / "dataset.json").read_text())
  # 12 MIDI files below the folder (any case of .mid/.midi); notes.txt is
  # skipped, not trained on. Whole pieces, with a valid split.
  counts = spec["counts"]
  assert counts["converted"] == 12 and counts["skipped"] == 1, counts
  assert spec["num_timesteps"] == 0 and counts["files"]["valid"] >= 1
  job = out / "job-rnn_nade"
  assert json.loads((job / "model" / "model.json").read_text())["model"] == (
      "rnn_nade")
  assert json.loads((job / "evaluation.json").read_text())["exact"] is True
  # Calibrated on both held-out splits when one holds a single piece.
  assert (job / "model" / "sampling.json").exists()
  samples = sorted(p.name for p in (out / "samples-rnn_nade").iterdir()
                   if p.name.startswith("sample-"))
  assert len(samples) == 4
  comparison = json.loads(
      (out / "samples-rnn_nade" / "comparison.json").read_text())
  assert comparison["num_data"] == 12 and "dense_drift" in comparison
  assert f"samples vs {corpus}" in done.stdout
  # A rerun has nothing to redo: same corpus, same outputs.
  again = _make(tmp_path, *args[:-1], "preprocess")
  assert again.returncode == 0 and "preprocess.main" not in again.stdout, (
      again.stdout)


@pytest.mark.slow
@pytest.mark.parametrize("make_corpus,message", [
    (lambda d: d / "missing", "is not a folder"),
    (lambda d: (d / "empty").mkdir() or d / "empty", "holds no .mid or .midi"),
])
def test_a_corpus_that_is_not_a_midi_folder_is_one_line(tmp_path, make_corpus,
                                                        message):
  corpus = make_corpus(tmp_path)
  done = _make(tmp_path, f"CORPUS={corpus}", f"OUT={tmp_path / 'out'}",
               "preprocess")
  assert done.returncode == 2
  assert f"make: CORPUS={corpus} {message}" in done.stderr, done.stderr


@pytest.mark.slow
def test_demo_with_the_window_rbm_keeps_its_own_folders(tmp_path):
  corpus = tmp_path / "tunes"
  corpus.mkdir()
  for i in range(12):
    (corpus / f"tune{i}.mid").write_bytes(midi_builders.make_midi(_tune(i)))
  out = tmp_path / "out"
  done = _make(
      tmp_path, f"CORPUS={corpus}", f"OUT={out}", "MODEL=rbm",
      "NUM_SAMPLES=4", "TRAIN_FLAGS=--num_hidden=16 --max_steps=30",
      "EVAL_FLAGS=--ais_betas=100 --ais_chains=16",
      "GENERATE_FLAGS=--gibbs_steps=20", "demo")
  assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
  spec = json.loads((out / "dataset" / "dataset.json").read_text())
  assert spec["num_timesteps"] > 0  # windows
  model = json.loads((out / "job" / "model" / "model.json").read_text())
  assert model.get("model", "rbm") == "rbm"  # the window RBM's has no name
  assert (out / "job" / "model" / "sampling.json").exists()
  assert len(list((out / "samples").glob("sample-*.mid"))) == 4
  assert not (out / "job-rnn_nade").exists()
  assert not (out / "dataset-pieces").exists()


def test_an_unknown_model_is_one_line(tmp_path):
  done = _make(tmp_path, "MODEL=lstm", f"OUT={tmp_path / 'out'}", "preprocess")
  assert done.returncode == 2
  assert "MODEL=lstm is not a model: use one of rbm rnn_rbm rnn_nade bernoulli" in (
      done.stderr), done.stderr
