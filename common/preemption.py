"""SIGTERM and SIGINT as a request to stop at the next safe point.

A preempted or stopped cloud VM sends SIGTERM and kills the process about 30
seconds later; Ctrl-C sends SIGINT. A job that holds `StopSignals` keeps
running until it reaches a point where its state is whole (a training step
boundary, a finished block of samples), saves, and raises `Stopped`: one line,
exit 1, and a rerun resumes. A second signal acts as it would without this
(the handlers are restored after the first). Outside the main thread, or
with no signal, nothing changes.
"""

import signal
import threading

from common import cli

_SIGNALS = (signal.SIGTERM, signal.SIGINT)


class Stopped(cli.JobError):
  """The job stopped on a signal after saving its progress."""


class StopSignals:
  """Context manager: `requested` names the first signal received, or None."""

  def __init__(self):
    self.requested = None
    self._previous = {}

  def _handle(self, signum, frame):
    del frame
    self.requested = signal.Signals(signum).name
    self._restore()  # a second signal acts at once

  def _restore(self):
    for signum, handler in self._previous.items():
      signal.signal(signum, handler)
    self._previous = {}

  def __enter__(self) -> "StopSignals":
    if threading.current_thread() is threading.main_thread():
      for signum in _SIGNALS:
        self._previous[signum] = signal.signal(signum, self._handle)
    return self

  def __exit__(self, *exc):
    self._restore()
    return False
