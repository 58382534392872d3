r"""Generate samples from a trained model: thousands of MIDI files, locally or to GCS.

    python -m trainer.generate --model_dir=out/job/model --output=out/samples \
        --num_samples=1000 [--previews]

Frame models (trainer.task --model=rnn_rbm, rnn_nade or bernoulli) make pieces
frame by frame: --num_frames=N (default 32 bars), and the recurrent ones
--primer=FILE.mid.

Rerunning the same command resumes; `--num_shards/--shard_index` split one job
across workers. The flags are trainer/config.py's GenerateConfig and
GeneratePaths; the library is trainer/generation/lib.py.
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
  from trainer import models
  from trainer.generation import lib
  from trainer.models import files
  # Process-wide settings of the model's sampler, before any TF op runs.
  models.get(files.model_name(paths.model_dir)).configure_generation()
  summary = lib.generate(paths.model_dir, paths.output, config)
  print(json.dumps(summary, indent=1))


if __name__ == "__main__":
  cli.run(main)
