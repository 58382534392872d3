"""Held-out likelihood of a trained model, against an independent baseline.

log p(v) = -F(v) - log Z, with log Z from AIS (trainer/ais.py). The baseline is
the best model with no interactions at all: independent Bernoulli units with
the (smoothed) means of the windows the RBM was trained on, whose likelihood is
exact. Both are fitted on the same training windows (the dataset recorded in
model.json), so evaluating on another corpus of the same layout compares like
with like. Beating the baseline is the least a model of music should do.
This module reads files but writes none; trainer/evaluate.py (the CLI) prints
the result.
"""

import numpy as np
import tensorflow as tf

from common import cli
from preprocess import records
from trainer import ais
from trainer import config as config_lib
from trainer import data
from trainer import export

_BATCH_SIZE = 1000
# RNN-RBM: sequences per AIS call (memory: sequences x frames x chains x V).
_SEQUENCE_BATCH = 8


class LayoutError(cli.UsageError):
  """The data's windows do not mean what the model's windows meant."""


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
    raise export.NonFiniteModelError(
        f"the model in {model_dir} gives {', '.join(bad)}: its training "
        "diverged; retrain with a lower --learning_rate.")


def evaluate(model_dir: str, data_dir: str, split: str = "eval",
             ais_config: config_lib.AISConfig | None = None) -> dict:
  """Mean log-likelihood per window and per frame on DATA_DIR's `split`.

  Args:
    model_dir: a model/ folder written by trainer.task (local or gs://).
    data_dir: a preprocess.main output folder with the model's layout.
    split: "eval", "valid" or "train".
    ais_config: chains, betas and seed of the log Z estimate (None: the
      defaults).

  Returns:
    JSON-ready dict: log_z, log_z_stderr (this is also the standard error of
    the per-window log-likelihood, which is -F - log Z),
    ais_effective_sample_size, windows, num_timesteps, loglik_per_window,
    loglik_per_frame (per window / num_timesteps), baseline_loglik_per_window,
    baseline_loglik_per_frame, gain_per_frame (model - baseline), and the
    inputs.

  Raises:
    FileNotFoundError: model_dir or data_dir is not what it should be.
    LayoutError: the data's layout differs from the model's.
    data.MissingSplitError: the dataset has no windows in `split`.
    export.NonFiniteModelError: the model's parameters, log Z or free
      energies are NaN/Inf.
  """
  ais_config = ais_config or config_lib.AISConfig()
  loaded = export.load_model(model_dir)
  spec = data.load_dataset_spec(data_dir)
  if loaded.kind == export.RNN_RBM:
    return evaluate_rnn_rbm(loaded, spec, model_dir, data_dir, split,
                            ais_config)
  if data.is_whole_pieces(spec):
    raise LayoutError(
        f"{data_dir} holds whole pieces (--num_timesteps=0) but the model in "
        f"{model_dir} is a window RBM: evaluate it on windows of its layout.")
  check_same_layout(loaded.dataset, spec, model_dir, data_dir)
  windows = data.make_dataset(data_dir, split, _BATCH_SIZE, spec)

  trained_on = data.num_windows(loaded.dataset, records.TRAIN_PREFIX)
  result = ais.estimate_log_partition(
      loaded.rbm, ais.base_rate_biases(loaded.dataset.unit_means, trained_on),
      ais_config)
  baseline_p = tf.constant(
      ais.smoothed_means(loaded.dataset.unit_means, trained_on), tf.float32)
  neg_free_energy, baseline_per_window, count = _mean_log_likelihoods(
      loaded.rbm, baseline_p, windows)
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


def check_same_frames(model_spec: records.DatasetSpec,
                      data_spec: records.DatasetSpec, model_dir: str,
                      data_dir: str) -> None:
  """An RNN-RBM reads any sequences whose FRAMES mean the same: encoding,
  notes and grid must match (window length and stride need not)."""
  fields = ("encoding", "low_note", "high_note", "steps_per_quarter")
  diffs = [f for f in fields
           if getattr(model_spec, f) != getattr(data_spec, f)]
  if diffs:
    show = lambda s: ", ".join(f"{f}={getattr(s, f)}" for f in diffs)
    raise LayoutError(
        f"the RNN-RBM in {model_dir} was trained on frames with "
        f"{show(model_spec)} but {data_dir}/dataset.json has {show(data_spec)}"
        ": evaluate on data preprocessed with the model's notes and grid.")


def evaluate_rnn_rbm(loaded: export.LoadedModel, spec: records.DatasetSpec,
                     model_dir: str, data_dir: str, split: str,
                     ais_config: config_lib.AISConfig) -> dict:
  """log p(v(t) | v(<t)) per frame of `split`, each frame's log Z(t) by AIS.

  Sequences are whole pieces or fixed windows, each scored from the RNN's
  initial state. The frames' AIS runs are independent, so their variances
  add: log_z_stderr is the standard error of loglik_per_frame. The baseline
  is independent Bernoulli units with the (smoothed) means of the training
  frames, stored in model.json.

  Returns:
    The keys of `evaluate` (loglik_per_window and its baseline only for
    fixed windows; per sequence for whole pieces: loglik_per_sequence).
  """
  check_same_frames(loaded.dataset, spec, model_dir, data_dir)
  model = loaded.rnn_rbm
  means, trained_on = loaded.frame_means, loaded.train_frames
  base = ais.base_rate_biases(means, trained_on)
  p = ais.smoothed_means(means, trained_on)
  log_p, log_q = np.log(p), np.log1p(-p)
  nll = variance = frames = baseline = 0.0
  sequences = 0
  for batch, lengths in data.make_sequence_dataset(data_dir, split,
                                                   _SEQUENCE_BATCH, spec):
    out = model.nll_ais(batch, lengths, ais_config, base, row_start=sequences)
    nll += out["nll_sum"]
    variance += out["nll_variance"]
    frames += out["num_frames"]
    v = batch.numpy().astype(np.float64)
    mask = (np.arange(v.shape[1])[None, :] < lengths.numpy()[:, None])
    baseline += float(((v @ log_p + (1 - v) @ log_q) * mask).sum())
    sequences += int(batch.shape[0])
  per_frame = -nll / frames
  result = {
      "model": export.RNN_RBM, "model_dir": model_dir, "data_dir": data_dir,
      "split": split, "sequences": sequences, "frames": int(frames),
      "num_timesteps": spec.num_timesteps,
      "log_z_stderr": float(np.sqrt(variance) / frames),
      "ais_chains": ais_config.num_chains, "ais_betas": ais_config.num_betas,
      "ais_seed": ais_config.seed,
      "loglik_per_frame": per_frame,
      "baseline_loglik_per_frame": baseline / frames,
      "baseline_train_frames": trained_on,
      "gain_per_frame": per_frame - baseline / frames,
  }
  if spec.num_timesteps:
    result["windows"] = sequences
    result["loglik_per_window"] = -nll / sequences
    result["baseline_loglik_per_window"] = baseline / sequences
  else:
    result["loglik_per_sequence"] = -nll / sequences
  return result
