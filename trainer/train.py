"""Training: contrastive divergence under tf.distribute, with checkpoints,
TensorBoard and the export of the model/ folder.

The RBM maths is trainer/model.py; the strategy is built in
trainer/distribute.py. This file owns the loop: the per-replica CD statistics,
their all-reduce, the momentum update, resuming, monitoring, export.
"""

import dataclasses
import json
import os
import tempfile
import time

from absl import logging
import numpy as np
import tensorflow as tf

from preprocess import records
from trainer import config as config_lib
from trainer import data
from trainer import distribute
from trainer import export
from trainer import model as model_lib

RUN_CONFIG_FILE = "run_config.json"
# Monitoring subsets: enough windows for stable means, small enough for memory.
_MONITOR_WINDOWS = 2000
_SAMPLE_CHAINS, _SAMPLE_GIBBS_STEPS = 4, 200


class NonFiniteError(RuntimeError):
  """An update produced NaN or Inf; the last good checkpoint is kept."""


@dataclasses.dataclass(frozen=True)
class RunDirs:
  model_dir: str
  checkpoint_dir: str
  tensorboard_dir: str


def resolve_dirs(job_dir=None, model_dir=None, checkpoint_dir=None,
                 tensorboard_dir=None, environ=None) -> RunDirs:
  """Flags first, then Vertex AI's AIP_* variables, then JOB_DIR/{model,...}."""
  environ = os.environ if environ is None else environ
  chosen = {}
  for name, flag, env, sub in (
      ("model_dir", model_dir, "AIP_MODEL_DIR", "model"),
      ("checkpoint_dir", checkpoint_dir, "AIP_CHECKPOINT_DIR", "checkpoints"),
      ("tensorboard_dir", tensorboard_dir, "AIP_TENSORBOARD_LOG_DIR",
       "tensorboard")):
    value = flag or environ.get(env) or (job_dir and os.path.join(job_dir, sub))
    if not value:
      raise ValueError(f"no {name}: pass --job_dir (or --{name}), or run on "
                       f"Vertex AI where {env} is set.")
    chosen[name] = value
  return RunDirs(**chosen)


class CDTrainer:
  """One CD/PCD update per call, on a batch distributed by `strategy`."""

  def __init__(self, strategy: tf.distribute.Strategy, rbm: model_lib.RBM,
               config: config_lib.TrainConfig, global_batch_size: int,
               n_visible: int):
    replicas = strategy.num_replicas_in_sync
    if global_batch_size % replicas:
      raise ValueError(
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
        # means), not zeros, so they begin near the data's marginals. Rows
        # belong to replicas like the rows of a global batch.
        start = tf.cast(
            model_lib.keyed_uniform(config.seed, 2**62, 0, global_batch_size,
                                    n_visible) <
            tf.sigmoid(rbm.visible_bias)[None, :], tf.float32)
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
    per_replica = self.strategy.run(self._replica_statistics, args=(dist_batch,))
    sums = {
        key: self.strategy.reduce(tf.distribute.ReduceOp.SUM, per_replica[key],
                                  axis=None)
        for key in ("w", "visible_bias", "hidden_bias", "squared_error")}
    # Replicas return sums; dividing once by the GLOBAL batch gives the mean
    # statistic, so the learning rate means the same on 1 or N replicas.
    scale = 1.0 / self.global_batch_size
    grads = [sums["w"] * scale, sums["visible_bias"] * scale,
             sums["hidden_bias"] * scale]
    lr = self.config.learning_rate
    new_velocities = [
        self.momentum * v + lr * (g - d * p)
        for v, g, d, p in zip(self.velocities, grads, self._decay, self.params)]
    new_params = [p + v for p, v in zip(self.params, new_velocities)]
    recon = sums["squared_error"] * scale
    finite = tf.reduce_all(
        [tf.reduce_all(tf.math.is_finite(t)) for t in new_params] +
        [tf.math.is_finite(recon)])
    new_chains = (self.strategy.gather(per_replica["chain"], axis=0)
                  if self.chains is not None else None)

    # A non-finite update is never applied: the state stays the last good one.
    # (A select, not tf.cond: assignments to mirrored variables inside a cond
    # branch cost ~2.5x the whole CD step here.)
    for var, value in zip(self.params + self.velocities,
                          new_params + new_velocities):
      var.assign(tf.where(finite, value, var))
    if new_chains is not None:
      self.chains.assign(tf.where(finite, new_chains, self.chains))
    self.step.assign_add(tf.cast(finite, tf.int64))
    applied = finite
    return {"reconstruction_error": recon, "finite": applied}

  def _train_loop(self, iterator, num_steps):
    """Runs up to `num_steps` updates in one tf.function call (less Python
    overhead per step); stops at the first non-finite update."""
    finite = tf.constant(True)
    total_error = tf.constant(0.0)
    done = tf.constant(0)
    for _ in tf.range(num_steps):
      out = self._train_step(next(iterator))
      finite = out["finite"]
      if not finite:
        break
      total_error += out["reconstruction_error"]
      done += 1
    return {"finite": finite, "steps": done,
            "reconstruction_error": total_error / tf.maximum(
                tf.cast(done, tf.float32), 1.0)}


def _is_chief(strategy) -> bool:
  resolver = getattr(strategy, "cluster_resolver", None)
  if resolver is None or not resolver.task_type:
    return True
  cluster = resolver.cluster_spec().as_dict()
  if "chief" in cluster:
    return resolver.task_type == "chief"
  return resolver.task_type == "worker" and resolver.task_id == 0


def _worker_dir(path: str, strategy) -> str:
  """Non-chief workers must also save (collectives) but into a scratch dir."""
  if _is_chief(strategy):
    return path
  resolver = strategy.cluster_resolver
  return os.path.join(tempfile.mkdtemp(),
                      f"worker_{resolver.task_type}_{resolver.task_id}")


def check_run_config(checkpoint_dir: str, config: config_lib.TrainConfig,
                     spec: records.DatasetSpec) -> None:
  """A resumed run must train the same model on data of the same layout."""
  path = os.path.join(checkpoint_dir, RUN_CONFIG_FILE)
  current = {"config": dataclasses.asdict(config),
             "dataset": {k: getattr(spec, k) for k in (
                 "encoding", "low_note", "high_note", "steps_per_quarter",
                 "num_timesteps", "n_visible")}}
  if tf.io.gfile.exists(path):
    with tf.io.gfile.GFile(path) as f:
      previous = json.loads(f.read())
    pairs = [(f"--{k}", previous["config"].get(k), current["config"][k])
             for k in config_lib.TrainConfig.SHAPE_FIELDS]
    pairs += [(f"dataset {k}", previous["dataset"].get(k), v)
              for k, v in current["dataset"].items()]
    for name, old, new in pairs:
      if old != new:
        raise ValueError(
            f"{checkpoint_dir} holds a run with {name}={old}, this run has "
            f"{name}={new}: resume with the same value, or use a new --job_dir.")
  tf.io.gfile.makedirs(checkpoint_dir)
  with tf.io.gfile.GFile(path, "w") as f:
    f.write(json.dumps(current, indent=1, sort_keys=True))


def _first_windows(data_dir, split, spec, limit):
  if data.num_windows(spec, split) == 0:
    return None
  ds = data.make_dataset(data_dir, split, 500, spec).unbatch().take(limit)
  return tf.stack(list(ds)) if limit else None


def _roll_images(windows, spec: records.DatasetSpec):
  """[k, V] -> [k, pitch columns, time, 1] images, time left to right, 4x."""
  rolls = tf.reshape(windows, [-1, spec.num_timesteps, spec.n_columns])
  rolls = tf.reverse(tf.transpose(rolls, [0, 2, 1]), axis=[1])[..., None]
  return tf.image.resize(rolls, [spec.n_columns * 2, spec.num_timesteps * 8],
                         method="nearest")


class _Monitor:
  """TensorBoard scalars and images, on the chief only."""

  def __init__(self, rbm, spec, data_dir, tensorboard_dir, seed):
    self.rbm, self.spec, self.seed = rbm, spec, seed
    self.writer = tf.summary.create_file_writer(tensorboard_dir)
    self.train_subset = _first_windows(data_dir, "train", spec, _MONITOR_WINDOWS)
    self.eval_subset = _first_windows(data_dir, "eval", spec, _MONITOR_WINDOWS)
    if self.eval_subset is None:
      logging.info("no eval windows (--eval_fraction=0?): eval summaries off.")
    rng = np.random.default_rng(seed)
    self.flips = {name: tf.constant(rng.integers(spec.n_visible, size=len(s)))
                  for name, s in (("train", self.train_subset),
                                  ("eval", self.eval_subset)) if s is not None}

  @tf.function
  def _free_energy(self, v):
    return tf.reduce_mean(self.rbm.free_energy(v))

  @tf.function
  def _pll(self, v, flips):
    return tf.reduce_mean(self.rbm.pseudo_log_likelihood(v, flips))

  @tf.function
  def _samples(self, step):
    v = tf.zeros([_SAMPLE_CHAINS, self.rbm.n_visible])
    for i in tf.range(_SAMPLE_GIBBS_STEPS):
      _, v, _ = self.rbm.gibbs_step(v, self.seed + 1, tf.cast(i, tf.int64) +
                                    tf.cast(step, tf.int64) * 1000)
    return v

  def free_energies(self) -> dict:
    out = {"train_subset": float(self._free_energy(self.train_subset))}
    if self.eval_subset is not None:
      out["eval"] = float(self._free_energy(self.eval_subset))
      out["gap"] = out["eval"] - out["train_subset"]
    return out

  def write(self, step, scalars: dict, images: bool):
    with self.writer.as_default(step=step):
      for name, value in scalars.items():
        tf.summary.scalar(name, value)
      for name, value in self.free_energies().items():
        tf.summary.scalar(f"free_energy/{name}", value)
      for split, v in (("train", self.train_subset), ("eval", self.eval_subset)):
        if v is not None:
          tf.summary.scalar(f"pseudo_log_likelihood/{split}",
                            self._pll(v, self.flips[split]))
      tf.summary.scalar("weight_norm", tf.norm(self.rbm.weights))
      if images:
        tf.summary.image("samples", _roll_images(self._samples(step), self.spec),
                         max_outputs=_SAMPLE_CHAINS)
        w = tf.transpose(self.rbm.weights[:, :16])
        w = (w - tf.reduce_min(w)) / (tf.reduce_max(w) - tf.reduce_min(w) + 1e-9)
        tf.summary.image("hidden_unit_weights", _roll_images(w, self.spec),
                         max_outputs=16)
    self.writer.flush()


def train_and_evaluate(config: config_lib.TrainConfig, data_dir: str,
                       dirs: RunDirs,
                       strategy: tf.distribute.Strategy | None = None) -> dict:
  """Trains an RBM on DATA_DIR's windows, resuming from DIRS.checkpoint_dir.

  Args:
    config: hyper-parameters and run control.
    data_dir: the output_dir of preprocess.main.
    dirs: where the model, checkpoints and TensorBoard logs go.
    strategy: None: distribute.make_strategy() (all GPUs, or TF_CONFIG's
      machines, or the CPU).

  Returns:
    Final metrics: step, reconstruction_error, free energies, examples_per_sec.

  Raises:
    FileNotFoundError / ValueError: missing or unsuitable data, a job dir of
      another run.
    NonFiniteError: an update went NaN/Inf (the last good checkpoint is kept).
  """
  spec = data.load_dataset_spec(data_dir)
  n_train = data.num_windows(spec, "train")
  steps_per_epoch = n_train // config.batch_size
  if steps_per_epoch == 0:
    raise ValueError(
        f"{data_dir} has {n_train} training windows, fewer than one batch of "
        f"--batch_size={config.batch_size}; use a smaller --batch_size or more "
        "data.")
  total_steps = config.max_steps or config.epochs * steps_per_epoch
  strategy = strategy or distribute.make_strategy()
  chief = _is_chief(strategy)
  check_run_config(_worker_dir(dirs.checkpoint_dir, strategy), config, spec)

  with strategy.scope():
    rbm = model_lib.RBM(spec.n_visible, config.num_hidden, spec.unit_means,
                        seed=config.seed)
  trainer = CDTrainer(strategy, rbm, config, config.batch_size, spec.n_visible)
  checkpoint = tf.train.Checkpoint(rbm=rbm, velocities=trainer.velocities,
                                   step=trainer.step, momentum=trainer.momentum,
                                   **({"chains": trainer.chains}
                                      if trainer.chains is not None else {}))
  manager = tf.train.CheckpointManager(
      checkpoint, _worker_dir(dirs.checkpoint_dir, strategy), max_to_keep=3)
  if manager.latest_checkpoint:
    checkpoint.restore(manager.latest_checkpoint).assert_existing_objects_matched()
    logging.info("resumed from %s at step %d", manager.latest_checkpoint,
                 int(trainer.step.numpy()))

  options = tf.data.Options()
  options.experimental_distribute.auto_shard_policy = (
      tf.data.experimental.AutoShardPolicy.FILE
      if len(data.split_files(data_dir, "train")) >= distribute.cluster_size()
      else tf.data.experimental.AutoShardPolicy.DATA)
  dataset = data.make_dataset(
      data_dir, "train", config.batch_size, spec, shuffle=True, repeat=True,
      seed=config.seed + int(trainer.step.numpy()),
      drop_remainder=True).with_options(options)
  iterator = iter(strategy.experimental_distribute_dataset(dataset))
  monitor = _Monitor(rbm, spec, data_dir, dirs.tensorboard_dir,
                     config.seed) if chief else None

  step = int(trainer.step.numpy())
  logging.info("training %d -> %d steps (%d per epoch) on %d replica(s), global "
               "batch %d, %d visible x %d hidden", step, total_steps,
               steps_per_epoch, strategy.num_replicas_in_sync,
               config.batch_size, spec.n_visible, config.num_hidden)
  start_time, start_step = time.perf_counter(), step
  recon, examples_per_sec = float("nan"), 0.0
  while step < total_steps:
    trainer.momentum.assign(config.momentum_at(step // steps_per_epoch))
    # Run up to the next log/summary/checkpoint/epoch boundary in one call.
    boundary = min(total_steps, *(
        (step // every + 1) * every for every in (
            config.log_every_steps, config.summary_every_steps,
            config.steps_per_checkpoint, steps_per_epoch)))
    out = trainer.train_loop(iterator, tf.constant(boundary - step))
    step = int(trainer.step.numpy())
    if not bool(out["finite"]):
      raise NonFiniteError(
          f"the update at step {step + 1} made the weights or the "
          f"reconstruction error NaN/Inf (learning_rate={config.learning_rate}"
          f"); it was not applied and the last good checkpoint "
          f"({manager.latest_checkpoint}) is kept. Lower --learning_rate or "
          "add --weight_decay, then rerun to resume.")
    recon = float(out["reconstruction_error"])
    elapsed = time.perf_counter() - start_time
    examples_per_sec = (step - start_step) * config.batch_size / max(elapsed,
                                                                      1e-9)
    if step % config.log_every_steps == 0 or step == total_steps:
      eta = (total_steps - step) * config.batch_size / max(examples_per_sec,
                                                           1e-9)
      logging.info("step %d/%d epoch %.1f recon_error %.3f %.0f examples/s "
                   "ETA %.0f s", step, total_steps, step / steps_per_epoch,
                   recon, examples_per_sec, eta)
    if monitor and (step % config.summary_every_steps == 0 or
                    step == total_steps):
      monitor.write(step, {"reconstruction_error": recon,
                           "examples_per_sec": examples_per_sec,
                           "momentum": float(trainer.momentum.numpy()),
                           "learning_rate": config.learning_rate},
                    images=True)
    if step % config.steps_per_checkpoint == 0 or step == total_steps:
      manager.save(checkpoint_number=step)

  metrics = {"step": step, "reconstruction_error": recon,
             "examples_per_sec": examples_per_sec}
  if monitor:
    metrics.update({f"free_energy_{k}": v
                    for k, v in monitor.free_energies().items()})
  if chief:
    export.save_model(dirs.model_dir, rbm, spec, dataclasses.asdict(config),
                      step)
    logging.info("model written to %s: %s", dirs.model_dir, metrics)
  return metrics
