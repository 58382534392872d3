"""deploy/: Vertex AI specs, Dataflow options, the container, multi-worker runs.

Nothing here reaches Google Cloud. The specs are checked field by field and
against the Vertex AI API's own message types; the CLIs run as subprocesses, as
a user runs them; what Vertex AI would do with a spec (TF_CONFIG, CLUSTER_SPEC,
AIP_* paths) is simulated with local processes on loopback.
"""

import glob
import json
import os
import re
import shlex
import subprocess
import sys

import numpy as np
import pytest

from deploy import launch
from deploy import replica
from deploy import specs
from tests import fake_dataset
from tests import midi_builders
from tests import net

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
IMAGE = "us-central1-docker.pkg.dev/my-proj/rbm-music/trainer:abc123"
SA = "trainer@my-proj.iam.gserviceaccount.com"


def vertex(job="train", args=("--data_dir=gs://b/dataset",), **kw):
  base = dict(job=job, project="my-proj", region="us-central1", image=IMAGE,
              job_dir="gs://b/job", display_name="rbm-test", args=args)
  base.update(kw)
  return specs.VertexJobConfig(**base)


def env(**extra):
  out = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", CUDA_VISIBLE_DEVICES="")
  for var in ("TF_CONFIG", "CLUSTER_SPEC", "AIP_MODEL_DIR",
              "AIP_CHECKPOINT_DIR", "AIP_TENSORBOARD_LOG_DIR"):
    out.pop(var, None)
  out.update(extra)
  return out


# --- the CustomJob specs, field by field ------------------------------------------------
def test_spec_one_gpu():
  spec = specs.custom_job_spec(vertex())
  assert spec == {
      "workerPoolSpecs": [{
          "machineSpec": {"machineType": "g2-standard-8",
                          "acceleratorType": "NVIDIA_L4",
                          "acceleratorCount": 1},
          "replicaCount": 1,
          # No command: the image's ENTRYPOINT is python -m trainer.task.
          "containerSpec": {"imageUri": IMAGE,
                            "args": ["--data_dir=gs://b/dataset"]}}],
      "baseOutputDirectory": {"outputUriPrefix": "gs://b/job"},
      "scheduling": {"restartJobOnWorkerRestart": True},
  }


def test_spec_four_gpus_on_one_machine():
  spec = specs.custom_job_spec(vertex(
      gpus=4, args=("--data_dir=gs://b/dataset", "--epochs", "20",
                    "--persistent")))
  [pool] = spec["workerPoolSpecs"]
  assert pool["machineSpec"] == {"machineType": "g2-standard-48",
                                 "acceleratorType": "NVIDIA_L4",
                                 "acceleratorCount": 4}
  assert pool["replicaCount"] == 1
  assert pool["containerSpec"] == {
      "imageUri": IMAGE,
      "args": ["--data_dir=gs://b/dataset", "--epochs", "20", "--persistent"]}
  assert spec["baseOutputDirectory"] == {"outputUriPrefix": "gs://b/job"}
  assert spec["scheduling"] == {"restartJobOnWorkerRestart": True}
  assert "serviceAccount" not in spec and "tensorboard" not in spec


def test_spec_two_machines_of_four_gpus_on_spot():
  config = vertex(gpus=4, workers=2, spot=True, service_account=SA,
                  tensorboard="1234",
                  args=("--data_dir=gs://b/dataset", "--batch_size=128"))
  spec = specs.custom_job_spec(config)
  chief, workers = spec["workerPoolSpecs"]
  for pool in (chief, workers):
    assert pool["machineSpec"] == {"machineType": "g2-standard-48",
                                   "acceleratorType": "NVIDIA_L4",
                                   "acceleratorCount": 4}
    assert pool["containerSpec"] == {
        "imageUri": IMAGE,
        "args": ["--data_dir=gs://b/dataset", "--batch_size=128"]}
  assert chief["replicaCount"] == 1 and workers["replicaCount"] == 1
  assert spec["baseOutputDirectory"] == {"outputUriPrefix": "gs://b/job"}
  assert spec["scheduling"] == {"restartJobOnWorkerRestart": True,
                                "strategy": "SPOT"}
  assert spec["serviceAccount"] == SA
  assert spec["tensorboard"] == (
      "projects/my-proj/locations/us-central1/tensorboards/1234")
  assert set(spec) == {"workerPoolSpecs", "baseOutputDirectory", "scheduling",
                       "serviceAccount", "tensorboard"}


@pytest.mark.parametrize("gpu_type,gpus,machine", [
    ("NVIDIA_TESLA_T4", 1, "n1-standard-8"),
    ("NVIDIA_TESLA_T4", 4, "n1-standard-32"),
    ("NVIDIA_TESLA_V100", 8, "n1-standard-64"),
    ("NVIDIA_TESLA_A100", 2, "a2-highgpu-2g"),
    ("NVIDIA_A100_80GB", 8, "a2-ultragpu-8g"),
    ("NVIDIA_L4", 2, "g2-standard-24"),
    ("NVIDIA_H100_80GB", 8, "a3-highgpu-8g"),
])
def test_default_machine_fits_the_gpus(gpu_type, gpus, machine):
  config = vertex(gpu_type=gpu_type, gpus=gpus,
                  args=("--data_dir=gs://b/d", "--batch_size=160"))
  assert config.machine_type == machine
  assert specs.custom_job_spec(config)["workerPoolSpecs"][0]["machineSpec"] == {
      "machineType": machine, "acceleratorType": gpu_type,
      "acceleratorCount": gpus}


def test_cpu_only_has_no_accelerator():
  spec = specs.custom_job_spec(vertex(gpus=0, machine_type="n2-standard-16"))
  assert spec["workerPoolSpecs"][0]["machineSpec"] == {
      "machineType": "n2-standard-16"}


def test_generation_specs_shard_over_machines():
  one = specs.custom_job_spec(vertex("generate", args=("--num_samples=5000",)))
  [pool] = one["workerPoolSpecs"]
  assert pool["containerSpec"] == {
      "imageUri": IMAGE,
      "command": ["python", "-m", "trainer.generate"],
      "args": ["--model_dir=gs://b/job/model", "--output=gs://b/job/samples",
               "--num_samples=5000"]}
  # Generation reads no AIP_* folder: no baseOutputDirectory.
  assert set(one) == {"workerPoolSpecs", "scheduling"}

  three = specs.custom_job_spec(vertex(
      "generate", workers=3, gpus=0,
      args=("--model_dir=gs://c/m", "--output=gs://c/out", "--previews")))
  first, rest = three["workerPoolSpecs"]
  assert first["replicaCount"] == 1 and rest["replicaCount"] == 2
  for pool in (first, rest):
    assert pool["machineSpec"] == {"machineType": "n1-standard-8"}
    assert pool["containerSpec"] == {
        "imageUri": IMAGE,
        "command": ["python", "-m", "deploy.replica", "trainer.generate"],
        "args": ["--model_dir=gs://c/m", "--output=gs://c/out", "--previews"]}


def test_specs_are_valid_vertex_ai_messages():
  """The JSON parses strictly (unknown fields are errors) into the API's types."""
  aiplatform_v1 = pytest.importorskip(
      "google.cloud.aiplatform_v1",
      reason="google-cloud-aiplatform not installed (pip install -e .[vertex])")
  configs = [vertex(), vertex(gpus=4),
             vertex(gpus=4, workers=2, spot=True, service_account=SA,
                    tensorboard="7", args=("--data_dir=gs://b/d",
                                           "--batch_size=128")),
             vertex("generate", workers=3, gpus=0, args=())]
  for config in configs:
    spec = specs.custom_job_spec(config)
    parsed = aiplatform_v1.CustomJobSpec.from_json(json.dumps(spec))
    pools = parsed.worker_pool_specs
    assert [p.replica_count for p in pools] == [
        1] + ([config.workers - 1] if config.workers > 1 else [])
    machine = pools[0].machine_spec
    assert machine.machine_type == config.machine_type
    assert machine.accelerator_count == config.gpus
    if config.gpus:
      assert machine.accelerator_type.name == config.gpu_type
    assert parsed.scheduling.restart_job_on_worker_restart
    assert (parsed.scheduling.strategy.name == "SPOT") == config.spot
    assert list(pools[0].container_spec.args) == config.container_args()
    if config.job == "train":
      assert parsed.base_output_directory.output_uri_prefix == config.job_dir


# --- errors before anything is submitted --------------------------------------------------
@pytest.mark.parametrize("kw,message", [
    (dict(project=""), "--project is missing"),
    (dict(project="My Project"), "not a project ID"),
    (dict(region=""), "--region is missing"),
    (dict(region="us-central1-a"), "zones such as us-central1-a"),
    (dict(job_dir="/home/me/job"), "--job_dir=/home/me/job is not a gs:// path"),
    (dict(job_dir="gs://"), "is not a gs:// path"),
    (dict(args=("--data_dir=out/dataset",)),
     "--data_dir=out/dataset is not a gs:// path"),
    (dict(args=("--epochs=3",)), "--data_dir is missing"),
    (dict(args=("--data_dir=gs://b/d", "--job_dir=gs://b/other")),
     "pass the folder as deploy's --job_dir"),
    (dict(image=""), "make image"),
    (dict(machine_type="n1-standard-8"),
     "NVIDIA_L4 runs on g2-standard-"),
    (dict(gpu_type="NVIDIA_TESLA_A100", machine_type="g2-standard-8"),
     "for --gpus=1 use a2-highgpu-1g"),
    (dict(machine_type="g2-standard-48"),
     "has exactly 4 NVIDIA_L4 GPUs, not --gpus=1"),
    (dict(gpu_type="NVIDIA_TESLA_T4", gpus=3),
     "NVIDIA_TESLA_T4 attaches in counts of [1, 2, 4]"),
    (dict(gpu_type="NVIDIA_TESLA_V100", machine_type="n1-standard-16"),
     "more vCPUs than 1 NVIDIA_TESLA_V100 GPU(s) allow (at most 12)"),
    (dict(gpu_type="TPU_V3"), "not TPUs"),
    (dict(gpu_type="NVIDIA_GTX_1080", machine_type="n1-standard-8"),
     "--skip_table_checks"),
    (dict(gpus=0, machine_type="g2-standard-8"),
     "comes with GPUs: pass --gpus=1 --gpu_type=NVIDIA_L4"),
    (dict(region="us-south1"), "--region=us-south1 has no Vertex AI training "
     "GPUs in our table (as of"),
    (dict(gpus=8), "the default --batch_size=100 does not split over 8 "
     "replicas (1 machine(s) x 8 GPU(s)); pass a multiple of 8 after `--`, "
     "e.g. --batch_size=104"),
    (dict(gpus=4, workers=2, args=("--data_dir=gs://b/d", "--batch_size",
                                   "100")),
     "--batch_size=100 does not split over 8 replicas (2 machine(s)"),
    (dict(workers=0), "--workers=0 must be >= 1"),
    (dict(tensorboard="5"), "--tensorboard needs --service_account"),
    (dict(tensorboard="projects/my-proj/locations/europe-west4/tensorboards/5",
          service_account=SA), "is in europe-west4"),
    (dict(service_account="trainer"), "not a service account email"),
])
def test_bad_training_configs_fail_with_the_fix(kw, message):
  with pytest.raises(specs.SpecError) as e:
    vertex(**kw)
  assert message in str(e.value)


@pytest.mark.parametrize("args,message", [
    (("--num_shards=4",), "deploy sets the shards from --workers"),
    (("--shard_index", "1"), "deploy sets the shards from --workers"),
    (("--output=out/samples",), "--output=out/samples is not a gs:// path"),
    (("--primer=song.mid",), "--primer=song.mid is not a gs:// path"),
    (("--model_dir", "out/job/model"), "--model_dir=out/job/model is not"),
])
def test_bad_generation_configs_fail_with_the_fix(args, message):
  with pytest.raises(specs.SpecError) as e:
    vertex("generate", args=args)
  assert message in str(e.value)


def test_table_checks_can_be_skipped():
  config = vertex(region="africa-south1", gpu_type="NVIDIA_RTX_PRO_6000",
                  machine_type="g4-standard-48", skip_table_checks=True)
  assert specs.custom_job_spec(config)["workerPoolSpecs"][0]["machineSpec"] == {
      "machineType": "g4-standard-48", "acceleratorType": "NVIDIA_RTX_PRO_6000",
      "acceleratorCount": 1}
  # Paths are never skipped: a local job_dir cannot work anywhere remote.
  with pytest.raises(specs.SpecError, match="not a gs:// path"):
    vertex(job_dir="out/job", skip_table_checks=True)


def test_forwarded_flag_values():
  args = ["--a=1", "--b", "2", "--c", "--d=x=y", "--a=3"]
  assert specs.flag_value(args, "a") == "3"  # absl: the last one wins
  assert specs.flag_value(args, "b") == "2"
  assert specs.flag_value(args, "c") == "true"
  assert specs.flag_value(args, "d") == "x=y"
  assert specs.flag_value(args, "e") is None


# --- the vertex CLI and submission ------------------------------------------------------------
def run_cli(module, *args):
  return subprocess.run([sys.executable, "-m", module, *args], cwd=ROOT,
                        env=env(), capture_output=True, text=True, timeout=120)


def test_vertex_dry_run_prints_spec_and_gcloud_command(tmp_path):
  spec_file = str(tmp_path / "spec.json")
  done = run_cli("deploy.vertex", "train", "--project=my-proj",
                 "--region=europe-west4", f"--image={IMAGE}",
                 "--job_dir=gs://b/job", "--gpus=4", "--workers=2", "--spot",
                 "--display_name=demo run", f"--spec_file={spec_file}",
                 "--dry_run", "--", "--data_dir=gs://b/dataset",
                 "--batch_size=64")
  assert done.returncode == 0, done.stderr[-2000:]
  printed, command = done.stdout.split("\n# spec saved to ")
  spec = json.loads(printed)
  with open(spec_file) as f:
    assert json.load(f) == spec
  assert spec == specs.custom_job_spec(vertex(
      region="europe-west4", gpus=4, workers=2, spot=True,
      display_name="demo run",
      args=("--data_dir=gs://b/dataset", "--batch_size=64")))
  assert shlex.split(command.splitlines()[-1]) == [
      "gcloud", "ai", "custom-jobs", "create", "--project=my-proj",
      "--region=europe-west4", "--display-name=demo run",
      f"--config={spec_file}"]


@pytest.mark.parametrize("args,message", [
    (["train", "--region=us-central1", f"--image={IMAGE}",
      "--job_dir=gs://b/j", "--dry_run", "--", "--data_dir=gs://b/d"],
     "--project is missing"),
    (["train", "--project=my-proj", "--region=us-central1", f"--image={IMAGE}",
      "--job_dir=gs://b/j", "--data_dir=gs://b/d"],
     "Flags of trainer.task / trainer.generate go after `--`"),
    (["evaluate", "--project=my-proj"], "train|generate"),
])
def test_vertex_cli_errors(args, message):
  done = run_cli("deploy.vertex", *args)
  assert done.returncode != 0
  assert message in done.stderr
  assert "Traceback" not in done.stderr


class FakeJobService:
  def __init__(self):
    self.calls = []

  def create_custom_job(self, parent, custom_job):
    self.calls.append((parent, custom_job))
    return type("Created", (), {
        "name": f"{parent}/customJobs/8812345678901234567"})()


def test_submit_with_aiplatform_sends_the_spec():
  pytest.importorskip("google.cloud.aiplatform_v1",
                      reason="google-cloud-aiplatform not installed")
  config = vertex(gpus=4, workers=2, spot=True,
                  args=("--data_dir=gs://b/d", "--batch_size=128"))
  client = FakeJobService()
  job_id = launch.submit_with_aiplatform(
      config, specs.custom_job_spec(config), client=client)
  assert job_id == "8812345678901234567"
  [(parent, job)] = client.calls
  assert parent == "projects/my-proj/locations/us-central1"
  assert job.display_name == "rbm-test"
  pools = job.job_spec.worker_pool_specs
  assert [p.replica_count for p in pools] == [1, 1]
  assert pools[1].machine_spec.accelerator_type.name == "NVIDIA_L4"
  assert job.job_spec.scheduling.strategy.name == "SPOT"
  assert specs.console_url("my-proj", "us-central1", job_id) == (
      "https://console.cloud.google.com/vertex-ai/locations/us-central1/"
      "training/8812345678901234567?project=my-proj")


def test_gcloud_fallback_and_missing_clients(monkeypatch, tmp_path):
  config = vertex()
  seen = []

  def fake_run(argv, **kw):
    seen.append(argv)
    return subprocess.CompletedProcess(
        argv, 0, stdout="projects/123/locations/us-central1/customJobs/42\n")

  assert launch.submit_with_gcloud(config, "spec.json", run=fake_run) == "42"
  assert seen[0] == specs.gcloud_command(config, "spec.json") + [
      "--format=value(name)"]
  with pytest.raises(launch.SubmitError, match="failed"):
    launch.submit_with_gcloud(config, "spec.json", run=lambda argv, **kw:
                              subprocess.CompletedProcess(argv, 1, stdout=""))

  def no_aiplatform(*a, **k):
    raise ImportError("No module named 'google.cloud.aiplatform_v1'")

  monkeypatch.setattr(launch, "submit_with_aiplatform", no_aiplatform)
  monkeypatch.setattr(launch.shutil, "which", lambda name: None)
  with pytest.raises(launch.SubmitError, match=r"pip install -e '\.\[vertex\]'"):
    launch.vertex_job(config, str(tmp_path / "s.json"))
  monkeypatch.setattr(launch.shutil, "which", lambda name: "/usr/bin/gcloud")
  monkeypatch.setattr(launch, "submit_with_gcloud",
                      lambda config, path: "77")
  result = launch.vertex_job(config, str(tmp_path / "s.json"))
  assert result["job_id"] == "77" and result["url"].endswith(
      "/training/77?project=my-proj")


# --- replicas: which shard is mine ----------------------------------------------------------
def cluster_spec(pools, kind, index):
  """CLUSTER_SPEC as Vertex AI sets it for replica `index` of pool `kind`."""
  cluster = {f"workerpool{p}": [f"workerpool{p}-{i}:2222" for i in range(n)]
             for p, n in enumerate(pools)}
  return json.dumps({"cluster": cluster, "environment": "cloud",
                     "task": {"type": kind, "index": index}})


def test_replica_shards_cover_the_cluster_once():
  config = vertex("generate", workers=5, gpus=0, args=())
  pools = [p["replicaCount"] for p in
           specs.custom_job_spec(config)["workerPoolSpecs"]]
  shards = [specs.replica_shard({"CLUSTER_SPEC": cluster_spec(pools, kind, i)})
            for kind, n in (("workerpool0", pools[0]), ("workerpool1", pools[1]))
            for i in range(n)]
  assert sorted(shards) == [(k, 5) for k in range(5)]
  tf_config = {"cluster": {"chief": ["a:1"], "worker": ["b:1", "c:1"]},
               "task": {"type": "worker", "index": 1}}
  assert specs.replica_shard({"TF_CONFIG": json.dumps(tf_config)}) == (2, 3)


@pytest.mark.parametrize("environ,message", [
    ({}, "neither CLUSTER_SPEC nor TF_CONFIG"),
    ({"CLUSTER_SPEC": "{oops"}, "not a cluster spec"),
    ({"CLUSTER_SPEC": cluster_spec([1, 1], "workerpool2", 0)},
     "workerpool2:0 is not one of"),
])
def test_replica_shard_errors(environ, message):
  with pytest.raises(specs.SpecError, match=message):
    specs.replica_shard(environ)


def test_replica_refuses_shard_flags():
  with pytest.raises(specs.SpecError, match="--num_shards=2: deploy.replica"):
    replica.shard_argv(["trainer.generate", "--num_shards=2"],
                       {"CLUSTER_SPEC": cluster_spec([1, 1], "workerpool0", 0)})
  assert replica.shard_argv(
      ["trainer.generate", "--output=gs://b/o"],
      {"CLUSTER_SPEC": cluster_spec([1, 3], "workerpool1", 2)}) == [
          sys.executable, "-m", "trainer.generate", "--output=gs://b/o",
          "--num_shards=4", "--shard_index=3"]


def _tiny_model(root):
  """An 8-hidden-unit model in trainer.task's model/ format."""
  from trainer.models.rbm import maths as model_lib  # pylint: disable=g-import-not-at-top
  from trainer.models.rbm import training as rbm_training  # pylint: disable=g-import-not-at-top
  train = fake_dataset.structured_windows(100, seed=1)
  dataset = fake_dataset.write_dataset(os.path.join(root, "dataset"), train,
                                       train[:10])
  rbm = model_lib.RBM(dataset.n_visible, 8)
  rbm.weights.assign(np.random.default_rng(0).normal(
      0, 1, (dataset.n_visible, 8)).astype(np.float32))
  rbm_training.save(os.path.join(root, "job", "model"), rbm, dataset, {}, 1)


def _local(argv, root):
  """The spec's gs://b/... paths, on this disk."""
  return [a.replace("gs://b/", root + "/") for a in argv]


@pytest.mark.slow
def test_generation_replicas_write_every_sample_once(tmp_path):
  """Two replicas of the spec, with the CLUSTER_SPEC Vertex gives each, write
  exactly the samples one machine writes, byte for byte."""
  from trainer import config as config_lib  # pylint: disable=g-import-not-at-top
  from trainer.generation import lib as generate_lib  # pylint: disable=g-import-not-at-top
  root = str(tmp_path)
  _tiny_model(root)
  config = vertex("generate", workers=2, gpus=0,
                  args=("--num_samples=150", "--gibbs_steps=5"))
  pools = specs.custom_job_spec(config)["workerPoolSpecs"]
  procs = []
  for p, pool in enumerate(pools):
    command = pool["containerSpec"]["command"]
    assert command[:2] == ["python", "-m"]
    argv = [sys.executable] + command[1:] + _local(
        pool["containerSpec"]["args"], root)
    for i in range(pool["replicaCount"]):
      procs.append(subprocess.Popen(
          argv, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
          text=True, env=env(CLUSTER_SPEC=cluster_spec(
              [q["replicaCount"] for q in pools], f"workerpool{p}", i))))
  for proc in procs:
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err[-3000:]
  samples = os.path.join(root, "job", "samples")
  single = str(tmp_path / "single")
  generate_lib.generate(
      os.path.join(root, "job", "model"), single,
      config_lib.GenerateConfig(num_samples=150, gibbs_steps=5))
  names = sorted(n for n in os.listdir(single) if n.startswith("sample-"))
  assert len(names) == 150
  assert sorted(n for n in os.listdir(samples) if n.startswith("sample-")) == (
      names)
  for name in names:
    with open(os.path.join(samples, name), "rb") as a, \
        open(os.path.join(single, name), "rb") as b:
      assert a.read() == b.read(), name
  assert sorted(n for n in os.listdir(samples) if n.startswith("manifest")) == [
      "manifest-00000-of-00002.jsonl", "manifest-00001-of-00002.jsonl"]


# --- the container ------------------------------------------------------------------------------
DOCKERFILE = os.path.join(ROOT, "deploy", "Dockerfile.trainer")


def dockerfile():
  """(instruction, argument) pairs, continuation lines joined."""
  with open(DOCKERFILE) as f:
    text = re.sub(r"\\\n", " ", f.read())
  return [tuple(line.split(None, 1)) for line in text.splitlines()
          if line.strip() and not line.lstrip().startswith("#")]


def test_dockerfile_matches_the_package():
  steps = dockerfile()
  [base] = [arg for op, arg in steps if op == "FROM"]
  version = re.fullmatch(r"python:(\d+)\.(\d+)-slim", base)
  assert version, base
  with open(os.path.join(ROOT, "setup.py")) as f:
    setup = f.read()
  lowest = re.search(r'python_requires=">=(\d+)\.(\d+)"', setup)
  assert tuple(map(int, version.groups())) >= tuple(map(int, lowest.groups()))
  for op, arg in steps:
    if op == "COPY":
      for source in arg.split()[:-1]:
        assert os.path.exists(os.path.join(ROOT, source)), source
  copied = {source.rstrip("/") for op, arg in steps if op == "COPY"
            for source in arg.split()[:-1]}
  # Every package the CLIs import is in the image; benchmarks and tests are
  # not (they are not installed either).
  assert {"common", "preprocess", "trainer", "deploy"} <= copied
  assert not {"benchmarks", "tests"} & copied
  assert not glob.glob(os.path.join(ROOT, "trainer", "**", "*bench*"),
                       recursive=True)
  # The base has no CUDA: the gpu extra brings TensorFlow's own CUDA wheels,
  # for the same TensorFlow versions as the trainer extra.
  pin = re.search(r'"tensorflow(>=[^"]+)"', setup).group(1)
  assert f'"gpu": ["tensorflow[and-cuda]{pin}"]' in setup
  assert any("pip install '.[trainer,gpu]'" in arg
             for op, arg in steps if op == "RUN")


@pytest.mark.slow
def test_container_entry_point_runs():
  """ENTRYPOINT as Vertex AI runs it, with this venv's python."""
  [entry] = [json.loads(arg) for op, arg in dockerfile() if op == "ENTRYPOINT"]
  assert entry == ["python", "-m", "trainer.task"]
  done = subprocess.run([sys.executable] + entry[1:] + ["--help"], cwd=ROOT,
                        env=env(), capture_output=True, text=True, timeout=120)
  # absl prints the help to stdout and exits 1 by convention.
  assert done.returncode in (0, 1) and "Traceback" not in done.stderr, (
      done.stderr[-2000:])
  assert "Train a model" in done.stdout and "--data_dir" in done.stdout


# --- TF_CONFIG as Vertex AI sets it: MultiWorkerMirroredStrategy --------------------------------
def vertex_tf_configs(spec):
  """The TF_CONFIG of every replica of `spec`: pool 0 = chief, pool 1 = worker
  (Vertex AI's mapping), on loopback ports."""
  counts = [p["replicaCount"] for p in spec["workerPoolSpecs"]]
  ports = iter(net.free_ports(sum(counts)))
  cluster = {kind: [f"127.0.0.1:{next(ports)}" for _ in range(n)]
             for kind, n in zip(("chief", "worker"), counts)}
  return [json.dumps({"cluster": cluster, "environment": "cloud",
                      "task": {"type": kind, "index": i}})
          for kind, n in zip(("chief", "worker"), counts) for i in range(n)]


ALL_REDUCE = """
import json, os
import tensorflow as tf
from trainer.training import distribute
strategy = distribute.make_strategy()
task = json.loads(os.environ["TF_CONFIG"])["task"]
mine = 1.0 if task["type"] == "chief" else 10.0

@tf.function
def step():
  ctx = tf.distribute.get_replica_context()
  return ctx.all_reduce(tf.distribute.ReduceOp.SUM, tf.constant(mine))

total = strategy.experimental_local_results(strategy.run(step))[0]
print(json.dumps({"multi_worker": isinstance(
                      strategy, tf.distribute.MultiWorkerMirroredStrategy),
                  "replicas": strategy.num_replicas_in_sync,
                  "sum": float(total)}))
"""


def run_replicas(argv, tf_configs, extra_env=None, timeout=300):
  procs = [subprocess.Popen(argv, cwd=ROOT, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True,
                            env=env(TF_CONFIG=c, **(extra_env or {})))
           for c in tf_configs]
  try:
    results = [p.communicate(timeout=timeout) for p in procs]
  finally:
    for p in procs:
      if p.poll() is None:
        p.kill()
  return [(p.returncode, out, err) for p, (out, err) in zip(procs, results)]


@pytest.mark.slow
def test_vertex_tf_config_gives_multi_worker_all_reduce():
  spec = specs.custom_job_spec(vertex(gpus=0, workers=2))
  tf_configs = vertex_tf_configs(spec)
  assert len(tf_configs) == 2
  for code, out, err in run_replicas([sys.executable, "-c", ALL_REDUCE],
                                     tf_configs):
    assert code == 0, err[-3000:]
    assert json.loads(out.strip().splitlines()[-1]) == {
        "multi_worker": True, "replicas": 2, "sum": 11.0}


@pytest.mark.slow
def test_two_trainer_replicas_train_from_the_spec(tmp_path):
  """trainer.task on both replicas of a 2-machine spec, with the TF_CONFIG and
  AIP_* folders Vertex AI would give them: they train together, and only the
  chief writes under the job folder."""
  root = str(tmp_path)
  train = fake_dataset.structured_windows(64, seed=1)
  fake_dataset.write_dataset(os.path.join(root, "dataset"), train, train[:16])
  spec = specs.custom_job_spec(vertex(
      gpus=0, workers=2, args=(
          "--data_dir=gs://b/dataset", "--num_hidden=8", "--batch_size=8",
          "--max_steps=6", "--steps_per_checkpoint=3", "--log_every_steps=3",
          "--summary_every_steps=3")))
  pool = spec["workerPoolSpecs"][0]
  assert spec["workerPoolSpecs"][1]["containerSpec"] == pool["containerSpec"]
  [job_dir] = _local([spec["baseOutputDirectory"]["outputUriPrefix"]], root)
  # baseOutputDirectory -> the AIP_* folders of a CustomJob (not a trial).
  aip = {"AIP_MODEL_DIR": f"{job_dir}/model/",
         "AIP_CHECKPOINT_DIR": f"{job_dir}/checkpoints/",
         "AIP_TENSORBOARD_LOG_DIR": f"{job_dir}/logs/"}
  [entry] = [json.loads(arg) for op, arg in dockerfile() if op == "ENTRYPOINT"]
  argv = [sys.executable] + entry[1:] + _local(pool["containerSpec"]["args"],
                                               root)
  results = run_replicas(argv, vertex_tf_configs(spec), aip)
  for code, _, err in results:
    assert code == 0, err[-3000:]
    assert "on 2 replica(s)" in err
  assert sorted(os.listdir(job_dir)) == ["checkpoints", "logs", "model"]
  assert sorted(os.listdir(os.path.join(job_dir, "model"))) == [
      "model.json", "params.npz"]
  with open(os.path.join(job_dir, "model", "model.json")) as f:
    assert json.load(f)["step"] == 6
  assert any(n.startswith("events") for n in os.listdir(
      os.path.join(job_dir, "logs")))


# --- Dataflow -----------------------------------------------------------------------------------
def dataflow(**kw):
  base = dict(project="my-proj", region="us-central1",
              input=("gs://b/corpus/*.mid",), output_dir="gs://b/dataset",
              temp_location="gs://b/dataflow/tmp", staging_location="",
              job_name="rbm-preprocess-test",
              setup_file=os.path.join(ROOT, "setup.py"))
  base.update(kw)
  return specs.DataflowConfig(**base)


def test_dataflow_options_as_beam_reads_them():
  from apache_beam.options import pipeline_options as po  # pylint: disable=g-import-not-at-top
  config = dataflow(machine_type="n2-standard-4", max_num_workers=50,
                    service_account_email=SA)
  options = po.PipelineOptions(specs.dataflow_args(config))
  assert options.view_as(po.StandardOptions).runner == "DataflowRunner"
  cloud = options.view_as(po.GoogleCloudOptions)
  assert (cloud.project, cloud.region) == ("my-proj", "us-central1")
  assert cloud.temp_location == "gs://b/dataflow/tmp"
  assert cloud.staging_location == "gs://b/dataflow/tmp/staging"
  assert cloud.job_name == "rbm-preprocess-test"
  assert cloud.service_account_email == SA
  worker = options.view_as(po.WorkerOptions)
  assert (worker.machine_type, worker.max_num_workers) == ("n2-standard-4", 50)
  assert options.view_as(po.SetupOptions).setup_file == os.path.join(
      ROOT, "setup.py")


@pytest.mark.parametrize("kw,message", [
    (dict(project=""), "--project is missing"),
    (dict(region=""), "--region is missing"),
    (dict(temp_location=""), "--temp_location is missing"),
    (dict(input=("data/chorales/*.mid",)), "--input=data/chorales/*.mid is "
     "not a gs:// path"),
    (dict(input=()), "--input is missing"),
    (dict(eval_input=("data/test/*.mid",)), "--eval_input=data/test/*.mid is "
     "not a gs:// path"),
    (dict(valid_input=("gs://b/v/*.mid?access_token=x",)),
     "--valid_input=gs://b/v/*.mid... has a query string"),
    (dict(output_dir="out/dataset"), "--output_dir=out/dataset is not a gs://"),
    (dict(job_name="My_Job"), "lowercase letters, digits and hyphens"),
    (dict(machine_type="g2-standard-8"), "preprocessing is CPU work"),
    (dict(max_num_workers=0), "must be >= 1"),
])
def test_bad_dataflow_configs_fail_with_the_fix(kw, message):
  with pytest.raises(specs.SpecError) as e:
    dataflow(**kw)
  assert message in str(e.value)


@pytest.mark.parametrize("bucket,url", [("b-1", "gs://b-1"),
                                        ("gs://b-1/", "gs://b-1")])
def test_bucket_names(bucket, url):
  assert specs.bucket_url(bucket) == url


@pytest.mark.parametrize("bucket,message", [
    ("", "--bucket is missing"), ("gs://b/sub", "not a bucket name"),
    ("My Bucket", "not a bucket name")])
def test_bad_bucket_names(bucket, message):
  with pytest.raises(specs.SpecError, match=message):
    specs.bucket_url(bucket)


def test_dataflow_cli_dry_run_and_errors():
  done = run_cli("deploy.dataflow", "--project=my-proj", "--region=us-east1",
                 "--bucket=my-bucket", "--input=gs://b/corpus/*.mid",
                 "--output_dir=gs://b/dataset", "--transpose=2", "--overwrite",
                 "--job_name=demo", "--max_num_workers=20", "--dry_run",
                 "--experiments=shuffle_mode=service")
  assert done.returncode == 0, done.stderr[-2000:]
  assert shlex.split(done.stdout.strip()) == [
      "python", "-m", "preprocess.main", "--input=gs://b/corpus/*.mid",
      "--output_dir=gs://b/dataset", "--transpose=2", "--overwrite",
      "--runner=DataflowRunner", "--project=my-proj", "--region=us-east1",
      "--temp_location=gs://my-bucket/dataflow/tmp",
      "--staging_location=gs://my-bucket/dataflow/staging",
      f"--setup_file={os.path.join(ROOT, 'setup.py')}", "--job_name=demo",
      "--machine_type=n1-standard-2", "--max_num_workers=20",
      "--experiments=shuffle_mode=service"]
  # The split flags reach the job: explicit split globs and the valid share.
  done = run_cli("deploy.dataflow", "--project=my-proj", "--region=us-east1",
                 "--bucket=my-bucket", "--input=gs://b/jsb/train/*.mid",
                 "--eval_input=gs://b/jsb/test/*.mid",
                 "--valid_input=gs://b/jsb/valid/*.mid",
                 "--output_dir=gs://b/dataset", "--job_name=demo", "--dry_run")
  assert done.returncode == 0, done.stderr[-2000:]
  assert shlex.split(done.stdout.strip())[3:7] == [
      "--input=gs://b/jsb/train/*.mid", "--eval_input=gs://b/jsb/test/*.mid",
      "--valid_input=gs://b/jsb/valid/*.mid", "--output_dir=gs://b/dataset"]
  done = run_cli("deploy.dataflow", "--project=my-proj", "--region=us-east1",
                 "--bucket=my-bucket", "--input=gs://b/c/*.mid",
                 "--output_dir=gs://b/d", "--valid_fraction=0.1",
                 "--job_name=demo", "--dry_run")
  assert done.returncode == 0 and "--valid_fraction=0.1" in done.stdout
  for args, message in (
      (["--project=my-proj", "--region=us-east1", "--bucket=my-bucket",
        "--num_workerz=3"], "Unknown arguments ['--num_workerz=3']"),
      (["--project=my-proj", "--region=us-east1", "--bucket=my-bucket",
        "--runner=DirectRunner"], "always runs on Dataflow")):
    done = run_cli("deploy.dataflow", "--input=gs://b/c/*.mid",
                   "--output_dir=gs://b/d", "--dry_run", *args)
    assert done.returncode != 0 and message in done.stderr, (args, done.stderr)
    assert "Traceback" not in done.stderr


def test_dataflow_launch_runs_the_pipeline_with_those_options(gcs_bucket):
  """The launch path end to end on the GCS emulator; only the runner is swapped
  for DirectRunner (Dataflow itself cannot run offline)."""
  from google.cloud import storage  # pylint: disable=g-import-not-at-top
  from preprocess import config as config_lib  # pylint: disable=g-import-not-at-top
  from preprocess import pipeline  # pylint: disable=g-import-not-at-top
  bucket = storage.Client().bucket(gcs_bucket)
  for i in range(3):
    bucket.blob(f"corpus/p{i}.mid").upload_from_string(
        midi_builders.make_midi(midi_builders.scale(45, low=50 + i)))
  bucket.blob("test/t.mid").upload_from_string(
      midi_builders.make_midi(midi_builders.scale(30, low=60)))
  config = dataflow(input=(f"gs://{gcs_bucket}/corpus/*.mid",),
                    eval_input=(f"gs://{gcs_bucket}/test/*.mid",),
                    output_dir=f"gs://{gcs_bucket}/dataset",
                    temp_location=f"gs://{gcs_bucket}/dataflow/tmp")
  counts = launch.dataflow_job(
      config, config_lib.PreprocessConfig(num_shards=1),
      extra_options=["--runner=DirectRunner"])
  assert counts["converted"] == 4 and counts["windows"]["train"] == 9, counts
  assert counts["windows"]["eval"] == 2, counts  # the --eval_input file
  assert bucket.blob("dataset/dataset.json").exists()
  with pytest.raises(pipeline.LaunchError, match="already holds a dataset"):
    launch.dataflow_job(config, config_lib.PreprocessConfig(),
                        extra_options=["--runner=DirectRunner"])


def test_gcp_catalog_is_dated_sourced_and_consistent():
  from deploy import gcp_catalog  # pylint: disable=g-import-not-at-top
  assert re.fullmatch(r"\d{4}-\d{2}", gcp_catalog.AS_OF)
  assert "documentation" in gcp_catalog.SOURCE
  assert specs.TABLES_AS_OF == gcp_catalog.AS_OF
  # Every machine with built-in GPUs belongs to a GPU-only family, so a CPU
  # job on it is refused (check_machine); N1 counts are ints after loading.
  for machines in specs.BUILT_IN_GPUS.values():
    assert all(m.startswith(gcp_catalog.GPU_FAMILIES) for m in machines)
  for limits in specs.N1_GPUS.values():
    assert all(isinstance(n, int) and n >= 1 for n in limits)
  assert specs.default_machine_type("NVIDIA_TESLA_T4", 2) == "n1-standard-16"
  assert specs.default_machine_type("NVIDIA_L4", 4) == "g2-standard-48"
  assert "us-central1" in specs.GPU_REGIONS
