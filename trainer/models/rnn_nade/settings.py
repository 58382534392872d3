"""The RNN-NADE's settings (no TensorFlow: deploy/ and the CLIs read it).

It shares the RNN-RBM's recurrence, its sequence training and its sampler,
so it reads the RNN-RBM's settings of those (READS); its own is the count
head. Its frames need no CD chain (--cd_k is unused) and no AIS.
"""

import dataclasses

from common.cli import setting

# The RNN-RBM's own settings this model reads too (trainer/config.py lets
# them differ from their defaults for --model=rnn_nade).
READS = ("num_hidden_recurrent", "recurrence", "sequence_length", "lr_schedule",
         "clip_norm", "pretrain_rnn_epochs", "pretrain_rnn_learning_rate",
         "validate_every_epochs", "context_sampling")

# The RNN-RBM's sizes, batches of whole pieces, schedule and pretraining;
# Adam at 1e-2 on the exact log-likelihood: on the chorales, 30 epochs reach
# a valid NLL of 4.76 nats/frame at 1e-2, 5.69 at 3e-3 and 8.49 at 1e-3,
# still falling at the end of each (benchmarks/RESULTS.md, the RNN-NADE).
# A GRU for the RNN: it meets the published RNN-NADE on the three polyphonic
# benchmarks where the tanh RNN meets none, and its samples meet the data on
# more features of the six styles; with scheduled sampling, as its pieces
# otherwise climb into dense textures (Piano-midi.de: 73% of the samples
# drift without it, 0.5% with it; benchmarks/RESULTS.md, the gated RNN).
# The count head: on the six styles its samples meet the data on 59
# features of 84 against 54 without it (MuseData 13 against 9,
# Piano-midi.de 8 against 5, Monteverdi and Nottingham one fewer), no corpus
# drifts dense (Piano-midi.de 0.0% against 4.3%), and the chorales' frames
# hold four voices as Bach's do (4 pitches in 89% of the steps, Bach 89%;
# 55% without it, counted by notes; benchmarks/RESULTS.md, the count head
# and one key per pitch).
# The articulation rules, on the styles with onoff rolls (chorales, Essen,
# Monteverdi; the piano-roll corpora have no articulate columns): held-out
# NLL 4.67 -> 4.37 (chorales), 0.86 -> 0.85, 4.78 -> 4.51 nats/frame;
# features met 11 -> 11, 10 -> 11, 10 -> 10; the chorales' re-strikes +57%
# -> +26% of Bach's; Monteverdi's dense drift 3.2% -> 2.5% (data 2.1%), the
# chorales' 1.4% -> 3.4% (data 1.1%) (benchmarks/RESULTS.md, the
# articulation rules).
DEFAULTS = {"num_hidden": 150, "learning_rate": 1e-2, "batch_size": 8,
            "recurrence": "gru", "context_sampling": 0.2, "count_head": True,
            "articulation_rules": True,
            "lr_schedule": "cosine", "epochs": 30, "pretrain_rnn_epochs": 3,
            "validate_every_epochs": 2, "momentum": False,
            "weight_decay": 0.0}
AIS_DEFAULTS = {}  # its likelihood is exact
# A default run (no --epochs or --max_steps) makes between these many
# updates, whatever the corpus's size: 30 epochs are 1,050 on the chorales,
# 150 on Monteverdi's 40 training madrigals (too few to learn from) and
# 25,500 on Essen's 6,801 tunes (about 70 minutes on 2 cores; the job's
# 20,000-update cap is the window RBM's, whose updates are far cheaper).
# A floor of 3,000 met no more features of the six styles, doubled three
# demos' minutes and let Piano-midi.de drift (benchmarks/RESULTS.md, "more
# updates, tried and not kept").
DEFAULT_UPDATES = (1_000, 4_000)


@dataclasses.dataclass(frozen=True)
class Training:
  """The RNN-NADE's own setting (the rest: READS)."""

  count_head: bool = setting(
      False, "rnn_nade: draw each frame's number of sounding pitches first "
      "(a softmax over 0..pitches given the history), then its notes given "
      "that number; the likelihood stays exact.")

  articulation_rules: bool = setting(
      False, "rnn_nade, onoff rolls: the articulate units the codec decides "
      "are certain (a silent pitch is not struck; a pitch that starts "
      "sounding is), so every frame drawn is one a MIDI file can give and no "
      "probability goes to the others; the likelihood stays exact.")

  def check_training(self) -> None:
    pass


def shape_fields(config) -> tuple[str, ...]:
  """Fields that fix the checkpoint's shapes."""
  del config
  return ("num_hidden", "num_hidden_recurrent", "recurrence", "count_head",
          "articulation_rules")


@dataclasses.dataclass(frozen=True)
class Sampling:
  """No settings of its own: a frame is drawn exactly, unit by unit."""

  def check_sampling(self) -> None:
    pass
