"""The RNN-NADE as a registered model (trainer/models/__init__.py).

Boulanger-Lewandowski, Bengio & Vincent (ICML 2012), section 4: the
RNN-RBM's RNN conditions a NADE per frame instead of an RBM. Its frame
likelihood is exact: trained on the exact gradient, scored without AIS,
sampled without a Markov chain. Maths in maths.py; training, likelihood
and sampling reuse the RNN-RBM's sequence machinery around it.
"""

from trainer.models import base
from trainer.models import files
from trainer.models.rnn_nade import likelihood
from trainer.models.rnn_nade import maths
from trainer.models.rnn_nade import sampling
from trainer.models.rnn_nade import training
from trainer.models.rnn_rbm import sampling as frame_sampling


class RNNNADEModel(base.Model):
  """See the module docstring."""

  name = "rnn_nade"
  title = sampling.TITLE

  def trainer(self, run):
    return training.RNNNADETrainer(run)

  def param_names(self, info) -> tuple:
    del info
    return training.PARAMS

  def load(self, info, params, dataset, path) -> base.LoadedModel:
    sizes = info.get("sizes", {})
    try:
      model = maths.RNNNADE(sizes["n_visible"], sizes["n_hidden"],
                            sizes["n_hidden_recurrent"])
    except KeyError as e:
      raise ValueError(f"{path}: model.json's sizes lack {e}.") from None
    if model.n_visible != dataset.n_columns:
      raise ValueError(f"{path}: frames of {model.n_visible} units but the "
                       f"dataset's frames have {dataset.n_columns}.")
    files.assign_checked(model, params, training.PARAMS, path)
    return base.LoadedModel(self.name, model, dataset, info.get("config", {}),
                            int(info.get("step", 0)), info)

  def configure_generation(self) -> bool:
    return frame_sampling.one_thread_per_op()

  def sampler(self, loaded, config):
    return sampling.prepare(loaded, config)

  def describe_sampling(self, config) -> str:
    return (f"seed {config.seed}, RNN-NADE, {config.num_frames} frames drawn "
            f"exactly, temperature {config.temperature}" +
            (", after a primer" if config.primer else ""))

  def evaluate(self, loaded, spec, model_dir, data_dir, split, ais_config,
               max_frames=0):
    return likelihood.evaluate(loaded, spec, model_dir, data_dir, split,
                               ais_config, max_frames)


MODEL = RNNNADEModel()
