"""Reliability, round 3 (trainer side): samples of two models never mix in
one folder, a finished job's rerun reports its figures, --help exits 0, a
full disk is one line and a rerun resumes, pieces too long for a MIDI file
are refused, a frame model without held-out data says it does not validate.
Each failed before this change."""

import contextlib
import json
import os
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

from tests import fake_dataset
from trainer import config as config_lib
from trainer.generation import lib as generation
from trainer.models import base
from trainer.models import files
from trainer.models.recurrent import training as sequence_training
from trainer.training import loop

ONE = ["/cpu:0"]
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _env():
  return dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", CUDA_VISIBLE_DEVICES="")


@pytest.fixture(scope="module")
def dataset_dir(tmp_path_factory):
  d = str(tmp_path_factory.mktemp("data"))
  fake_dataset.write_dataset(d, fake_dataset.structured_windows(200, seed=1),
                             fake_dataset.structured_windows(40, seed=2))
  return d


def _train(data_dir, job, **overrides):
  config = config_lib.TrainConfig(**{
      "num_hidden": 8, "batch_size": 20, "max_steps": 10,
      "steps_per_checkpoint": 5, **overrides})
  return loop.train_and_evaluate(config, data_dir, job,
                                 strategy=tf.distribute.MirroredStrategy(ONE))


def _generate_config(**overrides):
  return config_lib.GenerateConfig(**{"num_samples": 3, "gibbs_steps": 2,
                                      "num_windows": 2, **overrides})


def test_samples_of_another_model_are_refused_in_the_same_folder(
    dataset_dir, tmp_path):
  _train(dataset_dir, str(tmp_path / "a"))
  _train(dataset_dir, str(tmp_path / "b"), seed=1)
  out = str(tmp_path / "samples")
  model_a, model_b = (str(tmp_path / x / "model") for x in "ab")
  shard = lambda i, **kw: _generate_config(num_samples=200, num_shards=2,
                                           shard_index=i, **kw)
  generation.generate(model_a, out, shard(0))
  # Before: shard 1 run with model b wrote its samples beside a's.
  with pytest.raises(FileExistsError, match="samples of another model"):
    generation.generate(model_b, out, shard(1))
  assert not [n for n in os.listdir(out) if n >= "sample-000128"]
  # A copy of model a elsewhere is the same model: its shard is welcome.
  copy = str(tmp_path / "copy")
  tf.io.gfile.makedirs(copy)
  for name in (files.INFO_FILE, files.PARAMS_FILE):
    tf.io.gfile.copy(os.path.join(model_a, name), os.path.join(copy, name))
  assert generation.generate(copy, out, shard(1))["written"] == 72
  summary = generation.generate(model_b, out, shard(0, overwrite=True))
  assert summary["written"] == 128
  with open(os.path.join(out, generation.SETTINGS_FILE)) as f:
    assert json.load(f)["model"]["digest"] == files.digest(model_b)


def test_a_finished_jobs_rerun_reports_its_figures(dataset_dir, tmp_path):
  job = str(tmp_path / "job")
  first = _train(dataset_dir, job)
  again = _train(dataset_dir, job)
  # Before: {"reconstruction_error": NaN, "examples_per_sec": 0.0, ...}.
  assert again.pop("already_done") is True
  assert again == first
  assert np.isfinite(again["reconstruction_error"])


def test_the_model_folder_is_written_by_rename(dataset_dir, tmp_path,
                                               monkeypatch):
  renamed = []
  real = tf.io.gfile.rename
  monkeypatch.setattr(tf.io.gfile, "rename", lambda a, b, overwrite=False: (
      renamed.append((os.path.basename(a), os.path.basename(b))),
      real(a, b, overwrite))[1])
  job = str(tmp_path / "job")
  _train(dataset_dir, job)
  assert [b for _, b in renamed][-2:] == [files.PARAMS_FILE, files.INFO_FILE]
  assert all(a.startswith(b + ".tmp-") for a, b in renamed[-2:])
  assert sorted(os.listdir(os.path.join(job, "model"))) == [
      files.INFO_FILE, files.PARAMS_FILE]


@pytest.mark.parametrize("program", ["trainer.task", "trainer.generate",
                                     "trainer.evaluate", "trainer.compare",
                                     "preprocess.main"])
def test_help_exits_0(program):
  done = subprocess.run([sys.executable, "-m", program, "--help"], cwd=ROOT,
                        env=_env(), capture_output=True, text=True,
                        timeout=120)
  assert done.returncode == 0, done.stderr[-2000:]
  assert "--" in done.stdout + done.stderr


def test_frame_model_pieces_too_long_for_midi_are_refused():
  spec = fake_dataset.PIECE_SPEC
  dataset = base.records.DatasetSpec(
      encoding=spec.encoding, low_note=spec.low_note, high_note=spec.high_note,
      steps_per_quarter=1, num_timesteps=0, stride=0, n_visible=0,
      unit_means=[], counts={})
  most = base.max_piece_steps(dataset.roll_spec)
  assert 20_000 < most < 21_000  # 480 ticks a quarter, pretty_midi's limit
  lengths = (config_lib.MIN_BARS, config_lib.DEFAULT_BARS,
             config_lib.MAX_NUM_FRAMES)
  assert base.frame_model_length(config_lib.GenerateConfig(num_frames=most),
                                 dataset, *lengths) == most
  with pytest.raises(base.GenerateError, match=f"--num_frames <= {most}"):
    base.frame_model_length(config_lib.GenerateConfig(num_frames=most + 1),
                            dataset, *lengths)


def test_a_frame_model_without_held_out_data_says_it_does_not_validate(
    tmp_path, monkeypatch):
  pieces = str(tmp_path / "pieces")
  rng = np.random.default_rng(0)
  fake_dataset.write_piece_dataset(
      pieces, fake_dataset.cycle_pieces(rng.integers(10, 20, 16), seed=1), [])
  warnings = []
  monkeypatch.setattr(sequence_training.logging, "warning",
                      lambda msg, *args: warnings.append(msg % args))
  config = config_lib.TrainConfig(
      model="rnn_rbm", num_hidden=4, num_hidden_recurrent=4, cd_k=1,
      batch_size=8, max_steps=2, sequence_length=8, momentum=False,
      weight_decay=0.0)
  metrics = loop.train_and_evaluate(
      config, pieces, str(tmp_path / "job"),
      strategy=tf.distribute.MirroredStrategy(ONE))
  assert metrics["step"] == 2 and metrics["validation_split"] is None
  assert any("neither a valid nor an eval split" in w for w in warnings)


@contextlib.contextmanager
def _small_disk(path, size):
  os.makedirs(path)
  if subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs",
                     path], capture_output=True, check=False).returncode:
    pytest.skip("cannot mount a small tmpfs here (not root?)")
  try:
    yield path
  finally:
    subprocess.run(["umount", path], check=False)


@pytest.mark.slow
def test_a_full_disk_is_one_line_and_a_rerun_with_space_resumes(dataset_dir,
                                                                tmp_path):
  with _small_disk(str(tmp_path / "disk"), "1m") as disk:
    job = os.path.join(disk, "job")
    args = [sys.executable, "-m", "trainer.task", f"--data_dir={dataset_dir}",
            f"--job_dir={job}", "--num_hidden=200", "--batch_size=20",
            "--max_steps=40", "--steps_per_checkpoint=10",
            "--summary_every_steps=100000"]
    with open(os.path.join(disk, "filler"), "wb") as f:
      f.write(b"\0" * 800_000)
    full = subprocess.run(args, cwd=ROOT, env=_env(), capture_output=True,
                          text=True, timeout=300)
    lines = [line for line in full.stderr.splitlines()
             if line.startswith("trainer.task: error:")]
    assert full.returncode == 1, full.stderr[-3000:]
    assert len(lines) == 1 and "no space left on device" in lines[0] and (
        "rerun the same command to resume" in lines[0]), full.stderr[-3000:]
    assert "Traceback" not in full.stderr
    os.remove(os.path.join(disk, "filler"))
    done = subprocess.run(args, cwd=ROOT, env=_env(), capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert json.loads(done.stdout)["step"] == 40


@pytest.mark.slow
def test_a_full_disk_in_generation_then_a_rerun_writes_exactly_n(dataset_dir,
                                                                tmp_path):
  job = str(tmp_path / "job")
  _train(dataset_dir, job)
  with _small_disk(str(tmp_path / "disk"), "200k") as disk:
    out = os.path.join(disk, "samples")
    args = [sys.executable, "-m", "trainer.generate",
            f"--model_dir={job}/model", f"--output={out}",
            "--num_samples=600", "--gibbs_steps=2"]
    full = subprocess.run(args, cwd=ROOT, env=_env(), capture_output=True,
                          text=True, timeout=300)
    lines = [line for line in full.stderr.splitlines()
             if line.startswith("trainer.generate: error:")]
    assert full.returncode == 1 and len(lines) == 1, full.stderr[-3000:]
    assert "no space left on device" in lines[0] and "Traceback" not in (
        full.stderr)
    subprocess.run(["mount", "-o", "remount,size=20m", disk], check=True)
    done = subprocess.run(args, cwd=ROOT, env=_env(), capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    names = [n for n in os.listdir(out) if n.startswith("sample-")]
    assert sorted(names) == [generation.sample_name(i) for i in range(600)]
    with open(os.path.join(out, "manifest.jsonl")) as f:
      assert sorted(json.loads(line)["id"] for line in f) == list(range(600))
