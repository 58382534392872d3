r"""Benchmark: the preprocessing pipeline against bare pretty_midi parsing.

    python -m preprocess.benchmark --input='data/chorales/*.mid'

Measured in one run, on the same files:
  * bare parsing: pretty_midi.PrettyMIDI on bytes already in memory, 1 core;
  * the pipeline's pure steps without Beam (read+parse+quantise, then
    windows+Examples), 1 core: how much the pipeline adds per file;
  * the pipeline on DirectRunner, 1 worker in-process (= per core), on the
    corpus and on the corpus linked `--copies` times. Each run is end to end
    (graph construction, runner start, matching, writing, dataset.json) in a
    warm process; the difference between the two runs gives the steady-state
    rate, free of that fixed cost, which a large corpus amortises;
  * the same two runs on all cores (multi_processing: worker processes start
    inside each run).
Every measurement is repeated `--repeats` times, interleaved, and the fastest
is kept, for bare parsing and pipeline alike: other processes on the machine
only ever slow a run down, so the minimum is the least disturbed estimate.
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

from preprocess import pianoroll
from preprocess import pipeline

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


def bare_parse_seconds(blobs: list) -> float:
  start = time.perf_counter()
  for _, data in blobs:
    pianoroll.parse_midi(data)
  return time.perf_counter() - start


def step_seconds(blobs: list, config: pipeline.PreprocessConfig) -> tuple:
  """Seconds of the pure steps: parse_file (parse + quantise), file_to_windows."""
  start = time.perf_counter()
  parsed = [pipeline.parse_file(b, config) for b in blobs]
  mid = time.perf_counter()
  for p in parsed:
    pipeline.file_to_windows(p, config)
  return mid - start, time.perf_counter() - mid


def timed_run(corpus_glob: str, workdir: str, options: list,
              config: pipeline.PreprocessConfig) -> tuple:
  """(seconds, files seen, windows) of one end-to-end run_pipeline."""
  out = tempfile.mkdtemp(dir=workdir)
  start = time.perf_counter()
  counts = pipeline.run_pipeline([corpus_glob], out, config,
                                 PipelineOptions(options), overwrite=True)
  seconds = time.perf_counter() - start
  shutil.rmtree(out, ignore_errors=True)
  return seconds, counts["files_seen"], sum(counts["windows"].values())


def replicate(paths: list, copies: int, workdir: str) -> str:
  """A folder of `copies` symlinks per file (distinct paths: distinct splits)."""
  folder = os.path.join(workdir, "copies")
  os.makedirs(folder)
  for c in range(copies):
    for p in paths:
      os.symlink(os.path.abspath(p),
                 os.path.join(folder, f"{c}_{os.path.basename(p)}"))
  return os.path.join(folder, "*")


def _rates(small: tuple, big: tuple) -> dict:
  """files/s and windows/s end to end at both sizes, and the marginal rate."""
  (t1, n1, w1), (tk, nk, wk) = small, big
  rates = {"e2e_small": (n1 / t1, w1 / t1, n1, t1),
           "e2e_big": (nk / tk, wk / tk, nk, tk), "steady": None}
  if tk > t1:  # else the noise exceeded the extra work: no estimate
    rates["steady"] = ((nk - n1) / (tk - t1), (wk - w1) / (tk - t1), nk - n1,
                       tk - t1)
  return rates


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
  config = pipeline.PreprocessConfig()
  cores = os.cpu_count()
  load_before = os.getloadavg()[0]
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
  n = len(paths)
  parse = n / min(runs["parse"])
  parse_step = n / min(t for t, _ in runs["steps"])
  windows_step = n / min(t for _, t in runs["steps"])
  one = _rates(min(runs["one_small"]), min(runs["one_big"]))
  multi = _rates(min(runs["multi_small"]), min(runs["multi_big"]))

  print(f"corpus: {n} files ({FLAGS.input}); {cores} cores; pretty_midi "
        f"{pretty_midi.__version__}; fastest of {FLAGS.repeats} runs each; "
        f"load average {load_before:.1f} at start, {os.getloadavg()[0]:.1f} "
        "at end")
  print(f"bare pretty_midi parsing, 1 core: {parse:7.1f} files/s  (all runs: "
        f"{', '.join(f'{n / t:.1f}' for t in runs['parse'])})")
  print(f"pure steps, 1 core, no Beam: read+parse+quantise {parse_step:7.1f} "
        f"files/s; windows+Examples {windows_step:7.1f} files/s")
  for name, rates, per in (("1 worker", one, 1),
                           (f"{cores} workers", multi, cores)):
    for key, label in (("e2e_small", "end to end"), ("e2e_big", "end to end"),
                       ("steady", "STEADY STATE")):
      if rates[key] is None:
        print(f"pipeline, {name:9s} {label:13s}: not measurable, the bigger "
              "corpus was not slower (noise)")
        continue
      files_s, windows_s, count, seconds = rates[key]
      what = (f"marginal {count} files in {seconds:.1f} s" if key == "steady"
              else f"{count} files in {seconds:.1f} s")
      print(f"pipeline, {name:9s} {label:13s}: {files_s:7.1f} files/s "
            f"{windows_s:8.1f} windows/s = {files_s / per:6.1f} files/s per "
            f"core  ({what})")
  if one["steady"]:
    ratio = one["steady"][0] / parse
    print(f"RATIO steady-state pipeline per core / bare parsing: {ratio:.2f}x "
          f"(goal >= {GOAL}x: {'MET' if ratio >= GOAL else 'MISSED'})")
  print(f"ratio end to end ({one['e2e_big'][2]} files, 1 worker, incl. Beam "
        f"start-up) / bare parsing: {one['e2e_big'][0] / parse:.2f}x")
  if multi["steady"]:
    print(f"ratio steady state per core, {cores} workers / bare parsing: "
          f"{multi['steady'][0] / cores / parse:.2f}x (on a machine whose "
          "cores other processes share, this undercounts)")


if __name__ == "__main__":
  app.run(main)
