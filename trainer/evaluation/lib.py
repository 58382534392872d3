"""Held-out likelihood of a trained model, against an independent baseline.

The model computes it (its `evaluate`: exact, or with log Z by AIS); the
baseline is the best model with no interactions at all: independent
Bernoulli units with the (smoothed) means of what the model was trained on,
whose likelihood is exact. Beating it is the least a model of music should
do. This module reads files but writes none; trainer/evaluate.py (the CLI)
prints the result.
"""

from trainer import config as config_lib
from trainer import data
from trainer import models
from trainer.models import base
from trainer.models import files

# The data's windows or frames do not mean what the model's meant.
LayoutError = base.LayoutError


def evaluate(model_dir: str, data_dir: str, split: str = "eval",
             ais_config: config_lib.AISConfig | None = None,
             max_frames: int = 0) -> dict:
  """Mean log-likelihood per window (or sequence) and per frame on DATA_DIR's
  `split`, and the Bernoulli baseline's.

  Args:
    model_dir: a model/ folder written by trainer.task (local or gs://).
    data_dir: a preprocess.main output folder with the model's layout.
    split: "eval", "valid" or "train".
    ais_config: chains, betas and seed of the log Z estimate (None: the
      defaults, with the model's own AIS_DEFAULTS).
    max_frames: score a fixed subset of the sequences holding about this
      many frames (0: all; the RNN-RBM only).

  Returns:
    JSON-ready dict: loglik_per_frame, baseline_loglik_per_frame,
    gain_per_frame (model - baseline), log_z_stderr where AIS was used, the
    counts and the inputs; each model's likelihood.py documents the rest.

  Raises:
    FileNotFoundError: model_dir or data_dir is not what it should be.
    LayoutError: the data's layout differs from the model's.
    data.MissingSplitError: the dataset has no windows in `split`.
    files.NonFiniteModelError: the model's parameters, log Z or free
      energies are NaN/Inf.
  """
  loaded = files.load_model(model_dir)
  if ais_config is None:
    ais_config = config_lib.AISConfig(
        **models.settings(loaded.name).AIS_DEFAULTS)
  spec = data.load_dataset_spec(data_dir)
  return loaded.family.evaluate(loaded, spec, model_dir, data_dir, split,
                                ais_config, max_frames)
