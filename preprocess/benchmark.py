r"""Benchmark: the preprocessing pipeline against bare pretty_midi parsing.

    python -m preprocess.benchmark --input='data/chorales/*.mid'

Measured in one run on the same files:
  * bare parsing: pretty_midi.PrettyMIDI on bytes already in memory, 1 core;
  * the pipeline on DirectRunner with 1 worker (per core), end to end, on the
    corpus and on the corpus copied `--copies` times; the difference between the
    two runs gives the steady-state rate, free of Beam's fixed start-up cost
    (imports, graph construction, runner start), which a large corpus amortises;
  * the pipeline on all cores (multi_processing), end to end.
Goal (issue 2): the pipeline per core at >= 0.8x bare parsing.
"""

import glob
import os
import shutil
import tempfile
import time

from absl import app
from absl import flags
from apache_beam.options.pipeline_options import PipelineOptions
import pretty_midi

from preprocess import pianoroll
from preprocess import pipeline

FLAGS = flags.FLAGS
flags.DEFINE_string("input", "data/chorales/*.mid", "Glob of MIDI files (local).")
flags.DEFINE_integer("copies", 3, "Corpus copies for the steady-state run.")
GOAL = 0.8


def bare_parse_rate(paths: list) -> float:
  blobs = []
  for p in paths:
    with open(p, "rb") as f:
      blobs.append(f.read())
  start = time.perf_counter()
  for b in blobs:
    pianoroll.parse_midi(b)
  return len(blobs) / (time.perf_counter() - start)


def timed_run(corpus_glob: str, workdir: str, options: list) -> tuple:
  out = tempfile.mkdtemp(dir=workdir)
  start = time.perf_counter()
  counts = pipeline.run_pipeline([corpus_glob], out, pipeline.PreprocessConfig(),
                                 PipelineOptions(options), overwrite=True)
  return time.perf_counter() - start, counts


def replicate(paths: list, copies: int, workdir: str) -> str:
  folder = os.path.join(workdir, "copies")
  os.makedirs(folder)
  for c in range(copies):
    for p in paths:
      os.symlink(os.path.abspath(p),
                 os.path.join(folder, f"{c}_{os.path.basename(p)}"))
  return os.path.join(folder, "*")


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
  paths = sorted(glob.glob(FLAGS.input))
  if not paths:
    raise app.UsageError(f"--input={FLAGS.input!r} matches no file; run "
                         "`make data` for the demo corpus.")
  n = len(paths)
  workdir = tempfile.mkdtemp(prefix="bench-preprocess-")
  try:
    one = ["--direct_num_workers=1", "--direct_running_mode=in_memory"]
    all_cores = ["--direct_num_workers=0",
                 "--direct_running_mode=multi_processing"]
    timed_run(FLAGS.input, workdir, one)  # warm-up: imports, TF, caches
    parse = bare_parse_rate(paths)
    t1, counts = timed_run(FLAGS.input, workdir, one)
    big = replicate(paths, FLAGS.copies, workdir)
    tk, counts_k = timed_run(big, workdir, one)
    tm, _ = timed_run(big, workdir, all_cores)
  finally:
    shutil.rmtree(workdir, ignore_errors=True)
  windows = sum(counts["windows"].values())
  windows_k = sum(counts_k["windows"].values())
  nk = n * FLAGS.copies
  steady = (nk - n) / (tk - t1)
  steady_windows = (windows_k - windows) / (tk - t1)
  cores = os.cpu_count()
  print(f"corpus: {n} files ({FLAGS.input}), pretty_midi {pretty_midi.__version__}")
  print(f"bare pretty_midi parsing, 1 core:          {parse:8.1f} files/s")
  print(f"pipeline, 1 worker, end to end ({n} files): {n / t1:8.1f} files/s "
        f"{windows / t1:9.1f} windows/s  (includes Beam start-up)")
  print(f"pipeline, 1 worker, end to end ({nk} files): {nk / tk:8.1f} files/s "
        f"{windows_k / tk:9.1f} windows/s")
  print(f"pipeline, 1 worker, steady state:          {steady:8.1f} files/s "
        f"{steady_windows:9.1f} windows/s  (marginal: {nk - n} files in "
        f"{tk - t1:.1f} s)")
  print(f"pipeline, {cores} workers, end to end ({nk} files): {nk / tm:8.1f} "
        f"files/s {windows_k / tm:9.1f} windows/s  ({nk / tm / cores:.1f} per core)")
  ratio = steady / parse
  print(f"ratio steady-state pipeline per core / bare parsing: {ratio:.2f}x "
        f"(goal >= {GOAL}x: {'PASS' if ratio >= GOAL else 'MISS'})")
  print(f"ratio end-to-end ({nk} files) per core / bare parsing: "
        f"{nk / tk / parse:.2f}x")


if __name__ == "__main__":
  app.run(main)
