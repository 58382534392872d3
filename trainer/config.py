"""The training configuration: one frozen dataclass, defaults = the seed's run.

    python -m trainer.task --data_dir=out/dataset --job_dir=out/job

trains 50 hidden units by CD-1, lr 0.005, batch 100, 200 epochs, as the seed
did. A smoke run is the same command with --max_steps (e.g. 200).
"""

import dataclasses

# Hinton's practical guide: momentum 0.5 while the weights settle, then 0.9.
MOMENTUM_EARLY, MOMENTUM_LATE, MOMENTUM_SWITCH_EPOCH = 0.5, 0.9, 5


@dataclasses.dataclass(frozen=True)
class TrainConfig:
  """Hyper-parameters and run control of one training job."""

  # Hidden units; the seed uses 50.
  num_hidden: int = 50
  # Step size on the mean CD statistic over the global batch.
  learning_rate: float = 0.005
  # GLOBAL batch: split evenly across replicas (must divide by their number).
  batch_size: int = 100
  # Passes over the training windows.
  epochs: int = 200
  # Gibbs steps per update (CD-k / PCD-k).
  cd_k: int = 1
  # Persistent CD: negative chains carry over between updates (Tieleman 2008).
  persistent: bool = False
  # Momentum 0.5 for the first 5 epochs, then 0.9; off (0) in the seed.
  momentum: bool = False
  # L2 weight cost on W (not biases), e.g. 1e-4 as the practical guide suggests.
  weight_decay: float = 0.0
  # Seeds the weights, the data order and every Gibbs sample.
  seed: int = 0
  # Save a checkpoint every this many steps (and at the end).
  steps_per_checkpoint: int = 1000
  # When > 0, the run's total number of updates (replaces --epochs); smoke
  # runs and benchmarks use it. 0: epochs * (train windows // batch_size).
  max_steps: int = 0
  # A progress line every this many steps.
  log_every_steps: int = 200
  # TensorBoard scalars/images every this many steps.
  summary_every_steps: int = 1000

  def __post_init__(self):
    positive = ("num_hidden", "batch_size", "epochs", "cd_k",
                "steps_per_checkpoint", "log_every_steps", "summary_every_steps")
    for name in positive:
      if getattr(self, name) < 1:
        raise ValueError(f"--{name}={getattr(self, name)} must be >= 1.")
    if not self.learning_rate > 0:
      raise ValueError(f"--learning_rate={self.learning_rate} must be > 0 "
                       "(the seed uses 0.005).")
    for name in ("weight_decay", "max_steps"):
      if getattr(self, name) < 0:
        raise ValueError(f"--{name}={getattr(self, name)} must be >= 0.")
    if self.cd_k > 500:
      raise ValueError(f"--cd_k={self.cd_k}: at most 500 Gibbs steps.")

  def momentum_at(self, epoch: int) -> float:
    """The momentum of `epoch` (0-based)."""
    if not self.momentum:
      return 0.0
    return MOMENTUM_EARLY if epoch < MOMENTUM_SWITCH_EPOCH else MOMENTUM_LATE

  def shape_fields(self) -> tuple[str, ...]:
    """Fields that fix the checkpoint's shapes: a resumed run must keep them.

    num_hidden sizes W; persistent adds the chains variable, whose rows are
    the global batch.
    """
    return ("num_hidden", "persistent") + (
        ("batch_size",) if self.persistent else ())
