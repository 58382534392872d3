"""A real GCS protocol offline: gcp-storage-emulator in this process, on loopback.

Use the `gcs_bucket` fixture (tests/conftest.py): it starts the emulator, points
google-cloud-storage and Beam's gcsio at it (STORAGE_EMULATOR_HOST), and yields
a fresh bucket name. TensorFlow's own gs:// support cannot be pointed at an
emulator, so tests keep TF's reads and writes local (see ENGINEERING_NOTES).
"""

import contextlib
import logging
import os
import signal
import socket
import subprocess
import sys
import time
import uuid

from gcp_storage_emulator import server as emulator_server

from tests import net


def _start_server(port: int):
  # The emulator serves from one thread with http.server's listen backlog of
  # 5: more concurrent uploads than that overflow it and wait for TCP's 1 s
  # SYN retransmit (32 upload threads: 63 samples/s instead of 280).
  emulator_server.server.HTTPServer.request_queue_size = 256
  srv = emulator_server.create_server("127.0.0.1", port, in_memory=True)
  # The emulator re-serialises the metadata of every object on every write
  # (a `.meta` file it reads back only at start-up), so writes slow down
  # linearly with the objects stored: 58 -> 5 objects/s over 2,000 uploads.
  # In memory that file is never read back; skipping it keeps writes O(1).
  srv._storage._write_config_to_file = lambda: None  # pylint: disable=protected-access
  srv.start()
  return srv


@contextlib.contextmanager
def _server_process(port: int):
  proc = subprocess.Popen([sys.executable, "-m", "tests.gcs_emulator",
                           str(port)], cwd=os.path.dirname(
                               os.path.dirname(os.path.abspath(__file__))))
  try:
    deadline = time.time() + 30
    while True:
      try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
        break
      except OSError:
        if proc.poll() is not None or time.time() > deadline:
          raise RuntimeError("the GCS emulator process did not start") from None
        time.sleep(0.1)
    yield
  finally:
    proc.send_signal(signal.SIGTERM)
    proc.wait(timeout=30)


@contextlib.contextmanager
def running_emulator(own_process: bool = False):
  """Starts an in-memory emulator; yields its http://host:port.

  own_process: serve from a child process rather than a thread of this one
  (benchmarks: the server is pure Python and would share this one's GIL).
  """
  port = net.free_ports(1)[0]
  host = f"http://127.0.0.1:{port}"
  saved = {k: os.environ.get(k) for k in
           ("STORAGE_EMULATOR_HOST", "GOOGLE_CLOUD_PROJECT")}
  with contextlib.ExitStack() as stack:
    if own_process:
      stack.enter_context(_server_process(port))
    else:
      stack.callback(_start_server(port).stop)
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


def new_bucket() -> str:
  from google.cloud import storage  # pylint: disable=g-import-not-at-top
  name = f"test-{uuid.uuid4().hex[:12]}"
  storage.Client().create_bucket(name)
  return name


def no_beam_credentials(monkeypatch) -> None:
  """Beam's first GCS access otherwise stalls 20-40 s looking for credentials."""
  from apache_beam.internal.gcp import auth  # pylint: disable=g-import-not-at-top
  monkeypatch.setattr(auth, "get_service_credentials", lambda *a, **k: None)


if __name__ == "__main__":  # python -m tests.gcs_emulator PORT
  # Its "Resource not found" errors answer our existence checks (a resumable
  # job asks for its manifest first): normal traffic, not failures.
  logging.getLogger("gcp_storage_emulator").setLevel(logging.CRITICAL)
  signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM, signal.SIGINT})
  _server = _start_server(int(sys.argv[1]))
  signal.sigwait({signal.SIGTERM, signal.SIGINT})
  _server.stop()
