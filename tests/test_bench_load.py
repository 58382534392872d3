"""Smoke test of benchmarks/bench_load.py at tiny size, so it cannot rot.

The same code path as `make bench-load`: a corpus with every kind of hostile
file, the pipeline's accounting, a model, generation killed and resumed to
local disk and to the GCS emulator, and the checks of the outputs.
"""

import os
import subprocess
import sys

import pytest

import tests

_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(tests.__file__)))


def _make_sources(folder):
  from tests import midi_builders  # pylint: disable=g-import-not-at-top
  os.makedirs(folder)
  for k in range(3):
    notes = [(60 + k + (i % 5), i, i + 1) for i in range(64)]
    with open(os.path.join(folder, f"src-{k}.mid"), "wb") as f:
      f.write(midi_builders.make_midi(notes))


@pytest.mark.slow
def test_bench_load_passes_at_tiny_size(tmp_path):
  _make_sources(tmp_path / "sources")
  out = subprocess.run(
      [sys.executable, "-m", "benchmarks.bench_load",
       f"--corpus={tmp_path / 'sources'}", "--num_files=30", "--num_hostile=9",
       "--num_samples=300", "--train_steps=6", "--direct_workers=1",
       "--eval_betas=10", "--long_minutes=0.5", "--preempt_steps=300",
       "--gibbs_steps=5",
       f"--workdir={tmp_path / 'work'}"],
      cwd=_ROOT, capture_output=True, text=True, timeout=900)
  assert out.returncode == 0, out.stdout + out.stderr[-3000:]
  assert "bench-load: PASS" in out.stdout
  assert "hostile" in out.stdout and "accounting" in out.stdout


def test_bench_load_rejects_bad_sizes():
  out = subprocess.run(
      [sys.executable, "-m", "benchmarks.bench_load", "--num_files=5"],
      cwd=_ROOT, capture_output=True, text=True, timeout=120)
  assert out.returncode == 2
  assert out.stderr.count("\n") <= 2 and "--num_files=5" in out.stderr
