"""Where generated files go: a local folder or a gs:// prefix, behind one API.

Local writes are atomic (temp file + os.replace), so a crash never leaves a
truncated file under its final name. GCS writes use google-cloud-storage with
credentials from the environment (Application Default Credentials; never
logged), crc32c checksums verified by the client, and `if_generation_match=0`
creates: a retried or repeated upload can never replace an object silently.
Nothing here knows about music.
"""

import base64
import concurrent.futures
import contextlib
import os
import tempfile

import google_crc32c


def crc32c(data: bytes) -> str:
  """Base64 crc32c, the form GCS reports in object metadata."""
  return base64.b64encode(google_crc32c.Checksum(data).digest()).decode("ascii")


class ObjectExists(Exception):
  """A create found an object with different content at that name."""


def _umask() -> int:
  """The process's umask, read without changing it where Linux allows
  (setting it to read it back races with threads creating files)."""
  try:
    with open("/proc/self/status", encoding="ascii") as f:
      for line in f:
        if line.startswith("Umask:"):
          return int(line.split()[1], 8)
  except (OSError, ValueError):
    pass
  mask = os.umask(0o022)
  os.umask(mask)
  return mask


class LocalStorage:
  """A local folder."""

  def __init__(self, root: str):
    self.root = root
    os.makedirs(root, exist_ok=True)
    # mkstemp creates 0600 files; outputs get what open() would give.
    self._mode = 0o666 & ~_umask()

  def url(self, name: str) -> str:
    return os.path.join(self.root, name)

  def read(self, name: str) -> bytes | None:
    try:
      with open(self.url(name), "rb") as f:
        return f.read()
    except FileNotFoundError:
      return None

  def checksum(self, name: str) -> str | None:
    data = self.read(name)
    return None if data is None else crc32c(data)

  def list(self, prefix: str = "") -> list:
    directory = os.path.dirname(prefix)
    folder = os.path.join(self.root, directory)
    if not os.path.isdir(folder):
      return []
    names = []
    for dirpath, _, files in os.walk(folder):
      for f in files:
        rel = os.path.relpath(os.path.join(dirpath, f), self.root)
        if rel.startswith(prefix) and not f.startswith(".tmp-"):
          names.append(rel)
    return sorted(names)

  def write(self, name: str, data: bytes, create_only: bool = True) -> None:
    """Atomic write. create_only: an existing file must already hold `data`."""
    path = self.url(name)
    if create_only and os.path.exists(path):
      if self.checksum(name) != crc32c(data):
        raise ObjectExists(path)
      return
    fd, tmp = self._temp_file(path)
    try:
      os.fchmod(fd, self._mode)
      with os.fdopen(fd, "wb") as f:
        f.write(data)
      os.replace(tmp, path)
    except BaseException:
      if os.path.exists(tmp):
        os.remove(tmp)
      raise

  @staticmethod
  def _temp_file(path: str, attempts: int = 10):
    """A temp file beside `path`, its folders made as needed.

    Shards of one job share folders (`_progress/`), and a shard that
    finishes removes the folders it leaves empty: between our makedirs and
    our mkstemp another shard can remove a parent. A folder holding our temp
    file is never empty, so making them again settles it.
    """
    folder = os.path.dirname(path)
    failures = 0
    while True:
      try:
        os.makedirs(folder, exist_ok=True)
        return tempfile.mkstemp(prefix=f".tmp-{os.path.basename(path)}.",
                                dir=folder)
      except FileNotFoundError:
        failures += 1
        if failures == attempts:
          raise

  def write_many(self, items: list, create_only: bool = True) -> None:
    for name, data in items:
      self.write(name, data, create_only)

  def discard_partial(self, names) -> None:
    """Deletes temp files a killed run left for these (top-level) names."""
    wanted = set(names)
    for f in os.listdir(self.root):
      if f.startswith(".tmp-") and f[5:].rsplit(".", 1)[0] in wanted:
        os.remove(os.path.join(self.root, f))

  def delete(self, names: list) -> None:
    for name in names:
      with contextlib.suppress(FileNotFoundError):
        os.remove(self.url(name))
      # Remove folders left empty (GCS has none to leave behind).
      folder = os.path.dirname(self.url(name))
      while os.path.abspath(folder) != os.path.abspath(self.root):
        try:
          os.rmdir(folder)
        except OSError:
          break
        folder = os.path.dirname(folder)


class GCSStorage:
  """A gs://bucket/prefix, through google-cloud-storage."""

  def __init__(self, url: str, threads: int = 32):
    from google.cloud import storage  # pylint: disable=g-import-not-at-top
    bucket, _, prefix = url[len("gs://"):].partition("/")
    if not bucket:
      raise ValueError(f"{url!r} names no bucket; use gs://BUCKET/PREFIX.")
    self._base = url.rstrip("/")
    self._prefix = prefix.strip("/")
    client = storage.Client()
    # One pooled connection per upload thread (requests keeps 10 by default
    # and would open, then discard, a new connection for every extra one).
    import requests  # pylint: disable=g-import-not-at-top
    adapter = requests.adapters.HTTPAdapter(pool_connections=threads,
                                            pool_maxsize=threads)
    client._http.mount("https://", adapter)  # pylint: disable=protected-access
    client._http.mount("http://", adapter)  # pylint: disable=protected-access
    self._bucket = client.bucket(bucket)
    self._threads = threads

  def _key(self, name: str) -> str:
    return f"{self._prefix}/{name}" if self._prefix else name

  def url(self, name: str) -> str:
    return f"{self._base}/{name}"

  def read(self, name: str) -> bytes | None:
    from google.api_core import exceptions  # pylint: disable=g-import-not-at-top
    try:
      return self._bucket.blob(self._key(name)).download_as_bytes(
          checksum="crc32c")
    except exceptions.NotFound:
      return None

  def checksum(self, name: str) -> str | None:
    blob = self._bucket.get_blob(self._key(name))
    if blob is None:
      return None
    return blob.crc32c or crc32c(self.read(name))

  def list(self, prefix: str = "") -> list:
    start = len(self._prefix) + 1 if self._prefix else 0
    return sorted(b.name[start:] for b in self._bucket.list_blobs(
        prefix=self._key(prefix)))

  def write(self, name: str, data: bytes, create_only: bool = True) -> None:
    from google.api_core import exceptions  # pylint: disable=g-import-not-at-top
    blob = self._bucket.blob(self._key(name))
    try:
      # Uploads with a generation precondition are retried by the client on
      # transient errors; checksum="crc32c" has the upload verified.
      blob.upload_from_string(
          data, checksum="crc32c",
          **({"if_generation_match": 0} if create_only else {}))
    except exceptions.PreconditionFailed:
      if self.checksum(name) != crc32c(data):
        raise ObjectExists(self.url(name)) from None

  def discard_partial(self, names) -> None:
    del names  # an upload is atomic: an object is whole or absent

  def write_many(self, items: list, create_only: bool = True) -> None:
    with concurrent.futures.ThreadPoolExecutor(self._threads) as pool:
      for f in [pool.submit(self.write, n, d, create_only) for n, d in items]:
        f.result()

  def delete(self, names: list) -> None:
    from google.api_core import exceptions  # pylint: disable=g-import-not-at-top
    for name in names:
      with contextlib.suppress(exceptions.NotFound):
        self._bucket.blob(self._key(name)).delete()


def open_storage(url: str):
  """LocalStorage for a path, GCSStorage for gs://; other schemes refused."""
  if url.startswith("gs://"):
    return GCSStorage(url)
  if "://" in url:
    raise ValueError(f"--output={url!r}: only local paths and gs:// are "
                     "supported.")
  return LocalStorage(url)
