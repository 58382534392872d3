"""RNN-RBM evaluation in chunks of frames: the same log Z as all frames at
once, and memory that does not grow with the length of the piece."""

import os
import subprocess
import sys

import numpy as np
import tensorflow as tf

from trainer import config as config_lib
from trainer.models.rnn_rbm import maths as rnn_rbm

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _model(v=12, h=6, u=5):
  model = rnn_rbm.RNNRBM(v, h, u, seed=3)
  rng = np.random.default_rng(0)
  for var in (model.weights, model.w_uv, model.w_uh, model.w_vu, model.w_uu):
    var.assign(rng.normal(0, 0.5, var.shape).astype(np.float32))
  return model


def test_chunked_ais_draws_the_noise_of_all_frames_at_once():
  model = _model()
  v = (np.random.default_rng(1).random((3, 70, 12)) < 0.3).astype(np.float32)
  b_v, b_h, _ = model.frame_biases(v)
  config = config_lib.AISConfig(num_chains=4, num_betas=40, seed=2)
  whole = model._chunked_log_weights(b_v, b_h, b_v, config, 5,  # pylint: disable=protected-access
                                     chunk_frames=80)
  chunked = model._chunked_log_weights(b_v, b_h, b_v, config, 5,  # pylint: disable=protected-access
                                       chunk_frames=16)
  assert whole.shape == chunked.shape == (3, 70, 4)
  np.testing.assert_allclose(chunked, whole, rtol=1e-6, atol=1e-6)


def test_sequences_batched_in_any_order_draw_their_own_noise():
  # Evaluation batches sequences by length: a sequence keyed by its index in
  # data order gets the log weights it gets in the data-order batch.
  model = _model()
  v = (np.random.default_rng(1).random((4, 40, 12)) < 0.3).astype(np.float32)
  b_v, b_h, _ = model.frame_biases(v)
  config = config_lib.AISConfig(num_chains=4, num_betas=30, seed=2)
  in_order = model._chunked_log_weights(b_v, b_h, b_v, config, 7)  # pylint: disable=protected-access
  order = [2, 0, 3]
  picked = model._chunked_log_weights(  # pylint: disable=protected-access
      *(tf.gather(x, order) for x in (b_v, b_h, b_v)), config,
      np.array(order, np.int64) + 7)
  np.testing.assert_array_equal(picked, in_order[order])
  alone = model._chunked_log_weights(b_v[3:], b_h[3:], b_v[3:], config, 10)  # pylint: disable=protected-access
  np.testing.assert_array_equal(alone[0], in_order[3])


def test_chunked_ais_matches_the_exact_log_partition():
  model = _model(h=8)
  v = (np.random.default_rng(1).random((2, 300, 12)) < 0.3).astype(np.float32)
  exact = model.log_partition_exact(v).numpy()
  log_z, stderr = model.log_partition_ais(
      v, config_lib.AISConfig(num_chains=64, num_betas=1000))
  assert log_z.shape == exact.shape == (2, 300)  # 300 frames: 2 chunks
  error = log_z - exact
  assert abs(error.mean()) < 0.01  # no bias at the chunk boundary
  assert np.all(np.abs(error) < 6 * stderr + 0.01)


_PEAK = r"""
import resource, sys
import numpy as np
from trainer import config as config_lib
from trainer.models.rnn_rbm import maths as rnn_rbm
frames = int(sys.argv[1])
model = rnn_rbm.RNNRBM(88, 150, 100, seed=0)
v = (np.random.default_rng(0).random((1, frames, 88)) < 0.05).astype(np.float32)
out = model.nll_ais(v, np.array([frames]), config_lib.AISConfig(
    num_chains=16, num_betas=20))
assert np.isfinite(out["nll_sum"])
print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
"""


def _peak_kib(frames: int) -> int:
  done = subprocess.run(
      [sys.executable, "-c", _PEAK, str(frames)], cwd=ROOT, check=True,
      capture_output=True, text=True, timeout=300,
      env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", CUDA_VISIBLE_DEVICES=""))
  return int(done.stdout.split()[-1])


def test_peak_memory_of_a_long_piece_stays_flat():
  # All frames' chains at once, a 6,000-frame piece peaked 2.4 GB above a
  # 500-frame one (3.2 GB in all). In chunks of AIS_FRAMES the chains' memory
  # is the same for both; what remains grows by ~12 KB a frame (the RNN's
  # pass over the whole piece): ~65 MB here.
  short, long = _peak_kib(500), _peak_kib(6000)
  assert long - short < 150 * 1024, (short, long)
