"""The model/ format: an RNN-RBM round-trips by name; an RBM loads as before."""

import json
import os

import numpy as np
import pytest

from preprocess import records
from trainer.models import base
from trainer.models import files as export
from trainer.models.rbm import maths as model_lib
from trainer.models.rbm import training as rbm_training
from trainer.models.recurrent import training as sequence_training
from trainer.models.rnn_rbm import maths as rnn_rbm
from trainer.models.rnn_rbm import training as sequence_train_lib


def piece_spec(n_columns=12):
  return records.DatasetSpec(
      encoding="roll", low_note=60, high_note=60 + n_columns,
      steps_per_quarter=1, num_timesteps=0, stride=0, n_visible=0,
      unit_means=[], counts={"windows": {"train": 3, "eval": 1}})


def test_rnn_rbm_round_trips_every_parameter(tmp_path):
  model = rnn_rbm.RNNRBM(12, 7, 5, seed=3)
  model.b_u.assign(np.arange(5, dtype=np.float32))
  model.u0.assign(-np.arange(5, dtype=np.float32))
  sequence_training.save(str(tmp_path), model, piece_spec(),
                         {"model": "rnn_rbm"}, 42, frame_means=[0.25] * 12,
                         train_frames=80, name="rnn_rbm",
                         params=sequence_train_lib.PARAMS)
  info = json.loads((tmp_path / "model.json").read_text())
  assert info["model"] == "rnn_rbm"
  assert info["sizes"] == {"n_visible": 12, "n_hidden": 7,
                           "n_hidden_recurrent": 5, "recurrence": "tanh"}
  assert sorted(np.load(tmp_path / "params.npz").files) == sorted(
      sequence_train_lib.PARAMS)
  loaded = export.load_model(str(tmp_path))
  assert loaded.name == "rnn_rbm" and isinstance(loaded.model, rnn_rbm.RNNRBM)
  assert loaded.step == 42
  assert loaded.info["frame_statistics"] == {"means": [0.25] * 12,
                                             "frames": 80}
  for name in sequence_train_lib.PARAMS:
    np.testing.assert_array_equal(getattr(loaded.model, name).numpy(),
                                  getattr(model, name).numpy())
  with pytest.raises(base.WrongModelError, match="--model=rbm"):
    loaded.require("rbm", "this tool")


def test_rbm_format_is_unchanged(tmp_path):
  rbm = model_lib.RBM(12, 4, seed=1)
  spec = records.DatasetSpec(
      encoding="roll", low_note=60, high_note=72, steps_per_quarter=1,
      num_timesteps=1, stride=1, n_visible=12, unit_means=[0.5] * 12,
      counts={})
  rbm_training.save(str(tmp_path), rbm, spec, {"num_hidden": 4}, 7)
  info = json.loads((tmp_path / "model.json").read_text())
  assert sorted(info) == ["config", "dataset", "format_version", "step"]
  assert sorted(np.load(tmp_path / "params.npz").files) == [
      "hidden_bias", "visible_bias", "weights"]
  loaded = export.load_model(str(tmp_path))
  assert loaded.name == "rbm" and isinstance(loaded.model, model_lib.RBM)
  np.testing.assert_array_equal(loaded.model.weights.numpy(), rbm.weights.numpy())


def test_mismatched_rnn_rbm_files_are_refused(tmp_path):
  model = rnn_rbm.RNNRBM(12, 7, 5)
  sequence_training.save(str(tmp_path), model, piece_spec(13), {}, 0,
                         frame_means=[0.1] * 12, train_frames=1,
                         name="rnn_rbm", params=sequence_train_lib.PARAMS)
  with pytest.raises(ValueError, match="13"):
    export.load_model(str(tmp_path))
  info = json.loads((tmp_path / "model.json").read_text())
  info["model"] = "lstm"
  (tmp_path / "model.json").write_text(json.dumps(info))
  with pytest.raises(ValueError, match="lstm"):
    export.load_model(os.fspath(tmp_path))
