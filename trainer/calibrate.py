r"""Choose the sampling temperature from the data, for trainer.generate.

    python -m trainer.calibrate --model_dir=out/job/model --data_dir=out/dataset

Draws 128 samples (as long as trainer.generate's by default; the window
RBM's: 8 bars) at each temperature of a small grid, measures
them against excerpts of the dataset's held-out pieces (valid, else eval)
with trainer.compare's features, and writes the best to
MODEL_DIR/sampling.json. trainer.generate then samples at it unless
--temperature is given; a model trained again needs a new calibration (the
file records the parameters' digest). Prints one JSON object: the choice and
every temperature's score. The library is trainer/generation/calibration.py.
"""

import dataclasses
import json

from common import cli
from common.cli import setting


@dataclasses.dataclass(frozen=True)
class CalibrateConfig:
  model_dir: str | None = setting(None, "The model/ folder trainer.task wrote.")
  data_dir: str | None = setting(
      None, "The --output_dir of preprocess.main the model was trained on: "
      "its held-out pieces are the reference.")
  seed: int = setting(0, "Seeds the samples and the excerpts: same seed, "
                      "same choice.")


cli.define_flags(CalibrateConfig, required=["model_dir", "data_dir"])


def main(argv):
  del argv  # cli.run rejects stray arguments
  config = cli.config_from_flags(CalibrateConfig)
  # pylint: disable=g-import-not-at-top  # TensorFlow after flag parsing
  from trainer import models
  from trainer.generation import calibration
  from trainer.models import files
  # Process-wide settings of the model's sampler, before any TF op runs.
  models.get(files.model_name(config.model_dir)).configure_generation()
  record = calibration.calibrate(config.model_dir, config.data_dir,
                                 config.seed)
  print(json.dumps(record, indent=1, sort_keys=True))


if __name__ == "__main__":
  cli.run(main)
