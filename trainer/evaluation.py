"""Held-out likelihood of a trained model, against an independent baseline.

log p(v) = -F(v) - log Z, with log Z from AIS (trainer/ais.py). The baseline is
the best model with no interactions at all: independent Bernoulli units with
the training split's (smoothed) means, whose likelihood is exact. Beating it
is the least a model of music should do.
"""

import tensorflow as tf

from trainer import ais
from trainer import data
from trainer import export

_LAYOUT_FIELDS = ("encoding", "low_note", "high_note", "steps_per_quarter",
                  "num_timesteps", "n_visible")


def check_same_layout(model_spec, data_spec, model_dir, data_dir) -> None:
  for field in _LAYOUT_FIELDS:
    a, b = getattr(model_spec, field), getattr(data_spec, field)
    if a != b:
      raise ValueError(
          f"the model in {model_dir} was trained on {field}={a} but "
          f"{data_dir}/dataset.json has {field}={b}: evaluate on data "
          "preprocessed with the model's layout.")


def evaluate(model_dir: str, data_dir: str, split: str = "eval",
             ais_config: ais.AISConfig = ais.AISConfig()) -> dict:
  """Mean log-likelihood per window and per frame on DATA_DIR's `split`.

  Returns:
    JSON-ready dict: log_z, log_z_stderr, effective_sample_size, windows,
    loglik_per_window, loglik_per_frame, baseline_* (independent Bernoulli).

  Raises:
    ValueError: the data's layout differs from the model's, or the split is
      empty.
  """
  loaded = export.load_model(model_dir)
  spec = data.load_dataset_spec(data_dir)
  check_same_layout(loaded.dataset, spec, model_dir, data_dir)
  n_train = data.num_windows(loaded.dataset, "train")
  result = ais.estimate_log_partition(
      loaded.rbm, ais.base_rate_biases(loaded.dataset.unit_means, n_train),
      ais_config)

  p = tf.constant(ais.smoothed_means(spec.unit_means,
                                     data.num_windows(spec, "train")),
                  tf.float32)
  neg_free_energy = baseline = 0.0
  count = 0
  for batch in data.make_dataset(data_dir, split, 1000, spec):
    neg_free_energy += float(tf.reduce_sum(-loaded.rbm.free_energy(batch)))
    baseline += float(tf.reduce_sum(
        batch * tf.math.log(p) + (1.0 - batch) * tf.math.log1p(-p)))
    count += int(batch.shape[0])
  per_window = neg_free_energy / count - result.log_z
  frames = spec.num_timesteps
  return {
      "model_dir": model_dir, "data_dir": data_dir, "split": split,
      "windows": count, "num_timesteps": frames,
      "log_z": result.log_z, "log_z_stderr": result.log_z_stderr,
      "effective_sample_size": result.effective_sample_size,
      "ais_chains": ais_config.num_chains, "ais_betas": ais_config.num_betas,
      "loglik_per_window": per_window, "loglik_per_frame": per_window / frames,
      "baseline_loglik_per_window": baseline / count,
      "baseline_loglik_per_frame": baseline / count / frames,
      "gain_per_frame": (per_window - baseline / count) / frames,
  }
