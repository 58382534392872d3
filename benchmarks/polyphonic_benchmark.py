r"""The standard polyphonic benchmarks: the RNN-NADE's (its default gated RNN,
teacher-forced; or, with --model=rnn_rbm, the RNN-RBM's) test likelihood
on Nottingham, Piano-midi.de and MuseData, next to the published models.

    make corpora                                  # the sets as MIDI, once
    python -m benchmarks.polyphonic_benchmark --corpora_dir=data/corpora \
        --workdir=out/polyphonic-benchmark         # make polyphonic-benchmark
    make polyphonic-benchmark POLYPHONIC_SETS=piano_midi   # one set alone

The sets are the piano rolls of Boulanger-Lewandowski et al. (2012) with
their public train/valid/test splits, exported one MIDI file per piece by
benchmarks/corpora.py (one frame per eighth-note grid step; decoding gives
back the .mat rolls exactly, tests/test_corpora.py). For each set, through
the CLIs a user runs (benchmarks/stamped_steps.py: a rerun reuses what the
same command and code made):
  1. preprocess.main on the public splits (--input=train, --valid_input=valid,
     --eval_input=test), the sets' own grid (roll encoding, 2 steps per
     quarter sampled at the steps, 88 keys), training files transposed by
     -K..K semitones (training-only copies; valid and test stay as given):
     whole pieces, and (RNN-RBM) frames (1-step windows) for the frame RBM;
  2. trainer.task: the RNN-NADE with its defaults and --rnn_nade_flags (RNN
     pretraining; the best state by the valid split is kept, never by the
     test split); it is scored exactly, every test frame, and the run ends
     there. With --model=rnn_rbm: the frame RBM, then the RNN-RBM started
     from it
     (--init_from) with its defaults (RNN pretraining; the best state by the
     valid split is kept, never by the test split);
  3. trainer.evaluate on the test split, once: log p(v(t) | v(<t)) of every
     frame, each frame's log Z(t) by AIS (the RNN-RBM's defaults, 16 chains x
     1,500 betas), with its standard error;
  4. a tighter AIS check: the first test pieces (in file order) up to
     --check_frames frames, scored with the default AIS and with
     --check_flags; the table shows the gap.
Protocol: every frame is scored, the first one too (from the RNN's learned
initial state), and the NLL is the mean over all test frames (frames of long
pieces weigh more than a per-piece average would give them). The baseline is
independent Bernoulli units with the (transposed) training frames' means.
Prints one table with the published rows (shared/data/polyphonic/README.md)
and writes WORKDIR/results.json.
"""

import dataclasses
import glob
import json
import os

from benchmarks import corpora
from benchmarks import stamped_steps
from common import cli

SETS = tuple(corpora.ROLL_FILES)  # nottingham, piano_midi, musedata
# The grid of the exported rolls (corpora.ROLL_SPEC) as preprocess flags.
GRID = [f"--encoding={corpora.ROLL_SPEC.encoding}",
        f"--steps_per_quarter={corpora.ROLL_SPEC.steps_per_quarter}",
        f"--quantize={corpora.ROLL_SPEC.quantize}",
        f"--low_note={corpora.ROLL_SPEC.low_note}",
        f"--high_note={corpora.ROLL_SPEC.high_note}"]
# Published test NLL in nats per frame (the README of the data's folder).
PUBLISHED = {
    "RNN-RBM (Boulanger-Lewandowski 2012)":
        {"piano_midi": 7.09, "nottingham": 2.39, "musedata": 6.01},
    "RNN-NADE (HF) (Boulanger-Lewandowski 2012)":
        {"piano_midi": 7.05, "nottingham": 2.31, "musedata": 5.60},
    "LSTM (Walder 2016)":
        {"piano_midi": 6.67, "nottingham": 2.06, "musedata": 5.16},
}
GOAL = "RNN-NADE (HF) (Boulanger-Lewandowski 2012)"


@dataclasses.dataclass(frozen=True)
class PolyphonicConfig:
  corpora_dir: str = cli.setting(
      "data/corpora", "Folder holding the sets' exports (make corpora): "
      "NAME/{train,valid,test}/*.mid.")
  workdir: str = cli.setting("out/polyphonic-benchmark",
                             "Datasets, models and results go here.")
  sets: tuple[str, ...] = cli.setting(
      SETS, "Comma-separated sets to run, each on its own.")
  transpose: int = cli.setting(
      6, "preprocess.main --transpose for the training split: copies shifted "
      "by -K..K semitones (0: none).")
  frame_rbm_flags: str = cli.setting(
      "--num_hidden=150 --cd_k=15 --epochs=2 --learning_rate=0.01 "
      "--momentum --batch_size=100",
      "trainer.task flags of the frame RBM (its --num_hidden must be the "
      "RNN-RBM's: it starts the RNN-RBM).")
  model: str = cli.setting(
      "rnn_nade", "The model scored: rnn_nade (exact: neither a frame RBM "
      "nor an AIS check) or rnn_rbm (started from a frame RBM, scored by AIS "
      "with a tighter AIS check).", choices=("rnn_nade", "rnn_rbm"))
  rnn_nade_flags: str = cli.setting(
      "--context_sampling=0", "trainer.task flags of the RNN-NADE, on top "
      "of --model=rnn_nade (its defaults otherwise: its gated RNN meets the "
      "published RNN-NADE (HF) on all three sets in the default run's 4,000 "
      "updates, the tanh RNN on none; benchmarks/RESULTS.md). "
      "Teacher-forced, as the published models train.")
  rnn_rbm_flags: str = cli.setting(
      "--context_sampling=0", "trainer.task flags of the RNN-RBM, on top of "
      "--model=rnn_rbm --init_from=the frame RBM. Teacher-forced, as the "
      "published models train: the likelihood's own objective (the default "
      "scheduled sampling against drift costs ~0.09 nats/frame).")
  eval_flags: str = cli.setting(
      "", "trainer.evaluate flags of the test score (default: the RNN-RBM's "
      "AIS defaults).")
  check_frames: int = cli.setting(
      1000, "Test frames of the tighter AIS check (whole pieces, in file "
      "order, until this many).")
  check_flags: str = cli.setting(
      "--ais_chains=32 --ais_betas=6000",
      "trainer.evaluate flags of the tighter AIS check.")

  def __post_init__(self):
    unknown = sorted(set(self.sets) - set(SETS))
    if unknown or not self.sets:
      raise ValueError(f"--sets={','.join(self.sets)}: choose from "
                       f"{','.join(SETS)}.")
    if self.transpose < 0 or self.check_frames < 1:
      raise ValueError(f"--transpose={self.transpose} must be >= 0 and "
                       f"--check_frames={self.check_frames} >= 1.")


def split_files(corpora_dir: str, name: str) -> dict:
  """{train, valid, test: sorted MIDI paths} of a set's export.

  Raises:
    cli.UsageError: the export is missing or incomplete.
  """
  folder = os.path.join(corpora_dir, name)
  marker = corpora.read_marker(folder)
  if not (marker and marker.get("corpus") == name and marker.get("complete")):
    raise cli.UsageError(
        f"{folder} holds no finished export of {name}; run `make corpora` (or "
        f"python -m benchmarks.corpora --corpus={name} --output_dir={folder}).")
  return {split: sorted(glob.glob(os.path.join(folder, split, "*.mid")))
          for split in corpora.SPLITS}


def check_pieces(test_files: list, max_frames: int) -> tuple:
  """(the first test files whose frames add up to at most max_frames, at
  least one; their frames)."""
  chosen, frames = [], 0
  for path in test_files:
    with open(path, "rb") as f:
      n = corpora.midi_frames(f.read())
    if chosen and frames + n > max_frames:
      break
    chosen.append(path)
    frames += n
  return chosen, frames


def mean_crop(train_files: list, sequence_length: int) -> float:
  """Mean frames per training sequence: whole pieces cropped to
  sequence_length (0: uncropped)."""
  lengths = []
  for path in train_files:
    with open(path, "rb") as f:
      n = corpora.midi_frames(f.read())
    lengths.append(min(n, sequence_length) if sequence_length else n)
  return sum(lengths) / len(lengths)


def run_set(config: PolyphonicConfig, name: str) -> dict:
  """Preprocess, train, evaluate and check one set; returns its row."""
  files = split_files(config.corpora_dir, name)
  work = os.path.join(config.workdir, name)
  os.makedirs(work, exist_ok=True)
  log = os.path.join(work, "log.txt")
  folder = os.path.join(config.corpora_dir, name)
  splits = [f"--input={folder}/train/*.mid", f"--valid_input={folder}/valid/*.mid",
            f"--eval_input={folder}/test/*.mid", *GRID,
            f"--transpose={config.transpose}"]
  pieces = stamped_steps.preprocess(os.path.join(work, "pieces"),
                                    [*splits, "--num_timesteps=0"], log)
  if config.model == "rnn_nade":
    return _run_nade(config, name, files, work, pieces, log)
  frames = stamped_steps.preprocess(
      os.path.join(work, "frames"),
      [*splits, "--num_timesteps=1", "--stride=1"], log)
  frame_model, _ = stamped_steps.train(os.path.join(work, "frame_rbm"), frames,
                                       config.frame_rbm_flags, log)
  rnn_model, metrics = stamped_steps.train(
      os.path.join(work, "rnn_rbm"), pieces,
      f"--model=rnn_rbm --init_from={frame_model} {config.rnn_rbm_flags}", log)
  test = stamped_steps.evaluate(rnn_model, pieces, config.eval_flags, log)
  # The check's dataset: the chosen test pieces as its eval split (one
  # training piece only because preprocessing needs one; nothing trains on it).
  chosen, _ = check_pieces(files["test"], config.check_frames)
  check_data = stamped_steps.preprocess(
      os.path.join(work, "check"),
      [f"--input={files['train'][0]}", f"--eval_input={','.join(chosen)}",
       *GRID, "--num_timesteps=0"], log)
  default = stamped_steps.evaluate(rnn_model, check_data, config.eval_flags,
                                   log, name="check_default")
  tight = stamped_steps.evaluate(rnn_model, check_data, config.check_flags,
                                 log, name="check_tight")
  return {
      **_row(config, name, "rnn_rbm", files, rnn_model, metrics, test),
      "stderr": test["log_z_stderr"],
      "check_frames": default["frames"],
      "check_default_nll": -default["loglik_per_frame"],
      "check_tight_nll": -tight["loglik_per_frame"],
      "check_tight_stderr": tight["log_z_stderr"],
      "check_flags": config.check_flags,
  }


def _row(config, name, model, files, model_dir, metrics, test) -> dict:
  """What every model's row holds: the test score against the baseline,
  and the training's wall time and frames/s."""
  with open(os.path.join(model_dir, "model.json")) as f:
    trained = json.load(f)["config"]
  return {
      "set": name, "model": model, "test_pieces": test["sequences"],
      "test_frames": test["frames"],
      "nll_per_frame": -test["loglik_per_frame"],
      "baseline_nll_per_frame": -test["baseline_loglik_per_frame"],
      "train_wall_seconds": metrics["wall_seconds"],
      "train_frames_per_sec": metrics.get("sequences_per_sec", 0.0) *
                              mean_crop(files["train"],
                                        trained["sequence_length"]),
      "recurrence": trained.get("recurrence", "tanh"),
      "transpose": config.transpose, "model_dir": model_dir,
  }


def _run_nade(config, name, files, work, pieces, log) -> dict:
  """The RNN-NADE's row: trained on the pieces, the test split scored
  exactly (no standard error, no AIS check)."""
  model, metrics = stamped_steps.train(
      os.path.join(work, "rnn_nade"), pieces,
      f"--model=rnn_nade {config.rnn_nade_flags}", log)
  test = stamped_steps.evaluate(model, pieces, "", log)
  return {**_row(config, name, "rnn_nade", files, model, metrics, test),
          "stderr": 0.0}


def table(rows: list) -> str:
  """The results as a Markdown table, the published rows below."""
  lines = [
      "| set | model | test pieces / frames | NLL/frame | Bernoulli | "
      "tighter AIS check (frames: default - tight) | training (wall; frames/s) "
      f"| goal ({GOAL.split(' (Bou')[0]}) |",
      "|---|---|---|---|---|---|---|---|"]
  for r in rows:
    model = r.get("model", "rnn_rbm")
    label = model + (" (gru)" if r.get("recurrence") == "gru" else "")
    if model == "rnn_nade":
      score, check = f"{r['nll_per_frame']:.3f} (exact)", "none needed"
    else:
      gap = r["check_default_nll"] - r["check_tight_nll"]
      score = f"{r['nll_per_frame']:.3f} ± {r['stderr']:.3f}"
      check = f"{r['check_frames']:,}: {gap:+.3f}"
    lines.append(
        f"| {r['set']} | {label} | {r['test_pieces']} / "
        f"{r['test_frames']:,} | {score} | "
        f"{r['baseline_nll_per_frame']:.2f} | {check} | "
        f"{r['train_wall_seconds'] / 60:.1f} min; "
        f"{r['train_frames_per_sec']:,.0f} | {PUBLISHED[GOAL][r['set']]} |")
  lines.append("")
  lines.append("published test NLL (nats/frame):")
  for model, figures in PUBLISHED.items():
    lines.append(f"  {model}: " + ", ".join(
        f"{name} {figures[name]}" for name in SETS))
  return "\n".join(lines)


def save_rows(workdir: str, rows: list) -> list:
  """Writes WORKDIR/results.json: these rows, and the rows of (set, model)
  pairs run before and not now (a set runs alone); returns them all in SETS
  order."""
  path = os.path.join(workdir, "results.json")
  key = lambda r: (r["set"], r.get("model", "rnn_rbm"))
  by_set = {}
  if os.path.exists(path):
    with open(path) as f:
      by_set = {key(r): r for r in json.load(f)}
  by_set.update({key(r): r for r in rows})
  merged = [by_set[k] for name in SETS for k in sorted(by_set)
            if k[0] == name]
  os.makedirs(workdir, exist_ok=True)
  with open(path + ".tmp", "w") as f:
    json.dump(merged, f, indent=1)
  os.replace(path + ".tmp", path)
  return merged


def main(argv):
  del argv
  config = cli.config_from_flags(PolyphonicConfig)
  for name in config.sets:  # every set's export before the first hour of work
    split_files(config.corpora_dir, name)
  rows = []
  for name in config.sets:
    rows.append(run_set(config, name))
    print(f"{name}: {rows[-1]['nll_per_frame']:.3f} nats/frame", flush=True)
  print(table(save_rows(config.workdir, rows)))


if __name__ == "__main__":
  cli.define_flags(PolyphonicConfig)
  cli.run(main)
