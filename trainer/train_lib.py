"""Training: contrastive divergence under tf.distribute, with checkpoints,
TensorBoard and the export of the model/ folder.

The RBM maths is trainer/models/rbm.py; the strategy is built in
trainer/distribute.py; every random stream comes from trainer/random_streams.py.
This file owns the loop: the per-replica CD statistics, their all-reduce, the
momentum update, resuming, monitoring, export. It must not read flags
(trainer/task.py does).
"""

import contextlib
import dataclasses
import json
import os
import tempfile
import time

from absl import logging
import numpy as np
import tensorflow as tf

from common import cli
from preprocess import records
from trainer import config as config_lib
from trainer import data
from trainer import distribute
from trainer import export
from trainer import job_lock
from trainer import random_streams
from trainer.models import rbm as model_lib

# Next to the checkpoints it describes: a resumed run is checked against it.
RUN_CONFIG_FILE = "run_config.json"
# Monitoring subsets: enough windows for stable means, small enough for memory.
_MONITOR_WINDOWS = 2000
_SAMPLE_CHAINS = 4
# Piano-roll images are upscaled so a 15-step window is visible in TensorBoard.
_IMAGE_TIME_SCALE, _IMAGE_PITCH_SCALE = 8, 2
_WEIGHT_IMAGES = 16
_KEEP_CHECKPOINTS = 3


class SetupError(cli.UsageError):
  """The run cannot start: unsuitable data, flags or job dir. Nothing written."""


class NonFiniteError(cli.JobError):
  """An update produced NaN or Inf; the last good checkpoint is kept."""


@dataclasses.dataclass(frozen=True)
class RunDirs:
  model_dir: str
  checkpoint_dir: str
  tensorboard_dir: str


def resolve_dirs(job_dir=None, model_dir=None, checkpoint_dir=None,
                 tensorboard_dir=None, environ=None) -> RunDirs:
  """Flags first, then Vertex AI's AIP_* variables, then JOB_DIR/{model,...}.

  Raises:
    SetupError: a directory has no flag, no AIP_* variable and no job_dir.
  """
  environ = os.environ if environ is None else environ
  chosen = {}
  for name, flag, env, sub in (
      ("model_dir", model_dir, "AIP_MODEL_DIR", "model"),
      ("checkpoint_dir", checkpoint_dir, "AIP_CHECKPOINT_DIR", "checkpoints"),
      ("tensorboard_dir", tensorboard_dir, "AIP_TENSORBOARD_LOG_DIR",
       "tensorboard")):
    value = flag or environ.get(env) or (job_dir and os.path.join(job_dir, sub))
    if not value:
      raise SetupError(f"no {name}: pass --job_dir (or --{name}), or run on "
                       f"Vertex AI where {env} is set.")
    chosen[name] = value
  return RunDirs(**chosen)


class CDTrainer:
  """One CD/PCD update per call, on a batch distributed by `strategy`.

  State (all created under `strategy.scope()`, all checkpointed): the RBM's
  variables (created by the caller), one momentum velocity per RBM variable,
  `step`, the current `momentum`, and for PCD the persistent `chains`
  [global_batch, n_visible], whose row r belongs to global batch row r.
  """

  # What an update is checked for, in the order of `finite_each`.
  CHECKED = ("weights", "visible_bias", "hidden_bias", "reconstruction_error")

  def __init__(self, strategy: tf.distribute.Strategy, rbm: model_lib.RBM,
               config: config_lib.TrainConfig, global_batch_size: int,
               n_visible: int):
    """Creates the trainer's state.

    Args:
      strategy: the strategy `rbm` was created under.
      rbm: the model; updated in place.
      config: learning rate, momentum, weight decay, cd_k, persistent, seed.
      global_batch_size: rows of each batch before it is split over replicas.
      n_visible: visible units (the PCD chains' width).

    Raises:
      SetupError: the global batch does not split evenly over the replicas.
    """
    replicas = strategy.num_replicas_in_sync
    if global_batch_size % replicas:
      raise SetupError(
          f"--batch_size={global_batch_size} does not split evenly over "
          f"{replicas} replicas; use a multiple of {replicas}.")
    self.strategy = strategy
    self.rbm = rbm
    self.config = config
    self.global_batch_size = global_batch_size
    self.params = [rbm.weights, rbm.visible_bias, rbm.hidden_bias]
    # Weight decay on W only: biases are not pulled towards zero.
    self._decay = [config.weight_decay, 0.0, 0.0]
    with strategy.scope():
      self.velocities = [
          tf.Variable(tf.zeros_like(p), trainable=False, name=f"velocity_{i}")
          for i, p in enumerate(self.params)]
      self.step = tf.Variable(0, dtype=tf.int64, trainable=False, name="step")
      self.momentum = tf.Variable(config.momentum_at(0), trainable=False,
                                  name="momentum")
      self.chains = None
      if config.persistent:
        # PCD chains start as samples of the visible biases (the data's unit
        # means), not zeros, so they begin near the data's marginals.
        start = rbm.visible_bias_samples(
            config.seed, random_streams.CHAIN_INIT, 0, global_batch_size)
        self.chains = tf.Variable(start, trainable=False, name="pcd_chains")
    self.train_step = tf.function(self._train_step)
    self.train_loop = tf.function(self._train_loop)

  def _replica_statistics(self, batch):
    ctx = tf.distribute.get_replica_context()
    local = tf.shape(batch, out_type=tf.int64)[0]
    # Replica r holds rows [r * local, (r + 1) * local) of the global batch; its
    # noise is keyed by those global rows, so any replica count draws the same.
    row_start = tf.cast(ctx.replica_id_in_sync_group, tf.int64) * local
    chain = None
    if self.chains is not None:
      chain = tf.slice(self.chains, [row_start, 0], [local, -1])
    return self.rbm.cd_statistics(batch, self.config.cd_k, self.config.seed,
                                  self.step, row_start, chain)

  def _train_step(self, dist_batch):
    """One update. Returns reconstruction_error, finite, finite_each."""
    per_replica = self.strategy.run(self._replica_statistics, args=(dist_batch,))
    sums = {
        key: self.strategy.reduce(tf.distribute.ReduceOp.SUM, per_replica[key],
                                  axis=None)
        for key in ("w", "visible_bias", "hidden_bias", "squared_error")}
    # Replicas return sums; dividing once by the GLOBAL batch gives the mean
    # statistic over the global batch, so the learning rate means the same on
    # 1 or N replicas (and the update is the one 1 replica would compute).
    scale = 1.0 / self.global_batch_size
    grads = [sums["w"] * scale, sums["visible_bias"] * scale,
             sums["hidden_bias"] * scale]
    lr = self.config.learning_rate
    # Momentum SGD on the CD statistic (an ascent direction), with L2 decay on
    # W: velocity = m * velocity + lr * (stat - decay * W); W += velocity.
    new_velocities = [
        self.momentum * v + lr * (g - d * p)
        for v, g, d, p in zip(self.velocities, grads, self._decay, self.params)]
    new_params = [p + v for p, v in zip(self.params, new_velocities)]
    recon = sums["squared_error"] * scale
    finite_each = tf.stack([tf.reduce_all(tf.math.is_finite(t))
                            for t in new_params + [recon]])
    finite = tf.reduce_all(finite_each)
    new_chains = (self.strategy.gather(per_replica["chain"], axis=0)
                  if self.chains is not None else None)

    # A non-finite update is never applied: the state stays the last good one.
    # (A select, not tf.cond: assignments to mirrored variables inside a cond
    # branch cost ~2.5x the whole CD step here.) In cross-replica context, so
    # each mirrored variable gets the one value on every replica.
    for var, value in zip(self.params + self.velocities,
                          new_params + new_velocities):
      var.assign(tf.where(finite, value, var))
    if new_chains is not None:
      self.chains.assign(tf.where(finite, new_chains, self.chains))
    self.step.assign_add(tf.cast(finite, tf.int64))
    return {"reconstruction_error": recon, "finite": finite,
            "finite_each": finite_each}

  def _train_loop(self, iterator, num_steps):
    """Runs up to `num_steps` updates in one tf.function call (less Python
    overhead per step); stops at the first non-finite update.

    Returns:
      steps (applied), finite, finite_each (of the last update tried) and the
      mean reconstruction_error of the applied updates.
    """
    finite = tf.constant(True)
    finite_each = tf.ones([len(self.CHECKED)], tf.bool)
    total_error = tf.constant(0.0)
    done = tf.constant(0)
    for _ in tf.range(num_steps):
      out = self._train_step(next(iterator))
      finite, finite_each = out["finite"], out["finite_each"]
      if not finite:
        break
      total_error += out["reconstruction_error"]
      done += 1
    return {"finite": finite, "finite_each": finite_each, "steps": done,
            "reconstruction_error": total_error / tf.maximum(
                tf.cast(done, tf.float32), 1.0)}


# --- multi-worker: only the chief writes what users read ----------------------


def _is_chief(strategy) -> bool:
  resolver = getattr(strategy, "cluster_resolver", None)
  if resolver is None or not resolver.task_type:
    return True
  cluster = resolver.cluster_spec().as_dict()
  if "chief" in cluster:
    return resolver.task_type == "chief"
  return resolver.task_type == "worker" and resolver.task_id == 0


def _checkpoint_write_dir(checkpoint_dir: str, strategy) -> str:
  """Every worker must save (saving mirrored state runs collectives), but only
  the chief into the real dir; the others into scratch, as the TF docs do."""
  if _is_chief(strategy):
    return checkpoint_dir
  resolver = strategy.cluster_resolver
  return os.path.join(tempfile.mkdtemp(),
                      f"worker_{resolver.task_type}_{resolver.task_id}")


# --- start-up checks -----------------------------------------------------------


def check_run_config(checkpoint_dir: str, config: config_lib.TrainConfig,
                     spec: records.DatasetSpec, write: bool = True) -> None:
  """A resumed run must train the same model on data of the same layout.

  Compares the fields that fix the checkpoint's shapes (config_lib's
  shape_fields) and the dataset layout with CHECKPOINT_DIR/run_config.json,
  then (if `write`) records this run's there. Other flags (learning rate,
  epochs, ...) may change between runs.

  Raises:
    SetupError: naming the field, the stored and the new value.
  """
  path = os.path.join(checkpoint_dir, RUN_CONFIG_FILE)
  current = {"config": dataclasses.asdict(config),
             "dataset": spec.layout()}
  if tf.io.gfile.exists(path):
    with tf.io.gfile.GFile(path) as f:
      previous = json.loads(f.read())
    pairs = [(f"--{k}", previous["config"].get(k), current["config"][k])
             for k in config.shape_fields()]
    pairs += [(f"dataset {k}", previous["dataset"].get(k), v)
              for k, v in current["dataset"].items()]
    for name, old, new in pairs:
      if old != new:
        raise SetupError(
            f"{checkpoint_dir} holds a run with {name}={old}, this run has "
            f"{name}={new}: resume with the same value, or use a new --job_dir "
            "(or --checkpoint_dir).")
  if write:
    tf.io.gfile.makedirs(checkpoint_dir)
    with tf.io.gfile.GFile(path, "w") as f:
      f.write(json.dumps(current, indent=1, sort_keys=True))


def _load_spec(data_dir: str) -> records.DatasetSpec:
  try:
    return data.load_dataset_spec(data_dir)
  except ValueError as e:  # invalid dataset.json; missing: FileNotFoundError
    raise SetupError(str(e)) from None


# --- input ---------------------------------------------------------------------


def training_batches(data_dir: str, spec: records.DatasetSpec,
                     config: config_lib.TrainConfig, start_step: int,
                     steps_per_epoch: int) -> tf.data.Dataset:
  """Global batches from `start_step` on, in an order keyed by (seed, epoch).

  Epoch e is shuffled with its own seed and drops its own remainder, so step s
  always sees the same batch: a run resumed at step N continues exactly as an
  uninterrupted run would. Resuming mid-epoch skips (reads) at most one epoch.
  """
  return data.resumable_epochs(
      lambda shuffle_seed: data.make_dataset(
          data_dir, "train", config.batch_size, spec, shuffle=True,
          seed=shuffle_seed, drop_remainder=True),
      config.seed, start_step, steps_per_epoch)


# --- monitoring ----------------------------------------------------------------


def _first_windows(data_dir, split, spec, limit):
  """The first `limit` windows of `split` (file order: a fixed subset)."""
  if data.num_windows(spec, split) == 0:
    return None
  return next(iter(data.make_dataset(data_dir, split, limit, spec)))


def roll_images(windows, spec: records.DatasetSpec):
  """[k, V] -> [k, pitch columns, time, 1] images: time left to right, the
  highest column at the top, upscaled so a short window is readable."""
  rolls = tf.reshape(windows, [-1, spec.num_timesteps, spec.n_columns])
  rolls = tf.reverse(tf.transpose(rolls, [0, 2, 1]), axis=[1])[..., None]
  return tf.image.resize(
      rolls, [spec.n_columns * _IMAGE_PITCH_SCALE,
              spec.num_timesteps * _IMAGE_TIME_SCALE], method="nearest")


class _Monitor:
  """TensorBoard scalars and images, on the chief only."""

  def __init__(self, rbm, spec, data_dir, tensorboard_dir, seed):
    self.rbm, self.spec, self.seed = rbm, spec, seed
    self.writer = tf.summary.create_file_writer(tensorboard_dir)
    self.subsets = {"train": _first_windows(data_dir, "train", spec,
                                            _MONITOR_WINDOWS)}
    # Held-out windows to watch for overfitting: valid when the dataset has
    # it, so that the eval split stays unseen until trainer.evaluate.
    self.heldout = data.validation_split(spec)
    if self.heldout is None:
      logging.info("no valid or eval windows (preprocessed with "
                   "--eval_fraction=0?): free_energy/valid|eval, its gap and "
                   "pseudo_log_likelihood/valid|eval are not written.")
    else:
      self.subsets[self.heldout] = _first_windows(data_dir, self.heldout,
                                                  spec, _MONITOR_WINDOWS)
    # Fixed, seeded flip indices: the stochastic PLL is comparable over steps.
    rng = np.random.default_rng(seed)
    self.flips = {name: tf.constant(rng.integers(spec.n_visible, size=len(v)))
                  for name, v in self.subsets.items()}

  @tf.function
  def _free_energy(self, v):
    return tf.reduce_mean(self.rbm.free_energy(v))

  @tf.function
  def _pll(self, v, flips):
    return tf.reduce_mean(self.rbm.pseudo_log_likelihood(v, flips))

  @tf.function
  def _samples(self, step):
    # Fresh chains from silence; keyed by the step so each image is new.
    v = tf.zeros([_SAMPLE_CHAINS, self.rbm.n_visible])
    return self.rbm.gibbs_chain(v, random_streams.MONITOR_GIBBS_STEPS,
                                self.seed + 1,
                                random_streams.monitor_base(step))

  def free_energies(self) -> dict:
    """Mean free energy of the fixed train subset and the held-out (valid,
    else eval) subset, and the gap (held-out - train): rising means the model
    prefers its training windows, i.e. overfits (Hinton's practical guide,
    section 6)."""
    out = {"train_subset": float(self._free_energy(self.subsets["train"]))}
    if self.heldout:
      out[self.heldout] = float(self._free_energy(self.subsets[self.heldout]))
      out["gap"] = out[self.heldout] - out["train_subset"]
    return out

  def write(self, step, scalars: dict):
    with self.writer.as_default(step=step):
      for name, value in scalars.items():
        tf.summary.scalar(name, value)
      for name, value in self.free_energies().items():
        tf.summary.scalar(f"free_energy/{name}", value)
      for split, v in self.subsets.items():
        tf.summary.scalar(f"pseudo_log_likelihood/{split}",
                          self._pll(v, self.flips[split]))
      tf.summary.scalar("weight_norm", tf.norm(self.rbm.weights))
      tf.summary.image("samples", roll_images(self._samples(step), self.spec),
                       max_outputs=_SAMPLE_CHAINS)
      # Each hidden unit's weights as a piano roll, scaled to [0, 1] jointly
      # so units can be compared.
      w = tf.transpose(self.rbm.weights[:, :_WEIGHT_IMAGES])
      w = (w - tf.reduce_min(w)) / (tf.reduce_max(w) - tf.reduce_min(w) + 1e-9)
      tf.summary.image("hidden_unit_weights", roll_images(w, self.spec),
                       max_outputs=_WEIGHT_IMAGES)
    self.writer.flush()


class _Throughput:
  """examples/s since the previous call (so the figure tracks the present)."""

  def __init__(self, step, batch_size):
    self.batch_size = batch_size
    self.step, self.time = step, time.perf_counter()

  def rate(self, step) -> float:
    now = time.perf_counter()
    value = (step - self.step) * self.batch_size / max(now - self.time, 1e-9)
    self.step, self.time = step, now
    return value


# --- the job: setup, restore, loop, export -----------------------------------


@dataclasses.dataclass(frozen=True)
class _Run:
  """What the steps of one job share, fixed by `_setup`."""
  config: config_lib.TrainConfig
  data_dir: str
  dirs: RunDirs
  spec: records.DatasetSpec
  strategy: tf.distribute.Strategy
  chief: bool
  steps_per_epoch: int
  total_steps: int


@dataclasses.dataclass
class _State:
  """The model, its trainer and their checkpoint, as `_restore` left them."""
  rbm: model_lib.RBM
  trainer: CDTrainer
  checkpoint: tf.train.Checkpoint
  manager: tf.train.CheckpointManager


def _setup(config, data_dir, dirs, strategy, lock_job_dir=lambda: None) -> _Run:
  """Checks data, batch and job dir before anything is written (but the run
  config, on the chief, once all checks passed)."""
  spec = _load_spec(data_dir)
  n_train = data.num_windows(spec, "train")
  steps_per_epoch = n_train // config.batch_size
  if steps_per_epoch == 0:
    raise SetupError(
        f"{data_dir} has {n_train} training windows, fewer than one global "
        f"batch of --batch_size={config.batch_size}; use --batch_size <= "
        f"{n_train} (if > 0) or preprocess more data.")
  strategy = strategy or distribute.make_strategy()
  if config.batch_size % strategy.num_replicas_in_sync:
    raise SetupError(
        f"--batch_size={config.batch_size} does not split evenly over "
        f"{strategy.num_replicas_in_sync} replicas; use a multiple of "
        f"{strategy.num_replicas_in_sync}.")
  chief = _is_chief(strategy)
  if chief:  # the only writer of the job folder: lock it before writing
    lock_job_dir()
  check_run_config(dirs.checkpoint_dir, config, spec, write=chief)
  return _Run(config, data_dir, dirs, spec, strategy, chief, steps_per_epoch,
              config.max_steps or config.epochs * steps_per_epoch)


def _restore(run: _Run) -> _State:
  """Builds the model and trainer, then restores the latest checkpoint.

  Every worker restores the chief's latest checkpoint; each saves to its own
  write dir (the real one on the chief).
  """
  config, spec = run.config, run.spec
  with run.strategy.scope():
    rbm = model_lib.RBM(spec.n_visible, config.num_hidden, spec.unit_means,
                        seed=config.seed)
  trainer = CDTrainer(run.strategy, rbm, config, config.batch_size,
                      spec.n_visible)
  checkpoint = tf.train.Checkpoint(rbm=rbm, velocities=trainer.velocities,
                                   step=trainer.step, momentum=trainer.momentum,
                                   **({"chains": trainer.chains}
                                      if trainer.chains is not None else {}))
  manager = tf.train.CheckpointManager(
      checkpoint, _checkpoint_write_dir(run.dirs.checkpoint_dir, run.strategy),
      max_to_keep=_KEEP_CHECKPOINTS)
  latest = restore_newest_readable(checkpoint, run.dirs.checkpoint_dir)
  if latest:
    logging.info("resumed from %s at step %d", latest,
                 int(trainer.step.numpy()))
  return _State(rbm, trainer, checkpoint, manager)


def restore_newest_readable(checkpoint: tf.train.Checkpoint,
                            checkpoint_dir: str) -> str | None:
  """Restores the newest checkpoint that reads whole; returns its path.

  A machine that dies while saving (power cut, full disk) can leave the newest
  checkpoint truncated; the older ones CheckpointManager keeps are then the
  way back, so each unreadable one is logged (with why) and the next tried.
  Its step is lower, so the run recomputes those steps and overwrites it.

  Raises:
    cli.JobError: there are checkpoints but none of them is readable.
  """
  state = tf.train.get_checkpoint_state(checkpoint_dir)
  paths = list(reversed(state.all_model_checkpoint_paths)) if state else []
  skipped = []
  for path in paths:
    try:
      checkpoint.restore(path).assert_existing_objects_matched()
      return path
    except (IndexError, ValueError, AssertionError, tf.errors.OpError) as e:
      reason = f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}"
      skipped.append(path)
      logging.warning("checkpoint %s is unreadable (%s); trying the previous "
                      "one: %s", path, reason,
                      paths[len(skipped)] if len(skipped) < len(paths)
                      else "none left")
  if skipped:
    raise cli.JobError(
        f"no checkpoint in {checkpoint_dir} is readable ({', '.join(skipped)}"
        f"; the last: {reason}): move that folder away to start again.")
  return None


def _non_finite_error(run: _Run, trainer: CDTrainer, out, step):
  bad = [name for name, ok in zip(CDTrainer.CHECKED,
                                  out["finite_each"].numpy()) if not ok]
  config = run.config
  return NonFiniteError(
      f"step {step + 1}: the update made {', '.join(bad)} NaN/Inf "
      f"(--learning_rate={config.learning_rate}, --weight_decay="
      f"{config.weight_decay}, momentum {float(trainer.momentum.numpy())})."
      f" It was not applied; the last good checkpoint "
      f"({tf.train.latest_checkpoint(run.dirs.checkpoint_dir)}) is kept. Lower "
      "--learning_rate, then rerun the same command to resume from it.")


def _check_monitored(run: _Run, trainer: CDTrainer, monitor, step) -> None:
  """Before a checkpoint: the monitored quantities must be finite too.

  An update can stay finite while the model has diverged (at
  --learning_rate=1e37 the weights are finite and every free energy is inf);
  such a state is neither saved nor exported. Only the chief monitors.

  Raises:
    NonFiniteError: naming each non-finite quantity and the kept checkpoint.
  """
  if monitor is None:
    return
  values = {f"free energy ({k})": v
            for k, v in monitor.free_energies().items()}
  for split, windows in monitor.subsets.items():
    values[f"pseudo-log-likelihood ({split})"] = float(
        monitor._pll(windows, monitor.flips[split]))  # pylint: disable=protected-access
  bad = [f"{k} = {v}" for k, v in values.items() if not np.isfinite(v)]
  if bad:
    config = run.config
    raise NonFiniteError(
        f"step {step}: training diverged: {', '.join(bad)} (--learning_rate="
        f"{config.learning_rate}, --weight_decay={config.weight_decay}). This "
        f"state was not saved; the last good checkpoint ("
        f"{tf.train.latest_checkpoint(run.dirs.checkpoint_dir)}) is kept. "
        "Lower --learning_rate, then rerun the same command to resume from it.")


def _loop(run: _Run, state: _State, iterator, monitor) -> float:
  """Trains up to run.total_steps, logging, summarising and checkpointing on
  the way. Returns the last reconstruction error (NaN if no step ran).

  Raises:
    NonFiniteError: an update went NaN/Inf (it was not applied).
  """
  config, trainer = run.config, state.trainer
  step = int(trainer.step.numpy())
  throughput = _Throughput(step, config.batch_size)
  recon, examples_per_sec = float("nan"), 0.0
  while step < run.total_steps:
    trainer.momentum.assign(config.momentum_at(step // run.steps_per_epoch))
    # Run up to the next log/summary/checkpoint/epoch boundary in one call
    # (epochs: the momentum schedule switches there).
    boundary = min(run.total_steps, *(
        (step // every + 1) * every for every in (
            config.log_every_steps, config.summary_every_steps,
            config.steps_per_checkpoint, run.steps_per_epoch)))
    out = trainer.train_loop(iterator, tf.constant(boundary - step))
    step = int(trainer.step.numpy())
    if not bool(out["finite"]):
      raise _non_finite_error(run, trainer, out, step)
    recon = float(out["reconstruction_error"])
    last = step == run.total_steps
    log_now = step % config.log_every_steps == 0 or last
    summary_now = monitor is not None and (
        step % config.summary_every_steps == 0 or last)
    if log_now or summary_now:
      examples_per_sec = throughput.rate(step)
    if log_now:
      eta = (run.total_steps - step) * config.batch_size / max(
          examples_per_sec, 1e-9)
      logging.info("step %d/%d epoch %.2f recon_error %.4f %.0f examples/s "
                   "ETA %s", step, run.total_steps, step / run.steps_per_epoch,
                   recon, examples_per_sec, _duration(eta))
    if summary_now:
      monitor.write(step, {"reconstruction_error": recon,
                           "examples_per_sec": examples_per_sec,
                           "momentum": float(trainer.momentum.numpy()),
                           "learning_rate": config.learning_rate})
    if step % config.steps_per_checkpoint == 0 or last:
      _check_monitored(run, trainer, monitor, step)
      state.manager.save(checkpoint_number=step)
  return recon


def _export(run: _Run, state: _State, metrics: dict) -> None:
  """The chief writes model/; the others remove their scratch checkpoints."""
  if run.chief:
    export.save_model(run.dirs.model_dir, state.rbm, run.spec,
                      dataclasses.asdict(run.config), metrics["step"])
    logging.info("model written to %s: %s", run.dirs.model_dir, metrics)
  elif state.manager.directory != run.dirs.checkpoint_dir:
    tf.io.gfile.rmtree(state.manager.directory)  # the non-chief's scratch copy


def _barrier(strategy) -> None:
  """Multi-worker: workers leave together, after the chief's export, so no
  process outlives its peers and waits on their heartbeats at exit."""
  if not isinstance(strategy, tf.distribute.MirroredStrategy):
    strategy.reduce(tf.distribute.ReduceOp.SUM,
                    strategy.run(lambda: tf.constant(1.0)), axis=None)


def train_and_evaluate(config: config_lib.TrainConfig, data_dir: str,
                       job_dir: str | None = None, *,
                       model_dir: str | None = None,
                       checkpoint_dir: str | None = None,
                       tensorboard_dir: str | None = None,
                       strategy: tf.distribute.Strategy | None = None) -> dict:
  """Trains an RBM on DATA_DIR's windows; rerunning resumes.

  Args:
    config: hyper-parameters and run control.
    data_dir: the output_dir of preprocess.main (local or gs://).
    job_dir: default parent of model/, checkpoints/ and tensorboard/.
    model_dir, checkpoint_dir, tensorboard_dir: override job_dir's folders;
      when None and job_dir too, Vertex AI's AIP_MODEL_DIR,
      AIP_CHECKPOINT_DIR, AIP_TENSORBOARD_LOG_DIR (see `resolve_dirs`).
    strategy: None: distribute.make_strategy() (all GPUs, or TF_CONFIG's
      machines, or the CPU).

  Returns:
    Final metrics: step, reconstruction_error, examples_per_sec (this
    process's average), free_energy_train_subset/_valid (or _eval when the
    dataset has no valid split)/_gap (chief only).

  Raises:
    FileNotFoundError: no dataset.json in data_dir.
    SetupError: unsuitable data (invalid, empty, fewer windows than a batch),
      a batch that does not split over the replicas, a job dir of another
      model shape, or no output directory. Nothing is written.
    NonFiniteError: an update went NaN/Inf; it was not applied and the last
      good checkpoint is kept.
    job_lock.JobLocked: another run is training in the same checkpoint folder.
  """
  dirs = resolve_dirs(job_dir, model_dir, checkpoint_dir, tensorboard_dir)
  from trainer import sequence_train_lib  # pylint: disable=g-import-not-at-top
  sequence_train_lib.check_data_for_model(config, data_dir)
  with contextlib.ExitStack() as held:
    def lock_job_dir():  # one writer per job folder (job_lock.py)
      held.callback(job_lock.acquire(dirs.checkpoint_dir, job_dir).release)
    if config.model == "rnn_rbm":
      strategy = strategy or distribute.make_strategy()
      if _is_chief(strategy):  # the only writer of the job folder
        lock_job_dir()
      return sequence_train_lib.train_and_evaluate(config, data_dir, dirs,
                                                   strategy)
    return _train(config, data_dir, dirs, strategy, lock_job_dir)


def _train(config, data_dir, dirs, strategy, lock_job_dir) -> dict:
  """train_and_evaluate; `_setup` locks the job folder once checks pass."""
  run = _setup(config, data_dir, dirs, strategy, lock_job_dir)
  state = _restore(run)
  start_step = int(state.trainer.step.numpy())
  dataset = training_batches(data_dir, run.spec, config, start_step,
                             run.steps_per_epoch)
  iterator = iter(run.strategy.experimental_distribute_dataset(dataset))
  # Building that iterator pins glibc's mmap threshold at 128 KiB: every
  # step's tensors would then be mmap'ed and unmapped (distribute.py).
  distribute.unpin_malloc_mmap_threshold()
  monitor = _Monitor(state.rbm, run.spec, data_dir, dirs.tensorboard_dir,
                     config.seed) if run.chief else None
  logging.info("training steps %d -> %d (%d per epoch) on %d replica(s), "
               "global batch %d, %d visible x %d hidden, %s-%d", start_step,
               run.total_steps, run.steps_per_epoch,
               run.strategy.num_replicas_in_sync, config.batch_size,
               run.spec.n_visible, config.num_hidden,
               "PCD" if config.persistent else "CD", config.cd_k)

  start_time = time.perf_counter()
  recon = _loop(run, state, iterator, monitor)
  step = int(state.trainer.step.numpy())
  elapsed = time.perf_counter() - start_time
  metrics = {"step": step, "reconstruction_error": recon,
             "examples_per_sec": (step - start_step) * config.batch_size /
                                 max(elapsed, 1e-9)}
  if monitor:
    metrics.update({f"free_energy_{k}": v
                    for k, v in monitor.free_energies().items()})
  _export(run, state, metrics)
  _barrier(run.strategy)
  return metrics


def _duration(seconds: float) -> str:
  seconds = round(seconds)
  hours, rest = divmod(seconds, 3600)
  return (f"{hours}h{rest // 60:02d}m" if hours else
          f"{rest // 60}m{rest % 60:02d}s")
