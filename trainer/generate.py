r"""Generate samples from a trained RBM: thousands of MIDI files, locally or to GCS.

    python -m trainer.generate --model_dir=out/job/model --output=out/samples \
        --num_samples=1000 [--previews]

Rerunning the same command resumes; `--num_shards/--shard_index` split one job
across workers. The library is trainer/generation.py.
"""

import dataclasses
import json

from absl import app
from absl import flags

from trainer import generation

_D = generation.GenerateConfig()
FLAGS = flags.FLAGS
flags.DEFINE_string("model_dir", None, "The model/ folder trainer.task wrote.")
flags.DEFINE_string("output", None, "A local folder or gs://BUCKET/PREFIX.")
flags.DEFINE_integer("num_samples", _D.num_samples, "Samples in the whole job.")
flags.DEFINE_integer("gibbs_steps", _D.gibbs_steps, "Gibbs steps per window.")
flags.DEFINE_enum("init", _D.init, list(generation.INITS), "Chain start.")
flags.DEFINE_integer("seed", _D.seed, "Sample i depends on (seed, i) only.")
flags.DEFINE_float("temperature", _D.temperature,
                   "Sampling temperature (1: the model's distribution).")
flags.DEFINE_float("articulate_threshold", _D.articulate_threshold,
                   "onoff: last step sets articulate units where p >= this "
                   "(0: sampled).")
flags.DEFINE_integer("num_windows", _D.num_windows, "Windows per sample.")
flags.DEFINE_integer("overlap", _D.overlap,
                     "Steps clamped between windows (0: a third of a window).")
flags.DEFINE_string("primer", None, "A MIDI file the samples continue.")
flags.DEFINE_string("data_dir", None, "Preprocessed dataset, for --init=data.")
flags.DEFINE_integer("num_shards", _D.num_shards, "Workers splitting the job.")
flags.DEFINE_integer("shard_index", _D.shard_index, "This worker's shard.")
flags.DEFINE_integer("resample_empty", _D.resample_empty,
                     "Resample empty samples up to N times (0: keep, count).")
flags.DEFINE_bool("previews", _D.previews, "PNG + WAV previews and index.html.")
flags.DEFINE_integer("num_previews", _D.num_previews, "Samples previewed.")
flags.DEFINE_string("soundfont", _D.soundfont, "A GM .sf2 for the previews' "
                    "audio (default: a system one, else sine tones).")
flags.DEFINE_bool("overwrite", _D.overwrite, "Replace this shard's output.")
flags.DEFINE_float("tempo", _D.tempo, "Tempo of the MIDI files (bpm).")
flags.DEFINE_integer("program", _D.program, "General MIDI program (0 = piano).")
flags.DEFINE_integer("velocity", _D.velocity, "Note velocity.")
flags.mark_flags_as_required(["model_dir", "output"])


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
  try:
    config = generation.GenerateConfig(**{
        f.name: FLAGS[f.name].value
        for f in dataclasses.fields(generation.GenerateConfig)
        if f.name in FLAGS})
  except ValueError as e:
    raise app.UsageError(str(e)) from None
  summary = generation.generate(FLAGS.model_dir, FLAGS.output, config)
  print(json.dumps(summary, indent=1))


if __name__ == "__main__":
  app.run(main)
