"""Smoke test of benchmarks/bench_preprocess.py at tiny size, so it cannot rot.

It checks that every measurement runs and is reported, not the figures (speed
claims live in the README, measured by `make bench-preprocess`).
"""

import os
import subprocess
import sys

from tests import midi_builders

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_bench_preprocess_runs_every_measurement_on_a_tiny_corpus(tmp_path):
  for i in range(2):
    (tmp_path / f"p{i}.mid").write_bytes(
        midi_builders.make_midi(midi_builders.scale(30, low=50 + i)))
  env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
  done = subprocess.run(
      [sys.executable, "-m", "benchmarks.bench_preprocess",
       f"--input={tmp_path}/*.mid", "--copies=2", "--repeats=1"],
      cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
  assert done.returncode == 0, done.stderr[-3000:]
  assert "corpus: 2 files" in done.stdout
  assert "bare pretty_midi parsing, 1 core" in done.stdout
  assert "STEADY STATE" in done.stdout
  # The copies' runs read 2 x 2 files (symlinked copies were once read as
  # the corpus's 2 files again, and the steady state read 0 files/s).
  whole = [line for line in done.stdout.splitlines() if "end to end" in line]
  assert sum("(4 files in" in line for line in whole) == 3, whole
  assert "RATIO per core" in done.stdout
  assert sorted(os.listdir(tmp_path)) == ["p0.mid", "p1.mid"]  # no leftovers
