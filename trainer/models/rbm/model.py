"""The window RBM as a registered model (trainer/models/__init__.py).

The original post's model: one RBM over a flattened window of frames
(2 x 78 pitches x 15 steps = 2340 visible units there), trained by CD-k with
momentum; samples are chained windows. Maths in maths.py, training in
training.py, sampling in sampling.py, likelihood in likelihood.py.
"""

from trainer import data
from trainer.models import base
from trainer.models import files
from trainer.models.rbm import likelihood
from trainer.models.rbm import maths
from trainer.models.rbm import sampling
from trainer.models.rbm import training

PARAMS = ("weights", "visible_bias", "hidden_bias")


class WindowRBM(base.Model):
  """See the module docstring."""

  name = "rbm"
  title = "window RBM"

  def check_data(self, spec, data_dir) -> None:
    if data.is_whole_pieces(spec):
      raise base.SetupError(
          f"{data_dir} holds whole pieces (preprocess.main --num_timesteps=0), "
          "which only frame models (--model=rnn_rbm, bernoulli) read; train an "
          "RBM on fixed windows (--num_timesteps=T > 0).")

  def trainer(self, run):
    return training.RBMTrainer(run)

  def param_names(self, info) -> tuple:
    del info
    return PARAMS

  def load(self, info, params, dataset, path) -> base.LoadedModel:
    weights = params["weights"]
    if weights.shape[0] != dataset.n_visible:
      raise ValueError(f"{path}: weights have {weights.shape[0]} visible "
                       f"units but the dataset has {dataset.n_visible}.")
    rbm = maths.RBM(weights.shape[0], weights.shape[1])
    files.assign_checked(rbm, params, PARAMS, path)
    return base.LoadedModel(self.name, rbm, dataset, info.get("config", {}),
                            int(info.get("step", 0)), info)

  def sampler(self, loaded, config):
    sampling.check_flags(config, loaded)
    config = sampling.with_length(config, loaded)
    return config, sampling.make_generator(loaded, config)

  def describe_sampling(self, config) -> str:
    threshold = (f", articulate threshold {config.articulate_threshold}"
                 if config.articulate_threshold else "")
    return (f"seed {config.seed}, window RBM, {config.gibbs_steps} Gibbs "
            f"steps from {config.init}, {config.num_windows} window(s), "
            f"temperature {config.temperature}{threshold}")

  def evaluate(self, loaded, spec, model_dir, data_dir, split, ais_config,
               max_frames=0):
    base.refuse_frame_cap(max_frames, self.title)
    return likelihood.evaluate(loaded, spec, model_dir, data_dir, split,
                               ais_config)


MODEL = WindowRBM()
