"""SIGTERM (a preempted VM) and SIGINT (Ctrl-C) during training and
generation: the current state is saved, one line says so, a rerun resumes
and ends with the bytes of an uninterrupted run."""

import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from tests import fake_dataset
from tests import net

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture(scope="module")
def dataset_dir(tmp_path_factory):
  d = str(tmp_path_factory.mktemp("data"))
  fake_dataset.write_dataset(d, fake_dataset.structured_windows(400, seed=1),
                             fake_dataset.structured_windows(100, seed=2))
  return d


def _env():
  return dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", CUDA_VISIBLE_DEVICES="")


def _task(data_dir, job_dir):
  return [sys.executable, "-m", "trainer.task", f"--data_dir={data_dir}",
          f"--job_dir={job_dir}", "--num_hidden=8", "--batch_size=10",
          "--max_steps=3000", "--log_every_steps=100",
          "--steps_per_checkpoint=100000", "--summary_every_steps=100000"]


def _run_until(args, marker: str, timeout=120):
  """Starts `args` and returns it once `marker` appears in its stderr."""
  proc = subprocess.Popen(args, cwd=ROOT, env=_env(), stderr=subprocess.PIPE,
                          stdout=subprocess.PIPE, text=True)
  deadline, seen = time.monotonic() + timeout, []
  while time.monotonic() < deadline:
    line = proc.stderr.readline()
    seen.append(line)
    if marker in line:
      return proc, seen
    if not line and proc.poll() is not None:
      break
  proc.kill()
  raise AssertionError(f"{marker!r} never appeared: {''.join(seen)[-2000:]}")


@pytest.fixture(scope="module")
def straight(dataset_dir, tmp_path_factory):
  """The uninterrupted run's parameters."""
  job = str(tmp_path_factory.mktemp("straight") / "job")
  subprocess.run(_task(dataset_dir, job), cwd=ROOT, env=_env(),
                 capture_output=True, check=True, timeout=300)
  return _params(job)


def _params(job):
  with np.load(os.path.join(job, "model", "params.npz")) as npz:
    return {k: npz[k] for k in npz.files}


@pytest.mark.slow
@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_a_signal_saves_the_current_step_and_a_rerun_ends_identical(
    dataset_dir, straight, tmp_path, signum):
  job = str(tmp_path / "job")
  # Two progress lines: the loop is in its steps, well before the end.
  proc, _ = _run_until(_task(dataset_dir, job), "step 200/3000")
  proc.send_signal(signum)
  out, err = proc.communicate(timeout=60)
  lines = [line for line in err.strip().splitlines() if line.startswith("trainer.")]
  assert proc.returncode == 1, err[-2000:]
  assert len(lines) == 1 and f"stopped by {signal.Signals(signum).name}" in (
      lines[0]) and "rerun the same command to resume" in lines[0], err[-2000:]
  assert "Traceback" not in err and not out.strip()
  saved = [n for n in os.listdir(os.path.join(job, "checkpoints"))
           if n.startswith("ckpt-") and n.endswith(".index")]
  step = int(saved[0][len("ckpt-"):-len(".index")])
  assert len(saved) == 1 and 200 <= step < 3000  # the step it stopped at
  assert not os.path.exists(os.path.join(job, "model"))

  done = subprocess.run(_task(dataset_dir, job), cwd=ROOT, env=_env(),
                        capture_output=True, text=True, timeout=300)
  assert done.returncode == 0, done.stderr[-2000:]
  assert "resumed from" in done.stderr and f"at step {step}" in done.stderr
  resumed = _params(job)
  assert sorted(resumed) == sorted(straight)
  for key in resumed:
    np.testing.assert_array_equal(resumed[key], straight[key])


@pytest.fixture(scope="module")
def model_dir(dataset_dir, tmp_path_factory):
  job = str(tmp_path_factory.mktemp("model") / "job")
  args = _task(dataset_dir, job)
  args[args.index("--max_steps=3000")] = "--max_steps=20"
  subprocess.run(args, cwd=ROOT, env=_env(), capture_output=True, check=True,
                 timeout=300)
  return os.path.join(job, "model")


def _generate(model_dir, output, *flags):
  return [sys.executable, "-m", "trainer.generate", f"--model_dir={model_dir}",
          f"--output={output}", "--num_samples=1500", "--gibbs_steps=20",
          *flags]


@pytest.mark.slow
def test_sigterm_in_generation_keeps_whole_recorded_files_and_resumes(
    model_dir, tmp_path):
  out = str(tmp_path / "samples")
  # blocks_per_call is 2 blocks of 128: after the first call's log line.
  proc, _ = _run_until(_generate(model_dir, out), "shard 0: 256/1500")
  proc.send_signal(signal.SIGTERM)
  _, err = proc.communicate(timeout=120)
  lines = [line for line in err.strip().splitlines() if line.startswith("trainer.")]
  assert proc.returncode == 1 and len(lines) == 1, err[-2000:]
  assert "stopped by SIGTERM" in lines[0] and "rerun" in lines[0]
  written = sorted(n for n in os.listdir(out) if n.startswith("sample-"))
  assert 256 <= len(written) < 1500 and len(written) % 128 == 0
  assert not [n for n in os.listdir(out) if ".tmp" in n or n.startswith(".")]
  done = subprocess.run(_generate(model_dir, out), cwd=ROOT, env=_env(),
                        capture_output=True, text=True, timeout=300)
  assert done.returncode == 0, done.stderr[-2000:]
  assert f'"already_present": {len(written)}' in done.stdout
  straight = str(tmp_path / "straight")
  subprocess.run(_generate(model_dir, straight), cwd=ROOT, env=_env(),
                 capture_output=True, check=True, timeout=300)
  names = sorted(n for n in os.listdir(straight) if n.startswith("sample-"))
  assert sorted(n for n in os.listdir(out) if n.startswith("sample-")) == names
  for name in names:
    with open(os.path.join(out, name), "rb") as a, open(
        os.path.join(straight, name), "rb") as b:
      assert a.read() == b.read(), name


def _worker_env(cluster: dict, index: int) -> dict:
  return dict(_env(), TF_CONFIG=json.dumps(
      {"cluster": cluster, "task": {"type": "worker", "index": index}}))


@pytest.mark.slow
def test_sigterm_to_one_worker_stops_every_worker_at_one_saved_step(
    dataset_dir, tmp_path):
  """A preempted non-chief VM: both workers stop at the same step (the chief
  hears of it through the per-call all-reduce), the chief saves that step,
  and rerunning both workers ends with the bytes of an uninterrupted
  two-worker run."""
  def task(job):
    args = _task(dataset_dir, job)
    args[args.index("--max_steps=3000")] = "--max_steps=800"
    args[args.index("--log_every_steps=100")] = "--log_every_steps=50"
    return args

  def run_both(job, stop_at=None):
    cluster = {"worker": [f"localhost:{p}" for p in net.free_ports(2)]}
    worker = subprocess.Popen(task(job), cwd=ROOT, env=_worker_env(cluster, 1),
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True)
    chief = subprocess.Popen(task(job), cwd=ROOT, env=_worker_env(cluster, 0),
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                             text=True)
    try:
      if stop_at:
        seen = []
        for line in chief.stderr:
          seen.append(line)
          if stop_at in line:
            break
        else:
          raise AssertionError(f"{stop_at!r} never logged: {seen[-20:]}")
        worker.send_signal(signal.SIGTERM)
      return [(p.wait(timeout=240), *p.communicate(timeout=60))
              for p in (chief, worker)]
    finally:
      for p in (chief, worker):
        if p.poll() is None:
          p.kill()

  straight = str(tmp_path / "straight")
  assert [code for code, _, _ in run_both(straight)] == [0, 0]
  job = str(tmp_path / "job")
  (chief_code, _, chief_err), (worker_code, _, worker_err) = run_both(
      job, stop_at="step 100/800")
  said = [[line for line in err.splitlines() if line.startswith("trainer.")]
          for err in (chief_err, worker_err)]
  assert chief_code == worker_code == 1, chief_err[-2000:] + worker_err[-2000:]
  assert len(said[0]) == len(said[1]) == 1, said
  assert "stopped by another worker at step" in said[0][0]
  assert "stopped by SIGTERM at step" in said[1][0]
  step = said[0][0].split(" at step ")[1].split("/")[0]
  assert f"at step {step}/800" in said[1][0]
  saved = [n for n in os.listdir(os.path.join(job, "checkpoints"))
           if n.startswith("ckpt-") and n.endswith(".index")]
  assert saved == [f"ckpt-{step}.index"] and 100 <= int(step) < 800
  assert [code for code, _, _ in run_both(job)] == [0, 0]
  resumed, whole = _params(job), _params(straight)
  assert sorted(resumed) == sorted(whole)
  for key in whole:
    np.testing.assert_array_equal(resumed[key], whole[key])
