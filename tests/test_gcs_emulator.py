"""The emulator fixture itself: google-cloud-storage and Beam both reach it."""

import socket

from apache_beam.io.filesystems import FileSystems
from google.cloud import storage
import pytest

from tests import gcs_emulator


def test_storage_client_and_beam_filesystems_share_the_emulator(gcs_bucket):
  storage.Client().bucket(gcs_bucket).blob("a/x.txt").upload_from_string(b"hi")
  path = f"gs://{gcs_bucket}/a/x.txt"
  with FileSystems.open(path) as f:
    assert f.read() == b"hi"
  with FileSystems.create(f"gs://{gcs_bucket}/a/y.txt") as f:
    f.write(b"there")
  names = sorted(m.path for m in
                 FileSystems.match([f"gs://{gcs_bucket}/a/*"])[0].metadata_list)
  assert names == [path, f"gs://{gcs_bucket}/a/y.txt"]
  assert storage.Client().bucket(gcs_bucket).blob("a/y.txt").download_as_bytes() == b"there"


def test_emulator_in_its_own_process_serves_and_stops():
  with gcs_emulator.running_emulator(own_process=True) as host:
    bucket = gcs_emulator.new_bucket()
    blob = storage.Client().bucket(bucket).blob("k")
    blob.upload_from_string(b"v")
    assert blob.download_as_bytes() == b"v"
  port = int(host.rsplit(":", 1)[1])
  with pytest.raises(OSError):  # the child process is gone
    socket.create_connection(("127.0.0.1", port), timeout=2).close()
