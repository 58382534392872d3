"""The jobs' settings: one frozen dataclass per job, tuned defaults.

Each field is declared once with `common.cli.setting(default, help)`: the CLIs
generate their flags from it (common/cli.py) and deploy/ reads the defaults
from it, so a default lives here and nowhere else. Settings of one model only
live in its folder (trainer/models/<name>/settings.py); the job's dataclass
holds their fields beside the shared ones, so one command line sets both.

    python -m trainer.task --data_dir=out/dataset --job_dir=out/job

trains the default model (the window RBM: 200 hidden units by CD-1 with
momentum and weight decay 1e-4, lr 0.005, batch 100, 200 epochs).
`--preset=original` gives the original post's settings back (50 hidden units,
no momentum, no weight decay); an explicit flag still wins over a preset. A
smoke run is the same command with --max_steps (e.g. 200).

This module must not import TensorFlow: deploy/ reads it on a laptop.
"""

import dataclasses
import typing

from common.cli import setting
from trainer import models

# Generation samples in blocks of this many chains, whatever the model: the
# block's shape decides the float rounding, so it is part of the settings.
GENERATION_BLOCK = 128
# Generation: frames per sample of frame models (a block of 128 samples holds
# 128 x frames x V bytes). Samples are as long as the corpus's median piece
# and at least MIN_BARS bars of 4/4; DEFAULT_BARS for a dataset.json written
# before piece lengths were counted.
MAX_NUM_FRAMES = 2**15
MIN_BARS = 16
DEFAULT_BARS = 32
# A default run (no --epochs or --max_steps given) stops after this many
# updates on a large corpus, so its time does not grow with the corpus (the
# chorales' 200 epochs are 10,600 updates).
MAX_DEFAULT_UPDATES = 20_000
# The original post's model (RBM of 50 hidden units, plain CD-1 SGD).
ORIGINAL = {"num_hidden": 50, "momentum": False, "weight_decay": 0.0}


@dataclasses.dataclass(frozen=True)
class JobSettings:
  """Settings every model's training reads (or may ignore, as documented)."""

  model: str = setting(
      models.DEFAULT, "Which model to train: " + "; ".join(
          f"{name}: {doc}" for name, doc in models.MODELS.items()) +
      ". Each model has its own defaults for the shared flags not given "
      "(trainer/models/<name>/settings.py DEFAULTS).",
      choices=models.NAMES)
  # 200 units with momentum and weight decay bring the window RBM's samples'
  # notes/s, note length, polyphony, range and re-strikes within 15% of the
  # data's (benchmarks/RESULTS.md); the original post's 50 leave them diffuse.
  num_hidden: int = setting(
      200, "Hidden units (the original post used 50: --preset=original; "
      "--model=rnn_rbm: 150).")
  learning_rate: float = setting(
      0.005, "Step size on the mean CD statistic over the global batch.")
  batch_size: int = setting(
      100, "GLOBAL batch: split evenly across replicas (must divide by their "
      "number).")
  epochs: int = setting(200, "Passes over the training windows.")
  cd_k: int = setting(1, "Gibbs steps per update (CD-k / PCD-k).")
  # With momentum: see the window RBM's settings.
  weight_decay: float = setting(
      1e-4, "L2 weight cost on W (not biases); 0: none, as the original post.")
  seed: int = setting(0, "Seeds the weights, the data order and every Gibbs "
                      "sample.")
  steps_per_checkpoint: int = setting(
      1000, "Save a checkpoint every this many steps (and at the end).")
  max_steps: int = setting(
      0, "When > 0, the run's total number of updates (replaces --epochs); "
      "smoke runs and benchmarks use it. 0: epochs * (train windows // "
      "batch_size).")
  log_every_steps: int = setting(200, "A progress line every this many steps.")
  summary_every_steps: int = setting(
      1000, "TensorBoard scalars/images every this many steps.")


@dataclasses.dataclass(frozen=True)
class TrainConfig(JobSettings, *models.training_settings()):
  """Hyper-parameters and run control of one training job: the shared
  settings and every model's own (those of another model than --model must
  keep the value that model leaves them at)."""

  PRESETS: typing.ClassVar[dict] = {"original": ORIGINAL}
  PRESET_HELP: typing.ClassVar[dict] = {
      "original": "the original post's model: 50 hidden units, no momentum, "
                  "no weight decay (--preset=seed: the same, its old name)"}
  # "seed" named the original post's settings before; it means the random
  # seed only now, and the old spelling still works with a note.
  PRESET_ALIASES: typing.ClassVar[dict] = {"seed": "original"}

  def __post_init__(self):
    positive = ("num_hidden", "batch_size", "epochs", "cd_k",
                "steps_per_checkpoint", "log_every_steps", "summary_every_steps")
    for name in positive:
      if getattr(self, name) < 1:
        raise ValueError(f"--{name}={getattr(self, name)} must be >= 1.")
    if not self.learning_rate > 0:
      raise ValueError(f"--learning_rate={self.learning_rate} must be > 0 "
                       "(the original post uses 0.005).")
    for name in ("weight_decay", "max_steps"):
      if getattr(self, name) < 0:
        raise ValueError(f"--{name}={getattr(self, name)} must be >= 0.")
    models.check_name(self.model)
    for cls in models.training_settings():
      cls.check_training(self)
    _check_other_models_fields(self, "Training")

  def shape_fields(self) -> tuple[str, ...]:
    """Fields that fix the checkpoint's shapes: a resumed run must keep them."""
    return ("model",) + models.settings(self.model).shape_fields(self)


def _check_other_models_fields(config, kind: str) -> None:
  """A setting of another model must keep the value this model leaves it at
  (its DEFAULTS, else the field's default): a flag the run would ignore."""
  own = models.settings(config.model)
  defaults = getattr(own, "DEFAULTS", {})
  reads = getattr(own, "READS", ())
  for name in models.NAMES:
    if name == config.model:
      continue
    for field in dataclasses.fields(getattr(models.settings(name), kind)):
      if field.name in reads:
        continue
      expected = defaults.get(field.name, field.default)
      if getattr(config, field.name) != expected:
        raise ValueError(f"--{field.name} is a setting of --model={name}; "
                         f"this run uses --model={config.model}.")


def model_defaults(model: str, given) -> dict:
  """The model's DEFAULTS minus the fields in `given` (the flags the user
  passed): what trainer/task.py hands to cli.config_from_flags."""
  return {k: v for k, v in models.settings(model).DEFAULTS.items()
          if k not in given}


@dataclasses.dataclass(frozen=True)
class TrainDirs:
  """Where training reads and writes (not part of the model's config)."""

  data_dir: str | None = setting(None, "The --output_dir of preprocess.main.")
  job_dir: str | None = setting(
      None, "Run folder: model/, checkpoints/, tensorboard/.")
  model_dir: str | None = setting(None, "Default: AIP_MODEL_DIR or "
                                  "JOB_DIR/model.")
  checkpoint_dir: str | None = setting(
      None, "Default: AIP_CHECKPOINT_DIR or JOB_DIR/checkpoints.")
  tensorboard_dir: str | None = setting(
      None, "Default: AIP_TENSORBOARD_LOG_DIR or JOB_DIR/tensorboard.")


@dataclasses.dataclass(frozen=True)
class GenerateJob:
  """What every model's generation job reads."""

  num_samples: int = setting(
      1000, "Total samples of the job (all shards together).")
  seed: int = setting(0, "Seeds every sample: sample i depends on (seed, i) "
                      "only.")
  # With the 200-unit window RBM, T=1 writes 37% more notes per second than
  # the data; 0.9 (with its articulate threshold) is within 10%.
  temperature: float = setting(
      0.9, "Sampling temperature: the conditionals use sigmoid(pre-activation "
      "/ T). Below 1 sharpens them and thins the stray notes of a diffuse "
      "model (1: the model's own distribution). Frame models sample at 1 "
      "unless this flag is given.")
  num_frames: int = setting(
      0, "Frame models (rnn_rbm, rnn_nade, bernoulli): frames (grid steps) per "
      "sample, "
      "e.g. 128 = 32 bars of 4/4 on a quarter-note grid; 0: 32 bars on the "
      "model's grid. A window RBM's length is --num_windows.")
  primer: str | None = setting(
      None, "A MIDI file to continue: a window RBM clamps its first window to "
      "the file's end; an RNN-RBM or RNN-NADE runs its RNN over the whole file "
      "first.")
  num_shards: int = setting(1, "Workers splitting the job.")
  shard_index: int = setting(0, "This worker's shard.")
  resample_empty: int = setting(
      0, "Resample an empty sample up to this many times (0: keep and count "
      "it).")
  previews: bool = setting(
      False, "Piano-roll PNGs, WAVs and index.html for the first "
      "--num_previews samples.")
  num_previews: int = setting(32, "Samples previewed.")
  soundfont: str | None = setting(
      None, "A General MIDI .sf2 for the previews' audio (default: a system one "
      "when FluidSynth is installed, else sine tones).")
  overwrite: bool = setting(False, "Replace this shard's existing output.")
  tempo: float = setting(120.0, "Tempo of the MIDI files (bpm).")
  program: int = setting(0, "General MIDI program (0 = piano).")
  velocity: int = setting(80, "Note velocity.")
  # Speed only (results do not depend on it), so not a flag: benchmarks set it.
  blocks_per_call: int = setting(
      2, "Blocks of samples sampled per device call; calls overlap with "
      "decoding and writing.", cli=False)
  # The settings the user gave as flags (cli.explicit_fields), or None when
  # a caller built the config in code: then a value other than the default
  # counts as given.
  explicit: frozenset | None = setting(
      None, "Fields set explicitly on the command line.", cli=False)


@dataclasses.dataclass(frozen=True)
class GenerateConfig(GenerateJob, *models.sampling_settings()):
  """What to generate: the job's settings and every model's own.

      python -m trainer.generate --model_dir=out/job/model --output=out/samples

  `--preset=original` restores the original post's sampling (1 window, T=1,
  articulate units sampled, one candidate).
  """

  PRESETS: typing.ClassVar[dict] = {
      "original": {"num_windows": 1, "temperature": 1.0,
                   "articulate_threshold": 0.0, "candidates": 1}}
  PRESET_HELP: typing.ClassVar[dict] = {
      "original": "one window (1.9 s), T=1, articulate units sampled, one "
                  "candidate; the original post also sampled 1 Gibbs step "
                  "from silence: add --gibbs_steps=1 --init=zeros for that "
                  "(--preset=seed: the same, its old name)"}
  PRESET_ALIASES: typing.ClassVar[dict] = {"seed": "original"}

  def __post_init__(self):
    if self.num_samples < 1:
      raise ValueError(f"--num_samples={self.num_samples} must be >= 1.")
    if not 0 <= self.shard_index < self.num_shards:
      raise ValueError(f"--shard_index={self.shard_index} must be in "
                       f"0..{self.num_shards - 1} (--num_shards="
                       f"{self.num_shards}).")
    if not self.temperature > 0:
      raise ValueError(f"--temperature={self.temperature} must be > 0 "
                       "(1 samples the model as it is).")
    if not 0 <= self.num_frames <= MAX_NUM_FRAMES:
      raise ValueError(f"--num_frames={self.num_frames} must be in 0.."
                       f"{MAX_NUM_FRAMES} (0: the corpus's median piece).")
    for cls in models.sampling_settings():
      cls.check_sampling(self)
    if self.resample_empty < 0 or self.blocks_per_call < 1:
      raise ValueError("--resample_empty must be >= 0, blocks_per_call >= 1.")

  def given(self, name: str) -> bool:
    """True when the user set `name`: given as a flag (`explicit`, from the
    command line), or else, for a config built in code, not its default."""
    if self.explicit is not None:
      return name in self.explicit
    return getattr(self, name) != self.__dataclass_fields__[name].default

  def settings(self) -> dict:
    """What decides the output bytes: shared by all shards of one job."""
    fields = dataclasses.asdict(self)
    for key in ("shard_index", "previews", "num_previews", "overwrite",
                "blocks_per_call", "soundfont", "explicit"):
      fields.pop(key)
    # The samplers' shapes decide the bytes.
    fields["block"] = GENERATION_BLOCK
    if not self.num_frames:
      # A window RBM's (frame models fill num_frames in): its generation.json
      # stays as before these fields, so older output resumes.
      fields.pop("num_frames")
      fields.pop("gibbs_steps_per_frame")
    if not self.play_threshold:
      fields.pop("play_threshold")  # as before the field: older output resumes
    if self.candidates == 1:
      # No choice made: the score does not matter, and output written before
      # these fields resumes.
      fields.pop("candidates")
      fields.pop("candidate_score")
    return fields


@dataclasses.dataclass(frozen=True)
class GeneratePaths:
  """Where generation reads the model and writes the samples."""

  model_dir: str | None = setting(None, "The model/ folder trainer.task wrote.")
  output: str | None = setting(None, "A local folder or gs://BUCKET/PREFIX.")


@dataclasses.dataclass(frozen=True)
class AISConfig:
  """The AIS estimate of log Z (trainer/models/ais.py). A model may have its
  own defaults for the flags not given (its settings' AIS_DEFAULTS)."""

  num_chains: int = setting(
      100, "AIS chains (importance samples). More shrink the error bar as "
      "1/sqrt(chains); time grows linearly.", flag="ais_chains")
  # On the default 200-unit demo model 10,000 betas underestimate log Z by
  # ~2.7 nats; from 30,000 the estimates agree within their error bars with
  # 100,000 (benchmarks/RESULTS.md). The original post's 50 units need 10,000.
  num_betas: int = setting(
      30000, "AIS intermediate distributions (inverse temperatures) from 0 to "
      "1, both ends included. S&M use 14,500; 30,000 suit the default "
      "200-hidden-unit model (10,000 underestimate its log Z by ~3 nats), "
      "10,000 the original post's 50 units.", flag="ais_betas")
  seed: int = setting(0, "Seeds the AIS chains: same seed, same estimate.")

  def __post_init__(self):
    if self.num_chains < 2 or self.num_betas < 2:
      raise ValueError(f"AIS needs >= 2 chains and >= 2 betas; got "
                       f"--ais_chains={self.num_chains}, "
                       f"--ais_betas={self.num_betas}.")


@dataclasses.dataclass(frozen=True)
class EvaluateData:
  """What evaluation scores."""

  model_dir: str | None = setting(None, "The model/ folder trainer.task wrote.")
  data_dir: str | None = setting(None, "The --output_dir of preprocess.main.")
  split: str = setting(
      "eval", "Which windows to score: eval (the test set), valid (model "
      "selection's), or train.", choices=("eval", "valid", "train"))
  max_frames: int = setting(
      0, "RNN-RBM: score a fixed subset of the split's pieces (in an order "
      "that does not depend on their length) holding at least this many "
      "frames, and report the subset's sampling error (piece_stderr); 0: "
      "every piece. Its AIS costs time per frame: make demo caps it.")

  def __post_init__(self):
    if self.max_frames < 0:
      raise ValueError(f"--max_frames={self.max_frames} must be >= 0 (0: "
                       "every piece).")
