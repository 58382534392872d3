"""Builds the tf.distribute strategy: the one place that decides how we scale.

* TF_CONFIG naming more than one machine (Vertex AI sets it for multi-pool jobs):
  MultiWorkerMirroredStrategy, all-reduce across machines and their GPUs.
* Otherwise MirroredStrategy over every GPU of this machine; with no GPU, over
  the logical CPU devices (one, unless `use_logical_cpus` split the CPU, as the
  tests and benchmarks do to exercise the multi-replica path).
"""

import json
import os

import tensorflow as tf


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
