"""The RNN-RBM's maths: exact and AIS partition functions, the CD surrogate's
gradient, keyed noise, learning on toy sequences, generation and pretraining.

Every random quantity is seeded, so these tests are deterministic; tolerances
are several standard errors of the Monte Carlo estimates they check.
"""

import itertools

import keras
import numpy as np
import pytest
import tensorflow as tf

from trainer.models import ais
from trainer import random_streams
from trainer.models.rbm import maths as model_lib
from trainer.models.recurrent import maths as recurrent
from trainer.models.rnn_rbm import maths as rnn_rbm


def random_model(n_visible, n_hidden, n_recurrent, seed, scale=1.0):
  """An RNN-RBM with non-trivial parameters (the RNN really moves the biases)."""
  rng = np.random.default_rng(seed)
  model = rnn_rbm.RNNRBM(n_visible, n_hidden, n_recurrent)
  for var, std, mean in (
      (model.weights, 0.5, 0.0), (model.visible_bias, 1.0, -1.0),
      (model.hidden_bias, 1.0, 0.0), (model.w_uv, 1.0, 0.0),
      (model.w_uh, 1.0, 0.0), (model.w_vu, 1.0, 0.0), (model.w_uu, 0.5, 0.0),
      (model.b_u, 0.5, 0.0), (model.u0, 0.5, 0.0)):
    var.assign(rng.normal(mean, std * scale, var.shape).astype(np.float32))
  return model


def random_frames(shape, p, seed):
  rng = np.random.default_rng(seed)
  return tf.constant((rng.random(shape) < p).astype(np.float32))


def cycle_sequences(num, length, n_visible, seed, flip=0.03):
  """A 4-chord cycle from a random phase, each unit flipped with prob `flip`."""
  chords = np.zeros((4, n_visible), np.float32)
  for i in range(4):
    chords[i, [i, i + 4, (i + 7) % n_visible]] = 1.0
  rng = np.random.default_rng(seed)
  phase = rng.integers(0, 4, num)
  seqs = chords[(phase[:, None] + np.arange(length)[None, :]) % 4]
  flips = rng.random(seqs.shape) < flip
  return np.abs(seqs - flips).astype(np.float32)


def test_frame_noise_depends_on_row_and_frame_only():
  full = recurrent.frame_noise(3, 5, 10, 4, 40, 6).numpy()
  # Other rows, fewer frames (a shorter padded batch), another start row.
  part = recurrent.frame_noise(3, 5, 12, 1, 20, 6).numpy()
  np.testing.assert_array_equal(full[2:3, :20], part)
  other = recurrent.frame_noise(3, 6, 10, 4, 40, 6).numpy()
  assert not np.allclose(full, other)
  assert not np.allclose(full[:, :16], full[:, 16:32])
  # Unknown sizes at trace time (padded batches) take the map_fn path.
  dynamic = tf.function(
      lambda x: recurrent.frame_noise(3, 5, 10, tf.shape(x)[0], tf.shape(x)[1],
                                    6),
      input_signature=[tf.TensorSpec([None, None])])
  np.testing.assert_array_equal(dynamic(tf.zeros([4, 40])).numpy(), full)


def test_frame_noise_is_16_bit_philox_chunks_of_16_frames():
  # Frames [16c, 16c + 16) of row r: row r of stream family * 2^20 + c,
  # 16 * width uint16 numbers frame-major, scaled by 2^-16.
  got = recurrent.frame_noise(3, 5, 10, 4, 40, 6).numpy()
  chunks = [random_streams.keyed_uint16(3, 5 * 2**20 + c, 10, 4, 16 * 6)
            .numpy().reshape(4, 16, 6) for c in range(3)]
  want = np.concatenate(chunks, axis=1)[:, :40] * random_streams.UINT16_SCALE
  np.testing.assert_array_equal(got, want.astype(np.float32))


def test_exact_log_partition_matches_brute_force_over_visible_and_hidden():
  rng = np.random.default_rng(0)
  w = rng.normal(0, 1, (5, 3)).astype(np.float32)
  b_v = rng.normal(0, 1, (4, 5)).astype(np.float32)
  b_h = rng.normal(0, 1, (4, 3)).astype(np.float32)
  got = rnn_rbm.conditional_log_partition_exact(w, b_v, b_h).numpy()
  vs = np.array(list(itertools.product([0, 1], repeat=5)), np.float64)
  hs = np.array(list(itertools.product([0, 1], repeat=3)), np.float64)
  for n in range(4):
    energy = (vs @ b_v[n])[:, None] + (hs @ b_h[n])[None, :] + vs @ w @ hs.T
    want = np.log(np.exp(energy).sum())
    assert abs(got[n] - want) < 1e-4


def test_ais_per_frame_log_partition_agrees_with_exact():
  model = random_model(16, 10, 8, seed=1)
  v = random_frames((2, 12, 16), 0.3, seed=2)
  exact = model.log_partition_exact(v).numpy()
  log_z, stderr = model.log_partition_ais(v, ais.AISConfig(200, 1500, 0),
                                          row_start=5)
  assert log_z.shape == stderr.shape == (2, 12)
  # The frames' biases differ, so this is 24 different partition functions.
  assert np.ptp(exact) > 1.0
  assert np.max(np.abs(log_z - exact)) < 0.05, np.abs(log_z - exact)
  assert np.all(stderr > 0) and np.all(stderr < 0.02)


def test_nll_sums_combine_free_energy_and_per_frame_log_partition():
  model = random_model(8, 6, 4, seed=3)
  v = random_frames((3, 7, 8), 0.3, seed=4)
  lengths = tf.constant([7, 4, 1])
  sums = model.nll_ais(v, lengths, ais.AISConfig(100, 800, 0))
  assert sums["num_frames"] == 12
  exact = model.nll_exact(v, lengths)
  assert abs(sums["nll_sum"] / sums["num_frames"] - exact) < 0.05
  assert 0 < np.sqrt(sums["nll_variance"]) / sums["num_frames"] < 0.02


def test_surrogate_gradient_matches_exact_gradient_in_expectation():
  model = random_model(6, 4, 3, seed=5, scale=0.6)
  sequence = random_frames((1, 5, 6), 0.4, seed=6)
  variables = model.trainable_variables
  with tf.GradientTape() as tape:
    exact_nll = -tf.reduce_sum(model.log_prob_exact(sequence))
  exact = tape.gradient(exact_nll, variables)
  # The same sequence in 4,000 rows: 4,000 independent CD-30 negatives.
  copies = tf.tile(sequence, [4000, 1, 1])
  with tf.GradientTape() as tape:
    terms = model.cd_terms(copies, None, 30, seed=0, step=0, row_start=0)
    surrogate = terms["loss_sum"] / 4000.0
  estimate = tape.gradient(surrogate, variables)
  flat = lambda grads: np.concatenate([g.numpy().ravel() for g in grads])
  exact, estimate = flat(exact), flat(estimate)
  assert np.linalg.norm(exact) > 1.0
  # Monte Carlo error ~ 1/sqrt(4000) per frame and unit; a wrong path
  # (no gradient through the RNN, or through v*) is off by O(1).
  assert np.linalg.norm(estimate - exact) < 0.05 * np.linalg.norm(exact)


def test_batch_rows_are_independent_of_the_batch_they_are_in():
  model = random_model(10, 6, 5, seed=7)
  v = random_frames((4, 20, 10), 0.3, seed=8)
  lengths = tf.constant([20, 20, 12, 20])
  whole = model.cd_terms(v, lengths, 3, seed=1, step=9, row_start=0)
  # Rows 2..3 alone, at their global index; row 2 alone and cropped to its
  # 12 real frames (a batch padded to a different length).
  part = model.cd_terms(v[2:], lengths[2:], 3, seed=1, step=9, row_start=2)
  alone = model.cd_terms(v[2:3, :12], None, 3, seed=1, step=9, row_start=2)
  negatives = whole["negatives"].numpy()
  np.testing.assert_array_equal(negatives[2:], part["negatives"].numpy())
  np.testing.assert_array_equal(negatives[2, :12],
                                alone["negatives"].numpy()[0])
  row2 = model.cd_terms(v[2:3], lengths[2:3], 3, seed=1, step=9, row_start=2)
  np.testing.assert_allclose(row2["loss_sum"].numpy(),
                             alone["loss_sum"].numpy(), rtol=1e-5)
  assert row2["num_frames"].numpy() == 12
  other_step = model.cd_terms(v, lengths, 3, seed=1, step=10, row_start=0)
  assert not np.array_equal(negatives, other_step["negatives"].numpy())


def test_scheduled_sampling_mixes_whole_frames_of_the_models_own_samples():
  model = random_model(10, 6, 5, seed=7)
  v = random_frames((4, 48, 10), 0.3, seed=8)
  mix = lambda rate: model.mixed_context(v, 3, seed=1, family=50,
                                         row_start=0, rate=rate).numpy()
  own, _ = rnn_rbm.conditional_cd_negatives(
      v, model.weights, *model.frame_biases(v)[:2], 3, 1, 50, 0)
  np.testing.assert_array_equal(mix(0.0), v.numpy())
  np.testing.assert_array_equal(mix(1.0), own.numpy())
  half = mix(0.5)
  # Each frame is wholly the data's or wholly the sample's.
  is_data = np.all(half == v.numpy(), -1)
  is_own = np.all(half == own.numpy(), -1)
  assert np.all(is_data | is_own)
  differs = ~np.all(v.numpy() == own.numpy(), -1)
  share = np.mean(is_own[differs] & ~is_data[differs])
  assert 0.35 < share < 0.65, share
  # Rate 0 is the paper's training to the byte; a rate changes the signal.
  plain = model.cd_terms(v, None, 3, seed=1, step=4, row_start=0)
  zero = model.cd_terms(v, None, 3, seed=1, step=4, row_start=0,
                        context_rate=tf.constant(0.0))
  some = model.cd_terms(v, None, 3, seed=1, step=4, row_start=0,
                        context_rate=tf.constant(0.5))
  np.testing.assert_array_equal(plain["negatives"], zero["negatives"])
  assert plain["loss_sum"].numpy() == zero["loss_sum"].numpy()
  assert plain["loss_sum"].numpy() != some["loss_sum"].numpy()
  with pytest.raises(ValueError, match="noise streams per step"):
    model.cd_terms(v, None, 256, seed=1, step=4, row_start=0,
                   context_rate=tf.constant(0.5))


def test_short_training_run_improves_heldout_nll_clearly():
  train = tf.constant(cycle_sequences(64, 16, 12, seed=0))
  heldout = tf.constant(cycle_sequences(32, 16, 12, seed=1))
  model = rnn_rbm.RNNRBM(12, 8, 16, unit_means=train.numpy().mean((0, 1)),
                         seed=0)
  before = model.nll_exact(heldout)
  optimizer = keras.optimizers.Adam(0.03)
  optimizer.build(model.trainable_variables)

  @tf.function
  def step(batch, index):
    with tf.GradientTape() as tape:
      terms = model.cd_terms(batch, None, 5, seed=0, step=index, row_start=0)
      loss = terms["loss_sum"] / terms["num_frames"]
    grads = tape.gradient(loss, model.trainable_variables)
    optimizer.apply_gradients(zip(grads, model.trainable_variables))

  for i in range(150):
    rows = (i * 16) % 64
    step(train[rows:rows + 16], tf.constant(i, tf.int64))
  after = model.nll_exact(heldout)
  # The best model with independent frames (the held-out unit marginals).
  p = np.clip(heldout.numpy().mean((0, 1)), 1e-6, 1 - 1e-6)
  independent = -np.sum(p * np.log(p) + (1 - p) * np.log(1 - p))
  assert after < 0.5 * before, (before, after)
  assert after < independent - 1.0, (after, independent)


def copy_previous_frame_model(n_visible=8):
  """u(t) ~ v(t) and b_v(t + 1) = +-5: each frame repeats the one before."""
  model = rnn_rbm.RNNRBM(n_visible, 4, n_visible, zero_bias_projections=True)
  model.weights.assign(tf.zeros_like(model.weights))
  model.visible_bias.assign(tf.fill([n_visible], -5.0))
  model.w_vu.assign(10.0 * tf.eye(n_visible))
  model.w_uu.assign(tf.zeros_like(model.w_uu))
  model.w_uv.assign(10.0 * tf.eye(n_visible))
  return model


def test_generation_honours_the_primer():
  model = copy_previous_frame_model()
  primer = np.zeros((3, 8), np.float32)
  primer[:, [1, 4, 6]] = 1.0
  primer[0] = 0.0  # only the state after the last primer frame matters
  primed, _ = model.generate(16, 4, seed=0, gibbs_steps=5, primer=primer)
  plain, _ = model.generate(16, 4, seed=0, gibbs_steps=5)
  assert np.mean(primed.numpy()[:, 0] == primer[-1]) > 0.95
  assert np.mean(plain.numpy()[:, 0] == 0.0) > 0.95


def test_generation_is_deterministic_by_seed_and_sample_index():
  model = random_model(10, 6, 5, seed=9)
  primer = random_frames((5, 10), 0.3, seed=10).numpy()
  block, u_block = model.generate(6, 20, seed=4, gibbs_steps=7, primer=primer)
  again, _ = model.generate(6, 20, seed=4, gibbs_steps=7, primer=primer)
  subset, u_subset = model.generate(2, 20, seed=4, row_start=3, gibbs_steps=7,
                                    primer=primer)
  other, _ = model.generate(6, 20, seed=5, gibbs_steps=7, primer=primer)
  np.testing.assert_array_equal(block.numpy(), again.numpy())
  np.testing.assert_array_equal(block.numpy()[3:5], subset.numpy())
  np.testing.assert_allclose(u_block.numpy()[3:5], u_subset.numpy(), atol=1e-6)
  assert not np.array_equal(block.numpy(), other.numpy())
  assert not np.array_equal(block.numpy()[0], block.numpy()[1])
  # A long piece made in two calls is the piece made in one.
  head, u_head = model.generate(6, 12, seed=4, gibbs_steps=7, primer=primer)
  tail, _ = model.generate(6, 8, seed=4, gibbs_steps=7, u_start=u_head,
                           frame_start=12)
  np.testing.assert_array_equal(
      block.numpy(), np.concatenate([head.numpy(), tail.numpy()], axis=1))


def test_frame_rnn_cross_entropy_is_exact_and_pretraining_copies_in():
  rnn = recurrent.FrameRNN(6, 4, seed=0)
  rnn.w_uv.assign(np.random.default_rng(0).normal(0, 1, (4, 6)).astype(
      np.float32))
  v = random_frames((2, 5, 6), 0.4, seed=11)
  terms = rnn.cross_entropy_terms(v, tf.constant([5, 3]))
  # Reference: the recurrence by hand in numpy.
  w_vu, w_uu, w_uv = rnn.w_vu.numpy(), rnn.w_uu.numpy(), rnn.w_uv.numpy()
  want = 0.0
  for row, length in ((0, 5), (1, 3)):
    u = rnn.u0.numpy()
    for t in range(length):
      p = 1 / (1 + np.exp(-(rnn.output_bias.numpy() + u @ w_uv)))
      x = v.numpy()[row, t]
      want -= np.sum(x * np.log(p) + (1 - x) * np.log(1 - p))
      u = np.tanh(rnn.b_u.numpy() + x @ w_vu + u @ w_uu)
  assert terms["num_frames"].numpy() == 8
  np.testing.assert_allclose(terms["cross_entropy_sum"].numpy(), want,
                             rtol=1e-5)
  model = rnn_rbm.RNNRBM(6, 3, 4)
  model.copy_rnn_from(rnn)
  np.testing.assert_array_equal(model.w_uu.numpy(), w_uu)
  np.testing.assert_array_equal(model.w_uv.numpy(), w_uv)
  with pytest.raises(ValueError, match="U=4"):
    rnn_rbm.RNNRBM(6, 3, 5).copy_rnn_from(rnn)


def test_frame_rnn_pretraining_learns_the_cycle():
  train = tf.constant(cycle_sequences(64, 16, 12, seed=0))
  heldout = tf.constant(cycle_sequences(32, 16, 12, seed=1))
  rnn = recurrent.FrameRNN(12, 16, unit_means=train.numpy().mean((0, 1)))
  optimizer = keras.optimizers.Adam(0.03)
  optimizer.build(rnn.trainable_variables)

  def per_frame(v):
    terms = rnn.cross_entropy_terms(v)
    return terms["cross_entropy_sum"] / terms["num_frames"]

  @tf.function
  def step(batch):
    with tf.GradientTape() as tape:
      loss = per_frame(batch)
    grads = tape.gradient(loss, rnn.trainable_variables)
    optimizer.apply_gradients(zip(grads, rnn.trainable_variables))

  before = float(per_frame(heldout))
  for i in range(100):
    rows = (i * 16) % 64
    step(train[rows:rows + 16])
  assert float(per_frame(heldout)) < 0.5 * before


def test_load_rbm_checks_the_shape():
  model = rnn_rbm.RNNRBM(6, 3, 4)
  source = rnn_rbm.RNNRBM(6, 3, 2, seed=7)
  model.load_rbm(source)
  np.testing.assert_array_equal(model.weights.numpy(), source.weights.numpy())
  with pytest.raises(ValueError, match="--num_hidden=5"):
    rnn_rbm.RNNRBM(6, 5, 4).load_rbm(source)
  started = rnn_rbm.RNNRBM.from_rbm(source, n_hidden_recurrent=4)
  v = random_frames((2, 5, 6), 0.4, seed=12)
  # W_uv = W_uh = 0: every frame's RBM is the source's, whatever the history.
  np.testing.assert_allclose(
      started.free_energies(v).numpy(),
      rnn_rbm.conditional_free_energy(
          v, source.weights, source.visible_bias, source.hidden_bias).numpy(),
      rtol=1e-6)


def test_two_replicas_compute_the_gradient_of_one():
  """Each replica keys its noise by its global rows and divides its sum by the
  global frame count, so the all-reduced gradient is the one-replica one."""
  v = random_frames((4, 10, 8), 0.3, seed=13)
  lengths = tf.constant([10, 6, 10, 3])
  global_frames = float(np.sum(lengths.numpy()))

  def replica_gradients(model, batch, batch_lengths, row_start):
    with tf.GradientTape() as tape:
      terms = model.cd_terms(batch, batch_lengths, 4, seed=2, step=7,
                             row_start=row_start)
      loss = terms["loss_sum"] / global_frames
    return tape.gradient(loss, model.trainable_variables)

  single = random_model(8, 5, 4, seed=14)
  want = replica_gradients(single, v, lengths, 0)
  strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
  with strategy.scope():
    mirrored = random_model(8, 5, 4, seed=14)

  @tf.function
  def distributed():
    def per_replica():
      replica = tf.distribute.get_replica_context().replica_id_in_sync_group
      rows = 2 * replica
      return replica_gradients(mirrored, v[rows:rows + 2],
                               lengths[rows:rows + 2], tf.cast(rows, tf.int64))
    grads = strategy.run(per_replica)
    return [strategy.reduce(tf.distribute.ReduceOp.SUM, g, axis=None)
            for g in grads]

  for got, expected in zip(distributed(), want):
    np.testing.assert_allclose(got.numpy(), expected.numpy(), rtol=1e-4,
                               atol=1e-6)


def test_with_zero_bias_projections_every_frame_is_the_frame_rbm():
  rbm = model_lib.RBM(8, 6)
  rng = np.random.default_rng(15)
  rbm.weights.assign(rng.normal(0, 0.7, (8, 6)).astype(np.float32))
  rbm.visible_bias.assign(rng.normal(-1, 1, 8).astype(np.float32))
  rbm.hidden_bias.assign(rng.normal(0, 1, 6).astype(np.float32))
  model = rnn_rbm.RNNRBM.from_rbm(rbm, n_hidden_recurrent=5, seed=3)
  v = random_frames((3, 4, 8), 0.3, seed=16)
  want = rbm.log_likelihood_exact(tf.reshape(v, [-1, 8])).numpy()
  got = model.log_prob_exact(v).numpy().ravel()
  np.testing.assert_allclose(got, want, rtol=1e-5)
