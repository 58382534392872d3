r"""Held-out log-likelihood of a trained RBM, with log Z by AIS.

    python -m trainer.evaluate --model_dir=out/job/model --data_dir=out/dataset

Prints one JSON object: log Z (Annealed Importance Sampling) and its standard
error, the mean log-likelihood per window and per time step (frame) on --split,
the number of windows, and the same figures for an independent-Bernoulli
baseline fitted on the windows the model was trained on. 10,000 betas x 100
chains take about 20-30 s on 2 CPU cores at the seed's shape (V=2340, H=50).
The library function is trainer/evaluation.py:evaluate.
"""

import json

from absl import app
from absl import flags

from trainer import ais
from trainer import evaluation

_D = ais.AISConfig()
FLAGS = flags.FLAGS
flags.DEFINE_string("model_dir", None, "The model/ folder trainer.task wrote.")
flags.DEFINE_string("data_dir", None, "The --output_dir of preprocess.main.")
flags.DEFINE_enum("split", "eval", ["train", "eval"], "Which windows to score.")
flags.DEFINE_integer("ais_chains", _D.num_chains, "AIS chains.")
flags.DEFINE_integer("ais_betas", _D.num_betas, "AIS intermediate distributions.")
flags.DEFINE_integer("seed", _D.seed, "Seeds the AIS chains.")
flags.mark_flags_as_required(["model_dir", "data_dir"])


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
  try:
    config = ais.AISConfig(FLAGS.ais_chains, FLAGS.ais_betas, FLAGS.seed)
  except ValueError as e:
    raise app.UsageError(str(e)) from None
  result = evaluation.evaluate(FLAGS.model_dir, FLAGS.data_dir, FLAGS.split,
                               config)
  print(json.dumps(result, indent=1))


if __name__ == "__main__":
  app.run(main)
