"""Loopback ports for servers the tests start (emulator, TF_CONFIG workers),
and the worker processes of a MultiWorkerMirroredStrategy job."""

import json
import os
import socket
import subprocess


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

  Every worker must exit 0 and say it trained on num_workers replicas.
  """
  cluster = {"worker": [f"localhost:{p}" for p in free_ports(num_workers)]}
  procs = []
  for index in range(num_workers):
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", CUDA_VISIBLE_DEVICES="",
               TF_CONFIG=json.dumps({"cluster": cluster, "task": {
                   "type": "worker", "index": index}}))
    procs.append(subprocess.Popen(argv, env=env, stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE, text=True))
  results = []
  for proc in procs:
    out, err = proc.communicate(timeout=timeout)
    assert proc.returncode == 0, err[-3000:]
    assert f"on {num_workers} replica(s)" in err
    results.append(json.loads(out.splitlines()[-1]))
  return results
