r"""Preprocess a MIDI corpus on Dataflow: preprocess.main with the cloud's options.

    python -m deploy.dataflow --project=P --region=us-central1 --bucket=B \
        --input='gs://B/corpus/*.mid' --output_dir=gs://B/dataset \
        [--machine_type=n1-standard-2 --max_num_workers=10] [--dry_run] \
        [any flag of preprocess.main, e.g. --transpose=3] [more Beam options]

Adds the Dataflow options (runner, project, region, temp and staging
locations, this repository's setup.py, job name, worker machine type, max
workers) to preprocess.main's own flags, then runs the same pipeline function
(preprocess/pipeline.py `run_pipeline`) until the job finishes. --dry_run
prints the equivalent `python -m preprocess.main ...` command instead. Every
flag is generated from a dataclass (preprocess/config.py, specs.DataflowConfig);
the options are built by deploy/specs.py, the run started by deploy/launch.py.
Exit codes: 0 done, 2 usage error, 1 failure.
"""

import os
import time

from absl import flags

from common import cli
from deploy import launch
from deploy import specs
from preprocess import config as config_lib
from preprocess import outputs
from preprocess import pipeline
from preprocess import stats

FLAGS = flags.FLAGS
cli.define_flags(config_lib.RunConfig, required=["input", "output_dir"])
cli.define_flags(config_lib.PreprocessConfig)
cli.define_flags(specs.DataflowConfig)
# Not settings of the job: where its temp files go, and whether to run it.
flags.DEFINE_string("bucket", None, "Bucket for temp and staging files "
                    "(gs://BUCKET/dataflow/tmp, .../staging).")
flags.DEFINE_bool("dry_run", False, "Print the preprocess.main command; run "
                  "nothing.")

SETUP_FILE = os.path.join(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))), "setup.py")


def dataflow_config(run: config_lib.RunConfig) -> specs.DataflowConfig:
  """The DataflowConfig from the flags, temp folders derived from --bucket."""
  temp, staging = FLAGS.temp_location, FLAGS.staging_location
  if FLAGS.bucket and not temp:
    temp = specs.bucket_url(FLAGS.bucket) + "/dataflow/tmp"
    staging = staging or specs.bucket_url(FLAGS.bucket) + "/dataflow/staging"
  return cli.config_from_flags(
      specs.DataflowConfig, input=run.input, eval_input=run.eval_input,
      valid_input=run.valid_input, output_dir=run.output_dir,
      temp_location=temp, staging_location=staging, setup_file=SETUP_FILE,
      job_name=FLAGS.job_name or time.strftime("rbm-preprocess-%Y%m%d-%H%M%S",
                                               time.gmtime()))


def main(argv):
  extra = argv[1:]  # not ours, not preprocess.main's: more Beam options
  runner = [a for a in extra if a.split("=", 1)[0] == "--runner"]
  if runner:
    raise cli.UsageError(f"{runner[0]}: deploy.dataflow always runs on "
                         "Dataflow; run preprocess.main for other runners.")
  run = cli.config_from_flags(config_lib.RunConfig)
  preprocess_config = cli.config_from_flags(config_lib.PreprocessConfig)
  layout_given = config_lib.layout_given(
      cli.explicit_fields(config_lib.PreprocessConfig))
  config = dataflow_config(run)
  # A split given twice (--eval_input and --eval_fraction) fails here, not
  # after the job was staged (run_pipeline applies the same rule).
  config_lib.with_explicit_splits(preprocess_config, run.eval_input,
                                  run.valid_input)
  # Unknown Beam options are an error now, not after a job was staged.
  pipeline.beam_options(specs.dataflow_args(config) + extra)
  if FLAGS.dry_run:
    given = cli.flag_args(preprocess_config) + cli.flag_args(
        run, skip=("input", "eval_input", "valid_input", "output_dir"))
    print(specs.shell_join(specs.preprocess_command(config, given, extra)))
    return
  print(f"Dataflow job {config.job_name} starting; watch it at "
        f"{specs.dataflow_console_url(config.project, config.region)}",
        flush=True)
  counts = launch.dataflow_job(config, preprocess_config, extra,
                               overwrite=run.overwrite,
                               layout_given=layout_given)
  print(stats.summary(counts, config.output_dir,
                      outputs.read_spec(config.output_dir).fitted))


if __name__ == "__main__":
  cli.run(main, known_only=True)
