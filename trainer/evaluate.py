r"""Held-out log-likelihood of a trained model (log Z by AIS where needed).

    python -m trainer.evaluate --model_dir=out/job/model --data_dir=out/dataset

Prints one JSON object: the mean log-likelihood per frame (and per window or
sequence) on --split, the standard error of the AIS estimate, and the same
figures for an independent-Bernoulli baseline fitted on what the model was
trained on. Each model may set its own defaults for --ais_chains/--ais_betas
when they are not given (the RNN-RBM: 16 x 1,500 per frame). The flags are
trainer/config.py's EvaluateData and AISConfig; the library function is
trainer/evaluation/lib.py:evaluate.
"""

import dataclasses
import json

from common import cli
from trainer import config as config_lib

cli.define_flags(config_lib.EvaluateData, required=["model_dir", "data_dir"])
cli.define_flags(config_lib.AISConfig)


def main(argv):
  del argv  # cli.run rejects stray arguments
  what = cli.config_from_flags(config_lib.EvaluateData)
  ais_config = cli.config_from_flags(config_lib.AISConfig)
  # pylint: disable=g-import-not-at-top  # TensorFlow after flag parsing
  from trainer import models
  from trainer.evaluation import lib
  from trainer.models import files
  # The model's own defaults for the AIS flags not given.
  flags = cli.flags.FLAGS
  given = {"num_chains": flags["ais_chains"].present,
           "num_betas": flags["ais_betas"].present}
  defaults = models.settings(files.model_name(what.model_dir)).AIS_DEFAULTS
  ais_config = dataclasses.replace(ais_config, **{
      k: v for k, v in defaults.items() if not given[k]})
  result = lib.evaluate(what.model_dir, what.data_dir, what.split,
                        ais_config, what.max_frames)
  print(json.dumps(result, indent=1))


if __name__ == "__main__":
  cli.run(main)
