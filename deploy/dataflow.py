r"""Preprocess a MIDI corpus on Dataflow: preprocess.main with the cloud's options.

    python -m deploy.dataflow --project=P --region=us-central1 --bucket=B \
        --input='gs://B/corpus/*.mid' --output_dir=gs://B/dataset \
        [--machine_type=n1-standard-2 --max_num_workers=10] [--dry_run] \
        [any flag of preprocess.main, e.g. --transpose=3] [more Beam options]

Adds the Dataflow options (runner, project, region, temp and staging
locations, this repository's setup.py, job name, worker machine type, max
workers) to preprocess.main's own flags, then runs the same pipeline function
(preprocess/pipeline.py `run_pipeline`) until the job finishes. --dry_run
prints the equivalent `python -m preprocess.main ...` command instead. The
options are built by deploy/specs.py, the run started by deploy/launch.py.
"""

import dataclasses
import os
import time

from absl import app
from absl import flags

from deploy import launch
from deploy import specs
from preprocess import main as _preprocess_main  # pylint: disable=unused-import  # defines its flags
from preprocess import pipeline

FLAGS = flags.FLAGS
_D = {f.name: f.default for f in dataclasses.fields(specs.DataflowConfig)
      if f.default is not dataclasses.MISSING}
flags.DEFINE_string("project", None, "Google Cloud project ID.")
flags.DEFINE_string("region", None, "Dataflow region, e.g. us-central1.")
flags.DEFINE_string("bucket", None, "Bucket for temp and staging files "
                    "(gs://BUCKET/dataflow/tmp, .../staging).")
flags.DEFINE_string("temp_location", None, "gs:// temp folder (default: from "
                    "--bucket).")
flags.DEFINE_string("staging_location", None, "gs:// staging folder (default: "
                    "TEMP_LOCATION/staging).")
flags.DEFINE_string("machine_type", _D["machine_type"], "Worker machine type.")
flags.DEFINE_integer("max_num_workers", _D["max_num_workers"],
                     "Autoscaling ceiling.")
flags.DEFINE_string("job_name", None, "Default: rbm-preprocess-UTCTIME.")
flags.DEFINE_string("service_account_email", "", "Workers run as this "
                    "service account.")
flags.DEFINE_bool("dry_run", False, "Print the preprocess.main command; run "
                  "nothing.")

SETUP_FILE = os.path.join(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))), "setup.py")
# Our flags that are also preprocess.main's and end up in the command.
_PREPROCESS_FLAGS = [f.name for f in dataclasses.fields(
    pipeline.PreprocessConfig)] + ["overwrite"]


def main(argv):
  extra = argv[1:]  # not ours, not preprocess.main's: more Beam options
  runner = [a for a in extra if a.split("=", 1)[0] == "--runner"]
  if runner:
    raise app.UsageError(f"{runner[0]}: deploy.dataflow always runs on "
                         "Dataflow; run preprocess.main for other runners.")
  try:
    temp, staging = FLAGS.temp_location or "", FLAGS.staging_location or ""
    if FLAGS.bucket and not temp:
      temp = specs.bucket_url(FLAGS.bucket) + "/dataflow/tmp"
      staging = staging or specs.bucket_url(FLAGS.bucket) + "/dataflow/staging"
    config = specs.DataflowConfig(
        project=FLAGS.project or "", region=FLAGS.region or "",
        input=tuple(FLAGS.input or ()), output_dir=FLAGS.output_dir or "",
        temp_location=temp, staging_location=staging,
        job_name=FLAGS.job_name or time.strftime(
            "rbm-preprocess-%Y%m%d-%H%M%S", time.gmtime()),
        setup_file=SETUP_FILE, machine_type=FLAGS.machine_type,
        max_num_workers=FLAGS.max_num_workers,
        service_account_email=FLAGS.service_account_email)
    preprocess_config = pipeline.PreprocessConfig(**{
        f.name: FLAGS[f.name].value
        for f in dataclasses.fields(pipeline.PreprocessConfig)})
  except ValueError as e:  # specs.SpecError or a bad preprocessing flag
    raise app.UsageError(str(e)) from None
  # Unknown Beam options are an error now, not after a job was staged.
  try:
    pipeline.beam_options(specs.dataflow_args(config) + extra)
  except pipeline.OptionsError as e:
    raise app.UsageError(str(e)) from None
  if FLAGS.dry_run:
    given = [FLAGS[n].serialize() for n in _PREPROCESS_FLAGS if FLAGS[n].present]
    print(specs.shell_join(specs.preprocess_command(config, given, extra)))
    return
  print(f"Dataflow job {config.job_name} starting; watch it at "
        f"{specs.dataflow_console_url(config.project, config.region)}",
        flush=True)
  try:
    counts = launch.dataflow_job(config, preprocess_config, extra,
                                 overwrite=FLAGS.overwrite)
  except pipeline.LaunchError as e:  # found before the job started
    raise app.UsageError(str(e)) from None
  w = counts["windows"]
  print(f"{counts['files_seen']} files seen: {counts['converted']} converted, "
        f"{counts['failed']} failed, {counts['skipped']} skipped; windows: "
        f"train {w['train']}, eval {w['eval']} -> {config.output_dir}")


if __name__ == "__main__":
  app.run(main, flags_parser=lambda argv: FLAGS(argv, known_only=True))
