"""Loopback ports for servers the tests start (emulator, TF_CONFIG workers),
and the worker processes of a MultiWorkerMirroredStrategy job."""

import contextlib
import json
import os
import socket
import subprocess
import tempfile


def free_ports(n: int) -> list:
  """n distinct ports free on 127.0.0.1 right now (all bound at once)."""
  socks = [socket.socket() for _ in range(n)]
  try:
    for s in socks:
      s.bind(("127.0.0.1", 0))
    return [s.getsockname()[1] for s in socks]
  finally:
    for s in socks:
      s.close()


def run_workers(argv: list, num_workers: int = 2, timeout: int = 300) -> list:
  """Runs `argv` as num_workers TF_CONFIG workers on loopback ports (index 0,
  the chief, first); returns each one's last stdout line as JSON.

  Every worker must exit 0 and say it trained on num_workers replicas. Their
  output goes to files, not pipes, so no worker can block on a pipe the test
  is not reading yet, and a failure shows every failed worker's log (the
  first to fail is often not the chief).
  """
  cluster = {"worker": [f"localhost:{p}" for p in free_ports(num_workers)]}
  outputs = []
  with contextlib.ExitStack() as files:
    procs = []
    for index in range(num_workers):
      env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", CUDA_VISIBLE_DEVICES="",
                 TF_CONFIG=json.dumps({"cluster": cluster, "task": {
                     "type": "worker", "index": index}}))
      out = files.enter_context(tempfile.TemporaryFile("w+"))
      err = files.enter_context(tempfile.TemporaryFile("w+"))
      procs.append((subprocess.Popen(argv, env=env, stdout=out, stderr=err,
                                     text=True), out, err))
    try:
      for proc, _, _ in procs:
        proc.wait(timeout=timeout)
    finally:
      for proc, _, _ in procs:
        if proc.poll() is None:
          proc.kill()
          proc.wait()
    for proc, out, err in procs:
      out.seek(0)
      err.seek(0)
      outputs.append((proc.returncode, out.read(), err.read()))
  failed = [f"worker {i} exited {code}:\n{err[-3000:]}"
            for i, (code, _, err) in enumerate(outputs) if code != 0]
  assert not failed, "\n".join(failed)
  results = []
  for _, out, err in outputs:
    assert f"on {num_workers} replica(s)" in err
    results.append(json.loads(out.splitlines()[-1]))
  return results
