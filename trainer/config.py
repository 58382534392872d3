"""The trainer's settings: one frozen dataclass per job, tuned defaults.

Each field is declared once with `common.cli.setting(default, help)`: the CLIs
generate their flags from it (common/cli.py) and deploy/ reads the defaults
from it, so a default lives here and nowhere else.

    python -m trainer.task --data_dir=out/dataset --job_dir=out/job

trains 200 hidden units by CD-1 with momentum and weight decay 1e-4, lr 0.005,
batch 100, 200 epochs: the settings whose samples met issue 9's goals on the
demo corpus (README, "Sample quality"). `--preset=seed` gives the seed's
settings back (50 hidden units, no momentum, no weight decay); an explicit
flag still wins over a preset. A smoke run is the same command with
--max_steps (e.g. 200).

This module must not import TensorFlow: deploy/ reads it on a laptop.
"""

import dataclasses
import typing

from common.cli import setting

# Hinton's practical guide: momentum 0.5 while the weights settle, then 0.9.
MOMENTUM_EARLY, MOMENTUM_LATE, MOMENTUM_SWITCH_EPOCH = 0.5, 0.9, 5
# Generation samples in blocks of this many chains (generate_lib's BLOCK): the
# block's shape decides the float rounding, so it is part of the output's
# settings.
GENERATION_BLOCK = 128
GENERATION_INITS = ("random", "zeros", "data")
CANDIDATE_SCORES = ("pitch_class", "free_energy")
# --candidates: each is a full Gibbs chain per window.
MAX_CANDIDATES = 64
# Generation chains (attempt * windows + window) below this
# (random_streams.CANDIDATE_CHAINS, a test checks).
MAX_GENERATION_CHAINS = 2**24
# Gibbs steps per generated window: two streams each, within the
# random_streams.GENERATION_CHAIN_STREAMS of one chain (a test checks).
MAX_GIBBS_STEPS = 2**20 - 1
# CD-k: 2k + 2 streams per step within random_streams.STREAMS_PER_STEP.
MAX_CD_K = 500
MODELS = ("rbm", "rnn_rbm")
LR_SCHEDULES = ("constant", "cosine")
# Each model's defaults for the fields both models share, applied by
# trainer/task.py to the flags the user did not give (`model_defaults`). The
# RBM's are the dataclass's own (tuned for samples, README "Sample quality");
# the RNN-RBM's are the Theano tutorial's sizes and CD-15, with Adam, cosine
# decay and whole pieces in batches of 8 as in the reference run.
MODEL_DEFAULTS = {
    "rbm": {},
    # 3e-3 (the tutorial's 1e-3 gave 7.9 instead of 5.3 nats/frame on the
    # validation subset after 30 epochs of the chorales benchmark), 30 epochs
    # with the best of every 2nd kept: README "The temporal model".
    "rnn_rbm": {"num_hidden": 150, "cd_k": 15, "learning_rate": 3e-3,
                "batch_size": 8, "lr_schedule": "cosine", "epochs": 30,
                "pretrain_rnn_epochs": 3, "validate_every_epochs": 2,
                # The window RBM's tuned momentum and weight decay are not
                # the RNN-RBM's: it trains with Adam.
                "momentum": False, "weight_decay": 0.0},
}
# The RNN-RBM's own settings: an RBM run refuses non-default values.
RNN_RBM_ONLY = ("init_from", "pretrain_rnn_epochs")
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

  # The seed's model: what `--preset=seed` restores (tests/test_config.py).
  PRESETS: typing.ClassVar[dict] = {
      "seed": {"num_hidden": 50, "momentum": False, "weight_decay": 0.0}}
  PRESET_HELP: typing.ClassVar[dict] = {
      "seed": "the seed's model: 50 hidden units, no momentum, no weight "
              "decay"}

  model: str = setting(
      "rbm", "rbm: the window RBM (the seed's). rnn_rbm: the RNN-RBM "
      "(Boulanger-Lewandowski et al. 2012) on sequences of frames; its "
      "defaults differ (MODEL_DEFAULTS: --num_hidden=150 --cd_k=15 "
      "--learning_rate=0.003 --batch_size=8 --lr_schedule=cosine --epochs=30 "
      "--pretrain_rnn_epochs=3 --validate_every_epochs=2) where those flags "
      "are not given.", choices=MODELS)
  # 50 units (the seed) leave the samples diffuse: 2.6x the data's notes per
  # second at 1/3 of its note length; 200 with momentum and weight decay (and
  # the sampling defaults below) bring notes/s, note length, polyphony, range
  # and re-strikes within 15% of the data, where 100 and 300-500 did not
  # (README, "Sample quality"; the pitch-class goal is still missed).
  # Training takes ~1.7x the seed's CPU time.
  num_hidden: int = setting(
      200, "Hidden units (the seed used 50: --preset=seed; --model=rnn_rbm: "
      "150).")
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
  # Momentum and weight decay were tried together (not one without the
  # other): without both, 200 units (run G in the README's table) had a worse
  # AIS log-likelihood (-12.0 vs -9.6 nats/frame) and 1.5x the data's notes
  # per second at T=0.9.
  momentum: bool = setting(
      True, "Momentum 0.5 for the first 5 epochs, then 0.9 (--nomomentum: "
      "off, the seed's).")
  # The practical guide's suggestion; see momentum for why it is on.
  weight_decay: float = setting(
      1e-4, "L2 weight cost on W (not biases); 0: none, the seed's.")
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
  # --- the RNN-RBM (--model=rnn_rbm) ---
  num_hidden_recurrent: int = setting(
      100, "rnn_rbm: units of the RNN state u(t).")
  sequence_length: int = setting(
      100, "rnn_rbm: training crops of at most this many frames (a random "
      "window of each piece per epoch); 0: whole sequences.")
  lr_schedule: str = setting(
      "constant", "rnn_rbm: constant, or cosine decay of --learning_rate to 0 "
      "over the run (Adam).", choices=LR_SCHEDULES)
  clip_norm: float = setting(
      10.0, "rnn_rbm: clip the gradient's global norm to this (0: no "
      "clipping).")
  init_from: str | None = setting(
      None, "rnn_rbm: a model/ folder of a frame RBM (--model=rbm trained on "
      "1-step windows, preprocess.main --num_timesteps=1, same notes and "
      "grid) whose W, b_v, b_h start the RNN-RBM, as the paper pretrains; "
      "W_uv, W_uh then start at zero.")
  pretrain_rnn_epochs: int = setting(
      0, "rnn_rbm: first train a plain RNN to predict the next frame (exact "
      "cross-entropy) for this many epochs and copy its weights in, as the "
      "paper does (0: no RNN pretraining).")
  pretrain_rnn_learning_rate: float = setting(
      0.01, "rnn_rbm: Adam's learning rate of that RNN pretraining (the "
      "RNN learns from scratch: a larger step than the RNN-RBM's).")
  validate_every_epochs: int = setting(
      5, "rnn_rbm: every this many epochs, estimate the NLL per frame of a "
      "fixed subset of eval frames by a short AIS and keep the best "
      "checkpoint; the best, not the last, is exported (early stopping).")
  validation_ais_betas: int = setting(
      300, "rnn_rbm: AIS betas of that cheap validation estimate (it is "
      "biased, but the same at every check).")

  def __post_init__(self):
    positive = ("num_hidden", "batch_size", "epochs", "cd_k",
                "steps_per_checkpoint", "log_every_steps", "summary_every_steps",
                "num_hidden_recurrent", "validate_every_epochs")
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
    if self.model not in MODELS:
      raise ValueError(f"--model={self.model!r}; use one of {MODELS}.")
    for name in ("sequence_length", "clip_norm", "pretrain_rnn_epochs"):
      if getattr(self, name) < 0:
        raise ValueError(f"--{name}={getattr(self, name)} must be >= 0.")
    if not self.pretrain_rnn_learning_rate > 0:
      raise ValueError("--pretrain_rnn_learning_rate="
                       f"{self.pretrain_rnn_learning_rate} must be > 0.")
    if self.validation_ais_betas < 2:
      raise ValueError(f"--validation_ais_betas={self.validation_ais_betas} "
                       "must be >= 2.")
    if self.model == "rbm":
      for name in RNN_RBM_ONLY:
        if getattr(self, name) != _DEFAULTS[name]:
          raise ValueError(f"--{name} is a setting of --model=rnn_rbm; this "
                           "run trains --model=rbm.")
    elif self.persistent or self.momentum:
      raise ValueError("--model=rnn_rbm trains with Adam and CD-k: drop "
                       "--persistent and --momentum.")
    if self.model == "rnn_rbm" and 2 * self.cd_k + 1 > 1024:
      raise ValueError(f"--cd_k={self.cd_k}: the RNN-RBM uses 2k + 1 streams "
                       "per step, at most 1024.")

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
    if self.model == "rnn_rbm":
      return ("model", "num_hidden", "num_hidden_recurrent")
    return ("num_hidden", "persistent") + (
        ("batch_size",) if self.persistent else ())


def model_defaults(model: str, given) -> dict:
  """MODEL_DEFAULTS[model] minus the fields in `given` (the flags the user
  passed): what trainer/task.py hands to cli.config_from_flags."""
  if model not in MODEL_DEFAULTS:
    raise ValueError(f"--model={model!r}; use one of {MODELS}.")
  return {k: v for k, v in MODEL_DEFAULTS[model].items() if k not in given}


_DEFAULTS = {f.name: f.default for f in dataclasses.fields(TrainConfig)}


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
  """What to generate. Defaults: 1,000 samples of 8.4 bars each.

      python -m trainer.generate --model_dir=out/job/model --output=out/samples

  writes 13 chained windows of 15 steps (overlap 5: 135 16th-note steps, 8.4
  bars, 17 s at 120 bpm) at temperature 0.9 with articulate threshold 0.7,
  each window after the first the best of 4 candidates by pitch-class
  agreement with the piece so far. `--preset=seed` restores the previous
  defaults (1 window, T=1, articulate units sampled, one candidate).
  """

  PRESETS: typing.ClassVar[dict] = {
      "seed": {"num_windows": 1, "temperature": 1.0,
               "articulate_threshold": 0.0, "candidates": 1}}
  PRESET_HELP: typing.ClassVar[dict] = {
      "seed": "one window (1.9 s), T=1, articulate units sampled, one "
              "candidate; the seed "
              "itself also sampled 1 Gibbs step from silence: add "
              "--gibbs_steps=1 --init=zeros for that"}

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
  # With the 200-unit default model, T=1 writes 37% more notes per second
  # than the data; 0.9 (with the threshold below) is within 10%; 0.85 writes
  # 16% fewer than the data (README, "Sample quality").
  temperature: float = setting(
      0.9, "Sampling temperature: both conditionals use sigmoid(pre-activation "
      "/ T). Below 1 sharpens them and thins the stray notes of a diffuse "
      "model (1: the model's own distribution, the seed's).")
  # Sampled articulate units re-strike held notes: without a threshold the
  # re-strike share was 57% (T=1) to 80% (T=0.8) above the data's; 0.7
  # brings it within 10% and the mean note length within 5%. 0.6 also met
  # the goals (re-strikes +13%), 0.8 did not (-34%).
  articulate_threshold: float = setting(
      0.7, "onoff models: when > 0, the last Gibbs step sets each articulate "
      "unit where p(articulate | h) >= this value instead of sampling it (play "
      "units stay sampled). Sampled, articulate units that fire with a small "
      "probability all along a held note re-strike it every few steps (0: "
      "sample them, the seed's).")
  play_threshold: float = setting(
      0.0, "When > 0, the last Gibbs step sets each play unit where "
      "p(play | h) >= this value instead of sampling it (0: sampled). "
      "Sampled play units with a middling probability sound as isolated "
      "16th-note blips.")
  # Issue 9: a sample is at least 8 bars. With the default overlap (a third
  # of a 15-step window: 5 steps) n windows are 15 + 10 (n - 1) steps, so 13
  # is the fewest that reach 8 bars (128 16th notes): 135 steps, 8.4 bars.
  num_windows: int = setting(
      13, "Windows per sample; each next one is conditioned on the last one's "
      "end (13: 8.4 bars of 15-step windows; 1: the seed's single window).")
  overlap: int = setting(
      0, "Steps shared by consecutive windows (clamped); 0: a third of a "
      "window.")
  # Issue 9: the window RBM sees 15 steps, so chained windows drift in key
  # across their seams (pitch-class overlap 0.78 against the data with one
  # candidate, goal 0.85). The best of 4 continuations by agreement with the
  # piece's pitch-class profile keeps its tonal context: 0.88, every other
  # goal kept; 8 gave 0.90 with re-strikes at -15%; the model's free energy
  # as the score 0.85 but 6.8% copies and -39% notes/s (README, "Sample
  # quality").
  candidates: int = setting(
      4, "Window RBMs: continuations sampled for each window after the "
      "first; the one whose --candidate_score is best is kept (1: no choice, "
      "the seed's). Costs K times the Gibbs steps of those windows.")
  candidate_score: str = setting(
      "pitch_class", "How --candidates are ranked: pitch_class (agreement "
      "of the candidate's new steps' pitch-class distribution with the piece "
      "so far, -KL; for any MIDI, it needs only pitches) or free_energy (the "
      "model's own: lowest F(v) of the window).", choices=CANDIDATE_SCORES)
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
  # The settings the user gave as flags (cli.explicit_fields), or None when
  # a caller built the config in code: then a value other than the default
  # counts as given. An RNN-RBM takes --temperature=0.9 only if it was given.
  explicit: frozenset | None = setting(
      None, "Fields set explicitly on the command line.", cli=False)

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
    if not 0 <= self.play_threshold <= 1:
      raise ValueError(f"--play_threshold={self.play_threshold} must be in "
                       "[0, 1] (0: sample play units).")
    if not 0 <= self.num_frames <= MAX_NUM_FRAMES:
      raise ValueError(f"--num_frames={self.num_frames} must be in 0.."
                       f"{MAX_NUM_FRAMES} (0: {DEFAULT_BARS} bars).")
    if not 1 <= self.gibbs_steps_per_frame <= MAX_FRAME_GIBBS_STEPS:
      raise ValueError(f"--gibbs_steps_per_frame={self.gibbs_steps_per_frame} "
                       f"must be in 1..{MAX_FRAME_GIBBS_STEPS}.")
    if not 1 <= self.candidates <= MAX_CANDIDATES:
      raise ValueError(f"--candidates={self.candidates} must be in 1.."
                       f"{MAX_CANDIDATES}.")
    if self.candidate_score not in CANDIDATE_SCORES:
      raise ValueError(f"--candidate_score={self.candidate_score!r}; use one "
                       f"of {CANDIDATE_SCORES}.")
    if self.num_windows * (self.resample_empty + 1) > MAX_GENERATION_CHAINS:
      raise ValueError(f"--num_windows={self.num_windows} x (--resample_empty="
                       f"{self.resample_empty} + 1) chains must be <= "
                       f"{MAX_GENERATION_CHAINS}.")
    if self.resample_empty < 0 or self.blocks_per_call < 1:
      raise ValueError("--resample_empty must be >= 0, blocks_per_call >= 1.")

  def settings(self) -> dict:
    """What decides the output bytes: shared by all shards of one job."""
    fields = dataclasses.asdict(self)
    for key in ("shard_index", "previews", "num_previews", "overwrite",
                "blocks_per_call", "soundfont", "explicit"):
      fields.pop(key)
    fields["block"] = GENERATION_BLOCK  # the sampler's shapes decide the bytes
    if not self.num_frames:
      # A window RBM's (generation fills num_frames in for an RNN-RBM): its
      # generation.json stays as before these fields, so older output resumes.
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


# An RNN-RBM needs one AIS run per frame: fewer chains and betas than one
# RBM's single log Z (16 x 1,500 were within ~0.001 nats/frame of 6,000 betas
# on the chorales, issue 10). trainer/evaluate.py applies them to the flags
# not given.
RNN_RBM_AIS_DEFAULTS = {"num_chains": 16, "num_betas": 1500}


@dataclasses.dataclass(frozen=True)
class AISConfig:
  """The AIS estimate of log Z (trainer/ais.py)."""

  num_chains: int = setting(
      100, "AIS chains (importance samples). More shrink the error bar as "
      "1/sqrt(chains); time grows linearly.", flag="ais_chains")
  # Measured on the default 200-unit demo model (README, Evaluation): log Z
  # was 390.6 at 10,000 betas, 393.1 and 393.4 at 30,000 (seeds 0, 1) and
  # 393.3 at 100,000: 10,000 underestimate it by ~2.7 nats (the likelihood
  # looks 0.18 nats/frame better than it is); from 30,000 the estimates agree
  # within their error bars, at 3x the time (~140 s of CPU), while 100,000
  # take ~450 s. The seed's 50-unit model needs only 10,000 (ESS 95 of 100).
  num_betas: int = setting(
      30000, "AIS intermediate distributions (inverse temperatures) from 0 to "
      "1, both ends included. S&M use 14,500; 30,000 suit the default "
      "200-hidden-unit model (10,000 underestimate its log Z by ~3 nats), "
      "10,000 the seed's 50 units.", flag="ais_betas")
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
