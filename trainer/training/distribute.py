"""Builds the tf.distribute strategy: the one place that decides how we scale.

* TF_CONFIG naming more than one machine (Vertex AI sets it for multi-pool jobs):
  MultiWorkerMirroredStrategy, all-reduce across machines and their GPUs.
* Otherwise MirroredStrategy over every GPU of this machine; with no GPU, over
  the logical CPU devices (one, unless `use_logical_cpus` split the CPU, as the
  tests and benchmarks do to exercise the multi-replica path).
"""

import ctypes
import ctypes.util
import json
import os

import tensorflow as tf

# glibc mallopt parameters (malloc.h).
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3
# Tensors up to this size come from malloc's arenas, not fresh mmaps: glibc's
# largest allowed threshold on 64-bit, and more than any tensor of the trainer's
# step at the shapes we run (1024 x 2340 float32 is 9.6 MB).
_MMAP_THRESHOLD = 32 << 20


def cluster_size(tf_config: str | None = None) -> int:
  """Number of machines (chief + workers) named by TF_CONFIG; 1 when unset."""
  text = os.environ.get("TF_CONFIG", "") if tf_config is None else tf_config
  if not text:
    return 1
  try:
    cluster = json.loads(text).get("cluster", {})
  except (json.JSONDecodeError, AttributeError):
    raise ValueError(f"TF_CONFIG is not a JSON object: {text[:200]!r}") from None
  return sum(len(cluster.get(role, [])) for role in ("chief", "worker")) or 1


def use_logical_cpus(n: int) -> None:
  """Splits the host CPU into `n` logical devices. Call before TF starts."""
  cpus = tf.config.list_physical_devices("CPU")
  tf.config.set_logical_device_configuration(
      cpus[0], [tf.config.LogicalDeviceConfiguration()] * n)


def make_strategy(devices: list[str] | None = None) -> tf.distribute.Strategy:
  """The strategy for this process (see the module docstring).

  Args:
    devices: explicit device names for MirroredStrategy (tests); None: all GPUs,
      else all logical CPUs.
  """
  if devices is None and cluster_size() > 1:
    return tf.distribute.MultiWorkerMirroredStrategy()
  if devices is None:
    gpus = tf.config.list_logical_devices("GPU")
    devices = [d.name for d in (gpus or tf.config.list_logical_devices("CPU"))]
  return tf.distribute.MirroredStrategy(devices)


def unpin_malloc_mmap_threshold() -> bool:
  """Undoes TF's mallopt(M_MMAP_THRESHOLD, 128 KiB) (glibc only).

  TensorFlow on Python 3.11 sets that when it builds a generator dataset (a
  workaround for a from_generator leak, tensorflow#65675), and every iterator
  of `strategy.experimental_distribute_dataset` builds one inside. It also
  switches off glibc's dynamic threshold, so from then on every tensor over
  128 KiB is mmap'ed and unmapped per op: at the original post's shape about 2,300 page
  faults a step, which made the CD step 2-3x slower on 2 CPU cores. Call this
  after creating the distributed iterator. Tensors up to 32 MB then come from
  malloc's arenas again, which keep up to twice that free before trimming (as
  glibc's own dynamic rule would).

  Returns:
    True if applied; False where there is no glibc mallopt (e.g. macOS).
  """
  try:
    libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
    mallopt = libc.mallopt
  except (OSError, AttributeError):
    return False
  return bool(mallopt(_M_MMAP_THRESHOLD, _MMAP_THRESHOLD) and
              mallopt(_M_TRIM_THRESHOLD, 2 * _MMAP_THRESHOLD))
