"""Sampling settings chosen by the data: the temperature whose samples sit
closest to the corpus's held-out pieces.

The best temperature depends on the corpus. Measured on the window RBM's
defaults (benchmarks/RESULTS.md, "The default recipe on six styles"): on the
Essen folk songs 0.9 left 61% of the steps silent (the tunes: 3%) and 0.7
brought that to 20%, while on the chorales 0.7 cut the notes per second from
8.6 to 7.0 (Bach: 8.9). So `make demo` calibrates: for each temperature of a
small grid, one block of samples is drawn and measured against excerpts of
the same length of the held-out pieces (the valid split, else eval) with
trainer.compare's features. A frame model's samples are as long as
trainer.generate makes them (the corpus's median piece): a temperature below
1 can look best over 8 bars and still let a long piece sink, bar after bar,
into silence or thin textures (Piano-midi.de with the RNN-NADE's count head:
at 0.8, 20% of the steps silent over 664 frames, against the data's 5.5%).
The window RBM's samples are CALIBRATION_BARS bars. The temperature with
the smallest mean shortfall is written to the model folder (sampling.json,
with the digest of the parameters it was made for), and trainer.generate uses
it unless --temperature is given.

Shortfall of one feature: the share of its goal's tolerance the samples use,
1 when it misses (`shortfall`); the mean over every feature is the score. The
same seed draws every candidate's samples, so the choice does not depend on
luck of the draw between candidates.
"""

import dataclasses

import numpy as np

from trainer import config as config_lib
from trainer.comparison import features as mf
from trainer.comparison import lib as compare_lib
from trainer.models import files

# Temperatures tried (1: the model as trained; below 1 sharpens toward its
# modes, above 1 flattens).
TEMPERATURES = (0.5, 0.6, 0.7, 0.8, 0.9, 1.0)
# Length of the window RBM's calibration samples and data excerpts (4/4
# bars); a frame model's are as long as its default samples.
CALIBRATION_BARS = 8


def shortfall(comparison: dict) -> float:
  """Mean over features of the share of its goal's tolerance the samples
  use, a feature that misses counting 1 (0: every feature on the data; a
  score under 1 / 14 leaves no feature missing).

  Each feature on the goal's own scale: |relative difference| / 15% for a
  scalar, (1 - overlap) / (1 - 0.85) for a histogram. A feature no
  temperature brings within its goal then weighs the same at every
  temperature: a tiny share such as the chorales' silent steps (0.8%),
  whose relative difference swings by tens of points, cannot outvote the
  features a temperature does bring to the data.
  """
  kinds = {f.name: f.kind for f in mf.FEATURES}
  values = [(1.0 - r["overlap"]) / (1.0 - mf.HISTOGRAM_MIN_OVERLAP)
            if kinds[name] == "histogram"
            else abs(r["relative_difference"]) / mf.SCALAR_TOLERANCE
            for name, r in comparison.items()]
  return float(np.mean(np.minimum(1.0, values)))


def _window_model_steps(roll_spec) -> int:
  """The window RBM's calibration length on the grid: CALIBRATION_BARS bars
  of 4/4."""
  return CALIBRATION_BARS * 4 * roll_spec.steps_per_quarter


def _length_config(loaded, temperature: float, seed: int):
  """One block of samples at `temperature`, for any model: a frame model's
  as long as trainer.generate makes them by default (num_frames 0: its
  sampler fills in the corpus's median piece length), the window RBM's
  CALIBRATION_BARS bars of windows."""
  spec = loaded.dataset
  steps = _window_model_steps(spec.roll_spec)
  t = spec.num_timesteps
  windows = 1
  if t:  # a window model: windows advance by two thirds of a window
    stride = max(1, t - max(1, t // 3))
    windows = 1 + max(0, -(-(steps - t) // stride))
  return config_lib.GenerateConfig(
      num_samples=config_lib.GENERATION_BLOCK, temperature=temperature, seed=seed,
      num_frames=0, num_windows=windows, explicit=frozenset({"temperature"}))


def score_temperatures(loaded, data_pieces: list, temperatures=TEMPERATURES,
                       seed: int = 0) -> dict:
  """{temperature: {"shortfall", "features_met", "steps"}} of one block
  each (steps: the samples' length on the grid)."""
  spec = loaded.dataset.roll_spec
  scores = {}
  for temperature in temperatures:
    config, sampler = loaded.family.sampler(
        loaded, _length_config(loaded, temperature, seed))
    if not scores:  # the data excerpts, as long as the samples
      steps = (config.num_frames if not loaded.dataset.num_timesteps else
               _window_model_steps(spec))
      data = mf.cut_to_lengths(data_pieces, [steps], seed)
      data_table = mf.feature_table(data)
      lengths = [p.num_steps for p in data]
    matrices = sampler.sample([0], 0)  # block 0: the first 128 samples
    samples = mf.cut_to_lengths(
        [mf.piece_from_matrix(m, spec) for m in matrices], lengths, seed)
    comparison = mf.compare_tables(data_table, mf.feature_table(samples),
                                   seed)
    scores[temperature] = {
        "shortfall": round(shortfall(comparison), 6),
        "features_met": sum(r["meets_data"] for r in comparison.values()),
        "steps": steps}
  return scores


def calibrate(model_dir: str, data_dir: str, seed: int = 0,
              temperatures=TEMPERATURES) -> dict:
  """Scores the temperatures, writes the best to model_dir/sampling.json and
  returns the record (settings, scores, split, digest)."""
  loaded = files.load_model(model_dir)
  pieces, split = compare_lib.heldout_pieces(data_dir)
  scores = score_temperatures(loaded, [p for _, p in pieces], temperatures,
                              seed)
  best = min(scores, key=lambda t: (scores[t]["shortfall"], abs(t - 1.0)))
  record = {"settings": {"temperature": best},
            "scores": {str(t): s for t, s in scores.items()},
            "data_dir": data_dir, "split": split, "pieces": len(pieces),
            "steps": scores[best]["steps"], "seed": seed,
            "digest": files.digest(model_dir)}
  record["path"] = files.save_sampling(model_dir, record)
  return record


def apply(config: config_lib.GenerateConfig, model_dir: str):
  """`config` with the model's calibrated settings for the flags not given
  (they then count as given: a model's own default does not replace them).
  Returns (config, the settings applied)."""
  record = files.load_sampling(model_dir)
  if record is None:
    return config, {}
  applied = {name: value for name, value in record["settings"].items()
             if not config.given(name) and hasattr(config, name)}
  if not applied:
    return config, {}
  explicit = (config.explicit if config.explicit is not None else frozenset(
      f.name for f in dataclasses.fields(config) if config.given(f.name)))
  return dataclasses.replace(config, **applied,
                             explicit=explicit | set(applied)), applied
