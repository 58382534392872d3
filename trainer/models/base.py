"""The interface every registered model provides, and what the jobs give it.

A model folder's model.py defines `MODEL`, an instance of a `Model` subclass.
The jobs call only what is declared here:

- training (trainer/training): `check_data`, then `trainer(run)`, a `Trainer`
  whose steps the one training loop runs, checkpoints and exports;
- files (trainer/models/files.py): `param_names`, `load`;
- generation (trainer/generation): `configure_generation`, `sampler`,
  `describe_sampling`;
- evaluation (trainer/evaluation): `evaluate`.

This module holds no maths and does no I/O.
"""

import abc
import dataclasses

import numpy as np
import pretty_midi
import tensorflow as tf

from common import cli
from preprocess import pianoroll
from preprocess import records
from trainer import models


class SetupError(cli.UsageError):
  """The run cannot start: unsuitable data, flags or job dir. Nothing written."""


class NonFiniteError(cli.JobError):
  """An update produced NaN or Inf; the last good checkpoint is kept."""


class LayoutError(cli.UsageError):
  """The data's windows or frames do not mean what the model's meant."""


class EvaluateError(cli.UsageError):
  """An evaluation flag that does not apply to this model."""


class WrongModelError(ValueError):
  """The model is of another kind than the caller can use."""


class GenerateError(cli.UsageError):
  """A flag, primer or dataset a model's sampler cannot use; nothing written."""


@dataclasses.dataclass(frozen=True)
class RunDirs:
  """Where a training job writes."""
  model_dir: str
  checkpoint_dir: str
  tensorboard_dir: str


@dataclasses.dataclass(frozen=True)
class TrainingRun:
  """What the training loop fixed before the model's trainer is built."""
  config: object  # trainer.config.TrainConfig
  data_dir: str
  dirs: RunDirs
  spec: records.DatasetSpec
  strategy: tf.distribute.Strategy
  chief: bool
  steps_per_epoch: int
  total_steps: int


@dataclasses.dataclass(frozen=True)
class LoadedModel:
  """A loaded model/ folder: the model object and what it was trained on.

  name: the registry name; model: its maths (e.g. an RBM tf.Module); config:
  the training settings recorded; info: the whole model.json.
  """
  name: str
  model: object
  dataset: records.DatasetSpec
  config: dict
  step: int
  info: dict

  @property
  def family(self) -> "Model":
    return models.get(self.name)

  def require(self, name: str, what: str) -> None:
    """Raises WrongModelError (one line, naming what `what` needs)."""
    if self.name != name:
      raise WrongModelError(
          f"{what} needs a model trained with --model={name}; this one was "
          f"trained with --model={self.name}.")


class Trainer(abc.ABC):
  """A model's training step and state, run by trainer/training/loop.py.

  The loop calls train_steps between boundaries (logging, summaries,
  checkpoints, epochs), saves `checkpoint_objects()`, and on the chief writes
  TensorBoard and the model/ folder. Each method documents its part.
  """

  # What the throughput counts per batch row ("examples", "sequences").
  unit = "examples"

  @property
  @abc.abstractmethod
  def step(self) -> tf.Variable:
    """Applied updates (int64): the checkpoint's step."""

  @abc.abstractmethod
  def checkpoint_objects(self) -> dict:
    """The trackables the checkpoint holds, by name."""

  @abc.abstractmethod
  def batches(self, start_step: int) -> tf.data.Dataset | None:
    """Global batches from `start_step` on (step s always sees the same);
    None when the trainer's step reads its own batches (in memory)."""

  def initialise(self) -> None:
    """Fresh runs only (a restored checkpoint has this): pretraining etc."""
    return None

  @abc.abstractmethod
  def train_steps(self, iterator, num_steps: int, epoch: int) -> dict:
    """Up to num_steps updates in one call; stops at a non-finite one.

    Returns tensors: "finite" (the last update tried), "steps" (applied) and
    the scalars to report (means over the applied updates).
    """

  @abc.abstractmethod
  def non_finite_error(self, out: dict, step: int, kept: str | None):
    """The NonFiniteError for a call whose last update was not finite; kept
    is the last good checkpoint."""

  def scalars(self, out: dict) -> dict:
    """Floats to log and summarise from a train_steps result."""
    return {k: float(v) for k, v in out.items() if k not in ("finite", "steps")}

  def summaries(self, step: int) -> None:
    """Model-specific TensorBoard output (in the writer's default context)."""
    del step

  def validate(self, epoch: int, last: bool) -> float | None:
    """At an epoch's end: a held-out NLL per frame when one is due (the loop
    keeps and exports the best state), else None."""
    del epoch, last
    return None

  def check_before_save(self, step: int, kept: str | None) -> None:
    """Raises NonFiniteError when the state is finite but diverged."""
    del step, kept

  def final_metrics(self) -> dict:
    """Model-specific figures for the job's result (chief)."""
    return {}

  @abc.abstractmethod
  def export(self, model_dir: str, step: int, metrics: dict) -> None:
    """Writes model/ (the chief calls this, with the state to export)."""


class Model(abc.ABC):
  """One registered model: what the jobs can ask of it."""

  name: str = ""
  # What users read (the gallery's heading, logs): "window RBM".
  title: str = ""

  # --- training -------------------------------------------------------------

  def check_data(self, spec: records.DatasetSpec, data_dir: str) -> None:
    """Raises SetupError (one line) when this model cannot train on it."""
    del spec, data_dir

  @abc.abstractmethod
  def trainer(self, run: TrainingRun) -> Trainer:
    """Builds the model under run.strategy and its trainer (no I/O but
    reading the data)."""

  # --- files ----------------------------------------------------------------

  @abc.abstractmethod
  def param_names(self, info: dict) -> tuple:
    """The arrays params.npz holds."""

  @abc.abstractmethod
  def load(self, info: dict, params: dict, dataset: records.DatasetSpec,
           path: str) -> LoadedModel:
    """The model from model.json's `info` and params.npz's arrays.

    Raises ValueError naming `path` when they do not fit together.
    """

  # --- generation -----------------------------------------------------------

  def configure_generation(self) -> bool:
    """Process-wide settings for this model's sampling; called before any
    TensorFlow op runs. Returns True if it changed anything."""
    return False

  @abc.abstractmethod
  def sampler(self, loaded: LoadedModel, config):
    """(config as the sampler runs it, sampler): sampler.sample(blocks,
    attempt) returns uint8 pieces [len(blocks) * BLOCK, steps, columns] for
    the blocks of trainer.config.GENERATION_BLOCK samples, sample i depending
    on (seed, i, attempt) only.

    Raises GenerateError for a flag of another model or an unusable primer.
    """

  @abc.abstractmethod
  def describe_sampling(self, config) -> str:
    """One line for the gallery: the model and how it sampled."""

  # --- likelihood -----------------------------------------------------------

  @abc.abstractmethod
  def evaluate(self, loaded: LoadedModel, spec: records.DatasetSpec,
               model_dir: str, data_dir: str, split: str,
               ais_config, max_frames: int = 0) -> dict:
    """Held-out log-likelihood of `split` and the Bernoulli baseline's.

    max_frames: score a fixed subset of the split's sequences holding about
    this many frames (0: all); a model whose evaluation is cheap whatever
    the split's size refuses it (`refuse_frame_cap`).
    """


def refuse_frame_cap(max_frames: int, title: str) -> None:
  """The usage error of --max_frames for a model that scores a whole split
  in seconds."""
  if max_frames:
    raise EvaluateError(
        f"--max_frames={max_frames}: the {title} scores the whole split in "
        "seconds; the cap is for the RNN-RBM's per-frame AIS. Drop "
        "the flag.")


def check_same_frames(model_spec: records.DatasetSpec,
                      data_spec: records.DatasetSpec, model_dir: str,
                      data_dir: str) -> None:
  """A frame model reads any sequences whose FRAMES mean the same: encoding,
  notes and grid must match (window length and stride need not)."""
  fields = ("encoding", "low_note", "high_note", "steps_per_quarter")
  diffs = [f for f in fields
           if getattr(model_spec, f) != getattr(data_spec, f)]
  if diffs:
    show = lambda s: ", ".join(f"{f}={getattr(s, f)}" for f in diffs)
    raise LayoutError(
        f"the model in {model_dir} was trained on frames with "
        f"{show(model_spec)} but {data_dir}/dataset.json has {show(data_spec)}"
        ": evaluate on data preprocessed with the model's notes and grid.")


def refuse_other_sampling_flags(config, name: str) -> None:
  """Raises GenerateError for a sampling flag of another model that the
  command line gave (a frame model ignores a window RBM's levers)."""
  for other in models.NAMES:
    if other == name:
      continue
    for field in dataclasses.fields(models.settings(other).Sampling):
      if config.given(field.name):
        raise GenerateError(
            f"--{field.name} is a sampling setting of --model={other}; this "
            f"model was trained with --model={name}: leave it out.")


def default_steps(spec: records.DatasetSpec, min_bars: int,
                  fallback_bars: int) -> int:
  """Grid steps of a default sample: the corpus's median piece (at least
  `min_bars` bars of 4/4), or `fallback_bars` when dataset.json predates
  piece lengths."""
  median = spec.median_piece_bars()
  bars = fallback_bars if median is None else max(min_bars, median)
  return bars * 4 * spec.roll_spec.steps_per_quarter


def frame_model_length(config, spec: records.DatasetSpec, min_bars: int,
                       fallback_bars: int, max_frames: int) -> int:
  """A frame model's samples' length: --num_frames, else default_steps (up
  to max_frames and what a MIDI file holds).

  Raises:
    GenerateError: --num_frames longer than a MIDI file can hold.
  """
  frames = config.num_frames or min(
      default_steps(spec, min_bars, fallback_bars), max_frames,
      max_piece_steps(spec.roll_spec))
  most = max_piece_steps(spec.roll_spec)
  if frames > most:
    raise GenerateError(
        f"--num_frames={frames}: a piece that long ends past MIDI tick "
        f"{pretty_midi.pretty_midi.MAX_TICK:.0f}, where MIDI readers refuse "
        f"the file as corrupt; use --num_frames <= {most}.")
  return frames


def max_piece_steps(spec) -> int:
  """The most grid steps a written MIDI file can hold and still be read
  (pretty_midi refuses files whose last tick passes its MAX_TICK)."""
  ticks_per_step = pianoroll.MIDI_RESOLUTION / spec.steps_per_quarter
  return int(pretty_midi.pretty_midi.MAX_TICK // ticks_per_step)


def masked_baseline_sum(batch: np.ndarray, lengths: np.ndarray, log_p,
                        log_q) -> float:
  """Sum of independent-Bernoulli log p over the real frames of a batch of
  sequences [B, T, V] (lengths [B])."""
  v = batch.astype(np.float64)
  mask = np.arange(v.shape[1])[None, :] < lengths[:, None]
  return float(((v @ log_p + (1 - v) @ log_q) * mask).sum())
