"""models/rbm.py's Gibbs chain and random_streams' table."""

import numpy as np
import tensorflow as tf

from trainer import config as config_lib
from trainer import random_streams
from trainer.models import rbm as model_lib

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
  assert (2 * (config_lib.MAX_GIBBS_STEPS + 1) ==
          random_streams.GENERATION_CHAIN_STREAMS)
  assert 2 * config_lib.MAX_CD_K + 2 <= random_streams.STREAMS_PER_STEP
  # The regions do not meet within a run's reach.
  assert random_streams.generation_base(2**20) < random_streams.CHAIN_INIT
  assert int(random_streams.training_base(2**40)) < random_streams.CHAIN_INIT
