"""The RNN-RBM's own settings (no TensorFlow: deploy/ and the CLIs read it)."""

import dataclasses

from common.cli import setting

LR_SCHEDULES = ("constant", "cosine")
# The RNN's cell (recurrent/maths.py): the paper's tanh unit, or a gated
# recurrent unit (Cho et al. 2014), whose gates let the state hold what a
# piece established (its key, its texture) over many frames.
RECURRENCES = ("tanh", "gru")


def noise_streams_per_step(cd_k: int, context_sampling: bool) -> int:
  """Noise families one training step of CD-k draws: the negatives' 2k + 1,
  and with scheduled sampling the context samples' 2k + 1 and the choice's
  one (maths.RNNRBM.cd_terms)."""
  return 4 * cd_k + 3 if context_sampling else 2 * cd_k + 1
# Gibbs steps per generated frame: two streams each within the model's 2^12
# streams per frame (maths.py; a test checks).
MAX_FRAME_GIBBS_STEPS = 2**11 - 1

# This model's values for the job's shared settings, applied to the flags the
# user did not give: the Theano tutorial's sizes and CD-15, with Adam (the
# window RBM's momentum and weight decay are not this model's), cosine decay
# and whole pieces in batches of 8; lr 3e-3 and 30 epochs with the best of
# every 2nd kept (benchmarks/RESULTS.md, the chorales benchmark).
DEFAULTS = {"num_hidden": 150, "cd_k": 15, "learning_rate": 3e-3,
            "batch_size": 8, "lr_schedule": "cosine", "epochs": 30,
            "pretrain_rnn_epochs": 3, "validate_every_epochs": 2,
            "momentum": False, "weight_decay": 0.0}
# One AIS run per frame: fewer chains and betas than one RBM's single log Z
# (16 x 1,500 were within ~0.001 nats/frame of 6,000 betas on the chorales).
AIS_DEFAULTS = {"num_chains": 16, "num_betas": 1500}


@dataclasses.dataclass(frozen=True)
class Training:
  """The RNN-RBM's own training settings."""

  num_hidden_recurrent: int = setting(
      100, "rnn_rbm, rnn_nade: units of the RNN state u(t).")
  recurrence: str = setting(
      "tanh", "rnn_rbm, rnn_nade: the RNN's cell: tanh (the paper's) or gru "
      "(gated: 3x the RNN's weights; the state can keep a piece's key and "
      "texture over many frames).", choices=RECURRENCES)
  sequence_length: int = setting(
      100, "rnn_rbm, rnn_nade: training crops of at most this many frames (a random "
      "window of each piece per epoch); 0: whole sequences.")
  lr_schedule: str = setting(
      "constant", "rnn_rbm, rnn_nade: constant, or cosine decay of --learning_rate to 0 "
      "over the run (Adam).", choices=LR_SCHEDULES)
  clip_norm: float = setting(
      10.0, "rnn_rbm, rnn_nade: clip the gradient's global norm to this (0: no "
      "clipping).")
  init_from: str | None = setting(
      None, "rnn_rbm: a model/ folder of a frame RBM (--model=rbm trained on "
      "1-step windows, preprocess.main --num_timesteps=1, same notes and "
      "grid) whose W, b_v, b_h start the RNN-RBM, as the paper pretrains; "
      "W_uv, W_uh then start at zero.")
  pretrain_rnn_epochs: int = setting(
      0, "rnn_rbm, rnn_nade: first train a plain RNN to predict the next frame (exact "
      "cross-entropy) for this many epochs and copy its weights in, as the "
      "paper does (0: no RNN pretraining).")
  pretrain_rnn_learning_rate: float = setting(
      0.01, "rnn_rbm, rnn_nade: Adam's learning rate of that RNN pretraining (the "
      "RNN learns from scratch: a larger step than the RNN-RBM's).")
  context_sampling: float = setting(
      0.2, "rnn_rbm, rnn_nade: parallel scheduled sampling against drift in "
      "long pieces: this share of the history frames the RNN reads in "
      "training are the model's own samples instead of the data's (rising "
      "from 0 over the first half of the run); 0: the data only, as the "
      "paper trains (rnn_rbm: 0.2 costs ~0.09 nats/frame on the chorales). "
      "Costs a second pass of the RNN and one sample per frame per step.")
  validate_every_epochs: int = setting(
      5, "rnn_rbm, rnn_nade: every this many epochs, estimate the NLL per frame "
      "of a fixed subset of held-out frames (rnn_rbm: by a short AIS; "
      "rnn_nade: exactly) and keep the best "
      "checkpoint; the best, not the last, is exported (early stopping).")
  validation_ais_betas: int = setting(
      300, "rnn_rbm: AIS betas of that cheap validation estimate (it is "
      "biased, but the same at every check).")

  def check_training(self) -> None:
    for name in ("num_hidden_recurrent", "validate_every_epochs"):
      if getattr(self, name) < 1:
        raise ValueError(f"--{name}={getattr(self, name)} must be >= 1.")
    for name in ("sequence_length", "clip_norm", "pretrain_rnn_epochs"):
      if getattr(self, name) < 0:
        raise ValueError(f"--{name}={getattr(self, name)} must be >= 0.")
    if not self.pretrain_rnn_learning_rate > 0:
      raise ValueError("--pretrain_rnn_learning_rate="
                       f"{self.pretrain_rnn_learning_rate} must be > 0.")
    if self.validation_ais_betas < 2:
      raise ValueError(f"--validation_ais_betas={self.validation_ais_betas} "
                       "must be >= 2.")
    if not 0.0 <= self.context_sampling <= 1.0:
      raise ValueError(f"--context_sampling={self.context_sampling} must be "
                       "in [0, 1].")
    streams = noise_streams_per_step(self.cd_k, bool(self.context_sampling))
    if self.model == "rnn_rbm" and streams > 1024:
      raise ValueError(f"--cd_k={self.cd_k}: the RNN-RBM uses {streams} "
                       "noise streams per step here, at most 1024.")


def shape_fields(config) -> tuple[str, ...]:
  """Fields that fix the checkpoint's shapes."""
  del config
  return ("num_hidden", "num_hidden_recurrent", "recurrence")


@dataclasses.dataclass(frozen=True)
class Sampling:
  """How the RNN-RBM writes a piece: frame by frame, --num_frames long."""

  gibbs_steps_per_frame: int = setting(
      25, "rnn_rbm: Gibbs steps in each frame's RBM (the Theano tutorial's "
      "25). A window RBM's are --gibbs_steps.")

  def check_sampling(self) -> None:
    if not 1 <= self.gibbs_steps_per_frame <= MAX_FRAME_GIBBS_STEPS:
      raise ValueError(f"--gibbs_steps_per_frame={self.gibbs_steps_per_frame} "
                       f"must be in 1..{MAX_FRAME_GIBBS_STEPS}.")
