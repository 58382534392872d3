"""Sequence training under tf.distribute that the temporal models share, run
by trainer/training.

A model's `SequenceTrainer` subclass gives its loss (`terms`: the RNN-RBM's
CD surrogate, the RNN-NADE's exact NLL) and its `RecurrentTrainer` subclass
builds the model and its validation. This module adds:

- one update: a global batch of sequences [B, T, V] (+ lengths) is split over
  the replicas; each returns the gradient of its loss SUM and its number of
  real frames; both are all-reduced and the gradient divided once by the
  GLOBAL number of real frames, so 1 and N replicas make the same update
  (keyed noise: a frame's noise depends on its global row and frame only);
- Adam with the global gradient norm clipped, learning rate constant or
  cosine-decayed; a non-finite update is never applied (NonFiniteError);
- the optional start of the RNN from a `FrameRNN` pretrained on next-frame
  cross-entropy (--pretrain_rnn_epochs), before the first step only;
- validation every --validate_every_epochs epochs on a fixed subset of the
  valid split's frames (the eval split's if the dataset has no valid split,
  with a warning: eval is then no clean test set); the loop keeps the best
  state and exports it.

It must not read flags (trainer/task.py does).
"""

import abc
import dataclasses
import math
import typing

from absl import logging
import numpy as np
import tensorflow as tf

from preprocess import records
from trainer import data
from trainer.models import base
from trainer.models import files
from trainer.models.recurrent import maths as recurrent

_ADAM_BETAS, _ADAM_EPSILON = (0.9, 0.999), 1e-8


class Adam:
  """Adam on a list of (mirrored) variables, updated in cross-replica context.

  Written out rather than a Keras optimizer: its slots are plain variables
  the checkpoint holds, and the select on `finite` below keeps a non-finite
  update from touching any state.
  """

  def __init__(self, strategy, params, learning_rate: float, schedule: str,
               total_steps: int, clip_norm: float, name: str):
    self.params, self.base_lr = params, learning_rate
    self.schedule, self.total_steps, self.clip_norm = (schedule, total_steps,
                                                       clip_norm)
    with strategy.scope():
      self.m = [tf.Variable(tf.zeros_like(p), trainable=False,
                            name=f"{name}_m{i}") for i, p in enumerate(params)]
      self.v = [tf.Variable(tf.zeros_like(p), trainable=False,
                            name=f"{name}_v{i}") for i, p in enumerate(params)]
      self.step = tf.Variable(0, dtype=tf.int64, trainable=False,
                              name=f"{name}_step")

  def learning_rate(self, step):
    lr = tf.constant(self.base_lr, tf.float32)
    if self.schedule == "cosine":
      frac = tf.minimum(tf.cast(step, tf.float32) / max(self.total_steps, 1),
                        1.0)
      lr = lr * 0.5 * (1.0 + tf.cos(math.pi * frac))
    return lr

  def apply(self, grads, extra_finite=()):
    """Clips, checks and applies `grads`. Returns (finite, grad_norm)."""
    norm = tf.linalg.global_norm(grads)
    if self.clip_norm > 0:
      grads, _ = tf.clip_by_global_norm(grads, self.clip_norm, norm)
    t = tf.cast(self.step + 1, tf.float32)
    b1, b2 = _ADAM_BETAS
    lr = self.learning_rate(self.step)
    new_m = [b1 * m + (1 - b1) * g for m, g in zip(self.m, grads)]
    new_v = [b2 * v + (1 - b2) * g * g for v, g in zip(self.v, grads)]
    scale = lr * tf.sqrt(1 - b2**t) / (1 - b1**t)
    new_p = [p - scale * m / (tf.sqrt(v) + _ADAM_EPSILON)
             for p, m, v in zip(self.params, new_m, new_v)]
    finite = tf.reduce_all([tf.reduce_all(tf.math.is_finite(x))
                            for x in new_p + list(extra_finite)])
    for var, value in zip(self.params + self.m + self.v, new_p + new_m + new_v):
      var.assign(tf.where(finite, value, var))
    self.step.assign_add(tf.cast(finite, tf.int64))
    return finite, norm


class SequenceTrainer(abc.ABC):
  """One update of a sequence model per call, on a global batch split by
  `strategy`; a subclass sets PARAMS, REPORTED and `terms` (the RNN-RBM's
  CD surrogate, the RNN-NADE's exact NLL)."""

  # The arrays the update trains, as the model's attributes (the first is W,
  # the one --weight_decay decays).
  PARAMS: typing.ClassVar[tuple]
  # The figures a step reports (per real frame of the global batch), each
  # from the sum of that name in the model's terms.
  REPORTED: typing.ClassVar[dict]

  def __init__(self, strategy, model, config, total_steps: int):
    self.strategy, self.model, self.config = strategy, model, config
    # The arrays trained and exported: PARAMS and the model's own extras.
    self.param_names = self.PARAMS + model.extra_params
    self.params = [getattr(model, n) for n in self.param_names]
    self.optimiser = Adam(strategy, self.params, config.learning_rate,
                          config.lr_schedule, total_steps, config.clip_norm,
                          "adam")
    self.step = self.optimiser.step
    self.train_step = tf.function(self._train_step)
    self.train_loop = tf.function(self._train_loop)

  @abc.abstractmethod
  def terms(self, frames, lengths, row_start) -> dict:
    """The model's sums over a replica's real frames: loss_sum (what the
    update differentiates), num_frames and the REPORTED sums."""

  def context_rate(self):
    """--context_sampling's share at this step: rising linearly from 0 over
    the first half of the run, then held (None when the flag is 0)."""
    rate = self.config.context_sampling
    if not rate:
      return None
    half = max(self.optimiser.total_steps // 2, 1)
    return rate * tf.minimum(tf.cast(self.step, tf.float32) / half, 1.0)

  def _replica_grads(self, frames, lengths):
    ctx = tf.distribute.get_replica_context()
    local = tf.shape(frames, out_type=tf.int64)[0]
    # Replica r holds global rows [r * local, (r + 1) * local): its noise is
    # keyed by those rows, so any replica count draws the same.
    row_start = tf.cast(ctx.replica_id_in_sync_group, tf.int64) * local
    with tf.GradientTape() as tape:
      out = self.terms(frames, lengths, row_start)
    grads = tape.gradient(out["loss_sum"], self.params)
    return (grads, out["num_frames"],
            tf.stack([out[key] for key in self.REPORTED.values()]))

  def _train_step(self, dist_batch):
    """One update. Returns the REPORTED figures (per real frame), grad_norm
    and finite."""
    frames, lengths = dist_batch
    grads, n, sums = self.strategy.run(self._replica_grads,
                                       args=(frames, lengths))
    total = lambda x: self.strategy.reduce(tf.distribute.ReduceOp.SUM, x,
                                           axis=None)
    # Sums from every replica, divided once by the GLOBAL number of real
    # frames: the mean over the global batch, whatever the replica count.
    n = tf.maximum(total(n), 1.0)
    grads = [total(g) / n for g in grads]
    if self.config.weight_decay:
      grads[0] += self.config.weight_decay * self.model.weights  # W only
    means = total(sums) / n
    finite, norm = self.optimiser.apply(grads, extra_finite=(means,))
    out = {name: means[i] for i, name in enumerate(self.REPORTED)}
    out.update(grad_norm=norm, finite=finite)
    return out

  def _train_loop(self, iterator, num_steps):
    """Up to `num_steps` updates in one call; stops at a non-finite one."""
    names = (*self.REPORTED, "grad_norm")
    finite = tf.constant(True)
    sums = tf.zeros([len(names)])
    done = tf.constant(0)
    for _ in tf.range(num_steps):
      out = self._train_step(next(iterator))
      finite = out["finite"]
      if not finite:
        break
      sums += tf.stack([out[name] for name in names])
      done += 1
    mean = sums / tf.maximum(tf.cast(done, tf.float32), 1.0)
    return {"finite": finite, "steps": done,
            **{name: mean[i] for i, name in enumerate(names)}}


def training_batches(data_dir, spec, config, start_step: int,
                     steps_per_epoch: int) -> tf.data.Dataset:
  """Global batches (frames, lengths) from `start_step` on; epoch e's order
  and crops are keyed by (seed, e), so step s always sees the same batch and
  a resumed run continues exactly."""
  return data.resumable_epochs(
      lambda shuffle_seed: data.make_sequence_dataset(
          data_dir, "train", config.batch_size, spec,
          crop_length=config.sequence_length, shuffle=True, seed=shuffle_seed,
          drop_remainder=True),
      config.seed, start_step, steps_per_epoch)


def frame_statistics(data_dir, spec) -> tuple[np.ndarray, int]:
  """Each unit's mean over the training frames, and the number of frames."""
  total, count = np.zeros(spec.n_columns), 0
  for frames, lengths in data.make_sequence_dataset(data_dir, "train", 64,
                                                    spec):
    total += frames.numpy().sum(axis=(0, 1))  # padding is silence
    count += int(lengths.numpy().sum())
  return total / max(count, 1), count


def validation_subset(data_dir, spec, split: str | None, frames: int,
                      crop: int):
  """(frames, lengths) of the fixed validation subset of `split` (its first
  sequences, each cut to `crop` frames, until `frames` in all), or None."""
  if split is None:
    return None
  budget, rows, lengths, used = frames, [], [], 0
  for frames, lens in data.make_sequence_dataset(data_dir, split, 16, spec):
    for f, n in zip(frames.numpy(), lens.numpy()):
      n = int(min(n, crop, budget - used))
      if n <= 0:
        break
      rows.append(f[:crop])
      lengths.append(n)
      used += n
  width = max(len(r) for r in rows)
  padded = np.zeros((len(rows), width, spec.n_columns), np.float32)
  for i, r in enumerate(rows):
    padded[i, :lengths[i]] = r[:lengths[i]]
  return tf.constant(padded), tf.constant(lengths, tf.int32)


def _pretrain_rnn(run: base.TrainingRun, model, frame_means) -> None:
  """Trains a FrameRNN on next-frame cross-entropy, then copies it in."""
  config = run.config
  steps = config.pretrain_rnn_epochs * run.steps_per_epoch
  with run.strategy.scope():
    rnn = recurrent.FrameRNN(run.spec.n_columns, config.num_hidden_recurrent,
                             frame_means, seed=config.seed,
                             recurrence=config.recurrence)
  params = [rnn.w_vu, rnn.w_uu, rnn.w_uv, rnn.b_u, rnn.u0, rnn.output_bias]
  opt = Adam(run.strategy, params, config.pretrain_rnn_learning_rate,
             config.lr_schedule,
             steps, config.clip_norm, "pretrain")
  strategy = run.strategy

  def replica(frames, lengths):
    with tf.GradientTape() as tape:
      out = rnn.cross_entropy_terms(frames, lengths)
    return (tape.gradient(out["cross_entropy_sum"], params),
            out["num_frames"], out["cross_entropy_sum"])

  @tf.function
  def step(batch):
    grads, n, loss = strategy.run(replica, args=batch)
    total = lambda x: strategy.reduce(tf.distribute.ReduceOp.SUM, x, axis=None)
    n = tf.maximum(total(n), 1.0)
    loss = total(loss) / n
    finite, _ = opt.apply([total(g) / n for g in grads], extra_finite=(loss,))
    return loss, finite

  # Its own seed region (epochs from 2^19): not the model's batches.
  dataset = training_batches(
      run.data_dir, run.spec, dataclasses.replace(
          config, seed=config.seed + 2**19), 0, run.steps_per_epoch)
  iterator = iter(strategy.experimental_distribute_dataset(dataset))
  total_loss = 0.0
  for i in range(steps):
    loss, finite = step(next(iterator))
    if not bool(finite):
      raise base.NonFiniteError(
          f"RNN pretraining step {i + 1} went NaN/Inf "
          f"(--pretrain_rnn_learning_rate={config.pretrain_rnn_learning_rate}"
          "): lower it, or --pretrain_rnn_epochs=0.")
    total_loss += float(loss)
    if (i + 1) % run.steps_per_epoch == 0:
      logging.info("RNN pretraining epoch %d/%d: cross-entropy %.4f nats/frame",
                   (i + 1) // run.steps_per_epoch, config.pretrain_rnn_epochs,
                   total_loss / run.steps_per_epoch)
      total_loss = 0.0
  model.copy_rnn_from(rnn)


def checked_validation_split(run: base.TrainingRun) -> str | None:
  """The split early stopping reads; on the chief, a warning when it is eval
  (no clean test figure then) or when there is none."""
  split = data.validation_split(run.spec)
  if run.chief:
    if split == records.EVAL_PREFIX:
      logging.warning(
          "%s has no valid split: early stopping and the exported (best) "
          "state are chosen on eval, so the eval figure trainer.evaluate "
          "reports was also used for model selection; preprocess with "
          "--valid_fraction=0.1 (or --valid_input) for a clean test figure.",
          run.data_dir)
    if split is None:
      logging.warning(
          "%s has neither a valid nor an eval split: no validation, and the "
          "last state (not the best) is exported; preprocess with "
          "--valid_fraction=0.1 for early stopping.", run.data_dir)
  return split


class RecurrentTrainer(base.Trainer):
  """A model of `RecurrentBiases` in the training loop: its SequenceTrainer,
  the RNN pretraining, validation and export. Subclasses: the RNN-RBM's
  (trainer/models/rnn_rbm/training.py), the RNN-NADE's
  (trainer/models/rnn_nade/training.py)."""

  unit = "sequences"
  # The registry name model.json records, and the update's class.
  NAME: typing.ClassVar[str]
  SEQUENCE_TRAINER: typing.ClassVar[type[SequenceTrainer]]

  def __init__(self, run: base.TrainingRun):
    config, spec = run.config, run.spec
    self.run = run
    self.frame_means, self.train_frames = frame_statistics(run.data_dir, spec)
    with run.strategy.scope():
      self.model = self.build_model()
    self.sequence_trainer = self.SEQUENCE_TRAINER(run.strategy, self.model,
                                                  config, run.total_steps)
    self.validator = self.build_validator()

  @abc.abstractmethod
  def build_model(self):
    """The model, under the strategy's scope."""

  @abc.abstractmethod
  def build_validator(self):
    """What `validate` asks for nll_per_frame(model)."""

  @property
  def step(self):
    return self.sequence_trainer.step

  def checkpoint_objects(self) -> dict:
    opt = self.sequence_trainer.optimiser
    return {"model": self.model, "adam_m": opt.m, "adam_v": opt.v,
            "step": opt.step}

  def batches(self, start_step: int) -> tf.data.Dataset:
    run = self.run
    return training_batches(run.data_dir, run.spec, run.config, start_step,
                            run.steps_per_epoch)

  def initialise(self) -> None:
    """The paper's RNN pretraining, on a fresh run only."""
    if self.run.config.pretrain_rnn_epochs:
      _pretrain_rnn(self.run, self.model, self.frame_means)

  def train_steps(self, iterator, num_steps: int, epoch: int) -> dict:
    del epoch  # the schedule follows the optimiser's step
    return self.sequence_trainer.train_loop(iterator, tf.constant(num_steps))

  def non_finite_error(self, out, step, kept):
    config = self.run.config
    return base.NonFiniteError(
        f"step {step + 1}: the update went NaN/Inf (--learning_rate="
        f"{config.learning_rate}, --clip_norm={config.clip_norm}). It was "
        f"not applied; the last good checkpoint ({kept}) is kept. Lower "
        "--learning_rate, then rerun the same command to resume.")

  def scalars(self, out) -> dict:
    values = {k: float(out[k]) for k in (*self.SEQUENCE_TRAINER.REPORTED,
                                         "grad_norm")}
    values["learning_rate"] = float(
        self.sequence_trainer.optimiser.learning_rate(self.step))
    return values

  def validate(self, epoch: int, last: bool) -> float | None:
    if not (epoch % self.run.config.validate_every_epochs == 0 or last):
      return None
    return self.validator.nll_per_frame(self.model)

  def final_metrics(self) -> dict:
    # Which split chose the exported state: "eval" means the eval figure is
    # not a clean test figure.
    return {"validation_split": data.validation_split(self.run.spec)}

  def export(self, model_dir: str, step: int, metrics: dict) -> None:
    save(model_dir, self.model, self.run.spec,
         dataclasses.asdict(self.run.config), step, self.frame_means,
         self.train_frames, metrics.get("validation_split"), name=self.NAME,
         params=self.sequence_trainer.param_names)


def save(model_dir: str, model: recurrent.RecurrentBiases,
         dataset: records.DatasetSpec, config: dict, step: int, frame_means,
         train_frames: int, validation_split: str | None = None, *,
         name: str, params: tuple) -> None:
  """Writes a recurrent model's model/ folder.

  Args:
    frame_means: [V] each unit's mean over the training frames (the
      baseline, and the RNN-RBM's AIS base rate; dataset.json has none for
      pieces).
    train_frames: how many frames those means were taken over.
    validation_split: the split that chose the exported state ("valid", or
      "eval" when the dataset had none: its eval figure is then optimistic).
    name: the registry name model.json records; params: the arrays
      params.npz holds, named as the model's attributes.
  """
  files.save(model_dir, {param: getattr(model, param).numpy()
                         for param in params}, {
      "model": name,
      "sizes": model.sizes(),
      "frame_statistics": {"means": [float(m) for m in frame_means],
                           "frames": int(train_frames)},
      "validation_split": validation_split,
      **files.base_info(config, dataset, step)})
