r"""The preprocessing pipeline: a MIDI corpus -> TFRecord piano-roll windows.

    globs -> match -> (path, size) -> bytes -> notes -> windows -> tf.train.Example
                   \-> skipped       \-> dead letters (errors-*.jsonl)
    every file -> one stats record -> dataset.json (counts + unit means)

The per-element steps are pure functions (easy to test without Beam); the Beam
graph is composed in `build_pipeline` (its file-independent core, `ConvertCorpus`,
is tested under TestPipeline). Failures travel as `FileRejected` subclasses whose
`reason` names why; anything unexpected is caught by Beam's dead-letter pattern
too, so one bad file never stops a corpus. Counts that land in dataset.json are
computed by the pipeline itself (not read back from Beam metrics), so
DirectRunner and Dataflow write the same file.

This module must not read flags (preprocess/main.py does) nor import
TensorFlow: Examples are serialised without it (records.make_example), and a
worker process that imported it would pay ~4 s and ~500 MB for nothing.
"""

import dataclasses
import hashlib
import json
import os
import posixpath

from absl import logging
import apache_beam as beam
from apache_beam.io import fileio
from apache_beam.io.filesystem import CompressionTypes
from apache_beam.io.filesystems import FileSystems
from apache_beam.metrics import Metrics
from apache_beam.metrics.metric import MetricsFilter
from apache_beam.options.pipeline_options import PipelineOptions
from apache_beam.options.pipeline_options import SetupOptions
from apache_beam.options.pipeline_options import StandardOptions
from apache_beam.options.pipeline_options import WorkerOptions
from apache_beam.runners.runner import PipelineState
import numpy as np

from preprocess import pianoroll
from preprocess import records

MIDI_EXTENSIONS = (".mid", ".midi")
_NAMESPACE = "preprocess"


@dataclasses.dataclass(frozen=True)
class PreprocessConfig:
  """Everything that decides what the windows look like.

  The defaults reproduce the seed: onoff encoding, 78 pitches, 16th notes,
  non-overlapping windows of 15 steps (2340 visible units):
      python -m preprocess.main --input='data/chorales/*.mid' --output_dir=out/dataset
  """

  # "onoff" (play + articulate columns, the seed's) or "roll" (play only).
  encoding: str = "onoff"
  # Pitch range [low_note, high_note); notes outside it are dropped and counted.
  low_note: int = 24
  high_note: int = 102
  # Grid steps per quarter note (4 = 16th notes).
  steps_per_quarter: int = 4
  # Window length in steps; one window is one visible vector.
  num_timesteps: int = 15
  # Steps between window starts; = num_timesteps gives non-overlapping windows.
  stride: int = 15
  # Fraction of FILES (not windows) held out for evaluation, by path hash.
  eval_fraction: float = 0.1
  # Augment training files with shifts -transpose..transpose semitones.
  transpose: int = 0
  # TFRecord shards per split; 0 lets the runner decide.
  num_shards: int = 0
  # Keep drum tracks (their "pitches" are instruments, so off by default).
  include_drums: bool = False
  # Files larger than this are rejected unread (reason too_large).
  max_file_bytes: int = 32 * 1024 * 1024
  # Files longer than this many grid steps are rejected (reason too_long):
  # 200k 16th notes is ~3.5 hours at 120 bpm, far beyond any real piece.
  max_steps: int = 200_000

  def __post_init__(self):
    self.roll_spec  # pylint: disable=pointless-statement  # validates the layout
    if self.num_timesteps < 1:
      raise ValueError(f"num_timesteps={self.num_timesteps} must be >= 1 "
                       "(the seed uses 15).")
    if self.stride < 1:
      raise ValueError(f"stride={self.stride} must be >= 1; use stride="
                       f"{self.num_timesteps} for non-overlapping windows.")
    if not 0.0 <= self.eval_fraction <= 1.0:
      raise ValueError(f"eval_fraction={self.eval_fraction} must be in "
                       "[0, 1].")
    if not 0 <= self.transpose <= 12:
      raise ValueError(f"transpose={self.transpose} must be in 0..12 "
                       "semitones.")
    if self.num_shards < 0:
      raise ValueError(f"num_shards={self.num_shards} must be >= 0 "
                       "(0: runner decides).")
    if self.max_file_bytes < 1 or self.max_steps < 1:
      raise ValueError("max_file_bytes and max_steps must be positive.")

  @property
  def roll_spec(self) -> pianoroll.RollSpec:
    return pianoroll.RollSpec(self.encoding, self.low_note, self.high_note,
                              self.steps_per_quarter)

  @property
  def n_visible(self) -> int:
    return self.num_timesteps * self.roll_spec.n_columns


# --- Errors found before launch: nothing has been written. --------------------


class LaunchError(Exception):
  """Bad inputs, outputs or options, found before the pipeline starts."""


class InputError(LaunchError, ValueError):
  """An input glob or path cannot be used."""


class OutputExistsError(LaunchError, FileExistsError):
  """output_dir already holds a dataset and overwrite was not asked for."""


class OptionsError(LaunchError, ValueError):
  """A Beam option that is unknown, or Dataflow without the package."""


_SETUP_PY = os.path.join(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))), "setup.py")


def beam_options(argv: list) -> PipelineOptions:
  """Beam options from command-line args; typos are errors, not ignored.

  On Dataflow, --setup_file defaults to this project's setup.py so workers
  install the package (unless a custom --sdk_container_image is given).
  """
  options = PipelineOptions(argv)
  parser = []  # Beam's own parser, with every option class registered
  options.get_all_options(add_extra_args_fn=parser.append)
  _, unknown = parser[0].parse_known_args(argv)
  if unknown:
    raise OptionsError(
        f"Unknown arguments {unknown}: neither preprocess.main's flags (see "
        "--help) nor Beam pipeline options.")
  runner = str(options.view_as(StandardOptions).runner or "")
  setup = options.view_as(SetupOptions)
  if ("dataflow" in runner.lower() and not setup.setup_file and
      not options.view_as(WorkerOptions).sdk_container_image):
    if not os.path.exists(_SETUP_PY):
      raise OptionsError("Dataflow workers need this package: pass "
                         "--setup_file=PATH/setup.py or --sdk_container_image.")
    setup.setup_file = _SETUP_PY
  return options


# --- Why a file is rejected: the class carries the reason. -------------------


class FileRejected(Exception):
  """A file the pipeline cannot use; `reason` goes to errors-*.jsonl."""
  reason = "unexpected_error"


class EmptyFile(FileRejected):
  reason = "empty_file"


class TooLarge(FileRejected):
  reason = "too_large"


class Unreadable(FileRejected):
  """Listed but not readable (deleted meanwhile, permissions, I/O error)."""
  reason = "unreadable"


class CorruptMidi(FileRejected):
  reason = "corrupt_midi"


class NoNotes(FileRejected):
  reason = "no_notes"


class OnlyDrums(FileRejected):
  reason = "only_drums"


class TooLong(FileRejected):
  reason = "too_long"


# --- Pure per-element steps. ------------------------------------------------


@dataclasses.dataclass
class ParsedFile:
  path: str
  split: str
  notes: pianoroll.Notes
  drum_notes: int


@dataclasses.dataclass
class FileWindows:
  """Serialized Examples of one file and the one stats record it contributes."""
  train: list
  eval: list
  stats: dict


def is_midi_path(path: str) -> bool:
  return path.lower().endswith(MIDI_EXTENSIONS)


def split_of(path: str, eval_fraction: float) -> str:
  """Train or eval, from a stable hash of the path: a piece is in one split."""
  digest = hashlib.sha256(path.encode("utf-8")).digest()
  position = int.from_bytes(digest[:8], "big") / 2.0**64  # uniform in [0, 1)
  return records.EVAL_PREFIX if position < eval_fraction else records.TRAIN_PREFIX


def read_file(path_and_size: tuple, max_file_bytes: int) -> tuple:
  """(path, size) -> (path, bytes). The size check happens before reading."""
  path, size = path_and_size
  if size > max_file_bytes:
    raise TooLarge(f"{size} bytes > max_file_bytes={max_file_bytes}")
  if size == 0:
    raise EmptyFile("0 bytes")
  try:
    # UNCOMPRESSED: a name ending in .gz must not be inflated behind our back.
    with FileSystems.open(path,
                          compression_type=CompressionTypes.UNCOMPRESSED) as f:
      data = f.read(max_file_bytes + 1)
  except OSError as e:  # BeamIOError is an OSError too
    raise Unreadable(f"{type(e).__name__}: {e}") from e
  if not data:
    raise EmptyFile("0 bytes")
  if len(data) > max_file_bytes:  # grew since it was listed
    raise TooLarge(f"more than max_file_bytes={max_file_bytes}")
  return path, data


def parse_file(path_and_data: tuple, config: PreprocessConfig) -> ParsedFile:
  """(path, bytes) -> quantised notes, or a FileRejected saying why not."""
  path, data = path_and_data
  try:
    pm = pianoroll.parse_midi(data)
  except Exception as e:  # pylint: disable=broad-except
    # pretty_midi/mido raise many types (ValueError, EOFError, OSError,
    # KeyError, IndexError...) on bad bytes: all mean the same to us.
    raise CorruptMidi(f"{type(e).__name__}: {e}") from e
  notes, drum_notes = pianoroll.extract_notes(pm, config.steps_per_quarter,
                                              config.include_drums)
  if not len(notes):
    if drum_notes:
      raise OnlyDrums(f"{drum_notes} drum notes and no other notes "
                      "(--include_drums keeps drums)")
    raise NoNotes("the file has no notes")
  length = int(notes.end.max())
  if length > config.max_steps:
    raise TooLong(f"{length} grid steps > max_steps={config.max_steps}")
  return ParsedFile(path, split_of(path, config.eval_fraction), notes,
                    drum_notes)


def file_to_windows(parsed: ParsedFile, config: PreprocessConfig) -> FileWindows:
  """Renders a file (and its transpositions, if training) into Examples."""
  spec = config.roll_spec
  is_train = parsed.split == records.TRAIN_PREFIX
  shifts = range(-config.transpose, config.transpose + 1) if is_train else [0]
  examples = []
  unit_sum = np.zeros(config.n_visible, np.int64) if is_train else None
  silent = out_of_range = 0
  for shift in shifts:
    matrix, dropped = pianoroll.notes_to_matrix(parsed.notes, spec, shift)
    if shift == 0:
      out_of_range = dropped
    for offset, window in pianoroll.cut_windows(matrix, config.num_timesteps,
                                                config.stride):
      if not window.any():
        silent += 1
        continue
      examples.append(records.make_example(window, parsed.path, offset, shift))
      if is_train:
        unit_sum += window.reshape(-1)
  stats = {"path": parsed.path, "split": parsed.split, "windows": len(examples),
           "silent_windows": silent, "notes_out_of_range": out_of_range,
           "drum_notes": parsed.drum_notes, "unit_sum": unit_sum}
  # The reasons judge the file as written, not as rendered: a file whose
  # notes all fall outside the pitch range renders to an empty matrix.
  if examples:
    stats["status"] = "converted"
  elif int(parsed.notes.end.max()) < config.num_timesteps:
    stats.update(status="skipped", reason="shorter_than_window")
  elif out_of_range == len(parsed.notes):
    stats.update(status="skipped", reason="all_notes_out_of_range")
  else:
    stats.update(status="skipped", reason="only_silent_windows")
  if is_train:
    return FileWindows(examples, [], stats)
  return FileWindows([], examples, stats)


def skipped_stats(path_and_size: tuple) -> dict:
  return {"path": path_and_size[0], "status": "skipped", "reason": "not_midi"}


def dead_letter_to_error(bad) -> dict:
  """Beam's dead letter (element, (type, repr, traceback)) -> error record."""
  element, (exc_type, exc_repr, exc_traceback) = bad
  path = element[0] if isinstance(element, tuple) else getattr(
      element, "path", str(element))
  reason = getattr(exc_type, "reason", FileRejected.reason)
  error = {"path": path, "reason": reason, "message": exc_repr}
  if reason == FileRejected.reason:
    # Not a known kind of bad file but a bug (ours or a library's): keep
    # where it happened, or nobody can fix it.
    error["traceback"] = "".join(exc_traceback)
  return error


def error_stats(error: dict) -> dict:
  return {"path": error["path"], "status": "failed", "reason": error["reason"]}


class CountStats(beam.DoFn):
  """Beam Metrics counters, one per outcome and per drop reason."""

  def process(self, stats):
    status, reason = stats["status"], stats.get("reason")
    Metrics.counter(_NAMESPACE, "files_seen").inc()
    Metrics.counter(_NAMESPACE, "files_" + status).inc()
    if reason:
      Metrics.counter(_NAMESPACE, f"{status}_{reason}").inc()
    if stats.get("windows"):
      Metrics.counter(_NAMESPACE, "windows_" + stats["split"]).inc(
          stats["windows"])
    for key in ("silent_windows", "notes_out_of_range", "drum_notes"):
      if stats.get(key):
        Metrics.counter(_NAMESPACE, key).inc(stats[key])
    yield stats


class CombineStats(beam.CombineFn):
  """Adds every file's stats record into the counts of dataset.json."""

  def create_accumulator(self):
    return {"files_seen": 0, "converted": 0, "failed": 0, "skipped": 0,
            "failed_reasons": {}, "skipped_reasons": {},
            "windows": {records.TRAIN_PREFIX: 0, records.EVAL_PREFIX: 0},
            "files": {records.TRAIN_PREFIX: 0, records.EVAL_PREFIX: 0},
            "silent_windows": 0, "notes_out_of_range": 0, "drum_notes": 0,
            "unit_sum": None}

  def add_input(self, acc, stats):
    acc["files_seen"] += 1
    status = stats["status"]
    acc[status] += 1
    if status in ("failed", "skipped"):
      reasons = acc[status + "_reasons"]
      reasons[stats["reason"]] = reasons.get(stats["reason"], 0) + 1
    if "split" in stats and status == "converted":
      acc["files"][stats["split"]] += 1
      acc["windows"][stats["split"]] += stats["windows"]
    for key in ("silent_windows", "notes_out_of_range", "drum_notes"):
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
          for k, v in value.items():
            merged[key][k] = merged[key].get(k, 0) + v
        else:
          merged[key] += value
    return merged

  def extract_output(self, acc):
    return acc


def make_dataset_spec(acc: dict, config: PreprocessConfig) -> records.DatasetSpec:
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
      transpose=config.transpose, eval_fraction=config.eval_fraction)


def write_dataset_spec(acc, output_dir, config, *written_files):
  """Writes dataset.json, once every shard and the errors file are final.

  `written_files` (the sinks' outputs, as side inputs) only make this step
  wait for them. The shard names in the counts come from listing output_dir,
  which `prepare_output_dir` left empty of earlier outputs: a sink whose
  finalize is retried does not return the shards it had already renamed.

  Returns:
    dataset.json's counts.
  """
  del written_files  # only an ordering dependency
  spec = make_dataset_spec(acc, config)
  counts = dict(spec.counts)
  counts["shards"] = sorted(
      posixpath.basename(p) for p in previous_outputs(output_dir)
      if p.endswith(records.TFRECORD_SUFFIX))
  spec = dataclasses.replace(spec, counts=counts)
  with FileSystems.create(_join(output_dir, records.SPEC_FILENAME)) as f:
    f.write(spec.to_json().encode("utf-8"))
  return counts


# --- Launch-time checks and the Beam graph. ------------------------------------


def _join(directory: str, name: str) -> str:
  return FileSystems.join(directory, name)


def _is_glob(pattern: str) -> bool:
  return any(c in pattern for c in "*?[")


def check_inputs(inputs: list) -> None:
  """Fails early unless every glob matches at least one file.

  Raises:
    InputError: naming the glob, and what would work.
  """
  if not inputs:
    raise InputError("--input is empty: give one or more comma-separated "
                     "globs, e.g. --input='data/chorales/*.mid'.")
  for pattern in inputs:
    if not _is_glob(pattern) and os.path.isdir(pattern):
      # A bare folder would match itself, be skipped as not MIDI, and yield an
      # empty dataset: almost certainly not what was meant.
      raise InputError(
          f"--input {pattern!r} is a folder; give a glob of files, e.g. "
          f"{posixpath.join(pattern, '*.mid')!r}, or "
          f"{posixpath.join(pattern, '**')!r} for every file below it.")
    result = FileSystems.match([pattern], limits=[1])[0]
    if not result.metadata_list:
      raise InputError(
          f"--input glob {pattern!r} matches no file; check the path (local or "
          "gs://), quote the glob in the shell, and use DIR/** for every file "
          "below a folder.")


def check_runner_paths(inputs: list, output_dir: str,
                       options: PipelineOptions) -> None:
  """Remote runners cannot see this machine's disk: demand gs:// paths."""
  runner = str(options.view_as(StandardOptions).runner or "DirectRunner")
  if "dataflow" not in runner.lower():
    return
  local = [p for p in list(inputs) + [output_dir] if not p.startswith("gs://")]
  if local:
    raise InputError(
        f"--runner={runner} runs on remote workers, which cannot read or write "
        f"local paths {local}; upload the corpus (gsutil -m cp -r DIR "
        "gs://BUCKET/corpus) and use gs:// for --input and --output_dir.")


def previous_outputs(output_dir: str) -> list:
  """Paths in output_dir that this pipeline writes (would be clobbered)."""
  found = []
  for name in (records.SPEC_FILENAME,
               f"{records.TRAIN_PREFIX}-*", f"{records.EVAL_PREFIX}-*",
               f"{records.ERRORS_PREFIX}-*"):
    # A missing local folder matches nothing; a missing bucket raises, which
    # is the right thing to tell the user before anything runs.
    result = FileSystems.match([_join(output_dir, name)])[0]
    found.extend(m.path for m in result.metadata_list)
  return sorted(found)


def prepare_output_dir(output_dir: str, overwrite: bool) -> None:
  """Refuses to mix two datasets in one folder; with overwrite, empties it.

  Earlier outputs are deleted before the run, not after: Beam's file sinks
  delete or skip same-named files of an earlier run at finalize time, and
  shards of another shard count would be read as extra data.

  Raises:
    OutputExistsError: output_dir holds outputs and overwrite is False.
  """
  existing = previous_outputs(output_dir)
  if existing and not overwrite:
    raise OutputExistsError(
        f"--output_dir={output_dir} already holds a dataset ({len(existing)} "
        f"files, e.g. {existing[0]}); choose another directory or pass "
        "--overwrite to replace it.")
  if existing:
    logging.info("--overwrite: deleting %d files of the dataset in %s",
                 len(existing), output_dir)
    FileSystems.delete(existing)
  if "://" not in output_dir:
    os.makedirs(output_dir, exist_ok=True)


class ConvertCorpus(beam.PTransform):
  """(path, size) pairs -> dict of PCollections.

  "train", "eval": serialized Examples; "errors": {path, reason, message} of
  every failed file; "stats": exactly one stats record per input file.
  """

  def __init__(self, config: PreprocessConfig):
    super().__init__()
    self._config = config

  def expand(self, files):
    config = self._config
    midi, other = (files | "ByExtension" >> beam.Partition(
        lambda f, _: 0 if is_midi_path(f[0]) else 1, 2))
    read = (midi | "Read" >> beam.Map(read_file, config.max_file_bytes)
            .with_exception_handling())
    parsed = (read.good | "Parse" >> beam.Map(parse_file, config)
              .with_exception_handling())
    windows = (parsed.good | "Windows" >> beam.Map(file_to_windows, config)
               .with_exception_handling())
    errors = (
        (read.bad, parsed.bad, windows.bad)
        | "DeadLetters" >> beam.Flatten()
        | "ToErrorRecord" >> beam.Map(dead_letter_to_error))
    stats = (
        (windows.good | "FileStats" >> beam.Map(lambda fw: fw.stats),
         errors | "ErrorStats" >> beam.Map(error_stats),
         other | "SkippedStats" >> beam.Map(skipped_stats))
        | "AllStats" >> beam.Flatten()
        | "Count" >> beam.ParDo(CountStats()))
    return {
        records.TRAIN_PREFIX: windows.good | "TrainExamples" >> beam.FlatMap(
            lambda fw: fw.train),
        records.EVAL_PREFIX: windows.good | "EvalExamples" >> beam.FlatMap(
            lambda fw: fw.eval),
        "errors": errors,
        "stats": stats,
    }


def build_pipeline(p: beam.Pipeline, inputs: list, output_dir: str,
                   config: PreprocessConfig) -> None:
  """Adds the whole preprocessing graph, reads to writes, to `p`."""
  files = (
      p
      | "Globs" >> beam.Create(inputs)
      | "Match" >> fileio.MatchAll()
      | "PathAndSize" >> beam.Map(lambda m: (m.path, m.size_in_bytes))
      # Overlapping globs list a file twice. Distinct groups by key, which
      # also breaks fusion: without it every file of one glob would be read
      # by the single worker that matched the glob.
      | "Dedupe" >> beam.Distinct())
  converted = files | "Convert" >> ConvertCorpus(config)
  error_files = (
      converted["errors"]
      | "ErrorJson" >> beam.Map(lambda e: json.dumps(e, sort_keys=True))
      | "WriteErrors" >> beam.io.WriteToText(
          _join(output_dir, records.ERRORS_PREFIX),
          file_name_suffix=".jsonl", num_shards=1))
  shards = {
      split: converted[split] | f"Write{split.title()}" >> beam.io.WriteToTFRecord(
          _join(output_dir, split), file_name_suffix=records.TFRECORD_SUFFIX,
          num_shards=config.num_shards)
      for split in (records.TRAIN_PREFIX, records.EVAL_PREFIX)
  }
  _ = (converted["stats"]
       | "CombineStats" >> beam.CombineGlobally(CombineStats())
       | "WriteDatasetJson" >> beam.Map(
           write_dataset_spec, output_dir, config,
           beam.pvalue.AsList(shards[records.TRAIN_PREFIX]),
           beam.pvalue.AsList(shards[records.EVAL_PREFIX]),
           beam.pvalue.AsList(error_files)))


def _log_counters(result) -> None:
  """Logs the Beam counters (the same figures Dataflow's UI shows)."""
  try:
    counters = result.metrics().query(
        MetricsFilter().with_namespace(_NAMESPACE))["counters"]
  except Exception:  # pylint: disable=broad-except  # not every runner has them
    return
  for c in sorted(counters, key=lambda c: c.key.metric.name):
    value = c.committed if c.committed is not None else c.attempted
    logging.info("counter %s = %s", c.key.metric.name, value)


def run_pipeline(inputs: list, output_dir: str, config: PreprocessConfig,
                 pipeline_options: PipelineOptions | None = None,
                 overwrite: bool = False) -> dict:
  """Runs preprocessing to completion and returns dataset.json's counts.

  Args:
    inputs: globs of MIDI files, local or gs://.
    output_dir: where train-*.tfrecord, eval-*.tfrecord, errors-*.jsonl and
      dataset.json go.
    config: the window layout and limits.
    pipeline_options: Beam PipelineOptions (runner etc.); None: DirectRunner.
    overwrite: replace a dataset already in output_dir.

  Returns:
    The counts written to dataset.json.

  Raises:
    InputError: an input glob matches nothing or is a bare folder, or a
      remote runner was given local paths.
    OutputExistsError: output_dir holds a dataset and overwrite is False.
    RuntimeError: the runner did not finish the job.
  """
  # PipelineOptions() would parse sys.argv: a library must not.
  options = pipeline_options or PipelineOptions([])
  check_runner_paths(inputs, output_dir, options)
  check_inputs(inputs)
  prepare_output_dir(output_dir, overwrite)
  p = beam.Pipeline(options=options)
  build_pipeline(p, inputs, output_dir, config)
  result = p.run()
  state = result.wait_until_finish()
  if state != PipelineState.DONE:
    raise RuntimeError(f"the preprocessing job ended in state {state}; "
                       f"{output_dir} has no new dataset.json.")
  _log_counters(result)
  with FileSystems.open(_join(output_dir, records.SPEC_FILENAME)) as f:
    return records.DatasetSpec.from_json(f.read().decode("utf-8")).counts
