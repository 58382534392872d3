r"""Train a model (--model: rbm, rnn_rbm, rnn_nade, bernoulli) under tf.distribute.

    python -m trainer.task --data_dir=out/dataset --job_dir=out/job
    python -m trainer.task --model=rnn_rbm --data_dir=PIECES --job_dir=out/rnn

The default model is the window RBM: 200 hidden units, CD-1 with momentum
and weight decay, lr 0.005, batch 100, 200 epochs (--preset=original: the
original post's 50 units, plain SGD). Each model has its own defaults for the
flags not given (trainer/models/<name>/settings.py). On Vertex AI, --job_dir
may be left out: AIP_MODEL_DIR, AIP_CHECKPOINT_DIR and AIP_TENSORBOARD_LOG_DIR
are used. Rerunning the same command resumes. The flags are
trainer/config.py's TrainConfig and TrainDirs; the loop is
trainer/training/loop.py.
"""

import json

from common import cli
from trainer import config as config_lib

cli.define_flags(config_lib.TrainDirs, required=["data_dir"])
cli.define_flags(config_lib.TrainConfig)


def _from_data(given: set) -> frozenset:
  """The defaults the corpus may change: those the user did not give."""
  out = set()
  if "batch_size" not in given:
    out.add("batch_size")
  if not given & {"epochs", "max_steps"}:
    out.add("epochs")
  return frozenset(out)


def main(argv):
  del argv  # cli.run rejects stray arguments
  dirs = cli.config_from_flags(config_lib.TrainDirs)
  # Each model's defaults for the flags the user did not give (config.py).
  flags = cli.flags.FLAGS
  given = {name for name in flags if flags[name].present}
  config = cli.config_from_flags(
      config_lib.TrainConfig,
      **config_lib.model_defaults(flags.model, given))
  # TensorFlow only once the flags are known to be good.
  from trainer.training import loop  # pylint: disable=g-import-not-at-top
  metrics = loop.train_and_evaluate(
      config, dirs.data_dir, dirs.job_dir, model_dir=dirs.model_dir,
      checkpoint_dir=dirs.checkpoint_dir, tensorboard_dir=dirs.tensorboard_dir,
      from_data=_from_data(given))
  print(json.dumps(metrics, sort_keys=True))


if __name__ == "__main__":
  cli.run(main)
