"""--compute_dtype: 16-bit operands for the window RBM's CD matmuls.

The statistics stay close to float32's, a bfloat16 training learns as well,
and every op of the training step has a GPU kernel for the dtype it uses
(checked from the kernel registry of this CUDA build, without a GPU).
"""

import collections
import os

import numpy as np
import pytest
import tensorflow as tf
from tensorflow.python.framework import kernels

from tests import fake_dataset
from tests.test_train import ONE, TWO, V, heldout_loglik
from trainer import config as config_lib
from trainer.models.rbm import maths as model_lib
from trainer.models.rbm import training as rbm_training
from trainer.training import loop as train_lib

# Relative (Frobenius) error of a 16-bit weight statistic against float32's.
# Measured at the start of training (below): bfloat16 fused 0.0054 (float16
# 0.0007); bfloat16 as two rounded products subtracted 0.032. On a trained
# state the chains' samples differ too (a few units flip where p(v|h) moved by
# a rounding): 0.0155 at V=96, 0.020 at V=2340 B=100, 0.012 at H=1024 B=1024,
# with the same inputs 0.002-0.003 fused and 0.006-0.007 unfused.
STAT_RTOL = 0.015


def _rel(a, b) -> float:
  return float(np.linalg.norm(np.asarray(a) - np.asarray(b)) /
               np.linalg.norm(np.asarray(b)))


def _start_of_training(n_hidden=24, rows=100):
  """A batch of the fake corpus and an RBM as a training starts it: biases
  from the unit means, W ~ N(0, 0.01), so p(h|v0) and p(h|vk) are close and
  the weight statistic is a small difference of two large products."""
  windows = fake_dataset.structured_windows(rows, seed=1).reshape(rows, -1)
  rbm = model_lib.RBM(V, n_hidden, windows.mean(0), seed=0)
  return rbm, tf.constant(windows, tf.float32)


@pytest.mark.parametrize("dtype", ["bfloat16", "float16"])
def test_16_bit_statistics_are_close_to_float32s(dtype):
  rbm, v0 = _start_of_training()
  f32 = rbm.cd_statistics(v0, 1, 0, 0, 0)
  low = rbm.cd_statistics(v0, 1, 0, 0, 0, compute_dtype=dtype)
  assert all(low[k].dtype == tf.float32 for k in low)
  np.testing.assert_array_equal(low["chain"], f32["chain"])  # same samples
  assert _rel(low["w"], f32["w"]) < STAT_RTOL
  assert _rel(low["hidden_bias"], f32["hidden_bias"]) < STAT_RTOL
  assert low["squared_error"].numpy() == pytest.approx(
      f32["squared_error"].numpy(), rel=1e-3)


def test_the_tolerance_catches_two_rounded_products_subtracted():
  rbm, v0 = _start_of_training()
  f32 = rbm.cd_statistics(v0, 1, 0, 0, 0)
  ph0, vk = rbm.hidden_probs(v0), f32["chain"]
  phk = rbm.hidden_probs(vk)
  bf16 = lambda x: tf.cast(x, tf.bfloat16)
  product = lambda a, b: tf.cast(
      tf.matmul(bf16(a), bf16(b), transpose_a=True), tf.float32)
  unfused = product(v0, ph0) - product(vk, phk)
  assert _rel(unfused, f32["w"]) > 2 * STAT_RTOL  # measured 0.032
  fused = model_lib._LowPrecisionMatmuls(rbm, "bfloat16").weight_statistic(  # pylint: disable=protected-access
      v0, ph0, vk, phk)
  assert _rel(fused, f32["w"]) < STAT_RTOL / 2  # measured 0.0053


@pytest.fixture(scope="module")
def dataset_dir(tmp_path_factory):
  d = str(tmp_path_factory.mktemp("data"))
  fake_dataset.write_dataset(
      d, fake_dataset.structured_windows(1200, seed=1),
      fake_dataset.structured_windows(300, seed=2))
  return d


def test_a_bfloat16_training_learns_as_float32(dataset_dir, tmp_path):
  eval_windows = fake_dataset.structured_windows(300, seed=2)
  loglik = {}
  for dtype in ("float32", "bfloat16"):
    config = config_lib.TrainConfig(
        num_hidden=8, learning_rate=0.1, batch_size=20, epochs=8,
        summary_every_steps=10_000, compute_dtype=dtype)
    job = str(tmp_path / dtype)
    train_lib.train_and_evaluate(config, dataset_dir, job,
                                 strategy=tf.distribute.MirroredStrategy(ONE))
    loglik[dtype] = heldout_loglik(os.path.join(job, "model"), eval_windows)
  # The untrained model is at about -25 nats a window, the data's entropy
  # 10.8 (test_train.py). Measured: float32 -13.02, bfloat16 -13.08 (another
  # run's noise, not the same bytes).
  assert loglik["float32"] > -15, loglik
  assert loglik["bfloat16"] != loglik["float32"]  # it did train in bfloat16
  assert abs(loglik["bfloat16"] - loglik["float32"]) < 0.3, loglik


# (op, dtype attribute values) that may lack a GPU kernel, and why.
GPU_ALLOWED = {
    # The in-memory windows are uint8 (one byte per unit) in host memory, and
    # GPUs register GatherV2 for no 8-bit type: soft placement (tf.function's
    # default) runs this gather on the host and copies the replica's [rows, V]
    # bytes to its GPU each step, a quarter of the float32 bytes the streamed
    # input (IteratorGetNext) copies. Not a correctness problem; if it shows
    # in a GPU profile, gather 4-byte words (bitcast to int32) instead.
    ("GatherV2", (("Taxis", "int32"), ("Tindices", "int32"),
                  ("Tparams", "uint8"))):
        "uint8 windows gathered on the host, as the input pipeline reads",
}


def _node_defs(concrete):
  """Every node of the function's graph and of the functions it calls (the
  while loop's cond and body, the ifs' branches)."""
  graph = concrete.graph
  for op in graph.get_operations():
    yield op.node_def
  for function in graph.as_graph_def().library.function:
    yield from function.node_def


def _dtype_attrs(node) -> tuple:
  return tuple((name, tf.as_dtype(value.type).name)
               for name, value in sorted(node.attr.items()) if value.type)


def _has_gpu_kernel(node) -> bool:
  """A kernel on GPU (or DEFAULT: any device) whose type constraints admit
  the node's dtype attributes."""
  for kernel in kernels.get_registered_kernels_for_op(node.op).kernel:
    if kernel.device_type not in ("GPU", "DEFAULT"):
      continue
    if all(set(node.attr[c.name].list.type or [node.attr[c.name].type]) <=
           set(c.allowed_values.list.type) for c in kernel.constraint):
      return True
  return False


def _without_gpu_kernel(concrete) -> collections.Counter:
  return collections.Counter((node.op, _dtype_attrs(node))
                             for node in _node_defs(concrete)
                             if not _has_gpu_kernel(node))


def _train_loop(dtype, persistent, in_memory):
  strategy = tf.distribute.MirroredStrategy(TWO)
  with strategy.scope():
    rbm = model_lib.RBM(V, 6)
  config = config_lib.TrainConfig(num_hidden=6, batch_size=8, cd_k=2,
                                  persistent=persistent, compute_dtype=dtype)
  windows = np.zeros((40, V), np.uint8) if in_memory else None
  trainer = rbm_training.CDTrainer(strategy, rbm, config, 8, V, windows)
  iterator = None
  if not in_memory:
    iterator = iter(strategy.experimental_distribute_dataset(
        tf.data.Dataset.from_tensors(tf.zeros([8, V])).repeat()))
  return trainer.train_loop.get_concrete_function(
      iterator, tf.TensorSpec([], tf.int32))


@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
@pytest.mark.parametrize("persistent", [False, True])
@pytest.mark.parametrize("in_memory", [True, False])
def test_every_op_of_the_training_step_has_a_gpu_kernel(dtype, persistent,
                                                         in_memory):
  concrete = _train_loop(dtype, persistent, in_memory)
  types = collections.Counter(node.op for node in _node_defs(concrete))
  # The walk reaches the loop's body: the noise, the matmuls, the
  # replicas' sum and (PCD) the chains' all-gather.
  assert types["While"] == 1
  assert types["StatelessRandomUniformFullIntV2"] >= 2 * 2 * 2  # replicas x k
  assert types["MatMul"] >= 2 * 5
  assert types["AddN"] >= 4  # w, biases, squared error over 2 replicas
  if persistent:
    assert types["CollectiveGatherV2"] >= 2
  matmul_types = {dict(_dtype_attrs(node))["T"]
                  for node in _node_defs(concrete) if node.op == "MatMul"}
  assert matmul_types == {dtype}
  missing = _without_gpu_kernel(concrete)
  assert set(missing) <= set(GPU_ALLOWED), missing
  # The allow-list is not stale: the in-memory path does gather uint8.
  assert bool(missing) == in_memory


def test_the_all_reduce_of_a_multi_worker_job_has_gpu_kernels():
  # Under MultiWorkerMirroredStrategy the statistics' sums are
  # CollectiveReduceV2 (MirroredStrategy sums them on the host with AddN);
  # the same all-reduce, issued from the replicas, for the step's float32.
  strategy = tf.distribute.MirroredStrategy(TWO)

  @tf.function
  def all_reduce():
    def replica():
      ctx = tf.distribute.get_replica_context()
      stat = tf.ones([V, 6]) * tf.cast(ctx.replica_id_in_sync_group,
                                       tf.float32)
      return ctx.all_reduce(tf.distribute.ReduceOp.SUM, stat)
    return strategy.run(replica)

  concrete = all_reduce.get_concrete_function()
  ops = {node.op for node in _node_defs(concrete)}
  assert "CollectiveReduceV2" in ops, ops
  assert not _without_gpu_kernel(concrete)


def test_the_kernel_check_catches_an_op_with_only_a_cpu_kernel():
  @tf.function
  def host_only(x, s):
    return tf.matmul(x, x), tf.strings.length(s)

  concrete = host_only.get_concrete_function(tf.TensorSpec([2, 2], tf.int32),
                                             tf.TensorSpec([], tf.string))
  # StringLength has no GPU kernel; MatMul has one, but not for int32.
  assert {op for op, _ in _without_gpu_kernel(concrete)} == {
      "StringLength", "MatMul"}


def test_an_unknown_compute_dtype_is_refused_in_one_line():
  with pytest.raises(ValueError, match=r"^--compute_dtype='int8'; use one of "
                     r"\('float32', 'bfloat16', 'float16'\)\.$"):
    config_lib.TrainConfig(compute_dtype="int8")
