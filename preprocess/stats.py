"""Counting what happened to every file: Beam counters and dataset.json's counts.

Every input file contributes exactly one stats record (converted, failed or
skipped, with a reason); a file listed more than once (overlapping globs, a
symlinked folder) is read once and adds a "duplicate" record with the count
of its extra listings, which are not files seen. `CountStats` mirrors them
into Beam Metrics (what Dataflow's UI shows); `CombineStats` adds them into
the counts written to dataset.json, computed by the pipeline itself so that
every runner writes the same file.
"""

import apache_beam as beam
from apache_beam.metrics import Metrics
from apache_beam.transforms import window as beam_window
from apache_beam.utils import windowed_value

from preprocess import corpus_fit
from preprocess import records
from preprocess.config import PreprocessConfig

NAMESPACE = "preprocess"
# The status of the record of a file's extra listings (not a file seen).
DUPLICATE = "duplicate"
_DROPPED = ("silent_windows", "notes_out_of_range", "drum_notes")


class CountStats(beam.DoFn):
  """Beam Metrics counters, one per outcome and per drop reason."""

  def process(self, stats):
    status, reason = stats["status"], stats.get("reason")
    if status == DUPLICATE:
      Metrics.counter(NAMESPACE, "duplicate_listings").inc(stats["count"])
      yield stats
      return
    Metrics.counter(NAMESPACE, "files_seen").inc()
    Metrics.counter(NAMESPACE, "files_" + status).inc()
    if reason:
      Metrics.counter(NAMESPACE, f"{status}_{reason}").inc()
    if stats.get("windows"):
      Metrics.counter(NAMESPACE, "windows_" + stats["split"]).inc(
          stats["windows"])
    for key in _DROPPED:
      if stats.get(key):
        Metrics.counter(NAMESPACE, key).inc(stats[key])
    yield stats


class CombineStats(beam.CombineFn):
  """Adds every file's stats record into the counts of dataset.json."""

  def create_accumulator(self):
    return {"files_seen": 0, "converted": 0, "failed": 0, "skipped": 0,
            "failed_reasons": {}, "skipped_reasons": {},
            "windows": dict.fromkeys(records.SPLITS, 0),
            "files": dict.fromkeys(records.SPLITS, 0),
            "silent_windows": 0, "notes_out_of_range": 0, "drum_notes": 0,
            "duplicates": 0, "piece_bars": {}, "unit_sum": None}

  def add_input(self, acc, stats):
    status = stats["status"]
    if status == DUPLICATE:
      acc["duplicates"] += stats["count"]
      return acc
    acc["files_seen"] += 1
    acc[status] += 1
    if status in ("failed", "skipped"):
      reasons = acc[status + "_reasons"]
      reasons[stats["reason"]] = reasons.get(stats["reason"], 0) + 1
    if "split" in stats and status == "converted":
      acc["files"][stats["split"]] += 1
      acc["windows"][stats["split"]] += stats["windows"]
      if "bars" in stats:  # {bars: pieces}, every split, as written
        bars = acc["piece_bars"]
        bars[str(stats["bars"])] = bars.get(str(stats["bars"]), 0) + 1
      if "steps" in stats:  # whole pieces: their total length per split
        steps = acc.setdefault("steps", {})
        steps[stats["split"]] = steps.get(stats["split"], 0) + stats["steps"]
    for key in _DROPPED:
      acc[key] += stats.get(key, 0)
    if stats.get("unit_sum") is not None:
      acc["unit_sum"] = (stats["unit_sum"] if acc["unit_sum"] is None else
                         acc["unit_sum"] + stats["unit_sum"])
    return acc

  def merge_accumulators(self, accumulators):
    merged = self.create_accumulator()
    for acc in accumulators:
      for key, value in acc.items():
        if key == "unit_sum":
          if value is not None:
            merged[key] = value if merged[key] is None else merged[key] + value
        elif isinstance(value, dict):
          into = merged.setdefault(key, {})  # "steps" exists for whole pieces
          for k, v in value.items():
            into[k] = into.get(k, 0) + v
        else:
          merged[key] += value
    return merged

  def extract_output(self, acc):
    return acc


class BundleStats(beam.DoFn):
  """Adds up the stats records of a bundle; emits one accumulator per bundle.

  A converted file's record holds its unit sums (n_visible numbers). A runner
  that does not pre-combine before the global combine (DirectRunner) held one
  per file: peak memory grew with the corpus (1.85 GB for 20,000 files,
  against 0.23 GB without them; `make bench-load`). Summing here, inside the
  stage that makes the records, sends a few accumulators instead.
  """

  def start_bundle(self):
    self._combine = CombineStats()
    self._acc = None

  def process(self, stats):
    if self._acc is None:
      self._acc = self._combine.create_accumulator()
    self._acc = self._combine.add_input(self._acc, stats)

  def finish_bundle(self):
    if self._acc is not None:
      yield windowed_value.WindowedValue(
          self._acc, beam_window.GlobalWindow().max_timestamp(),
          [beam_window.GlobalWindow()])
      self._acc = None


class MergeStats(CombineStats):
  """CombineStats over BundleStats' accumulators."""

  def add_input(self, acc, partial):
    return self.merge_accumulators([acc, partial])


def make_dataset_spec(acc: dict, config: PreprocessConfig,
                      explicit_splits=(), fitted=None) -> records.DatasetSpec:
  """The combined counts and the layout -> dataset.json (shards not yet listed).

  `explicit_splits`: the splits given as globs (--eval_input, --valid_input).
  `fitted`: corpus_fit.fitted_layout's record, with --fit_corpus.
  """
  counts = {k: v for k, v in acc.items() if k != "unit_sum"}
  n_train = counts["windows"][records.TRAIN_PREFIX]
  if acc["unit_sum"] is None or n_train == 0:
    unit_means = [0.0] * config.n_visible
  else:
    unit_means = (acc["unit_sum"] / n_train).round(6).tolist()
  return records.DatasetSpec(
      encoding=config.encoding, low_note=config.low_note,
      high_note=config.high_note, steps_per_quarter=config.steps_per_quarter,
      num_timesteps=config.num_timesteps, stride=config.stride,
      n_visible=config.n_visible, unit_means=unit_means, counts=counts,
      transpose=config.transpose, eval_fraction=config.eval_fraction,
      valid_fraction=config.valid_fraction,
      explicit_splits=list(explicit_splits), quantize=config.quantize,
      fitted=dict(fitted or {}))


def summary(counts: dict, output_dir: str, fitted=None) -> str:
  """What a run did, in three lines (preprocess.main and deploy.dataflow),
  four with --fit_corpus (`fitted`: dataset.json's record of the fit)."""
  w, f = counts["windows"], counts["files"]
  fit = corpus_fit.describe(fitted) + "\n" if fitted else ""
  return fit + (
      f"{counts['files_seen']} files seen: {counts['converted']} converted, "
      f"{counts['failed']} failed {counts['failed_reasons']}, "
      f"{counts['skipped']} skipped {counts['skipped_reasons']}"
      f"{_duplicates(counts)}\n"
      f"windows: train {w['train']} from {f['train']} files, eval {w['eval']} "
      f"from {f['eval']} files, valid {w.get('valid', 0)} from "
      f"{f.get('valid', 0)} files; dropped: {counts['silent_windows']} silent "
      f"windows, {counts['notes_out_of_range']} notes out of range, "
      f"{counts['drum_notes']} drum notes\n"
      f"-> {output_dir} (dataset.json, {len(counts['shards'])} shards, "
      "failures in errors-*.jsonl)")


def _duplicates(counts: dict) -> str:
  n = counts.get("duplicates", 0)  # older dataset.json files lack it
  if not n:
    return ""
  return (f"; {n} duplicate listings read once (a file matched by two globs, "
          "or reached through a symlink)")
