"""The RNN-RBM as a registered model (trainer/models/__init__.py).

Boulanger-Lewandowski, Bengio & Vincent (ICML 2012): an RBM per frame whose
biases follow an RNN over the piece so far; trained on sequences (whole
pieces or windows) by CD-k with Adam, validated by AIS; samples are pieces
written frame by frame. Maths in maths.py, training in training.py, sampling
in sampling.py, likelihood in likelihood.py.
"""

from trainer.models import base
from trainer.models import files
from trainer.models.rnn_rbm import likelihood
from trainer.models.rnn_rbm import maths
from trainer.models.rnn_rbm import sampling
from trainer.models.rnn_rbm import training


class RecurrentModel(base.Model):
  """What the recurrent frame models share: files from their sizes, and the
  one-thread-per-op generation. A subclass names its MATHS class and PARAMS."""

  MATHS = maths.RNNRBM
  PARAMS = training.PARAMS

  def param_names(self, info) -> tuple:
    del info
    return self.PARAMS

  def load(self, info, params, dataset, path) -> base.LoadedModel:
    sizes = info.get("sizes", {})
    try:
      model = self.MATHS(sizes["n_visible"], sizes["n_hidden"],
                         sizes["n_hidden_recurrent"])
    except KeyError as e:
      raise ValueError(f"{path}: model.json's sizes lack {e}.") from None
    if model.n_visible != dataset.n_columns:
      raise ValueError(f"{path}: frames of {model.n_visible} units but the "
                       f"dataset's frames have {dataset.n_columns}.")
    files.assign_checked(model, params, self.PARAMS, path)
    return base.LoadedModel(self.name, model, dataset, info.get("config", {}),
                            int(info.get("step", 0)), info)

  def configure_generation(self) -> bool:
    return sampling.one_thread_per_op()


class RNNRBMModel(RecurrentModel):
  """See the module docstring."""

  name = "rnn_rbm"
  title = "RNN-RBM"

  def trainer(self, run):
    return training.RNNRBMTrainer(run)

  def sampler(self, loaded, config):
    return sampling.prepare(loaded, config)

  def describe_sampling(self, config) -> str:
    return (f"seed {config.seed}, RNN-RBM, {config.num_frames} frames of "
            f"{config.gibbs_steps_per_frame} Gibbs steps, temperature "
            f"{config.temperature}" + (", after a primer" if config.primer
                                       else ""))

  def evaluate(self, loaded, spec, model_dir, data_dir, split, ais_config,
               max_frames=0):
    return likelihood.evaluate(loaded, spec, model_dir, data_dir, split,
                               ais_config, max_frames)


MODEL = RNNRBMModel()
