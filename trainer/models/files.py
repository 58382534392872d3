"""The trained-model format: the model/ folder `trainer.task` writes and
generation and evaluation load, without the training code's flags.

    model/params.npz   the model's float32 arrays (its model.py says which)
    model/model.json   {"format_version", "model": its registry name,
                        "config": the training settings, "dataset":
                        dataset.json as trained on, "step", and what the
                        model adds (sizes, frame statistics, ...)}

A model.json without "model" is a window RBM (written before the field).
Use it as:

    loaded = files.load_model(model_dir)
    loaded.family.sampler(loaded, config)   # or .evaluate(...), ...

Plain numpy + JSON so any tool (or a notebook) can read it; paths go through
tf.io.gfile, so gs:// works in the cloud. params.npz is written before
model.json, so a folder with a model.json holds its parameters.
"""

import hashlib
import io
import json
import os
import zipfile

from absl import logging
import numpy as np
import tensorflow as tf

from common import cli
from preprocess import records
from trainer import models
from trainer.models import base

FORMAT_VERSION = 1
PARAMS_FILE = "params.npz"
INFO_FILE = "model.json"
# trainer.calibrate's sampling settings for this model (not part of digest).
SAMPLING_FILE = "sampling.json"
# The model of a model.json without "model".
UNNAMED = "rbm"


class ModelError(cli.UsageError):
  """--model_dir does not hold a readable model (a ValueError, as before)."""


class NonFiniteModelError(cli.JobError):
  """The model's parameters hold NaN/Inf: its figures and samples would be."""


def save(model_dir: str, arrays: dict, info: dict) -> None:
  """Writes params.npz (`arrays`) first, then model.json (`info` with the
  format version), each under a temporary name renamed into place: a reader
  never sees a half-written file."""
  tf.io.gfile.makedirs(model_dir)
  buf = io.BytesIO()
  np.savez(buf, **arrays)
  _write_whole(os.path.join(model_dir, PARAMS_FILE), buf.getvalue())
  info = {"format_version": FORMAT_VERSION, **info}
  _write_whole(os.path.join(model_dir, INFO_FILE),
               json.dumps(info, indent=1, sort_keys=True).encode())


def _write_whole(path: str, data: bytes) -> None:
  """Writes `data` to a temporary name beside `path`, then renames it."""
  temporary = f"{path}.tmp-{os.getpid()}"
  with tf.io.gfile.GFile(temporary, "wb") as f:
    f.write(data)
  tf.io.gfile.rename(temporary, path, overwrite=True)


def base_info(config: dict, dataset: records.DatasetSpec, step: int) -> dict:
  """The model.json entries every model writes."""
  return {"config": config, "dataset": json.loads(dataset.to_json()),
          "step": int(step)}


def digest(model_dir: str) -> str:
  """SHA-256 of model.json and params.npz: the model's identity, wherever it
  is copied to."""
  h = hashlib.sha256()
  for name in (INFO_FILE, PARAMS_FILE):
    with tf.io.gfile.GFile(os.path.join(model_dir, name), "rb") as f:
      h.update(f.read())
  return h.hexdigest()


def save_sampling(model_dir: str, record: dict) -> str:
  """Writes SAMPLING_FILE (trainer.calibrate's choice, with the digest of the
  model it was made for) by rename; returns its path."""
  path = os.path.join(model_dir, SAMPLING_FILE)
  _write_whole(path, (json.dumps(record, indent=1, sort_keys=True) + "\n")
               .encode())
  return path


def load_sampling(model_dir: str) -> dict | None:
  """The calibrated sampling settings of this model, or None: no file, or a
  file made for other parameters (a retrained model: calibrate again).

  Raises:
    ModelError: the file is not a calibration this project wrote.
  """
  path = os.path.join(model_dir, SAMPLING_FILE)
  if not tf.io.gfile.exists(path):
    return None
  with tf.io.gfile.GFile(path, "rb") as f:
    text = f.read()
  try:
    record = json.loads(text)
    settings = record["settings"]
    ok = (isinstance(settings, dict) and isinstance(record["digest"], str)
          and all(isinstance(v, (int, float)) and not isinstance(v, bool)
                  for v in settings.values()))
  except (ValueError, KeyError, TypeError):
    ok = False
  if not ok:
    raise ModelError(f"{path} is not a calibration written by trainer."
                     "calibrate (it needs \"settings\" of numbers and "
                     "\"digest\"): delete it, or rerun trainer.calibrate.")
  if record["digest"] != digest(model_dir):
    logging.warning("%s was made for other parameters (the model was trained "
                    "again): its settings are not used; rerun "
                    "trainer.calibrate", path)
    return None
  return record


def model_name(model_dir: str) -> str:
  """The registry name from model_dir/model.json alone (UNNAMED when it is
  unreadable: `load_model` then reports what is wrong)."""
  try:
    with tf.io.gfile.GFile(os.path.join(model_dir, INFO_FILE)) as f:
      name = json.loads(f.read()).get("model", UNNAMED)
  except (tf.errors.OpError, ValueError, AttributeError):
    return UNNAMED
  return name if name in models.NAMES else UNNAMED


def load_model(model_dir: str) -> base.LoadedModel:
  """Loads a model/ folder.

  Raises:
    FileNotFoundError: model_dir has no model.json/params.npz.
    ModelError: the files are not a model of this format (a usage error
      naming the file and the key), or do not fit together.
  """
  info_path = os.path.join(model_dir, INFO_FILE)
  params_path = os.path.join(model_dir, PARAMS_FILE)
  for path in (info_path, params_path):
    if not tf.io.gfile.exists(path):
      raise FileNotFoundError(
          f"{path} does not exist: --model_dir must be the model/ folder that "
          "trainer.task writes (JOB_DIR/model).")
  info = _read_info(info_path)
  model = models.get(info.get("model", UNNAMED))
  try:
    dataset = records.DatasetSpec.from_json(json.dumps(info["dataset"]),
                                            source=f"{info_path}'s dataset")
  except ValueError as e:
    raise ModelError(str(e)) from None
  with tf.io.gfile.GFile(params_path, "rb") as f:
    params = _read_params(params_path, f.read(), model.param_names(info))
  try:
    return model.load(info, params, dataset, params_path)
  except ModelError:
    raise
  except (KeyError, TypeError, ValueError, AttributeError) as e:
    raise ModelError(f"{info_path} does not describe {params_path} "
                     f"({type(e).__name__}: {e}); it was edited or damaged: "
                     "rerun trainer.task with the same --job_dir to export it "
                     "again.") from None


# model.json's keys every model writes, and their JSON types.
_REQUIRED = {"format_version": int, "dataset": dict, "config": dict,
             "step": int}


def _read_info(info_path: str) -> dict:
  """model.json, checked: an object with the keys and types every model
  writes, of this format, of a registered model.

  Raises:
    ModelError: one line naming the file and the key.
  """
  with tf.io.gfile.GFile(info_path) as f:
    try:
      info = json.loads(f.read())
    except json.JSONDecodeError as e:
      raise ModelError(f"{info_path} is not valid JSON ({e}): rerun "
                       "trainer.task with the same --job_dir to export the "
                       "model again.") from None
  if not isinstance(info, dict):
    raise ModelError(f"{info_path} holds a JSON {type(info).__name__}, not "
                     "the object trainer.task writes: export the model again.")
  for key, kind in _REQUIRED.items():
    if key not in info:
      raise ModelError(f"{info_path} has no {key!r}: it was edited or not "
                       "written by trainer.task; export the model again.")
    if not isinstance(info[key], kind) or isinstance(info[key], bool):
      raise ModelError(f"{info_path}: {key}={info[key]!r} is not of type "
                       f"{kind.__name__}; it was edited: export the model "
                       "again.")
  if info["format_version"] != FORMAT_VERSION:
    raise ModelError(f"{info_path} has format_version="
                     f"{info['format_version']}; this code reads "
                     f"{FORMAT_VERSION}. Retrain or use a matching version.")
  name = info.get("model", UNNAMED)
  if name not in models.NAMES:
    raise ModelError(f"{info_path} has model={name!r}; this code reads "
                     f"{', '.join(models.NAMES)}.")
  return info


def assign_checked(module, params: dict, names, path: str) -> None:
  """Assigns params[name] to module.<name> for each name, checking shapes."""
  for name in names:
    var = getattr(module, name)
    if name not in params or tuple(params[name].shape) != tuple(var.shape):
      raise ValueError(f"{path}: {name} is missing or not of shape "
                       f"{tuple(var.shape)}; the files do not match.")
    var.assign(params[name])


def _read_params(path: str, raw: bytes, names) -> dict:
  """params.npz's arrays `names`, checked whole and finite.

  Raises:
    ModelError: truncated or not an npz of ours (np.load's BadZipFile names
      no file).
    NonFiniteModelError: an array holds NaN/Inf (a diverged run's export).
  """
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
