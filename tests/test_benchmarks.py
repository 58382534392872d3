"""The benchmarks run, at tiny sizes, so that they cannot rot.

Their figures are not checked (speed claims live in the benchmarks' own
output and the README); only that every measurement and the report run.
"""

import dataclasses
import json
import os
import subprocess
import sys

import numpy as np
import pytest

from benchmarks import bench_train
from benchmarks import chorales_benchmark
from benchmarks import corpora
from benchmarks import polyphonic_benchmark
from benchmarks import stamped_steps
from benchmarks import styles_benchmark
from common import cli
from tests import fake_dataset
from tests.test_generate import make_model

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture(scope="module")
def dataset_dir(tmp_path_factory):
  d = str(tmp_path_factory.mktemp("bench_data"))
  # 8 songs of 8 windows: the seed's loop trains on windows 1.. of each song.
  fake_dataset.write_dataset(d, fake_dataset.structured_windows(64, seed=1),
                             fake_dataset.structured_windows(8, seed=2),
                             windows_per_file=8)
  return d


@pytest.mark.slow
def test_bench_train_every_measurement_and_the_report(dataset_dir, capsys):
  # In this process (conftest split the CPU in 2, as main's children do);
  # main runs each in a child of its own, checked once below.
  r = {}
  for name in bench_train.MEASUREMENTS:
    r.update(bench_train._measure(name, dataset_dir, 0.02,  # pylint: disable=protected-access
                                  bench_train.TINY_SHAPES))
  assert all(r[name] > 0 for name in bench_train.MEASUREMENTS), r
  assert r["songs"] == 8 and r["seed_windows"] == 8 * 7
  for suffix in ("", "+unpin", "+memory"):
    bench_train._report(r, suffix, bench_train.TINY_SHAPES)  # pylint: disable=protected-access
  bench_train._report_peer(r, bench_train.TINY_SHAPES)  # pylint: disable=protected-access
  bench_train._report_rnn(r, bench_train.TINY_SHAPES)  # pylint: disable=protected-access
  bench_train._report_bf16(r, bench_train.TINY_SHAPES)  # pylint: disable=protected-access
  out = capsys.readouterr().out
  assert "trainer.task (--preset=original, monitoring on)" in out
  assert "scikit-learn BernoulliRBM" in out
  assert "speed-up over the seed's loop" in out
  assert "fraction of matmul rate at the seed's shape" in out
  assert "2 replicas / 1 replica, large shape" in out
  assert "RNN-RBM fraction of matmul rate" in out
  assert "--compute_dtype=bfloat16 against float32" in out
  assert r["bf16:device"].startswith(("CPU ", "GPU ")), r["bf16:device"]


@pytest.mark.slow
def test_bench_train_measures_in_a_child_process(dataset_dir):
  r = bench_train._in_subprocess("maths", dataset_dir, 0.02, tiny=True)  # pylint: disable=protected-access
  assert r["maths"] > 0


@pytest.mark.slow
def test_bench_generate_runs(tmp_path):
  model_dir = make_model(str(tmp_path))
  done = subprocess.run(
      [sys.executable, "-m", "benchmarks.bench_generate",
       f"--model_dir={model_dir}", "--num_samples=130", "--gibbs_steps=2",
       "--rnn_rbm_samples=130", "--rnn_rbm_frames=3",
       "--rnn_rbm_gibbs_steps=2"],
      cwd=ROOT, capture_output=True, text=True, timeout=300, check=False,
      env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3"))
  assert done.returncode == 0, done.stderr[-3000:]
  for line in ("generate -> local disk:", "generate -> GCS emulator:",
               "the seed's model shape (H=50)", "with --model_dir's model",
               "baseline: bare pretty_midi write", "bars/s",
               "useful / matmul FLOP per CPU second, defaults vs seed preset",
               "13 window(s) x 4 candidate(s)", "per CPU second: useful"):
    assert line in done.stdout, done.stdout
  for line in ("RNN-RBM Gibbs sampling only:", "RNN-RBM generate -> local disk:"):
    assert line in done.stdout, done.stdout


def test_benchmark_steps_reuse_only_what_the_same_command_made(tmp_path):
  out, stamp = str(tmp_path / "evaluation.json"), str(tmp_path / "job.flags")
  args = ["trainer.evaluate", "--model_dir=m", "--data_dir=d"]
  assert not stamped_steps.done(out, stamp, args)  # not made yet
  with open(out, "w") as f:
    f.write("{}")
  # Made by an older version (no stamp): stale, refused in one line.
  with pytest.raises(cli.UsageError, match="made with other settings"):
    stamped_steps.done(out, stamp, args)
  stamped_steps.stamp(stamp, args)
  assert stamped_steps.done(out, stamp, args)
  with pytest.raises(cli.UsageError, match="--workdir"):
    stamped_steps.done(out, stamp, args + ["--ais_betas=10"])
  # Same command, other code (e.g. a sampler whose noise changed): stale.
  with open(stamp) as f:
    made = f.read()
  with open(stamp, "w") as f:
    f.write(made.replace(stamped_steps.code_digest(), "0" * 16))
  with pytest.raises(cli.UsageError, match="another version of this project"):
    stamped_steps.done(out, stamp, args)


def test_benchmark_steps_code_digest_follows_the_model_code(tmp_path,
                                                            monkeypatch):
  for package in ("common", "preprocess", "trainer", "tests"):
    (tmp_path / package / "models").mkdir(parents=True)
    (tmp_path / package / "models" / "m.py").write_text("x = 1\n")
  monkeypatch.setattr(stamped_steps, "_ROOT", str(tmp_path))

  def digest():
    stamped_steps.code_digest.cache_clear()
    return stamped_steps.code_digest()

  try:
    before = digest()
    (tmp_path / "tests" / "models" / "m.py").write_text("x = 2\n")
    assert digest() == before  # tests do not make figures
    (tmp_path / "trainer" / "models" / "m.py").write_text("x = 2\n")
    assert digest() != before  # a model module does
  finally:
    stamped_steps.code_digest.cache_clear()


def test_chorales_benchmark_refuses_unknown_rows(tmp_path):
  config = chorales_benchmark.BenchmarkConfig(corpus=str(tmp_path))
  chorales_benchmark.check(config)  # every row by default
  chorales_benchmark.check(dataclasses.replace(config, models=("rnn_nade",)))
  with pytest.raises(cli.UsageError, match=r"^--models=rnn_nade,lstm: choose "
                     "among frame_rbm,window_rbm,rnn_rbm,rnn_nade"):
    chorales_benchmark.check(dataclasses.replace(
        config, models=("rnn_nade", "lstm")))
  with pytest.raises(cli.UsageError, match="is not a folder"):
    chorales_benchmark.check(dataclasses.replace(
        config, corpus=str(tmp_path / "missing")))


def test_styles_benchmark_picks_corpora_and_prints_one_row_each(tmp_path):
  for name in ("folk", "bach"):
    (tmp_path / name).mkdir()
  (tmp_path / "notes.txt").write_text("not a corpus")
  config = styles_benchmark.StylesConfig(corpora_dir=str(tmp_path))
  assert styles_benchmark._corpora(config) == ["bach", "folk"]
  with pytest.raises(cli.UsageError, match="--corpora=jazz: not in"):
    styles_benchmark._corpora(styles_benchmark.StylesConfig(
        corpora_dir=str(tmp_path), corpora=("jazz",)))
  row = {"corpus": "folk", "pieces": 12, "median_bars": 16,
         "demo_minutes": 3.25, "nll_per_frame": 2.5,
         "bernoulli_nll_per_frame": 4.0, "features_met": 9, "features": 14,
         "polyphony_overlap": 0.9, "key_free_pitch_overlap": 0.8,
         "silent_share": -0.5, "copies": 0.01,
         "dense_drift": {"share_samples": 0.02, "share_data": 0.01}}
  lines = styles_benchmark.table([row, {**row, "corpus": "bach",
                                        "heldout_features_met": 13}]
                                 ).splitlines()
  assert len(lines) == 4
  assert lines[2] == ("| folk | 12 | 16 | 3.2 | 2.50 (4.00) | 9/14 | 0.90 | "
                      "0.80 | -50% | 2.0% (1.0%) | 1.0% |")
  assert "| 9/14 (13/14) |" in lines[3]


def _random_rolls(count, frames, seed):
  """Pieces of 3-note chords moving by step: something for a model to learn."""
  rng = np.random.default_rng(seed)
  pieces = []
  for _ in range(count):
    roll = np.zeros([frames, corpora.N_KEYS], np.uint8)
    root = 40
    for t in range(frames):
      root = int(np.clip(root + rng.integers(-2, 3), 30, 50))
      roll[t, [root, root + 4, root + 7]] = 1
    pieces.append(roll)
  return pieces


@pytest.mark.slow
def test_polyphonic_benchmark_runs_one_set_alone_and_keeps_the_others(
    tmp_path, capsys):
  scipy_io = pytest.importorskip("scipy.io")
  arrays = {}
  for split, key in corpora.SPLITS.items():
    pieces = _random_rolls(4 if split == "train" else 2, 24,
                           seed=len(key))
    arrays[key] = np.empty((1, len(pieces)), object)
    for i, piece in enumerate(pieces):
      arrays[key][0, i] = piece
  scipy_io.savemat(str(tmp_path / "Piano_midi.mat"), arrays)
  corpora_dir = tmp_path / "corpora"
  corpora.export("piano_midi", str(corpora_dir / "piano_midi"), str(tmp_path))
  workdir = tmp_path / "work"
  workdir.mkdir()
  # A row of another set, run before: kept, and listed in SETS order.
  earlier = {"set": "nottingham", "test_pieces": 1, "test_frames": 9,
             "nll_per_frame": 3.0, "stderr": 0.01,
             "baseline_nll_per_frame": 9.0, "check_frames": 9,
             "check_default_nll": 3.0, "check_tight_nll": 3.01,
             "train_wall_seconds": 60.0, "train_frames_per_sec": 1.0}
  (workdir / "results.json").write_text(json.dumps([earlier]))
  config = polyphonic_benchmark.PolyphonicConfig(
      corpora_dir=str(corpora_dir), workdir=str(workdir), sets=("piano_midi",),
      model="rnn_rbm", transpose=1, frame_rbm_flags="--num_hidden=8 --max_steps=4 "
      "--batch_size=8", rnn_rbm_flags="--num_hidden=8 --num_hidden_recurrent=4 "
      "--max_steps=4 --pretrain_rnn_epochs=0 --validate_every_epochs=1",
      eval_flags="--ais_chains=2 --ais_betas=20", check_frames=30,
      check_flags="--ais_chains=4 --ais_betas=40")
  row = polyphonic_benchmark.run_set(config, "piano_midi")
  assert (row["test_pieces"], row["test_frames"]) == (2, 48)
  assert row["check_frames"] == 24  # one 24-frame piece fits in 30
  assert 0 < row["nll_per_frame"] < row["baseline_nll_per_frame"] * 2
  assert row["train_frames_per_sec"] > 0 and row["transpose"] == 1
  rows = polyphonic_benchmark.save_rows(str(workdir), [row])
  assert [r["set"] for r in rows] == ["nottingham", "piano_midi"]
  text = polyphonic_benchmark.table(rows)
  assert "| piano_midi | rnn_rbm | 2 / 48 |" in text
  assert "| nottingham | rnn_rbm | 1 / 9 |" in text
  assert "RNN-NADE (HF) (Boulanger-Lewandowski 2012): nottingham 2.31" in text
  # A rerun reuses every step (no subprocess), and a changed flag is refused.
  again = polyphonic_benchmark.run_set(config, "piano_midi")
  assert again == row
  with pytest.raises(cli.UsageError, match="other settings"):
    polyphonic_benchmark.run_set(
        dataclasses.replace(config, transpose=0), "piano_midi")
  # The RNN-NADE on the same pieces: scored exactly, a row of its own.
  nade = polyphonic_benchmark.run_set(dataclasses.replace(
      config, model="rnn_nade", rnn_nade_flags="--recurrence=gru "
      "--num_hidden=8 --num_hidden_recurrent=4 --max_steps=4 "
      "--pretrain_rnn_epochs=0"),
                                      "piano_midi")
  assert (nade["model"], nade["test_frames"], nade["stderr"]) == (
      "rnn_nade", 48, 0.0)
  assert 0 < nade["nll_per_frame"] < nade["baseline_nll_per_frame"] * 2
  rows = polyphonic_benchmark.save_rows(str(workdir), [nade])
  assert [(r["set"], r.get("model", "rnn_rbm")) for r in rows] == [
      ("nottingham", "rnn_rbm"), ("piano_midi", "rnn_nade"),
      ("piano_midi", "rnn_rbm")]
  assert nade["recurrence"] == "gru"
  assert "| piano_midi | rnn_nade (gru) | 2 / 48 |" in (
      polyphonic_benchmark.table(rows))


def test_rnn_rbm_drift_measures_teacher_forced_and_free_running_frames(
    tmp_path):
  from benchmarks import rnn_rbm_drift  # pylint: disable=g-import-not-at-top
  from trainer.models.recurrent import training  # pylint: disable=g-import-not-at-top
  from trainer.models.rnn_rbm import maths  # pylint: disable=g-import-not-at-top
  from trainer.models.rnn_rbm import training as rnn_rbm_training  # pylint: disable=g-import-not-at-top
  data_dir, model_dir = str(tmp_path / "pieces"), str(tmp_path / "model")
  rng = np.random.default_rng(0)
  train = fake_dataset.cycle_pieces(rng.integers(10, 30, 12), seed=1)
  spec = fake_dataset.write_piece_dataset(
      data_dir, train, fake_dataset.cycle_pieces(rng.integers(10, 30, 4),
                                                 seed=2))
  model = maths.RNNRBM(spec.n_columns, 8, 6, seed=1)
  training.save(model_dir, model, spec, {}, 1, np.full(spec.n_columns, 0.25),
                100, name="rnn_rbm", params=rnn_rbm_training.PARAMS)
  config = rnn_rbm_drift.DriftConfig(model_dir=model_dir, data_dir=data_dir,
                                     num_samples=6)
  out = rnn_rbm_drift.measure(config)
  assert out["temperature"] == 1.0  # no sampling.json
  assert out["data"]["most_notes"] == max(p.sum(1).max() for p in train)
  assert len(out["free_running"]["notes_per_frame_by_eighth"]) == 8
  for part in ("teacher_forced", "data"):
    assert sum(out[part]["histogram"]) == pytest.approx(1, abs=1e-3)
  assert out == rnn_rbm_drift.measure(config)  # seeded
  bernoulli = str(tmp_path / "bernoulli")
  with open(os.path.join(model_dir, "model.json")) as f:
    info = json.load(f)
  os.makedirs(bernoulli)
  with open(os.path.join(bernoulli, "model.json"), "w") as f:
    json.dump({**info, "model": "bernoulli"}, f)
  with pytest.raises(cli.UsageError):
    rnn_rbm_drift.measure(dataclasses.replace(config, model_dir=bernoulli))
  # An RNN-NADE's frames are drawn exactly, teacher-forced or free.
  from trainer.models.rnn_nade import maths as nade_maths  # pylint: disable=g-import-not-at-top
  from trainer.models.rnn_nade import training as nade_training  # pylint: disable=g-import-not-at-top
  nade_dir = str(tmp_path / "nade")
  nade = nade_maths.RNNNADE(spec.n_columns, 8, 6, seed=1)
  training.save(nade_dir, nade, spec, {}, 1, np.full(spec.n_columns, 0.25),
                100, name="rnn_nade", params=nade_training.PARAMS)
  out = rnn_rbm_drift.measure(dataclasses.replace(config, model_dir=nade_dir))
  assert sum(out["teacher_forced"]["histogram"]) == pytest.approx(1, abs=1e-3)
  # trainer.calibrate's choice is read from the model folder.
  from trainer.models import files  # pylint: disable=g-import-not-at-top
  files.save_sampling(nade_dir, {"settings": {"temperature": 0.7},
                                 "digest": files.digest(nade_dir)})
  cold = rnn_rbm_drift.measure(dataclasses.replace(config,
                                                   model_dir=nade_dir))
  assert cold["temperature"] == 0.7
  assert cold["teacher_forced"] != out["teacher_forced"]
  os.remove(os.path.join(nade_dir, files.SAMPLING_FILE))
  # Untrained (zero biases, weights ~0.01): each pitch on with p ~ 0.5.
  assert out["teacher_forced"]["notes_per_frame"] == pytest.approx(
      0.5 * spec.roll_spec.n_pitches, rel=0.1)
