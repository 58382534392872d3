r"""Preprocess a MIDI corpus into TFRecord piano-roll windows (Apache Beam).

    python -m preprocess.main --input='data/chorales/*.mid' --output_dir=out/dataset
    python -m preprocess.main --input='jsb/train/*.mid' \
        --valid_input='jsb/valid/*.mid' --eval_input='jsb/test/*.mid' ...

Flags not defined here go to Beam (--runner, --direct_num_workers, --project,
--region, --temp_location, --setup_file, ...); DirectRunner by default. On
Dataflow, --setup_file defaults to this project's setup.py so workers install
the package. The flags are generated from preprocess/config.py; the pipeline
is preprocess/pipeline.py. Exit codes: 0 done, 2 usage error, 1 failure.
"""

from common import cli
from preprocess import config as config_lib
from preprocess import outputs
from preprocess import pipeline
from preprocess import stats

cli.define_flags(config_lib.RunConfig, required=["input", "output_dir"])
cli.define_flags(config_lib.PreprocessConfig)


def main(argv):
  run = cli.config_from_flags(config_lib.RunConfig)
  config = cli.config_from_flags(config_lib.PreprocessConfig)
  layout_given = config_lib.layout_given(
      cli.explicit_fields(config_lib.PreprocessConfig))
  options = pipeline.beam_options(argv[1:])  # the flags absl did not know
  counts = pipeline.run_pipeline(list(run.input), run.output_dir, config,
                                 options, overwrite=run.overwrite,
                                 eval_inputs=list(run.eval_input),
                                 valid_inputs=list(run.valid_input),
                                 layout_given=layout_given)
  print(stats.summary(counts, run.output_dir,
                      outputs.read_spec(run.output_dir).fitted))


if __name__ == "__main__":
  cli.run(main, known_only=True)
