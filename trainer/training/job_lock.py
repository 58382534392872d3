"""One trainer.task run per job folder.

Two runs writing one checkpoint folder interleave their checkpoints (a later
resume continues from the mix) and overwrite each other's run_config.json and
model/. The first run takes a lock in the checkpoint folder; a second one stops
with a `cli.JobError` naming the folder and the run that holds it.

- Local disk: `fcntl.flock` on CHECKPOINT_DIR/trainer.lock. The kernel
  releases it when the process ends in any way, SIGKILL included, so a rerun
  after a crash or `kill -9` takes it again (resume keeps working). The file
  stays (deleting it would race with a process that has just opened it); it
  only says who held it last.
- gs://: an object CHECKPOINT_DIR/trainer.lock created with
  `if_generation_match=0`, so exactly one of two racing runs creates it. A
  thread rewrites it every HEARTBEAT_S (generation-matched, so a run that lost
  the lock notices). A process killed without cleaning up (SIGKILL, a
  preempted VM) leaves it behind: it is *stale* once not rewritten for
  STALE_S, and the next run then takes it over (again generation-matched: one
  winner); a Vertex AI job restarted after preemption (same CLOUD_ML_JOB_ID)
  takes its own lock over at once. Until then the error names it; clear it sooner, once sure the
  other run is gone, with `gcloud storage rm CHECKPOINT_DIR/trainer.lock`.
  The GCS emulator ignores preconditions, so the tests drive this logic with
  a fake bucket (tests/test_trainer_reliability.py).

This module must not import TensorFlow.
"""

import contextlib
import datetime
import json
import os
import socket
import threading
import time

from common import cli

LOCK_NAME = "trainer.lock"
HEARTBEAT_S = 60.0
STALE_S = 600.0  # 10 missed heartbeats


class JobLocked(cli.JobError):
  """Another run holds the job folder's lock."""


# Set by Vertex AI (and AI Platform) training to the job's id; a preempted
# job restarted by Vertex AI keeps it (not checked on a real job here).
JOB_ID_ENV = "CLOUD_ML_JOB_ID"


def _owner() -> dict:
  return {"host": socket.gethostname(), "pid": os.getpid(),
          "job": os.environ.get(JOB_ID_ENV, ""),
          "started": datetime.datetime.now(datetime.timezone.utc).isoformat(
              timespec="seconds")}


def _same_cloud_job(raw) -> bool:
  """The lock was left by this very cloud job (restarted after preemption)."""
  try:
    job = json.loads(raw).get("job")
  except (TypeError, ValueError, AttributeError):
    return False
  return bool(job) and job == os.environ.get(JOB_ID_ENV)


def _describe(raw: bytes | str | None) -> str:
  try:
    o = json.loads(raw)
    return f"pid {o['pid']} on {o['host']}, started {o['started']}"
  except (TypeError, ValueError, KeyError):
    return "a run that left no details"


def _locked_error(folder: str, holder: str, fix: str) -> JobLocked:
  return JobLocked(f"{folder} is in use by another trainer.task run ({holder});"
                   f" wait for it to end or use another --job_dir{fix}.")


class LocalLock:
  """fcntl.flock on FOLDER/trainer.lock, held until `release`."""

  def __init__(self, folder: str, shown: str):
    import fcntl  # pylint: disable=g-import-not-at-top
    os.makedirs(folder, exist_ok=True)
    path = os.path.join(folder, LOCK_NAME)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
    try:
      fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
      holder = _describe(os.pread(fd, 4096, 0))
      os.close(fd)
      raise _locked_error(shown, holder, "") from None
    os.ftruncate(fd, 0)
    os.pwrite(fd, json.dumps(_owner()).encode(), 0)
    self._fd = fd

  def release(self) -> None:
    if self._fd is not None:
      os.close(self._fd)  # closing the last descriptor releases the flock
      self._fd = None


class GCSLock:
  """A generation-matched lock object, kept fresh by a heartbeat thread.

  `bucket` is a google.cloud.storage Bucket (or a test double with the same
  blob API: upload_from_string, reload, download_as_bytes, delete,
  .generation, .updated).
  """

  def __init__(self, bucket, key: str, shown: str, clock=time.time,
               heartbeat_s: float = HEARTBEAT_S):
    from google.api_core import exceptions  # pylint: disable=g-import-not-at-top
    self._exceptions = exceptions
    self._bucket, self._key, self.lost = bucket, key, False
    self._body = json.dumps(_owner())
    blob = bucket.blob(key)
    try:
      blob.upload_from_string(self._body, if_generation_match=0)
    except exceptions.PreconditionFailed:
      blob = self._take_over_if_stale(shown, clock)
    self.generation = blob.generation
    self._stop = threading.Event()
    self._thread = threading.Thread(target=self._beat, args=(heartbeat_s,),
                                    daemon=True)
    self._thread.start()

  def _take_over_if_stale(self, shown, clock):
    blob = self._bucket.blob(self._key)
    try:
      blob.reload()
      raw = blob.download_as_bytes()
    except self._exceptions.NotFound:  # released meanwhile: try once more
      blob.upload_from_string(self._body, if_generation_match=0)
      return blob
    holder = _describe(raw)
    age = clock() - blob.updated.timestamp()
    if age < STALE_S and not _same_cloud_job(raw):
      raise _locked_error(
          shown, holder, f" (a lock of a run that was killed expires "
          f"{STALE_S - age:.0f} s from now, or remove "
          f"{shown.rstrip('/')}/{LOCK_NAME} once sure it is gone)")
    stale_generation = blob.generation
    try:
      blob.upload_from_string(self._body,
                              if_generation_match=stale_generation)
    except self._exceptions.PreconditionFailed:
      raise _locked_error(shown, "one that took over a stale lock just now",
                          "") from None
    return blob

  def _beat(self, every):
    while not self._stop.wait(every):
      blob = self._bucket.blob(self._key)
      try:
        blob.upload_from_string(self._body,
                                if_generation_match=self.generation)
        self.generation = blob.generation
      except self._exceptions.PreconditionFailed:
        self.lost = True  # taken over after we looked stale: stop refreshing
        return
      except Exception:  # pylint: disable=broad-except
        pass  # transient: the next beat retries; staleness needs 10 misses

  def release(self) -> None:
    self._stop.set()
    self._thread.join()
    if self.lost:
      return
    # Gone or not ours any more: leave it to its owner.
    with contextlib.suppress(self._exceptions.NotFound,
                             self._exceptions.PreconditionFailed):
      self._bucket.blob(self._key).delete(if_generation_match=self.generation)


def acquire(checkpoint_dir: str, shown: str | None = None):
  """Locks CHECKPOINT_DIR for this run; call `.release()` when done.

  Args:
    checkpoint_dir: the run's checkpoint folder (local or gs://).
    shown: how to name it in errors (the --job_dir when given).

  Raises:
    JobLocked: another run holds it.
  """
  shown = shown or checkpoint_dir
  if checkpoint_dir.startswith("gs://"):
    from google.cloud import storage  # pylint: disable=g-import-not-at-top
    bucket, _, prefix = checkpoint_dir[len("gs://"):].partition("/")
    key = f"{prefix.strip('/')}/{LOCK_NAME}" if prefix.strip("/") else LOCK_NAME
    return GCSLock(storage.Client().bucket(bucket), key, shown)
  return LocalLock(checkpoint_dir, shown)
