r"""Preprocess a MIDI corpus into TFRecord piano-roll windows (Apache Beam).

    python -m preprocess.main --input='data/chorales/*.mid' --output_dir=out/dataset

Flags not defined here go to Beam (--runner, --direct_num_workers, --project,
--region, --temp_location, --setup_file, ...); DirectRunner by default.
This file is intentionally kept short: the pipeline is preprocess/pipeline.py.
"""

from absl import app
from absl import flags
from absl import logging
from apache_beam.options.pipeline_options import PipelineOptions

from preprocess import pipeline

_DEFAULTS = pipeline.PreprocessConfig()
FLAGS = flags.FLAGS
flags.DEFINE_list("input", None, "Comma-separated globs of MIDI files (local or gs://).")
flags.DEFINE_string("output_dir", None, "Where the TFRecords and dataset.json go.")
flags.DEFINE_enum("encoding", _DEFAULTS.encoding, ["onoff", "roll"],
                  "onoff: play + articulate columns (the seed's); roll: play only.")
flags.DEFINE_integer("steps_per_quarter", _DEFAULTS.steps_per_quarter,
                     "Grid steps per quarter note (4 = 16th notes).")
flags.DEFINE_integer("num_timesteps", _DEFAULTS.num_timesteps, "Steps per window.")
flags.DEFINE_integer("stride", _DEFAULTS.stride, "Steps between window starts.")
flags.DEFINE_integer("low_note", _DEFAULTS.low_note, "Lowest MIDI pitch kept.")
flags.DEFINE_integer("high_note", _DEFAULTS.high_note, "Highest MIDI pitch kept, exclusive.")
flags.DEFINE_float("eval_fraction", _DEFAULTS.eval_fraction,
                   "Fraction of files held out for evaluation (by path hash).")
flags.DEFINE_integer("transpose", _DEFAULTS.transpose,
                     "Augment training files with shifts -K..K semitones.")
flags.DEFINE_integer("num_shards", _DEFAULTS.num_shards,
                     "TFRecord shards per split (0: runner decides).")
flags.DEFINE_bool("include_drums", _DEFAULTS.include_drums, "Keep drum tracks.")
flags.DEFINE_integer("max_file_bytes", _DEFAULTS.max_file_bytes,
                     "Larger files are rejected unread (reason too_large).")
flags.DEFINE_integer("max_steps", _DEFAULTS.max_steps,
                     "Longer files (in grid steps) are rejected (too_long).")
flags.DEFINE_bool("overwrite", False, "Replace a dataset already in --output_dir.")
flags.mark_flags_as_required(["input", "output_dir"])


def beam_options(argv: list) -> PipelineOptions:
  """Beam options from the flags absl did not know; typos are errors, not ignored."""
  stray = [a for a in argv if not a.startswith("--")]
  if stray:
    raise app.UsageError(f"Unexpected arguments: {stray}")
  options = PipelineOptions(argv)
  unknown = set(options.get_all_options(retain_unknown_options=True)) - set(
      options.get_all_options())
  if unknown:
    raise app.UsageError(
        f"Unknown flags {sorted(unknown)}: neither preprocess.main's (see --help) "
        "nor Beam's pipeline options.")
  return options


def main(argv):
  options = beam_options(argv[1:])
  try:
    config = pipeline.PreprocessConfig(
        encoding=FLAGS.encoding, low_note=FLAGS.low_note, high_note=FLAGS.high_note,
        steps_per_quarter=FLAGS.steps_per_quarter, num_timesteps=FLAGS.num_timesteps,
        stride=FLAGS.stride, eval_fraction=FLAGS.eval_fraction,
        transpose=FLAGS.transpose, num_shards=FLAGS.num_shards,
        include_drums=FLAGS.include_drums, max_file_bytes=FLAGS.max_file_bytes,
        max_steps=FLAGS.max_steps)
  except ValueError as e:
    raise app.UsageError(str(e)) from None
  counts = pipeline.run_pipeline(FLAGS.input, FLAGS.output_dir, config, options,
                                 overwrite=FLAGS.overwrite)
  logging.info("done: %s", counts)
  print(f"files seen {counts['files_seen']}: converted {counts['converted']}, "
        f"failed {counts['failed']} {counts['failed_reasons']}, skipped "
        f"{counts['skipped']} {counts['skipped_reasons']}; windows {counts['windows']}"
        f" -> {FLAGS.output_dir}")


if __name__ == "__main__":
  app.run(main, flags_parser=lambda argv: FLAGS(argv, known_only=True))
