"""The distributed trainer: replica equivalence, learning, resume, failures."""

import dataclasses
import glob
import json
import os
import signal
import subprocess
import sys
import time

from absl import flags
import numpy as np
import pytest
import tensorflow as tf

from tests import fake_dataset
from tests import net
from trainer import config as config_lib
from trainer import random_streams
from trainer.models import files as export
from trainer.models.rbm import maths as model_lib
from trainer import task
from trainer.training import loop as train_lib
from trainer.models.rbm import training as rbm_training

ONE = ["/cpu:0"]
TWO = ["/cpu:0", "/cpu:1"]
V = fake_dataset.SMALL_TIMESTEPS * fake_dataset.SMALL_SPEC.n_columns
N_TRAIN = 1200


@pytest.fixture(scope="module")
def dataset_dir(tmp_path_factory):
  d = str(tmp_path_factory.mktemp("data"))
  fake_dataset.write_dataset(
      d, fake_dataset.structured_windows(N_TRAIN, seed=1),
      fake_dataset.structured_windows(300, seed=2))
  return d


def summary_tags(tensorboard_dir) -> set:
  tags = set()
  for path in glob.glob(os.path.join(tensorboard_dir, "events*")):
    for record in tf.data.TFRecordDataset(path):
      event = tf.compat.v1.Event.FromString(record.numpy())
      tags.update(v.tag for v in event.summary.value)
  return tags


def one_update(devices, persistent, batch, init):
  strategy = tf.distribute.MirroredStrategy(devices)
  config = config_lib.TrainConfig(num_hidden=6, learning_rate=0.1,
                                  persistent=persistent, cd_k=2, seed=3,
                                  momentum=True, weight_decay=1e-3)
  with strategy.scope():
    rbm = model_lib.RBM(V, 6)
  for var, value in zip((rbm.weights, rbm.visible_bias, rbm.hidden_bias), init):
    var.assign(value)
  trainer = rbm_training.CDTrainer(strategy, rbm, config, len(batch), V)
  ds = strategy.experimental_distribute_dataset(
      tf.data.Dataset.from_tensors(batch).repeat(2))
  it = iter(ds)
  for _ in range(2):  # twice: momentum and (for PCD) the chains carry over
    out = trainer.train_step(next(it))
  assert bool(out["finite"])
  state = [rbm.weights.numpy(), rbm.visible_bias.numpy(),
           rbm.hidden_bias.numpy()] + [v.numpy() for v in trainer.velocities]
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
  assert err1 == pytest.approx(err2, rel=1e-6)
  for a, b in zip(one, two):
    np.testing.assert_allclose(a, b, atol=1e-6)
  assert not np.allclose(one[0], init[0])  # it did update
  if persistent:  # the chains moved: PCD, not a copy of the data
    assert not np.array_equal(one[-1], batch.numpy())


def heldout_loglik(model_dir, eval_windows):
  rbm = export.load_model(model_dir).model
  v = tf.constant(eval_windows.reshape(len(eval_windows), -1), tf.float32)
  return float(tf.reduce_mean(rbm.log_likelihood_exact(v)))


def test_training_on_two_replicas_learns(dataset_dir, tmp_path):
  eval_windows = fake_dataset.structured_windows(300, seed=2)
  spec = train_lib.data.load_dataset_spec(dataset_dir)
  with tf.distribute.MirroredStrategy(ONE).scope():
    untrained = model_lib.RBM(V, 8, spec.unit_means, seed=0)
  rbm_training.save(str(tmp_path / "init"), untrained, spec, {}, 0)
  before = heldout_loglik(str(tmp_path / "init"), eval_windows)

  config = config_lib.TrainConfig(num_hidden=8, learning_rate=0.1,
                                  batch_size=20, epochs=15, momentum=True,
                                  summary_every_steps=200)
  job = str(tmp_path / "job")
  metrics = train_lib.train_and_evaluate(
      config, dataset_dir, job, strategy=tf.distribute.MirroredStrategy(TWO))
  loaded = export.load_model(os.path.join(job, "model"))
  after = heldout_loglik(os.path.join(job, "model"), eval_windows)
  assert metrics["step"] == loaded.step == 15 * (N_TRAIN // 20)
  assert loaded.config["num_hidden"] == 8 and loaded.dataset == spec
  # 4 chord prototypes + 2% noise: the data's entropy is log 4 + 96 H(0.02)
  # = 10.8 nats a window; the initial (independent) model is at about -25.
  assert after > before + 10, (before, after)
  assert after > -14, after
  # Trained on the train split only: its free energy is lower than eval's,
  # but on this one distribution the gap stays small.
  assert abs(metrics["free_energy_gap"]) < 2.0, metrics

  # TensorBoard got the monitoring scalars and images.
  tags = summary_tags(os.path.join(job, "tensorboard"))
  for tag in ("reconstruction_error", "free_energy/train_subset",
              "free_energy/eval", "free_energy/gap", "pseudo_log_likelihood/eval",
              "pseudo_log_likelihood/train", "weight_norm", "examples_per_sec",
              "learning_rate", "momentum", "samples", "hidden_unit_weights"):
    assert tag in tags, (tag, tags)


def _run(dataset_dir, job, **overrides):
  config = config_lib.TrainConfig(**{
      "num_hidden": 8, "batch_size": 40, "learning_rate": 0.05,
      "persistent": True, "momentum": True, "weight_decay": 1e-4,
      "steps_per_checkpoint": 25, "log_every_steps": 25,
      "summary_every_steps": 10_000, **overrides})
  train_lib.train_and_evaluate(config, dataset_dir, job,
                           strategy=tf.distribute.MirroredStrategy(ONE))
  return np.load(os.path.join(job, "model", export.PARAMS_FILE))


def test_a_resumed_run_continues_exactly_as_an_uninterrupted_one(dataset_dir,
                                                                  tmp_path):
  # 30 steps an epoch: stop mid-epoch (step 135) and resume across the
  # momentum switch (step 150), PCD chains and velocities from the checkpoint.
  straight = _run(dataset_dir, str(tmp_path / "a"), max_steps=200)
  _run(dataset_dir, str(tmp_path / "b"), max_steps=135)
  resumed = _run(dataset_dir, str(tmp_path / "b"), max_steps=200)
  for name in ("weights", "visible_bias", "hidden_bias"):
    np.testing.assert_allclose(straight[name], resumed[name], atol=1e-6)
  initial = model_lib.RBM(V, 8, seed=0).weights.numpy()
  assert np.abs(straight["weights"] - initial).max() > 0.1  # it did train


def test_in_memory_windows_train_the_same_on_two_replicas_as_on_one(
    dataset_dir, tmp_path):
  # Each replica gathers its own rows of the global batch in the step: the
  # run does not depend on the replica count, across epochs. (CD: a PCD
  # all-gather of another shape on a second MirroredStrategy in this process
  # collides with the one of test_two_replicas_compute_the_same_update_as_one
  # in TF's collective instance keys.)
  config = config_lib.TrainConfig(
      num_hidden=8, batch_size=40, learning_rate=0.05, momentum=True,
      max_steps=70, log_every_steps=1000, summary_every_steps=10_000)
  runs = {}
  for name, devices in (("one", ONE), ("two", TWO)):
    train_lib.train_and_evaluate(
        config, dataset_dir, str(tmp_path / name),
        strategy=tf.distribute.MirroredStrategy(devices))
    runs[name] = np.load(str(tmp_path / name / "model" / export.PARAMS_FILE))
  for key in ("weights", "visible_bias", "hidden_bias"):
    np.testing.assert_allclose(runs["one"][key], runs["two"][key], atol=1e-5)


def test_the_in_memory_order_visits_every_window_once_an_epoch():
  orders = [random_streams.epoch_order(3, epoch, 1000).numpy()
            for epoch in (0, 1, 0)]
  for order in orders:
    assert sorted(order) == list(range(1000))
  np.testing.assert_array_equal(orders[0], orders[2])  # keyed by the epoch
  assert not np.array_equal(orders[0], orders[1])
  assert not np.array_equal(orders[0], np.arange(1000))


def _task(data_dir, job_dir, *flags):
  return [sys.executable, "-m", "trainer.task", f"--data_dir={data_dir}",
          f"--job_dir={job_dir}", "--num_hidden=8", "--batch_size=10",
          "--log_every_steps=50", "--steps_per_checkpoint=50",
          "--summary_every_steps=100000", *flags]


@pytest.mark.slow
def test_resumes_after_sigkill(dataset_dir, tmp_path):
  job = str(tmp_path / "job")
  env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", CUDA_VISIBLE_DEVICES="")
  proc = subprocess.Popen(_task(dataset_dir, job, "--max_steps=1000000"),
                          env=env, stdout=subprocess.DEVNULL,
                          stderr=subprocess.DEVNULL)
  deadline = time.time() + 120
  # The `checkpoint` state file is written after the shards: wait for it.
  while tf.train.latest_checkpoint(os.path.join(job, "checkpoints")) is None:
    assert proc.poll() is None and time.time() < deadline, "no checkpoint"
    time.sleep(0.1)
  proc.send_signal(signal.SIGKILL)
  proc.wait()
  saved = tf.train.latest_checkpoint(os.path.join(job, "checkpoints"))
  saved_step = int(saved.rsplit("-", 1)[1])
  assert 0 < saved_step < 1000000
  assert not os.path.exists(os.path.join(job, "model"))

  target = saved_step + 30
  result = subprocess.run(_task(dataset_dir, job, f"--max_steps={target}"),
                          env=env, capture_output=True, text=True, timeout=300,
                          check=False)
  assert result.returncode == 0, result.stderr[-3000:]
  assert f"at step {saved_step}" in result.stderr, result.stderr[-3000:]
  assert f"step {target}/{target}" in result.stderr
  assert json.loads(result.stdout.splitlines()[-1])["step"] == target
  assert export.load_model(os.path.join(job, "model")).step == target
  assert tf.train.latest_checkpoint(os.path.join(job, "checkpoints")).endswith(
      f"ckpt-{target}")


@pytest.mark.slow
def test_two_workers_train_in_sync_and_only_the_chief_writes(dataset_dir,
                                                             tmp_path):
  # TF_CONFIG with 2 workers: MultiWorkerMirroredStrategy over 2 processes.
  job = str(tmp_path / "job")
  results = net.run_workers(
      _task(dataset_dir, job, "--max_steps=60", "--summary_every_steps=60"),
      timeout=240)
  chief, worker = results
  assert chief["step"] == worker["step"] == 60
  assert chief["reconstruction_error"] == worker["reconstruction_error"]
  assert "free_energy_train_subset" in chief
  assert "free_energy_train_subset" not in worker  # no monitor on workers
  assert export.load_model(os.path.join(job, "model")).step == 60
  assert sorted(os.listdir(job)) == ["checkpoints", "model", "tensorboard"]
  assert len(glob.glob(os.path.join(job, "tensorboard", "events*"))) == 1
  assert tf.train.latest_checkpoint(os.path.join(job, "checkpoints")).endswith(
      "ckpt-60")


def test_nan_stops_the_run_and_keeps_the_last_good_checkpoint(dataset_dir,
                                                              tmp_path):
  # W <- W - lr * decay * W multiplies W by about -1e20 a step: Inf by step 3.
  config = config_lib.TrainConfig(num_hidden=8, batch_size=10,
                                  learning_rate=1.0, weight_decay=1e20,
                                  steps_per_checkpoint=1,
                                  log_every_steps=1, max_steps=50)
  job = str(tmp_path / "job")
  with pytest.raises(train_lib.NonFiniteError,
                     match=r"(the update made weights.*NaN/Inf|training "
                     r"diverged: free energy).*--learning_rate"
                     ) as error:
    train_lib.train_and_evaluate(config, dataset_dir, job,
                             strategy=tf.distribute.MirroredStrategy(ONE))
  bad_step = int(str(error.value).split(":")[0].split()[1])
  assert bad_step > 1
  latest = tf.train.latest_checkpoint(os.path.join(job, "checkpoints"))
  assert latest.endswith(f"ckpt-{bad_step - 1}") and latest in str(error.value)
  reader = tf.train.load_checkpoint(latest)
  for name in reader.get_variable_to_shape_map():
    value = reader.get_tensor(name)
    if isinstance(value, np.ndarray) and value.dtype.kind == "f":
      assert np.isfinite(value).all(), name
  assert not os.path.exists(os.path.join(job, "model"))


def test_mismatched_job_dir_is_refused(dataset_dir, tmp_path):
  job = str(tmp_path / "job")
  strategy = tf.distribute.MirroredStrategy(ONE)
  pcd = config_lib.TrainConfig(num_hidden=8, batch_size=100, max_steps=2,
                               persistent=True)
  train_lib.train_and_evaluate(pcd, dataset_dir, job, strategy=strategy)
  for other, message in (
      (dict(num_hidden=9), "--num_hidden=8.*--num_hidden=9"),
      (dict(batch_size=50), "--batch_size=100.*--batch_size=50"),
      (dict(persistent=False), "--persistent=True.*--persistent=False")):
    config = dataclasses.replace(pcd, **other)
    with pytest.raises(train_lib.SetupError, match=message):
      train_lib.train_and_evaluate(config, dataset_dir, job, strategy=strategy)
  # Data of another layout (more time steps) is refused too.
  longer = str(tmp_path / "longer")
  fake_dataset.write_dataset(
      longer, fake_dataset.structured_windows(200, num_timesteps=8),
      fake_dataset.structured_windows(0, num_timesteps=8))
  with pytest.raises(train_lib.SetupError, match="num_timesteps=4.*num_timesteps=8"):
    train_lib.train_and_evaluate(pcd, longer, job, strategy=strategy)
  # Flags that do not fix shapes may change: e.g. more steps, another rate.
  more = dataclasses.replace(pcd, max_steps=4, learning_rate=0.01)
  assert train_lib.train_and_evaluate(more, dataset_dir, job,
                                  strategy=strategy)["step"] == 4


def test_data_errors_are_clear(dataset_dir, tmp_path):
  job = str(tmp_path / "job")
  strategy = tf.distribute.MirroredStrategy(ONE)
  big = config_lib.TrainConfig(batch_size=5000)
  with pytest.raises(train_lib.SetupError,
                     match=f"{N_TRAIN} training windows.*--batch_size=5000"):
    train_lib.train_and_evaluate(big, dataset_dir, job, strategy=strategy)
  with pytest.raises(FileNotFoundError, match="dataset.json"):
    train_lib.train_and_evaluate(config_lib.TrainConfig(), str(tmp_path / "none"),
                             job, strategy=strategy)
  empty = str(tmp_path / "empty")
  fake_dataset.write_dataset(empty, fake_dataset.structured_windows(0),
                             fake_dataset.structured_windows(0))
  with pytest.raises(train_lib.SetupError, match="0 training windows"):
    train_lib.train_and_evaluate(config_lib.TrainConfig(), empty, job,
                             strategy=strategy)
  broken = str(tmp_path / "broken")
  os.makedirs(broken)
  with open(os.path.join(broken, "dataset.json"), "w") as f:
    f.write("{not json")
  with pytest.raises(train_lib.SetupError, match="not valid JSON"):
    train_lib.train_and_evaluate(config_lib.TrainConfig(), broken, job,
                             strategy=strategy)
  with pytest.raises(train_lib.SetupError, match="--batch_size=7.*2 replicas"):
    train_lib.train_and_evaluate(config_lib.TrainConfig(batch_size=7, max_steps=1),
                             dataset_dir, job,
                             strategy=tf.distribute.MirroredStrategy(TWO))
  assert not os.path.exists(job)  # nothing written by a run that cannot start


def test_a_default_batch_larger_than_the_corpus_fits_it(tmp_path):
  """A small corpus (13 windows) with the default batch (100): batches of 12
  (a multiple of the 2 replicas) when the batch is the default; the user's
  own --batch_size is never changed, so it still fails clearly."""
  small = str(tmp_path / "small")
  fake_dataset.write_dataset(small, fake_dataset.structured_windows(13, seed=1),
                             fake_dataset.structured_windows(4, seed=2))
  config = config_lib.TrainConfig(num_hidden=4, epochs=2,
                                  summary_every_steps=100000)
  with pytest.raises(train_lib.SetupError, match="13 training windows"):
    train_lib.train_and_evaluate(config, small, str(tmp_path / "mine"),
                                 strategy=tf.distribute.MirroredStrategy(TWO))
  job = str(tmp_path / "job")
  metrics = train_lib.train_and_evaluate(
      config, small, job, strategy=tf.distribute.MirroredStrategy(TWO),
      from_data=frozenset({"batch_size"}))
  assert metrics["step"] == 2  # one batch of 12 per epoch
  with open(os.path.join(job, "checkpoints", train_lib.RUN_CONFIG_FILE)) as f:
    assert json.load(f)["config"]["batch_size"] == 12


def test_a_default_run_on_a_large_corpus_stops_at_the_update_budget(
    dataset_dir, tmp_path, monkeypatch):
  """No --epochs/--max_steps given: at most MAX_DEFAULT_UPDATES updates (here
  7 of 200 epochs x 12 steps); given, the epochs are the user's."""
  monkeypatch.setattr(config_lib, "MAX_DEFAULT_UPDATES", 7)
  config = config_lib.TrainConfig(num_hidden=4, epochs=200,
                                  summary_every_steps=100000)
  strategy = tf.distribute.MirroredStrategy(ONE)
  metrics = train_lib.train_and_evaluate(
      config, dataset_dir, str(tmp_path / "job"), strategy=strategy,
      from_data=frozenset({"epochs"}))
  assert metrics["step"] == 7
  mine = dataclasses.replace(config, epochs=1)
  metrics = train_lib.train_and_evaluate(mine, dataset_dir,
                                         str(tmp_path / "mine"),
                                         strategy=strategy)
  assert metrics["step"] == N_TRAIN // config.batch_size
  assert task._from_data({"model", "epochs"}) == {"batch_size"}
  assert task._from_data({"max_steps", "batch_size"}) == frozenset()
  assert task._from_data(set()) == {"batch_size", "epochs"}


def test_bad_flags_are_clear():
  with pytest.raises(ValueError, match="--learning_rate=-1"):
    config_lib.TrainConfig(learning_rate=-1)
  with pytest.raises(ValueError, match="--num_hidden=0"):
    config_lib.TrainConfig(num_hidden=0)
  with pytest.raises(ValueError, match="--weight_decay=-0.1"):
    config_lib.TrainConfig(weight_decay=-0.1)


def test_vertex_ai_directories_are_used_when_flags_are_absent():
  env = {"AIP_MODEL_DIR": "gs://b/m", "AIP_CHECKPOINT_DIR": "gs://b/c",
         "AIP_TENSORBOARD_LOG_DIR": "gs://b/t"}
  dirs = train_lib.resolve_dirs(environ=env)
  assert dirs == train_lib.RunDirs("gs://b/m", "gs://b/c", "gs://b/t")
  dirs = train_lib.resolve_dirs("gs://j", model_dir="gs://x", environ=env)
  assert dirs.model_dir == "gs://x" and dirs.checkpoint_dir == "gs://b/c"
  assert train_lib.resolve_dirs("out/j", environ={}).checkpoint_dir == "out/j/checkpoints"
  with pytest.raises(train_lib.SetupError, match="--job_dir"):
    train_lib.resolve_dirs(environ={})


@pytest.fixture
def parsed_flags():
  """Parses trainer.task's flags in this process; restores them after."""
  def parse(*argv):
    flags.FLAGS(["trainer.task", *argv])
  yield parse
  flags.FLAGS.unparse_flags()


def test_task_on_vertex_ai_without_eval_split(tmp_path, monkeypatch,
                                              parsed_flags, capsys):
  # Vertex AI sets AIP_* and no --job_dir; this corpus has no eval windows
  # (--eval_fraction=0), so eval summaries are skipped, not an error.
  data_dir = str(tmp_path / "data")
  fake_dataset.write_dataset(data_dir, fake_dataset.structured_windows(100),
                             fake_dataset.structured_windows(0))
  aip = {name: str(tmp_path / name) for name in (
      "AIP_MODEL_DIR", "AIP_CHECKPOINT_DIR", "AIP_TENSORBOARD_LOG_DIR")}
  for name, value in aip.items():
    monkeypatch.setenv(name, value)
  parsed_flags(f"--data_dir={data_dir}", "--num_hidden=4", "--batch_size=10",
               "--max_steps=3")
  task.main(["trainer.task"])
  assert json.loads(capsys.readouterr().out)["step"] == 3
  assert export.load_model(aip["AIP_MODEL_DIR"]).step == 3
  assert tf.train.latest_checkpoint(aip["AIP_CHECKPOINT_DIR"]).endswith("-3")
  tags = summary_tags(aip["AIP_TENSORBOARD_LOG_DIR"])
  assert "free_energy/train_subset" in tags and "samples" in tags
  assert not {"free_energy/eval", "free_energy/gap",
              "pseudo_log_likelihood/eval"} & tags


def test_monitoring_watches_the_valid_split_when_there_is_one(tmp_path):
  # The eval split stays unseen until trainer.evaluate: the held-out scalars
  # are of valid.
  data_dir, job = str(tmp_path / "data"), str(tmp_path / "job")
  fake_dataset.write_dataset(
      data_dir, fake_dataset.structured_windows(100),
      fake_dataset.structured_windows(20, seed=2),
      valid=fake_dataset.structured_windows(20, seed=3))
  config = config_lib.TrainConfig(num_hidden=4, batch_size=10, max_steps=3)
  metrics = train_lib.train_and_evaluate(config, data_dir, job)
  assert {"free_energy_valid", "free_energy_gap"} <= set(metrics)
  assert "free_energy_eval" not in metrics
  tags = summary_tags(os.path.join(job, "tensorboard"))
  assert {"free_energy/valid", "pseudo_log_likelihood/valid",
          "free_energy/gap"} <= tags
  assert not {"free_energy/eval", "pseudo_log_likelihood/eval"} & tags


@pytest.mark.slow
@pytest.mark.parametrize("args,message", [
    (["--data_dir=MISSING"], "dataset.json"),
    (["--data_dir=MISSING", "stray"], "unexpected arguments ['stray']"),
    (["--data_dir=MISSING", "--learning_rate=0"], "--learning_rate=0.0"),
    ([], "--data_dir is required"),
])
def test_task_reports_user_errors_in_one_line(tmp_path, args, message):
  args = [a.replace("MISSING", str(tmp_path / "missing")) for a in args]
  done = subprocess.run(
      [sys.executable, "-m", "trainer.task", f"--job_dir={tmp_path}", *args],
      capture_output=True, text=True, timeout=120, check=False,
      env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3"))
  assert done.returncode == 2, done.stderr[-2000:]
  lines = [line for line in done.stderr.splitlines()
           if line.startswith("trainer.task: error: ")]
  assert len(lines) == 1 and message in lines[0], done.stderr[-2000:]
  assert "Traceback" not in done.stderr
