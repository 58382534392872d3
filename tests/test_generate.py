"""Batch generation: determinism, resumability, GCS, chaining, errors."""

import dataclasses
import glob
import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from common import cli
from preprocess import pianoroll
from tests import fake_dataset
from tests import midi_builders
from trainer.models import files as export
from trainer.generation import lib as generate_lib
from trainer.generation import storage as storage_lib
from trainer.models.rbm import maths as model_lib
from trainer.models.rbm import training as rbm_training
from trainer.models.rbm import sampling as rbm_sampling
from trainer import config as config_lib

T = fake_dataset.SMALL_TIMESTEPS
SPEC = fake_dataset.SMALL_SPEC
N = 2 * generate_lib.BLOCK + 22  # 3 blocks, the last one partial


def make_model(path, visible_bias=-2.0, seed=0):
  train = fake_dataset.structured_windows(200, seed=1)
  dataset = fake_dataset.write_dataset(os.path.join(path, "data"), train,
                                       train[:20])
  rng = np.random.default_rng(seed)
  rbm = model_lib.RBM(dataset.n_visible, 8)
  rbm.weights.assign(rng.normal(0, 1.0, (dataset.n_visible, 8)).astype(np.float32))
  rbm.visible_bias.assign(np.full(dataset.n_visible, visible_bias, np.float32))
  model_dir = os.path.join(path, "model")
  rbm_training.save(model_dir, rbm, dataset, {}, 1)
  return model_dir


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
  return make_model(str(tmp_path_factory.mktemp("gen")))


def config(**kw):
  """The seed preset (one window, T=1, sampled articulation): these tests are
  about bytes, shards and chaining, and a single window keeps them fast."""
  kw.setdefault("num_samples", N)
  kw.setdefault("gibbs_steps", 20)
  return cli.preset(config_lib.GenerateConfig, "seed", **kw)


def files(folder):
  out = {}
  for path in sorted(glob.glob(os.path.join(folder, "sample-*.mid"))):
    with open(path, "rb") as f:
      out[os.path.basename(path)] = f.read()
  return out


def test_same_bytes_whatever_the_shards_or_batching(model_dir, tmp_path):
  one = str(tmp_path / "one")
  summary = generate_lib.generate(model_dir, one, config())
  assert summary["written"] == N and summary["empty"] < N
  reference = files(one)
  assert len(reference) == N
  with open(os.path.join(one, "manifest.jsonl")) as f:
    manifest = [json.loads(line) for line in f]
  assert [m["id"] for m in manifest] == list(range(N))
  assert all(m["crc32c"] and m["bytes"] > 0 for m in manifest)

  sharded = str(tmp_path / "sharded")
  for shard in range(3):
    generate_lib.generate(model_dir, sharded,
                        config(num_shards=3, shard_index=shard))
  assert files(sharded) == reference
  assert sorted(glob.glob(os.path.join(sharded, "manifest-*-of-00003.jsonl")))

  small_calls = str(tmp_path / "small_calls")
  generate_lib.generate(model_dir, small_calls, config(blocks_per_call=1))
  assert files(small_calls) == reference

  other_seed = str(tmp_path / "seed1")
  generate_lib.generate(model_dir, other_seed, config(seed=1))
  assert files(other_seed) != reference


def test_rerun_skips_whole_files_and_rewrites_damaged_ones(model_dir, tmp_path):
  out = str(tmp_path / "out")
  generate_lib.generate(model_dir, out, config())
  reference = files(out)
  with open(os.path.join(out, "sample-000007.mid"), "wb") as f:
    f.write(reference["sample-000007.mid"][:10])  # truncated
  os.remove(os.path.join(out, "sample-000100.mid"))
  summary = generate_lib.generate(model_dir, out, config())
  assert summary["written"] == 2 and summary["already_present"] == N - 2
  assert files(out) == reference


def test_generation_json_records_the_model_and_older_folders_resume(
    model_dir, tmp_path):
  out = str(tmp_path / "out")
  generate_lib.generate(model_dir, out, config())
  path = os.path.join(out, generate_lib.SETTINGS_FILE)
  with open(path) as f:
    settings = json.load(f)
  # trainer.compare reads the samples on this grid.
  assert settings["model"]["roll_spec"] == {
      "encoding": "onoff", "low_note": 60, "high_note": 72,
      "steps_per_quarter": 4, "quantize": "round"}
  assert settings["model"]["model_dir"] == model_dir
  # A folder written before "model" was recorded is the same job.
  del settings["model"]
  with open(path, "w") as f:
    f.write(json.dumps(settings, indent=1, sort_keys=True))
  summary = generate_lib.generate(model_dir, out, config())
  assert summary["written"] == 0 and summary["already_present"] == N
  with open(path) as f:
    assert "model" in json.load(f)


def test_a_shard_removing_a_shared_folder_never_fails_anothers_write(
    tmp_path, monkeypatch):
  """Shards share `_progress/`; one that finishes removes the folders it
  leaves empty, which can happen between another's check that `_progress/`
  exists and its mkdir of its own folder (seen once in CI as 'No such file
  or directory: .../_progress/shard-00001'). The write makes them again."""
  mine, finished = (storage_lib.LocalStorage(str(tmp_path)) for _ in "ab")
  finished.write("_progress/shard-00000/000000", b"line")
  real_makedirs, calls = os.makedirs, []

  def racing_makedirs(name, exist_ok=False):
    calls.append(name)
    if len(calls) == 1:  # the parent exists; then shard 0 finishes
      finished.delete(finished.list("_progress/shard-00000/"))
      assert not os.path.exists(tmp_path / "_progress")
      os.mkdir(name)  # what makedirs does next: fails without the parent
    real_makedirs(name, exist_ok=exist_ok)

  monkeypatch.setattr(os, "makedirs", racing_makedirs)
  mine.write("_progress/shard-00001/000064", b"record")
  assert calls.count(str(tmp_path / "_progress" / "shard-00001")) == 2
  assert mine.read("_progress/shard-00001/000064") == b"record"
  assert mine.list("_progress/") == ["_progress/shard-00001/000064"]


def test_existing_output_is_not_overwritten(model_dir, tmp_path):
  out = str(tmp_path / "out")
  generate_lib.generate(model_dir, out, config())
  with pytest.raises(FileExistsError, match="--overwrite"):
    generate_lib.generate(model_dir, out, config(seed=5))
  summary = generate_lib.generate(model_dir, out, config(seed=5, overwrite=True))
  assert summary["written"] == N
  foreign = tmp_path / "foreign"
  foreign.mkdir()
  (foreign / "sample-000000.mid").write_bytes(b"mine")
  with pytest.raises(FileExistsError, match="sample-000000.mid"):
    generate_lib.generate(model_dir, str(foreign), config())
  assert (foreign / "sample-000000.mid").read_bytes() == b"mine"


@pytest.mark.slow
def test_kill_and_rerun_gives_exactly_the_uninterrupted_files(model_dir, tmp_path):
  cmd = [sys.executable, "-m", "trainer.generate", f"--model_dir={model_dir}",
         "--num_samples=4000", "--gibbs_steps=200", "--preset=seed"]
  env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
  killed = str(tmp_path / "killed")
  proc = subprocess.Popen(cmd + [f"--output={killed}"], env=env,
                          stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
  deadline = time.time() + 120
  while len(glob.glob(os.path.join(killed, "sample-*.mid"))) < 600:
    assert proc.poll() is None and time.time() < deadline
    time.sleep(0.05)
  proc.send_signal(signal.SIGKILL)
  proc.wait()
  partial = len(glob.glob(os.path.join(killed, "sample-*.mid")))
  assert 0 < partial < 4000
  subprocess.run(cmd + [f"--output={killed}"], env=env, check=True,
                 capture_output=True, timeout=300)
  whole = str(tmp_path / "whole")
  subprocess.run(cmd + [f"--output={whole}"], env=env, check=True,
                 capture_output=True, timeout=300)
  assert len(files(killed)) == 4000
  assert files(killed) == files(whole)
  assert not glob.glob(os.path.join(killed, ".tmp-*"))
  with open(os.path.join(killed, "manifest.jsonl")) as f:
    lines = f.read().splitlines()
  assert len(lines) == 4000


def test_windows_chain_through_the_clamped_overlap(model_dir, tmp_path):
  loaded = export.load_model(model_dir)
  cfg = config(num_windows=3, overlap=2)
  gen = rbm_sampling.Generator(loaded, cfg, None, None)
  pieces = gen.sample([0], attempt=0)
  assert pieces.shape == (generate_lib.BLOCK, T + 2 * (T - 2), SPEC.n_columns)
  # A primer's tail is clamped: every piece starts with it.
  primer = pianoroll.midi_to_matrix(pianoroll.parse_midi(
      midi_builders.make_midi([(62, 0, 1), (65, 0.5, 2)])), SPEC)
  for candidates in (1, 3):  # the primer's profile scores the first window
    gen = rbm_sampling.Generator(loaded, dataclasses.replace(
        cfg, candidates=candidates), primer, None)
    pieces = gen.sample([0], attempt=0)
    np.testing.assert_array_equal(
        pieces[:, :2],
        np.broadcast_to(primer[-2:], (generate_lib.BLOCK, 2, SPEC.n_columns)))


def test_primer_errors(model_dir, tmp_path):
  bad = tmp_path / "bad.mid"
  bad.write_bytes(b"nope")
  with pytest.raises(ValueError, match="not a readable MIDI"):
    generate_lib.generate(model_dir, str(tmp_path / "o"), config(primer=str(bad)))
  short = tmp_path / "short.mid"
  short.write_bytes(midi_builders.make_midi([(62, 0, 0.25)]))
  with pytest.raises(ValueError, match="at least --overlap=3"):
    generate_lib.generate(model_dir, str(tmp_path / "o"),
                        config(primer=str(short), overlap=3))


def test_empty_samples_are_counted_and_resampled(tmp_path):
  quiet = make_model(str(tmp_path / "quiet"), visible_bias=-7.0)
  out = str(tmp_path / "out")
  summary = generate_lib.generate(quiet, out, config(num_samples=64))
  assert summary["empty"] > 10
  again = generate_lib.generate(quiet, str(tmp_path / "again"),
                              config(num_samples=64, resample_empty=3))
  assert again["empty"] < summary["empty"] and again["resampled"] > 0


def test_seed_generator_and_data_init(model_dir, tmp_path):
  zeros = generate_lib.generate(model_dir, str(tmp_path / "z"),
                              config(init="zeros", gibbs_steps=1))
  assert zeros["written"] == N
  data_dir = os.path.join(os.path.dirname(model_dir), "data")
  summary = generate_lib.generate(model_dir, str(tmp_path / "d"),
                                config(init="data", data_dir=data_dir))
  assert summary["written"] == N
  with pytest.raises(ValueError, match="--init=data needs --data_dir"):
    config_lib.GenerateConfig(init="data")


def test_data_init_starts_from_the_data(model_dir, tmp_path):
  # One Gibbs step from two datasets of different windows: the same keyed
  # noise, so the samples differ only if the chains start from the data.
  def with_windows(name, on_columns):
    windows = np.zeros((40, T, SPEC.n_columns), np.uint8)
    windows[:, :, on_columns] = 1
    path = str(tmp_path / name)
    fake_dataset.write_dataset(path, windows, windows[:4])
    out = str(tmp_path / f"out_{name}")
    generate_lib.generate(model_dir, out, config(
        num_samples=64, init="data", data_dir=path, gibbs_steps=1))
    return files(out)
  silent = with_windows("silent", [])
  loud = with_windows("loud", slice(0, SPEC.n_columns // 2))
  assert silent.keys() == loud.keys()
  differ = sum(silent[name] != loud[name] for name in silent)
  assert differ > len(silent) // 2, differ


def test_data_of_another_layout_is_refused(model_dir, tmp_path):
  # Same n_visible, another grid: the windows would run, and mean nothing.
  other = pianoroll.RollSpec(SPEC.encoding, SPEC.low_note, SPEC.high_note,
                             2 * SPEC.steps_per_quarter)
  windows = fake_dataset.structured_windows(20, spec=other)
  fake_dataset.write_dataset(str(tmp_path / "d"), windows, windows, spec=other)
  with pytest.raises(generate_lib.GenerateError,
                     match="steps_per_quarter=8 but the model was trained on "
                     "steps_per_quarter=4"):
    generate_lib.generate(model_dir, str(tmp_path / "o"), config(
        init="data", data_dir=str(tmp_path / "d")))
  assert not os.path.exists(tmp_path / "o")


def test_bad_model_dir_is_clear(tmp_path):
  with pytest.raises(FileNotFoundError, match="model.json.*trainer.task"):
    generate_lib.generate(str(tmp_path), str(tmp_path / "o"), config())


def test_gcs_output_on_the_emulator(model_dir, gcs_bucket, tmp_path):
  from google.cloud import storage  # pylint: disable=g-import-not-at-top
  url = f"gs://{gcs_bucket}/run1"
  summary = generate_lib.generate(model_dir, url, config(previews=True,
                                                       num_previews=3))
  assert summary["written"] == N
  bucket = storage.Client().bucket(gcs_bucket)
  names = {b.name for b in bucket.list_blobs(prefix="run1/")}
  assert len([n for n in names if n.startswith("run1/sample-")]) == N
  assert "run1/manifest.jsonl" in names and "run1/previews/index.html" in names
  page = bucket.blob("run1/previews/index.html").download_as_bytes().decode()
  assert "<h1>window RBM samples: 3 previewed</h1>" in page
  assert not [n for n in names if "_progress" in n]
  local = str(tmp_path / "local")
  generate_lib.generate(model_dir, local, config())
  for name, data in files(local).items():
    assert bucket.blob(f"run1/{name}").download_as_bytes() == data
  rerun = generate_lib.generate(model_dir, url, config())
  assert rerun["written"] == 0 and rerun["already_present"] == N


def bias_only_model(path, play_p, articulate_p, spec=SPEC):
  """An RBM with zero weights: every visible unit is on with p = sigmoid(b)."""
  train = np.zeros((4, T, spec.n_columns), np.uint8)
  dataset = fake_dataset.write_dataset(os.path.join(path, "data"), train,
                                       train, spec=spec)
  rbm = model_lib.RBM(dataset.n_visible, 4)
  rbm.weights.assign(np.zeros((dataset.n_visible, 4), np.float32))
  logit = lambda p: np.log(p / (1 - p))
  row = np.full(spec.n_columns, logit(play_p), np.float32)
  row[spec.n_pitches:] = logit(articulate_p)
  rbm.visible_bias.assign(np.tile(row, T))
  model_dir = os.path.join(path, "model")
  rbm_training.save(model_dir, rbm, dataset, {}, 1)
  return export.load_model(model_dir)


def shares(loaded, **kw):
  """(share of play units on, share of articulate units on) in one block."""
  pieces = rbm_sampling.Generator(loaded, config(gibbs_steps=3, **kw), None,
                                None).sample([0], attempt=0)
  return (pieces[..., :SPEC.n_pitches].mean(),
          pieces[..., SPEC.n_pitches:].mean())


def test_articulate_threshold_decides_articulate_units_only(tmp_path):
  loaded = bias_only_model(str(tmp_path), play_p=0.6, articulate_p=0.3)
  play, articulate = shares(loaded)
  assert abs(play - 0.6) < 0.05 and abs(articulate - 0.3) < 0.05
  # p = 0.3 everywhere: above a threshold of 0.5 nowhere, above 0.2 always.
  play_high, articulate_high = shares(loaded, articulate_threshold=0.5)
  assert articulate_high == 0 and abs(play_high - 0.6) < 0.05
  play_low, articulate_low = shares(loaded, articulate_threshold=0.2)
  assert articulate_low == 1 and abs(play_low - 0.6) < 0.05


def test_temperature_divides_the_pre_activations(tmp_path):
  loaded = bias_only_model(str(tmp_path), play_p=0.2, articulate_p=0.2)
  logit = np.log(0.2 / 0.8)
  for temperature in (0.5, 1.0, 2.0):
    play, articulate = shares(loaded, temperature=temperature)
    expected = 1 / (1 + np.exp(-logit / temperature))
    assert abs(play - expected) < 0.03 and abs(articulate - expected) < 0.03


def test_sampling_lever_errors(tmp_path):
  with pytest.raises(ValueError, match="--temperature=0"):
    config_lib.GenerateConfig(temperature=0)
  with pytest.raises(ValueError, match="--articulate_threshold=1.5"):
    config_lib.GenerateConfig(articulate_threshold=1.5)
  roll = pianoroll.RollSpec("roll", 60, 72, 4)
  loaded = bias_only_model(str(tmp_path), 0.5, 0.5, spec=roll)
  with pytest.raises(ValueError, match="needs an onoff model"):
    rbm_sampling.Generator(loaded, config(articulate_threshold=0.5), None, None)
  # The default threshold is not a choice the user made: a roll model runs.
  rbm_sampling.Generator(loaded, config_lib.GenerateConfig(), None, None)


def test_play_threshold_decides_play_units_only(tmp_path):
  loaded = bias_only_model(str(tmp_path), play_p=0.6, articulate_p=0.3)
  play, articulate = shares(loaded, play_threshold=0.5)
  assert play == 1 and abs(articulate - 0.3) < 0.05
  play, articulate = shares(loaded, play_threshold=0.7,
                            articulate_threshold=0.2)
  assert play == 0 and articulate == 1


def _pitch_classes(windows, skip):
  """[rows, 12] sounding steps per pitch class from step `skip` on (numpy,
  independent of generate_lib's projection)."""
  play = windows[:, skip:, :SPEC.n_pitches].sum(axis=1).astype(np.float64)
  out = np.zeros((len(windows), 12))
  for column in range(SPEC.n_pitches):
    out[:, (SPEC.low_note + column) % 12] += play[:, column]
  return out


def _minus_kl(counts, profile):
  q = counts / np.maximum(counts.sum(axis=1, keepdims=True), 1e-9)
  p = (profile + 1) / (profile + 1).sum(axis=1, keepdims=True)
  with np.errstate(divide="ignore", invalid="ignore"):
    terms = np.where(q > 0, q * np.log(q / p), 0.0)
  return -terms.sum(axis=1)


def test_candidates_keep_the_best_pitch_class_agreement(model_dir):
  loaded = export.load_model(model_dir)
  cfg = config(num_windows=2, overlap=1, candidates=3)
  gen = rbm_sampling.Generator(loaded, cfg, None, None)
  pieces = gen.sample([0], attempt=0)
  first = pieces[:, :T]
  # Window 1's candidates, drawn again from window 0's end: candidate 0 is
  # what one candidate would have drawn (the same streams).
  mask = np.zeros(loaded.model.n_visible, bool)
  mask[:SPEC.n_columns] = True
  values = np.zeros((generate_lib.BLOCK, loaded.model.n_visible), np.float32)
  values[:, :SPEC.n_columns] = first[:, -1]
  starts = np.zeros_like(values)
  candidates = gen._chains([0], starts, mask, values, 1, 3).numpy().reshape(
      3, generate_lib.BLOCK, T, SPEC.n_columns)
  single = rbm_sampling.Generator(loaded, dataclasses.replace(
      cfg, candidates=1), None, None).sample([0], attempt=0)
  np.testing.assert_array_equal(single[:, :T], first)
  np.testing.assert_array_equal(single[:, T:], candidates[0][:, 1:])
  # The kept one scores best against window 0's profile (first on ties).
  scores = np.stack([_minus_kl(_pitch_classes(c, 1), _pitch_classes(first, 0))
                     for c in candidates])
  best = np.argmax(scores, axis=0)
  assert len(set(best)) > 1  # the rule did choose
  np.testing.assert_array_equal(
      pieces[:, T:], candidates[best, np.arange(generate_lib.BLOCK)][:, 1:])


def test_more_candidates_stay_closer_to_the_opening(model_dir):
  loaded = export.load_model(model_dir)

  def drift(candidates):
    pieces = rbm_sampling.Generator(loaded, config(
        num_windows=4, overlap=1, candidates=candidates), None, None).sample(
            [0], attempt=0)
    opening = _pitch_classes(pieces[:, :T], 0)
    rest = _pitch_classes(pieces[:, T:], 0)
    return -_minus_kl(rest, opening).mean()
  assert drift(8) < 0.7 * drift(1)


def test_free_energy_candidates_keep_the_lowest_free_energy(model_dir):
  loaded = export.load_model(model_dir)
  cfg = config(num_windows=2, overlap=1, candidates=4,
               candidate_score="free_energy")
  pieces = rbm_sampling.Generator(loaded, cfg, None, None).sample([0], 0)
  gen = rbm_sampling.Generator(loaded, cfg, None, None)
  mask = np.zeros(loaded.model.n_visible, bool)
  mask[:SPEC.n_columns] = True
  values = np.zeros((generate_lib.BLOCK, loaded.model.n_visible), np.float32)
  values[:, :SPEC.n_columns] = pieces[:, T - 1]
  candidates = gen._chains([0], np.zeros_like(values), mask, values, 1, 4)
  energies = np.stack([loaded.model.free_energy(c).numpy() for c in candidates])
  window = np.concatenate([pieces[:, T - 1:T], pieces[:, T:]], axis=1)
  kept = loaded.model.free_energy(
      window.reshape(generate_lib.BLOCK, -1).astype(np.float32)).numpy()
  np.testing.assert_allclose(kept, energies.min(axis=0), rtol=1e-5)


def test_candidate_errors():
  with pytest.raises(ValueError, match="--candidates=0"):
    config_lib.GenerateConfig(candidates=0)
  with pytest.raises(ValueError, match="--candidates=65"):
    config_lib.GenerateConfig(candidates=65)
  with pytest.raises(ValueError, match="--play_threshold=2"):
    config_lib.GenerateConfig(play_threshold=2)
  # One candidate: generation.json as before these settings, so older
  # output resumes.
  assert "candidates" not in config().settings()
  assert "play_threshold" not in config().settings()


@pytest.mark.parametrize("score", ["pitch_class", "free_energy"])
def test_candidates_do_not_depend_on_the_blocks_of_a_call(model_dir, score):
  loaded = export.load_model(model_dir)
  gen = rbm_sampling.Generator(loaded, config(
      num_windows=3, overlap=1, candidates=3, candidate_score=score), None,
                               None)
  together = gen.sample([0, 1], attempt=0)
  np.testing.assert_array_equal(together[generate_lib.BLOCK:],
                                gen.sample([1], attempt=0))
