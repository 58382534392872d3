"""The window RBM's held-out likelihood: log p(v) = -F(v) - log Z per window,
log Z by AIS (trainer/models/ais.py), against independent Bernoulli units
with the (smoothed) means of the windows it was trained on, whose likelihood
is exact. Reads files, writes none.
"""

import numpy as np
import tensorflow as tf

from preprocess import records
from trainer import data
from trainer.models import ais
from trainer.models import base
from trainer.models import files

_BATCH_SIZE = 1000
LayoutError = base.LayoutError


def check_same_layout(model_spec: records.DatasetSpec,
                      data_spec: records.DatasetSpec, model_dir: str,
                      data_dir: str) -> None:
  """Raises LayoutError naming every layout field that differs, and both dirs.

  The layout (DatasetSpec.layout) must match for a window to mean the same
  thing to the model.
  """
  model_layout, data_layout = model_spec.layout(), data_spec.layout()
  diffs = [f for f in model_layout if model_layout[f] != data_layout[f]]
  if diffs:
    def show(layout):
      return ", ".join(f"{f}={layout[f]}" for f in diffs)
    raise LayoutError(
        f"the model in {model_dir} was trained on windows with "
        f"{show(model_layout)} but {data_dir}/dataset.json has "
        f"{show(data_layout)}: evaluate on data preprocessed with the model's "
        "layout (the preprocess.main flags the model was trained with).")


def _log_likelihood_sums(rbm, baseline_p):
  """A tf.function: batch -> sums of -F(v) (RBM) and log p(v) (baseline)."""
  log_p, log_q = tf.math.log(baseline_p), tf.math.log1p(-baseline_p)

  @tf.function(input_signature=[
      tf.TensorSpec([None, rbm.n_visible], tf.float32)])
  def sums(batch):
    baseline = (tf.linalg.matvec(batch, log_p) +
                tf.linalg.matvec(1.0 - batch, log_q))
    # float64 sums: a large split adds up millions of values of order 100.
    return (tf.reduce_sum(tf.cast(-rbm.free_energy(batch), tf.float64)),
            tf.reduce_sum(tf.cast(baseline, tf.float64)))

  return sums


def _mean_log_likelihoods(rbm, baseline_p, windows) -> tuple:
  """(mean -F(v) of the RBM, mean log p(v) of the baseline, windows) over
  the batches of `windows`."""
  sums = _log_likelihood_sums(rbm, baseline_p)
  neg_free_energy = baseline = 0.0
  count = 0
  for batch in windows:
    a, b = sums(batch)
    neg_free_energy += float(a)
    baseline += float(b)
    count += int(batch.shape[0])
  return neg_free_energy / count, baseline / count, count


def _check_finite(model_dir: str, result, neg_free_energy: float) -> None:
  """Finite parameters can still overflow log Z or F(v): that is a failure,
  not a NaN figure with exit 0."""
  figures = {"log Z": result.log_z, "mean free energy": -neg_free_energy}
  bad = [f"{k} = {v}" for k, v in figures.items() if not np.isfinite(v)]
  if bad:
    raise files.NonFiniteModelError(
        f"the model in {model_dir} gives {', '.join(bad)}: its training "
        "diverged; retrain with a lower --learning_rate.")


def evaluate(loaded: base.LoadedModel, spec: records.DatasetSpec,
             model_dir: str, data_dir: str, split: str, ais_config) -> dict:
  """Mean log-likelihood per window and per frame on DATA_DIR's `split`.

  Args:
    loaded: the model; spec: DATA_DIR's dataset.json.
    model_dir, data_dir: where they came from (for messages).
    split: "eval", "valid" or "train".
    ais_config: chains, betas and seed of the log Z estimate.

  Returns:
    JSON-ready dict: log_z, log_z_stderr (this is also the standard error of
    the per-window log-likelihood, which is -F - log Z),
    ais_effective_sample_size, windows, num_timesteps, loglik_per_window,
    loglik_per_frame (per window / num_timesteps), baseline_loglik_per_window,
    baseline_loglik_per_frame, gain_per_frame (model - baseline), and the
    inputs.

  Raises:
    LayoutError: the data's layout differs from the model's.
    data.MissingSplitError: the dataset has no windows in `split`.
    files.NonFiniteModelError: the model's parameters, log Z or free
      energies are NaN/Inf.
  """
  if data.is_whole_pieces(spec):
    raise LayoutError(
        f"{data_dir} holds whole pieces (--num_timesteps=0) but the model in "
        f"{model_dir} is a window RBM: evaluate it on windows of its layout.")
  check_same_layout(loaded.dataset, spec, model_dir, data_dir)
  windows = data.make_dataset(data_dir, split, _BATCH_SIZE, spec)

  trained_on = data.num_windows(loaded.dataset, records.TRAIN_PREFIX)
  result = ais.estimate_log_partition(
      loaded.model, ais.base_rate_biases(loaded.dataset.unit_means, trained_on),
      ais_config)
  baseline_p = tf.constant(
      ais.smoothed_means(loaded.dataset.unit_means, trained_on), tf.float32)
  neg_free_energy, baseline_per_window, count = _mean_log_likelihoods(
      loaded.model, baseline_p, windows)
  _check_finite(model_dir, result, neg_free_energy)
  per_window = neg_free_energy - result.log_z
  frames = spec.num_timesteps
  return {
      "model_dir": model_dir, "data_dir": data_dir, "split": split,
      "windows": count, "num_timesteps": frames,
      "log_z": result.log_z, "log_z_stderr": result.log_z_stderr,
      "ais_effective_sample_size": result.effective_sample_size,
      "ais_chains": ais_config.num_chains, "ais_betas": ais_config.num_betas,
      "ais_seed": ais_config.seed,
      "loglik_per_window": per_window,
      "loglik_per_frame": per_window / frames,
      "baseline_loglik_per_window": baseline_per_window,
      "baseline_loglik_per_frame": baseline_per_window / frames,
      "baseline_train_windows": trained_on,
      "gain_per_frame": (per_window - baseline_per_window) / frames,
  }


