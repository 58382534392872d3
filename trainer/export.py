"""The trained-model format: what `trainer.task` writes to JOB_DIR/model/ and
generation and evaluation load, without the training code's flags.

    model/params.npz   weights [V, H], visible_bias [V], hidden_bias [H] (float32)
    model/model.json   {"format_version", "config": training config,
                        "dataset": dataset.json as trained on, "step"}

Plain numpy + JSON so any tool (or a notebook) can read it; paths go through
tf.io.gfile, so gs:// works in the cloud.
"""

import dataclasses
import io
import json
import os
import zipfile

import numpy as np
import tensorflow as tf

from common import cli
from preprocess import records
from trainer.models import rbm as model_lib

FORMAT_VERSION = 1
PARAMS_FILE = "params.npz"
INFO_FILE = "model.json"


class ModelError(cli.UsageError):
  """--model_dir does not hold a readable model (a ValueError, as before)."""


class NonFiniteModelError(cli.JobError):
  """The model's parameters hold NaN/Inf: its figures and samples would be."""


@dataclasses.dataclass(frozen=True)
class LoadedModel:
  rbm: model_lib.RBM
  dataset: records.DatasetSpec
  config: dict
  step: int


def save_model(model_dir: str, rbm: model_lib.RBM,
               dataset: records.DatasetSpec, config: dict, step: int) -> None:
  """Writes the model atomically enough: params first, model.json last."""
  tf.io.gfile.makedirs(model_dir)
  buf = io.BytesIO()
  np.savez(buf, weights=rbm.weights.numpy(),
           visible_bias=rbm.visible_bias.numpy(),
           hidden_bias=rbm.hidden_bias.numpy())
  with tf.io.gfile.GFile(os.path.join(model_dir, PARAMS_FILE), "wb") as f:
    f.write(buf.getvalue())
  info = {"format_version": FORMAT_VERSION, "config": config,
          "dataset": json.loads(dataset.to_json()), "step": int(step)}
  with tf.io.gfile.GFile(os.path.join(model_dir, INFO_FILE), "w") as f:
    f.write(json.dumps(info, indent=1, sort_keys=True))


def load_model(model_dir: str) -> LoadedModel:
  """Loads a model written by `save_model`.

  Raises:
    FileNotFoundError: model_dir has no model.json/params.npz.
    ValueError: the files are not a model of this format.
  """
  info_path = os.path.join(model_dir, INFO_FILE)
  params_path = os.path.join(model_dir, PARAMS_FILE)
  for path in (info_path, params_path):
    if not tf.io.gfile.exists(path):
      raise FileNotFoundError(
          f"{path} does not exist: --model_dir must be the model/ folder that "
          "trainer.task writes (JOB_DIR/model).")
  with tf.io.gfile.GFile(info_path) as f:
    try:
      info = json.loads(f.read())
    except json.JSONDecodeError as e:
      raise ValueError(f"{info_path} is not valid JSON: {e}") from None
  if info.get("format_version") != FORMAT_VERSION:
    raise ValueError(f"{info_path} has format_version="
                     f"{info.get('format_version')}; this code reads "
                     f"{FORMAT_VERSION}. Retrain or use a matching version.")
  dataset = records.DatasetSpec.from_json(json.dumps(info["dataset"]),
                                          source=info_path)
  with tf.io.gfile.GFile(params_path, "rb") as f:
    params = _read_params(params_path, f.read())
    weights = params["weights"]
    rbm = model_lib.RBM(weights.shape[0], weights.shape[1])
    if weights.shape[0] != dataset.n_visible:
      raise ValueError(f"{params_path}: weights have {weights.shape[0]} "
                       f"visible units but the dataset has {dataset.n_visible}.")
    rbm.weights.assign(weights)
    rbm.visible_bias.assign(params["visible_bias"])
    rbm.hidden_bias.assign(params["hidden_bias"])
  return LoadedModel(rbm=rbm, dataset=dataset, config=info.get("config", {}),
                     step=int(info.get("step", 0)))


def _read_params(path: str, raw: bytes) -> dict:
  """params.npz's arrays, checked whole and finite.

  Raises:
    ModelError: truncated or not an npz of ours (np.load's BadZipFile names
      no file).
    NonFiniteModelError: an array holds NaN/Inf (a diverged run's export).
  """
  names = ("weights", "visible_bias", "hidden_bias")
  try:
    with np.load(io.BytesIO(raw)) as npz:
      params = {name: npz[name] for name in names}
  except (zipfile.BadZipFile, OSError, ValueError, KeyError, EOFError) as e:
    raise ModelError(
        f"{path} is not a readable model ({type(e).__name__}: {e}); it is "
        "truncated or was not written by trainer.task: rerun trainer.task "
        "with the same --job_dir to export it again.") from None
  bad = [n for n in names if not np.isfinite(params[n]).all()]
  if bad:
    raise NonFiniteModelError(
        f"{path} holds NaN/Inf in {', '.join(bad)}: the run that wrote it "
        "diverged; retrain with a lower --learning_rate.")
  return params
