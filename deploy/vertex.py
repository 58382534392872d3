r"""Train or generate on Vertex AI: builds the CustomJob and submits it.

    python -m deploy.vertex train --project=P --region=us-central1 \
        --image=REGION-docker.pkg.dev/P/rbm-music/trainer:TAG \
        --job_dir=gs://B/job [--gpus=4 --gpu_type=NVIDIA_L4 --workers=2 --spot] \
        [--dry_run] -- --data_dir=gs://B/dataset --epochs=200
    python -m deploy.vertex generate ... --job_dir=gs://B/job [--workers=4] \
        -- --num_samples=100000

Flags after `--` go to trainer.task / trainer.generate unchanged. --dry_run
prints the spec and the equivalent `gcloud ai custom-jobs create` command;
otherwise the job is created with google-cloud-aiplatform (pip install -e
'.[vertex]'), or with gcloud when that is missing, and its console link is
printed. The spec is built by deploy/specs.py and submitted by
deploy/launch.py.
"""

import dataclasses
import sys
import time

from absl import app
from absl import flags

from deploy import launch
from deploy import specs

# Defaults are VertexJobConfig's (deploy/specs.py): declared there, once.
_D = {f.name: f.default for f in dataclasses.fields(specs.VertexJobConfig)}
FLAGS = flags.FLAGS
flags.DEFINE_string("project", None, "Google Cloud project ID.")
flags.DEFINE_string("region", None, "Vertex AI region, e.g. us-central1.")
flags.DEFINE_string("image", None, "Container image (make image prints it).")
flags.DEFINE_string("job_dir", None, "gs:// run folder (model/, checkpoints/, "
                    "logs/; generate: model/ in, samples/ out).")
flags.DEFINE_string("display_name", None, "Default: rbm-JOB-UTCTIME.")
flags.DEFINE_integer("gpus", _D["gpus"], "GPUs per machine (0: CPU).")
flags.DEFINE_string("gpu_type", _D["gpu_type"],
                    f"One of {', '.join(specs.GPU_TYPES)}.")
flags.DEFINE_string("machine_type", _D["machine_type"],
                    "Default: the smallest that fits.")
flags.DEFINE_integer("workers", _D["workers"], "Machines (train: multi-worker "
                     "all-reduce; generate: one shard each).")
flags.DEFINE_bool("spot", _D["spot"], "Spot VMs: cheaper, may be preempted "
                  "(the job restarts and resumes).")
flags.DEFINE_string("service_account", _D["service_account"],
                    "Run as this service account.")
flags.DEFINE_string("tensorboard", _D["tensorboard"], "Vertex AI TensorBoard "
                    "instance (ID or resource name); needs --service_account.")
flags.DEFINE_bool("skip_table_checks", _D["skip_table_checks"], "Skip the "
                  "dated offline machine/GPU/region tables.")
flags.DEFINE_bool("dry_run", False, "Print the spec and the gcloud command; "
                  "submit nothing.")
flags.DEFINE_string("spec_file", "", "Where to save the spec JSON (default: a "
                    "new temporary folder).")


def _parse_flags(argv):
  """absl's parsing, with a hint when a job flag came before `--`."""
  try:
    return FLAGS(argv)
  except flags.Error as e:
    hint = (" Flags of trainer.task / trainer.generate go after `--`, e.g. "
            "`python -m deploy.vertex train ... -- --data_dir=gs://B/dataset`."
            if isinstance(e, flags.UnrecognizedFlagError) else "")
    sys.exit(f"FATAL Flags parsing error: {e}.{hint}\n"
             "Pass --helpshort or --helpfull to see help on flags.")


def main(argv):
  if len(argv) < 2 or argv[1] not in specs.JOBS:
    raise app.UsageError("usage: python -m deploy.vertex train|generate "
                         "[deploy flags] -- [flags of the job]")
  job = argv[1]
  name = FLAGS.display_name or time.strftime(f"rbm-{job}-%Y%m%d-%H%M%S",
                                             time.gmtime())
  try:
    config = specs.VertexJobConfig(
        job=job, project=FLAGS.project or "", region=FLAGS.region or "",
        image=FLAGS.image or "", job_dir=FLAGS.job_dir or "",
        display_name=name, args=tuple(argv[2:]), gpus=FLAGS.gpus,
        gpu_type=FLAGS.gpu_type, machine_type=FLAGS.machine_type,
        workers=FLAGS.workers, spot=FLAGS.spot,
        service_account=FLAGS.service_account, tensorboard=FLAGS.tensorboard,
        skip_table_checks=FLAGS.skip_table_checks)
  except specs.SpecError as e:
    raise app.UsageError(str(e)) from None
  try:
    result = launch.vertex_job(config, FLAGS.spec_file, FLAGS.dry_run)
  except launch.SubmitError as e:
    raise app.UsageError(str(e)) from None
  if FLAGS.dry_run:
    print(specs.spec_json(result["spec"]))
    print(f"\n# spec saved to {result['spec_file']}; to submit it:")
    print(specs.shell_join(result["command"]))
    return
  print(f"submitted {config.display_name}: job {result['job_id']}\n"
        f"console: {result['url']}\n"
        f"logs:    gcloud ai custom-jobs stream-logs {result['job_id']} "
        f"--project={config.project} --region={config.region}")


if __name__ == "__main__":
  app.run(main, flags_parser=_parse_flags)
