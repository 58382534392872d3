"""The window RBM's training: CD/PCD updates with momentum under
tf.distribute, and what it adds to monitoring (free energies, pseudo
log-likelihood, sample and weight images). The loop is trainer/training.
"""

import dataclasses

from absl import logging
import numpy as np
import tensorflow as tf

from preprocess import records
from trainer import data
from trainer import random_streams
from trainer.models import base
from trainer.models import files
from trainer.models.rbm import maths as model_lib
from trainer.models.rbm import settings as rbm_settings

# Monitoring subsets: enough windows for stable means, small enough for memory.
_MONITOR_WINDOWS = 2000
_SAMPLE_CHAINS = 4
# Piano-roll images are upscaled so a 15-step window is visible in TensorBoard.
_IMAGE_TIME_SCALE, _IMAGE_PITCH_SCALE = 8, 2
_WEIGHT_IMAGES = 16


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
               config, global_batch_size: int,
               n_visible: int, windows: np.ndarray | None = None):
    """Creates the trainer's state.

    Args:
      strategy: the strategy `rbm` was created under.
      rbm: the model; updated in place.
      config: learning rate, momentum, weight decay, cd_k, persistent, seed,
        compute_dtype (of the statistics' matmuls only: the state, the
        all-reduce and the update stay float32).
      global_batch_size: rows of each batch before it is split over replicas.
      n_visible: visible units (the PCD chains' width).
      windows: None: batches come from an iterator (`train_loop`'s
        argument). Else every training window, uint8 [N, n_visible]: step s
        of epoch e takes rows order[(s mod N // batch) * batch ...] of a
        permutation keyed by (seed, e), each replica gathering its own rows
        inside the step (`train_loop(None, ...)`, after `start_epoch(e)`).

    Raises:
      SetupError: the global batch does not split evenly over the replicas.
    """
    replicas = strategy.num_replicas_in_sync
    if global_batch_size % replicas:
      raise base.SetupError(
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
      self.momentum = tf.Variable(rbm_settings.momentum_at(config, 0), trainable=False,
                                  name="momentum")
      self.chains = None
      if config.persistent:
        # PCD chains start as samples of the visible biases (the data's unit
        # means), not zeros, so they begin near the data's marginals.
        start = rbm.visible_bias_samples(
            config.seed, random_streams.CHAIN_INIT, 0, global_batch_size)
        self.chains = tf.Variable(start, trainable=False, name="pcd_chains")
    self.windows = None
    if windows is not None:
      self.windows = tf.constant(windows, tf.uint8)
      self.steps_per_epoch = len(windows) // global_batch_size
      with strategy.scope():
        self.order = tf.Variable(tf.range(len(windows), dtype=tf.int32),
                                 trainable=False, name="epoch_order")
      self._order_epoch = None
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
                                  self.step, row_start, chain,
                                  self.config.compute_dtype)

  def start_epoch(self, epoch: int) -> None:
    """In-memory windows: the order of `epoch`'s batches (a pure function of
    (seed, epoch), so a resumed run needs nothing from the checkpoint)."""
    if self._order_epoch != epoch:
      self.order.assign(random_streams.epoch_order(
          self.config.seed, epoch, int(self.windows.shape[0])))
      self._order_epoch = epoch

  def _replica_windows(self):
    """This replica's rows of the step's global batch, from memory."""
    ctx = tf.distribute.get_replica_context()
    local = self.global_batch_size // self.strategy.num_replicas_in_sync
    first = (tf.cast(self.step % self.steps_per_epoch, tf.int32) *
             self.global_batch_size +
             ctx.replica_id_in_sync_group * local)
    rows = self.order[first:first + local]
    return self._replica_statistics(
        tf.cast(tf.gather(self.windows, rows), tf.float32))

  def _train_step(self, dist_batch):
    """One update. Returns reconstruction_error, finite, finite_each.

    dist_batch: the step's distributed batch, or None for in-memory windows.
    """
    if dist_batch is None:
      per_replica = self.strategy.run(self._replica_windows)
    else:
      per_replica = self.strategy.run(self._replica_statistics,
                                      args=(dist_batch,))
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
    overhead per step); stops at the first non-finite update. iterator: of
    distributed batches, or None for in-memory windows (the calls of one
    epoch, after `start_epoch`).

    Returns:
      steps (applied), finite, finite_each (of the last update tried) and the
      mean reconstruction_error of the applied updates.
    """
    finite = tf.constant(True)
    finite_each = tf.ones([len(self.CHECKED)], tf.bool)
    total_error = tf.constant(0.0)
    done = tf.constant(0)
    for _ in tf.range(num_steps):
      out = self._train_step(None if iterator is None else next(iterator))
      finite, finite_each = out["finite"], out["finite_each"]
      if not finite:
        break
      total_error += out["reconstruction_error"]
      done += 1
    return {"finite": finite, "finite_each": finite_each, "steps": done,
            "reconstruction_error": total_error / tf.maximum(
                tf.cast(done, tf.float32), 1.0)}


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

  def __init__(self, rbm, spec, data_dir, seed):
    self.rbm, self.spec, self.seed = rbm, spec, seed
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

  def write(self, step):
    """Writes the summaries of `step` (in the writer's default context)."""
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

  def check_finite(self, step, kept, config) -> None:
    """Before a checkpoint: the monitored quantities must be finite too.

    An update can stay finite while the model has diverged (at
    --learning_rate=1e37 the weights are finite and every free energy is
    inf); such a state is neither saved nor exported.

    Raises:
      NonFiniteError: naming each non-finite quantity and the kept checkpoint.
    """
    values = {f"free energy ({k})": v for k, v in self.free_energies().items()}
    for split, windows in self.subsets.items():
      values[f"pseudo-log-likelihood ({split})"] = float(
          self._pll(windows, self.flips[split]))
    bad = [f"{k} = {v}" for k, v in values.items() if not np.isfinite(v)]
    if bad:
      raise base.NonFiniteError(
          f"step {step}: training diverged: {', '.join(bad)} (--learning_rate="
          f"{config.learning_rate}, --weight_decay={config.weight_decay}). "
          f"This state was not saved; the last good checkpoint ({kept}) is "
          "kept. Lower --learning_rate, then rerun the same command to resume "
          "from it.")


class RBMTrainer(base.Trainer):
  """The window RBM in the training loop: a `CDTrainer` and, on the chief,
  a `_Monitor`."""

  def __init__(self, run: base.TrainingRun):
    config, spec = run.config, run.spec
    self.run = run
    with run.strategy.scope():
      self.rbm = model_lib.RBM(spec.n_visible, config.num_hidden,
                               spec.unit_means, seed=config.seed)
    windows = None
    size = data.windows_bytes(spec, "train")
    if size <= config.in_memory_mb * 2**20:
      windows = data.load_windows(run.data_dir, "train", spec)
      if len(windows) != data.num_windows(spec, "train"):
        raise base.SetupError(
            f"{run.data_dir}: its train shards hold {len(windows)} windows, "
            f"dataset.json says {data.num_windows(spec, 'train')}; rerun "
            "preprocess.main into an empty --output_dir.")
    self.cd = CDTrainer(run.strategy, self.rbm, config, config.batch_size,
                        spec.n_visible, windows)
    self.monitor = (_Monitor(self.rbm, spec, run.data_dir, config.seed)
                    if run.chief else None)
    logging.info("window RBM: %d visible x %d hidden, %s-%d, %s matmuls; "
                 "training windows %s (%.1f MiB, --in_memory_mb=%d)",
                 spec.n_visible, config.num_hidden,
                 "PCD" if config.persistent else "CD", config.cd_k,
                 config.compute_dtype, "in memory" if windows is not None else
                 "streamed from the shards", size / 2**20, config.in_memory_mb)

  @property
  def step(self):
    return self.cd.step

  def checkpoint_objects(self) -> dict:
    cd = self.cd
    return {"rbm": self.rbm, "velocities": cd.velocities, "step": cd.step,
            "momentum": cd.momentum,
            **({"chains": cd.chains} if cd.chains is not None else {})}

  def batches(self, start_step: int) -> tf.data.Dataset | None:
    """Global batches from `start_step` on, in an order keyed by (seed,
    epoch): epoch e is shuffled with its own seed and drops its own
    remainder, so step s always sees the same batch. None when the windows
    are in memory (the step gathers its own)."""
    run, config = self.run, self.run.config
    if self.cd.windows is not None:
      return None
    return data.resumable_epochs(
        lambda shuffle_seed: data.make_dataset(
            run.data_dir, "train", config.batch_size, run.spec, shuffle=True,
            seed=shuffle_seed, drop_remainder=True),
        config.seed, start_step, run.steps_per_epoch)

  def train_steps(self, iterator, num_steps: int, epoch: int) -> dict:
    # The momentum schedule switches at epoch boundaries, where calls end.
    self.cd.momentum.assign(rbm_settings.momentum_at(self.run.config, epoch))
    if self.cd.windows is not None:
      # A call stays within one epoch's order (the loop's calls end there).
      self.cd.start_epoch(epoch)
      step = int(self.cd.step.numpy())
      num_steps = min(num_steps, (epoch + 1) * self.run.steps_per_epoch - step)
    return self.cd.train_loop(iterator, tf.constant(num_steps))

  def non_finite_error(self, out, step, kept):
    bad = [name for name, ok in zip(CDTrainer.CHECKED,
                                    out["finite_each"].numpy()) if not ok]
    config = self.run.config
    return base.NonFiniteError(
        f"step {step + 1}: the update made {', '.join(bad)} NaN/Inf "
        f"(--learning_rate={config.learning_rate}, --weight_decay="
        f"{config.weight_decay}, momentum {float(self.cd.momentum.numpy())})."
        f" It was not applied; the last good checkpoint ({kept}) is kept. "
        "Lower --learning_rate, then rerun the same command to resume from "
        "it.")

  def scalars(self, out) -> dict:
    return {"reconstruction_error": float(out["reconstruction_error"])}

  def summaries(self, step: int) -> None:
    tf.summary.scalar("momentum", float(self.cd.momentum.numpy()))
    tf.summary.scalar("learning_rate", self.run.config.learning_rate)
    if self.monitor is not None:
      self.monitor.write(step)

  def check_before_save(self, step: int, kept) -> None:
    if self.monitor is not None:
      self.monitor.check_finite(step, kept, self.run.config)

  def final_metrics(self) -> dict:
    if self.monitor is None:
      return {}
    return {f"free_energy_{k}": v
            for k, v in self.monitor.free_energies().items()}

  def export(self, model_dir: str, step: int, metrics: dict) -> None:
    del metrics
    save(model_dir, self.rbm, self.run.spec,
         dataclasses.asdict(self.run.config), step)


def save(model_dir: str, rbm: model_lib.RBM, dataset: records.DatasetSpec,
         config: dict, step: int) -> None:
  """Writes a window RBM's model/ folder (model.json has no "model": the
  format of the first models, which stays readable)."""
  files.save(model_dir, {"weights": rbm.weights.numpy(),
                         "visible_bias": rbm.visible_bias.numpy(),
                         "hidden_bias": rbm.hidden_bias.numpy()},
             files.base_info(config, dataset, step))
