r"""Benchmark: the preprocessing pipeline against bare pretty_midi parsing.

    python -m benchmarks.bench_preprocess --input='data/chorales/*.mid'   (make bench-preprocess)

Measured in one run, on the same files:
  * bare parsing: pretty_midi.PrettyMIDI on bytes already in memory, 1 core;
  * the pipeline's pure steps without Beam (read+parse+quantise, then
    windows+Examples), 1 core: how much the pipeline adds per file;
  * the pipeline on DirectRunner, 1 worker in this process (= per core), on the
    corpus and on `--copies` copies of it. Each run is end to end
    (graph construction, runner start, matching, writing, dataset.json) in a
    warm process; the difference between the two runs gives the steady-state
    rate, free of that fixed cost, which a large corpus amortises;
  * the same two runs on all cores (multi_processing: worker processes start
    inside each run).
Every measurement is repeated `--repeats` times, interleaved, and the fastest
is kept, for parsing and pipeline alike (other processes only ever slow a run
down). Single-core figures are given in wall-clock time and in CPU time of this
process (all its threads, so every bit of Beam overhead counts): on a machine
shared with other jobs, wall clock measures their load too, CPU time does not.
Goal (issue 2): the pipeline per core at >= 0.8x bare parsing, steady state.
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

from preprocess import config as config_lib
from preprocess import pianoroll
from preprocess import pipeline
from preprocess import steps

FLAGS = flags.FLAGS
flags.DEFINE_string("input", "data/chorales/*.mid", "Glob of MIDI files (local).")
flags.DEFINE_integer("copies", 4, "Corpus copies for the steady-state runs.")
flags.DEFINE_integer("repeats", 3, "Runs of every measurement; the fastest counts.",
                     lower_bound=1)
GOAL = 0.8
_ONE_WORKER = ["--direct_num_workers=1", "--direct_running_mode=in_memory"]
_ALL_CORES = ["--direct_num_workers=0", "--direct_running_mode=multi_processing"]


def read_all(paths: list) -> list:
  blobs = []
  for p in paths:
    with open(p, "rb") as f:
      blobs.append((p, f.read()))
  return blobs


class Clock:
  """Wall-clock and CPU seconds (this process, all threads) of a block."""

  def __enter__(self):
    self._wall, self._cpu = time.perf_counter(), time.process_time()
    return self

  def __exit__(self, *exc):
    self.wall = time.perf_counter() - self._wall
    self.cpu = time.process_time() - self._cpu


def bare_parse_seconds(blobs: list) -> tuple:
  """(wall, cpu) seconds to parse every file with pretty_midi."""
  with Clock() as c:
    for _, data in blobs:
      pianoroll.parse_midi(data)
  return c.wall, c.cpu


def step_seconds(blobs: list, config: config_lib.PreprocessConfig) -> tuple:
  """CPU seconds of the pure steps: parse_file, then file_to_windows."""
  with Clock() as parse:
    parsed = [steps.parse_file((path, data, "train"), config)
              for path, data in blobs]
  with Clock() as windows:
    for p in parsed:
      steps.file_to_windows(p, config)
  return parse.cpu, windows.cpu


def timed_run(corpus_glob: str, workdir: str, options: list,
              config: config_lib.PreprocessConfig) -> tuple:
  """(wall s, cpu s, files seen, windows) of one end-to-end run_pipeline."""
  out = tempfile.mkdtemp(dir=workdir)
  with Clock() as c:
    counts = pipeline.run_pipeline([corpus_glob], out, config,
                                   PipelineOptions(options), overwrite=True)
  shutil.rmtree(out, ignore_errors=True)
  return c.wall, c.cpu, counts["files_seen"], sum(counts["windows"].values())


def replicate(paths: list, copies: int, workdir: str) -> str:
  """A folder of `copies` copies of every file (distinct paths: distinct
  splits). Real copies: the pipeline reads a file reached through several
  links once (preprocess/steps.py `listing_identity`), so symlinks made the
  bigger corpus the same corpus and the steady state read 0 files/s."""
  folder = os.path.join(workdir, "copies")
  os.makedirs(folder)
  for c in range(copies):
    for p in paths:
      shutil.copyfile(p, os.path.join(folder, f"{c}_{os.path.basename(p)}"))
  return os.path.join(folder, "*")


def _fastest(runs: list) -> tuple:
  """Per column, the fastest of the repeated runs: (wall, cpu, files, windows)."""
  return (min(r[0] for r in runs), min(r[1] for r in runs)) + runs[0][2:]


def _rates(small: tuple, big: tuple, column: int) -> dict:
  """files/s and windows/s end to end at both sizes, and the marginal rate,
  from the wall (column 0) or CPU (column 1) seconds."""
  t1, n1, w1 = small[column], small[2], small[3]
  tk, nk, wk = big[column], big[2], big[3]
  rates = {"e2e_small": (n1 / t1, w1 / t1, n1, t1),
           "e2e_big": (nk / tk, wk / tk, nk, tk), "steady": None}
  if tk > t1:  # else the noise exceeded the extra work: no estimate
    rates["steady"] = ((nk - n1) / (tk - t1), (wk - w1) / (tk - t1), nk - n1,
                       tk - t1)
  return rates


def _line(label: str, rate, per: int = 1) -> str:
  if rate is None:
    return f"{label}: not measurable (the bigger corpus was not slower: noise)"
  files_s, windows_s, count, seconds = rate
  return (f"{label}: {files_s:6.1f} files/s {windows_s:7.1f} windows/s"
          + (f" = {files_s / per:5.1f} files/s per core" if per > 1 else "")
          + f"  ({count} files in {seconds:.1f} s)")


def measure(paths: list, config) -> dict:
  """Every measurement, FLAGS.repeats times, interleaved: name -> runs."""
  blobs = read_all(paths)
  runs = {k: [] for k in ("parse", "steps", "one_small", "one_big",
                          "multi_small", "multi_big")}
  workdir = tempfile.mkdtemp(prefix="bench-preprocess-")
  try:
    big = replicate(paths, FLAGS.copies, workdir)
    timed_run(FLAGS.input, workdir, _ONE_WORKER, config)  # warm-up: imports
    for _ in range(FLAGS.repeats):
      runs["parse"].append(bare_parse_seconds(blobs))
      runs["steps"].append(step_seconds(blobs, config))
      runs["one_small"].append(timed_run(FLAGS.input, workdir, _ONE_WORKER,
                                         config))
      runs["one_big"].append(timed_run(big, workdir, _ONE_WORKER, config))
      runs["multi_small"].append(timed_run(FLAGS.input, workdir, _ALL_CORES,
                                           config))
      runs["multi_big"].append(timed_run(big, workdir, _ALL_CORES, config))
  finally:
    shutil.rmtree(workdir, ignore_errors=True)
  return runs


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
  paths = sorted(glob.glob(FLAGS.input))
  if not paths:
    raise app.UsageError(f"--input={FLAGS.input!r} matches no file; run "
                         "`make data` for the demo corpus.")
  if FLAGS.copies < 2:
    raise app.UsageError(f"--copies={FLAGS.copies}: the steady state needs "
                         ">= 2 corpus sizes.")
  config = config_lib.PreprocessConfig()
  cores = os.cpu_count()
  load_before = os.getloadavg()[0]
  runs = measure(paths, config)
  n = len(paths)
  parse_wall = n / min(w for w, _ in runs["parse"])
  parse_cpu = n / min(c for _, c in runs["parse"])
  one_small, one_big = _fastest(runs["one_small"]), _fastest(runs["one_big"])
  one_wall = _rates(one_small, one_big, 0)
  one_cpu = _rates(one_small, one_big, 1)
  multi = _rates(_fastest(runs["multi_small"]), _fastest(runs["multi_big"]), 0)

  print(f"corpus: {n} files ({FLAGS.input}); {cores} cores; pretty_midi "
        f"{pretty_midi.__version__}; fastest of {FLAGS.repeats} runs each; "
        f"load average {load_before:.1f} at start, {os.getloadavg()[0]:.1f} "
        "at end")
  print(f"bare pretty_midi parsing, 1 core: {parse_wall:6.1f} files/s wall "
        f"clock, {parse_cpu:6.1f} files/s CPU time")
  print("pure steps without Beam, 1 core, CPU time: read+parse+quantise "
        f"{n / min(p for p, _ in runs['steps']):6.1f} files/s, windows+Examples "
        f"{n / min(w for _, w in runs['steps']):7.1f} files/s")
  print(_line("pipeline, 1 worker, wall clock, end to end  ",
              one_wall["e2e_small"]))
  print(_line("pipeline, 1 worker, wall clock, end to end  ",
              one_wall["e2e_big"]))
  print(_line("pipeline, 1 worker, wall clock, STEADY STATE", one_wall["steady"]))
  print(_line("pipeline, 1 worker, CPU time,   end to end  ",
              one_cpu["e2e_big"]))
  print(_line("pipeline, 1 worker, CPU time,   STEADY STATE", one_cpu["steady"]))
  print(_line(f"pipeline, {cores} workers, wall clock, end to end  ",
              multi["e2e_small"], cores))
  print(_line(f"pipeline, {cores} workers, wall clock, end to end  ",
              multi["e2e_big"], cores))
  print(_line(f"pipeline, {cores} workers, wall clock, STEADY STATE",
              multi["steady"], cores))
  for clock, rates, parse in (("CPU time", one_cpu, parse_cpu),
                              ("wall clock", one_wall, parse_wall)):
    label = f"RATIO per core, steady state, pipeline / bare parsing, {clock}"
    if rates["steady"]:
      ratio = rates["steady"][0] / parse
      print(f"{label}: {ratio:.2f}x (goal >= {GOAL}x: "
            f"{'met' if ratio >= GOAL else 'MISSED'})")
    else:  # a tiny or noisy run: say so rather than drop the goal's line
      print(f"{label}: not measurable (the bigger corpus was not slower: "
            "noise; raise --copies)")
  print(f"ratio per core, end to end ({one_big[2]} files, incl. Beam start-up),"
        f" wall clock: {one_wall['e2e_big'][0] / parse_wall:.2f}x")
  if multi["steady"]:
    print(f"ratio per core, steady state, {cores} workers / bare parsing, wall "
          f"clock: {multi['steady'][0] / cores / parse_wall:.2f}x (other jobs "
          "on this machine share its cores)")


if __name__ == "__main__":
  app.run(main)
