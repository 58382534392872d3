"""models/rbm.py's Gibbs chain and random_streams' table."""

import numpy as np
import tensorflow as tf

from trainer.models.rbm import settings as rbm_settings
from trainer import random_streams
from trainer.models.rbm import maths as model_lib

V, H = 24, 5


def small_rbm():
  rbm = model_lib.RBM(V, H)
  rng = np.random.default_rng(0)
  rbm.weights.assign(rng.normal(0, 2.0, (V, H)).astype(np.float32))
  rbm.visible_bias.assign(rng.normal(0, 1.0, V).astype(np.float32))
  return rbm


def test_chain_is_its_steps_and_keyed_by_rows():
  rbm = small_rbm()
  v0 = tf.zeros([6, V])
  chain = rbm.gibbs_chain(v0, 3, seed=7, stream_base=100, row_start=10)
  v = v0
  for s in range(3):
    _, v, _ = rbm.gibbs_step(v, 7, 100 + 2 * s, row_start=10)
  np.testing.assert_array_equal(chain.numpy(), v.numpy())
  # Rows 12.. of the chain are the same whichever batch they are drawn in.
  tail = rbm.gibbs_chain(v0[2:], 3, seed=7, stream_base=100, row_start=12)
  np.testing.assert_array_equal(chain.numpy()[2:], tail.numpy())


def test_clamped_units_stay_and_the_rest_moves():
  rbm = small_rbm()
  mask = np.zeros(V, bool)
  mask[:8] = True
  values = np.tile(np.array([1, 0] * 4 + [0] * (V - 8), np.float32), (6, 1))
  start = rbm.visible_bias_samples(3, random_streams.CHAIN_INIT, 0, 6)
  free = rbm.gibbs_chain(start, 5, 3, 0)
  clamped = rbm.gibbs_chain(start, 5, 3, 0, clamp_mask=tf.constant(mask),
                            clamp_values=tf.constant(values))
  np.testing.assert_array_equal(clamped.numpy()[:, :8], values[:, :8])
  assert not np.array_equal(free.numpy()[:, :8], values[:, :8])
  # Clamping = resetting the units at the start and after every step.
  v = tf.where(mask, values, start)
  for s in range(5):
    _, v, _ = rbm.gibbs_step(v, 3, 2 * s)
    v = tf.where(mask, values, v)
  np.testing.assert_array_equal(clamped.numpy(), v.numpy())


def test_chains_start_from_the_visible_biases():
  rbm = model_lib.RBM(V, H, unit_means=[0.05] * (V // 2) + [0.95] * (V // 2))
  start = rbm.visible_bias_samples(0, random_streams.CHAIN_INIT, 0, 4000)
  means = start.numpy().mean(axis=0)
  np.testing.assert_allclose(means, [0.05] * (V // 2) + [0.95] * (V // 2),
                             atol=0.02)


def test_the_settings_fit_the_stream_table():
  # config.py cannot import TensorFlow (deploy reads it), so its limits are
  # numbers of their own: they must fit random_streams' regions.
  assert (2 * (rbm_settings.MAX_GIBBS_STEPS + 1) ==
          random_streams.GENERATION_CHAIN_STREAMS)
  assert 2 * rbm_settings.MAX_CD_K + 2 <= random_streams.STREAMS_PER_STEP
  # The regions do not meet within a run's reach.
  assert random_streams.generation_base(2**20) < random_streams.CHAIN_INIT
  assert int(random_streams.training_base(2**40)) < random_streams.CHAIN_INIT
  # --candidates: every chain a job can reach stays below the next
  # candidate's region, and the last candidate below CHAIN_INIT.
  assert rbm_settings.MAX_GENERATION_CHAINS == random_streams.CANDIDATE_CHAINS
  last = random_streams.generation_candidate(
      rbm_settings.MAX_GENERATION_CHAINS - 1, rbm_settings.MAX_CANDIDATES - 1)
  assert (random_streams.generation_base(last + 1) <=
          random_streams.CHAIN_INIT - random_streams.CHAIN_INIT // 2)
  assert random_streams.generation_candidate(5, 0) == 5


def test_profile_agreement_is_minus_kl_to_the_smoothed_profile():
  # 4 units onto 2 bins: units 0, 1 -> bin 0, unit 2 -> bin 1, unit 3 counts
  # nowhere (a clamped unit).
  projection = np.array([[1, 0], [1, 0], [0, 1], [0, 0]], np.float32)
  v = np.array([[1, 1, 1, 1],   # q = (2/3, 1/3)
                [0, 0, 1, 0],   # q = (0, 1)
                [0, 0, 0, 1]],  # nothing counted: q = 0, score 0
               np.float32)
  profile = np.array([[5, 1], [5, 1], [5, 1]], np.float32)
  p = np.array([6, 2]) / 8.0  # prior 1 per bin
  expected = [-(2 / 3 * np.log((2 / 3) / p[0]) + 1 / 3 * np.log((1 / 3) / p[1])),
              -np.log(1 / p[1]), 0.0]
  got = model_lib.profile_agreement(tf.constant(v), tf.constant(projection),
                                    tf.constant(profile)).numpy()
  np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6)
  # The row that keeps the profile's balance agrees better than the one that
  # moves to the rare bin.
  assert got[0] > got[1]


def test_best_of_takes_the_highest_score_per_row_first_on_ties():
  candidates = np.arange(3 * 4 * 2, dtype=np.float32).reshape(3, 4, 2)
  scores = np.array([[0, 5, 1, 2],
                     [3, 5, 0, 2],
                     [1, 1, 2, 2]], np.float32)
  chosen, index = model_lib.best_of(tf.constant(candidates),
                                    tf.constant(scores))
  np.testing.assert_array_equal(index.numpy(), [1, 0, 2, 0])
  np.testing.assert_array_equal(
      chosen.numpy(), candidates[[1, 0, 2, 0], np.arange(4)])


def test_keyed_uint16_is_keyed_by_row_and_uses_both_halves_of_each_word():
  full = random_streams.keyed_uint16(7, 3, 10, 5, 13).numpy()
  assert full.dtype == np.uint16 and full.shape == (5, 13)
  # Rows 12..13 are the same whichever batch draws them.
  np.testing.assert_array_equal(
      random_streams.keyed_uint16(7, 3, 12, 2, 13).numpy(), full[2:4])
  # 13 -> 16 halves a row: row r is Philox words 8r .. 8r + 7 (counters
  # 2r, 2r + 1), low half first.
  words = tf.raw_ops.StatelessRandomUniformFullIntV2(
      shape=[1, 8 * 15], key=tf.constant([7], tf.uint64), counter=tf.constant([0, 3], tf.uint64),
      alg=1, dtype=tf.uint32).numpy().reshape(-1).astype(np.int64)
  row = words[10 * 8:11 * 8]
  halves = np.stack([row & 0xFFFF, row >> 16], axis=-1).reshape(-1)
  np.testing.assert_array_equal(full[0], halves[:13])


def test_keyed_uint16_scaled_draws_bernoulli_at_p():
  x = random_streams.keyed_uint16(1, 0, 0, 1000, 2000).numpy()
  u = x.astype(np.float64) * random_streams.UINT16_SCALE
  assert u.min() >= 0.0 and u.max() < 1.0
  assert abs(u.mean() - 0.5) < 0.001  # 2M draws: std of the mean 0.0002
  # A rare unit (p = 1e-3, as most notes in a frame): 2,000 expected hits,
  # std 45; a coarser grid (e.g. 8 bits: p -> 1/256) would give ~7,800.
  assert abs((u < 1e-3).sum() - 2000) < 250
