"""The window RBM's own settings (no TensorFlow: deploy/ and the CLIs read it).

The job's shared defaults (trainer/config.py) are this model's: 200 hidden
units, CD-1, lr 0.005, batch 100, 200 epochs, weight decay 1e-4, with the
momentum below. `--preset=original` restores the original post's model.
"""

import dataclasses

from common.cli import setting

# Hinton's practical guide: momentum 0.5 while the weights settle, then 0.9.
MOMENTUM_EARLY, MOMENTUM_LATE, MOMENTUM_SWITCH_EPOCH = 0.5, 0.9, 5
# CD-k draws 2k + 2 streams per step within random_streams.STREAMS_PER_STEP.
MAX_CD_K = 500
GENERATION_INITS = ("random", "zeros", "data")
CANDIDATE_SCORES = ("pitch_class", "free_energy")
# --compute_dtype: float32 first (the default, and the only one of a CPU
# without bf16 instructions that is not slower).
COMPUTE_DTYPES = ("float32", "bfloat16", "float16")
# --candidates: each is a full Gibbs chain per window.
MAX_CANDIDATES = 64
# Generation chains (attempt * windows + window) below this
# (random_streams.CANDIDATE_CHAINS, a test checks).
MAX_GENERATION_CHAINS = 2**24
# Gibbs steps per generated window: two streams each, within the
# random_streams.GENERATION_CHAIN_STREAMS of one chain (a test checks).
MAX_GIBBS_STEPS = 2**20 - 1

# This model's values for the job's shared settings: the job's own defaults.
DEFAULTS = {}
# The likelihood's AIS settings are AISConfig's own defaults.
AIS_DEFAULTS = {}


@dataclasses.dataclass(frozen=True)
class Training:
  """The window RBM's own training settings."""

  persistent: bool = setting(
      False, "rbm: persistent CD: negative chains carry over between updates "
      "(Tieleman 2008).")
  # Momentum and weight decay together keep the 200-unit model's samples
  # sparse and its likelihood high (benchmarks/RESULTS.md, sample quality).
  momentum: bool = setting(
      True, "rbm: momentum 0.5 for the first 5 epochs, then 0.9 "
      "(--nomomentum: off, as in the original post).")
  # A step at the original post's shape costs less than a batch from a
  # tf.data iterator: windows that fit are gathered in the step instead.
  in_memory_mb: int = setting(
      1024, "rbm: hold the training windows in memory (one byte per unit) "
      "when they take at most this many MiB, and gather each batch inside the "
      "training step; 0: always stream them from the shards. The two read "
      "the windows in different orders.")
  # Tensor cores (and CPUs with AVX512_BF16/AMX) multiply 16-bit operands at
  # several times float32's rate; the state and the update stay float32.
  compute_dtype: str = setting(
      "float32", "rbm: operand type of the CD step's matmuls: float32, or "
      "bfloat16/float16 on hardware that multiplies them faster (GPU tensor "
      "cores, CPUs with AVX512_BF16 or AMX). Each product is rounded back to "
      "float32; parameters, momentum, the statistics' sums and the all-reduce "
      "stay float32. Sampling and AIS stay float32.",
      choices=COMPUTE_DTYPES)

  def check_training(self) -> None:
    if self.model == "rbm" and self.cd_k > MAX_CD_K:
      raise ValueError(f"--cd_k={self.cd_k}: at most {MAX_CD_K} Gibbs steps.")
    if self.in_memory_mb < 0:
      raise ValueError(f"--in_memory_mb={self.in_memory_mb}: use 0 (stream "
                       "from the shards) or a size in MiB.")
    if self.compute_dtype not in COMPUTE_DTYPES:
      raise ValueError(f"--compute_dtype={self.compute_dtype!r}; use one of "
                       f"{COMPUTE_DTYPES}.")


def momentum_at(config, epoch: int) -> float:
  """The momentum of `epoch` (0-based)."""
  if not config.momentum:
    return 0.0
  return MOMENTUM_EARLY if epoch < MOMENTUM_SWITCH_EPOCH else MOMENTUM_LATE


def shape_fields(config) -> tuple[str, ...]:
  """Fields that fix the checkpoint's shapes: num_hidden sizes W; persistent
  adds the chains variable, whose rows are the global batch."""
  return ("num_hidden", "persistent") + (
      ("batch_size",) if config.persistent else ())


@dataclasses.dataclass(frozen=True)
class Sampling:
  """How the window RBM writes a piece: chained windows of Gibbs samples.

  The defaults write 13 chained windows of 15 steps (overlap 5: 135 16th-note
  steps, 8.4 bars, 17 s at 120 bpm) at temperature 0.9 with articulate
  threshold 0.7, each window after the first the best of 4 candidates by
  pitch-class agreement with the piece so far.
  """

  # On the demo model the chains' free energy and activity stop moving after
  # 10-25 steps: 50 leaves a margin.
  gibbs_steps: int = setting(50, "rbm: Gibbs steps per window.")
  init: str = setting(
      "random", "rbm: chain start: random (a sample of the visible biases, "
      "i.e. the data's unit means), zeros (the original post's), data "
      "(training windows; --data_dir).", choices=GENERATION_INITS)
  # Sampled articulate units re-strike held notes; 0.7 brings the re-strike
  # share and the mean note length near the data's.
  articulate_threshold: float = setting(
      0.7, "rbm, onoff datasets: when > 0, the last Gibbs step sets each "
      "articulate unit where p(articulate | h) >= this value instead of "
      "sampling it (play units stay sampled). Sampled, articulate units that "
      "fire with a small probability all along a held note re-strike it every "
      "few steps (0: sample them, as the original post). Roll datasets have "
      "no articulate unit: the default does not apply to them.")
  play_threshold: float = setting(
      0.0, "rbm: when > 0, the last Gibbs step sets each play unit where "
      "p(play | h) >= this value instead of sampling it (0: sampled). "
      "Sampled play units with a middling probability sound as isolated "
      "16th-note blips.")
  num_windows: int = setting(
      0, "rbm: windows per sample; each next one is conditioned on the last "
      "one's end (0: as many as the corpus's median piece needs, at least 16 "
      "bars; 1: the original post's single window).")
  overlap: int = setting(
      0, "rbm: steps shared by consecutive windows (clamped); 0: a third of a "
      "window.")
  # A 15-step window cannot see the piece's key: the best of 4 continuations
  # by agreement with the piece's pitch-class profile keeps it.
  candidates: int = setting(
      4, "rbm: continuations sampled for each window after the first; the one "
      "whose --candidate_score is best is kept (1: no choice, as the original "
      "post). Costs K times the Gibbs steps of those windows.")
  candidate_score: str = setting(
      "pitch_class", "rbm: how --candidates are ranked: pitch_class "
      "(agreement of the candidate's new steps' pitch-class distribution with "
      "the piece so far, -KL; it needs only pitches) or free_energy (the "
      "model's own: lowest F(v) of the window).", choices=CANDIDATE_SCORES)
  data_dir: str | None = setting(
      None, "rbm: the preprocessed dataset, for --init=data.")

  def check_sampling(self) -> None:
    if not 1 <= self.gibbs_steps <= MAX_GIBBS_STEPS:
      raise ValueError(f"--gibbs_steps={self.gibbs_steps} must be in 1.."
                       f"{MAX_GIBBS_STEPS}.")
    if self.init not in GENERATION_INITS:
      raise ValueError(f"--init={self.init!r}; use one of {GENERATION_INITS}.")
    if self.init == "data" and not self.data_dir:
      raise ValueError("--init=data needs --data_dir (the preprocessed dataset "
                       "whose training windows start the chains).")
    if self.num_windows < 0 or self.overlap < 0:
      raise ValueError(f"--num_windows={self.num_windows} must be >= 0 and "
                       f"--overlap={self.overlap} >= 0.")
    if not 0 <= self.articulate_threshold <= 1:
      raise ValueError(f"--articulate_threshold={self.articulate_threshold} "
                       "must be in [0, 1] (0: sample articulate units).")
    if not 0 <= self.play_threshold <= 1:
      raise ValueError(f"--play_threshold={self.play_threshold} must be in "
                       "[0, 1] (0: sample play units).")
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
