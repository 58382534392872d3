"""Loopback ports for servers the tests start (emulator, TF_CONFIG workers)."""

import socket


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
