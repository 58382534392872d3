"""The RNN's cell of the temporal models (--recurrence): the gated unit is
the GRU written out, both models train, save, load and sample with it, and
a job or a model saved before the option still reads as the tanh cell."""

import json
import os

import numpy as np
import pytest
import tensorflow as tf

from tests import fake_dataset
from trainer import config as config_lib
from trainer.evaluation import lib as evaluation
from trainer.generation import lib as generation
from trainer.models import files
from trainer.models.recurrent import maths as recurrent
from trainer.models.rnn_rbm import maths as rnn_rbm
from trainer.training import loop


def sigmoid(x):
  return 1.0 / (1.0 + np.exp(-x))


def gru_reference(x, u, w_uu):
  """One GRU step in numpy: reset, update, candidate columns in that order."""
  n = u.shape[-1]
  r = sigmoid(x[:, :n] + u @ w_uu[:, :n])
  z = sigmoid(x[:, n:2 * n] + u @ w_uu[:, n:2 * n])
  c = np.tanh(x[:, 2 * n:] + (r * u) @ w_uu[:, 2 * n:])
  return z * u + (1 - z) * c


def test_the_gated_step_is_the_gru_written_out():
  rng = np.random.default_rng(0)
  x = rng.normal(0, 1, (3, 12)).astype(np.float32)
  u = rng.normal(0, 0.5, (3, 4)).astype(np.float32)
  w_uu = rng.normal(0, 1, (4, 12)).astype(np.float32)
  got = recurrent.recurrence_step(tf.constant(x), tf.constant(u),
                                  tf.constant(w_uu), "gru").numpy()
  np.testing.assert_allclose(got, gru_reference(x, u, w_uu), atol=1e-6)
  # A unit whose update gate is shut (z -> 1) keeps its value.
  x[:, 4:8] = 50.0
  kept = recurrent.recurrence_step(tf.constant(x), tf.constant(u),
                                   tf.constant(w_uu), "gru").numpy()
  np.testing.assert_allclose(kept, u, atol=1e-6)
  assert recurrent.gate_width("gru") == 3 and recurrent.gate_width("tanh") == 1
  with pytest.raises(ValueError, match="recurrence='lstm': choose from tanh, "
                     "gru"):
    recurrent.gate_width("lstm")


def test_the_gated_frame_rnn_scores_exactly_and_copies_into_a_model():
  rnn = recurrent.FrameRNN(6, 4, seed=0, recurrence="gru")
  assert rnn.w_vu.shape == (6, 12) and rnn.w_uu.shape == (4, 12)
  rng = np.random.default_rng(1)
  rnn.w_uv.assign(rng.normal(0, 1, (4, 6)).astype(np.float32))
  rnn.b_u.assign(rng.normal(0, 1, (12,)).astype(np.float32))
  rnn.u0.assign(rng.normal(0, 0.5, (4,)).astype(np.float32))
  v = (rng.random((2, 5, 6)) < 0.4).astype(np.float32)
  terms = rnn.cross_entropy_terms(tf.constant(v), tf.constant([5, 3]))
  want = 0.0
  for row, length in ((0, 5), (1, 3)):
    u = rnn.u0.numpy()[None]
    for t in range(length):
      p = sigmoid(rnn.output_bias.numpy() + u @ rnn.w_uv.numpy())[0]
      x = v[row, t]
      want -= np.sum(x * np.log(p) + (1 - x) * np.log(1 - p))
      u = gru_reference(rnn.b_u.numpy() + x[None] @ rnn.w_vu.numpy(), u,
                        rnn.w_uu.numpy())
  np.testing.assert_allclose(terms["cross_entropy_sum"].numpy(), want,
                             rtol=1e-5)
  model = rnn_rbm.RNNRBM(6, 3, 4, recurrence="gru")
  model.copy_rnn_from(rnn)
  np.testing.assert_array_equal(model.w_uu.numpy(), rnn.w_uu.numpy())
  with pytest.raises(ValueError, match="a gru cell; this model has V=6, U=4, "
                     "a tanh cell"):
    rnn_rbm.RNNRBM(6, 3, 4).copy_rnn_from(rnn)


def test_a_gated_rnn_rbm_samples_by_seed_and_continues_a_piece():
  model = rnn_rbm.RNNRBM(8, 5, 4, seed=3, recurrence="gru")
  rng = np.random.default_rng(2)
  for var in (model.w_uv, model.w_uh, model.w_vu, model.w_uu, model.b_u):
    var.assign(rng.normal(0, 1, var.shape).astype(np.float32))
  block, _ = model.generate(4, 16, seed=4, gibbs_steps=3)
  head, u_head = model.generate(4, 10, seed=4, gibbs_steps=3)
  tail, _ = model.generate(4, 6, seed=4, gibbs_steps=3, u_start=u_head,
                           frame_start=10)
  np.testing.assert_array_equal(
      block.numpy(), np.concatenate([head.numpy(), tail.numpy()], axis=1))
  # Generation's state update is the recurrence the likelihood reads.
  _, _, u_scored = model.frame_biases(head)
  np.testing.assert_allclose(u_head.numpy(), u_scored.numpy(), atol=1e-5)


@pytest.fixture(scope="module")
def pieces(tmp_path_factory):
  root = tmp_path_factory.mktemp("cells")
  path = str(root / "pieces")
  fake_dataset.write_cycle_piece_dataset(path)
  return path


def _config(model, **values):
  values = {"num_hidden": 8, "num_hidden_recurrent": 6, "batch_size": 8,
            "sequence_length": 16, "pretrain_rnn_epochs": 1, "max_steps": 4,
            "validation_ais_betas": 10, **values}
  if model == "rnn_nade":
    values.pop("validation_ais_betas")
  return config_lib.TrainConfig(
      model=model, **{**config_lib.model_defaults(model, set(values)),
                      **values})


@pytest.mark.parametrize("model", ["rnn_nade", "rnn_rbm"])
def test_a_gated_model_trains_in_the_loop_saves_and_generates(
    pieces, tmp_path, model):
  """Through the training loop (several updates per call, RNN pretraining),
  then model.json, evaluation and generation."""
  job = str(tmp_path / "job")
  strategy = tf.distribute.MirroredStrategy(["/cpu:0"])
  loop.train_and_evaluate(_config(model, recurrence="gru"), pieces, job,
                          strategy=strategy)
  with open(os.path.join(job, "model", files.INFO_FILE)) as f:
    info = json.load(f)
  assert info["sizes"]["recurrence"] == "gru"
  result = evaluation.evaluate(f"{job}/model", pieces, "eval",
                               config_lib.AISConfig(num_chains=4,
                                                    num_betas=20))
  assert np.isfinite(result["loglik_per_frame"])
  out = str(tmp_path / "samples")
  generation.generate(f"{job}/model", out, config_lib.GenerateConfig(
      num_samples=2, num_frames=8, gibbs_steps_per_frame=2) if model ==
                      "rnn_rbm" else config_lib.GenerateConfig(
                          num_samples=2, num_frames=8))
  assert len([n for n in os.listdir(out) if n.endswith(".mid")]) == 2
  # The cell fixes the checkpoint's shapes: resuming with another is refused.
  with pytest.raises(loop.SetupError, match="--recurrence=gru, this run has "
                     "--recurrence=tanh"):
    loop.train_and_evaluate(_config(model, max_steps=6, recurrence="tanh"),
                            pieces, job, strategy=strategy)


def test_a_job_and_a_model_from_before_the_option_read_as_tanh(pieces,
                                                               tmp_path):
  job = str(tmp_path / "job")
  strategy = tf.distribute.MirroredStrategy(["/cpu:0"])
  loop.train_and_evaluate(_config("rnn_nade", recurrence="tanh"), pieces, job,
                          strategy=strategy)
  model_json = os.path.join(job, "model", files.INFO_FILE)
  before = generation.generate(f"{job}/model", str(tmp_path / "a"),
                               config_lib.GenerateConfig(num_samples=2,
                                                         num_frames=8))
  del before
  with open(model_json) as f:
    info = json.load(f)
  del info["sizes"]["recurrence"]
  with open(model_json, "w") as f:
    json.dump(info, f)
  generation.generate(f"{job}/model", str(tmp_path / "b"),
                      config_lib.GenerateConfig(num_samples=2, num_frames=8))
  for name in ("sample-000000.mid", "sample-000001.mid"):
    with open(tmp_path / "a" / name, "rb") as a, open(
        tmp_path / "b" / name, "rb") as b:
      assert a.read() == b.read()
  # An older run_config.json has no --recurrence: its run was tanh, and a
  # tanh run resumes from it.
  run_config = os.path.join(job, "checkpoints", loop.RUN_CONFIG_FILE)
  with open(run_config) as f:
    stored = json.load(f)
  del stored["config"]["recurrence"]
  with open(run_config, "w") as f:
    json.dump(stored, f)
  resumed = loop.train_and_evaluate(
      _config("rnn_nade", max_steps=6, recurrence="tanh"), pieces, job,
      strategy=strategy)
  assert resumed["step"] == 6
