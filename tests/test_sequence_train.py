"""The RNN-RBM through the pipeline: training (learning, replicas, resume,
per-model defaults), evaluation against the exact per-frame log Z, and clear
errors for data of the wrong kind."""

import json
import os
import subprocess
import sys

from absl import flags
import numpy as np
import pytest
import tensorflow as tf

from tests import fake_dataset
from tests import net
from trainer import config as config_lib
from trainer import data
from trainer.evaluation import lib as evaluate_lib
from trainer.models import files as export
from trainer.models.recurrent import training as sequence_training
from trainer.models.rnn_rbm import training as sequence_train_lib
from trainer import task
from trainer.training import loop as train_lib
from trainer.models.rnn_rbm import maths as rnn_rbm

ONE = ["/cpu:0"]
TWO = ["/cpu:0", "/cpu:1"]
C = fake_dataset.PIECE_SPEC.n_columns


def tiny_config(**overrides):
  values = dict(model="rnn_rbm", num_hidden=8, num_hidden_recurrent=10,
                cd_k=3, learning_rate=0.01, batch_size=8, epochs=30,
                sequence_length=16, validate_every_epochs=5,
                validation_ais_betas=100, steps_per_checkpoint=10,
                # The window RBM's tuned momentum and weight decay are not
                # the RNN-RBM's (config.MODEL_DEFAULTS).
                momentum=False, weight_decay=0.0)
  values.update(overrides)
  return config_lib.TrainConfig(**values)


@pytest.fixture(scope="module")
def pieces_dir(tmp_path_factory):
  d = str(tmp_path_factory.mktemp("pieces"))
  rng = np.random.default_rng(0)
  fake_dataset.write_piece_dataset(
      d, fake_dataset.cycle_pieces(rng.integers(10, 40, 40), seed=1),
      fake_dataset.cycle_pieces(rng.integers(10, 40, 8), seed=2))
  return d


def train_recording_warnings(config, data_dir, job):
  """train_and_evaluate, and the warning lines it logged."""
  warnings = []
  with pytest.MonkeyPatch.context() as patch:
    patch.setattr(sequence_training.logging, "warning",
                  lambda msg, *args: warnings.append(msg % args))
    metrics = train_lib.train_and_evaluate(config, data_dir, job)
  return metrics, warnings


@pytest.fixture(scope="module")
def trained(pieces_dir, tmp_path_factory):
  """A run on a dataset without a valid split (validation falls back to eval)."""
  job = str(tmp_path_factory.mktemp("job"))
  metrics, warnings = train_recording_warnings(tiny_config(), pieces_dir, job)
  return job, metrics, warnings


def eval_batch(pieces_dir):
  return next(iter(data.make_sequence_dataset(pieces_dir, "eval", 100)))


def test_training_learns_and_exports_the_best_validated_state(pieces_dir,
                                                              trained):
  job, metrics, _ = trained
  loaded = export.load_model(os.path.join(job, "model"))
  assert loaded.name == "rnn_rbm"
  v, lengths = eval_batch(pieces_dir)
  untrained = rnn_rbm.RNNRBM(C, 8, 10, unit_means=loaded.info["frame_statistics"]["means"])
  before = untrained.nll_exact(v, lengths)
  after = loaded.model.nll_exact(v, lengths)
  # The cycle is predictable from the previous frame: far below the frame
  # marginals (untrained: b_v = logit of the means).
  assert after < before - 3.0, (before, after)
  assert metrics["step"] == 150 and loaded.step == metrics["exported_step"]
  assert np.isfinite(metrics["best_validation_nll_per_frame"])
  tags = set()
  for path in tf.io.gfile.glob(os.path.join(job, "tensorboard", "events*")):
    for record in tf.data.TFRecordDataset(path):
      event = tf.compat.v1.Event.FromString(record.numpy())
      tags.update(v.tag for v in event.summary.value)
  assert {"free_energy_gap", "validation/nll_per_frame",
          "learning_rate"} <= tags


def test_without_a_valid_split_validation_uses_eval_and_says_so(trained):
  job, metrics, warnings = trained
  assert metrics["validation_split"] == "eval"
  with open(os.path.join(job, "model", "model.json")) as f:
    assert json.load(f)["validation_split"] == "eval"
  said = [w for w in warnings if "model selection" in w]
  assert len(said) == 1 and "--valid_fraction" in said[0]
  assert len(said[0].splitlines()) == 1


def test_validation_uses_the_valid_split_when_there_is_one(tmp_path):
  # Valid pieces are the clean cycle; eval pieces are noisy, so their NLL per
  # frame is far higher: the recorded best NLL says which split was read.
  data_dir, job = str(tmp_path / "data"), str(tmp_path / "job")
  rng = np.random.default_rng(0)
  fake_dataset.write_piece_dataset(
      data_dir, fake_dataset.cycle_pieces(rng.integers(10, 40, 40), seed=1),
      fake_dataset.cycle_pieces(rng.integers(10, 40, 8), seed=2, flip=0.3),
      valid=fake_dataset.cycle_pieces(rng.integers(10, 40, 8), seed=3))
  metrics, warnings = train_recording_warnings(
      tiny_config(epochs=10), data_dir, job)
  assert metrics["validation_split"] == "valid"
  assert not [w for w in warnings if "model selection" in w]
  loaded = export.load_model(os.path.join(job, "model"))
  with open(os.path.join(job, "model", "model.json")) as f:
    assert json.load(f)["validation_split"] == "valid"
  spec = data.load_dataset_spec(data_dir)
  # The RNN-RBM's validation subset of each split.
  subset = lambda split: sequence_training.validation_subset(
      data_dir, spec, split, sequence_train_lib._VALIDATION_FRAMES,  # pylint: disable=protected-access
      sequence_train_lib._VALIDATION_CROP)  # pylint: disable=protected-access
  exact = {split: loaded.model.nll_exact(*subset(split))
           for split in ("valid", "eval")}
  best = metrics["best_validation_nll_per_frame"]
  # A short AIS run (8 chains, 100 betas) estimates to a few tenths.
  assert exact["eval"] > exact["valid"] + 2.0, exact
  assert abs(best - exact["valid"]) < 0.5, (best, exact)


def test_evaluation_agrees_with_the_exact_per_frame_log_partition(pieces_dir,
                                                                 trained):
  model_dir = os.path.join(trained[0], "model")
  result = evaluate_lib.evaluate(
      model_dir, pieces_dir, "eval",
      config_lib.AISConfig(num_chains=16, num_betas=1500))
  v, lengths = eval_batch(pieces_dir)
  exact = -export.load_model(model_dir).model.nll_exact(v, lengths)
  assert abs(result["loglik_per_frame"] - exact) < 0.05, (result, exact)
  assert result["frames"] == int(lengths.numpy().sum())
  assert result["loglik_per_frame"] > result["baseline_loglik_per_frame"] + 2
  assert 0 < result["log_z_stderr"] < 0.05


def test_max_frames_scores_a_fixed_subset_of_pieces_with_its_error(
    pieces_dir, trained):
  model_dir = os.path.join(trained[0], "model")
  ais_config = config_lib.AISConfig(num_chains=4, num_betas=50)
  score = lambda cap: evaluate_lib.evaluate(model_dir, pieces_dir, "eval",
                                            ais_config, max_frames=cap)
  whole, big = score(0), score(10**6)
  # A cap above the split scores every piece, each with the noise of its
  # index: the same figure, and no sampling error left.
  assert big["loglik_per_frame"] == whole["loglik_per_frame"]
  assert big["frames"] == big["frames_in_split"] == whole["frames"]
  assert big["piece_stderr"] == 0.0
  lengths = eval_batch(pieces_dir)[1].numpy()
  part = score(60)
  assert part == score(60)  # the same pieces every time
  assert part["sequences_in_split"] == len(lengths) > part["sequences"] >= 2
  assert 60 <= part["frames"] < 60 + lengths.max()
  assert 0 < part["piece_stderr"] < 1.0
  assert abs(part["loglik_per_frame"] - whole["loglik_per_frame"]) < (
      4 * part["piece_stderr"] + 0.2)
  assert "max_frames" not in whole


def test_max_frames_is_refused_by_models_that_score_every_window(tmp_path):
  from trainer.models import base  # pylint: disable=g-import-not-at-top
  with pytest.raises(base.EvaluateError, match="--max_frames=100.*Drop"):
    base.refuse_frame_cap(100, "window RBM")
  base.refuse_frame_cap(0, "window RBM")
  with pytest.raises(ValueError, match="--max_frames=-1 must be >= 0"):
    config_lib.EvaluateData(max_frames=-1)


def one_update(devices, batch, lengths, init):
  strategy = tf.distribute.MirroredStrategy(devices)
  config = tiny_config(weight_decay=1e-3, clip_norm=0.5)
  with strategy.scope():
    model = rnn_rbm.RNNRBM(C, 6, 5)
  for name, value in init.items():
    getattr(model, name).assign(value)
  trainer = sequence_train_lib.RBMSequenceTrainer(strategy, model, config, 10)
  ds = strategy.experimental_distribute_dataset(
      tf.data.Dataset.from_tensors((batch, lengths)).repeat(2))
  it = iter(ds)
  for _ in range(2):  # twice: Adam's moments carry over
    out = trainer.train_step(next(it))
  assert bool(out["finite"])
  return [getattr(model, n).numpy() for n in sequence_train_lib.PARAMS], float(
      out["free_energy_gap"])


def test_two_replicas_compute_the_same_update_as_one():
  rng = np.random.default_rng(0)
  pieces = fake_dataset.cycle_pieces([12, 5, 9, 12, 3, 7, 12, 10], seed=4)
  batch = np.zeros((8, 12, C), np.float32)
  for i, p in enumerate(pieces):
    batch[i, :len(p)] = p
  lengths = tf.constant([len(p) for p in pieces], tf.int32)
  model = rnn_rbm.RNNRBM(C, 6, 5)
  init = {n: rng.normal(0, 0.3, getattr(model, n).shape).astype(np.float32)
          for n in sequence_train_lib.PARAMS}
  one, gap1 = one_update(ONE, tf.constant(batch), lengths, init)
  two, gap2 = one_update(TWO, tf.constant(batch), lengths, init)
  assert gap1 == pytest.approx(gap2, rel=1e-5, abs=1e-5)
  for a, b in zip(one, two):
    np.testing.assert_allclose(a, b, atol=1e-5)
  assert not np.allclose(one[0], init["weights"])  # it did update


def latest_weights(job):
  model = rnn_rbm.RNNRBM(C, 8, 10)
  latest = tf.train.latest_checkpoint(os.path.join(job, "checkpoints"))
  tf.train.Checkpoint(model=model).read(latest).expect_partial()
  return {n: getattr(model, n).numpy() for n in sequence_train_lib.PARAMS}


def test_a_resumed_run_continues_exactly_as_an_uninterrupted_one(pieces_dir,
                                                                  tmp_path):
  # 5 steps an epoch: stop mid-epoch (step 13), with a validation in between.
  # A --max_steps of 13 is another run for any schedule over the run's
  # length (cosine, scheduled sampling's ramp), so both are off here;
  # test_models resumes the defaults' runs at the same length.
  run = lambda job, steps: train_lib.train_and_evaluate(
      tiny_config(max_steps=steps, validate_every_epochs=2,
                  context_sampling=0.0), pieces_dir, str(tmp_path / job))
  run("a", 30)
  run("b", 13)
  run("b", 30)
  straight, resumed = latest_weights(str(tmp_path / "a")), latest_weights(
      str(tmp_path / "b"))
  for name in sequence_train_lib.PARAMS:
    np.testing.assert_allclose(straight[name], resumed[name], atol=1e-6,
                               err_msg=name)


def test_init_from_a_frame_rbm_and_rnn_pretraining(pieces_dir, tmp_path):
  # A frame RBM of this data's frames: 1-step windows of the same notes/grid.
  frames_dir = str(tmp_path / "frames")
  pieces = fake_dataset.cycle_pieces([20] * 10, seed=5)
  frames = np.concatenate(pieces)[:, None, :]
  fake_dataset.write_dataset(frames_dir, frames, frames[:10],
                             spec=fake_dataset.PIECE_SPEC)
  train_lib.train_and_evaluate(config_lib.TrainConfig(
      num_hidden=8, max_steps=20, batch_size=10), frames_dir,
                               str(tmp_path / "frame_rbm"))
  frame_rbm = export.load_model(str(tmp_path / "frame_rbm" / "model")).model
  config = tiny_config(init_from=str(tmp_path / "frame_rbm" / "model"),
                       pretrain_rnn_epochs=3, max_steps=1)
  run = train_lib._setup(config, pieces_dir, train_lib.resolve_dirs(  # pylint: disable=protected-access
      str(tmp_path / "job")), tf.distribute.MirroredStrategy(ONE))
  trainer = sequence_train_lib.RNNRBMTrainer(run)
  trainer.initialise()  # what the loop calls on a fresh run
  np.testing.assert_array_equal(trainer.model.weights.numpy(),
                                frame_rbm.weights.numpy())
  assert not np.any(trainer.model.w_uh.numpy())  # starts as the frame RBM
  assert np.any(trainer.model.w_uv.numpy())  # the pretrained RNN's output map
  with pytest.raises(train_lib.SetupError,
                     match="num_hidden=8.*--num_hidden=9"):
    sequence_train_lib.RNNRBMTrainer(train_lib._setup(  # pylint: disable=protected-access
        tiny_config(num_hidden=9, init_from=config.init_from), pieces_dir,
        train_lib.resolve_dirs(str(tmp_path / "job2")),
        tf.distribute.MirroredStrategy(ONE)))


def test_model_defaults_apply_to_flags_not_given():
  assert config_lib.model_defaults("rnn_rbm", given={"cd_k"}) == {
      "num_hidden": 150, "learning_rate": 3e-3, "batch_size": 8,
      "lr_schedule": "cosine", "epochs": 30, "pretrain_rnn_epochs": 3,
      "validate_every_epochs": 2, "momentum": False, "weight_decay": 0.0}
  assert config_lib.model_defaults("rbm", given=set()) == {}
  with pytest.raises(ValueError, match="--init_from.*--model=rnn_rbm"):
    config_lib.TrainConfig(init_from="x")
  with pytest.raises(ValueError, match="--persistent"):
    config_lib.TrainConfig(model="rnn_rbm", persistent=True)


@pytest.fixture
def parsed_flags():
  def parse(*argv):
    flags.FLAGS(["trainer.task", *argv])
  yield parse
  flags.FLAGS.unparse_flags()


def test_task_applies_the_rnn_rbm_defaults(pieces_dir, tmp_path, parsed_flags,
                                           capsys):
  parsed_flags(f"--data_dir={pieces_dir}", f"--job_dir={tmp_path}",
               "--model=rnn_rbm", "--cd_k=2", "--max_steps=2",
               "--num_hidden_recurrent=4", "--validation_ais_betas=10")
  task.main(["trainer.task"])
  assert json.loads(capsys.readouterr().out)["step"] == 2
  config = export.load_model(str(tmp_path / "model")).config
  assert (config["num_hidden"], config["cd_k"], config["batch_size"],
          config["lr_schedule"]) == (150, 2, 8, "cosine")


@pytest.mark.slow
def test_wrong_dataset_for_the_model_is_a_one_line_error(pieces_dir, tmp_path):
  done = subprocess.run(
      [sys.executable, "-m", "trainer.task", f"--data_dir={pieces_dir}",
       f"--job_dir={tmp_path / 'job'}"],
      capture_output=True, text=True, timeout=120, check=False,
      env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3"))
  assert done.returncode == 2, done.stderr[-2000:]
  lines = [line for line in done.stderr.splitlines()
           if line.startswith("trainer.task: error: ")]
  assert len(lines) == 1 and "--model=rnn_rbm" in lines[0], done.stderr[-2000:]
  assert "Traceback" not in done.stderr
  assert not os.path.exists(tmp_path / "job")


@pytest.mark.slow
def test_two_workers_train_the_rnn_rbm_in_sync(pieces_dir, tmp_path):
  # TF_CONFIG with 2 workers: MultiWorkerMirroredStrategy over 2 processes,
  # with RNN pretraining, validation (AIS under the strategy) and the best
  # state's export, which only the chief may write.
  job = str(tmp_path / "job")
  results = net.run_workers(
      [sys.executable, "-m", "trainer.task", "--model=rnn_rbm",
       f"--data_dir={pieces_dir}", f"--job_dir={job}", "--num_hidden=8",
       "--num_hidden_recurrent=10", "--cd_k=3", "--sequence_length=16",
       "--epochs=4", "--validate_every_epochs=2", "--pretrain_rnn_epochs=1",
       "--validation_ais_betas=20", "--steps_per_checkpoint=5",
       "--summary_every_steps=100000"])
  chief, worker = results
  # 40 training pieces, global batch 8: 5 steps an epoch.
  assert chief["step"] == worker["step"] == 20
  assert chief["reconstruction_error"] == worker["reconstruction_error"]
  assert chief["best_validation_nll_per_frame"] == worker[
      "best_validation_nll_per_frame"]
  model = export.load_model(os.path.join(job, "model"))
  assert model.name == "rnn_rbm"
  assert model.step == chief["exported_step"]
  assert sorted(os.listdir(job)) == ["checkpoints", "model", "tensorboard"]
