"""The training job: one loop for every model, under tf.distribute.

The loop owns what does not depend on the model: output folders (flags,
then Vertex AI's AIP_* variables), the strategy and the chief, the job lock,
the run config a resumed run is checked against, checkpoints and resume,
progress lines and TensorBoard scalars, validation with the best state kept,
and the export of the model/ folder. The model (trainer/models/<name>/) gives
its `Trainer`: the state, the update, and what it adds to monitoring.
It must not read flags (trainer/task.py does).
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
from common import preemption
from preprocess import records
from trainer import config as config_lib
from trainer import data
from trainer import models
from trainer.models import base
from trainer.training import distribute
from trainer.training import job_lock

# The errors of a run that cannot start or cannot go on (trainer/models/base.py).
SetupError = base.SetupError
NonFiniteError = base.NonFiniteError
RunDirs = base.RunDirs
# Next to the checkpoints it describes: a resumed run is checked against it.
RUN_CONFIG_FILE = "run_config.json"
# The finished run's figures, which a rerun of a finished job prints again.
METRICS_FILE = "metrics.json"
KEEP_CHECKPOINTS = 3
# The best validated state, under the checkpoint folder.
BEST_SUBDIR = "best"
# A call of several steps lasts about this long at most, so a stop signal is
# answered well within a preempted VM's ~30 s of grace.
_CALL_SECONDS = 5.0


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


# --- multi-worker: only the chief writes what users read ----------------------


def is_chief(strategy) -> bool:
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
  if is_chief(strategy):
    return checkpoint_dir
  resolver = strategy.cluster_resolver
  return os.path.join(tempfile.mkdtemp(),
                      f"worker_{resolver.task_type}_{resolver.task_id}")


def barrier(strategy) -> None:
  """Multi-worker: every worker waits here for the others (a no-op on one
  machine)."""
  if not isinstance(strategy, tf.distribute.MirroredStrategy):
    strategy.reduce(tf.distribute.ReduceOp.SUM,
                    strategy.run(lambda: tf.constant(1.0)), axis=None)


# --- start-up checks -----------------------------------------------------------


def check_run_config(checkpoint_dir: str, config: config_lib.TrainConfig,
                     spec: records.DatasetSpec, write: bool = True) -> None:
  """A resumed run must train the same model on data of the same layout.

  Compares the fields that fix the checkpoint's shapes (the model's
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
    # A field missing from an older run's file had its default there (e.g.
    # --recurrence, added with the gated cell: those runs were tanh).
    defaults = {f.name: f.default for f in dataclasses.fields(config)}
    pairs = [(f"--{k}", previous["config"].get(k, defaults.get(k)),
              current["config"][k]) for k in config.shape_fields()]
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


def load_spec(data_dir: str) -> records.DatasetSpec:
  """DATA_DIR/dataset.json; SetupError when invalid (FileNotFoundError when
  missing)."""
  try:
    return data.load_dataset_spec(data_dir)
  except ValueError as e:
    raise SetupError(str(e)) from None


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


# --- the job -----------------------------------------------------------------


class _Throughput:
  """Rows/s since the previous call (so the figure tracks the present)."""

  def __init__(self, step, batch_size):
    self.batch_size = batch_size
    self.step, self.time = step, time.perf_counter()

  def rate(self, step) -> float:
    now = time.perf_counter()
    value = (step - self.step) * self.batch_size / max(now - self.time, 1e-9)
    self.step, self.time = step, now
    return value


@dataclasses.dataclass
class _State:
  """The trainer and its checkpoints, as `_restore` left them."""
  trainer: base.Trainer
  checkpoint: tf.train.Checkpoint
  manager: tf.train.CheckpointManager
  best: tf.train.CheckpointManager | None
  best_nll: tf.Variable | None


def default_updates(model: str) -> tuple[int, int]:
  """The range a default run's updates are kept in (the model's
  DEFAULT_UPDATES, else at most config_lib.MAX_DEFAULT_UPDATES)."""
  return getattr(models.settings(model), "DEFAULT_UPDATES",
                 (0, config_lib.MAX_DEFAULT_UPDATES))


def _setup(config, data_dir, dirs, strategy,
           from_data: frozenset = frozenset()) -> base.TrainingRun:
  """Checks data, batch and strategy before anything is written.

  from_data: the defaults the corpus may change (the user gave no value):
  "batch_size": a corpus with fewer training rows than one batch trains on
  batches of all its rows (a multiple of the replicas) instead of failing;
  "epochs": the run's updates are kept within the model's range
  (`default_updates`): at most config_lib.MAX_DEFAULT_UPDATES by default, so
  the default run's time does not grow with the corpus; a model may also set
  a least number, so a small corpus still trains enough.
  """
  spec = load_spec(data_dir)
  models.get(config.model).check_data(spec, data_dir)
  n_train = data.num_windows(spec, "train")
  what = "pieces" if data.is_whole_pieces(spec) else "windows"
  if "batch_size" in from_data and n_train < config.batch_size:
    strategy = strategy or distribute.make_strategy()
    replicas = strategy.num_replicas_in_sync
    if n_train >= replicas:
      logging.warning(
          "%s has %d training %s, fewer than the default batch of %d: "
          "batches of %d (give --batch_size to choose)", data_dir, n_train,
          what, config.batch_size, n_train // replicas * replicas)
      config = dataclasses.replace(
          config, batch_size=n_train // replicas * replicas)
  steps_per_epoch = n_train // config.batch_size
  if steps_per_epoch == 0:
    raise SetupError(
        f"{data_dir} has {n_train} training {what}, fewer than one global "
        f"batch of --batch_size={config.batch_size}; use --batch_size <= "
        f"{n_train} (if > 0) or preprocess more data.")
  strategy = strategy or distribute.make_strategy()
  if config.batch_size % strategy.num_replicas_in_sync:
    raise SetupError(
        f"--batch_size={config.batch_size} does not split evenly over "
        f"{strategy.num_replicas_in_sync} replicas; use a multiple of "
        f"{strategy.num_replicas_in_sync}.")
  total_steps = config.max_steps or config.epochs * steps_per_epoch
  low, high = default_updates(config.model)
  if "epochs" in from_data and not low <= total_steps <= high:
    budget = min(max(total_steps, low), high)
    logging.info("%d updates a pass over %d training %s: %d updates (%.1f "
                 "epochs) instead of %d epochs (give --epochs or --max_steps "
                 "to choose)", steps_per_epoch, n_train, what, budget,
                 budget / steps_per_epoch, config.epochs)
    total_steps = budget
  return base.TrainingRun(config, data_dir, dirs, spec, strategy,
                          is_chief(strategy), steps_per_epoch, total_steps)


def _restore(run: base.TrainingRun, trainer: base.Trainer,
             validates: bool) -> _State:
  """Restores the latest readable checkpoint (every worker the chief's; each
  saves to its own write dir, the real one on the chief); a fresh run
  initialises the model instead."""
  objects = trainer.checkpoint_objects()
  best_nll = None
  if validates:
    with run.strategy.scope():
      best_nll = tf.Variable(np.inf, trainable=False, name="best_nll")
    objects["best_nll"] = best_nll
  checkpoint = tf.train.Checkpoint(**objects)
  write_dir = _checkpoint_write_dir(run.dirs.checkpoint_dir, run.strategy)
  manager = tf.train.CheckpointManager(checkpoint, write_dir,
                                       max_to_keep=KEEP_CHECKPOINTS)
  best = (tf.train.CheckpointManager(
      checkpoint, os.path.join(write_dir, BEST_SUBDIR), max_to_keep=1,
      checkpoint_name="best") if validates else None)
  latest = restore_newest_readable(checkpoint, run.dirs.checkpoint_dir)
  if latest:
    logging.info("resumed from %s at step %d", latest,
                 int(trainer.step.numpy()))
  else:
    trainer.initialise()
  return _State(trainer, checkpoint, manager, best, best_nll)


def _next_boundary(run: base.TrainingRun, step: int) -> int:
  """The next step where the loop must look: a log line, summaries, a
  checkpoint or an epoch's end (validation, schedules)."""
  config = run.config
  return min(run.total_steps, *(
      (step // every + 1) * every for every in (
          config.log_every_steps, config.summary_every_steps,
          config.steps_per_checkpoint, run.steps_per_epoch)))


class _CallLength:
  """Steps per call: up to the next boundary, and about _CALL_SECONDS at
  most (measured on the previous call). Results do not depend on it: every
  update's noise and batch are keyed by its step. Across machines every
  worker must make the same calls: they share one replica's timing."""

  def __init__(self):
    self.seconds_per_step = None

  def steps(self, wanted: int) -> int:
    if self.seconds_per_step is None:
      return 1  # the first call also traces: measure from the second on
    return max(1, min(wanted, int(_CALL_SECONDS / self.seconds_per_step)))


def _agree(run: base.TrainingRun, stop: preemption.StopSignals,
           seconds_per_step: float) -> tuple[bool, float]:
  """Whether any worker was asked to stop, and one replica's seconds per
  step: one tiny all-reduce per call across machines (none on one machine),
  so every worker stops at the same step and sizes its next call alike. The
  sum adds zeros to replica 0's figure: every worker gets its exact bytes."""
  flag = 1.0 if stop.requested is not None else 0.0
  if isinstance(run.strategy, tf.distribute.MirroredStrategy):
    return flag > 0, seconds_per_step

  def contribution():
    first = tf.equal(tf.distribute.get_replica_context()
                     .replica_id_in_sync_group, 0)
    return tf.constant([flag, seconds_per_step], tf.float64) * tf.stack(
        [tf.constant(1.0, tf.float64), tf.cast(first, tf.float64)])

  total = run.strategy.reduce(tf.distribute.ReduceOp.SUM,
                              run.strategy.run(contribution),
                              axis=None).numpy()
  return bool(total[0] > 0), float(total[1])


def _loop(run: base.TrainingRun, state: _State, iterator, writer,
          stop: preemption.StopSignals) -> dict:
  """Trains up to run.total_steps; returns the last call's scalars.

  Raises:
    NonFiniteError: an update went NaN/Inf (it was not applied), or the state
      diverged (it was not saved).
    preemption.Stopped: SIGTERM/SIGINT; the current step was saved first.
  """
  config, trainer = run.config, state.trainer
  step = int(trainer.step.numpy())
  throughput = _Throughput(step, config.batch_size)
  scalars, rate = {}, 0.0
  rate_name = f"{trainer.unit}_per_sec"
  length = _CallLength()
  while step < run.total_steps:
    started = time.perf_counter()
    out = trainer.train_steps(
        iterator, length.steps(_next_boundary(run, step) - step),
        step // run.steps_per_epoch)
    seconds_per_step = ((time.perf_counter() - started)
                        / max(1, int(trainer.step.numpy()) - step))
    step = int(trainer.step.numpy())
    if not bool(out["finite"]):
      raise trainer.non_finite_error(
          out, step, tf.train.latest_checkpoint(run.dirs.checkpoint_dir))
    scalars = trainer.scalars(out)
    last = step == run.total_steps
    log_now = step % config.log_every_steps == 0 or last
    summary_now = writer is not None and (
        step % config.summary_every_steps == 0 or last)
    extra = {}
    if step % run.steps_per_epoch == 0 or last:
      nll = trainer.validate(step // run.steps_per_epoch, last)
      if nll is not None:
        extra["validation/nll_per_frame"] = nll
        if nll < float(state.best_nll.numpy()):
          state.best_nll.assign(nll)
          # Every worker saves (saving mirrored state runs collectives); the
          # non-chiefs into their scratch dir. Each computes the same nll.
          state.best.save(checkpoint_number=step)
    if log_now or summary_now or extra:
      # A validation line between log steps reads a fresh rate too (it read
      # 0/s and an ETA of millions of hours before the first log step).
      rate = throughput.rate(step)
    if log_now or extra:
      eta = (run.total_steps - step) * config.batch_size / max(rate, 1e-9)
      logging.info("step %d/%d epoch %.2f %s %.0f %s/s ETA %s", step,
                   run.total_steps, step / run.steps_per_epoch,
                   " ".join(f"{k} {v:.4g}" for k, v in {**scalars,
                                                         **extra}.items()),
                   rate, trainer.unit, _duration(eta))
    if writer is not None and (summary_now or extra):
      with writer.as_default(step=step):
        for name, value in {**(scalars if summary_now else {}), **extra,
                            **({rate_name: rate} if summary_now else {})
                            }.items():
          tf.summary.scalar(name, value)
        if summary_now:
          trainer.summaries(step)
      writer.flush()
    stopping = False
    if not last:
      stopping, length.seconds_per_step = _agree(run, stop, seconds_per_step)
    if step % config.steps_per_checkpoint == 0 or last or stopping:
      trainer.check_before_save(
          step, tf.train.latest_checkpoint(run.dirs.checkpoint_dir))
      saved = state.manager.save(checkpoint_number=step)
    if stopping:
      raise preemption.Stopped(
          f"stopped by {stop.requested or 'another worker'} at step "
          f"{step}/{run.total_steps}: saved {saved}; rerun the same command "
          "to resume.")
  return scalars


def _export(run: base.TrainingRun, state: _State, metrics: dict) -> None:
  """The chief exports the best validated state (else the last); the others
  remove their scratch checkpoints."""
  if state.best is not None:
    # Every worker reads the chief's best/ (the same state, the same
    # metrics): only after the chief's last save there, or a worker could
    # read a checkpoint the chief's manager is replacing.
    barrier(run.strategy)
    best = tf.train.latest_checkpoint(os.path.join(run.dirs.checkpoint_dir,
                                                   BEST_SUBDIR))
    if best:
      state.checkpoint.read(best).expect_partial()
      metrics["exported_step"] = int(best.rsplit("-", 1)[1])
      metrics["best_validation_nll_per_frame"] = float(
          state.best_nll.numpy())
    else:
      metrics["exported_step"] = metrics["step"]
  if run.chief:
    state.trainer.export(run.dirs.model_dir,
                         metrics.get("exported_step", metrics["step"]),
                         metrics)
    logging.info("model written to %s: %s", run.dirs.model_dir, metrics)
  elif state.manager.directory != run.dirs.checkpoint_dir:
    tf.io.gfile.rmtree(state.manager.directory)  # the non-chief's scratch copy


def train_and_evaluate(config: config_lib.TrainConfig, data_dir: str,
                       job_dir: str | None = None, *,
                       model_dir: str | None = None,
                       checkpoint_dir: str | None = None,
                       tensorboard_dir: str | None = None,
                       strategy: tf.distribute.Strategy | None = None,
                       from_data: frozenset = frozenset()) -> dict:
  """Trains config.model on DATA_DIR; rerunning resumes.

  Args:
    config: the model, hyper-parameters and run control.
    data_dir: the output_dir of preprocess.main (local or gs://).
    job_dir: default parent of model/, checkpoints/ and tensorboard/.
    model_dir, checkpoint_dir, tensorboard_dir: override job_dir's folders;
      when None and job_dir too, Vertex AI's AIP_MODEL_DIR,
      AIP_CHECKPOINT_DIR, AIP_TENSORBOARD_LOG_DIR (see `resolve_dirs`).
    strategy: None: distribute.make_strategy() (all GPUs, or TF_CONFIG's
      machines, or the CPU).
    from_data: the names of config's defaults the corpus may change (see
      `_setup`; trainer.task passes "batch_size" and "epochs" when their
      flags are not given).

  Returns:
    Final metrics: step, train_seconds, the rows per second of this process,
    the last call's scalars (e.g. reconstruction_error), exported_step and
    best_validation_nll_per_frame for a validated model, and the model's
    own (chief only).

  Raises:
    FileNotFoundError: no dataset.json in data_dir.
    SetupError: unsuitable data (invalid, empty, fewer windows than a batch,
      not the model's kind), a batch that does not split over the replicas,
      a job dir of another model shape, or no output directory. Nothing is
      written.
    NonFiniteError: an update went NaN/Inf; it was not applied and the last
      good checkpoint is kept.
    job_lock.JobLocked: another run is training in the same checkpoint folder.
  """
  dirs = resolve_dirs(job_dir, model_dir, checkpoint_dir, tensorboard_dir)
  run = _setup(config, data_dir, dirs, strategy, from_data)
  config = run.config
  trainer = models.get(config.model).trainer(run)
  with contextlib.ExitStack() as held:
    if run.chief:  # the only writer of the job folder: lock it before writing
      held.callback(job_lock.acquire(dirs.checkpoint_dir, job_dir).release)
    check_run_config(dirs.checkpoint_dir, config, run.spec, write=run.chief)
    return _train(run, trainer)


def _train(run: base.TrainingRun, trainer: base.Trainer) -> dict:
  config = run.config
  validates = type(trainer).validate is not base.Trainer.validate
  state = _restore(run, trainer, validates)
  start_step = int(trainer.step.numpy())
  batches = trainer.batches(start_step)
  iterator = (None if batches is None else
              iter(run.strategy.experimental_distribute_dataset(batches)))
  # Building that iterator pins glibc's mmap threshold at 128 KiB: every
  # step's tensors would then be mmap'ed and unmapped (distribute.py).
  distribute.unpin_malloc_mmap_threshold()
  writer = (tf.summary.create_file_writer(run.dirs.tensorboard_dir)
            if run.chief else None)
  logging.info("training --model=%s steps %d -> %d (%d per epoch) on %d "
               "replica(s), global batch %d", config.model, start_step,
               run.total_steps, run.steps_per_epoch,
               run.strategy.num_replicas_in_sync, config.batch_size)
  metrics_path = os.path.join(run.dirs.checkpoint_dir, METRICS_FILE)
  if start_step >= run.total_steps and tf.io.gfile.exists(metrics_path):
    # A finished job: its figures again, not a run of no steps.
    with tf.io.gfile.GFile(metrics_path) as f:
      metrics = dict(json.loads(f.read()), already_done=True)
    logging.info("already trained to step %d of %d: nothing to do (raise "
                 "--epochs or --max_steps to train on)", start_step,
                 run.total_steps)
    _export(run, state, dict(metrics))
    barrier(run.strategy)
    return metrics
  start_time = time.perf_counter()
  with preemption.StopSignals() as stop:
    metrics = _loop(run, state, iterator, writer, stop)
  step = int(trainer.step.numpy())
  elapsed = time.perf_counter() - start_time
  metrics.update({
      "step": step, "train_seconds": elapsed,
      f"{trainer.unit}_per_sec": (step - start_step) * config.batch_size /
                                 max(elapsed, 1e-9)})
  if run.chief:
    metrics.update(trainer.final_metrics())
  _export(run, state, metrics)
  if run.chief:
    with tf.io.gfile.GFile(metrics_path, "w") as f:
      f.write(json.dumps(metrics, indent=1, sort_keys=True))
  # Workers leave together, after the chief's export, so no process outlives
  # its peers and waits on their heartbeats at exit.
  barrier(run.strategy)
  return metrics


def _duration(seconds: float) -> str:
  seconds = round(seconds)
  hours, rest = divmod(seconds, 3600)
  return (f"{hours}h{rest // 60:02d}m" if hours else
          f"{rest // 60}m{rest % 60:02d}s")
