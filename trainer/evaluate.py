r"""Held-out log-likelihood of a trained RBM, with log Z by AIS.

    python -m trainer.evaluate --model_dir=out/job/model --data_dir=out/dataset

Prints one JSON object: log Z (Annealed Importance Sampling) and its standard
error, the mean log-likelihood per window and per time step (frame) on --split,
the number of windows, and the same figures for an independent-Bernoulli
baseline fitted on the windows the model was trained on. An RNN-RBM
(--model=rnn_rbm) is scored per frame, each frame's log Z by AIS (default
16 chains x 1,500 betas per frame unless --ais_chains/--ais_betas are given). 10,000 betas x 100
chains take about 20-30 s on 2 CPU cores at the seed's shape (V=2340, H=50).
The flags are trainer/config.py's EvaluateData and AISConfig; the library
function is trainer/evaluate_lib.py:evaluate.
"""

import dataclasses
import json

from common import cli
from trainer import config as config_lib

cli.define_flags(config_lib.EvaluateData, required=["model_dir", "data_dir"])
cli.define_flags(config_lib.AISConfig)


def main(argv):
  del argv  # cli.run rejects stray arguments
  what = cli.config_from_flags(config_lib.EvaluateData)
  ais_config = cli.config_from_flags(config_lib.AISConfig)
  from trainer import evaluate_lib  # pylint: disable=g-import-not-at-top
  from trainer import export  # pylint: disable=g-import-not-at-top
  if export.model_kind(what.model_dir) == export.RNN_RBM:
    # Per-frame AIS: the RNN-RBM's defaults for the AIS flags not given.
    flags = cli.flags.FLAGS
    given = {"num_chains": flags["ais_chains"].present,
             "num_betas": flags["ais_betas"].present}
    ais_config = dataclasses.replace(ais_config, **{
        k: v for k, v in config_lib.RNN_RBM_AIS_DEFAULTS.items()
        if not given[k]})
  result = evaluate_lib.evaluate(what.model_dir, what.data_dir, what.split,
                                 ais_config)
  print(json.dumps(result, indent=1))


if __name__ == "__main__":
  cli.run(main)
