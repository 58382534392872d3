r"""Generate samples from a trained RBM: thousands of MIDI files, locally or to GCS.

    python -m trainer.generate --model_dir=out/job/model --output=out/samples \
        --num_samples=1000 [--previews]

An RNN-RBM model (trainer.task --model=rnn_rbm) makes long pieces frame by
frame: add --num_frames=N (default 32 bars) and optionally --primer=FILE.mid.

Rerunning the same command resumes; `--num_shards/--shard_index` split one job
across workers. The flags are trainer/config.py's GenerateConfig and
GeneratePaths; the library is trainer/generate_lib.py.
"""

import json

from common import cli
from trainer import config as config_lib

cli.define_flags(config_lib.GeneratePaths, required=["model_dir", "output"])
cli.define_flags(config_lib.GenerateConfig)


def main(argv):
  del argv  # cli.run rejects stray arguments
  paths = cli.config_from_flags(config_lib.GeneratePaths)
  config = cli.config_from_flags(
      config_lib.GenerateConfig,
      explicit=cli.explicit_fields(config_lib.GenerateConfig))
  # pylint: disable=g-import-not-at-top  # TensorFlow after flag parsing
  from trainer import generate_lib
  from trainer import generate_rnn_rbm
  generate_rnn_rbm.configure_threads(paths.model_dir)  # before any TF op
  summary = generate_lib.generate(paths.model_dir, paths.output, config)
  print(json.dumps(summary, indent=1))


if __name__ == "__main__":
  cli.run(main)
