"""The evaluation job: likelihoods against exact values, the baseline, the CLI."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

from preprocess import pianoroll
from tests import fake_dataset
from trainer.models import ais
from trainer.evaluation import lib as evaluate_lib
from trainer.models import files as export
from trainer.models.rbm import maths as model_lib
from trainer.models.rbm import training as rbm_training

N_TRAIN, N_EVAL, N_VALID = 400, 50, 30


@pytest.fixture(scope="module")
def small_model(tmp_path_factory):
  """An 8-hidden-unit RBM (exact likelihood is cheap) saved as trainer.task would."""
  root = tmp_path_factory.mktemp("eval")
  train = fake_dataset.structured_windows(N_TRAIN, seed=1)
  eval_ = fake_dataset.structured_windows(N_EVAL, seed=2)
  data_dir = str(root / "data")
  spec = fake_dataset.write_dataset(
      data_dir, train, eval_,
      valid=fake_dataset.structured_windows(N_VALID, seed=3))
  rng = np.random.default_rng(0)
  rbm = model_lib.RBM(spec.n_visible, 8, spec.unit_means)
  rbm.weights.assign(
      rng.normal(0, 0.3, (spec.n_visible, 8)).astype(np.float32))
  rbm.hidden_bias.assign(rng.normal(0, 1, 8).astype(np.float32))
  model_dir = str(root / "model")
  rbm_training.save(model_dir, rbm, spec, {"num_hidden": 8}, 10)
  return model_dir, data_dir, train, eval_


def baseline_numpy(train, windows):
  """Independent Bernoulli with (count + 1) / (n + 2) means: exact, in numpy."""
  p = (train.reshape(len(train), -1).sum(0) + 1.0) / (len(train) + 2.0)
  x = windows.reshape(len(windows), -1).astype(np.float64)
  return np.mean(x @ np.log(p) + (1 - x) @ np.log1p(-p))


@pytest.mark.parametrize("split", ["eval", "valid", "train"])
def test_likelihoods_match_exact_values(small_model, split):
  model_dir, data_dir, train, eval_ = small_model
  windows = {"eval": eval_, "train": train,
             "valid": fake_dataset.structured_windows(N_VALID, seed=3)}[split]
  result = evaluate_lib.evaluate(model_dir, data_dir, split,
                               ais.AISConfig(200, 2000, 0))
  rbm = export.load_model(model_dir).model
  exact = float(tf.reduce_mean(rbm.log_likelihood_exact(
      tf.constant(windows.reshape(len(windows), -1), tf.float32))))
  t = fake_dataset.SMALL_TIMESTEPS
  assert result["windows"] == len(windows)
  assert result["num_timesteps"] == t
  assert result["loglik_per_window"] == pytest.approx(exact, abs=0.1)
  assert result["log_z"] == pytest.approx(float(rbm.exact_log_partition()),
                                          abs=0.1)
  assert 0 < result["log_z_stderr"] < 0.05
  assert result["loglik_per_frame"] == pytest.approx(
      result["loglik_per_window"] / t, rel=1e-12)
  baseline = baseline_numpy(train, windows)
  assert result["baseline_loglik_per_window"] == pytest.approx(baseline,
                                                               rel=1e-5)
  assert result["baseline_loglik_per_frame"] == pytest.approx(baseline / t,
                                                              rel=1e-5)
  assert result["baseline_train_windows"] == N_TRAIN
  assert result["gain_per_frame"] == pytest.approx(
      (result["loglik_per_window"] - baseline) / t, rel=1e-5)


@pytest.mark.slow
def test_cli_prints_json(small_model):
  model_dir, data_dir, _, _ = small_model
  out = subprocess.run(
      [sys.executable, "-m", "trainer.evaluate", f"--model_dir={model_dir}",
       f"--data_dir={data_dir}", "--ais_chains=10", "--ais_betas=100",
       "--seed=3"],
      capture_output=True, text=True, timeout=120, check=False,
      env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3"))
  assert out.returncode == 0, out.stderr[-2000:]
  result = json.loads(out.stdout)
  assert result["split"] == "eval" and result["windows"] == N_EVAL
  assert (result["ais_chains"], result["ais_betas"], result["ais_seed"]) == (
      10, 100, 3)
  assert result["baseline_loglik_per_window"] == pytest.approx(
      baseline_numpy(small_model[2], small_model[3]), rel=1e-5)
  for key in ("log_z", "log_z_stderr", "loglik_per_window", "loglik_per_frame",
              "baseline_loglik_per_frame"):
    assert np.isfinite(result[key]), key


@pytest.mark.parametrize("args,message", [
    (["--ais_chains=1"], "--ais_chains=1"),
    (["stray"], "unexpected arguments"),
    (["--split=test"], "--split"),
    # A dataset preprocessed without a valid split (written below).
    (["--split=valid", "NO_VALID"], "has no valid windows"),
])
@pytest.mark.slow
def test_cli_rejects_bad_flags(small_model, tmp_path, args, message):
  model_dir, data_dir, train, eval_ = small_model
  if "NO_VALID" in args:
    args = [a for a in args if a != "NO_VALID"]
    data_dir = str(tmp_path / "no_valid")
    fake_dataset.write_dataset(data_dir, train, eval_)
  out = subprocess.run(
      [sys.executable, "-m", "trainer.evaluate", f"--model_dir={model_dir}",
       f"--data_dir={data_dir}"] + args,
      capture_output=True, text=True, timeout=120, check=False,
      env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3"))
  assert out.returncode == 2 and message in out.stderr, out.stderr[-2000:]
  assert "Traceback" not in out.stderr
  # One error line (TensorFlow's start-up may log lines of its own before).
  errors = [line for line in out.stderr.splitlines() if ": error: " in line]
  assert len(errors) == 1 and message in errors[0], out.stderr[-2000:]


def test_data_of_another_layout_is_refused(small_model, tmp_path):
  model_dir, _, _, _ = small_model
  other = pianoroll.RollSpec("roll", 60, 72, 4)
  windows = np.zeros((10, 8, other.n_columns), np.uint8)
  windows[:, :, 3] = 1
  fake_dataset.write_dataset(str(tmp_path), windows, windows, spec=other)
  # Every differing field is named with both values, and both folders.
  with pytest.raises(ValueError) as e:
    evaluate_lib.evaluate(model_dir, str(tmp_path))
  message = str(e.value)
  # n_visible is the same (96): the model would run, and mean nothing.
  assert "with encoding=onoff, num_timesteps=4 but" in message
  assert "has encoding=roll, num_timesteps=8:" in message
  assert model_dir in message and str(tmp_path) in message


def test_wrong_window_length_is_refused(small_model, tmp_path):
  model_dir, _, _, _ = small_model
  windows = fake_dataset.structured_windows(10, num_timesteps=6)
  fake_dataset.write_dataset(str(tmp_path), windows, windows)
  with pytest.raises(ValueError,
                     match="num_timesteps=4, n_visible=96 but .*"
                     "num_timesteps=6, n_visible=144"):
    evaluate_lib.evaluate(model_dir, str(tmp_path))


def test_missing_or_empty_inputs_are_clear_errors(small_model, tmp_path):
  model_dir, data_dir, train, _ = small_model
  with pytest.raises(FileNotFoundError, match="dataset.json does not exist"):
    evaluate_lib.evaluate(model_dir, str(tmp_path / "nowhere"))
  with pytest.raises(FileNotFoundError, match="model.json does not exist"):
    evaluate_lib.evaluate(str(tmp_path / "nowhere"), data_dir)
  empty = str(tmp_path / "no_eval")
  fake_dataset.write_dataset(empty, train, train[:0])
  with pytest.raises(ValueError, match="no eval windows"):
    evaluate_lib.evaluate(model_dir, empty)
