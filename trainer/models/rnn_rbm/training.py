"""The RNN-RBM's training under tf.distribute, run by trainer/training.

The maths is maths.py (`RNNRBM.cd_terms`: the RNN over the data, every
frame's CD-k negative sample at once, the free-energy gap F(v) - F(v*) as
the surrogate loss). The update, Adam, the RNN pretraining, the validation
schedule and the model/ folder are the temporal models' shared sequence
training (trainer/models/recurrent/training.py). This module adds:

- the CD-k update, with parallel scheduled sampling (--context_sampling);
- the optional start of W, b_v, b_h from a trained frame RBM (--init_from),
  before the first step only;
- validation: every --validate_every_epochs epochs a short AIS estimate of
  the NLL per frame on a fixed subset of the valid split's frames.

It must not read flags (trainer/task.py does).
"""

import typing

from absl import logging

from trainer import config as config_lib
from trainer.models import ais
from trainer.models import base
from trainer.models import files
from trainer.models.recurrent import training as sequence_training
from trainer.models.rnn_rbm import maths as rnn_rbm_lib

# The arrays of params.npz, named as the RNNRBM variables' attributes.
PARAMS = ("weights", "visible_bias", "hidden_bias", "w_uv", "w_uh", "w_vu",
          "w_uu", "b_u", "u0")
# The validation subset: the first valid (else eval) sequences, cut to this
# many frames each, until this many frames in all; 8 AIS chains per frame.
# Small enough for a few seconds per check on 2 cores at H=150.
_VALIDATION_FRAMES, _VALIDATION_CROP, _VALIDATION_CHAINS = 512, 128, 8


class RBMSequenceTrainer(sequence_training.SequenceTrainer):
  """One update on the CD surrogate (`RNNRBM.cd_terms`)."""

  PARAMS = PARAMS
  REPORTED: typing.ClassVar[dict] = {
      "free_energy_gap": "loss_sum",
      "reconstruction_error": "squared_error_sum"}

  def terms(self, frames, lengths, row_start) -> dict:
    return self.model.cd_terms(frames, lengths, self.config.cd_k,
                               self.config.seed, self.step, row_start,
                               self.context_rate())


def _load_frame_rbm(config, spec):
  """The --init_from frame RBM, checked against this run's data and sizes."""
  try:
    loaded = files.load_model(config.init_from)
    loaded.require("rbm", "--init_from")
  except (FileNotFoundError, ValueError) as e:
    raise base.SetupError(f"--init_from={config.init_from}: {e}") from None
  theirs, ours = loaded.dataset, spec
  fields = ("encoding", "low_note", "high_note", "steps_per_quarter")
  diffs = [f"{f}={getattr(theirs, f)} (data: {getattr(ours, f)})"
           for f in fields if getattr(theirs, f) != getattr(ours, f)]
  if theirs.num_timesteps != 1:
    diffs.append(f"num_timesteps={theirs.num_timesteps} (a frame RBM has 1)")
  if loaded.model.n_hidden != config.num_hidden:
    diffs.append(f"num_hidden={loaded.model.n_hidden} (this run: "
                 f"--num_hidden={config.num_hidden})")
  if diffs:
    raise base.SetupError(
        f"--init_from={config.init_from} is not a frame RBM of this data: "
        f"{', '.join(diffs)}; train one with --model=rbm on "
        "preprocess.main --num_timesteps=1 output of the same notes and grid.")
  return loaded.model


class _Validator:
  """The cheap early-stopping estimate: NLL per frame of a fixed subset."""

  def __init__(self, run: base.TrainingRun, frame_means, train_frames):
    self.split = sequence_training.checked_validation_split(run)
    self.subset = sequence_training.validation_subset(
        run.data_dir, run.spec, self.split, _VALIDATION_FRAMES,
        _VALIDATION_CROP)
    self.base = ais.base_rate_biases(frame_means, train_frames)
    self.config = config_lib.AISConfig(
        num_chains=_VALIDATION_CHAINS,
        num_betas=run.config.validation_ais_betas, seed=run.config.seed)

  def nll_per_frame(self, model) -> float | None:
    if self.subset is None:
      return None
    out = model.nll_ais(self.subset[0], self.subset[1], self.config, self.base)
    return out["nll_sum"] / out["num_frames"]


class RNNRBMTrainer(sequence_training.RecurrentTrainer):
  """The RNN-RBM: CD-k updates, the frame RBM start, AIS validation."""

  NAME = "rnn_rbm"
  SEQUENCE_TRAINER = RBMSequenceTrainer

  def __init__(self, run: base.TrainingRun):
    config = run.config
    if config.init_from:
      _load_frame_rbm(config, run.spec)  # fail before anything is written
    super().__init__(run)
    logging.info("RNN-RBM: sequences of <= %s frames, %d visible x %d "
                 "hidden, %d recurrent (%s), CD-%d",
                 config.sequence_length or "all", run.spec.n_columns,
                 config.num_hidden, config.num_hidden_recurrent,
                 config.recurrence, config.cd_k)

  def build_model(self):
    config = self.run.config
    return rnn_rbm_lib.RNNRBM(
        self.run.spec.n_columns, config.num_hidden,
        config.num_hidden_recurrent, unit_means=self.frame_means,
        seed=config.seed, zero_bias_projections=bool(config.init_from),
        recurrence=config.recurrence)

  def build_validator(self):
    return _Validator(self.run, self.frame_means, self.train_frames)

  def initialise(self) -> None:
    """The paper's starts, on a fresh run only (a checkpoint has them)."""
    config = self.run.config
    if config.init_from:
      self.model.load_rbm(_load_frame_rbm(config, self.run.spec))
      logging.info("W, b_v, b_h from the frame RBM in %s", config.init_from)
    super().initialise()
