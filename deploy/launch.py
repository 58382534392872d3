"""Submits what deploy/specs.py builds: Vertex AI CustomJobs and Dataflow runs.

The I/O half of deploy/: saving the spec file, calling the Vertex AI API (or
gcloud), running the preprocessing pipeline on Dataflow. It reads no flags
(deploy/vertex.py and deploy/dataflow.py do) and builds no spec itself.
google-cloud-aiplatform and Beam are imported only by the function that needs
them.
"""

import json
import os
import re
import shutil
import subprocess
import tempfile

from deploy import specs


class SubmitError(RuntimeError):
  """The job could not be created; nothing is running."""


def save_spec(spec: dict, config: specs.VertexJobConfig, path: str = "") -> str:
  """Writes the spec JSON (the file gcloud --config reads); returns its path."""
  if not path:
    safe = re.sub(r"[^A-Za-z0-9_.-]", "_", config.display_name)
    path = os.path.join(tempfile.mkdtemp(prefix="rbm-vertex-"), f"{safe}.json")
  with open(path, "w", encoding="utf-8") as f:
    f.write(specs.spec_json(spec) + "\n")
  return path


def submit_with_aiplatform(config: specs.VertexJobConfig, spec: dict,
                           client=None) -> str:
  """Creates the CustomJob through the Vertex AI API; returns its numeric ID.

  Args:
    config: the job (project, region, display name).
    spec: its CustomJobSpec JSON.
    client: a JobServiceClient (default: one on the region's endpoint).

  Raises:
    ImportError: google-cloud-aiplatform is not installed.
    SubmitError: the API refused the job, or there are no credentials.
  """
  from google.api_core import exceptions  # pylint: disable=g-import-not-at-top
  import google.auth.exceptions  # pylint: disable=g-import-not-at-top
  from google.cloud import aiplatform_v1  # pylint: disable=g-import-not-at-top
  try:
    if client is None:
      client = aiplatform_v1.JobServiceClient(client_options={
          "api_endpoint": f"{config.region}-aiplatform.googleapis.com"})
    job = aiplatform_v1.CustomJob(
        display_name=config.display_name,
        job_spec=aiplatform_v1.CustomJobSpec.from_json(json.dumps(spec)))
    created = client.create_custom_job(
        parent=f"projects/{config.project}/locations/{config.region}",
        custom_job=job)
  except google.auth.exceptions.DefaultCredentialsError as e:
    raise SubmitError(f"no Google Cloud credentials ({e}); run `gcloud auth "
                      "application-default login` first.") from None
  except exceptions.GoogleAPICallError as e:
    raise SubmitError(
        f"Vertex AI refused the job in project {config.project}, region "
        f"{config.region}: {e.message or e}. Check that the Vertex AI API is "
        "enabled (gcloud services enable aiplatform.googleapis.com), that you "
        "have roles/aiplatform.user, and the GPU quota of that region.") from None
  return created.name.rsplit("/", 1)[-1]


def submit_with_gcloud(config: specs.VertexJobConfig, spec_file: str,
                       run=subprocess.run) -> str:
  """Creates the CustomJob with `gcloud ai custom-jobs create`; returns its ID."""
  argv = specs.gcloud_command(config, spec_file) + ["--format=value(name)"]
  done = run(argv, stdout=subprocess.PIPE, text=True, check=False)
  lines = (done.stdout or "").strip().splitlines()
  if done.returncode or not lines:
    raise SubmitError(f"`{specs.shell_join(argv)}` failed (exit "
                      f"{done.returncode}); gcloud's message is above.")
  return lines[-1].rsplit("/", 1)[-1]


def vertex_job(config: specs.VertexJobConfig, spec_file: str = "",
               dry_run: bool = False) -> dict:
  """Builds the CustomJob spec, saves it, and submits it unless `dry_run`.

  Args:
    config: the job.
    spec_file: where to save the spec JSON ("" : a new temporary folder).
    dry_run: build and save only.

  Returns:
    {"spec", "spec_file", "command"} (the gcloud equivalent) and, once
    submitted, "job_id" and "url" (its console page).

  Raises:
    SubmitError: neither google-cloud-aiplatform nor gcloud is available, or
      the job was refused.
  """
  spec = specs.custom_job_spec(config)
  path = save_spec(spec, config, spec_file)
  result = {"spec": spec, "spec_file": path,
            "command": specs.gcloud_command(config, path)}
  if dry_run:
    return result
  try:
    job_id = submit_with_aiplatform(config, spec)
  except ImportError:
    if not shutil.which("gcloud"):
      raise SubmitError(
          "google-cloud-aiplatform is not installed and gcloud is not on "
          "PATH: run `pip install -e '.[vertex]'` (or install the Google Cloud "
          "CLI), or use --dry_run and submit the spec yourself.") from None
    job_id = submit_with_gcloud(config, path)
  result.update(job_id=job_id,
                url=specs.console_url(config.project, config.region, job_id))
  return result


def dataflow_job(config: specs.DataflowConfig, preprocess_config,
                 extra_options=(), overwrite: bool = False,
                 layout_given=()) -> dict:
  """Runs preprocessing on Dataflow to completion; returns dataset.json's counts.

  Args:
    config: where and on what the job runs.
    preprocess_config: a preprocess.config.PreprocessConfig (window layout
      and limits: preprocess.main's own flags).
    extra_options: more Beam options, e.g. --experiments=...
    overwrite: replace a dataset already in the output folder.
    layout_given: with --fit_corpus, the layout flags given, which the fit
      keeps (pipeline.run_pipeline).

  Raises:
    common.cli.UsageError: an input glob matches nothing, the output folder
      overlaps the inputs or holds a dataset and overwrite is False, or an
      extra option is not a Beam option (all before the job starts).
    common.cli.JobError: the Dataflow job did not finish.
  """
  from preprocess import pipeline  # pylint: disable=g-import-not-at-top  # Beam
  options = pipeline.beam_options(
      specs.dataflow_args(config) + list(extra_options))
  return pipeline.run_pipeline(list(config.input), config.output_dir,
                               preprocess_config, options, overwrite=overwrite,
                               eval_inputs=list(config.eval_input),
                               valid_inputs=list(config.valid_input),
                               layout_given=layout_given)
