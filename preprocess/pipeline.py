r"""The preprocessing pipeline: a MIDI corpus -> TFRecord piano-roll windows.

    globs -> match -> one listing per real file (duplicates counted)
          -> (path, size, key, split) -> bytes -> notes -> windows
             \-> skipped (not MIDI)      \-> dead letters (errors-*.jsonl)
    windows -> tf.train.Example -> train-, eval-, valid-*.tfrecord
               (shards fixed by the files' paths: preprocess/shards.py)
    every file -> one stats record -> dataset.json (counts + unit means)

This module composes the Beam graph and runs it; the pieces live apart:
preprocess/config.py (settings), preprocess/steps.py (the pure per-file steps
and why a file is rejected), preprocess/stats.py (counters and the counts of
dataset.json), preprocess/outputs.py (the output folder), preprocess/shards.py
(the TFRecord shards, the same bytes every run). Failures travel as
`steps.FileRejected` subclasses; anything unexpected is caught by Beam's
dead-letter pattern too, so one bad file never stops a corpus.

This module must not read flags (preprocess/main.py does) nor import
TensorFlow: a worker process that imported it would pay ~4 s and ~500 MB for
nothing.
"""

import contextlib
import dataclasses
import errno
import json
import logging as std_logging
import os
import re

from absl import logging
import apache_beam as beam
from apache_beam.metrics.metric import MetricsFilter
from apache_beam.options.pipeline_options import PipelineOptions
from apache_beam.options.pipeline_options import SetupOptions
from apache_beam.options.pipeline_options import StandardOptions
from apache_beam.options.pipeline_options import WorkerOptions
from apache_beam.runners.runner import PipelineState

from common import cli
from preprocess import config as config_lib
from preprocess import corpus_fit
from preprocess import outputs
from preprocess import records
from preprocess import shards as shards_lib
from preprocess import stats as stats_lib
from preprocess import steps
from preprocess.config import PreprocessConfig
from preprocess.config import RunConfig


# --- Errors found before launch: nothing has been written. --------------------
# All are usage errors (exit 2): preprocess.main and deploy.dataflow print
# them as one line.
LaunchError = cli.UsageError


class InputError(cli.UsageError):
  """An input glob or path cannot be used."""


class OptionsError(cli.UsageError):
  """A Beam option that is unknown, or Dataflow without the package."""


OutputExistsError = outputs.OutputExistsError

# Dataflow workers install the worker-only package (preprocess + common, no
# TensorFlow): see setup.py.
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
        "--helpshort) nor Beam pipeline options.")
  runner = str(options.view_as(StandardOptions).runner or "")
  setup = options.view_as(SetupOptions)
  if ("dataflow" in runner.lower() and not setup.setup_file and
      not options.view_as(WorkerOptions).sdk_container_image):
    if not os.path.exists(_SETUP_PY):
      raise OptionsError("Dataflow workers need this package: pass "
                         "--setup_file=PATH/setup.py or --sdk_container_image.")
    setup.setup_file = _SETUP_PY
  return options


def check_inputs(inputs: list, flag: str = "--input") -> set:
  """Fails early unless every glob matches at least one file.

  Returns:
    The matched files (steps.listing_identity), for check_split_overlap.

  Raises:
    InputError: naming the glob, and what would work.
  """
  return {steps.listing_identity(f) for f in list_inputs(inputs, flag)}


def list_inputs(inputs: list, flag: str = "--input") -> list:
  """check_inputs' listing: every file the globs match (steps.ListedFile)."""
  if not inputs:
    raise InputError(f"{flag} is empty: give one or more comma-separated "
                     "globs, e.g. --input='data/chorales/*.mid'.")
  matched = []
  for pattern in inputs:
    if not steps.is_glob(pattern) and os.path.isdir(pattern):
      # A bare folder would match itself, be skipped as not MIDI, and yield an
      # empty dataset: almost certainly not what was meant.
      raise InputError(
          f"{flag} {pattern!r} is a folder; give a glob of files, e.g. "
          f"{os.path.join(pattern, '*.mid')!r}, or "
          f"{os.path.join(pattern, '**')!r} for every file below it.")
    found = steps.list_files(pattern)
    if not found:
      raise InputError(
          f"{flag} glob {pattern!r} matches no file; check the path (local or "
          "gs://), quote the glob in the shell, and use DIR/** for every file "
          "below a folder.")
    matched.extend(found)
  return matched


def check_split_overlap(eval_files: set, valid_files: set) -> None:
  """A file in both --eval_input and --valid_input: refused, not guessed.

  (A file also in --input is fine: the explicit split wins over the hash.)
  """
  both = sorted(eval_files & valid_files)
  if both:
    raise InputError(
        f"{both[0].lstrip(chr(0))} is matched by both --eval_input and "
        "--valid_input"
        f"{f' (and {len(both) - 1} more files)' if len(both) > 1 else ''}; "
        "a file belongs to one split: narrow one of the globs.")


def check_training_files(listed: list, config: PreprocessConfig,
                         eval_files=frozenset(), valid_files=frozenset()
                         ) -> None:
  """Refuses a split plan that leaves no --input MIDI file for training.

  `listed`: list_inputs(--input); `eval_files`, `valid_files`: check_inputs
  of --eval_input and --valid_input; `config` after
  config_lib.with_explicit_splits. The split is decided here as the pipeline
  decides it (an explicit split wins, then the hash of the key), so
  --eval_input equal to --input, --eval_fraction=1.0, or a corpus small
  enough for the hash to hold out every file, fail before any output is
  written rather than train on nothing.

  Raises:
    InputError: naming the flags that hold the files out, and the fix.
  """
  by_file = _midi_files(listed)
  held = {"--eval_input": 0, "--valid_input": 0, "hash": 0}
  for listings in by_file.values():
    split = _split_of(listings, config, eval_files, valid_files)
    if split == records.TRAIN_PREFIX:
      return  # one training file is enough
    held[split] += 1
  if not by_file:
    return  # no MIDI file at all: every file is a counted skip
  parts = [f"{n} also matched by {flag}" for flag, n in held.items()
           if n and flag != "hash"]
  fixes = ["give --input only the training files"] if parts else []
  if held["hash"]:
    fractions = " and ".join(
        f"--{name}={getattr(config, name)}"
        for name in ("eval_fraction", "valid_fraction")
        if getattr(config, name))
    parts.append(f"{held['hash']} held out by {fractions}")
    fixes.append("lower the fractions (e.g. --eval_fraction=0.1)"
                 if config.eval_fraction + config.valid_fraction >= 1.0 else
                 "add files or lower the fractions (the split hashes each "
                 "file's name)")
  raise InputError(
      f"nothing is left to train on: of the {len(by_file)} MIDI files of "
      f"--input, {', '.join(parts)}; {' or '.join(fixes)}.")


def _midi_files(listed: list) -> dict:
  """list_inputs' MIDI files by identity (a file listed twice is one)."""
  by_file = {}
  for f in listed:
    if steps.is_midi_path(f.path):  # other files are skipped, never trained on
      by_file.setdefault(steps.listing_identity(f), []).append(f)
  return by_file


def _split_of(listings: list, config: PreprocessConfig, eval_files,
              valid_files) -> str:
  """Where the pipeline puts a file: records.TRAIN_PREFIX, or what holds it
  out ("--eval_input", "--valid_input" or "hash")."""
  identity = steps.listing_identity(listings[0])
  if identity in eval_files:
    return "--eval_input"
  if identity in valid_files:
    return "--valid_input"
  split = steps.assign_split(steps.preferred_listing(listings),
                             config.eval_fraction, config.valid_fraction).split
  return split if split == records.TRAIN_PREFIX else "hash"


def fit_layout(listed: list, config: PreprocessConfig, eval_files=frozenset(),
               valid_files=frozenset(), layout_given=()
               ) -> tuple[PreprocessConfig, dict]:
  """--fit_corpus: `config` with the grid and note range fitted to a sample
  of the training files (corpus_fit), and the record of the fit. The fields
  named in `layout_given` keep `config`'s values (the record says which).

  Raises:
    InputError: none of the files read holds a note.
  """
  training = [steps.preferred_listing(listings)
              for listings in _midi_files(listed).values()
              if _split_of(listings, config, eval_files, valid_files)
              == records.TRAIN_PREFIX]
  profile = corpus_fit.profile_corpus(training, config.include_drums,
                                      config.max_file_bytes)
  try:
    fitted = corpus_fit.fitted_layout(
        profile, config.transpose,
        {name: getattr(config, name) for name in layout_given})
  except ValueError:
    raise InputError(
        f"--fit_corpus: none of the {profile.files + profile.unreadable} "
        "training files read holds a note (unreadable: "
        f"{profile.unreadable}); check --input, or give the layout "
        "(--steps_per_quarter, --low_note, --high_note) instead.") from None
  logging.info(corpus_fit.describe(fitted))
  try:
    return dataclasses.replace(config, **{
        name: fitted[name] for name in config_lib.FITTED_FIELDS}), fitted
  except ValueError as e:  # a given bound beyond the fitted other one
    raise InputError(
        f"--fit_corpus: {e} The range mixes the given "
        f"{', '.join('--' + n for n in layout_given)} with the fitted rest; "
        "give both --low_note and --high_note, or neither.") from None


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
        "gs://BUCKET/corpus) and use gs:// for --input (--eval_input, "
        "--valid_input) and --output_dir.")


# --- The Beam graph. --------------------------------------------------------------


class PreferredListing(beam.CombineFn):
  """(steps.preferred_listing of a file's listings, how many there were)."""

  def create_accumulator(self):
    return (None, 0)

  def add_input(self, acc, listed):
    best, count = acc
    return (listed if best is None else
            steps.preferred_listing([best, listed]), count + 1)

  def merge_accumulators(self, accumulators):
    accumulators = list(accumulators)
    best = [b for b, _ in accumulators if b is not None]
    return (steps.preferred_listing(best) if best else None,
            sum(count for _, count in accumulators))

  def extract_output(self, acc):
    return acc


def duplicate_stats(listing_count) -> list:
  """The stats record of a file's extra listings, if it had any."""
  listed, count = listing_count
  if count < 2:
    return []
  return [{"path": listed.path, "status": stats_lib.DUPLICATE,
           "count": count - 1}]


class ConvertCorpus(beam.PTransform):
  """steps.ListedFile (split assigned) -> dict of PCollections.

  "train", "eval", "valid": (path, [serialized Example]) of each converted
  file, its windows in order (shards.WriteShards); "errors": {path, reason,
  message} of every failed file; "stats": CombineStats accumulators, each the
  sum of one bundle's stats records (every input file makes exactly one
  record); merge them with stats.MergeStats.
  """

  def __init__(self, config: PreprocessConfig):
    super().__init__()
    self._config = config

  def expand(self, files):
    config = self._config
    midi, other = (files | "ByExtension" >> beam.Partition(
        lambda f, _: 0 if steps.is_midi_path(f[0]) else 1, 2))
    read = (midi | "Read" >> beam.Map(steps.read_file, config.max_file_bytes)
            .with_exception_handling())
    parsed = (read.good | "Parse" >> beam.Map(steps.parse_file, config)
              .with_exception_handling())
    windows = (parsed.good | "Windows" >> beam.Map(steps.file_to_windows, config)
               .with_exception_handling())
    errors = (
        (read.bad, parsed.bad, windows.bad)
        | "DeadLetters" >> beam.Flatten()
        | "ToErrorRecord" >> beam.Map(steps.dead_letter_to_error))
    # Each branch counts its records and adds them up per bundle where they
    # are made (stats.BundleStats): only accumulators cross to the combine.
    stats = (
        (windows.good | "FileStats" >> beam.Map(lambda fw: fw.stats)
         | "CountFiles" >> beam.ParDo(stats_lib.CountStats())
         | "SumFiles" >> beam.ParDo(stats_lib.BundleStats()),
         errors | "ErrorStats" >> beam.Map(steps.error_stats)
         | "CountErrors" >> beam.ParDo(stats_lib.CountStats())
         | "SumErrors" >> beam.ParDo(stats_lib.BundleStats()),
         other | "SkippedStats" >> beam.Map(steps.skipped_stats)
         | "CountSkipped" >> beam.ParDo(stats_lib.CountStats())
         | "SumSkipped" >> beam.ParDo(stats_lib.BundleStats()))
        | "AllStats" >> beam.Flatten())
    by_split = windows.good | "BySplit" >> beam.Partition(
        lambda fw, _: records.SPLITS.index(fw.split), len(records.SPLITS))
    out = {split: by_split[i] | f"{split.title()}Examples" >> beam.Map(
        lambda fw: (fw.stats["path"], fw.examples))
           for i, split in enumerate(records.SPLITS)}
    out.update(errors=errors, stats=stats)
    return out


def write_dataset_json(acc, output_dir, config, explicit_splits, fitted,
                       *written_files):
  """Writes dataset.json, once every shard and the errors file are final.

  `written_files` (the sinks' outputs, as side inputs) only make this step
  wait for them.
  """
  del written_files  # only an ordering dependency
  return outputs.write_dataset_spec(
      stats_lib.make_dataset_spec(acc, config, explicit_splits, fitted),
      output_dir)


def build_pipeline(p: beam.Pipeline, inputs: list, output_dir: str,
                   config: PreprocessConfig, eval_inputs=(),
                   valid_inputs=(), fitted=None) -> None:
  """Adds the whole preprocessing graph, reads to writes, to `p`.

  `fitted`: what --fit_corpus chose (fit_layout), for dataset.json; `config`
  already holds it.

  Raises:
    cli.UsageError: an explicit split's fraction is set as well
      (config_lib.with_explicit_splits).
  """
  config = config_lib.with_explicit_splits(config, eval_inputs, valid_inputs)
  globs = ([(g, "") for g in inputs] +
           [(g, records.EVAL_PREFIX) for g in eval_inputs] +
           [(g, records.VALID_PREFIX) for g in valid_inputs])
  listings = (
      p
      | "Globs" >> beam.Create(globs)
      # steps.match_pattern, not fileio.MatchAll: Beam's listing drops files
      # it cannot stat, which must be counted as unreadable.
      | "Match" >> beam.FlatMapTuple(steps.list_files)
      # Overlapping globs, or a folder also reached through a symlink, list a
      # file twice, perhaps under two keys: keep one listing, chosen whatever
      # the order, and count the others. The grouping also breaks fusion:
      # without it every file of one glob would be read by the single worker
      # that matched the glob.
      | "ByFile" >> beam.Map(lambda f: (steps.listing_identity(f), f))
      | "Dedupe" >> beam.CombinePerKey(PreferredListing())
      | "Listings" >> beam.Values())
  files = (
      listings
      | "Files" >> beam.Map(lambda listing_count: listing_count[0])
      | "Split" >> beam.Map(steps.assign_split, config.eval_fraction,
                            config.valid_fraction))
  converted = files | "Convert" >> ConvertCorpus(config)
  duplicates = (listings
                | "DuplicateStats" >> beam.FlatMap(duplicate_stats)
                | "CountDuplicates" >> beam.ParDo(stats_lib.CountStats())
                | "SumDuplicates" >> beam.ParDo(stats_lib.BundleStats()))
  error_files = (
      converted["errors"]
      | "ErrorJson" >> beam.Map(lambda e: json.dumps(e, sort_keys=True))
      | "WriteErrors" >> beam.io.WriteToText(
          outputs.join(output_dir, records.ERRORS_PREFIX),
          file_name_suffix=".jsonl", num_shards=1))
  # A run without a valid split writes no (empty) valid shards: its folder
  # looks as before the valid split existed; dataset.json counts 0 valid.
  written = [split for split in records.SPLITS
             if split != records.VALID_PREFIX or config.valid_fraction or
             valid_inputs]
  # Not beam.io.WriteToTFRecord: its shards differ from run to run.
  shards = {
      split: converted[split] | f"Write{split.title()}" >> shards_lib.WriteShards(
          output_dir, split, config.num_shards)
      for split in written
  }
  explicit = [split for split, globs in ((records.EVAL_PREFIX, eval_inputs),
                                         (records.VALID_PREFIX, valid_inputs))
              if globs]
  _ = ((converted["stats"], duplicates)
       | "WithDuplicates" >> beam.Flatten()
       | "CombineStats" >> beam.CombineGlobally(stats_lib.MergeStats())
       | "WriteDatasetJson" >> beam.Map(
           write_dataset_json, output_dir, config, explicit, fitted,
           *[beam.pvalue.AsList(shards[split]) for split in written],
           beam.pvalue.AsList(error_files)))


def _log_counters(result) -> None:
  """Logs the Beam counters (the same figures Dataflow's UI shows)."""
  try:
    counters = result.metrics().query(
        MetricsFilter().with_namespace(stats_lib.NAMESPACE))["counters"]
  except Exception:  # pylint: disable=broad-except  # not every runner has them
    return
  totals = {}  # a counter is counted by up to three steps (files, errors, skips)
  for c in counters:
    value = c.committed if c.committed is not None else c.attempted
    totals[c.key.metric.name] = totals.get(c.key.metric.name, 0) + (value or 0)
  for name in sorted(totals):
    logging.info("counter %s = %s", name, totals[name])


def run_pipeline(inputs: list, output_dir: str, config: PreprocessConfig,
                 pipeline_options: PipelineOptions | None = None,
                 overwrite: bool = False, *, eval_inputs=(),
                 valid_inputs=(), layout_given=()) -> dict:
  """Runs preprocessing to completion and returns dataset.json's counts.

  Args:
    inputs: globs of MIDI files, local or gs://; each file goes to the split
      its key hashes to (steps.split_key, steps.split_of).
    output_dir: where train-, eval-, valid-*.tfrecord, errors-*.jsonl and
      dataset.json go.
    config: the window layout, split fractions and limits.
    pipeline_options: Beam PipelineOptions (runner etc.); None: DirectRunner.
    overwrite: replace a dataset (only the files this project wrote) already
      in output_dir.
    eval_inputs, valid_inputs: globs whose files go to eval / valid whatever
      their hash (a benchmark's own split); with eval_inputs, `inputs` hash
      into train and valid only.
    layout_given: with config.fit_corpus, the layout fields
      (config_lib.FITTED_FIELDS) that keep config's values: the flags the
      user gave.

  Returns:
    The counts written to dataset.json.

  Raises:
    cli.UsageError: an input glob matches nothing or is a bare folder, a gs://
      path has a query string or an empty folder name (//), a path is not
      UTF-8, a file is in both eval_inputs and valid_inputs, the splits
      leave no --input file to train on (check_training_files), an explicit
      split's fraction is set too (config_lib.with_explicit_splits), a remote
      runner was given local paths, the output folder overlaps the inputs, is
      a file, cannot be written or its paths are too long
      (outputs.OutputError), or holds a dataset and overwrite is False
      (outputs.OutputExistsError).
    cli.JobError: the runner did not finish the job, or the output's disk is
      full (outputs.full_disk_error); either way no beam-temp-* folder of the
      run is left in output_dir.
  """
  RunConfig(input=tuple(inputs), output_dir=output_dir,  # checks the paths
            eval_input=tuple(eval_inputs), valid_input=tuple(valid_inputs))
  config = config_lib.with_explicit_splits(config, eval_inputs, valid_inputs)
  # PipelineOptions() would parse sys.argv: a library must not.
  options = pipeline_options or PipelineOptions([])
  every_glob = list(inputs) + list(eval_inputs) + list(valid_inputs)
  check_runner_paths(every_glob, output_dir, options)
  for flag, globs in (("--input", inputs), ("--eval_input", eval_inputs),
                      ("--valid_input", valid_inputs)):
    outputs.check_no_overlap(globs, output_dir, flag)
  listed = list_inputs(inputs)
  eval_files = (check_inputs(eval_inputs, "--eval_input") if eval_inputs
                else set())
  valid_files = (check_inputs(valid_inputs, "--valid_input") if valid_inputs
                 else set())
  check_split_overlap(eval_files, valid_files)
  check_training_files(listed, config, eval_files, valid_files)
  fitted = None
  if config.fit_corpus:
    config, fitted = fit_layout(listed, config, eval_files, valid_files,
                                layout_given)
  outputs.prepare_output_dir(output_dir, overwrite)
  p = beam.Pipeline(options=options)
  build_pipeline(p, inputs, output_dir, config, eval_inputs, valid_inputs,
                 fitted)
  state = _run(p, output_dir, options)
  if state != PipelineState.DONE:
    raise cli.JobError(f"the preprocessing job ended in state {state}; "
                       f"{output_dir} has no new dataset.json; rerun with "
                       "--overwrite once the cause is fixed.")
  return outputs.read_counts(output_dir)


# OS errors a run can end with that the user fixes (a full disk, an output
# path too long): one line each, not Beam's tracebacks.
_OS_ERRORS = outputs.FULL_DISK + (errno.ENAMETOOLONG,)
_ERRNO_TEXT = re.compile(r"\[Errno (\d+)\]")


def _errno_of(error: BaseException) -> int | None:
  """The errno of an OSError in `error`'s chain, or quoted in its text.

  Beam re-raises a worker's exception as a RuntimeError with the original as
  its cause in process, and only the text of it across processes.
  """
  seen = set()
  while error is not None and id(error) not in seen:
    seen.add(id(error))
    if isinstance(error, OSError) and error.errno in _OS_ERRORS:
      return error.errno
    found = _ERRNO_TEXT.search(str(error))
    if found and int(found.group(1)) in _OS_ERRORS:
      return int(found.group(1))
    error = error.__cause__ or error.__context__
  return None


class _QuietOsErrors(std_logging.Filter):
  """Drops the log records (with tracebacks) of a failure that _run reports
  in one line."""

  def filter(self, record):
    error = record.exc_info[1] if record.exc_info else None
    if error is None and isinstance(record.msg, BaseException):
      error = record.msg
    return error is None or _errno_of(error) is None


@contextlib.contextmanager
def _quiet_os_errors():
  handlers = std_logging.getLogger().handlers
  quiet = _QuietOsErrors()
  for handler in handlers:
    handler.addFilter(quiet)
  try:
    yield
  finally:
    for handler in handlers:
      handler.removeFilter(quiet)


def _run(p: beam.Pipeline, output_dir: str, options: PipelineOptions):
  """Runs `p` to its end; returns its state.

  A run that fails removes the temporary folders its sinks made in
  output_dir (Beam leaves them), so that a rerun starts clean; a full disk
  or a path too long ends in one line naming --output_dir.

  Raises:
    cli.JobError: no space left on the output's device (or over quota).
    outputs.OutputError: a path in output_dir is too long.
  """
  temp_before = outputs.temp_folders(output_dir)
  remote = "dataflow" in str(
      options.view_as(StandardOptions).runner or "").lower()
  try:
    with _quiet_os_errors():
      result = p.run()
      state = result.wait_until_finish()
  except KeyboardInterrupt:
    if not remote:  # a remote job may still be running: leave its files be
      outputs.remove_temp_folders(output_dir, keep=temp_before)
    raise
  except Exception as e:  # pylint: disable=broad-except
    outputs.remove_temp_folders(output_dir, keep=temp_before)
    code = _errno_of(e)
    if code in outputs.FULL_DISK:
      raise outputs.full_disk_error(output_dir, code) from e
    if code == errno.ENAMETOOLONG:
      raise outputs.too_long_error(output_dir) from e
    raise
  if state != PipelineState.DONE:
    outputs.remove_temp_folders(output_dir, keep=temp_before)
  else:
    _log_counters(result)
  return state
