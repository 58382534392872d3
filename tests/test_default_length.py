"""Samples are as long as the corpus's median piece (at least 16 bars):
preprocessing counts piece lengths, every model's sampler reads them."""

import dataclasses
import json
import os

import numpy as np
import pytest

from preprocess import pianoroll
from preprocess import records
from tests import fake_dataset
from tests import midi_builders
from trainer import config as config_lib
from trainer.generation import lib as generation
from trainer.models import base
from trainer.models.rbm import sampling as rbm_sampling


def _spec(piece_bars: dict | None, spq: int = 4,
          num_timesteps: int = 15) -> records.DatasetSpec:
  roll = pianoroll.RollSpec("onoff", 60, 72, spq)
  counts = {"windows": {"train": 1}}
  if piece_bars is not None:
    counts["piece_bars"] = piece_bars
  return records.DatasetSpec(
      encoding=roll.encoding, low_note=roll.low_note, high_note=roll.high_note,
      steps_per_quarter=spq, num_timesteps=num_timesteps,
      stride=num_timesteps, n_visible=num_timesteps * roll.n_columns,
      unit_means=[0.0] * (num_timesteps * roll.n_columns), counts=counts)


@pytest.mark.parametrize("histogram,median", [
    ({"20": 1}, 20),
    ({"10": 2, "30": 1}, 10),
    ({"10": 1, "30": 1}, 30),  # the upper median of an even count
    ({"8": 1, "17": 3, "90": 2}, 17),
    ({}, None), (None, None),
    ({"x": 1}, None),  # hand-edited: no median, the old default
])
def test_median_piece_bars(histogram, median):
  assert _spec(histogram).median_piece_bars() == median


def _loaded(spec):
  return base.LoadedModel(name="rbm", model=None, dataset=spec, config={},
                          step=0, info={})


@pytest.mark.parametrize("histogram,windows", [
    # 20 bars of 16 steps = 320 steps; windows of 15 steps advancing by 10
    # (a third overlaps): 1 + ceil(305 / 10) = 32 windows, 325 steps.
    ({"20": 3}, 32),
    # A corpus of 4-bar tunes still gets 16 bars: 1 + ceil(241 / 10) = 26.
    ({"4": 5}, 26),
    (None, rbm_sampling.FALLBACK_NUM_WINDOWS),  # an older dataset.json
])
def test_window_rbm_reaches_the_median_piece(histogram, windows):
  config = config_lib.GenerateConfig()
  assert config.num_windows == 0
  resolved = rbm_sampling.with_length(config, _loaded(_spec(histogram)))
  assert resolved.num_windows == windows
  given = dataclasses.replace(config, num_windows=3)  # a user's own count
  assert rbm_sampling.with_length(given, _loaded(_spec(histogram))) is given


def test_frame_models_reach_the_median_piece():
  length = lambda spec, **kw: base.frame_model_length(
      config_lib.GenerateConfig(**kw), spec, config_lib.MIN_BARS,
      config_lib.DEFAULT_BARS, config_lib.MAX_NUM_FRAMES)
  assert length(_spec({"40": 1}, spq=1)) == 160
  assert length(_spec({"5": 9}, spq=2)) == 16 * 8
  assert length(_spec(None, spq=1)) == config_lib.DEFAULT_BARS * 4
  assert length(_spec({"40": 1}, spq=1), num_frames=70) == 70
  # A corpus of very long pieces: no longer than a MIDI file can hold.
  huge = _spec({"100000": 1}, spq=4)
  assert length(huge) == min(base.max_piece_steps(huge.roll_spec),
                             config_lib.MAX_NUM_FRAMES)


def test_preprocessing_counts_piece_lengths(tmp_path):
  """Three pieces of 3, 20 and 21.25 bars (as written, every split): the
  histogram counts bars of 4 quarters rounded up."""
  from preprocess import pipeline  # pylint: disable=g-import-not-at-top
  from preprocess.config import PreprocessConfig  # pylint: disable=g-import-not-at-top
  corpus = tmp_path / "corpus"
  corpus.mkdir()
  for name, quarters in (("a", 12), ("b", 80), ("c", 85)):
    notes = [(60 + i % 5, i, i + 1) for i in range(quarters)]
    (corpus / f"{name}.mid").write_bytes(midi_builders.make_midi(notes))
  out = str(tmp_path / "dataset")
  counts = pipeline.run_pipeline([str(corpus / "*.mid")], out,
                                 PreprocessConfig(eval_fraction=0.0))
  assert counts["piece_bars"] == {"3": 1, "20": 1, "22": 1}
  with open(os.path.join(out, records.SPEC_FILENAME)) as f:
    spec = records.DatasetSpec.from_json(f.read())
  assert spec.median_piece_bars() == 20


def test_generation_writes_median_length_samples(tmp_path):
  """End to end: a window RBM on a dataset whose pieces are 24 bars writes
  samples of 24+ bars by default; its generation.json records the count."""
  data = str(tmp_path / "data")
  spec = fake_dataset.write_dataset(
      data, fake_dataset.structured_windows(40, seed=1),
      fake_dataset.structured_windows(8, seed=2))
  with open(os.path.join(data, records.SPEC_FILENAME)) as f:
    raw = json.load(f)
  raw["counts"]["piece_bars"] = {"24": 3, "2": 1}
  with open(os.path.join(data, records.SPEC_FILENAME), "w") as f:
    json.dump(raw, f)
  from trainer.training import loop  # pylint: disable=g-import-not-at-top
  job = str(tmp_path / "job")
  loop.train_and_evaluate(
      config_lib.TrainConfig(num_hidden=4, batch_size=10, max_steps=2,
                             summary_every_steps=100000), data, job)
  out = str(tmp_path / "samples")
  generation.generate(os.path.join(job, "model"), out,
                      config_lib.GenerateConfig(num_samples=2, gibbs_steps=2))
  t = spec.num_timesteps  # 4 steps, a third (1) overlaps: stride 3
  windows = 1 + -(-(24 * 16 - t) // 3)
  with open(os.path.join(out, "generation.json")) as f:
    assert json.load(f)["num_windows"] == windows
  with open(os.path.join(out, "manifest.jsonl")) as f:
    durations = [json.loads(line)["duration_s"] for line in f]
  steps = t + (windows - 1) * 3
  assert np.allclose(durations, steps * 60 / 120 / 4)
