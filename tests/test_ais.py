"""AIS against exact partition functions, and the evaluation job."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

from preprocess import pianoroll
from tests import fake_dataset
from trainer import ais
from trainer import evaluation
from trainer import export
from trainer import model as model_lib


def random_rbm(n_visible, n_hidden, scale, seed):
  rng = np.random.default_rng(seed)
  rbm = model_lib.RBM(n_visible, n_hidden)
  rbm.weights.assign(rng.normal(0, scale, (n_visible, n_hidden)).astype(np.float32))
  rbm.visible_bias.assign(rng.normal(-1, 1, n_visible).astype(np.float32))
  rbm.hidden_bias.assign(rng.normal(0, 1, n_hidden).astype(np.float32))
  return rbm


@pytest.mark.parametrize("n_visible,n_hidden,scale,seed", [
    (40, 10, 0.3, 0), (96, 16, 0.2, 1), (60, 20, 0.25, 2)])
def test_ais_agrees_with_the_exact_partition_function(n_visible, n_hidden,
                                                      scale, seed):
  rbm = random_rbm(n_visible, n_hidden, scale, seed)
  exact = float(rbm.exact_log_partition())
  base = np.full(n_visible, -1.0)
  result = ais.estimate_log_partition(rbm, base, ais.AISConfig(100, 3000, seed))
  assert abs(result.log_z - exact) < 0.1, (result, exact)
  assert 0 < result.log_z_stderr < 0.1
  assert abs(result.log_z - exact) < 6 * result.log_z_stderr + 0.02


def test_ais_is_reproducible_and_seeded():
  rbm = random_rbm(30, 8, 0.3, 4)
  a = ais.estimate_log_partition(rbm, np.zeros(30), ais.AISConfig(20, 200, 1))
  b = ais.estimate_log_partition(rbm, np.zeros(30), ais.AISConfig(20, 200, 1))
  c = ais.estimate_log_partition(rbm, np.zeros(30), ais.AISConfig(20, 200, 2))
  assert a == b and a.log_z != c.log_z


def test_beta_schedule_is_monotone_from_0_to_1():
  for n in (2, 10, 1000, 10000):
    betas = ais.beta_schedule(n)
    assert len(betas) == n and betas[0] == 0.0 and betas[-1] == 1.0
    assert np.all(np.diff(betas) > 0)


def test_bad_ais_flags():
  with pytest.raises(ValueError, match="--ais_chains=1"):
    ais.AISConfig(num_chains=1)


@pytest.fixture(scope="module")
def small_model(tmp_path_factory):
  root = tmp_path_factory.mktemp("eval")
  train = fake_dataset.structured_windows(400, seed=1)
  eval_ = fake_dataset.structured_windows(50, seed=2)
  data_dir = str(root / "data")
  spec = fake_dataset.write_dataset(data_dir, train, eval_)
  rbm = random_rbm(spec.n_visible, 8, 0.2, 0)
  model_dir = str(root / "model")
  export.save_model(model_dir, rbm, spec, {"num_hidden": 8}, 10)
  return model_dir, data_dir, train, eval_


def test_evaluate_likelihoods_and_baseline(small_model):
  model_dir, data_dir, train, eval_ = small_model
  result = evaluation.evaluate(model_dir, data_dir, "eval",
                               ais.AISConfig(100, 2000, 0))
  rbm = export.load_model(model_dir).rbm
  v = tf.constant(eval_.reshape(len(eval_), -1), tf.float32)
  exact = float(tf.reduce_mean(rbm.log_likelihood_exact(v)))
  assert result["windows"] == 50
  assert result["loglik_per_window"] == pytest.approx(exact, abs=0.1)
  assert result["loglik_per_frame"] == pytest.approx(
      result["loglik_per_window"] / fake_dataset.SMALL_TIMESTEPS)
  p = (train.reshape(400, -1).mean(0) * 400 + 1) / 402
  x = eval_.reshape(50, -1)
  baseline = np.mean(np.sum(x * np.log(p) + (1 - x) * np.log1p(-p), axis=1))
  assert result["baseline_loglik_per_window"] == pytest.approx(baseline, rel=1e-4)


def test_evaluate_cli_prints_json(small_model):
  model_dir, data_dir, _, _ = small_model
  out = subprocess.run(
      [sys.executable, "-m", "trainer.evaluate", f"--model_dir={model_dir}",
       f"--data_dir={data_dir}", "--ais_chains=10", "--ais_betas=100"],
      capture_output=True, text=True, timeout=120, check=True,
      env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3"))
  result = json.loads(out.stdout)
  assert result["split"] == "eval" and "log_z_stderr" in result


def test_data_of_another_layout_is_refused(small_model, tmp_path):
  model_dir, _, _, _ = small_model
  other = pianoroll.RollSpec("roll", 60, 72, 4)
  windows = np.zeros((10, 8, other.n_columns), np.uint8)
  windows[:, :, 3] = 1
  fake_dataset.write_dataset(str(tmp_path), windows, windows, spec=other)
  with pytest.raises(ValueError, match="encoding=onoff.*encoding=roll"):
    evaluation.evaluate(model_dir, str(tmp_path))
