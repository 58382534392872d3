"""Test-wide setup: two logical CPU devices, so MirroredStrategy has 2 replicas.

This must run before TensorFlow initialises its runtime, hence at import time.
"""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
# As every CLI starts: TensorFlow without Keras (common/cli.py SKIP_KERAS).
# Subprocesses the tests start inherit it.
from common import cli  # pylint: disable=g-import-not-at-top

os.environ.setdefault(*cli.SKIP_KERAS)

import tensorflow as tf  # pylint: disable=g-import-not-at-top

from trainer.training import distribute  # pylint: disable=g-import-not-at-top

distribute.use_logical_cpus(2)
assert len(tf.config.list_logical_devices("CPU")) == 2

import pytest  # pylint: disable=g-import-not-at-top,g-bad-import-order

from tests import gcs_emulator  # pylint: disable=g-import-not-at-top


@pytest.fixture(scope="session")
def gcs_emulator_host():
  with gcs_emulator.running_emulator() as host:
    yield host


@pytest.fixture
def gcs_bucket(gcs_emulator_host, monkeypatch):  # pylint: disable=redefined-outer-name
  """A fresh bucket on the local emulator; Beam and google-cloud-storage use it."""
  monkeypatch.setenv("STORAGE_EMULATOR_HOST", gcs_emulator_host)
  monkeypatch.setenv("GOOGLE_CLOUD_PROJECT", "test-project")
  gcs_emulator.no_beam_credentials(monkeypatch)
  return gcs_emulator.new_bucket()


def pytest_configure(config):
  # `make test` runs everything; `pytest -m "not slow"` is a quick pass while
  # editing (slow: starts subprocesses, each paying TensorFlow's start-up).
  config.addinivalue_line(
      "markers", "slow: starts subprocesses (CLIs, workers); still run by "
      "`make test`")
