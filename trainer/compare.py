r"""Compare generated samples with the data they should sound like.

    python -m trainer.compare --samples=out/samples --data=out/dataset
    python -m trainer.compare --samples=gs://b/job/samples \
        --data='data/chorales/*.mid' --dataset_dir=out/dataset \
        --output=out/comparison.json

Samples and MIDI data are read on the dataset's grid and quantisation (else
the one the samples' generation.json records). A dataset of whole pieces
(an RNN-RBM's) gives one data piece per sequence and checks copies of 4-bar
spans; --match_lengths and --transposed compare long samples like with like.

Prints one summary line (features that meet the data, the worst ones, pieces
that drift dense, copies of training windows) and writes the JSON and its
figure (a .png next to it); refreshes the samples' gallery when
trainer.generate wrote one. The library
is trainer/comparison/lib.py, the feature maths trainer/comparison/features.py.
"""

from absl import logging

from common import cli
from trainer.comparison import lib as compare_lib

cli.define_flags(compare_lib.CompareConfig, required=["samples", "data"])


def main(argv):
  del argv  # cli.run rejects stray arguments
  config = cli.config_from_flags(compare_lib.CompareConfig)
  result = compare_lib.compare(config)
  for where in ("json", "figure", "gallery"):
    if result.get(where):
      logging.info("%s: %s", where, result[where])
  if "json" not in result:
    print("compare: pass --output=FILE.json to keep the figures (the samples "
          "folder was not written by trainer.generate)")
  print(result["summary"])


if __name__ == "__main__":
  cli.run(main)
