"""Training the RNN-RBM (--model=rnn_rbm) under tf.distribute.

The maths is trainer/models/rnn_rbm.py (`RNNRBM.cd_terms`: the RNN over the
data, every frame's CD-k negative sample at once, the free-energy gap
F(v) - F(v*) as the surrogate loss). This module owns the rest, as
trainer/train_lib.py does for the RBM, whose helpers (directories, run
config, chief, barrier, errors) it reuses:

- one update: a global batch of sequences [B, T, V] (+ lengths) is split over
  the replicas; each returns the gradient of its loss SUM and its number of
  real frames; both are all-reduced and the gradient divided once by the
  GLOBAL number of real frames, so 1 and N replicas make the same update
  (keyed noise: a frame's noise depends on its global row and frame only);
- Adam with the global gradient norm clipped, learning rate constant or
  cosine-decayed; a non-finite update is never applied (NonFiniteError);
- optional starts: W, b_v, b_h from a trained frame RBM (--init_from) and the
  RNN from a `FrameRNN` pretrained on next-frame cross-entropy
  (--pretrain_rnn_epochs), both before the first step only;
- checkpoints (resume after a kill continues exactly), TensorBoard scalars,
  and early stopping: every --validate_every_epochs epochs a short AIS
  estimate of the NLL per frame on a fixed subset of the valid split's
  frames (the eval split's if the dataset has no valid split, with a
  warning: eval is then no clean test set); the best state is kept in
  CHECKPOINT_DIR/best and that one is exported.

It must not read flags (trainer/task.py does).
"""

import dataclasses
import math
import os
import time

from absl import logging
import numpy as np
import tensorflow as tf

from preprocess import records
from trainer import ais as ais_lib
from trainer import config as config_lib
from trainer import data
from trainer import distribute
from trainer import export
from trainer import train_lib
from trainer.models import rnn_rbm as rnn_rbm_lib

_KEEP_CHECKPOINTS = 3
BEST_SUBDIR = "best"
# The validation subset: the first valid (else eval) sequences, cut to this many frames
# each, until this many frames in all; 8 AIS chains per frame. Small enough
# for a few seconds per check on 2 cores at H=150.
_VALIDATION_FRAMES, _VALIDATION_CROP, _VALIDATION_CHAINS = 512, 128, 8
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


class SequenceTrainer:
  """One RNN-RBM update per call, on a global batch split by `strategy`."""

  def __init__(self, strategy, model: rnn_rbm_lib.RNNRBM,
               config: config_lib.TrainConfig, total_steps: int):
    self.strategy, self.model, self.config = strategy, model, config
    self.params = [getattr(model, n) for n in export.RNN_RBM_PARAMS]
    self.optimiser = Adam(strategy, self.params, config.learning_rate,
                          config.lr_schedule, total_steps, config.clip_norm,
                          "adam")
    self.step = self.optimiser.step
    self.train_step = tf.function(self._train_step)
    self.train_loop = tf.function(self._train_loop)

  def _replica_grads(self, frames, lengths):
    ctx = tf.distribute.get_replica_context()
    local = tf.shape(frames, out_type=tf.int64)[0]
    # Replica r holds global rows [r * local, (r + 1) * local): its noise is
    # keyed by those rows, so any replica count draws the same.
    row_start = tf.cast(ctx.replica_id_in_sync_group, tf.int64) * local
    with tf.GradientTape() as tape:
      out = self.model.cd_terms(frames, lengths, self.config.cd_k,
                                self.config.seed, self.step, row_start)
    grads = tape.gradient(out["loss_sum"], self.params)
    return (grads, out["num_frames"], out["loss_sum"],
            out["squared_error_sum"])

  def _train_step(self, dist_batch):
    """One update. Returns free_energy_gap, reconstruction_error (per real
    frame), grad_norm, finite."""
    frames, lengths = dist_batch
    grads, n, gap, sq = self.strategy.run(self._replica_grads,
                                          args=(frames, lengths))
    total = lambda x: self.strategy.reduce(tf.distribute.ReduceOp.SUM, x,
                                           axis=None)
    # Sums from every replica, divided once by the GLOBAL number of real
    # frames: the mean over the global batch, whatever the replica count.
    n = tf.maximum(total(n), 1.0)
    grads = [total(g) / n for g in grads]
    if self.config.weight_decay:
      grads[0] += self.config.weight_decay * self.model.weights  # W only
    gap, recon = total(gap) / n, total(sq) / n
    finite, norm = self.optimiser.apply(grads, extra_finite=(gap, recon))
    return {"free_energy_gap": gap, "reconstruction_error": recon,
            "grad_norm": norm, "finite": finite}

  def _train_loop(self, iterator, num_steps):
    """Up to `num_steps` updates in one call; stops at a non-finite one."""
    finite = tf.constant(True)
    sums = tf.zeros([3])
    done = tf.constant(0)
    for _ in tf.range(num_steps):
      out = self._train_step(next(iterator))
      finite = out["finite"]
      if not finite:
        break
      sums += tf.stack([out["free_energy_gap"], out["reconstruction_error"],
                        out["grad_norm"]])
      done += 1
    mean = sums / tf.maximum(tf.cast(done, tf.float32), 1.0)
    return {"finite": finite, "steps": done, "free_energy_gap": mean[0],
            "reconstruction_error": mean[1], "grad_norm": mean[2]}


# --- data ----------------------------------------------------------------------


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


def validation_subset(data_dir, spec, split: str | None):
  """(frames, lengths) of the fixed validation subset of `split`, or None."""
  if split is None:
    return None
  rows, lengths, used = [], [], 0
  for frames, lens in data.make_sequence_dataset(data_dir, split, 16, spec):
    for f, n in zip(frames.numpy(), lens.numpy()):
      n = int(min(n, _VALIDATION_CROP, _VALIDATION_FRAMES - used))
      if n <= 0:
        break
      rows.append(f[:_VALIDATION_CROP])
      lengths.append(n)
      used += n
  width = max(len(r) for r in rows)
  padded = np.zeros((len(rows), width, spec.n_columns), np.float32)
  for i, r in enumerate(rows):
    padded[i, :lengths[i]] = r[:lengths[i]]
  return tf.constant(padded), tf.constant(lengths, tf.int32)


def check_data_for_model(config, data_dir) -> None:
  """Raises SetupError (one line) when the data cannot feed config.model: an
  RBM needs fixed windows; whole pieces are for --model=rnn_rbm."""
  spec = train_lib._load_spec(data_dir)  # pylint: disable=protected-access
  if config.model == "rbm" and data.is_whole_pieces(spec):
    raise train_lib.SetupError(
        f"{data_dir} holds whole pieces (preprocess.main --num_timesteps=0), "
        "which only --model=rnn_rbm reads; train an RBM on fixed windows "
        "(--num_timesteps=T > 0).")


# --- setup -----------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class _Run:
  config: config_lib.TrainConfig
  data_dir: str
  dirs: train_lib.RunDirs
  spec: records.DatasetSpec
  strategy: tf.distribute.Strategy
  chief: bool
  steps_per_epoch: int
  total_steps: int
  frame_means: np.ndarray
  train_frames: int


def _setup(config, data_dir, dirs, strategy) -> _Run:
  spec = train_lib._load_spec(data_dir)  # pylint: disable=protected-access
  n_train = data.num_windows(spec, "train")
  steps_per_epoch = n_train // config.batch_size
  what = "pieces" if data.is_whole_pieces(spec) else "windows"
  if steps_per_epoch == 0:
    raise train_lib.SetupError(
        f"{data_dir} has {n_train} training {what}, fewer than one global "
        f"batch of --batch_size={config.batch_size}; use --batch_size <= "
        f"{n_train} (if > 0) or preprocess more data.")
  strategy = strategy or distribute.make_strategy()
  if config.batch_size % strategy.num_replicas_in_sync:
    raise train_lib.SetupError(
        f"--batch_size={config.batch_size} does not split evenly over "
        f"{strategy.num_replicas_in_sync} replicas; use a multiple of "
        f"{strategy.num_replicas_in_sync}.")
  if config.init_from:
    _load_frame_rbm(config, spec)  # fail before anything is written
  chief = train_lib._is_chief(strategy)  # pylint: disable=protected-access
  train_lib.check_run_config(dirs.checkpoint_dir, config, spec, write=chief)
  means, count = frame_statistics(data_dir, spec)
  return _Run(config, data_dir, dirs, spec, strategy, chief, steps_per_epoch,
              config.max_steps or config.epochs * steps_per_epoch, means, count)


def _load_frame_rbm(config, spec):
  """The --init_from frame RBM, checked against this run's data and sizes."""
  try:
    loaded = export.load_model(config.init_from)
    loaded.require(export.RBM, "--init_from")
  except (FileNotFoundError, ValueError) as e:
    raise train_lib.SetupError(f"--init_from={config.init_from}: {e}") from None
  theirs, ours = loaded.dataset, spec
  fields = ("encoding", "low_note", "high_note", "steps_per_quarter")
  diffs = [f"{f}={getattr(theirs, f)} (data: {getattr(ours, f)})"
           for f in fields if getattr(theirs, f) != getattr(ours, f)]
  if theirs.num_timesteps != 1:
    diffs.append(f"num_timesteps={theirs.num_timesteps} (a frame RBM has 1)")
  if loaded.rbm.n_hidden != config.num_hidden:
    diffs.append(f"num_hidden={loaded.rbm.n_hidden} (this run: "
                 f"--num_hidden={config.num_hidden})")
  if diffs:
    raise train_lib.SetupError(
        f"--init_from={config.init_from} is not a frame RBM of this data: "
        f"{', '.join(diffs)}; train one with --model=rbm on "
        "preprocess.main --num_timesteps=1 output of the same notes and grid.")
  return loaded.rbm


@dataclasses.dataclass
class _State:
  model: rnn_rbm_lib.RNNRBM
  trainer: SequenceTrainer
  checkpoint: tf.train.Checkpoint
  manager: tf.train.CheckpointManager
  best: tf.train.CheckpointManager
  best_nll: tf.Variable


def _restore(run: _Run) -> _State:
  config = run.config
  with run.strategy.scope():
    model = rnn_rbm_lib.RNNRBM(
        run.spec.n_columns, config.num_hidden, config.num_hidden_recurrent,
        unit_means=run.frame_means, seed=config.seed,
        zero_bias_projections=bool(config.init_from))
    best_nll = tf.Variable(np.inf, trainable=False, name="best_nll")
  trainer = SequenceTrainer(run.strategy, model, config, run.total_steps)
  opt = trainer.optimiser
  checkpoint = tf.train.Checkpoint(model=model, adam_m=opt.m, adam_v=opt.v,
                                   step=opt.step, best_nll=best_nll)
  write_dir = train_lib._checkpoint_write_dir(  # pylint: disable=protected-access
      run.dirs.checkpoint_dir, run.strategy)
  manager = tf.train.CheckpointManager(checkpoint, write_dir,
                                       max_to_keep=_KEEP_CHECKPOINTS)
  best = tf.train.CheckpointManager(checkpoint,
                                    os.path.join(write_dir, BEST_SUBDIR),
                                    max_to_keep=1, checkpoint_name="best")
  latest = tf.train.latest_checkpoint(run.dirs.checkpoint_dir)
  if latest:
    checkpoint.restore(latest).assert_existing_objects_matched()
    logging.info("resumed from %s at step %d", latest, int(opt.step.numpy()))
  else:
    _initialise(run, model)
  return _State(model, trainer, checkpoint, manager, best, best_nll)


def _initialise(run: _Run, model) -> None:
  """The paper's starts, on a fresh run only (a checkpoint has them)."""
  config = run.config
  if config.init_from:
    model.load_rbm(_load_frame_rbm(config, run.spec))
    logging.info("W, b_v, b_h from the frame RBM in %s", config.init_from)
  if config.pretrain_rnn_epochs:
    _pretrain_rnn(run, model)


def _pretrain_rnn(run: _Run, model) -> None:
  """Trains a FrameRNN on next-frame cross-entropy, then copies it in."""
  config = run.config
  steps = config.pretrain_rnn_epochs * run.steps_per_epoch
  with run.strategy.scope():
    rnn = rnn_rbm_lib.FrameRNN(run.spec.n_columns, config.num_hidden_recurrent,
                               run.frame_means, seed=config.seed)
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

  # Its own seed region (epochs from 2^19): not the RNN-RBM's batches.
  dataset = training_batches(
      run.data_dir, run.spec, dataclasses.replace(
          config, seed=config.seed + 2**19), 0, run.steps_per_epoch)
  iterator = iter(strategy.experimental_distribute_dataset(dataset))
  total_loss = 0.0
  for i in range(steps):
    loss, finite = step(next(iterator))
    if not bool(finite):
      raise train_lib.NonFiniteError(
          f"RNN pretraining step {i + 1} went NaN/Inf (--learning_rate="
          f"{config.learning_rate}): lower it, or --pretrain_rnn_epochs=0.")
    total_loss += float(loss)
    if (i + 1) % run.steps_per_epoch == 0:
      logging.info("RNN pretraining epoch %d/%d: cross-entropy %.4f nats/frame",
                   (i + 1) // run.steps_per_epoch, config.pretrain_rnn_epochs,
                   total_loss / run.steps_per_epoch)
      total_loss = 0.0
  model.copy_rnn_from(rnn)


# --- the loop ----------------------------------------------------------------------


class _Validator:
  """The cheap early-stopping estimate: NLL per frame of a fixed subset."""

  def __init__(self, run: _Run):
    self.split = data.validation_split(run.spec)
    if self.split == records.EVAL_PREFIX and run.chief:
      logging.warning(
          "%s has no valid split: early stopping and the exported (best) "
          "state are chosen on eval, so the eval figure trainer.evaluate "
          "reports was also used for model selection; preprocess with "
          "--valid_fraction=0.1 (or --valid_input) for a clean test figure.",
          run.data_dir)
    self.subset = validation_subset(run.data_dir, run.spec, self.split)
    self.base = ais_lib.base_rate_biases(run.frame_means, run.train_frames)
    self.config = config_lib.AISConfig(
        num_chains=_VALIDATION_CHAINS,
        num_betas=run.config.validation_ais_betas, seed=run.config.seed)

  def nll_per_frame(self, model) -> float | None:
    if self.subset is None:
      return None
    out = model.nll_ais(self.subset[0], self.subset[1], self.config, self.base)
    return out["nll_sum"] / out["num_frames"]


def _loop(run: _Run, state: _State, iterator, writer) -> dict:
  """Trains to run.total_steps, an epoch per call (validation between)."""
  config, trainer = run.config, state.trainer
  validator = _Validator(run)
  step = int(trainer.step.numpy())
  out = {}
  last_time, last_step = time.perf_counter(), step
  while step < run.total_steps:
    boundary = min(run.total_steps, (step // run.steps_per_epoch + 1) *
                   run.steps_per_epoch)
    out = trainer.train_loop(iterator, tf.constant(boundary - step))
    step = int(trainer.step.numpy())
    if not bool(out["finite"]):
      raise train_lib.NonFiniteError(
          f"step {step + 1}: the update went NaN/Inf (--learning_rate="
          f"{config.learning_rate}, --clip_norm={config.clip_norm}). It was "
          "not applied; the last good checkpoint "
          f"({tf.train.latest_checkpoint(run.dirs.checkpoint_dir)}) is kept. "
          "Lower --learning_rate, then rerun the same command to resume.")
    now = time.perf_counter()
    rate = (step - last_step) * config.batch_size / max(now - last_time, 1e-9)
    last_time, last_step = now, step
    epoch = step // run.steps_per_epoch
    scalars = {k: float(out[k]) for k in ("free_energy_gap",
                                          "reconstruction_error", "grad_norm")}
    scalars["sequences_per_sec"] = rate
    scalars["learning_rate"] = float(trainer.optimiser.learning_rate(step))
    last = step == run.total_steps
    if epoch % config.validate_every_epochs == 0 or last:
      nll = validator.nll_per_frame(state.model)
      if nll is not None:
        scalars["validation/nll_per_frame"] = nll
        if nll < float(state.best_nll.numpy()):
          state.best_nll.assign(nll)
          # Every worker saves (saving mirrored state runs collectives); the
          # non-chiefs into their scratch dir. Each computes the same nll.
          state.best.save(checkpoint_number=step)
    logging.info("step %d/%d epoch %d %s", step, run.total_steps, epoch,
                 " ".join(f"{k} {v:.4g}" for k, v in scalars.items()))
    if writer is not None:
      with writer.as_default(step=step):
        for name, value in scalars.items():
          tf.summary.scalar(name, value)
      writer.flush()
    if (step % config.steps_per_checkpoint < run.steps_per_epoch or last):
      state.manager.save(checkpoint_number=step)
  return {k: float(v) for k, v in out.items() if k not in ("finite", "steps")}


def _export(run: _Run, state: _State, metrics: dict) -> None:
  """The chief exports the best validated state (else the last)."""
  # Every worker reads the chief's best/ (the same state, the same metrics):
  # only after the chief's last save there, or a worker could read a
  # checkpoint the chief's manager is replacing (a crash, seen in CI).
  train_lib._barrier(run.strategy)  # pylint: disable=protected-access
  best = tf.train.latest_checkpoint(os.path.join(run.dirs.checkpoint_dir,
                                                 BEST_SUBDIR))
  if best:
    tf.train.Checkpoint(model=state.model).read(best).expect_partial()
    metrics["exported_step"] = int(best.rsplit("-", 1)[1])
    metrics["best_validation_nll_per_frame"] = float(state.best_nll.numpy())
  else:
    metrics["exported_step"] = metrics["step"]
  if run.chief:
    export.save_rnn_rbm(run.dirs.model_dir, state.model, run.spec,
                        dataclasses.asdict(run.config),
                        metrics["exported_step"], run.frame_means,
                        run.train_frames,
                        validation_split=metrics["validation_split"])
    logging.info("model written to %s: %s", run.dirs.model_dir, metrics)
  elif state.manager.directory != run.dirs.checkpoint_dir:
    tf.io.gfile.rmtree(state.manager.directory)


def train_and_evaluate(config: config_lib.TrainConfig, data_dir: str,
                       dirs: train_lib.RunDirs,
                       strategy: tf.distribute.Strategy | None = None) -> dict:
  """Trains an RNN-RBM on DATA_DIR's sequences; rerunning resumes.

  Whole pieces (num_timesteps=0) or fixed windows (sequences of T frames).
  Returns final metrics (step, exported_step, the last epoch's means).
  Raises as train_lib.train_and_evaluate.
  """
  run = _setup(config, data_dir, dirs, strategy)
  state = _restore(run)
  start_step = int(state.trainer.step.numpy())
  dataset = training_batches(data_dir, run.spec, config, start_step,
                             run.steps_per_epoch)
  iterator = iter(run.strategy.experimental_distribute_dataset(dataset))
  distribute.unpin_malloc_mmap_threshold()
  writer = (tf.summary.create_file_writer(dirs.tensorboard_dir)
            if run.chief else None)
  logging.info("RNN-RBM training steps %d -> %d (%d per epoch) on %d "
               "replica(s), global batch %d sequences of <= %s frames, %d "
               "visible x %d hidden, %d recurrent, CD-%d", start_step,
               run.total_steps, run.steps_per_epoch,
               run.strategy.num_replicas_in_sync, config.batch_size,
               config.sequence_length or "all", run.spec.n_columns,
               config.num_hidden, config.num_hidden_recurrent, config.cd_k)
  start = time.perf_counter()
  metrics = _loop(run, state, iterator, writer)
  step = int(state.trainer.step.numpy())
  metrics.update({"step": step, "train_seconds": time.perf_counter() - start,
                  # Which split chose the exported state: "eval" means the
                  # eval figure is not a clean test figure.
                  "validation_split": data.validation_split(run.spec)})
  _export(run, state, metrics)
  train_lib._barrier(run.strategy)  # pylint: disable=protected-access
  return metrics
