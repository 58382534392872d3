"""Issue 11, training, evaluation and generation: no user mistake or fault
loses data, leaves a broken state or ends with exit 0 on a wrong result.

Each test names the case of the issue it covers and what the code before
this change did (checked by running it).
"""

import datetime
import glob
import json
import os
import pathlib
import re
import shutil
import subprocess
import sys
import time

from absl import logging
import numpy as np
import pytest
import tensorflow as tf

from common import cli
from tests import fake_dataset
from trainer import config as config_lib
from trainer.models import files as export
from trainer.training import job_lock
from trainer.training import loop as train_lib
from trainer.models.rbm import training as rbm_training

ONE = ["/cpu:0"]
N_TRAIN = 400


@pytest.fixture(scope="module")
def dataset_dir(tmp_path_factory):
  d = str(tmp_path_factory.mktemp("data"))
  fake_dataset.write_dataset(
      d, fake_dataset.structured_windows(N_TRAIN, seed=1),
      fake_dataset.structured_windows(100, seed=2))
  return d


def _config(**overrides):
  return config_lib.TrainConfig(**{
      "num_hidden": 8, "batch_size": 40, "learning_rate": 0.05,
      # No weight decay: case 3's run must diverge in its free energy while
      # its updates stay finite (decay would make the update itself inf).
      "momentum": True, "weight_decay": 0.0, "steps_per_checkpoint": 25, "log_every_steps": 25,
      "summary_every_steps": 10_000, **overrides})


def _train(dataset_dir, job, **overrides):
  return train_lib.train_and_evaluate(
      _config(**overrides), dataset_dir, job,
      strategy=tf.distribute.MirroredStrategy(ONE))


def _env():
  return dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", CUDA_VISIBLE_DEVICES="")


# TensorFlow's C++ runtime logs a few lines when it loads, whatever
# TF_CPP_MIN_LOG_LEVEL says ("All log messages before absl::InitializeLog()",
# "I0000 ... cuda drivers"); they are not the CLI's output.
_TF_NOISE = re.compile(r"^(WARNING: All log messages before absl|[IWE]\d{4} )")


def _error_lines(stderr: str) -> list:
  return [line for line in stderr.strip().splitlines()
          if not _TF_NOISE.match(line)]


# --- case 2: one writer per job folder. ----------------------------------------


def test_a_second_run_on_a_locked_job_dir_stops_and_writes_nothing(
    dataset_dir, tmp_path):
  # Before: both runs trained, saved checkpoints into one folder and exited 0.
  job = str(tmp_path / "job")
  other = job_lock.acquire(os.path.join(job, "checkpoints"), job)
  try:
    with pytest.raises(job_lock.JobLocked,
                       match=f"{job} is in use by another trainer.task run "
                       f"\\(pid {os.getpid()} on "):
      _train(dataset_dir, job, max_steps=5)
    assert sorted(os.listdir(os.path.join(job, "checkpoints"))) == [
        job_lock.LOCK_NAME]  # no run_config.json, no checkpoint
    assert not os.path.exists(os.path.join(job, "model"))
  finally:
    other.release()
  # Released (or its process gone): the next run takes it, and again after.
  assert _train(dataset_dir, job, max_steps=5)["step"] == 5
  assert _train(dataset_dir, job, max_steps=10)["step"] == 10
  with open(os.path.join(job, "model", export.INFO_FILE)) as f:
    info = json.load(f)
  with open(os.path.join(job, "checkpoints", train_lib.RUN_CONFIG_FILE)) as f:
    run_config = json.load(f)
  assert info["config"] == run_config["config"]


@pytest.mark.slow
def test_two_trainer_processes_on_one_job_dir(dataset_dir, tmp_path):
  # Before: the second process exited 0 too, interleaving checkpoints.
  job = str(tmp_path / "job")
  args = [sys.executable, "-m", "trainer.task", f"--data_dir={dataset_dir}",
          f"--job_dir={job}", "--num_hidden=8", "--batch_size=10",
          "--steps_per_checkpoint=50", "--log_every_steps=1000",
          "--summary_every_steps=100000"]
  first = subprocess.Popen(args + ["--max_steps=100000000"], env=_env(),
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
  try:
    deadline = time.monotonic() + 120
    while not glob.glob(os.path.join(job, "checkpoints", "ckpt-*.index")):
      assert first.poll() is None and time.monotonic() < deadline
      time.sleep(0.2)
    second = subprocess.run(args + ["--max_steps=10"], env=_env(),
                            capture_output=True, text=True, timeout=120,
                            check=False)
  finally:
    first.kill()
    first.wait()
  assert second.returncode == 1, second.stderr[-2000:]
  lines = _error_lines(second.stderr)
  assert len(lines) <= 2 and "Traceback" not in second.stderr, lines
  assert f"{job} is in use by another trainer.task run (pid {first.pid}" in (
      lines[0])
  # SIGKILL released the lock: the same command resumes.
  resumed = subprocess.run(args + ["--max_steps=60"], env=_env(),
                           capture_output=True, text=True, timeout=120,
                           check=False)
  assert resumed.returncode == 0, resumed.stderr[-2000:]


class _PreconditionBucket:
  """A bucket that honours if_generation_match, as GCS does (the emulator
  does not), with a settable clock for `updated`."""

  def __init__(self):
    self.objects = {}  # key -> (generation, data, updated)
    self.now = datetime.datetime(2026, 1, 1, tzinfo=datetime.timezone.utc)
    self._next = 1

  def blob(self, key):
    return _Blob(self, key)


class _Blob:

  def __init__(self, bucket, key):
    self.bucket, self.key, self.generation, self.updated = bucket, key, None, None

  def _check(self, match):
    from google.api_core import exceptions  # pylint: disable=g-import-not-at-top
    current = self.bucket.objects.get(self.key, (0,))[0]
    if match is not None and match != current:
      raise exceptions.PreconditionFailed("generation")

  def upload_from_string(self, data, if_generation_match=None):
    self._check(if_generation_match)
    self.generation = self.bucket._next  # pylint: disable=protected-access
    self.bucket._next += 1  # pylint: disable=protected-access
    self.bucket.objects[self.key] = (self.generation, data, self.bucket.now)

  def reload(self):
    from google.api_core import exceptions  # pylint: disable=g-import-not-at-top
    if self.key not in self.bucket.objects:
      raise exceptions.NotFound(self.key)
    self.generation, _, self.updated = self.bucket.objects[self.key]

  def download_as_bytes(self):
    return self.bucket.objects[self.key][1]

  def delete(self, if_generation_match=None):
    self._check(if_generation_match)
    del self.bucket.objects[self.key]


def test_gcs_lock_is_generation_matched_and_a_stale_one_is_taken_over():
  # The GCS emulator ignores preconditions, so a fake bucket that honours
  # them drives the gs:// lock logic.
  bucket = _PreconditionBucket()
  clock = lambda: bucket.now.timestamp()
  first = job_lock.GCSLock(bucket, "job/checkpoints/trainer.lock", "gs://b/job",
                           clock=clock, heartbeat_s=3600)
  with pytest.raises(job_lock.JobLocked,
                     match=r"gs://b/job is in use by another trainer.task run "
                     r"\(pid .*expires 600 s from now.*trainer.lock"):
    job_lock.GCSLock(bucket, "job/checkpoints/trainer.lock", "gs://b/job",
                     clock=clock, heartbeat_s=3600)
  first.release()
  assert not bucket.objects  # released: deleted, generation-matched
  # A lock left by a killed run is refused until stale, then taken over once.
  job_lock.GCSLock(bucket, "k", "gs://b/job", clock=clock, heartbeat_s=3600)
  bucket.now += datetime.timedelta(seconds=job_lock.STALE_S - 1)
  with pytest.raises(job_lock.JobLocked):
    job_lock.GCSLock(bucket, "k", "gs://b/job", clock=clock, heartbeat_s=3600)
  bucket.now += datetime.timedelta(seconds=2)
  taker = job_lock.GCSLock(bucket, "k", "gs://b/job", clock=clock,
                           heartbeat_s=3600)
  assert bucket.objects["k"][0] == taker.generation
  taker.release()
  assert not bucket.objects


def test_a_restarted_cloud_job_takes_its_own_gcs_lock_over(monkeypatch):
  # Vertex AI restarts a preempted job with the same job id: it must not wait
  # 10 minutes for its own lock (another job's lock still stops it).
  bucket = _PreconditionBucket()
  clock = lambda: bucket.now.timestamp()
  monkeypatch.setenv(job_lock.JOB_ID_ENV, "job-1")
  job_lock.GCSLock(bucket, "k", "gs://b/job", clock=clock, heartbeat_s=3600)
  again = job_lock.GCSLock(bucket, "k", "gs://b/job", clock=clock,
                           heartbeat_s=3600)
  assert bucket.objects["k"][0] == again.generation
  monkeypatch.setenv(job_lock.JOB_ID_ENV, "job-2")
  with pytest.raises(job_lock.JobLocked):
    job_lock.GCSLock(bucket, "k", "gs://b/job", clock=clock, heartbeat_s=3600)


# --- case 9: a truncated newest checkpoint falls back to an older one. ------


def test_a_truncated_newest_checkpoint_falls_back_to_the_previous_one(
    dataset_dir, tmp_path, caplog):
  # Before: every rerun crashed ("Read less bytes than requested") and the
  # intact ckpt-25 was never tried.
  straight = str(tmp_path / "straight")
  _train(dataset_dir, straight, max_steps=75)
  job = str(tmp_path / "job")
  _train(dataset_dir, job, max_steps=50)
  data_file, = glob.glob(os.path.join(job, "checkpoints", "ckpt-50.data-*"))
  with open(data_file, "r+b") as f:
    f.truncate(os.path.getsize(data_file) // 2)
  with caplog.at_level(logging.WARNING):
    assert _train(dataset_dir, job, max_steps=75)["step"] == 75
  assert any("ckpt-50" in r.getMessage() and "ckpt-25" in r.getMessage()
             for r in caplog.records), caplog.text
  a = np.load(os.path.join(straight, "model", export.PARAMS_FILE))
  b = np.load(os.path.join(job, "model", export.PARAMS_FILE))
  for name in a:
    np.testing.assert_allclose(a[name], b[name], atol=1e-6)


# --- case 3: a diverged run is a failure, and so is evaluating its model. ----


def test_a_run_whose_free_energy_diverges_fails_and_exports_nothing(
    dataset_dir, tmp_path):
  # Before: --learning_rate=1e37 exited 0 and exported a model whose free
  # energy is inf (the update itself stayed finite).
  job = str(tmp_path / "job")
  _train(dataset_dir, job, max_steps=25)
  with pytest.raises(train_lib.NonFiniteError,
                     match=r"free energy.*(inf|nan).*--learning_rate=1e\+37"):
    _train(dataset_dir, job, max_steps=50, learning_rate=1e37)
  assert export.load_model(os.path.join(job, "model")).step == 25  # untouched
  assert tf.train.latest_checkpoint(os.path.join(job, "checkpoints")).endswith(
      "ckpt-25")  # the last good one, nothing after it


def _write_model(model_dir, **params):
  from trainer.models.rbm import maths as model_lib  # pylint: disable=g-import-not-at-top
  spec = fake_dataset.write_dataset(
      os.path.join(model_dir, "..", "data"),
      fake_dataset.structured_windows(50, seed=1),
      fake_dataset.structured_windows(50, seed=2))
  rbm = model_lib.RBM(spec.n_visible, 4, spec.unit_means, seed=0)
  for name, value in params.items():
    getattr(rbm, name).assign(value)
  rbm_training.save(model_dir, rbm, spec, {}, 1)
  return os.path.join(model_dir, "..", "data")


@pytest.mark.parametrize("what", ["nan_bias", "huge_weights"])
def test_evaluating_a_non_finite_model_is_an_error(tmp_path, what):
  # Before: trainer.evaluate printed NaN (or -inf) figures and exited 0.
  from trainer.evaluation import lib as evaluate_lib  # pylint: disable=g-import-not-at-top
  model_dir = str(tmp_path / "model")
  if what == "nan_bias":
    v = fake_dataset.SMALL_TIMESTEPS * fake_dataset.SMALL_SPEC.n_columns
    data_dir = _write_model(model_dir, visible_bias=np.full(v, np.nan,
                                                            np.float32))
    message = "params.npz holds NaN/Inf in visible_bias"
  else:
    # Finite weights of a diverged run: x.W overflows float32.
    v = fake_dataset.SMALL_TIMESTEPS * fake_dataset.SMALL_SPEC.n_columns
    data_dir = _write_model(model_dir, weights=np.full((v, 4), 1e38,
                                                       np.float32))
    message = "gives log Z = (inf|nan).*lower --learning_rate"
  with pytest.raises(cli.JobError, match=message):
    evaluate_lib.evaluate(model_dir, data_dir, "eval",
                          config_lib.AISConfig(num_chains=4, num_betas=20))


# --- case 11: a truncated params.npz; an absurd --num_samples. ---------------


def test_a_truncated_params_file_is_a_one_line_error_naming_it(tmp_path):
  # Before: zipfile.BadZipFile ("File is not a zip file"), no path.
  model_dir = str(tmp_path / "model")
  _write_model(model_dir)
  path = os.path.join(model_dir, export.PARAMS_FILE)
  with open(path, "r+b") as f:
    f.truncate(os.path.getsize(path) - 100)
  with pytest.raises(export.ModelError,
                     match=f"{re.escape(path)} is not a readable model.*"
                     "rerun trainer.task") as error:
    export.load_model(model_dir)
  assert "\n" not in str(error.value)


# --- case 4: windows of another size than dataset.json's are refused. --------


def test_a_roll_dataset_json_next_to_onoff_shards_is_refused(dataset_dir,
                                                             tmp_path):
  # Before: training read every onoff window cut to half its bits, exit 0.
  from preprocess import pianoroll  # pylint: disable=g-import-not-at-top
  from trainer import data  # pylint: disable=g-import-not-at-top
  mixed = str(tmp_path / "mixed")
  fake_dataset.write_dataset(mixed, fake_dataset.structured_windows(100),
                             fake_dataset.structured_windows(20))
  roll = pianoroll.RollSpec("roll", 60, 72, 4)
  fake_dataset.write_dataset(
      str(tmp_path / "roll"), fake_dataset.structured_windows(100, roll),
      fake_dataset.structured_windows(20, roll), spec=roll)
  os.replace(tmp_path / "roll" / "dataset.json", tmp_path / "mixed" /
             "dataset.json")
  shard = os.path.join(mixed, "train-00000-of-00002.tfrecord")
  with pytest.raises(cli.UsageError,
                     match=f"{re.escape(shard)}: its windows are 12 bytes but "
                     r"dataset.json \(roll, n_visible=48\) means 6"):
    _train(mixed, str(tmp_path / "job"), max_steps=1, batch_size=10)
  assert not os.path.exists(tmp_path / "job" / "checkpoints" /
                            train_lib.RUN_CONFIG_FILE)
  # A record of another size inside a shard fails as it is decoded.
  with pytest.raises(tf.errors.InvalidArgumentError, match="n_visible=48"):
    data.decode_windows(tf.constant([records_example(96)]), 48)
  assert data.load_dataset_spec(dataset_dir).n_visible == 96  # a good one


def records_example(n_visible):
  from preprocess import records  # pylint: disable=g-import-not-at-top
  return records.make_example(np.ones((1, n_visible), np.uint8), "x.mid", 0)


# --- case 8: outputs follow the umask. ----------------------------------------


def test_every_output_file_follows_the_umask(dataset_dir, tmp_path):
  # Before: samples, manifests, generation.json and previews were 0600
  # (temp file + rename, no chmod), whatever the umask.
  from trainer.generation import lib as generate_lib  # pylint: disable=g-import-not-at-top
  old = os.umask(0o027)
  try:
    job = str(tmp_path / "job")
    _train(dataset_dir, job, max_steps=2)
    generate_lib.generate(os.path.join(job, "model"), str(tmp_path / "out"),
                          config_lib.GenerateConfig(num_samples=3,
                                                    gibbs_steps=2,
                                                    previews=True))
  finally:
    os.umask(old)
  modes = {}
  for folder, _, files in os.walk(tmp_path):
    for name in files:
      path = os.path.join(folder, name)
      modes[os.path.relpath(path, tmp_path)] = oct(os.stat(path).st_mode & 0o777)
  assert "out/sample-000002.mid" in modes and "job/model/params.npz" in modes
  assert "out/previews/index.html" in modes
  assert {p: m for p, m in modes.items() if m != "0o640"} == {}


# --- cases 5 and 10: generation output of an earlier run. ----------------------


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
  d = str(tmp_path_factory.mktemp("gen") / "model")
  _write_model(d)
  return d


def _samples(folder) -> dict:
  return {p.name: p.read_bytes() for p in sorted(folder.glob("sample-*"))}


def _gen(model_dir, out, **kw):
  from trainer.generation import lib as generate_lib  # pylint: disable=g-import-not-at-top
  return generate_lib.generate(model_dir, str(out), config_lib.GenerateConfig(
      **{"gibbs_steps": 2, **kw}))


def test_overwrite_with_a_smaller_run_removes_the_earlier_runs_samples(
    model_dir, tmp_path):
  # Before: a rerun of 3 samples with --overwrite left sample-000003..199 of
  # the earlier 200-sample run (and its 2-shard manifests) behind.
  out = tmp_path / "out"
  _gen(model_dir, out, num_samples=200, num_shards=2, shard_index=0)
  _gen(model_dir, out, num_samples=200, num_shards=2, shard_index=1)
  (out / "sample-009999.mid").write_bytes(b"mine")  # never recorded by a run
  (out / "notes.txt").write_bytes(b"mine")
  _gen(model_dir, out, num_samples=3, seed=7, overwrite=True)
  clean = tmp_path / "clean"
  _gen(model_dir, clean, num_samples=3, seed=7)
  assert sorted(p.name for p in out.iterdir()) == sorted(
      ["sample-009999.mid", "notes.txt", *(p.name for p in clean.iterdir())])
  assert _samples(out) == {**_samples(clean), "sample-009999.mid": b"mine"}


def test_a_users_own_gallery_survives_generation_and_overwrite(model_dir,
                                                               tmp_path):
  # Already so before this change (previews.py checks its marker); kept as
  # the case 5 asks for it.
  out = tmp_path / "out"
  (out / "previews").mkdir(parents=True)
  (out / "previews" / "index.html").write_bytes(b"<html>mine</html>")
  for overwrite in (False, True):
    summary = _gen(model_dir, out, num_samples=2, previews=True,
                   overwrite=overwrite)
    assert summary["gallery"] is None
    assert (out / "previews" / "index.html").read_bytes() == (
        b"<html>mine</html>")


def test_a_truncated_unrecorded_sample_of_this_job_is_rewritten(model_dir,
                                                                tmp_path):
  # Before: a sample file truncated by a power cut before its progress record
  # made every rerun fail with storage.ObjectExists.
  out = tmp_path / "out"
  _gen(model_dir, out, num_samples=5)
  reference = _samples(out)
  (out / "manifest.jsonl").unlink()  # the run "died" before recording these
  (out / "sample-000001.mid").write_bytes(reference["sample-000001.mid"][:7])
  (out / "sample-000500.mid").write_bytes(b"mine")  # not this job's name
  summary = _gen(model_dir, out, num_samples=5)
  assert summary["written"] == 5
  assert _samples(out) == {**reference, "sample-000500.mid": b"mine"}


def test_an_absurd_num_samples_is_refused_before_allocating(model_dir, tmp_path):
  # Before: --num_samples=1000000000 built a list of 1e9 ids: MemoryError.
  from trainer.generation import lib as generate_lib  # pylint: disable=g-import-not-at-top
  with pytest.raises(generate_lib.GenerateError,
                     match=r"--num_samples=1000000000 .* use --num_shards=1001 "):
    _gen(model_dir, tmp_path / "out", num_samples=10**9)
  assert not (tmp_path / "out").exists()
  # Split over enough shards, each shard's part is accepted.
  generate_lib.check_shard_size(config_lib.GenerateConfig(
      num_samples=10**9, num_shards=1001, shard_index=0))


# --- case 12: usage errors of every trainer CLI: 1-2 lines, exit 2. ---------


@pytest.fixture(scope="module")
def cli_inputs(tmp_path_factory):
  """A model, its dataset, a file, a model folder without model.json and an
  SMPTE-timed MIDI file."""
  from tests import midi_builders  # pylint: disable=g-import-not-at-top
  root = tmp_path_factory.mktemp("cli")
  model = root / "job" / "model"
  data = _write_model(str(model))
  (root / "file").write_text("not a folder")
  (root / "no_model_json").mkdir()
  (root / "no_model_json" / export.PARAMS_FILE).write_bytes(
      (model / export.PARAMS_FILE).read_bytes())
  midi = midi_builders.make_midi(midi_builders.scale(40, low=62))
  assert midi[:4] == b"MThd"
  (root / "smpte.mid").write_bytes(midi[:12] + bytes([0x100 - 25, 40]) +
                                   midi[14:])
  truncated = root / "truncated"
  truncated.mkdir()
  (truncated / export.INFO_FILE).write_bytes((model / export.INFO_FILE
                                              ).read_bytes())
  (truncated / export.PARAMS_FILE).write_bytes(
      (model / export.PARAMS_FILE).read_bytes()[:-100])
  v = fake_dataset.SMALL_TIMESTEPS * fake_dataset.SMALL_SPEC.n_columns
  _write_model(str(root / "nan" / "model"), weights=np.full((v, 4), 1e38,
                                                            np.float32))
  from preprocess import pianoroll  # pylint: disable=g-import-not-at-top
  roll = pianoroll.RollSpec("roll", 60, 72, 4)
  fake_dataset.write_dataset(
      str(root / "roll"), fake_dataset.structured_windows(100, roll),
      fake_dataset.structured_windows(20, roll), spec=roll)
  fake_dataset.write_dataset(str(root / "mixed"),
                             fake_dataset.structured_windows(100),
                             fake_dataset.structured_windows(20))
  os.replace(root / "roll" / "dataset.json", root / "mixed" / "dataset.json")
  # Hand-edited or damaged model.json and dataset.json.
  info = json.loads((model / export.INFO_FILE).read_text())
  for name, text in (("badjson", "{not json"), ("listjson", "[1, 2]"),
                     ("nokey", json.dumps({k: v for k, v in info.items()
                                           if k != "dataset"})),
                     ("badtype", json.dumps(dict(info, step="x")))):
    (root / name).mkdir()
    (root / name / export.INFO_FILE).write_text(text)
    (root / name / export.PARAMS_FILE).write_bytes(
        (model / export.PARAMS_FILE).read_bytes())
  spec = json.loads((pathlib.Path(data) / "dataset.json").read_text())
  for name, text in (("dslist", "[]"),
                     ("dstype", json.dumps(dict(spec, low_note="sixty"))),
                     ("dsmean", json.dumps(dict(spec, unit_means=[1.5] + spec[
                         "unit_means"][1:])))):
    shutil.copytree(data, root / name)
    (root / name / "dataset.json").write_text(text)
  os.symlink(root / "nowhere", root / "link")
  return {"MODEL": str(model), "DATA": os.path.normpath(data),
          "BADJSON": str(root / "badjson"), "LISTJSON": str(root / "listjson"),
          "NOKEY": str(root / "nokey"), "BADTYPE": str(root / "badtype"),
          "DSLIST": str(root / "dslist"), "DSTYPE": str(root / "dstype"),
          "DSMEAN": str(root / "dsmean"), "LINK": str(root / "link"),
          "TRUNC": str(truncated), "NAN": str(root / "nan" / "model"),
          "MIXED": str(root / "mixed"),
          "FILE": str(root / "file"), "NOJSON": str(root / "no_model_json"),
          "SMPTE": str(root / "smpte.mid"), "ROOT": str(root)}


_USAGE_ERRORS = [
    # (cli, args, a piece of the message)
    ("trainer.task", ["--data_dir=DATA", "--job_dir=ROOT/j", "--num_hidden=x"],
     "--num_hidden"),
    ("trainer.task", ["--data_dir=ROOT", "--job_dir=ROOT/j"], "dataset.json"),
    ("trainer.task", ["--data_dir=FILE", "--job_dir=ROOT/j"], "FILE"),
    ("trainer.task", ["--data_dir=DATA", "--job_dir=FILE", "--max_steps=1",
                      "--batch_size=10"], "FILE"),
    ("trainer.evaluate", ["--model_dir=ROOT/none", "--data_dir=DATA"],
     "ROOT/none"),
    ("trainer.evaluate", ["--model_dir=NOJSON", "--data_dir=DATA"],
     "NOJSON/model.json"),
    ("trainer.evaluate", ["--model_dir=MODEL", "--data_dir=ROOT"],
     "dataset.json"),
    ("trainer.evaluate", ["--model_dir=MODEL", "--data_dir=DATA",
                          "--ais_chains=0"], "--ais_chains"),
    ("trainer.generate", ["--model_dir=ROOT/none", "--output=ROOT/o"],
     "ROOT/none"),
    ("trainer.generate", ["--model_dir=MODEL", "--output=FILE",
                          "--num_samples=2"], "FILE"),
    ("trainer.generate", ["--model_dir=MODEL", "--output=ROOT/o",
                          "--primer=SMPTE", "--num_samples=2"], "SMPTE"),
    ("trainer.generate", ["--model_dir=MODEL", "--output=ROOT/o",
                          "--num_samples=-1"], "--num_samples=-1"),
    ("trainer.compare", ["--samples=ROOT/none", "--data=DATA"], "ROOT/none"),
    ("trainer.compare", ["--samples=FILE", "--data=DATA"], "FILE"),
    # These failed before this change (a traceback, or exit 0).
    ("trainer.evaluate", ["--model_dir=TRUNC", "--data_dir=DATA"],
     "TRUNC/params.npz is not a readable model"),
    ("trainer.generate", ["--model_dir=TRUNC", "--output=ROOT/o2"],
     "TRUNC/params.npz is not a readable model"),
    ("trainer.task", ["--data_dir=MIXED", "--job_dir=ROOT/j2",
                      "--batch_size=10"],
     "MIXED/train-00000-of-00002.tfrecord: its windows are 12 bytes"),
    # Round 3: these printed a traceback before.
    ("trainer.evaluate", ["--model_dir=BADJSON", "--data_dir=DATA"],
     "BADJSON/model.json is not valid JSON"),
    ("trainer.generate", ["--model_dir=LISTJSON", "--output=ROOT/o3"],
     "LISTJSON/model.json holds a JSON list"),
    ("trainer.evaluate", ["--model_dir=NOKEY", "--data_dir=DATA"],
     "NOKEY/model.json has no 'dataset'"),
    ("trainer.generate", ["--model_dir=BADTYPE", "--output=ROOT/o4"],
     "BADTYPE/model.json: step='x' is not of type int"),
    ("trainer.task", ["--data_dir=DSLIST", "--job_dir=ROOT/j3"],
     "DSLIST/dataset.json holds a JSON list"),
    ("trainer.evaluate", ["--model_dir=MODEL", "--data_dir=DSTYPE"],
     "low_note='sixty' is not of type int"),
    ("trainer.task", ["--data_dir=DSMEAN", "--job_dir=ROOT/j4"],
     "unit_means[0]=1.5 is not a mean of binary units"),
    ("trainer.generate", ["--model_dir=MODEL", "--output=ROOT/o5",
                          "--primer=ROOT", "--num_samples=2"],
     "--primer=ROOT is a folder"),
    ("trainer.generate", ["--model_dir=MODEL", "--output=ROOT/o6",
                          "--num_windows=100000", "--num_samples=2"],
     "use --num_windows <= "),
    ("trainer.task", ["--data_dir=DATA", "--job_dir=LINK/job",
                      "--batch_size=10", "--max_steps=1"],
     "LINK is a symbolic link to"),
    ("trainer.task", ["--data_dir=DATA", f"--job_dir=ROOT/{'x' * 300}",
                      "--batch_size=10", "--max_steps=1"],
     "file name too long"),
]


@pytest.mark.slow
@pytest.mark.parametrize("program,args,message", _USAGE_ERRORS)
def test_usage_errors_are_one_or_two_lines_with_exit_code_2(
    cli_inputs, program, args, message):
  # Before: several printed a traceback (exit 1), e.g. an SMPTE primer, a
  # --job_dir that is a file, a --data_dir that is a file.
  def fill(text):
    for key in sorted(cli_inputs, key=len, reverse=True):
      text = text.replace(key, cli_inputs[key])
    return text
  done = subprocess.run([sys.executable, "-m", program, *map(fill, args)],
                        capture_output=True, text=True, timeout=180,
                        check=False, env=_env())
  lines = _error_lines(done.stderr)
  assert done.returncode == 2, done.stderr[-3000:]
  assert "Traceback" not in done.stderr and 1 <= len(lines) <= 2, lines
  assert lines[0].startswith(f"{program}: error: ") and fill(message) in (
      "\n".join(lines)), lines


@pytest.mark.slow
def test_evaluating_a_diverged_model_fails_with_exit_code_1(cli_inputs):
  # Before: it printed log Z = inf / NaN likelihoods and exited 0.
  done = subprocess.run(
      [sys.executable, "-m", "trainer.evaluate",
       f"--model_dir={cli_inputs['NAN']}", f"--data_dir={cli_inputs['DATA']}",
       "--ais_chains=4", "--ais_betas=20"],
      capture_output=True, text=True, timeout=180, check=False, env=_env())
  lines = _error_lines(done.stderr)
  assert done.returncode == 1, done.stderr[-3000:]
  assert "Traceback" not in done.stderr and len(lines) == 1, lines
  assert f"the model in {cli_inputs['NAN']} gives log Z = " in lines[0]
