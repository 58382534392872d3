r"""Preprocess a MIDI corpus into TFRecord piano-roll windows (Apache Beam).

    python -m preprocess.main --input='data/chorales/*.mid' --output_dir=out/dataset

Flags not defined here go to Beam (--runner, --direct_num_workers, --project,
--region, --temp_location, --setup_file, ...); DirectRunner by default. On
Dataflow, --setup_file defaults to this project's setup.py so workers install
the package. This file is intentionally kept short: the pipeline is
preprocess/pipeline.py.
"""

from absl import app
from absl import flags

from preprocess import pipeline

_D = pipeline.PreprocessConfig()
FLAGS = flags.FLAGS
flags.DEFINE_list("input", None, "Comma-separated globs of MIDI files (local or gs://).")
flags.DEFINE_string("output_dir", None, "Where the TFRecords and dataset.json go.")
flags.DEFINE_enum("encoding", _D.encoding, ["onoff", "roll"],
                  "onoff: play + articulate columns (the seed's); roll: play only.")
flags.DEFINE_integer("steps_per_quarter", _D.steps_per_quarter,
                     "Grid steps per quarter note (4 = 16th notes).")
flags.DEFINE_integer("num_timesteps", _D.num_timesteps, "Steps per window.")
flags.DEFINE_integer("stride", _D.stride, "Steps between window starts.")
flags.DEFINE_integer("low_note", _D.low_note, "Lowest MIDI pitch kept.")
flags.DEFINE_integer("high_note", _D.high_note, "Highest MIDI pitch kept, exclusive.")
flags.DEFINE_float("eval_fraction", _D.eval_fraction,
                   "Fraction of files held out for evaluation (by path hash).")
flags.DEFINE_integer("transpose", _D.transpose,
                     "Augment training files with shifts -K..K semitones.")
flags.DEFINE_integer("num_shards", _D.num_shards,
                     "TFRecord shards per split (0: runner decides).")
flags.DEFINE_bool("include_drums", _D.include_drums, "Keep drum tracks.")
flags.DEFINE_integer("max_file_bytes", _D.max_file_bytes,
                     "Larger files are rejected unread (reason too_large).")
flags.DEFINE_integer("max_steps", _D.max_steps,
                     "Longer files (in grid steps) are rejected (too_long).")
flags.DEFINE_bool("overwrite", False, "Replace a dataset already in --output_dir.")
flags.mark_flags_as_required(["input", "output_dir"])


def main(argv):
  try:
    options = pipeline.beam_options(argv[1:])
    config = pipeline.PreprocessConfig(
        encoding=FLAGS.encoding, low_note=FLAGS.low_note, high_note=FLAGS.high_note,
        steps_per_quarter=FLAGS.steps_per_quarter, num_timesteps=FLAGS.num_timesteps,
        stride=FLAGS.stride, eval_fraction=FLAGS.eval_fraction,
        transpose=FLAGS.transpose, num_shards=FLAGS.num_shards,
        include_drums=FLAGS.include_drums, max_file_bytes=FLAGS.max_file_bytes,
        max_steps=FLAGS.max_steps)
  except ValueError as e:
    raise app.UsageError(str(e)) from None
  try:
    counts = pipeline.run_pipeline(FLAGS.input, FLAGS.output_dir, config, options,
                                   overwrite=FLAGS.overwrite)
  except pipeline.LaunchError as e:  # found before anything ran or was written
    raise app.UsageError(str(e)) from None
  w, f = counts["windows"], counts["files"]
  print(f"{counts['files_seen']} files seen: {counts['converted']} converted, "
        f"{counts['failed']} failed {counts['failed_reasons']}, "
        f"{counts['skipped']} skipped {counts['skipped_reasons']}\n"
        f"windows: train {w['train']} from {f['train']} files, eval {w['eval']} "
        f"from {f['eval']} files; dropped: {counts['silent_windows']} silent "
        f"windows, {counts['notes_out_of_range']} notes out of range, "
        f"{counts['drum_notes']} drum notes\n"
        f"-> {FLAGS.output_dir} (dataset.json, {len(counts['shards'])} shards, "
        "failures in errors-*.jsonl)")


if __name__ == "__main__":
  app.run(main, flags_parser=lambda argv: FLAGS(argv, known_only=True))
