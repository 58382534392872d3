"""The RNN-NADE as a registered model (trainer/models/__init__.py).

Boulanger-Lewandowski, Bengio & Vincent (ICML 2012), section 4: the
RNN-RBM's RNN conditions a NADE per frame instead of an RBM. Its frame
likelihood is exact: trained on the exact gradient, scored without AIS,
sampled without a Markov chain. Maths in maths.py; training, likelihood
and sampling reuse the sequence machinery it shares with the RNN-RBM
(trainer/models/recurrent/) around it.
"""

from trainer.models.recurrent import model as recurrent_model
from trainer.models.rnn_nade import likelihood
from trainer.models.rnn_nade import maths
from trainer.models.rnn_nade import sampling
from trainer.models.rnn_nade import training


class RNNNADEModel(recurrent_model.RecurrentModel):
  """See the module docstring."""

  name = "rnn_nade"
  title = sampling.TITLE
  MATHS = maths.RNNNADE
  PARAMS = training.PARAMS

  def param_names(self, info) -> tuple:
    counted = info.get("sizes", {}).get("count_units", 0)
    return self.PARAMS + (maths.COUNT_PARAMS if counted else ())

  def maths_options(self, sizes: dict) -> dict:
    return {"count_units": int(sizes.get("count_units", 0)),
            "articulated_pitches": int(sizes.get("articulated_pitches", 0))}

  def trainer(self, run):
    return training.RNNNADETrainer(run)

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
