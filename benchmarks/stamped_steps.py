"""The benchmarks' steps: the project's CLIs run as separate processes, each
output reused on a rerun only when the same command and the same code made it.

A step's output has a stamp file next to it (OUTPUT.flags) recording the
command and a digest of the sources of common/, preprocess/ and trainer/. A
rerun finds the stamp and skips the step; a stamp of another command or of
other code stops the run with a one-line error rather than report stale
figures (delete the folder to redo it).
"""

import functools
import hashlib
import json
import os
import subprocess
import sys
import time

from common import cli

# The packages whose code makes the datasets, models and figures: a stamp
# records a digest of their sources, so figures made by other code are stale.
_CODE_PACKAGES = ("common", "preprocess", "trainer")
_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def run(args, log_path):
  """Runs a CLI, its output appended to log_path; returns (stdout, seconds)."""
  start = time.perf_counter()
  with open(log_path, "a") as log:
    log.write("$ " + " ".join(args) + "\n")
    log.flush()
    result = subprocess.run([sys.executable, "-m", *args], stdout=subprocess.PIPE,
                            stderr=log, text=True, check=False)
  if result.returncode:
    raise cli.JobError(f"{args[0]} failed (exit {result.returncode}); see "
                       f"{log_path}")
  return result.stdout, time.perf_counter() - start


@functools.cache
def code_digest() -> str:
  """SHA-256 (16 hex digits) of the sources of _CODE_PACKAGES."""
  digest = hashlib.sha256()
  for package in _CODE_PACKAGES:
    for folder, dirs, files in os.walk(os.path.join(_ROOT, package)):
      dirs.sort()
      for name in sorted(files):
        if name.endswith(".py"):
          path = os.path.join(folder, name)
          digest.update(os.path.relpath(path, _ROOT).encode() + b"\0")
          with open(path, "rb") as f:
            digest.update(f.read() + b"\0")
  return digest.hexdigest()[:16]


def _stamp_text(args) -> str:
  return " ".join(args) + f"\ncode {code_digest()}"


def done(output, stamp_path, args) -> bool:
  """True when the file `output` exists and was made by exactly `args` and
  this code (the file `stamp_path` records both); False when it has not been
  made.

  Raises:
    cli.UsageError: it was made with other settings, by other code or by a
      version without stamps: the table must not report stale figures.
  """
  if not os.path.exists(output):
    return False
  made_by = ""
  if os.path.exists(stamp_path):
    with open(stamp_path) as f:
      made_by = f.read()
  if made_by == _stamp_text(args):
    return True
  if made_by.split("\n")[0] == " ".join(args):
    raise cli.UsageError(
        f"{output} was made by another version of this project's code (see "
        f"{stamp_path}); use another --workdir, or delete its folder and what "
        "was made from it.")
  raise cli.UsageError(
      f"{output} was made with other settings than this run's (see "
      f"{stamp_path}); use another --workdir, or delete its folder and what "
      "was made from it.")


def stamp(stamp_path, args) -> None:
  with open(stamp_path, "w") as f:
    f.write(_stamp_text(args))


def preprocess(out, args, log) -> str:
  """preprocess.main ARGS --output_dir=OUT --overwrite, once; returns OUT."""
  args = ["preprocess.main", *args, f"--output_dir={out}", "--overwrite"]
  if not done(os.path.join(out, "dataset.json"), out + ".flags", args):
    run(args, log)
    stamp(out + ".flags", args)
  return out


def train(job, data_dir, flags, log) -> tuple:
  """trainer.task into the job folder JOB, once; returns (model_dir, its
  training metrics with the wall time of the whole command as
  "wall_seconds")."""
  timing = os.path.join(job, "train_seconds.json")
  args = ["trainer.task", f"--data_dir={data_dir}", f"--job_dir={job}",
          *flags.split()]
  if not done(timing, job + ".flags", args):
    _, seconds = run(args, log)
    with open(timing, "w") as f:
      json.dump({"seconds": seconds}, f)
    stamp(job + ".flags", args)
  with open(timing) as f:
    metrics = {"wall_seconds": json.load(f)["seconds"]}
  metrics_path = os.path.join(job, "checkpoints", "metrics.json")
  if os.path.exists(metrics_path):
    with open(metrics_path) as f:
      metrics.update(json.load(f))
  return os.path.join(job, "model"), metrics


def evaluate(model_dir, data_dir, flags, log, name="evaluation") -> dict:
  """trainer.evaluate FLAGS, once; its JSON lands in the job folder as
  NAME.json (its stamp next to the job folder: JOB.NAME.flags)."""
  job = os.path.dirname(model_dir)
  path = os.path.join(job, name + ".json")
  args = ["trainer.evaluate", f"--model_dir={model_dir}",
          f"--data_dir={data_dir}", *flags.split()]
  stamp_path = f"{job}.{name}.flags"
  if not done(path, stamp_path, args):
    out, _ = run(args, log)
    with open(path, "w") as f:
      f.write(out)
    stamp(stamp_path, args)
  with open(path) as f:
    return json.load(f)
