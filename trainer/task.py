r"""Train the RBM: contrastive divergence under tf.distribute.

    python -m trainer.task --data_dir=out/dataset --job_dir=out/job

Defaults are the seed's (50 hidden, CD-1, lr 0.005, batch 100, 200 epochs).
On Vertex AI, --job_dir may be left out: AIP_MODEL_DIR, AIP_CHECKPOINT_DIR and
AIP_TENSORBOARD_LOG_DIR are used. Rerunning the same command resumes.
This file is intentionally kept short: the loop is trainer/train.py.
"""

import dataclasses
import json

from absl import app
from absl import flags

from trainer import config as config_lib
from trainer import train

_D = config_lib.TrainConfig()
FLAGS = flags.FLAGS
flags.DEFINE_string("data_dir", None, "The --output_dir of preprocess.main.")
flags.DEFINE_string("job_dir", None, "Run folder: model/, checkpoints/, tensorboard/.")
flags.DEFINE_string("model_dir", None, "Default: AIP_MODEL_DIR or JOB_DIR/model.")
flags.DEFINE_string("checkpoint_dir", None,
                    "Default: AIP_CHECKPOINT_DIR or JOB_DIR/checkpoints.")
flags.DEFINE_string("tensorboard_dir", None,
                    "Default: AIP_TENSORBOARD_LOG_DIR or JOB_DIR/tensorboard.")
flags.DEFINE_integer("num_hidden", _D.num_hidden, "Hidden units.")
flags.DEFINE_float("learning_rate", _D.learning_rate, "Learning rate.")
flags.DEFINE_integer("batch_size", _D.batch_size, "Global batch size.")
flags.DEFINE_integer("epochs", _D.epochs, "Passes over the training windows.")
flags.DEFINE_integer("cd_k", _D.cd_k, "Gibbs steps per update.")
flags.DEFINE_bool("persistent", _D.persistent, "Persistent CD (PCD).")
flags.DEFINE_bool("momentum", _D.momentum, "Momentum 0.5, then 0.9 after 5 epochs.")
flags.DEFINE_float("weight_decay", _D.weight_decay, "L2 cost on the weights.")
flags.DEFINE_integer("seed", _D.seed, "Seeds weights, data order, sampling.")
flags.DEFINE_integer("steps_per_checkpoint", _D.steps_per_checkpoint,
                     "Checkpoint every N steps.")
flags.DEFINE_integer("max_steps", _D.max_steps,
                     "When > 0: total updates, replacing --epochs.")
flags.DEFINE_integer("log_every_steps", _D.log_every_steps, "Progress line every N steps.")
flags.DEFINE_integer("summary_every_steps", _D.summary_every_steps,
                     "TensorBoard summaries every N steps.")
flags.mark_flag_as_required("data_dir")


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
  try:
    config = config_lib.TrainConfig(**{
        f.name: FLAGS[f.name].value
        for f in dataclasses.fields(config_lib.TrainConfig)})
  except ValueError as e:
    raise app.UsageError(str(e)) from None
  try:
    metrics = train.train_and_evaluate(
        config, FLAGS.data_dir, FLAGS.job_dir, model_dir=FLAGS.model_dir,
        checkpoint_dir=FLAGS.checkpoint_dir,
        tensorboard_dir=FLAGS.tensorboard_dir)
  except (train.SetupError, train.NonFiniteError, FileNotFoundError) as e:
    # The user's to fix, and the message says how: no traceback.
    raise SystemExit(f"trainer.task: {e}") from None
  print(json.dumps(metrics, sort_keys=True))


if __name__ == "__main__":
  app.run(main)
