"""Generation from an RNN-RBM: long pieces, determinism, resume, primer, CLI."""

import glob
import json
import os
import subprocess
import sys

import numpy as np
import pytest

from preprocess import pianoroll
from preprocess import records
from tests import midi_builders
from tests.test_generate import make_model as make_window_rbm
from trainer import config as config_lib
from trainer.models.rnn_rbm import settings as rnn_settings
from trainer.models import files as export
from trainer.generation import lib as generate_lib
from trainer.models.recurrent import sampling as frame_sampling
from trainer.models.recurrent import training as sequence_training
from trainer.models.rnn_rbm import sampling as generate_rnn_rbm
from trainer import primer as primer_lib
from trainer.generation import previews
from trainer.models.rnn_rbm import maths as rnn_rbm
from trainer.models.rnn_rbm import training as sequence_train_lib

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BLOCK = generate_lib.BLOCK
N = 2 * BLOCK + 22  # 3 blocks, the last one partial
FRAMES = 24
# Whole pieces on a quarter-note grid, 12 pitches (60..71).
DATASET = records.DatasetSpec(
    encoding="roll", low_note=60, high_note=72, steps_per_quarter=1,
    num_timesteps=0, stride=0, n_visible=0, unit_means=[],
    counts={"windows": {"train": 3, "eval": 1}})
V = DATASET.n_columns


def save(path, model) -> str:
  sequence_training.save(path, model, DATASET, {"model": "rnn_rbm"}, 1,
                         frame_means=[0.2] * V, train_frames=10,
                         name="rnn_rbm", params=sequence_train_lib.PARAMS)
  return path


def random_model(path, seed=0) -> str:
  """Weights large enough that frames depend on W and on the history."""
  rng = np.random.default_rng(seed)
  model = rnn_rbm.RNNRBM(V, 8, 6)
  for var, scale in ((model.weights, 1.0), (model.w_uv, 1.0), (model.w_uh, 1.0),
                     (model.w_vu, 1.0), (model.w_uu, 0.5)):
    var.assign(rng.normal(0, scale, var.shape).astype(np.float32))
  model.visible_bias.assign(np.full(V, -1.0, np.float32))
  return save(path, model)


def copy_model(path) -> str:
  """W = 0 and u(t) = +-1 where frame t is on/off, which makes the next frame
  the same (p = sigmoid(+-20)); u0 = -1: silence without a primer."""
  model = rnn_rbm.RNNRBM(V, 4, V, zero_bias_projections=True)
  model.weights.assign(np.zeros((V, 4), np.float32))
  model.w_vu.assign(20 * np.eye(V, dtype=np.float32))
  model.w_uu.assign(np.zeros((V, V), np.float32))
  model.b_u.assign(np.full(V, -10.0, np.float32))
  model.w_uv.assign(20 * np.eye(V, dtype=np.float32))
  model.u0.assign(-np.ones(V, np.float32))
  return save(path, model)


def bias_only_model(path, p) -> str:
  """Every unit on with probability p, independently of everything."""
  model = rnn_rbm.RNNRBM(V, 4, 3, zero_bias_projections=True)
  model.weights.assign(np.zeros((V, 4), np.float32))
  model.visible_bias.assign(np.full(V, np.log(p / (1 - p)), np.float32))
  return save(path, model)


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
  return random_model(str(tmp_path_factory.mktemp("rnn_rbm")))


def config(**kw):
  kw.setdefault("num_samples", N)
  kw.setdefault("num_frames", FRAMES)
  kw.setdefault("gibbs_steps_per_frame", 3)
  return config_lib.GenerateConfig(**kw)


def files(folder):
  out = {}
  for path in sorted(glob.glob(os.path.join(folder, "sample-*.mid"))):
    with open(path, "rb") as f:
      out[os.path.basename(path)] = f.read()
  return out


def read_lines(path) -> list:
  with open(path) as f:
    return [json.loads(line) for line in f]


def matrix(data: bytes) -> np.ndarray:
  return pianoroll.midi_to_matrix(pianoroll.parse_midi(data),
                                  DATASET.roll_spec, num_steps=FRAMES)


def test_same_bytes_whatever_the_shards_calls_or_blocks(model_dir, tmp_path,
                                                         monkeypatch):
  one = str(tmp_path / "one")
  summary = generate_lib.generate(model_dir, one, config())
  assert summary["written"] == N and summary["empty"] < N // 2
  reference = files(one)
  assert len(reference) == N
  manifest = read_lines(os.path.join(one, "manifest.jsonl"))
  assert [m["id"] for m in manifest] == list(range(N))
  # FRAMES quarter notes at 120 bpm.
  assert {m["duration_s"] for m in manifest} == {FRAMES * 0.5}
  pieces = [matrix(data) for data in reference.values()]
  assert len({p.tobytes() for p in pieces}) == N  # every sample its own
  with open(os.path.join(one, "generation.json")) as f:
    settings = json.load(f)
  assert settings["num_frames"] == FRAMES
  assert settings["gibbs_steps_per_frame"] == 3

  sharded = str(tmp_path / "sharded")
  for shard in range(2):
    generate_lib.generate(model_dir, sharded,
                          config(num_shards=2, shard_index=shard))
  assert files(sharded) == reference

  # One block per call, and the pieces made 7 frames per model call.
  monkeypatch.setattr(frame_sampling, "FRAMES_PER_CALL", 7)
  small = str(tmp_path / "small")
  generate_lib.generate(model_dir, small, config(blocks_per_call=1))
  assert files(small) == reference

  other_seed = str(tmp_path / "seed1")
  generate_lib.generate(model_dir, other_seed, config(seed=1))
  assert files(other_seed) != reference


def test_a_crashed_run_resumes_to_the_same_bytes(model_dir, tmp_path,
                                                 monkeypatch):
  whole = str(tmp_path / "whole")
  generate_lib.generate(model_dir, whole, config())
  sample = frame_sampling.FrameGenerator.sample

  def crash_on_the_last_block(self, blocks, attempt):
    if 2 in blocks:
      raise RuntimeError("killed")
    return sample(self, blocks, attempt)
  monkeypatch.setattr(frame_sampling.FrameGenerator, "sample",
                      crash_on_the_last_block)
  out = str(tmp_path / "out")
  with pytest.raises(RuntimeError, match="killed"):
    generate_lib.generate(model_dir, out, config(blocks_per_call=1))
  assert len(files(out)) == 2 * BLOCK
  assert not os.path.exists(os.path.join(out, "manifest.jsonl"))
  monkeypatch.setattr(frame_sampling.FrameGenerator, "sample", sample)
  with open(os.path.join(out, "sample-000003.mid"), "r+b") as f:
    f.truncate(20)  # damaged after it was recorded
  summary = generate_lib.generate(model_dir, out, config())
  assert summary["already_present"] == 2 * BLOCK - 1
  assert summary["written"] == N - 2 * BLOCK + 1
  assert files(out) == files(whole)
  assert len(read_lines(os.path.join(out, "manifest.jsonl"))) == N


def test_the_primer_is_continued(tmp_path):
  model = copy_model(str(tmp_path / "model"))
  primer = tmp_path / "primer.mid"
  # Quarter-note grid: 60 sounds on steps 0-2, 64 joins on step 2 only.
  primer.write_bytes(midi_builders.make_midi([(60, 0, 3), (64, 2, 3)]))
  out = str(tmp_path / "primed")
  summary = generate_lib.generate(model, out, config(
      num_samples=5, primer=str(primer)))
  last = np.zeros(V, np.uint8)
  last[[0, 4]] = 1
  for data in files(out).values():
    np.testing.assert_array_equal(matrix(data), np.tile(last, (FRAMES, 1)))
  assert summary["empty"] == 0
  # Without the primer the same model starts from u0: silence.
  plain = generate_lib.generate(model, str(tmp_path / "plain"),
                                config(num_samples=5))
  assert plain["empty"] == 5


def test_bad_primers_are_one_line_usage_errors(model_dir, tmp_path):
  out = tmp_path / "o"
  bad = tmp_path / "bad.mid"
  bad.write_bytes(b"nope")
  smpte = tmp_path / "smpte.mid"
  good = midi_builders.make_midi([(62, 0, 1)])
  smpte.write_bytes(good[:12] + bytes([0x100 - 25, 40]) + good[14:])
  silent = tmp_path / "silent.mid"
  silent.write_bytes(midi_builders.make_midi([]))
  for path, words in ((bad, "not a readable MIDI"), (smpte, "SMPTE"),
                      (silent, "no notes")):
    with pytest.raises(primer_lib.PrimerError, match=words) as e:
      generate_lib.generate(model_dir, str(out), config(primer=str(path)))
    assert "\n" not in str(e.value) and f"--primer={path}" in str(e.value)
  with pytest.raises(FileNotFoundError, match="--primer="):
    generate_lib.generate(model_dir, str(out), config(
        primer=str(tmp_path / "missing.mid")))
  assert not out.exists()


def test_flags_of_the_other_model_name_the_right_one(model_dir, tmp_path):
  out = str(tmp_path / "o")
  for kw, words in (({"num_windows": 3}, "--num_frames"),
                    ({"gibbs_steps": 40}, "--gibbs_steps_per_frame=40"),
                    ({"init": "data", "data_dir": "d"}, "--primer"),
                    ({"articulate_threshold": 0.5}, "pass 0"),
                    ({"candidates": 8}, "--candidates=8"),
                    ({"play_threshold": 0.5}, "leave them out")):
    with pytest.raises(frame_sampling.GenerateError, match=words):
      generate_lib.generate(model_dir, out, config(**kw))
  window_rbm = make_window_rbm(str(tmp_path / "rbm"))
  t = export.load_model(window_rbm).dataset.num_timesteps
  with pytest.raises(frame_sampling.GenerateError,
                     match="--num_windows=4"):  # 4 windows of t - t//3 new steps
    generate_lib.generate(window_rbm, out, config(num_frames=3 * t))
  with pytest.raises(frame_sampling.GenerateError,
                     match="--gibbs_steps "):
    generate_lib.generate(window_rbm, out, config_lib.GenerateConfig(
        gibbs_steps_per_frame=5))
  assert not os.path.exists(out)


def test_temperature_and_resampling_of_empty_pieces(tmp_path):
  model = bias_only_model(str(tmp_path / "m"), 0.2)
  loaded = export.load_model(model)
  logit = np.log(0.2 / 0.8)
  for temperature in (0.5, 1.0, 2.0):
    _, gen = generate_rnn_rbm.prepare(loaded, config(temperature=temperature))
    share = gen.sample([0], 0).mean()
    assert abs(share - 1 / (1 + np.exp(-logit / temperature))) < 0.02
  # p = 0.02 over 4 frames x 12 units: about 38% of the pieces are empty.
  sparse = bias_only_model(str(tmp_path / "sparse"), 0.02)
  kept = generate_lib.generate(sparse, str(tmp_path / "kept"),
                               config(num_samples=64, num_frames=4))
  redone = generate_lib.generate(sparse, str(tmp_path / "redone"), config(
      num_samples=64, num_frames=4, resample_empty=3))
  assert kept["empty"] > 10 and redone["resampled"] > 0
  assert redone["empty"] < kept["empty"] // 4


def test_noise_ranges_do_not_overlap():
  # Two streams per Gibbs step within the model's streams of one frame.
  assert 2 * rnn_settings.MAX_FRAME_GIBBS_STEPS < rnn_rbm._GEN_STREAMS_PER_FRAME  # pylint: disable=protected-access
  assert config_lib.MAX_NUM_FRAMES < frame_sampling.ATTEMPT_FRAMES


def test_gcs_output_and_previews_of_long_pieces(model_dir, gcs_bucket,
                                                tmp_path):
  from google.cloud import storage  # pylint: disable=g-import-not-at-top
  cfg = config(num_samples=3, num_frames=300, previews=True, num_previews=2)
  summary = generate_lib.generate(model_dir, f"gs://{gcs_bucket}/r", cfg)
  assert summary["written"] == 3
  local = str(tmp_path / "local")
  generate_lib.generate(model_dir, local, cfg)
  bucket = storage.Client().bucket(gcs_bucket)
  for name, data in files(local).items():
    assert bucket.blob(f"r/{name}").download_as_bytes() == data
  page = bucket.blob("r/previews/index.html").download_as_bytes().decode()
  assert "<h1>RNN-RBM samples: 2 previewed</h1>" in page
  assert "RNN-RBM, 300 frames" in page and "150.0 s (audio: first 120 s)" in page
  # 300 steps: 3 px per step, about a screen wide; the audio is cut at 120 s.
  png = (tmp_path / "local" / "previews" / "sample-000000.png").read_bytes()
  width = int.from_bytes(png[16:20], "big")
  assert width == 300 * 3 + 2
  wav = (tmp_path / "local" / "previews" / "sample-000000.wav").read_bytes()
  seconds = (len(wav) - 44) / 2 / 22050
  assert 100 < seconds <= previews.MAX_AUDIO_SECONDS + 2


def run_cli(*args):
  return subprocess.run(
      [sys.executable, "-m", "trainer.generate", *args], cwd=ROOT,
      capture_output=True, text=True, timeout=300, check=False,
      env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3"))


@pytest.mark.slow
def test_cli_end_to_end_and_its_one_line_errors(model_dir, tmp_path):
  out = str(tmp_path / "cli")
  done = run_cli(f"--model_dir={model_dir}", f"--output={out}",
                 "--num_samples=3", "--gibbs_steps_per_frame=2")
  assert done.returncode == 0, done.stderr[-2000:]
  manifest = read_lines(os.path.join(out, "manifest.jsonl"))
  # The default length: 32 bars of 4/4 on the model's quarter-note grid.
  assert [m["duration_s"] for m in manifest] == [64.0] * 3
  # Temperature: 1 unless given, and a given 0.9 (the window RBM's default)
  # is taken as given, not as "not set".
  with open(os.path.join(out, "generation.json")) as f:
    assert json.load(f)["temperature"] == 1.0
  warm = str(tmp_path / "warm")
  done = run_cli(f"--model_dir={model_dir}", f"--output={warm}",
                 "--num_samples=1", "--gibbs_steps_per_frame=2",
                 "--temperature=0.9")
  assert done.returncode == 0, done.stderr[-2000:]
  with open(os.path.join(warm, "generation.json")) as f:
    assert json.load(f)["temperature"] == 0.9
  for args, words in ((["--num_windows=2"], "--num_frames"),
                      (["--num_frames=-1"], "--num_frames=-1")):
    bad = run_cli(f"--model_dir={model_dir}", f"--output={tmp_path / 'x'}",
                  *args)
    assert bad.returncode == 2, bad.stderr[-2000:]
    # TensorFlow's C++ start-up lines aside, one line of ours.
    ours = [line for line in bad.stderr.splitlines() if "trainer" in line]
    assert len(ours) == 1, bad.stderr
    assert ours[0].startswith("trainer.generate: error: ") and words in ours[0]
    assert "Traceback" not in bad.stderr


@pytest.mark.slow
def test_the_cli_with_one_thread_per_op_writes_the_same_bytes(tmp_path):
  # trainer.generate gives each op one thread for an RNN-RBM
  # (configure_threads); this process keeps TensorFlow's default pools. At
  # the tutorial's shape (88 keys, H=150, U=100) the ops are big enough for
  # the default pools to split them.
  keys = records.DatasetSpec(
      encoding="roll", low_note=21, high_note=109, steps_per_quarter=1,
      num_timesteps=0, stride=0, n_visible=0, unit_means=[],
      counts={"windows": {"train": 3, "eval": 1}})
  rng = np.random.default_rng(3)
  model = rnn_rbm.RNNRBM(88, 150, 100)
  for var in (model.weights, model.w_uv, model.w_uh, model.w_vu, model.w_uu):
    var.assign(rng.normal(0, 0.3, var.shape).astype(np.float32))
  model_dir = str(tmp_path / "model")
  sequence_training.save(model_dir, model, keys, {"model": "rnn_rbm"}, 1,
                         frame_means=[0.05] * 88, train_frames=10,
                         name="rnn_rbm", params=sequence_train_lib.PARAMS)
  flags = {"num_samples": 130, "num_frames": 16, "gibbs_steps_per_frame": 4}
  cli_out = str(tmp_path / "cli")
  done = run_cli(f"--model_dir={model_dir}", f"--output={cli_out}",
                 *[f"--{k}={v}" for k, v in flags.items()])
  assert done.returncode == 0, done.stderr[-2000:]
  here = str(tmp_path / "here")
  generate_lib.generate(model_dir, here, config_lib.GenerateConfig(**flags))
  reference = files(here)
  assert len(reference) == 130 and files(cli_out) == reference


def test_a_window_rbms_settings_file_is_as_before():
  # generation.json decides whether a rerun resumes: an RBM job started
  # before the RNN-RBM's flags existed must still match.
  settings = config_lib.GenerateConfig().settings()
  assert "num_frames" not in settings
  assert "gibbs_steps_per_frame" not in settings
  assert "num_frames" in config().settings()
