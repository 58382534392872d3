"""Every registered model through the same paths: trained by the one loop,
exported, loaded, sampled by the generation job, evaluated; and the loop's
resume and job lock, for each model (parametrised over the registry)."""

import json
import os
import re

import numpy as np
import pytest
import tensorflow as tf

from tests import fake_dataset
from trainer import config as config_lib
from trainer import data
from trainer import models
from trainer.evaluation import lib as evaluation
from trainer.generation import lib as generation
from trainer.models import files
from trainer.training import job_lock
from trainer.training import loop

ONE = ["/cpu:0"]
# A tiny run of each model, and the dataset it reads ("windows" or
# "pieces"). A new model adds its line here.
TINY = {
    "rbm": ("windows", dict(num_hidden=8, batch_size=20)),
    "rnn_rbm": ("pieces", dict(num_hidden=8, num_hidden_recurrent=10, cd_k=2,
                               learning_rate=0.01, batch_size=8,
                               sequence_length=16, validate_every_epochs=1,
                               validation_ais_betas=20,
                               pretrain_rnn_epochs=0)),
    "rnn_nade": ("pieces", dict(num_hidden=8, num_hidden_recurrent=10,
                                learning_rate=0.01, batch_size=8,
                                sequence_length=16, validate_every_epochs=1,
                                pretrain_rnn_epochs=1)),
    "bernoulli": ("pieces", dict(batch_size=8)),
}
TINY_SAMPLING = {
    "rbm": dict(gibbs_steps=3, num_windows=2, candidates=1),
    "rnn_rbm": dict(num_frames=12, gibbs_steps_per_frame=2),
    "rnn_nade": dict(num_frames=12),
    "bernoulli": dict(num_frames=12),
}


def test_every_registered_model_has_a_tiny_run():
  assert set(TINY) == set(models.NAMES) == set(TINY_SAMPLING)


@pytest.fixture(scope="module")
def datasets(tmp_path_factory):
  root = tmp_path_factory.mktemp("data")
  windows, pieces = str(root / "windows"), str(root / "pieces")
  fake_dataset.write_dataset(windows,
                             fake_dataset.structured_windows(200, seed=1),
                             fake_dataset.structured_windows(40, seed=2))
  rng = np.random.default_rng(0)
  fake_dataset.write_piece_dataset(
      pieces, fake_dataset.cycle_pieces(rng.integers(10, 30, 32), seed=1),
      fake_dataset.cycle_pieces(rng.integers(10, 30, 8), seed=2))
  return {"windows": windows, "pieces": pieces}


def _config(name, **overrides):
  _, values = TINY[name]
  values = {**config_lib.model_defaults(name, set(values)), **values,
            "log_every_steps": 2, "summary_every_steps": 3,
            "steps_per_checkpoint": 4, **overrides}
  return config_lib.TrainConfig(model=name, **values)


def _train(name, datasets, job, **overrides):
  return loop.train_and_evaluate(
      _config(name, **overrides), datasets[TINY[name][0]], job,
      strategy=tf.distribute.MirroredStrategy(ONE))


def _params(job) -> dict:
  with np.load(os.path.join(job, "model", files.PARAMS_FILE)) as npz:
    return {k: npz[k] for k in npz.files}


@pytest.mark.parametrize("name", models.NAMES)
def test_round_trip_train_export_load_sample_evaluate(name, datasets,
                                                      tmp_path):
  job = str(tmp_path / "job")
  metrics = _train(name, datasets, job, max_steps=6)
  assert metrics["step"] == 6
  loaded = files.load_model(os.path.join(job, "model"))
  assert loaded.name == name and loaded.step == metrics.get(
      "exported_step", 6)
  with open(os.path.join(job, "model", files.INFO_FILE)) as f:
    assert json.load(f)["config"]["model"] == name

  out = str(tmp_path / "samples")
  summary = generation.generate(
      os.path.join(job, "model"), out,
      config_lib.GenerateConfig(num_samples=3, previews=True,
                                **TINY_SAMPLING[name]))
  assert summary["written"] == 3
  with open(os.path.join(out, generation.SETTINGS_FILE)) as f:
    assert json.load(f)["model"]["kind"] == name
  with open(os.path.join(out, "previews", "index.html")) as f:
    page = f.read()
  # The gallery names the model's sampling (its describe_sampling).
  assert loaded.family.describe_sampling(
      config_lib.GenerateConfig(**TINY_SAMPLING[name])).split(",")[1] in page

  result = evaluation.evaluate(
      os.path.join(job, "model"), datasets[TINY[name][0]], "eval",
      config_lib.AISConfig(num_chains=4, num_betas=30))
  assert np.isfinite(result["loglik_per_frame"])
  assert np.isfinite(result["baseline_loglik_per_frame"])


class _Crash(Exception):
  pass


# Every model, and the window RBM's second input path (windows streamed from
# the shards instead of held in memory).
INPUTS = [pytest.param(name, {}, id=name) for name in models.NAMES] + [
    pytest.param("rbm", {"in_memory_mb": 0}, id="rbm-streamed")]


@pytest.mark.parametrize("name,inputs", INPUTS)
def test_a_resumed_run_trains_the_same_bytes_as_an_uninterrupted_one(
    name, inputs, datasets, tmp_path, monkeypatch):
  straight = _train(name, datasets, str(tmp_path / "a"), max_steps=10,
                    **inputs)
  # The first run dies after step 7, its last checkpoint at step 4.
  model, make = models.get(name), models.get(name).trainer

  def crashing(run):
    trainer = make(run)
    scalars = trainer.scalars

    def crash_after_7(out):
      if int(trainer.step.numpy()) > 7:
        raise _Crash()
      return scalars(out)
    trainer.scalars = crash_after_7
    return trainer
  with monkeypatch.context() as patch:
    patch.setattr(model, "trainer", crashing)
    with pytest.raises(_Crash):
      _train(name, datasets, str(tmp_path / "b"), max_steps=10, **inputs)
  assert not os.path.exists(tmp_path / "b" / "model")
  resumed = _train(name, datasets, str(tmp_path / "b"), max_steps=10,
                   **inputs)
  assert straight["step"] == resumed["step"] == 10
  a, b = _params(str(tmp_path / "a")), _params(str(tmp_path / "b"))
  assert sorted(a) == sorted(b)
  for key in a:
    np.testing.assert_array_equal(a[key], b[key])


@pytest.mark.parametrize("name,inputs", INPUTS)
def test_many_steps_per_call_train_the_same_bytes_as_one(name, inputs,
                                                          datasets, tmp_path,
                                                          monkeypatch):
  # Boundaries far apart: the loop runs each epoch (10 steps of the window
  # RBM) in one or two calls; then one step per call.
  sparse = dict(max_steps=24, log_every_steps=1000, summary_every_steps=1000,
                steps_per_checkpoint=1000, **inputs)
  calls = []
  with monkeypatch.context() as patch:
    real = loop._CallLength.steps  # pylint: disable=protected-access

    def counted(self, wanted):
      calls.append(real(self, wanted))
      return calls[-1]
    patch.setattr(loop._CallLength, "steps", counted)  # pylint: disable=protected-access
    _train(name, datasets, str(tmp_path / "many"), **sparse)
  assert max(calls) > 1, calls
  monkeypatch.setattr(loop, "_CALL_SECONDS", 0.0)
  _train(name, datasets, str(tmp_path / "one"), **sparse)
  many, one = _params(str(tmp_path / "many")), _params(str(tmp_path / "one"))
  for key in many:
    np.testing.assert_array_equal(many[key], one[key])


def test_a_validation_line_between_log_steps_reads_the_present_rate(
    datasets, tmp_path, monkeypatch):
  # Validated every epoch (4 steps), logged only at the end: the validation
  # lines in between printed 0 sequences/s and an ETA of millions of hours.
  # (Recorded at the call: absl's handlers depend on what ran before.)
  said = []
  monkeypatch.setattr(loop.logging, "info",
                      lambda msg, *args: said.append(msg % args))
  _train("rnn_rbm", datasets, str(tmp_path / "job"), max_steps=12,
         log_every_steps=1000, summary_every_steps=1000)
  lines = [line for line in said if "validation/nll_per_frame" in line]
  assert len(lines) == 3, lines
  for line in lines:
    assert float(re.search(r" (\S+) sequences/s", line).group(1)) > 0, line


def test_rnn_rbm_trains_with_scheduled_sampling(datasets, tmp_path):
  plain = str(tmp_path / "plain")
  mixed = str(tmp_path / "mixed")
  _train("rnn_rbm", datasets, plain, max_steps=8)
  _train("rnn_rbm", datasets, mixed, max_steps=8, context_sampling=0.5)
  a, b = _params(plain), _params(mixed)
  assert all(np.all(np.isfinite(b[k])) for k in b)
  assert not np.array_equal(a["w_uv"], b["w_uv"])


@pytest.mark.parametrize("name", models.NAMES)
def test_a_locked_job_dir_stops_a_second_run_of_any_model(name, datasets,
                                                          tmp_path):
  job = str(tmp_path / "job")
  other = job_lock.acquire(os.path.join(job, "checkpoints"), job)
  try:
    with pytest.raises(job_lock.JobLocked, match="in use by another"):
      _train(name, datasets, job, max_steps=2)
    assert os.listdir(os.path.join(job, "checkpoints")) == [
        job_lock.LOCK_NAME]
  finally:
    other.release()
  assert _train(name, datasets, job, max_steps=2)["step"] == 2


@pytest.mark.parametrize("name", models.NAMES)
def test_a_job_dir_of_another_model_is_refused(name, datasets, tmp_path):
  data_dir = datasets[TINY[name][0]]
  spec = data.load_dataset_spec(data_dir)

  def reads(other):
    try:
      models.get(other).check_data(spec, data_dir)
    except loop.SetupError:
      return False
    return True
  other = next(n for n in models.NAMES if n != name and reads(n))
  job = str(tmp_path / "job")
  loop.train_and_evaluate(_config(other, max_steps=2), data_dir, job,
                          strategy=tf.distribute.MirroredStrategy(ONE))
  with pytest.raises(loop.SetupError, match=f"--model={other}"):
    _train(name, datasets, job, max_steps=2)


def test_the_bernoulli_model_is_the_evaluation_baseline(datasets, tmp_path):
  # Fitted on every training frame (one epoch, one batch), its exact
  # likelihood is the independent baseline every evaluation reports.
  job = str(tmp_path / "job")
  _train("bernoulli", datasets, job, batch_size=32, max_steps=1)
  result = evaluation.evaluate(os.path.join(job, "model"),
                               datasets["pieces"])
  assert result["gain_per_frame"] == 0.0
  loaded = files.load_model(os.path.join(job, "model"))
  stats = loaded.info["frame_statistics"]
  frames = sum(len(p) for p in fake_dataset.cycle_pieces(
      np.random.default_rng(0).integers(10, 30, 32), seed=1))
  assert stats["frames"] == frames
  np.testing.assert_allclose(
      loaded.model.probs.numpy(),
      (np.array(stats["means"]) * frames + 1) / (frames + 2), rtol=1e-6)
