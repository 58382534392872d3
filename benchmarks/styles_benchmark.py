r"""The default recipe on several styles: `make demo CORPUS=...` on each corpus.

    python -m benchmarks.styles_benchmark --corpora_dir=data/corpora \
        --workdir=out/styles                      # make styles-benchmark

For each folder of --corpora_dir (the six of `make corpora`, or any MIDI
folders), runs the whole default recipe as a user would, `make demo
CORPUS=DIR OUT=WORKDIR/NAME` with no per-corpus flag, and reads what it wrote:
dataset.json (pieces, median length), the evaluation (held-out nats per frame
of the model and of the independent-Bernoulli baseline) and the comparison
(features that meet the data, the worst one, the two distribution features of
issue 16, dense drift, copies of training spans). Prints one table and writes
WORKDIR/results.json. A rerun resumes: make redoes only what changed, so a
finished corpus costs seconds (its time is then the first run's, kept in
WORKDIR/NAME/demo_seconds.json).
"""

import dataclasses
import json
import os
import subprocess
import sys
import time

from common import cli

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TIME_FILE = "demo_seconds.json"


@dataclasses.dataclass(frozen=True)
class StylesConfig:
  corpora_dir: str = cli.setting(
      "data/corpora", "Folder of corpora: each subfolder is one corpus of "
      "MIDI files (make corpora writes six).")
  workdir: str = cli.setting("out/styles", "One OUT folder per corpus.")
  corpora: tuple[str, ...] = cli.setting(
      (), "Comma-separated subfolder names to run (default: all, sorted).")
  make_flags: tuple[str, ...] = cli.setting(
      (), "Extra make variables for every corpus, e.g. NUM_SAMPLES=200 or "
      "MODEL=rnn_rbm (the default recipe's measurements use none).")


def _corpora(config: StylesConfig) -> list:
  if not os.path.isdir(config.corpora_dir):
    raise cli.UsageError(f"--corpora_dir={config.corpora_dir} is not a folder; "
                         "run `make corpora` first.")
  names = sorted(n for n in os.listdir(config.corpora_dir)
                 if os.path.isdir(os.path.join(config.corpora_dir, n)))
  wanted = list(config.corpora) or names
  missing = sorted(set(wanted) - set(names))
  if missing:
    raise cli.UsageError(f"--corpora={','.join(missing)}: not in "
                         f"{config.corpora_dir} (there: {', '.join(names)}).")
  return wanted


def _read_json(path: str):
  try:
    with open(path) as f:
      text = f.read()
  except FileNotFoundError:
    return None
  # make evaluate tees the CLI's stdout: the JSON is its last object.
  return json.loads(text[text.index("{"):]) if "{" in text else None


def _layout(out: str) -> list:
  """The folders under OUT this benchmark reads, whatever MODEL= is given
  (make puts another model's in folders of its own name)."""
  return [f"DATASET={out}/dataset", f"JOB_DIR={out}/job",
          f"SAMPLES={out}/samples"]


def _run_demo(corpus: str, out: str, make_flags) -> float:
  """Runs the recipe; returns the first complete run's seconds."""
  timing = os.path.join(out, TIME_FILE)
  start = time.perf_counter()
  done = subprocess.run(
      ["make", "--no-print-directory", "demo", f"CORPUS={corpus}",
       f"OUT={out}", f"PY={sys.executable}", *_layout(out), *make_flags],
      cwd=ROOT, check=False, stderr=subprocess.PIPE, text=True)
  if done.returncode:
    tail = done.stderr.strip().splitlines()[-1:] or ["(no message)"]
    raise cli.JobError(f"make demo CORPUS={corpus} failed: {tail[0]}")
  seconds = time.perf_counter() - start
  first = _read_json(timing)
  if first is None:
    with open(timing, "w") as f:
      json.dump({"seconds": seconds}, f)
    return seconds
  return first["seconds"]


def measure(name: str, corpus: str, out: str, make_flags=()) -> dict:
  """One corpus through the recipe: the row of the table."""
  seconds = _run_demo(corpus, out, make_flags)
  spec = _read_json(os.path.join(out, "dataset", "dataset.json"))
  evaluation = _read_json(os.path.join(out, "job", "evaluation.json")) or {}
  comparison = _read_json(os.path.join(out, "samples", "comparison.json"))
  from preprocess import records  # pylint: disable=g-import-not-at-top
  dataset = records.DatasetSpec.from_json(json.dumps(spec))
  features = comparison["features"]
  memo = comparison.get("memorisation") or {}
  return {
      "corpus": name, "pieces": spec["counts"]["converted"],
      "median_bars": dataset.median_piece_bars(),
      "demo_minutes": seconds / 60,
      "nll_per_frame": -evaluation.get("loglik_per_frame", float("nan")),
      "bernoulli_nll_per_frame": -evaluation.get("baseline_loglik_per_frame",
                                                 float("nan")),
      "features_met": sum(r["meets_data"] for r in features.values()),
      "features": len(features),
      # The corpus's held-out pieces against its training pieces.
      "heldout_features_met": (comparison.get("heldout_baseline") or {}).get(
          "features_met"),
      "polyphony_overlap": features["polyphony_histogram"]["overlap"],
      "key_free_pitch_overlap": features[
          "key_free_pitch_class_histogram"]["overlap"],
      "silent_share": features["silent_share"]["relative_difference"],
      "dense_drift": comparison["dense_drift"],
      "copies": memo.get("share_samples_with_copy"),
      "summary": comparison["summary"],
  }


def table(rows: list) -> str:
  head = ("| corpus | pieces | median bars | demo min | NLL/frame (Bernoulli) "
          "| features met (held-out pieces) | polyphony OA | key-free PC OA | silent share | "
          "dense drift (data) | copies |\n|---|---|---|---|---|---|---|---|---"
          "|---|---|")
  lines = [head]
  for r in rows:
    drift = r["dense_drift"]
    copies = "n/a" if r["copies"] is None else f"{r['copies']:.1%}"
    own = r.get("heldout_features_met")
    own = "" if own is None else f" ({own}/{r['features']})"
    lines.append(
        f"| {r['corpus']} | {r['pieces']} | {r['median_bars']} | "
        f"{r['demo_minutes']:.1f} | {r['nll_per_frame']:.2f} "
        f"({r['bernoulli_nll_per_frame']:.2f}) | {r['features_met']}/"
        f"{r['features']}{own} | {r['polyphony_overlap']:.2f} | "
        f"{r['key_free_pitch_overlap']:.2f} | {r['silent_share']:+.0%} | "
        f"{drift['share_samples']:.1%} ({drift['share_data']:.1%}) | "
        f"{copies} |")
  return "\n".join(lines)


def main(argv):
  del argv
  config = cli.config_from_flags(StylesConfig)
  rows = []
  for name in _corpora(config):
    out = os.path.join(config.workdir, name)
    os.makedirs(out, exist_ok=True)
    rows.append(measure(name, os.path.join(config.corpora_dir, name), out,
                        config.make_flags))
    print(f"{name}: {rows[-1]['summary']}", flush=True)
  with open(os.path.join(config.workdir, "results.json"), "w") as f:
    json.dump(rows, f, indent=1)
  print(table(rows))


if __name__ == "__main__":
  cli.define_flags(StylesConfig)
  cli.run(main)
