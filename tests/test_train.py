"""The distributed trainer: replica equivalence, learning, resume, failures."""

import glob
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import tensorflow as tf

from tests import fake_dataset
from trainer import config as config_lib
from trainer import export
from trainer import model as model_lib
from trainer import train

ONE = ["/cpu:0"]
TWO = ["/cpu:0", "/cpu:1"]
V = fake_dataset.SMALL_TIMESTEPS * fake_dataset.SMALL_SPEC.n_columns


@pytest.fixture(scope="module")
def dataset_dir(tmp_path_factory):
  d = str(tmp_path_factory.mktemp("data"))
  fake_dataset.write_dataset(d, fake_dataset.structured_windows(1200, seed=1),
                             fake_dataset.structured_windows(300, seed=2))
  return d


def one_update(devices, persistent, batch, init):
  strategy = tf.distribute.MirroredStrategy(devices)
  config = config_lib.TrainConfig(num_hidden=6, learning_rate=0.1,
                                  persistent=persistent, cd_k=2, seed=3,
                                  momentum=True, weight_decay=1e-3)
  with strategy.scope():
    rbm = model_lib.RBM(V, 6)
  for var, value in zip((rbm.weights, rbm.visible_bias, rbm.hidden_bias), init):
    var.assign(value)
  trainer = train.CDTrainer(strategy, rbm, config, len(batch), V)
  ds = strategy.experimental_distribute_dataset(
      tf.data.Dataset.from_tensors(batch).repeat(2))
  it = iter(ds)
  for _ in range(2):  # twice: momentum and (for PCD) the chains carry over
    out = trainer.train_step(next(it))
  assert bool(out["finite"])
  state = [rbm.weights.numpy(), rbm.visible_bias.numpy(),
           rbm.hidden_bias.numpy()]
  if persistent:
    state.append(trainer.chains.numpy())
  return state, float(out["reconstruction_error"])


@pytest.mark.parametrize("persistent", [False, True])
def test_two_replicas_compute_the_same_update_as_one(persistent):
  rng = np.random.default_rng(0)
  batch = tf.constant(fake_dataset.structured_windows(16, seed=5).reshape(16, -1),
                      tf.float32)
  init = [rng.normal(0, 0.1, (V, 6)).astype(np.float32),
          rng.normal(-1, 0.5, V).astype(np.float32), np.zeros(6, np.float32)]
  one, err1 = one_update(ONE, persistent, batch, init)
  two, err2 = one_update(TWO, persistent, batch, init)
  assert err1 == pytest.approx(err2, rel=1e-5)
  for a, b in zip(one, two):
    np.testing.assert_allclose(a, b, atol=1e-5)
  assert not np.allclose(one[0], init[0])  # it did update


def heldout_loglik(model_dir, eval_windows):
  rbm = export.load_model(model_dir).rbm
  v = tf.constant(eval_windows.reshape(len(eval_windows), -1), tf.float32)
  return float(tf.reduce_mean(rbm.log_likelihood_exact(v)))


def test_training_on_two_replicas_learns(dataset_dir, tmp_path):
  eval_windows = fake_dataset.structured_windows(300, seed=2)
  spec = train.data.load_dataset_spec(dataset_dir)
  with tf.distribute.MirroredStrategy(ONE).scope():
    untrained = model_lib.RBM(V, 8, spec.unit_means, seed=0)
  export.save_model(str(tmp_path / "init"), untrained, spec, {}, 0)
  before = heldout_loglik(str(tmp_path / "init"), eval_windows)

  config = config_lib.TrainConfig(num_hidden=8, learning_rate=0.1,
                                  batch_size=20, epochs=15, momentum=True,
                                  summary_every_steps=200)
  dirs = train.resolve_dirs(str(tmp_path / "job"))
  metrics = train.train_and_evaluate(
      config, dataset_dir, dirs, tf.distribute.MirroredStrategy(TWO))
  after = heldout_loglik(dirs.model_dir, eval_windows)
  assert metrics["step"] == 15 * (1200 // 20)
  # 4 chord prototypes + 2% noise: the data's entropy is log 4 + 96 H(0.02)
  # = 10.8 nats a window; the initial (independent) model is at about -25.
  assert after > before + 10, (before, after)
  assert after > -14, after

  # TensorBoard got the monitoring scalars and images.
  tags = set()
  for path in glob.glob(os.path.join(dirs.tensorboard_dir, "events*")):
    for record in tf.data.TFRecordDataset(path):
      event = tf.compat.v1.Event.FromString(record.numpy())
      tags.update(v.tag for v in event.summary.value)
  for tag in ("reconstruction_error", "free_energy/train_subset",
              "free_energy/eval", "free_energy/gap", "pseudo_log_likelihood/eval",
              "weight_norm", "examples_per_sec", "samples",
              "hidden_unit_weights"):
    assert tag in tags, (tag, tags)


def _task(data_dir, job_dir, *flags):
  return [sys.executable, "-m", "trainer.task", f"--data_dir={data_dir}",
          f"--job_dir={job_dir}", "--num_hidden=8", "--batch_size=10",
          "--log_every_steps=50", *flags]


def test_resumes_after_sigkill(dataset_dir, tmp_path):
  job = str(tmp_path / "job")
  env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", CUDA_VISIBLE_DEVICES="")
  cmd = _task(dataset_dir, job, "--max_steps=200000",
              "--steps_per_checkpoint=50", "--summary_every_steps=100000")
  proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL,
                          stderr=subprocess.DEVNULL)
  deadline = time.time() + 120
  while not glob.glob(os.path.join(job, "checkpoints", "ckpt-*.index")):
    assert proc.poll() is None and time.time() < deadline, "no checkpoint"
    time.sleep(0.2)
  proc.send_signal(signal.SIGKILL)
  proc.wait()
  saved = tf.train.latest_checkpoint(os.path.join(job, "checkpoints"))
  saved_step = int(saved.rsplit("-", 1)[1])
  assert 0 < saved_step < 200000

  target = saved_step + 100
  result = subprocess.run(
      _task(dataset_dir, job, f"--max_steps={target}",
            "--steps_per_checkpoint=50", "--summary_every_steps=100000"),
      env=env, capture_output=True, text=True, timeout=300, check=False)
  assert result.returncode == 0, result.stderr[-3000:]
  assert f"resumed from" in result.stderr and f"at step {saved_step}" in result.stderr
  assert export.load_model(os.path.join(job, "model")).step == target


def test_nan_stops_the_run_and_keeps_the_last_good_checkpoint(dataset_dir,
                                                              tmp_path):
  # W <- W - lr * decay * W multiplies W by about -1e20 a step: Inf by step 3.
  config = config_lib.TrainConfig(num_hidden=8, batch_size=10,
                                  learning_rate=1.0, weight_decay=1e20,
                                  steps_per_checkpoint=1,
                                  log_every_steps=1, max_steps=50)
  dirs = train.resolve_dirs(str(tmp_path / "job"))
  with pytest.raises(train.NonFiniteError, match="learning_rate"):
    train.train_and_evaluate(config, dataset_dir, dirs,
                             tf.distribute.MirroredStrategy(ONE))
  latest = tf.train.latest_checkpoint(dirs.checkpoint_dir)
  assert latest is not None
  reader = tf.train.load_checkpoint(latest)
  for name in reader.get_variable_to_shape_map():
    value = reader.get_tensor(name)
    if isinstance(value, np.ndarray) and value.dtype.kind == "f":
      assert np.isfinite(value).all(), name
  assert not os.path.exists(dirs.model_dir)


def test_mismatched_job_dir_is_refused(dataset_dir, tmp_path):
  dirs = train.resolve_dirs(str(tmp_path / "job"))
  strategy = tf.distribute.MirroredStrategy(ONE)
  config = config_lib.TrainConfig(num_hidden=8, batch_size=100, max_steps=2)
  train.train_and_evaluate(config, dataset_dir, dirs, strategy)
  other = config_lib.TrainConfig(num_hidden=9, batch_size=100, max_steps=4)
  with pytest.raises(ValueError, match="--num_hidden=8.*--num_hidden=9"):
    train.train_and_evaluate(other, dataset_dir, dirs, strategy)


def test_data_errors_are_clear(dataset_dir, tmp_path):
  dirs = train.resolve_dirs(str(tmp_path / "job"))
  strategy = tf.distribute.MirroredStrategy(ONE)
  big = config_lib.TrainConfig(batch_size=5000)
  with pytest.raises(ValueError, match="1200 training windows.*--batch_size=5000"):
    train.train_and_evaluate(big, dataset_dir, dirs, strategy)
  with pytest.raises(FileNotFoundError, match="dataset.json"):
    train.train_and_evaluate(config_lib.TrainConfig(), str(tmp_path / "none"),
                             dirs, strategy)
  empty = str(tmp_path / "empty")
  fake_dataset.write_dataset(empty, fake_dataset.structured_windows(0),
                             fake_dataset.structured_windows(0))
  with pytest.raises(ValueError, match="0 training windows"):
    train.train_and_evaluate(config_lib.TrainConfig(), empty, dirs, strategy)
  with pytest.raises(ValueError, match="--batch_size=7.*2 replicas"):
    train.train_and_evaluate(config_lib.TrainConfig(batch_size=7, max_steps=1),
                             dataset_dir, dirs,
                             tf.distribute.MirroredStrategy(TWO))


def test_bad_flags_are_clear():
  with pytest.raises(ValueError, match="--learning_rate=-1"):
    config_lib.TrainConfig(learning_rate=-1)
  with pytest.raises(ValueError, match="--num_hidden=0"):
    config_lib.TrainConfig(num_hidden=0)


def test_vertex_ai_directories_are_used_when_flags_are_absent():
  env = {"AIP_MODEL_DIR": "gs://b/m", "AIP_CHECKPOINT_DIR": "gs://b/c",
         "AIP_TENSORBOARD_LOG_DIR": "gs://b/t"}
  dirs = train.resolve_dirs(environ=env)
  assert dirs == train.RunDirs("gs://b/m", "gs://b/c", "gs://b/t")
  dirs = train.resolve_dirs("gs://j", model_dir="gs://x", environ=env)
  assert dirs.model_dir == "gs://x" and dirs.checkpoint_dir == "gs://b/c"
  assert train.resolve_dirs("out/j", environ={}).checkpoint_dir == "out/j/checkpoints"
  with pytest.raises(ValueError, match="--job_dir"):
    train.resolve_dirs(environ={})
