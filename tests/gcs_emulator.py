"""A real GCS protocol offline: gcp-storage-emulator in this process, on loopback.

Use the `gcs_bucket` fixture (tests/conftest.py): it starts the emulator, points
google-cloud-storage and Beam's gcsio at it (STORAGE_EMULATOR_HOST), and yields
a fresh bucket name. TensorFlow's own gs:// support cannot be pointed at an
emulator, so tests keep TF's reads and writes local (see ENGINEERING_NOTES).
"""

import contextlib
import os
import socket
import uuid

from gcp_storage_emulator import server as emulator_server


def _free_port() -> int:
  with socket.socket() as s:
    s.bind(("127.0.0.1", 0))
    return s.getsockname()[1]


@contextlib.contextmanager
def running_emulator():
  """Starts an in-memory emulator; yields its http://host:port."""
  port = _free_port()
  srv = emulator_server.create_server("127.0.0.1", port, in_memory=True)
  srv.start()
  host = f"http://127.0.0.1:{port}"
  saved = {k: os.environ.get(k) for k in
           ("STORAGE_EMULATOR_HOST", "GOOGLE_CLOUD_PROJECT")}
  os.environ["STORAGE_EMULATOR_HOST"] = host
  os.environ["GOOGLE_CLOUD_PROJECT"] = "test-project"
  try:
    yield host
  finally:
    for k, v in saved.items():
      if v is None:
        os.environ.pop(k, None)
      else:
        os.environ[k] = v
    srv.stop()


def new_bucket() -> str:
  from google.cloud import storage  # pylint: disable=g-import-not-at-top
  name = f"test-{uuid.uuid4().hex[:12]}"
  storage.Client().create_bucket(name)
  return name


def no_beam_credentials(monkeypatch) -> None:
  """Beam's first GCS access otherwise stalls 20-40 s looking for credentials."""
  from apache_beam.internal.gcp import auth  # pylint: disable=g-import-not-at-top
  monkeypatch.setattr(auth, "get_service_credentials", lambda *a, **k: None)
