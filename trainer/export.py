"""The trained-model format: what `trainer.task` writes to JOB_DIR/model/ and
generation and evaluation load, without the training code's flags.

The RBM (--model=rbm; unchanged since format_version 1):

    model/params.npz   weights [V, H], visible_bias [V], hidden_bias [H] (float32)
    model/model.json   {"format_version", "config": training config,
                        "dataset": dataset.json as trained on, "step"}

The RNN-RBM (--model=rnn_rbm): V is one frame's units (dataset n_columns).

    model/params.npz   weights [V, H], visible_bias [V], hidden_bias [H],
                       w_uv [U, V], w_uh [U, H], w_vu [V, U], w_uu [U, U],
                       b_u [U], u0 [U] (float32; the RNNRBM variables' names)
    model/model.json   as the RBM's, plus "model": "rnn_rbm",
                       "sizes": {"n_visible", "n_hidden", "n_hidden_recurrent"},
                       "frame_statistics": {"means": [V], "frames": N} (each
                       unit's mean over the N training frames: the baseline and
                       the AIS base rate; dataset.json has no unit_means for
                       whole pieces)

A model.json without "model" is an RBM. Use it as:

    loaded = export.load_model(model_dir)
    if loaded.kind == export.RNN_RBM:
      loaded.rnn_rbm.generate(...)   # trainer/models/rnn_rbm.py's RNNRBM
    else:
      loaded.rbm ...                 # trainer/models/rbm.py's RBM

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
from trainer.models import rnn_rbm as rnn_rbm_lib

FORMAT_VERSION = 1
PARAMS_FILE = "params.npz"
INFO_FILE = "model.json"
# model.json's "model": the kinds of model this format holds.
RBM, RNN_RBM = "rbm", "rnn_rbm"
KINDS = (RBM, RNN_RBM)
# The RNN-RBM's arrays in params.npz, named as its variables' attributes.
RNN_RBM_PARAMS = ("weights", "visible_bias", "hidden_bias", "w_uv", "w_uh",
                  "w_vu", "w_uu", "b_u", "u0")


class WrongModelError(ValueError):
  """The model is of another kind than the caller can use."""


class ModelError(cli.UsageError):
  """--model_dir does not hold a readable model (a ValueError, as before)."""


class NonFiniteModelError(cli.JobError):
  """The model's parameters hold NaN/Inf: its figures and samples would be."""


@dataclasses.dataclass(frozen=True)
class LoadedModel:
  """A loaded model/ folder.

  kind is RBM or RNN_RBM; exactly one of rbm / rnn_rbm is set, the other is
  None. frame_means, train_frames: the RNN-RBM's per-unit training-frame means
  and their count (None / 0 for an RBM: its dataset.unit_means hold them).
  """
  rbm: model_lib.RBM | None
  dataset: records.DatasetSpec
  config: dict
  step: int
  kind: str = RBM
  rnn_rbm: rnn_rbm_lib.RNNRBM | None = None
  frame_means: list | None = None
  train_frames: int = 0

  @property
  def model(self):
    """The RBM or the RNNRBM, whichever this is."""
    return self.rnn_rbm if self.kind == RNN_RBM else self.rbm

  def require(self, kind: str, what: str) -> None:
    """Raises WrongModelError (one line, naming `what` needs) unless `kind`."""
    if self.kind != kind:
      raise WrongModelError(
          f"{what} needs a model trained with --model={kind}; this one was "
          f"trained with --model={self.kind}.")


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


def save_rnn_rbm(model_dir: str, model: rnn_rbm_lib.RNNRBM,
                 dataset: records.DatasetSpec, config: dict, step: int,
                 frame_means, train_frames: int,
                 validation_split: str | None = None) -> None:
  """Writes an RNN-RBM: params first, model.json last (see the module doc).

  Args:
    frame_means: [V] each unit's mean over the training frames.
    train_frames: how many frames those means were taken over.
    validation_split: the split that chose the exported state ("valid", or
      "eval" when the dataset had none: its eval figure is then optimistic).
  """
  tf.io.gfile.makedirs(model_dir)
  buf = io.BytesIO()
  np.savez(buf, **{name: getattr(model, name).numpy()
                   for name in RNN_RBM_PARAMS})
  with tf.io.gfile.GFile(os.path.join(model_dir, PARAMS_FILE), "wb") as f:
    f.write(buf.getvalue())
  info = {"format_version": FORMAT_VERSION, "model": RNN_RBM,
          "sizes": {"n_visible": model.n_visible, "n_hidden": model.n_hidden,
                    "n_hidden_recurrent": model.n_hidden_recurrent},
          "frame_statistics": {"means": [float(m) for m in frame_means],
                               "frames": int(train_frames)},
          "config": config, "dataset": json.loads(dataset.to_json()),
          "step": int(step), "validation_split": validation_split}
  with tf.io.gfile.GFile(os.path.join(model_dir, INFO_FILE), "w") as f:
    f.write(json.dumps(info, indent=1, sort_keys=True))


def _load_rnn_rbm(info, params, dataset, params_path) -> LoadedModel:
  sizes = info.get("sizes", {})
  try:
    model = rnn_rbm_lib.RNNRBM(sizes["n_visible"], sizes["n_hidden"],
                               sizes["n_hidden_recurrent"])
  except KeyError as e:
    raise ValueError(f"{params_path}: model.json's sizes lack {e}.") from None
  if model.n_visible != dataset.n_columns:
    raise ValueError(f"{params_path}: frames of {model.n_visible} units but "
                     f"the dataset's frames have {dataset.n_columns}.")
  for name in RNN_RBM_PARAMS:
    var = getattr(model, name)
    if name not in params or tuple(params[name].shape) != tuple(var.shape):
      raise ValueError(f"{params_path}: {name} is missing or not of shape "
                       f"{tuple(var.shape)}; the files do not match.")
    var.assign(params[name])
  stats = info.get("frame_statistics", {})
  return LoadedModel(rbm=None, dataset=dataset, config=info.get("config", {}),
                     step=int(info.get("step", 0)), kind=RNN_RBM,
                     rnn_rbm=model, frame_means=stats.get("means"),
                     train_frames=int(stats.get("frames", 0)))


def model_kind(model_dir: str) -> str:
  """RBM or RNN_RBM from model_dir/model.json alone (RBM when unreadable:
  `load_model` then reports what is wrong)."""
  try:
    with tf.io.gfile.GFile(os.path.join(model_dir, INFO_FILE)) as f:
      return json.loads(f.read()).get("model", RBM)
  except (tf.errors.OpError, ValueError, AttributeError):
    return RBM


def load_model(model_dir: str) -> LoadedModel:
  """Loads a model written by `save_model` or `save_rnn_rbm`.

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
  kind = info.get("model", RBM)
  if kind not in KINDS:
    raise ValueError(f"{info_path} has model={kind!r}; this code reads "
                     f"{KINDS}.")
  dataset = records.DatasetSpec.from_json(json.dumps(info["dataset"]),
                                          source=info_path)
  with tf.io.gfile.GFile(params_path, "rb") as f:
    params = _read_params(params_path, f.read(),
                          RNN_RBM_PARAMS if kind == RNN_RBM else None)
    if kind == RNN_RBM:
      return _load_rnn_rbm(info, params, dataset, params_path)
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


def _read_params(path: str, raw: bytes, names=None) -> dict:
  """params.npz's arrays `names` (None: the RBM's), checked whole and finite.

  Raises:
    ModelError: truncated or not an npz of ours (np.load's BadZipFile names
      no file).
    NonFiniteModelError: an array holds NaN/Inf (a diverged run's export).
  """
  names = names or ("weights", "visible_bias", "hidden_bias")
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
