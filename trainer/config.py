"""The trainer's settings: one frozen dataclass per job, defaults = the seed's.

Each field is declared once with `common.cli.setting(default, help)`: the CLIs
generate their flags from it (common/cli.py) and deploy/ reads the defaults
from it, so a default lives here and nowhere else.

    python -m trainer.task --data_dir=out/dataset --job_dir=out/job

trains 50 hidden units by CD-1, lr 0.005, batch 100, 200 epochs, as the seed
did. A smoke run is the same command with --max_steps (e.g. 200).

This module must not import TensorFlow: deploy/ reads it on a laptop.
"""

import dataclasses

from common.cli import setting

# Hinton's practical guide: momentum 0.5 while the weights settle, then 0.9.
MOMENTUM_EARLY, MOMENTUM_LATE, MOMENTUM_SWITCH_EPOCH = 0.5, 0.9, 5
# Generation samples in blocks of this many chains (generate_lib's BLOCK): the
# block's shape decides the float rounding, so it is part of the output's
# settings.
GENERATION_BLOCK = 128
GENERATION_INITS = ("random", "zeros", "data")
# Gibbs steps per generated window: two streams each, within the
# random_streams.GENERATION_CHAIN_STREAMS of one chain (a test checks).
MAX_GIBBS_STEPS = 2**20 - 1
# CD-k: 2k + 2 streams per step within random_streams.STREAMS_PER_STEP.
MAX_CD_K = 500
# RNN-RBM generation: Gibbs steps per frame (two streams each within the
# model's 2^12 streams per frame, models/rnn_rbm.py; a test checks), and
# frames per sample (a block of 128 samples holds 128 x frames x V bytes).
MAX_FRAME_GIBBS_STEPS = 2**11 - 1
MAX_NUM_FRAMES = 2**15
# An RNN-RBM sample's default length: 32 bars of 4/4 on the model's grid.
DEFAULT_BARS = 32


@dataclasses.dataclass(frozen=True)
class TrainConfig:
  """Hyper-parameters and run control of one training job."""

  num_hidden: int = setting(50, "Hidden units; the seed uses 50.")
  learning_rate: float = setting(
      0.005, "Step size on the mean CD statistic over the global batch.")
  batch_size: int = setting(
      100, "GLOBAL batch: split evenly across replicas (must divide by their "
      "number).")
  epochs: int = setting(200, "Passes over the training windows.")
  cd_k: int = setting(1, "Gibbs steps per update (CD-k / PCD-k).")
  persistent: bool = setting(
      False, "Persistent CD: negative chains carry over between updates "
      "(Tieleman 2008).")
  momentum: bool = setting(
      False, "Momentum 0.5 for the first 5 epochs, then 0.9; off (0) in the "
      "seed.")
  weight_decay: float = setting(
      0.0, "L2 weight cost on W (not biases), e.g. 1e-4 as the practical "
      "guide suggests.")
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

  def __post_init__(self):
    positive = ("num_hidden", "batch_size", "epochs", "cd_k",
                "steps_per_checkpoint", "log_every_steps", "summary_every_steps")
    for name in positive:
      if getattr(self, name) < 1:
        raise ValueError(f"--{name}={getattr(self, name)} must be >= 1.")
    if not self.learning_rate > 0:
      raise ValueError(f"--learning_rate={self.learning_rate} must be > 0 "
                       "(the seed uses 0.005).")
    for name in ("weight_decay", "max_steps"):
      if getattr(self, name) < 0:
        raise ValueError(f"--{name}={getattr(self, name)} must be >= 0.")
    if self.cd_k > MAX_CD_K:
      raise ValueError(f"--cd_k={self.cd_k}: at most {MAX_CD_K} Gibbs steps.")

  def momentum_at(self, epoch: int) -> float:
    """The momentum of `epoch` (0-based)."""
    if not self.momentum:
      return 0.0
    return MOMENTUM_EARLY if epoch < MOMENTUM_SWITCH_EPOCH else MOMENTUM_LATE

  def shape_fields(self) -> tuple[str, ...]:
    """Fields that fix the checkpoint's shapes: a resumed run must keep them.

    num_hidden sizes W; persistent adds the chains variable, whose rows are
    the global batch.
    """
    return ("num_hidden", "persistent") + (
        ("batch_size",) if self.persistent else ())


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
class GenerateConfig:
  """What to generate. Defaults: 1,000 samples of one window each.

      python -m trainer.generate --model_dir=out/job/model --output=out/samples
  """

  num_samples: int = setting(
      1000, "Total samples of the job (all shards together).")
  # The seed used 1 step from silence, far from what the model learned; on
  # the demo model the chains' free energy and activity stop moving after
  # 10-25 steps (measured, see README): 50 leaves a margin.
  gibbs_steps: int = setting(50, "Gibbs steps per window.")
  init: str = setting(
      "random", "Chain start: random (a sample of the visible biases, i.e. the "
      "data's unit means), zeros (the seed's), data (training windows; "
      "--data_dir).", choices=GENERATION_INITS)
  seed: int = setting(0, "Seeds every sample: sample i depends on (seed, i) "
                      "only.")
  temperature: float = setting(
      1.0, "Sampling temperature: both conditionals use sigmoid(pre-activation "
      "/ T). Below 1 sharpens them and thins the stray notes of a diffuse "
      "model (1: the model's own distribution, the seed's).")
  articulate_threshold: float = setting(
      0.0, "onoff models: when > 0, the last Gibbs step sets each articulate "
      "unit where p(articulate | h) >= this value instead of sampling it (play "
      "units stay sampled). Sampled, articulate units that fire with a small "
      "probability all along a held note re-strike it every few steps (0: "
      "sample them, the seed's).")
  num_windows: int = setting(
      1, "Windows per sample; each next one is conditioned on the last one's "
      "end.")
  overlap: int = setting(
      0, "Steps shared by consecutive windows (clamped); 0: a third of a "
      "window.")
  num_frames: int = setting(
      0, "RNN-RBM models: frames (grid steps) per sample, e.g. 128 = 32 bars "
      "of 4/4 on a quarter-note grid; 0: 32 bars on the model's grid. A window "
      "RBM's length is --num_windows.")
  gibbs_steps_per_frame: int = setting(
      25, "RNN-RBM models: Gibbs steps in each frame's RBM (the Theano "
      "tutorial's 25). A window RBM's are --gibbs_steps.")
  primer: str | None = setting(
      None, "A MIDI file to continue: a window RBM clamps its first window to "
      "the file's end; an RNN-RBM runs its RNN over the whole file first.")
  data_dir: str | None = setting(
      None, "The preprocessed dataset, for --init=data.")
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
      2, "Blocks of GENERATION_BLOCK samples sampled per device call; calls "
      "overlap with decoding and writing.", cli=False)

  def __post_init__(self):
    if self.num_samples < 1:
      raise ValueError(f"--num_samples={self.num_samples} must be >= 1.")
    if not 1 <= self.gibbs_steps <= MAX_GIBBS_STEPS:
      raise ValueError(f"--gibbs_steps={self.gibbs_steps} must be in 1.."
                       f"{MAX_GIBBS_STEPS}.")
    if self.init not in GENERATION_INITS:
      raise ValueError(f"--init={self.init!r}; use one of {GENERATION_INITS}.")
    if self.init == "data" and not self.data_dir:
      raise ValueError("--init=data needs --data_dir (the preprocessed dataset "
                       "whose training windows start the chains).")
    if self.num_windows < 1 or self.overlap < 0:
      raise ValueError(f"--num_windows={self.num_windows} must be >= 1 and "
                       f"--overlap={self.overlap} >= 0.")
    if not 0 <= self.shard_index < self.num_shards:
      raise ValueError(f"--shard_index={self.shard_index} must be in "
                       f"0..{self.num_shards - 1} (--num_shards="
                       f"{self.num_shards}).")
    if not self.temperature > 0:
      raise ValueError(f"--temperature={self.temperature} must be > 0 "
                       "(1 samples the model as it is).")
    if not 0 <= self.articulate_threshold <= 1:
      raise ValueError(f"--articulate_threshold={self.articulate_threshold} "
                       "must be in [0, 1] (0: sample articulate units).")
    if not 0 <= self.num_frames <= MAX_NUM_FRAMES:
      raise ValueError(f"--num_frames={self.num_frames} must be in 0.."
                       f"{MAX_NUM_FRAMES} (0: {DEFAULT_BARS} bars).")
    if not 1 <= self.gibbs_steps_per_frame <= MAX_FRAME_GIBBS_STEPS:
      raise ValueError(f"--gibbs_steps_per_frame={self.gibbs_steps_per_frame} "
                       f"must be in 1..{MAX_FRAME_GIBBS_STEPS}.")
    if self.resample_empty < 0 or self.blocks_per_call < 1:
      raise ValueError("--resample_empty must be >= 0, blocks_per_call >= 1.")

  def settings(self) -> dict:
    """What decides the output bytes: shared by all shards of one job."""
    fields = dataclasses.asdict(self)
    for key in ("shard_index", "previews", "num_previews", "overwrite",
                "blocks_per_call", "soundfont"):
      fields.pop(key)
    fields["block"] = GENERATION_BLOCK  # the sampler's shapes decide the bytes
    if not self.num_frames:
      # A window RBM's (generation fills num_frames in for an RNN-RBM): its
      # generation.json stays as before these fields, so older output resumes.
      fields.pop("num_frames")
      fields.pop("gibbs_steps_per_frame")
    return fields


@dataclasses.dataclass(frozen=True)
class GeneratePaths:
  """Where generation reads the model and writes the samples."""

  model_dir: str | None = setting(None, "The model/ folder trainer.task wrote.")
  output: str | None = setting(None, "A local folder or gs://BUCKET/PREFIX.")


@dataclasses.dataclass(frozen=True)
class AISConfig:
  """The AIS estimate of log Z (trainer/ais.py)."""

  num_chains: int = setting(
      100, "AIS chains (importance samples). More shrink the error bar as "
      "1/sqrt(chains); time grows linearly.", flag="ais_chains")
  num_betas: int = setting(
      10000, "AIS intermediate distributions (inverse temperatures) from 0 to "
      "1, both ends included. S&M use 14,500; 10,000 suits the seed's "
      "50-hidden-unit model.", flag="ais_betas")
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
  split: str = setting("eval", "Which windows to score.",
                       choices=("train", "eval"))
