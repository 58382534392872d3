r"""What runs in the cloud: Vertex AI CustomJob specs and Dataflow options.

Pure functions of typed, frozen configs: the CustomJobSpec JSON (the REST
shape that `gcloud ai custom-jobs create --config` and the aiplatform API take),
the gcloud command, the Beam argv for Dataflow, and the shard a Vertex replica
owns. Every check that can be made offline happens here, when a config is
built, so a bad flag fails before anything is submitted or paid for.

This module must not touch the network, the file system or the environment
(callers pass `environ`), nor import TensorFlow, Beam or google-cloud-*:
deploy/vertex.py and deploy/dataflow.py submit.
"""

import dataclasses
import json
import re
import shlex

from absl import flags

from common import cli
from deploy import gcp_catalog
from preprocess import config as config_lib

# --- offline tables ---------------------------------------------------------------
# Pre-flight conveniences, not an authority: the dated GCP machine/GPU/region
# tables live in deploy/gcp_catalog.json (deploy/gcp_catalog.py loads them).
# `skip_table_checks` bypasses them when Google adds a region or a machine that
# they do not know yet.
TABLES_AS_OF = gcp_catalog.AS_OF
BUILT_IN_GPUS = gcp_catalog.BUILT_IN_GPUS
N1_GPUS = gcp_catalog.N1_GPUS
GPU_TYPES = tuple(sorted(set(BUILT_IN_GPUS) | set(N1_GPUS)))
GPU_REGIONS = gcp_catalog.GPU_REGIONS
_GPU_FAMILIES = gcp_catalog.GPU_FAMILIES
_N1 = re.compile(r"^n1-(standard|highmem|highcpu)-(\d+)$")

_REGION = re.compile(r"^[a-z]+-[a-z]+\d+$")
_PROJECT = re.compile(r"^[a-z][-a-z0-9]{4,28}[a-z0-9]$")
_BUCKET = re.compile(r"^[a-z0-9][-_.a-z0-9]{1,220}[a-z0-9]$")
_DATAFLOW_JOB = re.compile(r"^[a-z]([-a-z0-9]{0,1022}[a-z0-9])?$")

JOBS = {"train": "trainer.task", "generate": "trainer.generate"}
# Runs a module on one replica of a multi-replica job with that replica's
# --num_shards/--shard_index (deploy/replica.py, inside the container).
REPLICA_LAUNCHER = "deploy.replica"


class SpecError(cli.UsageError):
  """A flag or combination of flags that cannot work; says what would."""


# --- checks ---------------------------------------------------------------------
def check_project(project: str) -> None:
  if not project:
    raise SpecError("--project is missing: the Google Cloud project ID to run "
                    "in (gcloud config get-value project).")
  if not _PROJECT.match(project):
    raise SpecError(f"--project={project!r} is not a project ID (6-30 "
                    "lowercase letters, digits or hyphens, starting with a "
                    "letter); use the ID, not the display name or number.")


def check_region(region: str) -> None:
  if not region:
    raise SpecError("--region is missing, e.g. --region=us-central1 (a region, "
                    "not a zone).")
  if not _REGION.match(region):
    raise SpecError(f"--region={region!r} is not a region name like "
                    "us-central1 (zones such as us-central1-a are not "
                    "regions).")


def check_gs_path(flag: str, path: str, what: str = "") -> None:
  """Cloud jobs run on remote machines: only gs:// paths reach them."""
  if not path:
    raise SpecError(f"--{flag} is missing: a gs://BUCKET/PATH{what}.")
  if not path.startswith("gs://") or len(path) <= len("gs://") or \
      path[len("gs://")] == "/":
    raise SpecError(
        f"--{flag}={path} is not a gs:// path: cloud jobs run on remote "
        f"machines that cannot see this one; use gs://BUCKET/PATH{what} (copy "
        "local files with `gcloud storage cp -r DIR gs://BUCKET/DIR`).")
  try:
    config_lib.check_cloud_path(f"--{flag}", path)
  except cli.UsageError as e:
    raise SpecError(str(e)) from None


def bucket_url(bucket: str) -> str:
  """gs://NAME for --bucket=NAME or --bucket=gs://NAME."""
  name = bucket[len("gs://"):] if bucket.startswith("gs://") else bucket
  name = name.rstrip("/")
  if not name:
    raise SpecError("--bucket is missing: a Cloud Storage bucket for staging "
                    "and temporary files (gcloud storage buckets create "
                    "gs://NAME --location=REGION).")
  if "/" in name or not _BUCKET.match(name):
    raise SpecError(f"--bucket={bucket!r} is not a bucket name: give NAME or "
                    "gs://NAME without a path (use --temp_location for a "
                    "folder inside a bucket).")
  return f"gs://{name}"


def _join(base: str, name: str) -> str:
  return base.rstrip("/") + "/" + name


# --- machines -------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class Machine:
  """One replica's hardware."""

  # Compute Engine machine type, e.g. g2-standard-8.
  machine_type: str
  # Vertex AI accelerator type (NVIDIA_L4, ...); None for a CPU-only machine.
  gpu_type: str | None
  # GPUs per replica (0 for CPU-only).
  gpus: int

  def spec(self) -> dict:
    """The MachineSpec JSON."""
    spec = {"machineType": self.machine_type}
    if self.gpus:
      spec["acceleratorType"] = self.gpu_type
      spec["acceleratorCount"] = self.gpus
    return spec


def default_machine_type(gpu_type: str | None, gpus: int) -> str:
  """The smallest sensible machine for `gpus` GPUs of `gpu_type`."""
  if not gpus:
    return "n1-standard-8"
  if gpu_type in BUILT_IN_GPUS:
    fits = [m for m, n in BUILT_IN_GPUS[gpu_type].items() if n == gpus]
    if gpu_type == "NVIDIA_L4" and gpus == 1:
      return "g2-standard-8"  # -4 leaves 4 vCPUs for the input pipeline
    if fits:
      return fits[0]
    counts = sorted(set(BUILT_IN_GPUS[gpu_type].values()))
    raise SpecError(f"--gpus={gpus}: machines with {gpu_type} have {counts} "
                    "GPUs.")
  if gpu_type in N1_GPUS:
    if gpus not in N1_GPUS[gpu_type]:
      raise SpecError(f"--gpus={gpus}: {gpu_type} attaches in counts of "
                      f"{sorted(N1_GPUS[gpu_type])} to N1 machines.")
    vcpus = min(8 * gpus, N1_GPUS[gpu_type][gpus], 64)
    return f"n1-standard-{vcpus}"
  _unknown_gpu(gpu_type)


def _unknown_gpu(gpu: str | None) -> None:
  if gpu and gpu.startswith("TPU"):
    raise SpecError(f"--gpu_type={gpu}: the trainer runs on GPUs or CPUs, "
                    "not TPUs.")
  raise SpecError(f"--gpu_type={gpu!r} is not in the table of GPUs "
                  f"(as of {TABLES_AS_OF}): {', '.join(GPU_TYPES)}; if Vertex "
                  "AI lists it, pass --machine_type and --skip_table_checks.")


def check_machine(machine: Machine) -> None:
  """Raises SpecError unless the GPU type, count and machine type fit."""
  m, gpu, n = machine.machine_type, machine.gpu_type, machine.gpus
  if not m:
    raise SpecError("--machine_type is missing.")
  if n < 0:
    raise SpecError(f"--gpus={n} must be >= 0 (0: CPU only).")
  if n == 0:
    if m.startswith(_GPU_FAMILIES):
      owners = [g for g, ms in BUILT_IN_GPUS.items() if m in ms]
      hint = (f" pass --gpus={BUILT_IN_GPUS[owners[0]][m]} --gpu_type="
              f"{owners[0]}" if owners else " pass its GPUs with --gpus")
      raise SpecError(f"--machine_type={m} comes with GPUs:{hint}, or use a "
                      "CPU machine such as n1-standard-8 with --gpus=0.")
    return
  if gpu in BUILT_IN_GPUS:
    machines = BUILT_IN_GPUS[gpu]
    if m not in machines:
      with_n = sorted(x for x, k in machines.items() if k == n)
      raise SpecError(
          f"--gpu_type={gpu} runs on {', '.join(sorted(machines))}, not on "
          f"--machine_type={m}"
          + (f"; for --gpus={n} use {' or '.join(with_n)}." if with_n else "."))
    if machines[m] != n:
      raise SpecError(f"--machine_type={m} has exactly {machines[m]} {gpu} "
                      f"GPUs, not --gpus={n}; pass --gpus={machines[m]} or "
                      "another machine type.")
    return
  if gpu in N1_GPUS:
    limits = N1_GPUS[gpu]
    if n not in limits:
      raise SpecError(f"--gpus={n}: {gpu} attaches in counts of "
                      f"{sorted(limits)}.")
    match = _N1.match(m)
    if not match:
      raise SpecError(f"--gpu_type={gpu} attaches to N1 machines only "
                      f"(n1-standard-*, n1-highmem-*, n1-highcpu-*), not to "
                      f"--machine_type={m}; e.g. "
                      f"{default_machine_type(gpu, n)}.")
    if int(match.group(2)) > limits[n]:
      raise SpecError(f"--machine_type={m} has more vCPUs than {n} {gpu} "
                      f"GPU(s) allow (at most {limits[n]}); use a smaller N1 "
                      "machine or more GPUs.")
    return
  _unknown_gpu(gpu)


def check_gpu_region(region: str, gpus: int) -> None:
  if gpus and region not in GPU_REGIONS:
    raise SpecError(
        f"--region={region} has no Vertex AI training GPUs in our table "
        f"(as of {TABLES_AS_OF}; regions with GPUs: "
        f"{', '.join(sorted(GPU_REGIONS))}). Pick one of those, run on CPUs "
        "with --gpus=0, or pass --skip_table_checks if the Vertex AI "
        "locations page now lists GPUs there.")


# --- forwarded job flags ------------------------------------------------------------
def flag_value(args, name: str) -> str | None:
  """The value of --name in absl-style args (--name=V or --name V); last wins."""
  value = None
  args = list(args)
  for i, arg in enumerate(args):
    if arg.startswith(f"--{name}="):
      value = arg.split("=", 1)[1]
    elif arg == f"--{name}":
      nxt = args[i + 1] if i + 1 < len(args) else ""
      value = "true" if not nxt or nxt.startswith("-") else nxt
  return value


# Forwarded flags that name a file or folder the job reads or writes, besides
# every flag whose name ends in _dir: on Vertex AI they must be gs:// paths.
_PATH_FLAGS = ("init_from", "primer", "output")
# Flags absl itself gives every CLI (logging, debugging): the jobs take them.
_ABSL_MODULES = ("absl.logging", "absl.app")
_SUGGESTIONS = re.compile(r"Did you mean: (.+?) \?$")


def _job_flag_classes(job: str) -> tuple:
  """The dataclasses whose fields are the flags of `job` (trainer/config.py;
  no TensorFlow), as trainer/task.py and trainer/generate.py define them."""
  from trainer import config as trainer_config  # pylint: disable=g-import-not-at-top  # no TF
  if job == "train":
    return trainer_config.TrainDirs, trainer_config.TrainConfig
  return trainer_config.GeneratePaths, trainer_config.GenerateConfig


def _absl_flags(flag_values) -> None:
  """absl's own flags (--verbosity, --alsologtostderr, ...), which every job
  accepts: plain copies, so parsing them changes nothing in this process."""
  for module in _ABSL_MODULES:
    for flag in flags.FLAGS.get_flags_for_module(module):
      if flag.name not in flag_values:
        flags.DEFINE_flag(flags.Flag(
            flag.parser, flag.serializer, flag.name, flag.default_unparsed,
            flag.help, flag.short_name, flag.boolean), flag_values=flag_values)


def parse_job_flags(job: str, args) -> flags.FlagValues:
  """`args` parsed as the job's module parses them, into fresh FlagValues.

  Raises:
    SpecError: an unknown flag (naming the closest ones), a value of the wrong
      type, a stray argument, or a --flagfile (the job cannot read it).
  """
  module = JOBS[job]
  args = list(args)
  for arg in args:
    if re.match(r"^--?flagfile(=|$)", arg):
      raise SpecError(f"{arg} after `--`: {module} would read the file on the "
                      "cloud machine, which cannot see this one; pass its "
                      "flags themselves after `--`.")
  flag_values = flags.FlagValues()
  for config_cls in _job_flag_classes(job):
    cli.define_flags(config_cls, flag_values=flag_values)
  _absl_flags(flag_values)
  try:
    rest = flag_values([module] + args)
  except flags.UnrecognizedFlagError as e:
    # absl's message ends with its suggestions: "... Did you mean: a, b ?"
    found = _SUGGESTIONS.search(str(e))
    if found:
      names = " or ".join(f"--{n.strip()}" for n in found.group(1).split(","))
      hint = f" (did you mean {names}?)"
    else:
      hint = f"; see `python -m {module} --helpshort`."
    raise SpecError(f"--{e.flagname} is not a flag of {module}{hint}") from None
  except flags.Error as e:  # a value of the wrong type, a missing value
    message = (str(e).strip().splitlines() or [type(e).__name__])[0]
    if message.startswith("flag --"):  # "flag --x=v: why"
      message = message[len("flag "):]
    raise SpecError(f"{module} flags after `--`: {message}") from None
  if len(rest) > 1:
    raise SpecError(f"{module} flags after `--`: unexpected arguments "
                    f"{rest[1:]} (flags are written --name=value).")
  return flag_values


def job_config(job: str, flag_values):
  """The job's settings (TrainConfig or GenerateConfig) from parsed flags,
  with the model's defaults for the flags not given, as the job builds them.

  Raises:
    SpecError: the dataclass rejected a value (its one-line message).
  """
  from trainer import config as trainer_config  # pylint: disable=g-import-not-at-top  # no TF
  config_cls = _job_flag_classes(job)[1]
  given = {name for name in flag_values if flag_values[name].present}
  try:
    if job == "train":  # trainer/task.py main
      return cli.config_from_flags(
          config_cls, flag_values=flag_values,
          **trainer_config.model_defaults(flag_values["model"].value, given))
    return cli.config_from_flags(  # trainer/generate.py main
        config_cls, flag_values=flag_values,
        explicit=cli.explicit_fields(config_cls, flag_values=flag_values))
  except cli.UsageError as e:
    raise SpecError(f"{JOBS[job]} flags after `--`: {e}") from None


def path_flags(job: str) -> tuple:
  """The names of the job's flags that are paths it reads or writes."""
  names = []
  for config_cls in _job_flag_classes(job):
    for field in dataclasses.fields(config_cls):
      name = field.metadata.get("flag") or field.name
      if field.metadata.get("cli", True) and (
          name.endswith("_dir") or name in _PATH_FLAGS):
        names.append(name)
  return tuple(dict.fromkeys(names))


# --- Vertex AI ---------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class VertexJobConfig:
  """One Vertex AI CustomJob: training or generation in our container.

      python -m deploy.vertex train --project=P --region=us-central1 \
          --image=IMAGE --job_dir=gs://B/job -- --data_dir=gs://B/dataset
  """

  # "train" (python -m trainer.task) or "generate" (python -m trainer.generate):
  # the CLI's first argument, not a flag.
  job: str = cli.setting("train", "train or generate.", cli=False)
  project: str = cli.setting("", "Google Cloud project ID.")
  region: str = cli.setting(
      "", "Vertex AI region, e.g. us-central1; also where the machines run.")
  image: str = cli.setting(
      "", "The training container (deploy/Dockerfile.trainer) in Artifact "
      "Registry (make image prints it).")
  # train: baseOutputDirectory, so the trainer gets AIP_MODEL_DIR=JOB_DIR/model,
  # AIP_CHECKPOINT_DIR=JOB_DIR/checkpoints, AIP_TENSORBOARD_LOG_DIR=JOB_DIR/logs.
  job_dir: str = cli.setting(
      "", "gs:// run folder (model/, checkpoints/, logs/; generate: model/ in, "
      "samples/ out, unless --model_dir/--output are forwarded).")
  display_name: str = cli.setting(
      "", "Name shown in the console; also names the spec file (default: "
      "rbm-JOB-UTCTIME).")
  # Flags for trainer.task / trainer.generate (after `--`), passed verbatim
  # once parsed as the job parses them (parse_job_flags, job_config).
  args: tuple = cli.setting((), "The job's own flags.", cli=False)
  gpus: int = cli.setting(1, "GPUs per machine (0: CPU only), of --gpu_type.")
  gpu_type: str = cli.setting(
      "NVIDIA_L4", "GPU type, e.g. NVIDIA_L4, NVIDIA_TESLA_T4, NVIDIA_A100_80GB.")
  machine_type: str = cli.setting(
      "", "Compute Engine machine type; empty picks the smallest that fits.")
  workers: int = cli.setting(
      1, "Machines. train: >1 runs MultiWorkerMirroredStrategy over all of "
      "them (Vertex sets TF_CONFIG); generate: >1 splits the samples in as "
      "many shards.")
  spot: bool = cli.setting(
      False, "Spot VMs: about a third of the price, may be preempted; the job "
      "restarts and resumes from its checkpoints or written samples.")
  service_account: str = cli.setting(
      "", "Service account the job runs as (empty: Vertex AI's default agent).")
  tensorboard: str = cli.setting(
      "", "Vertex AI TensorBoard instance (ID or full resource name) to stream "
      "to; needs --service_account.")
  skip_table_checks: bool = cli.setting(
      False, "Skip the dated machine/GPU/region tables (Vertex AI still "
      "validates).")

  def __post_init__(self):
    if self.job not in JOBS:
      raise SpecError(f"job {self.job!r}: use one of {sorted(JOBS)}.")
    object.__setattr__(self, "args", tuple(self.args))
    check_project(self.project)
    check_region(self.region)
    if not self.image or "://" in self.image or " " in self.image:
      raise SpecError(
          f"--image={self.image!r} is not a container image URI; build and "
          "push deploy/Dockerfile.trainer (make image) and pass e.g. "
          f"{self.region}-docker.pkg.dev/{self.project}/rbm-music/trainer:TAG.")
    check_gs_path("job_dir", self.job_dir, " for this run")
    if not self.display_name or len(self.display_name) > 128:
      raise SpecError(f"--display_name={self.display_name!r} must be 1-128 "
                      "characters.")
    if self.workers < 1:
      raise SpecError(f"--workers={self.workers} must be >= 1.")
    if self.gpus < 0:
      raise SpecError(f"--gpus={self.gpus} must be >= 0 (0: CPU only).")
    if not self.machine_type:
      object.__setattr__(self, "machine_type", default_machine_type(
          self.gpu_type if self.gpus else None, self.gpus))
    if not self.skip_table_checks:
      check_machine(self.machine)
      check_gpu_region(self.region, self.gpus)
    if self.service_account and "@" not in self.service_account:
      raise SpecError(f"--service_account={self.service_account!r} is not a "
                      "service account email (NAME@PROJECT.iam.gserviceaccount"
                      ".com).")
    if self.tensorboard:
      if not self.service_account:
        raise SpecError("--tensorboard needs --service_account: Vertex AI "
                        "streams TensorBoard logs only for jobs that run as a "
                        "service account (see docs/cloud.md).")
      region = self.tensorboard_name.split("/")[3]
      if region != self.region:
        raise SpecError(f"--tensorboard={self.tensorboard} is in {region}, "
                        f"the job in --region={self.region}: they must match.")
    self._check_args()

  @property
  def machine(self) -> Machine:
    return Machine(self.machine_type, self.gpu_type if self.gpus else None,
                   self.gpus)

  @property
  def tensorboard_name(self) -> str:
    """projects/P/locations/R/tensorboards/ID for an ID or a full name."""
    name = self.tensorboard
    if name.isdigit():
      return (f"projects/{self.project}/locations/{self.region}/tensorboards/"
              f"{name}")
    parts = name.split("/")
    if (len(parts) != 6 or parts[0] != "projects" or parts[2] != "locations"
        or parts[4] != "tensorboards" or not all(parts)):
      raise SpecError(f"--tensorboard={name!r}: give the instance ID (gcloud "
                      "ai tensorboards list) or projects/P/locations/R/"
                      "tensorboards/ID.")
    return name

  @property
  def replicas_per_machine(self) -> int:
    """tf.distribute replicas on one machine: its GPUs, or its CPU."""
    return max(self.gpus, 1)

  def _check_args(self) -> None:
    """The forwarded flags must be the job's own, with values it accepts,
    and every path in them must work remotely."""
    job_flags = parse_job_flags(self.job, self.args)
    given = [name for name in job_flags if job_flags[name].present]
    if self.job == "train":
      owned = [f for f in ("job_dir", "model_dir", "checkpoint_dir",
                           "tensorboard_dir") if f in given]
      if owned:
        raise SpecError(
            f"--{owned[0]} after `--`: on Vertex AI the trainer writes under "
            "deploy's --job_dir (AIP_MODEL_DIR, AIP_CHECKPOINT_DIR, "
            "AIP_TENSORBOARD_LOG_DIR); pass the folder as deploy's --job_dir.")
      check_gs_path("data_dir", job_flags["data_dir"].value or "",
                    " of the dataset preprocess wrote (after `--`)")
    else:
      for owned in ("num_shards", "shard_index"):
        if owned in given:
          raise SpecError(f"--{owned} after `--`: deploy sets the shards from "
                          "--workers (one shard per machine).")
      if "soundfont" in given:
        # The previews open it as a local file (not gs://), and the image has
        # neither a sound font nor FluidSynth: on Vertex AI it can only fail.
        raise SpecError(
            f"--soundfont={job_flags['soundfont'].value} after `--`: the job "
            "reads it as a file inside the container, which has no sound font "
            "nor FluidSynth; omit it (the previews' audio is sine tones).")
    # Generation's --model_dir and --output default to folders of --job_dir
    # (container_args); given, even empty, they are what the job gets.
    required = ("model_dir", "output") if self.job == "generate" else ()
    for name in path_flags(self.job):
      value = job_flags[name].value
      if value or (name in required and name in given):
        check_gs_path(name, value or "")
    config = job_config(self.job, job_flags)
    if self.job == "train":
      self._check_batch(config.batch_size, "batch_size" in given)

  def _check_batch(self, batch: int, given: bool) -> None:
    """The global batch must split evenly over every replica of every machine."""
    replicas = self.replicas_per_machine * self.workers
    if batch % replicas:
      good = -(-batch // replicas) * replicas
      source = "" if given else "the default "
      raise SpecError(
          f"{source}--batch_size={batch} does not split over {replicas} "
          f"replicas ({self.workers} machine(s) x {self.replicas_per_machine} "
          f"GPU(s)); pass a multiple of {replicas} after `--`, e.g. "
          f"--batch_size={good}.")

  def container_args(self) -> list:
    """The args every replica's container gets (before sharding)."""
    args = list(self.args)
    if self.job == "generate":
      if flag_value(args, "model_dir") is None:
        args.insert(0, f"--model_dir={_join(self.job_dir, 'model')}")
      if flag_value(args, "output") is None:
        args.insert(1, f"--output={_join(self.job_dir, 'samples')}")
    return args


def container_spec(config: VertexJobConfig) -> dict:
  """ContainerSpec JSON. Training uses the image's ENTRYPOINT (trainer.task);
  generation overrides the command, through the replica launcher when the
  samples are split over several machines."""
  spec = {"imageUri": config.image, "args": config.container_args()}
  if config.job == "generate":
    if config.workers > 1:
      spec["command"] = ["python", "-m", REPLICA_LAUNCHER, JOBS["generate"]]
    else:
      spec["command"] = ["python", "-m", JOBS["generate"]]
  return spec


def custom_job_spec(config: VertexJobConfig) -> dict:
  """The CustomJobSpec JSON for `config`.

  Worker pool 0 is the primary replica (chief); with --workers=N, pool 1 holds
  the other N-1 machines, identical. Vertex AI then sets TF_CONFIG (pool 0 =
  chief, pool 1 = worker) and CLUSTER_SPEC on every replica.
  """
  pool = {"machineSpec": config.machine.spec(), "replicaCount": 1,
          "containerSpec": container_spec(config)}
  pools = [pool]
  if config.workers > 1:
    pools.append(dict(pool, replicaCount=config.workers - 1))
  spec = {"workerPoolSpecs": pools}
  if config.job == "train":
    spec["baseOutputDirectory"] = {"outputUriPrefix": config.job_dir}
  # A replica that restarts (a preempted spot VM, a host error) restarts the
  # whole job: collective all-reduce cannot take a worker back mid-run, and
  # every job resumes from what it wrote.
  scheduling = {"restartJobOnWorkerRestart": True}
  if config.spot:
    scheduling["strategy"] = "SPOT"
  spec["scheduling"] = scheduling
  if config.service_account:
    spec["serviceAccount"] = config.service_account
  if config.tensorboard:
    spec["tensorboard"] = config.tensorboard_name
  return spec


def gcloud_command(config: VertexJobConfig, spec_file: str) -> list:
  """The gcloud command that submits the spec saved in `spec_file`."""
  return ["gcloud", "ai", "custom-jobs", "create", f"--project={config.project}",
          f"--region={config.region}", f"--display-name={config.display_name}",
          f"--config={spec_file}"]


def console_url(project: str, region: str, job_id: str) -> str:
  return (f"https://console.cloud.google.com/vertex-ai/locations/{region}/"
          f"training/{job_id}?project={project}")


def spec_json(spec: dict) -> str:
  return json.dumps(spec, indent=2)


# --- the shard a Vertex replica owns ----------------------------------------------------
def replica_shard(environ) -> tuple:
  """(shard_index, num_shards) of this replica of a job built above.

  Vertex AI sets CLUSTER_SPEC on every replica: {"cluster": {"workerpool0":
  [host], "workerpool1": [hosts...]}, "task": {"type": "workerpool1",
  "index": i}, ...}. Pool 0 (the primary) is shard 0; replica i of pool 1 is
  shard i + 1. TF_CONFIG (chief/worker) is read the same way when
  CLUSTER_SPEC is absent, e.g. in a local simulation.

  Raises:
    SpecError: neither variable is set, or it names no shard for this task.
  """
  for var, first, rest in (("CLUSTER_SPEC", "workerpool0", "workerpool1"),
                           ("TF_CONFIG", "chief", "worker")):
    text = environ.get(var)
    if not text:
      continue
    try:
      cluster_spec = json.loads(text)
      cluster, task = cluster_spec["cluster"], cluster_spec["task"]
      kind, index = task["type"], int(task["index"])
      firsts, rests = len(cluster.get(first, [])), len(cluster.get(rest, []))
    except (ValueError, KeyError, TypeError, AttributeError):
      raise SpecError(f"{var} is not a cluster spec: {text[:300]!r}") from None
    if kind == first and index < firsts:
      return index, firsts + rests
    if kind == rest and index < rests:
      return firsts + index, firsts + rests
    raise SpecError(f"{var} task {kind}:{index} is not one of the {first}/"
                    f"{rest} replicas that split the work: {text[:300]!r}")
  raise SpecError("neither CLUSTER_SPEC nor TF_CONFIG is set: deploy.replica "
                  "runs inside a multi-replica Vertex AI job; elsewhere pass "
                  "--num_shards/--shard_index to the job itself.")


# --- Dataflow ---------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class DataflowConfig:
  """Where and how preprocess.main runs on Dataflow.

      python -m deploy.dataflow --project=P --region=us-central1 --bucket=B \
          --input='gs://B/corpus/*.mid' --output_dir=gs://B/dataset
  """

  # Flags generated from these fields by deploy/dataflow.py (common.cli);
  # input and output_dir are preprocess.main's flags (preprocess/config.py).
  project: str = cli.setting("", "Google Cloud project ID.")
  region: str = cli.setting(
      "", "Dataflow region (workers and job metadata), e.g. us-central1.")
  # gs:// globs of MIDI files.
  input: tuple = cli.setting((), "gs:// globs of MIDI files.", cli=False)
  # gs:// globs of an explicit eval / valid split (preprocess/config.py).
  eval_input: tuple = cli.setting((), "gs:// globs of eval files.", cli=False)
  valid_input: tuple = cli.setting((), "gs:// globs of valid files.",
                                   cli=False)
  # gs:// folder for the TFRecords and dataset.json.
  output_dir: str = cli.setting("", "gs:// dataset folder.", cli=False)
  temp_location: str = cli.setting(
      "", "gs:// folder for Dataflow's temporary files (default: from "
      "--bucket).")
  staging_location: str = cli.setting(
      "", "gs:// folder for the staged package and SDK (default: "
      "TEMP_LOCATION/staging).")
  job_name: str = cli.setting(
      "", "Dataflow job name: lowercase letters, digits, hyphens (default: "
      "rbm-preprocess-UTCTIME).")
  # This repository's setup.py: workers pip-install the package from it.
  setup_file: str = cli.setting("", "setup.py workers install.", cli=False)
  machine_type: str = cli.setting("n1-standard-2", "Worker machine type.")
  max_num_workers: int = cli.setting(10, "Autoscaling ceiling.")
  service_account_email: str = cli.setting(
      "", "Workers run as this service account (default: the Compute Engine "
      "default).")

  def __post_init__(self):
    for name in ("input", "eval_input", "valid_input"):
      object.__setattr__(self, name, tuple(getattr(self, name)))
    check_project(self.project)
    check_region(self.region)
    if not self.input:
      raise SpecError("--input is missing: gs:// globs of MIDI files, e.g. "
                      "--input='gs://BUCKET/corpus/*.mid'.")
    for name in ("input", "eval_input", "valid_input"):
      for pattern in getattr(self, name):
        check_gs_path(name, pattern, "/*.mid")
    check_gs_path("output_dir", self.output_dir, " for the dataset")
    check_gs_path("temp_location", self.temp_location,
                  " (or pass --bucket=NAME)")
    if not self.staging_location:
      object.__setattr__(self, "staging_location",
                         _join(self.temp_location, "staging"))
    check_gs_path("staging_location", self.staging_location)
    if not _DATAFLOW_JOB.match(self.job_name):
      raise SpecError(f"--job_name={self.job_name!r}: Dataflow job names are "
                      "lowercase letters, digits and hyphens, starting with a "
                      "letter.")
    if not self.setup_file.endswith("setup.py"):
      raise SpecError(f"setup_file={self.setup_file!r} must be a setup.py.")
    if self.max_num_workers < 1:
      raise SpecError(f"--max_num_workers={self.max_num_workers} must be "
                      ">= 1.")
    if not self.machine_type or self.machine_type.startswith(_GPU_FAMILIES):
      raise SpecError(f"--machine_type={self.machine_type!r}: preprocessing "
                      "is CPU work; use e.g. n1-standard-2 or n2-standard-4.")
    if self.service_account_email and "@" not in self.service_account_email:
      raise SpecError(f"--service_account_email={self.service_account_email!r}"
                      " is not a service account email.")


def dataflow_args(config: DataflowConfig) -> list:
  """Beam pipeline options (argv form) that run the pipeline on Dataflow."""
  args = [
      "--runner=DataflowRunner",
      f"--project={config.project}",
      f"--region={config.region}",
      f"--temp_location={config.temp_location}",
      f"--staging_location={config.staging_location}",
      # Workers pip-install this package (and its requirements) from the
      # sdist Beam builds of it: see docs/cloud.md.
      f"--setup_file={config.setup_file}",
      f"--job_name={config.job_name}",
      f"--machine_type={config.machine_type}",
      f"--max_num_workers={config.max_num_workers}",
  ]
  if config.service_account_email:
    args.append(f"--service_account_email={config.service_account_email}")
  return args


def preprocess_command(config: DataflowConfig, preprocess_flags=(),
                       extra_options=()) -> list:
  """The `python -m preprocess.main ...` command equivalent to a launch."""
  split_inputs = [f"--{name}={','.join(getattr(config, name))}"
                  for name in ("eval_input", "valid_input")
                  if getattr(config, name)]
  return (["python", "-m", "preprocess.main",
           f"--input={','.join(config.input)}"] + split_inputs
          + [f"--output_dir={config.output_dir}"]
          + list(preprocess_flags) + dataflow_args(config)
          + list(extra_options))


def dataflow_console_url(project: str, region: str) -> str:
  return (f"https://console.cloud.google.com/dataflow/jobs/{region}?"
          f"project={project}")


def shell_join(argv) -> str:
  return shlex.join(argv)
