"""trainer.calibrate picks the temperature whose samples fit the held-out
pieces; trainer.generate uses it unless --temperature is given."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from common import cli
from tests import fake_dataset
from trainer import config as config_lib
from trainer.comparison import lib as compare_lib
from trainer.generation import calibration
from trainer.generation import lib as generation
from trainer.models import files
from trainer.training import loop

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# Each pitch's chance of sounding at a frame, in the training pieces.
PROBS = np.array([0.45, 0.04, 0.3, 0.05, 0.35, 0.2, 0.03, 0.4, 0.06, 0.25,
                  0.04, 0.15])


def _pieces(n: int, probs: np.ndarray, seed: int) -> list:
  rng = np.random.default_rng(seed)
  return [(rng.random((48, len(probs))) < probs).astype(np.uint8)
          for _ in range(n)]


def _at_temperature(probs: np.ndarray, t: float) -> np.ndarray:
  """sigmoid(logit(p) / t): the frames a Bernoulli model samples at t."""
  return 1.0 / (1.0 + np.exp(-np.log(probs / (1 - probs)) / t))


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
  """A Bernoulli model of the training pieces, whose held-out pieces were
  drawn as the model samples at temperature 0.7: the known best."""
  root = tmp_path_factory.mktemp("calibration")
  data = str(root / "data")
  fake_dataset.write_piece_dataset(
      data, _pieces(40, PROBS, 1), _pieces(4, PROBS, 2),
      valid=_pieces(40, _at_temperature(PROBS, 0.7), 3))
  job = str(root / "job")
  values = dict(batch_size=8, epochs=1, summary_every_steps=100000)
  loop.train_and_evaluate(config_lib.TrainConfig(
      model="bernoulli", **{**config_lib.model_defaults("bernoulli",
                                                          set(values)),
                            **values}), data, job)
  return os.path.join(job, "model"), data


def test_picks_the_known_best_temperature(model_dir):
  model, data = model_dir
  record = calibration.calibrate(model, data)
  scores = {float(t): s["shortfall"] for t, s in record["scores"].items()}
  assert record["settings"] == {"temperature": 0.7}, scores
  assert record["split"] == "valid" and record["pieces"] == 40
  assert scores[0.7] < scores[1.0] and scores[0.7] < scores[0.6]
  # The samples scored are as long as trainer.generate's by default.
  loaded = files.load_model(model)
  default, _ = loaded.family.sampler(loaded, config_lib.GenerateConfig())
  assert record["steps"] == default.num_frames > 0
  assert {s["steps"] for s in record["scores"].values()} == {record["steps"]}
  with open(os.path.join(model, files.SAMPLING_FILE)) as f:
    assert json.load(f)["digest"] == files.digest(model)
  # The same seed, the same choice and file.
  again = calibration.calibrate(model, data)
  assert again["scores"] == record["scores"]


def _comparison(**gaps) -> dict:
  """Every feature on the data but `gaps`: {name: relative difference of a
  scalar, or overlap of a histogram}."""
  from trainer.comparison import features as mf  # pylint: disable=g-import-not-at-top
  out = {}
  for f in mf.FEATURES:
    value = gaps.get(f.name)
    out[f.name] = ({"overlap": 1.0 if value is None else value,
                    "relative_difference": 0.0} if f.kind == "histogram" else
                   {"overlap": 1.0, "relative_difference": value or 0.0})
  return out


def test_the_score_is_each_features_share_of_its_tolerance():
  n = len(_comparison())
  assert calibration.shortfall(_comparison()) == 0.0
  # Half a scalar's 15%, and a histogram at the goal's 0.85 (used up).
  assert calibration.shortfall(_comparison(
      notes_per_second=-0.075, ioi_histogram=0.85)) == pytest.approx(1.5 / n)
  # A tiny share missed by 50% or 90% weighs the same: it cannot outvote a
  # feature that one temperature brings within its goal and the other not.
  misses_notes = _comparison(silent_share=-0.5, notes_per_second=0.20)
  meets_notes = _comparison(silent_share=-0.9, notes_per_second=0.10)
  assert calibration.shortfall(meets_notes) < calibration.shortfall(
      misses_notes)
  assert calibration.shortfall(misses_notes) == pytest.approx(2 / n)


def test_generation_uses_the_calibration_unless_the_flag_is_given(
    model_dir, tmp_path):
  model, data = model_dir
  calibration.calibrate(model, data)
  out = str(tmp_path / "calibrated")
  generation.generate(model, out, config_lib.GenerateConfig(num_samples=2))
  with open(os.path.join(out, "generation.json")) as f:
    assert json.load(f)["temperature"] == 0.7
  mine = str(tmp_path / "mine")
  generation.generate(model, mine, config_lib.GenerateConfig(
      num_samples=2, temperature=1.0, explicit=frozenset({"temperature"})))
  with open(os.path.join(mine, "generation.json")) as f:
    assert json.load(f)["temperature"] == 1.0


def test_a_stale_or_foreign_calibration(model_dir, tmp_path):
  model, data = model_dir
  path = os.path.join(model, files.SAMPLING_FILE)
  # Its own calibration: the file must not depend on which test ran first.
  calibration.calibrate(model, data)
  with open(path) as f:
    record = json.load(f)
  try:
    # Made for other parameters (a model trained again): not used.
    with open(path, "w") as f:
      json.dump(dict(record, digest="0" * 64), f)
    assert files.load_sampling(model) is None
    config = config_lib.GenerateConfig(num_samples=2)
    assert calibration.apply(config, model) == (config, {})
    with open(path, "w") as f:
      f.write('{"settings": {"temperature": "hot"}}')
    with pytest.raises(files.ModelError, match="not a calibration written"):
      files.load_sampling(model)
  finally:
    with open(path, "w") as f:
      json.dump(record, f)


@pytest.mark.slow
def test_cli_prints_the_choice_and_bad_flags_are_one_line(model_dir):
  model, data = model_dir
  done = subprocess.run(
      [sys.executable, "-m", "trainer.calibrate", f"--model_dir={model}",
       f"--data_dir={data}"], cwd=ROOT, capture_output=True, text=True,
      timeout=300, env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3"))
  assert done.returncode == 0, done.stderr[-2000:]
  assert json.loads(done.stdout)["settings"] == {"temperature": 0.7}
  bad = subprocess.run(
      [sys.executable, "-m", "trainer.calibrate", f"--model_dir={model}"],
      cwd=ROOT, capture_output=True, text=True, timeout=120)
  lines = [line for line in bad.stderr.strip().splitlines()
           if line.startswith("trainer.calibrate")]
  assert bad.returncode == 2 and "--data_dir" in lines[0], bad.stderr


def test_held_out_pieces_come_from_both_splits_when_one_is_too_small(
    tmp_path):
  # A small corpus: one valid piece, one eval piece. One piece is not a
  # distribution; the two held-out splits together are.
  data = str(tmp_path / "small")
  fake_dataset.write_piece_dataset(
      data, _pieces(6, PROBS, 1), _pieces(1, PROBS, 2),
      valid=_pieces(1, PROBS, 3))
  pieces, split = compare_lib.heldout_pieces(data)
  assert (len(pieces), split) == (2, "valid+eval")
  lone = str(tmp_path / "lone")
  fake_dataset.write_piece_dataset(lone, _pieces(1, PROBS, 1), [])
  with pytest.raises(cli.UsageError, match="holds 1 piece"):
    compare_lib.heldout_pieces(lone)
