"""The RNN-NADE: its frame distribution is exact (normalised, sampled as
scored), its likelihood is chunked without changing it, it learns, its
samples are keyed by (seed, sample, frame), and its flags are its own.

Every random quantity is seeded, so these tests are deterministic; the
sampling tolerance is several standard errors of the estimate it checks.
"""

import itertools

import keras
import numpy as np
import pytest
import tensorflow as tf

from preprocess import pianoroll
from tests import fake_dataset
from trainer import config as config_lib
from trainer.evaluation import lib as evaluation
from trainer.generation import lib as generation
from trainer.models import base
from trainer.models import files
from trainer.models.rnn_nade import maths as rnn_nade
from trainer.models.rnn_nade import settings
from trainer.models.rnn_nade import training
from trainer.random_streams import STREAMS_PER_STEP
from trainer.training import loop


def random_model(n_visible, n_hidden, n_recurrent, seed, recurrence="tanh",
                 count_units=0):
  """An RNN-NADE with non-trivial parameters (the RNN moves the biases and,
  with count_units, the count head's logits). count_units=RULED: an onoff
  frame of n_visible / 2 pitches with the count head over them and the
  codec's articulation rules."""
  rng = np.random.default_rng(seed)
  ruled = n_visible // 2 if count_units == RULED else 0
  count_units = ruled or count_units
  model = rnn_nade.RNNNADE(n_visible, n_hidden, n_recurrent,
                           recurrence=recurrence, count_units=count_units,
                           articulated_pitches=ruled)
  count = ((model.count_bias, 1.0, 0.0), (model.w_uk, 1.0, 0.0),
           (model.count_embedding, 1.0, 0.0)) if count_units else ()
  for var, std, mean in (
      (model.weights, 1.0, 0.0), (model.output_weights, 1.0, 0.0),
      (model.visible_bias, 1.0, -1.0), (model.hidden_bias, 1.0, 0.0),
      (model.w_uv, 1.0, 0.0), (model.w_uh, 1.0, 0.0), (model.w_vu, 1.0, 0.0),
      (model.w_uu, 0.5, 0.0), (model.b_u, 0.5, 0.0), (model.u0, 0.5, 0.0),
      *count):
    var.assign(rng.normal(mean, std, var.shape).astype(np.float32))
  return model


def random_frames(shape, p, seed):
  rng = np.random.default_rng(seed)
  return (rng.random(shape) < p).astype(np.float32)


def all_frames(n_visible):
  return np.array(list(itertools.product([0, 1], repeat=n_visible)),
                  np.float32)


def codec_breaks(frames, before, pitches):
  """True for onoff frames the codec cannot have written after `before`: a
  silent pitch struck, or a pitch that starts sounding unstruck."""
  play, strike = frames[..., :pitches] > 0, frames[..., pitches:] > 0
  return ((strike & ~play) | (play & ~(before[..., :pitches] > 0) &
                              ~strike)).any(-1)


def frame_distribution(model, history):
  """p(v) over all 2^V frames after `history` [T, V], exactly (0 for the
  frames a model with the articulation rules cannot draw), and the state
  after it."""
  _, u = model.frame_conditionals(tf.constant(history[None]))
  (b_v, b_h, count, previous), _ = model.frame_conditionals(
      tf.zeros([1, 1, model.n_visible]), u)
  frames = all_frames(model.n_visible)
  if count is not None:
    count = (tf.broadcast_to(count[0, 0], [len(frames), count.shape[-1]]),
             model.count_embedding)
  if previous is not None:
    previous = tf.broadcast_to(previous[0, 0], [len(frames),
                                                previous.shape[-1]])
  log_p = rnn_nade.nade_log_prob(tf.constant(frames), model.weights,
                                 model.output_weights, b_v[0, 0], b_h[0, 0],
                                 count, previous)
  p = np.exp(log_p.numpy().astype(np.float64))
  if model.articulated_pitches:
    p[codec_breaks(frames, history[-1], model.articulated_pitches)] = 0.0
  return p, u


# The two cells, and the GRU with a count head over the first 3 units.
# random_model's count_units for an onoff model with the articulation rules.
RULED = "ruled"
# The two cells, the GRU with a count head over the first 3 units, and the
# GRU with the articulation rules (and a count head over its play columns).
MODELS = pytest.mark.parametrize("recurrence,count_units",
                                 [("tanh", 0), ("gru", 0), ("gru", 3),
                                  ("gru", RULED)])


@MODELS
def test_every_frame_distribution_sums_to_one(recurrence, count_units):
  model = random_model(6, 5, 4, seed=0, recurrence=recurrence,
                       count_units=count_units)
  for seed in range(3):
    p, _ = frame_distribution(model, random_frames((4, 6), 0.4, seed))
    assert abs(p.sum() - 1.0) < 1e-5, p.sum()
    assert p.max() < 0.9  # not a degenerate model


def test_a_frame_of_the_previous_ones_is_a_nade_unit_by_unit():
  """log p of one frame is the sum of each unit's conditional, written out
  with the units before it, for a model whose RNN moves the biases."""
  model = random_model(5, 3, 4, seed=1)
  frames = random_frames((2, 6, 5), 0.5, seed=2)
  log_p, _ = model.log_prob(tf.constant(frames))
  b_v, b_h, _ = model.frame_biases(tf.constant(frames))
  w, w_out = model.weights.numpy(), model.output_weights.numpy()
  sigmoid = lambda x: 1.0 / (1.0 + np.exp(-x))
  for b, t in itertools.product(range(2), range(6)):
    v, total = frames[b, t], 0.0
    for i in range(5):
      h = sigmoid(b_h.numpy()[b, t] + v[:i] @ w[:i])
      p = sigmoid(b_v.numpy()[b, t, i] + h @ w_out[i])
      total += np.log(p if v[i] else 1.0 - p)
    assert abs(log_p.numpy()[b, t] - total) < 1e-4


@MODELS
def test_samples_follow_the_exact_distribution(recurrence, count_units):
  model = random_model(6, 5, 4, seed=3, recurrence=recurrence,
                       count_units=count_units)
  history = random_frames((3, 6), 0.4, seed=4)
  p, u = frame_distribution(model, history)
  n = 20000
  start = tf.broadcast_to(u, [n, model.state_width])
  frames, _ = model.generate(n, 1, seed=7, u_start=start)
  index = (frames.numpy()[:, 0] @ (2 ** np.arange(5, -1, -1))).astype(int)
  empirical = np.bincount(index, minlength=64) / n
  # 64 cells: the total variation of 20,000 exact draws is ~0.02.
  assert 0.5 * np.abs(empirical - p).sum() < 0.04
  # Temperature sharpens every conditional: fewer distinct frames.
  cold, _ = model.generate(n, 1, seed=7, u_start=start, temperature=0.3)
  cold_index = (cold.numpy()[:, 0] @ (2 ** np.arange(5, -1, -1))).astype(int)
  assert (np.bincount(cold_index, minlength=64).max() >
          np.bincount(index, minlength=64).max())


@MODELS
def test_chunked_scores_equal_one_pass_and_the_training_sums(recurrence,
                                                             count_units):
  model = random_model(6, 4, 5, seed=5, recurrence=recurrence,
                       count_units=count_units)
  frames = random_frames((3, 37, 6), 0.3, seed=6)
  frames[1, 20:] = frames[2, 5:] = 0.0  # padding
  lengths = np.array([37, 20, 5])
  whole = model.nll_rows(frames, lengths)
  chunked = model.nll_rows(frames, lengths, chunk_frames=8)
  np.testing.assert_allclose(chunked, whole, rtol=1e-6)
  terms = model.nll_terms(tf.constant(frames), tf.constant(lengths))
  assert abs(float(terms["loss_sum"]) - whole.sum()) < 1e-3 * whole.sum()
  assert float(terms["num_frames"]) == 62.0
  # A padded frame does not count: the 5-frame row alone scores the same.
  alone = model.nll_rows(frames[2:3, :5], lengths[2:])
  np.testing.assert_allclose(alone, whole[2:], rtol=1e-6)


@MODELS
def test_scheduled_sampling_reads_exact_samples_keyed_by_sequence(
    recurrence, count_units):
  """--context_sampling's history: at rate 1 each frame is an exact sample of
  the model given the data's frames before it; at rate 0 the data itself;
  any sequence draws the same alone as in a batch (replicas agree)."""
  model = random_model(4, 4, 3, seed=21, recurrence=recurrence,
                       count_units=count_units)
  piece = random_frames((3, 4), 0.4, seed=22)
  n = 20000
  batch = tf.constant(np.broadcast_to(piece, (n, 3, 4)))
  own = model.mixed_context(batch, 7, 5 * 1024, 0, 1.0).numpy()
  p, _ = frame_distribution(model, piece[:2])
  index = (own[:, 2] @ (2 ** np.arange(3, -1, -1))).astype(int)
  # 16 cells: the total variation of 20,000 exact draws is ~0.015.
  assert 0.5 * np.abs(np.bincount(index, minlength=16) / n - p).sum() < 0.03
  rows = batch[:5]
  mixed = model.mixed_context(rows, 7, 5 * 1024, 0, 0.5).numpy()
  alone = model.mixed_context(rows[3:4], 7, 5 * 1024, 3, 0.5).numpy()
  np.testing.assert_array_equal(mixed[3:4], alone)
  np.testing.assert_array_equal(
      model.mixed_context(rows, 7, 5 * 1024, 0, 0.0).numpy(), rows.numpy())
  plain = model.nll_terms(batch[:4])["loss_sum"]
  rate0 = model.nll_terms(batch[:4], None, 7, 5, 0, 0.0)["loss_sum"]
  rate1 = model.nll_terms(batch[:4], None, 7, 5, 0, 1.0)["loss_sum"]
  assert float(rate0) == pytest.approx(float(plain), rel=1e-6)
  assert float(rate1) != pytest.approx(float(plain), rel=1e-3)


def test_scheduled_sampling_reads_the_rules_against_the_data():
  """With the rules, a scored data frame's articulation is read against the
  data's frame before it, not the model's own frame the RNN read there."""
  model = random_model(6, 4, 3, seed=23, recurrence="gru", count_units=RULED)
  rng = np.random.default_rng(24)
  play = (rng.random((16, 6, 3)) < 0.5).astype(np.float32)
  before = np.concatenate([np.zeros_like(play[:, :1]), play[:, :-1]], 1)
  strike = play * np.maximum(1.0 - before, rng.random(play.shape) < 0.3)
  batch = tf.constant(np.concatenate([play, strike], -1))
  loss = float(model.nll_terms(batch, None, 7, 5, 0, 1.0)["loss_sum"])
  mixed = model.mixed_context(batch, 7, 5 * STREAMS_PER_STEP, 0, 1.0)
  (b_v, b_h, count, own_before), _ = model.frame_conditionals(mixed)
  (_, _, _, data_before), _ = model.frame_conditionals(batch)
  assert not np.array_equal(own_before.numpy(), data_before.numpy())
  score = lambda previous: -float(tf.reduce_sum(model._frame_log_prob(  # pylint: disable=protected-access
      batch, (b_v, b_h, count, previous))))
  assert loss == pytest.approx(score(data_before), rel=1e-5)
  assert loss != pytest.approx(score(own_before), rel=1e-3)


@MODELS
def test_generation_is_deterministic_by_seed_and_sample_index(recurrence,
                                                             count_units):
  model = random_model(8, 6, 5, seed=9, recurrence=recurrence,
                       count_units=count_units)
  primer = random_frames((4, 8), 0.3, seed=10)
  block, u_block = model.generate(6, 20, seed=4, primer=primer)
  again, _ = model.generate(6, 20, seed=4, primer=primer)
  subset, u_subset = model.generate(2, 20, seed=4, row_start=3, primer=primer)
  other, _ = model.generate(6, 20, seed=5, primer=primer)
  np.testing.assert_array_equal(block.numpy(), again.numpy())
  np.testing.assert_array_equal(block.numpy()[3:5], subset.numpy())
  np.testing.assert_allclose(u_block.numpy()[3:5], u_subset.numpy(), atol=1e-6)
  assert not np.array_equal(block.numpy(), other.numpy())
  head, u_head = model.generate(6, 12, seed=4, primer=primer)
  tail, _ = model.generate(6, 8, seed=4, u_start=u_head, frame_start=12)
  np.testing.assert_array_equal(
      block.numpy(), np.concatenate([head.numpy(), tail.numpy()], axis=1))
  # Temperature 1 is the model's own distribution, byte for byte.
  one, _ = model.generate(6, 20, seed=4, primer=primer, temperature=1.0)
  np.testing.assert_array_equal(block.numpy(), one.numpy())


def test_the_articulation_rules_draw_only_frames_the_codec_can_write():
  """With the rules no drawn frame strikes a silent pitch or starts one
  unstruck, the first frame after a primer included (and the frames that
  follow them take all the probability: the distribution tests above)."""
  model = random_model(8, 6, 5, seed=11, recurrence="gru", count_units=RULED)
  primer = random_frames((4, 8), 0.3, seed=12)
  primer[:, 4:] *= primer[:, :4]  # struck only where sounding
  frames, _ = model.generate(64, 40, seed=3, primer=primer)
  frames = frames.numpy()
  before = np.concatenate([np.broadcast_to(primer[-1], (64, 1, 8)),
                           frames[:, :-1]], 1)
  assert not codec_breaks(frames, before, 4).any()
  assert frames[..., :4].sum() > 0 and frames[..., 4:].sum() > 0
  # Not a rule of the plain model: it draws such frames.
  plain, _ = random_model(8, 6, 5, seed=11, recurrence="gru",
                          count_units=4).generate(64, 40, seed=3,
                                                  primer=primer)
  plain = plain.numpy()
  assert codec_breaks(plain[:, 1:], plain[:, :-1], 4).any()


def test_a_short_run_learns_a_per_frame_note_count():
  """Frames of exactly 3 notes out of 10, at random: independent units
  cannot hold the count, a NADE learns it from the units before each."""
  rng = np.random.default_rng(0)

  def pieces(num):
    frames = np.zeros((num, 12, 10), np.float32)
    for b, t in itertools.product(range(num), range(12)):
      frames[b, t, rng.choice(10, 3, replace=False)] = 1.0
    return tf.constant(frames)
  train, heldout = pieces(64), pieces(16)
  model = rnn_nade.RNNNADE(10, 16, 4, unit_means=np.full(10, 0.3), seed=0)
  optimizer = keras.optimizers.Adam(0.03)
  optimizer.build(model.trainable_variables)

  @tf.function
  def step(batch):
    with tf.GradientTape() as tape:
      terms = model.nll_terms(batch)
      loss = terms["loss_sum"] / terms["num_frames"]
    grads = tape.gradient(loss, model.trainable_variables)
    optimizer.apply_gradients(zip(grads, model.trainable_variables))

  for i in range(300):
    step(train[(i * 16) % 64:(i * 16) % 64 + 16])
  nll = model.nll_rows(heldout.numpy(), np.full(16, 12)).sum() / (16 * 12)
  independent = -10 * (0.3 * np.log(0.3) + 0.7 * np.log(0.7))  # 6.11 nats
  uniform_3_of_10 = np.log(120.0)  # 4.79 nats: the best any model can do
  assert nll < uniform_3_of_10 + 0.35, nll
  frames, _ = model.generate(256, 4, seed=1)
  counts = frames.numpy().sum(-1).reshape(-1)
  assert np.mean(counts == 3) > 0.75, np.bincount(counts.astype(int))
  assert nll < independent - 1.0


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
  """A tiny RNN-NADE through the training loop, and its pieces dataset."""
  root = tmp_path_factory.mktemp("nade")
  pieces = str(root / "pieces")
  fake_dataset.write_cycle_piece_dataset(pieces)
  values = {"num_hidden": 8, "num_hidden_recurrent": 6, "batch_size": 8,
            "sequence_length": 16, "pretrain_rnn_epochs": 0, "max_steps": 40}
  config = config_lib.TrainConfig(
      model="rnn_nade",
      **{**config_lib.model_defaults("rnn_nade", set(values)), **values})
  job = str(root / "job")
  loop.train_and_evaluate(config, pieces, job,
                          strategy=tf.distribute.MirroredStrategy(["/cpu:0"]))
  return f"{job}/model", pieces


def test_the_count_head_is_the_default_and_can_be_turned_off(trained,
                                                             tmp_path):
  """The default model counts the play columns (model.json records them),
  scores exactly and samples; --count_head=false trains, saves and loads
  the model without the head (ten arrays, as before the head)."""
  model_dir, pieces = trained
  loaded = files.load_model(model_dir)
  pitches = loaded.dataset.roll_spec.n_pitches
  assert loaded.info["sizes"]["count_units"] == pitches
  assert loaded.model.count_units == pitches
  out = generation.generate(
      model_dir, str(tmp_path / "samples"),
      config_lib.GenerateConfig(num_samples=2, num_frames=8))
  assert out["samples"] == 2 and out["written"] == 2
  values = {"num_hidden": 8, "num_hidden_recurrent": 6, "batch_size": 8,
            "sequence_length": 16, "pretrain_rnn_epochs": 0, "max_steps": 2,
            "count_head": False}
  config = config_lib.TrainConfig(
      model="rnn_nade",
      **{**config_lib.model_defaults("rnn_nade", set(values)), **values})
  job = str(tmp_path / "job")
  loop.train_and_evaluate(config, pieces, job,
                          strategy=tf.distribute.MirroredStrategy(["/cpu:0"]))
  plain = files.load_model(f"{job}/model")
  assert "count_units" not in plain.info["sizes"]
  assert plain.model.count_units == 0
  assert sorted(np.load(f"{job}/model/params.npz").files) == sorted(
      training.PARAMS)
  result = evaluation.evaluate(f"{job}/model", pieces, "eval",
                               config_lib.AISConfig(num_chains=4,
                                                    num_betas=30))
  assert result["exact"] is True and np.isfinite(result["loglik_per_frame"])


def test_the_codecs_rolls_follow_the_articulation_rules():
  """Every unit the rules decide has, in a roll the codec wrote, the value
  they give it: the data loses no likelihood to them (overlapping notes,
  re-strikes and notes at the first step included)."""
  spec = pianoroll.RollSpec("onoff", 60, 66, 2)
  rng = np.random.default_rng(3)
  start = rng.integers(0, 100, 80)
  notes = pianoroll.Notes(rng.integers(60, 66, 80), start,
                          start + rng.integers(1, 6, 80))
  roll, _ = pianoroll.notes_to_matrix(notes, spec)
  roll = roll.astype(np.float32)
  before = np.concatenate([np.zeros((1, 6)), roll[:-1, :6]])
  known = np.concatenate([[0.0], np.ones(len(roll) - 1)])[:, None]
  fixed, values = rnn_nade.articulation_fixed(
      tf.constant(roll), tf.constant(np.concatenate([before, known], 1),
                                     tf.float32), 6)
  fixed, values = fixed.numpy(), values.numpy()
  assert fixed[:, 6:].mean() > 0.5 and not fixed[:, :6].any()
  assert values[fixed].min() == 0.0 and values[fixed].max() == 1.0
  np.testing.assert_array_equal(roll[fixed], values[fixed])
  # A roll the rules refuse: a pitch starting unstruck.
  roll[5:, 6:] = 0.0
  assert (roll[fixed] != values[fixed]).any()


def test_the_articulation_rules_are_the_default_on_onoff_rolls(tmp_path):
  """On an onoff dataset the default model follows the rules (model.json
  records the pitches; no array is added) and writes samples;
  --articulation_rules=false trains without them."""
  spec = pianoroll.RollSpec("onoff", 60, 72, 1)
  onoff = lambda roll: np.concatenate(
      [roll, roll & ~np.concatenate([np.zeros_like(roll[:1]), roll[:-1]])], 1)
  rng = np.random.default_rng(0)
  make = lambda n, seed: [onoff(p) for p in fake_dataset.cycle_pieces(
      rng.integers(10, 30, n), seed=seed)]
  data = str(tmp_path / "pieces")
  fake_dataset.write_piece_dataset(data, make(16, 1), make(4, 2), spec)
  models = {}
  for rules in (True, False):
    values = {"num_hidden": 8, "num_hidden_recurrent": 6, "batch_size": 8,
              "sequence_length": 8, "pretrain_rnn_epochs": 0,
              "max_steps": 6, **({} if rules else {"articulation_rules": False})}
    config = config_lib.TrainConfig(
        model="rnn_nade",
        **{**config_lib.model_defaults("rnn_nade", set(values)), **values})
    job = str(tmp_path / f"job-{rules}")
    loop.train_and_evaluate(config, data, job,
                            strategy=tf.distribute.MirroredStrategy(["/cpu:0"]))
    models[rules] = files.load_model(f"{job}/model")
    assert sorted(np.load(f"{job}/model/params.npz").files) == sorted(
        training.PARAMS + rnn_nade.COUNT_PARAMS)
  assert models[True].info["sizes"]["articulated_pitches"] == 12
  assert "articulated_pitches" not in models[False].info["sizes"]
  out = generation.generate(
      f"{tmp_path}/job-True/model", str(tmp_path / "samples"),
      config_lib.GenerateConfig(num_samples=2, num_frames=8))
  assert out["written"] == 2


def test_evaluation_is_exact_and_refuses_the_frame_cap(trained):
  model_dir, pieces = trained
  ais_config = config_lib.AISConfig(num_chains=4, num_betas=30)
  result = evaluation.evaluate(model_dir, pieces, "eval", ais_config)
  assert result["exact"] is True and "log_z_stderr" not in result
  assert result["loglik_per_frame"] > result["baseline_loglik_per_frame"] - 1
  with pytest.raises(base.EvaluateError, match=r"^--max_frames=500: the "
                     r"RNN-NADE scores the whole split"):
    evaluation.evaluate(model_dir, pieces, "eval", ais_config, max_frames=500)


@pytest.mark.parametrize("flags,message", [
    ({"gibbs_steps_per_frame": 5}, "--gibbs_steps_per_frame=5 sets an "
     "RBM's Gibbs chain; this model is an RNN-NADE, which draws each frame "
     "exactly: leave it out"),
    ({"gibbs_steps": 40}, "--gibbs_steps=40 sets an RBM's Gibbs chain"),
    ({"num_windows": 3}, "an RNN-NADE makes one piece frame by frame"),
])
def test_generation_refuses_another_models_levers(trained, tmp_path, flags,
                                                  message):
  model_dir, _ = trained
  config = config_lib.GenerateConfig(num_samples=2, num_frames=8, **flags)
  with pytest.raises(base.GenerateError, match=message.replace("(", r"\(")):
    generation.generate(model_dir, str(tmp_path / "out"), config)
  assert not (tmp_path / "out").exists()


def test_it_reads_the_recurrent_settings_and_refuses_the_rnn_rbms_own():
  defaults = config_lib.model_defaults("rnn_nade", set())
  config = config_lib.TrainConfig(model="rnn_nade", **{
      **defaults, "num_hidden_recurrent": 7, "sequence_length": 0})
  assert config.num_hidden_recurrent == 7
  assert config_lib.TrainConfig(model="rnn_nade", **{
      **defaults, "context_sampling": 0.5}).context_sampling == 0.5
  for flag, value in (("init_from", "x"), ("validation_ais_betas", 10)):
    with pytest.raises(ValueError, match=f"--{flag} is a setting of "
                       "--model=rnn_rbm; this run uses --model=rnn_nade"):
      config_lib.TrainConfig(model="rnn_nade", **{**defaults, flag: value})


def test_a_default_run_trains_between_its_update_bounds(trained, tmp_path,
                                                        monkeypatch):
  """Neither --epochs nor --max_steps given: a small corpus trains for the
  model's least number of updates, a large one stops at its most."""
  _, pieces = trained  # 24 training pieces: 3 updates an epoch of 8
  values = {"num_hidden": 4, "num_hidden_recurrent": 3, "batch_size": 8,
            "sequence_length": 8, "pretrain_rnn_epochs": 0, "epochs": 2,
            "validate_every_epochs": 1}
  config = config_lib.TrainConfig(
      model="rnn_nade",
      **{**config_lib.model_defaults("rnn_nade", set(values)), **values})
  strategy = tf.distribute.MirroredStrategy(["/cpu:0"])
  monkeypatch.setattr(settings, "DEFAULT_UPDATES", (10, 20))
  assert loop.default_updates("rnn_nade") == (10, 20)
  small = loop.train_and_evaluate(config, pieces, str(tmp_path / "small"),
                                  strategy=strategy,
                                  from_data=frozenset({"epochs"}))
  assert small["step"] == 10  # not 2 epochs x 3
  mine = loop.train_and_evaluate(config, pieces, str(tmp_path / "mine"),
                                 strategy=strategy)
  assert mine["step"] == 6  # --epochs given: the user's
  monkeypatch.setattr(settings, "DEFAULT_UPDATES", (1, 4))
  large = loop.train_and_evaluate(config, pieces, str(tmp_path / "large"),
                                  strategy=strategy,
                                  from_data=frozenset({"epochs"}))
  assert large["step"] == 4


def test_diverging_rnn_pretraining_names_its_own_learning_rate(trained,
                                                               tmp_path):
  _, pieces = trained
  values = {"num_hidden": 4, "num_hidden_recurrent": 3, "batch_size": 8,
            "sequence_length": 8, "pretrain_rnn_epochs": 1,
            "pretrain_rnn_learning_rate": 1e38, "max_steps": 1}
  config = config_lib.TrainConfig(
      model="rnn_nade",
      **{**config_lib.model_defaults("rnn_nade", set(values)), **values})
  with pytest.raises(base.NonFiniteError, match=r"RNN pretraining step \d+ "
                     r"went NaN/Inf \(--pretrain_rnn_learning_rate=1e\+38\): "
                     r"lower it, or --pretrain_rnn_epochs=0"):
    loop.train_and_evaluate(config, pieces, str(tmp_path / "job"),
                            strategy=tf.distribute.MirroredStrategy(["/cpu:0"]))
