r"""The chorales benchmark: nats per frame of the frame RBM, the window RBM,
the RNN-RBM and the RNN-NADE on the demo corpus.

    python -m benchmarks.chorales_benchmark --corpus=data/chorales \
        --workdir=out/chorales-benchmark          # make chorales-benchmark

Quarter-note grid (--steps_per_quarter=1) sampled at the beats
(--quantize=sample), roll encoding, 88 keys (MIDI 21..108), the pipeline's
hash split. Everything goes through the CLIs a user
runs, as separate processes; a rerun reuses the datasets, models and
evaluations already in --workdir when the same command and the same code made
them (benchmarks/stamped_steps.py):
  1. preprocess.main three times: 1-step windows (frames), --window_steps
     windows with stride 1, and whole pieces (--num_timesteps=0), training
     files transposed by -K..K semitones (--transpose);
  2. trainer.task: the frame RBM on frames; the window RBM on windows; the
     RNN-RBM on whole pieces, starting from the frame RBM (--init_from) and a
     pretrained RNN; the RNN-NADE on the same pieces;
  3. trainer.evaluate on each model's eval split (the temporal models keep
     their best state by the valid split, never by the eval split they are
     scored on; the RNN-NADE's score is exact, the others' AIS estimates);
then prints one table (nats per frame, negative log-likelihood: lower is
better) with the independent-Bernoulli baseline and the training times, and
writes it to WORKDIR/results.json. Published figures on JSB Chorales
(Boulanger-Lewandowski et al. 2012): NADE 7.19, RNN-RBM 6.27, RNN-NADE 5.56.
The corpus and split differ from theirs (music21's chorales, our hash split),
so the comparison is indicative.
"""

import dataclasses
import json
import os

from benchmarks import stamped_steps
from common import cli

# --quantize=sample: a frame holds the notes sounding on its beat, as in JSB
# Chorales (rounding would put a voice's two 8ths into one frame).
GRID = ["--encoding=roll", "--steps_per_quarter=1", "--quantize=sample",
        "--low_note=21", "--high_note=109"]
MODELS = ("frame_rbm", "window_rbm", "rnn_rbm", "rnn_nade")


@dataclasses.dataclass(frozen=True)
class BenchmarkConfig:
  corpus: str = cli.setting("data/chorales", "Folder of the MIDI corpus.")
  workdir: str = cli.setting("out/chorales-benchmark",
                             "Datasets, models and results go here.")
  window_steps: int = cli.setting(4, "Frames per window of the window RBM.")
  transpose: int = cli.setting(
      6, "preprocess.main --transpose for every training split: copies "
      "shifted by -K..K semitones. The chorales are in their own keys (JSB "
      "Chorales are all in C): without it the RNN-RBM overfits the 314 "
      "training pieces (eval NLL plateaus at ~10.6 nats/frame).")
  frame_rbm_flags: str = cli.setting(
      "--num_hidden=150 --cd_k=15 --epochs=2 --learning_rate=0.01 "
      "--momentum --batch_size=100",
      "trainer.task flags of the frame RBM (its --num_hidden must be the "
      "RNN-RBM's: it starts the RNN-RBM).")
  window_rbm_flags: str = cli.setting(
      "--num_hidden=200 --cd_k=10 --epochs=3 --learning_rate=0.01 "
      "--momentum --batch_size=100", "trainer.task flags of the window RBM "
      "(epochs of the transposed data: 13x the pieces).")
  rnn_rbm_flags: str = cli.setting(
      "--context_sampling=0", "trainer.task flags of the RNN-RBM, on top of "
      "--model=rnn_rbm --init_from=the frame RBM (its defaults otherwise: 30 "
      "epochs at lr 3e-3 after 3 of RNN pretraining). Teacher-forced, as the "
      "published models train (the default scheduled sampling against "
      "drift costs ~0.09 nats/frame).")
  valid_fraction: float = cli.setting(
      0.1, "Pieces held out for validation (early stopping, by path hash), "
      "apart from the 10% eval pieces the table reports.")
  rnn_nade_flags: str = cli.setting(
      "--context_sampling=0", "trainer.task flags of the RNN-NADE, on top "
      "of --model=rnn_nade (its defaults otherwise: a GRU, 4.937 nats/frame "
      "here against the tanh RNN's 5.090). Teacher-forced, as the published "
      "models train and as the polyphonic benchmark's.")
  eval_flags: str = cli.setting(
      "", "trainer.evaluate flags for every model (e.g. --ais_betas=...).")
  models: tuple[str, ...] = cli.setting(
      MODELS, "Comma-separated rows to run (the RNN-RBM also trains the "
      "frame RBM it starts from).")


def _preprocess(config, name, steps, log):
  window = ([f"--num_timesteps={steps}", "--stride=1"] if steps else
            ["--num_timesteps=0"])
  return stamped_steps.preprocess(
      os.path.join(config.workdir, name),
      [f"--input={config.corpus}/*.mid", *GRID, *window,
       f"--transpose={config.transpose}",
       f"--valid_fraction={config.valid_fraction}"], log)


def _train(config, name, data_dir, flags, log):
  model_dir, metrics = stamped_steps.train(os.path.join(config.workdir, name),
                                           data_dir, flags, log)
  return model_dir, metrics["wall_seconds"]


def _evaluate(config, model_dir, data_dir, log):
  return stamped_steps.evaluate(model_dir, data_dir, config.eval_flags, log)


def check(config: BenchmarkConfig) -> None:
  """One-line errors for a corpus that is not a folder and unknown rows."""
  if not os.path.isdir(config.corpus):
    raise cli.UsageError(f"--corpus={config.corpus} is not a folder: run "
                         "`make data` or pass the demo corpus' folder.")
  if not config.models or set(config.models) - set(MODELS):
    raise cli.UsageError(f"--models={','.join(config.models)}: choose among "
                         f"{','.join(MODELS)}.")


def main(argv):
  del argv
  config = cli.config_from_flags(BenchmarkConfig)
  check(config)
  os.makedirs(config.workdir, exist_ok=True)
  log = os.path.join(config.workdir, "log.txt")
  rows = []
  if {"frame_rbm", "rnn_rbm"} & set(config.models):
    frames = _preprocess(config, "frames", 1, log)
    frame_model, t = _train(config, "frame_rbm", frames,
                            config.frame_rbm_flags, log)
    if "frame_rbm" in config.models:
      rows.append(("frame RBM", frame_model, frames, t))
  if "window_rbm" in config.models:
    windows = _preprocess(config, "windows", config.window_steps, log)
    window_model, t = _train(config, "window_rbm", windows,
                             config.window_rbm_flags, log)
    rows.append((f"window RBM ({config.window_steps} frames)", window_model,
                 windows, t))
  if {"rnn_rbm", "rnn_nade"} & set(config.models):
    pieces = _preprocess(config, "pieces", 0, log)
  if "rnn_rbm" in config.models:
    rnn_model, t = _train(
        config, "rnn_rbm", pieces, f"--model=rnn_rbm --init_from={frame_model} "
        + config.rnn_rbm_flags, log)
    rows.append(("RNN-RBM", rnn_model, pieces, t))
  if "rnn_nade" in config.models:
    nade_model, t = _train(config, "rnn_nade", pieces,
                           "--model=rnn_nade " + config.rnn_nade_flags, log)
    rows.append(("RNN-NADE", nade_model, pieces, t))
  results = []
  for name, model_dir, data_dir, seconds in rows:
    e = _evaluate(config, model_dir, data_dir, log)
    results.append({
        "model": name, "nll_per_frame": -e["loglik_per_frame"],
        # The RNN-NADE's score is exact: no AIS, no standard error.
        "stderr": e.get("log_z_stderr", 0.0) / (config.window_steps
                                                if "window" in name else 1),
        "exact": bool(e.get("exact", False)),
        "baseline_nll_per_frame": -e["baseline_loglik_per_frame"],
        "train_seconds": seconds, "model_dir": model_dir})
  with open(os.path.join(config.workdir, "results.json"), "w") as f:
    json.dump(results, f, indent=1)
  print(f"{'model':28s} {'NLL nats/frame':>16s} {'Bernoulli':>10s} "
        f"{'train':>8s}")
  for r in results:
    error = "(exact)" if r["exact"] else f"± {r['stderr']:.3f}"
    print(f"{r['model']:28s} {r['nll_per_frame']:9.3f} {error:>7s}"
          f"{r['baseline_nll_per_frame']:10.3f} "
          f"{r['train_seconds'] / 60:7.1f}m")
  print("published (JSB Chorales): NADE 7.19, RNN-RBM 6.27, RNN-NADE 5.56")


if __name__ == "__main__":
  cli.define_flags(BenchmarkConfig)
  cli.run(main)
