"""The RNN-RBM as a registered model (trainer/models/__init__.py).

Boulanger-Lewandowski, Bengio & Vincent (ICML 2012): an RBM per frame whose
biases follow an RNN over the piece so far; trained on sequences (whole
pieces or windows) by CD-k with Adam, validated by AIS; samples are pieces
written frame by frame. Maths in maths.py, training in training.py, sampling
in sampling.py, likelihood in likelihood.py; the parts it shares with the
RNN-NADE (the recurrence, sequence training, scoring loop, sampler and this
model's base) in trainer/models/recurrent/.
"""

from trainer.models.recurrent import model as recurrent_model
from trainer.models.rnn_rbm import likelihood
from trainer.models.rnn_rbm import maths
from trainer.models.rnn_rbm import sampling
from trainer.models.rnn_rbm import training


class RNNRBMModel(recurrent_model.RecurrentModel):
  """See the module docstring."""

  name = "rnn_rbm"
  title = sampling.TITLE
  MATHS = maths.RNNRBM
  PARAMS = training.PARAMS

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
