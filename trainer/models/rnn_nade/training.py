"""The RNN-NADE's training under tf.distribute, run by trainer/training.

Everything but the loss is shared with the RNN-RBM (recurrent/training.py):
the global batch split over replicas with sums divided once by the global
number of real frames, Adam with clipping and the cosine schedule, the RNN
pretraining, early stopping on the valid split and the model/ folder. The
loss is the exact negative log-likelihood (maths.py `RNNNADE.nll_terms`),
with the history the RNN reads partly the model's own frames
(--context_sampling), so a step reports the training NLL per frame itself;
the validation is exact too, on more frames than the RNN-RBM's AIS can
afford.

It must not read flags (trainer/task.py does).
"""

import typing

from absl import logging

from trainer.models import base
from trainer.models.rnn_nade import maths
from trainer.models.recurrent import training as sequence_training

# The arrays of params.npz, named as the RNNNADE variables' attributes.
PARAMS = ("weights", "output_weights", "visible_bias", "hidden_bias", "w_uv",
          "w_uh", "w_vu", "w_uu", "b_u", "u0")
# The validation subset (exact, so larger than the RNN-RBM's AIS one): the
# first valid sequences, cut to 512 frames each, until 4,096 frames.
_VALIDATION_FRAMES, _VALIDATION_CROP = 4096, 512


class NADESequenceTrainer(sequence_training.SequenceTrainer):
  """One update on the exact NLL (no CD chain), with scheduled sampling."""

  PARAMS = PARAMS
  REPORTED: typing.ClassVar[dict] = {"nll": "loss_sum"}

  def terms(self, frames, lengths, row_start) -> dict:
    return self.model.nll_terms(frames, lengths, self.config.seed, self.step,
                                row_start, self.context_rate())


class _ExactValidator:
  """NLL per frame of a fixed subset of the valid split, exactly."""

  def __init__(self, run: base.TrainingRun):
    split = sequence_training.checked_validation_split(run)
    self.subset = sequence_training.validation_subset(
        run.data_dir, run.spec, split, _VALIDATION_FRAMES, _VALIDATION_CROP)

  def nll_per_frame(self, model) -> float | None:
    if self.subset is None:
      return None
    frames, lengths = self.subset
    return float(model.nll_rows(frames, lengths.numpy()).sum() /
                 lengths.numpy().sum())


def articulated_pitches(roll_spec, articulation_rules: bool) -> int:
  """The model's articulated_pitches: the roll's pitches with
  --articulation_rules on an onoff roll, else 0 (a roll without articulate
  columns has no rule to follow)."""
  return roll_spec.n_pitches if articulation_rules and (
      roll_spec.encoding == "onoff") else 0


class RNNNADETrainer(sequence_training.RecurrentTrainer):
  """The RNN-NADE in the training loop."""

  NAME = "rnn_nade"
  SEQUENCE_TRAINER = NADESequenceTrainer

  def __init__(self, run: base.TrainingRun):
    super().__init__(run)
    config = run.config
    logging.info("RNN-NADE: sequences of <= %s frames, %d visible x %d "
                 "hidden, %d recurrent (%s)%s%s, exact likelihood",
                 config.sequence_length or "all", run.spec.n_columns,
                 config.num_hidden, config.num_hidden_recurrent,
                 config.recurrence,
                 ", a count head" if config.count_head else "",
                 ", the codec's articulation rules"
                 if config.articulation_rules else "")

  def build_model(self):
    config = self.run.config
    return maths.RNNNADE(self.run.spec.n_columns, config.num_hidden,
                         config.num_hidden_recurrent,
                         unit_means=self.frame_means, seed=config.seed,
                         recurrence=config.recurrence,
                         count_units=(self.run.spec.roll_spec.n_pitches
                                      if config.count_head else 0),
                         articulated_pitches=articulated_pitches(
                             self.run.spec.roll_spec,
                             config.articulation_rules))

  def build_validator(self):
    return _ExactValidator(self.run)
