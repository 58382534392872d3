"""The independent-Bernoulli baseline as a registered model.

Trained by the one training loop like the others: each step counts the
training batch's frames and each unit's 1s (all-reduced over replicas), and
the export sets p_u from the counts (maths.py). One epoch fits it exactly
(its DEFAULTS); more epochs count the same frames again, which leaves the
means unchanged. Its likelihood per frame is exact, and it samples every
unit of every frame on its own: a floor for the other models' figures and
samples.
"""

import dataclasses

import numpy as np
import tensorflow as tf

from trainer import config as config_lib
from trainer import data
from trainer import random_streams
from trainer.models import base
from trainer.models import files
from trainer.models.bernoulli import maths

PARAMS = ("probs",)
BLOCK = config_lib.GENERATION_BLOCK
# Frames drawn per call: bounds a block's noise to 128 x 512 x V floats.
_FRAMES_PER_CALL = 512


class CountingTrainer(base.Trainer):
  """Counts each unit's 1s and the real frames of every training batch."""

  unit = "sequences"

  def __init__(self, run: base.TrainingRun):
    self.run, self.strategy = run, run.strategy
    columns = run.spec.n_columns
    with run.strategy.scope():
      self.model = maths.BernoulliFrames(columns)
      self.unit_sums = tf.Variable(tf.zeros([columns], tf.float64),
                                   trainable=False, name="unit_sums")
      self.frames = tf.Variable(0, dtype=tf.int64, trainable=False,
                                name="frames")
      self._step = tf.Variable(0, dtype=tf.int64, trainable=False, name="step")
    self.train_loop = tf.function(self._train_loop)

  @property
  def step(self):
    return self._step

  def checkpoint_objects(self) -> dict:
    return {"unit_sums": self.unit_sums, "frames": self.frames,
            "step": self._step}

  def batches(self, start_step: int) -> tf.data.Dataset:
    run, config = self.run, self.run.config
    return data.resumable_epochs(
        lambda shuffle_seed: data.make_sequence_dataset(
            run.data_dir, "train", config.batch_size, run.spec, shuffle=True,
            seed=shuffle_seed, drop_remainder=True),
        config.seed, start_step, run.steps_per_epoch)

  @staticmethod
  def _replica_counts(frames, lengths):
    # Padding is silence: it adds no 1s, and only real frames are counted.
    return (tf.reduce_sum(tf.cast(frames, tf.float64), axis=[0, 1]),
            tf.reduce_sum(tf.cast(lengths, tf.int64)))

  def _train_loop(self, iterator, num_steps):
    total = lambda x: self.strategy.reduce(tf.distribute.ReduceOp.SUM, x,
                                           axis=None)
    for _ in tf.range(num_steps):
      frames, lengths = next(iterator)
      sums, count = self.strategy.run(self._replica_counts,
                                      args=(frames, lengths))
      self.unit_sums.assign_add(total(sums))
      self.frames.assign_add(total(count))
      self._step.assign_add(1)
    return {"finite": tf.reduce_all(tf.math.is_finite(self.unit_sums)),
            "steps": num_steps}

  def train_steps(self, iterator, num_steps: int, epoch: int) -> dict:
    del epoch
    return self.train_loop(iterator, tf.constant(num_steps))

  def non_finite_error(self, out, step, kept):
    return base.NonFiniteError(
        f"step {step}: the unit counts went NaN/Inf; the last good checkpoint "
        f"({kept}) is kept: check the dataset's records.")

  def scalars(self, out) -> dict:
    del out
    return {"frames_counted": float(self.frames.numpy())}

  def export(self, model_dir: str, step: int, metrics: dict) -> None:
    del metrics
    run, count = self.run, int(self.frames.numpy())
    sums = self.unit_sums.numpy()
    self.model.fit(sums, count)
    files.save(model_dir, {"probs": self.model.probs.numpy()}, {
        "model": "bernoulli",
        "frame_statistics": {"means": [float(m) for m in sums / max(count, 1)],
                             "frames": count},
        **files.base_info(dataclasses.asdict(run.config), run.spec, step)})


class FrameSampler:
  """Pieces of independent frames, block by block."""

  def __init__(self, loaded: base.LoadedModel, config):
    self.config = config
    self.probs = loaded.model.tempered(config.temperature)

  def sample(self, blocks: list, attempt: int) -> np.ndarray:
    """uint8 pieces [len(blocks) * BLOCK, num_frames, columns]."""
    config, pieces = self.config, []
    for b in blocks:
      chunks = [maths.sample_frames(
          self.probs, BLOCK, min(_FRAMES_PER_CALL, config.num_frames - start),
          config.seed, b * BLOCK,
          random_streams.bernoulli_frames(attempt, start // _FRAMES_PER_CALL))
                for start in range(0, config.num_frames, _FRAMES_PER_CALL)]
      pieces.append(np.concatenate([c.numpy() for c in chunks], axis=1))
    return np.concatenate(pieces)


class BernoulliModel(base.Model):
  """See the module docstring."""

  name = "bernoulli"
  title = "independent-Bernoulli baseline"

  def trainer(self, run):
    return CountingTrainer(run)

  def param_names(self, info) -> tuple:
    del info
    return PARAMS

  def load(self, info, params, dataset, path) -> base.LoadedModel:
    model = maths.BernoulliFrames(dataset.n_columns)
    files.assign_checked(model, params, PARAMS, path)
    return base.LoadedModel(self.name, model, dataset, info.get("config", {}),
                            int(info.get("step", 0)), info)

  def sampler(self, loaded, config):
    base.refuse_other_sampling_flags(config, self.name)
    if config.primer:
      raise base.GenerateError(
          f"--primer={config.primer}: the Bernoulli baseline's frames are "
          "independent, so there is nothing to continue; leave it out.")
    config = dataclasses.replace(
        config, num_frames=base.frame_model_length(config, loaded.dataset,
                                                   config_lib.MIN_BARS,
                                                   config_lib.DEFAULT_BARS,
                                                   config_lib.MAX_NUM_FRAMES),
        temperature=config.temperature if config.given("temperature")
        else 1.0)
    return config, FrameSampler(loaded, config)

  def describe_sampling(self, config) -> str:
    return (f"seed {config.seed}, independent Bernoulli frames (the "
            f"baseline), {config.num_frames} frames, temperature "
            f"{config.temperature}")

  def evaluate(self, loaded, spec, model_dir, data_dir, split, ais_config,
               max_frames=0):
    """Exact log-likelihood per frame; its baseline is itself (gain 0)."""
    del ais_config  # exact
    base.refuse_frame_cap(max_frames, self.title)
    base.check_same_frames(loaded.dataset, spec, model_dir, data_dir)
    total = frames = 0.0
    sequences = 0
    for batch, lengths in data.make_sequence_dataset(data_dir, split, 64,
                                                     spec):
      total += loaded.model.log_prob_sums(batch.numpy(), lengths.numpy())
      frames += float(lengths.numpy().sum())
      sequences += int(batch.shape[0])
    per_frame = total / frames
    result = {
        "model": self.name, "model_dir": model_dir, "data_dir": data_dir,
        "split": split, "sequences": sequences, "frames": int(frames),
        "num_timesteps": spec.num_timesteps, "loglik_per_frame": per_frame,
        "baseline_loglik_per_frame": per_frame,
        "baseline_train_frames": int(
            loaded.info.get("frame_statistics", {}).get("frames", 0)),
        "gain_per_frame": 0.0}
    if spec.num_timesteps:
      result["windows"] = sequences
      result["loglik_per_window"] = total / sequences
    else:
      result["loglik_per_sequence"] = total / sequences
    return result


MODEL = BernoulliModel()
