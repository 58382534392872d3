r"""Where a recurrent frame model's pieces drift dense, and whether its frames
are to blame (an RNN-RBM's or an RNN-NADE's).

    python -m benchmarks.rnn_rbm_drift --model_dir=out/job-rnn_rbm/model \
        --data_dir=out/dataset-pieces

Two measurements of one model against its dataset, both at the model's
calibrated temperature (model/sampling.json; 1 without one) unless
--temperature is given:

- teacher-forced: each held-out frame's distribution, its biases from the
  TRUE history, sampled as generation samples (the model's `sample_frames`:
  an RNN-RBM's 25 Gibbs steps from silence, an RNN-NADE's exact draw). The
  notes per frame, against the held-out frames'. Too many (or a spread
  histogram) here means the frame model itself puts mass there.
- free-running: --num_samples pieces of --length_factor times the training
  pieces' median length, written as generation writes them. The share of
  pieces whose mean notes per frame pass the training pieces' 99th
  percentile (the data's own share is 1% by construction), and the mean
  notes per frame in each eighth of the piece: a rise along the piece is
  drift (exposure bias: the model feeding its own frames back), which
  teacher forcing does not show.

Prints one JSON object. benchmarks/RESULTS.md ("RNN-RBM drift") has the
figures that chose --context_sampling.
"""

import dataclasses
import json

import numpy as np

from common import cli

# The models with an RNN over the frames and a `sample_frames` of their own.
RECURRENT_MODELS = ("rnn_rbm", "rnn_nade")


@dataclasses.dataclass(frozen=True)
class DriftConfig:
  model_dir: str | None = cli.setting(
      None, "An RNN-RBM's or RNN-NADE's model/ folder.")
  data_dir: str | None = cli.setting(
      None, "Its dataset of whole pieces (preprocess --num_timesteps=0).")
  temperature: float = cli.setting(
      0.0, "Sampling temperature (0: the model's calibrated one, else 1).")
  num_samples: int = cli.setting(200, "Free-running pieces.")
  length_factor: float = cli.setting(
      2.0, "Their length, in training pieces' median lengths.")
  seed: int = cli.setting(7, "Seeds the sampling.")


def _temperature(config) -> float:
  """--temperature, else the model's calibrated one (trainer.calibrate's
  model/sampling.json), else 1."""
  if config.temperature:
    return config.temperature
  # pylint: disable=g-import-not-at-top  # TensorFlow after flag parsing
  from trainer.models import files
  record = files.load_sampling(config.model_dir)
  return float(record["settings"].get("temperature", 1.0)) if record else 1.0


def _histogram(notes) -> list:
  """Shares of frames holding 0, 1, 2... notes."""
  counts = np.bincount(np.asarray(notes, int))
  return [round(float(c), 4) for c in counts / len(notes)]


def measure(config: DriftConfig) -> dict:
  # pylint: disable=g-import-not-at-top  # TensorFlow after flag parsing
  import tensorflow as tf
  from trainer.comparison import lib
  from trainer.models import files
  name = files.model_name(config.model_dir)
  if name not in RECURRENT_MODELS:
    raise cli.UsageError(f"--model_dir={config.model_dir} holds a {name} "
                         "model; this measures a recurrent frame model ("
                         f"{', '.join(RECURRENT_MODELS)}).")
  loaded = files.load_model(config.model_dir)
  model, spec = loaded.model, lib.load_dataset(config.data_dir).spec
  pitches = spec.roll_spec.n_pitches
  temperature = _temperature(config)
  notes = lambda frames: np.asarray(frames)[..., :pitches].sum(-1)
  rows = lambda split: [r[3].astype(np.float32) for r in
                        lib._read_dataset_records(  # pylint: disable=protected-access
                            config.data_dir, spec, split) if r[2] == 0]
  train = rows("train")
  held_out = rows("valid") or rows("eval")
  piece_means = np.array([notes(p).mean() for p in train])
  dense = float(np.percentile(piece_means, 99))
  most = int(max(notes(p).max() for p in train))

  forced = np.concatenate([
      notes(model.sample_frames(
          *[None if c is None else c[0] for c in
            model.frame_conditionals(tf.constant(p[None]))[0]],
          config.seed * 1000 + i, temperature).numpy())
      for i, p in enumerate(held_out)])
  truth = np.concatenate([notes(p) for p in held_out])
  length = int(np.median([len(p) for p in train]) * config.length_factor)
  frames, _ = model.generate(config.num_samples, length, seed=config.seed,
                             temperature=temperature)
  free = notes(frames.numpy())
  eighths = np.array_split(np.arange(length), 8)
  return {
      "model_dir": config.model_dir, "temperature": temperature,
      "data": {"notes_per_frame": float(truth.mean()),
               "histogram": _histogram(truth), "most_notes": most,
               "dense_piece_mean": dense},
      "teacher_forced": {
          "notes_per_frame": float(forced.mean()),
          "histogram": _histogram(forced),
          "share_above_most": float(np.mean(forced > most))},
      "free_running": {
          "pieces": config.num_samples, "frames": length,
          "notes_per_frame": float(free.mean()),
          "share_dense_pieces": float(np.mean(free.mean(1) > dense)),
          "notes_per_frame_by_eighth": [round(float(free[:, e].mean()), 3)
                                        for e in eighths]},
  }


def main(argv):
  del argv
  config = cli.config_from_flags(DriftConfig)
  print(json.dumps(measure(config), indent=1))


if __name__ == "__main__":
  cli.define_flags(DriftConfig, required=["model_dir", "data_dir"])
  cli.run(main)
