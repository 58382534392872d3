r"""Train or generate on Vertex AI: builds the CustomJob and submits it.

    python -m deploy.vertex train --project=P --region=us-central1 \
        --image=REGION-docker.pkg.dev/P/rbm-music/trainer:TAG \
        --job_dir=gs://B/job [--gpus=4 --gpu_type=NVIDIA_L4 --workers=2 --spot] \
        [--dry_run] -- --data_dir=gs://B/dataset --epochs=200
    python -m deploy.vertex generate ... --job_dir=gs://B/job [--workers=4] \
        -- --num_samples=100000

Flags after `--` go to trainer.task / trainer.generate unchanged, once they
are known to be the job's own flags with values it accepts and gs:// paths
(deploy/specs.py parses them as the job does), so that a misspelt flag fails
here, not in the cloud after the machines started. --dry_run prints the spec
and the equivalent `gcloud ai custom-jobs create` command; otherwise the job
is created with google-cloud-aiplatform (pip install -e '.[vertex]'), or with
gcloud when that is missing, and its console link is printed. The spec is
built by deploy/specs.py and submitted by deploy/launch.py.
"""

import time

from absl import flags

from common import cli
from deploy import launch
from deploy import specs

FLAGS = flags.FLAGS
cli.define_flags(specs.VertexJobConfig)
flags.DEFINE_bool("dry_run", False, "Print the spec and the gcloud command; "
                  "submit nothing.")
flags.DEFINE_string("spec_file", "", "Where to save the spec JSON (default: a "
                    "new temporary folder).")


def main(argv):
  if len(argv) < 2 or argv[1] not in specs.JOBS:
    raise cli.UsageError("usage: python -m deploy.vertex train|generate "
                         "[deploy flags] -- [flags of the job]")
  job = argv[1]
  name = FLAGS.display_name or time.strftime(f"rbm-{job}-%Y%m%d-%H%M%S",
                                             time.gmtime())
  config = cli.config_from_flags(specs.VertexJobConfig, job=job,
                                 display_name=name, args=tuple(argv[2:]))
  try:
    result = launch.vertex_job(config, FLAGS.spec_file, FLAGS.dry_run)
  except launch.SubmitError as e:  # the submission itself failed
    raise cli.JobError(str(e)) from None
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
  cli.run(main, positional=True, unknown_flag_hint=(
      "Flags of trainer.task / trainer.generate go after `--`, e.g. "
      "`python -m deploy.vertex train ... -- --data_dir=gs://B/dataset`."))
