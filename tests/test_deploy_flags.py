"""deploy.vertex checks the flags it forwards to trainer.task / trainer.generate.

A misspelt flag, a value the job rejects or a path the cloud machine cannot
read fails before anything is submitted (also with --dry_run), with one line
that names it, instead of failing on Vertex AI after the machines started.
"""

import dataclasses
import typing

import pytest
from absl import flags

from deploy import specs
from tests.test_deploy import IMAGE
from tests.test_deploy import run_cli
from tests.test_deploy import vertex

DATA = "--data_dir=gs://b/dataset"


@pytest.mark.parametrize("args,message", [
    ((DATA, "--num_hiden=50"),
     "--num_hiden is not a flag of trainer.task (did you mean --num_hidden"),
    ((DATA, "--frobnicate"), "--frobnicate is not a flag of trainer.task; see"),
    ((DATA, "--num_hidden=-3"),
     "trainer.task flags after `--`: --num_hidden=-3 must be >= 1."),
    ((DATA, "--num_hidden=abc"), "--num_hidden=abc: invalid literal for int()"),
    ((DATA, "--lr_schedule=linear"), "--lr_schedule=linear: value should be "
     "one of <constant|cosine>"),
    ((DATA, "--preset=best"), "--preset=best: value should be one of"),
    ((DATA, "--num_hidden_recurrent=50"),
     "--num_hidden_recurrent is a setting of --model=rnn_rbm"),
    ((DATA, "--model=rnn_rbm", "--init_from=/home/me/model"),
     "--init_from=/home/me/model is not a gs:// path"),
    ((DATA, "--init_from", "out/rbm/model"),
     "--init_from=out/rbm/model is not a gs:// path"),
    ((DATA, "epochs=3"), "unexpected arguments ['epochs=3']"),
    ((DATA, "--flagfile=train.flags"),
     "--flagfile=train.flags after `--`: trainer.task would read the file"),
])
def test_bad_forwarded_training_flags_fail_with_the_fix(args, message):
  with pytest.raises(specs.SpecError) as e:
    vertex(args=args)
  assert message in str(e.value)
  assert "\n" not in str(e.value)


@pytest.mark.parametrize("args,message", [
    (("--num_sample=100",),
     "--num_sample is not a flag of trainer.generate (did you mean "
     "--num_samples"),
    (("--num_samples=0",),
     "trainer.generate flags after `--`: --num_samples=0 must be >= 1."),
    (("--temperature=hot",), "--temperature=hot: could not convert"),
    (("--gibbs_steps_per_frame=0",), "--gibbs_steps_per_frame=0 must be in"),
    (("--primer=/home/me/song.mid",),
     "--primer=/home/me/song.mid is not a gs:// path"),
    (("--init=data", "--data_dir=out/dataset"),
     "--data_dir=out/dataset is not a gs:// path"),
    (("--output=",), "--output is missing: a gs://BUCKET/PATH"),
    (("--previews", "--soundfont=/usr/share/sounds/sf2/FluidR3_GM.sf2"),
     "--soundfont=/usr/share/sounds/sf2/FluidR3_GM.sf2 after `--`: the job "
     "reads it as a file inside the container"),
])
def test_bad_forwarded_generation_flags_fail_with_the_fix(args, message):
  with pytest.raises(specs.SpecError) as e:
    vertex("generate", args=args)
  assert message in str(e.value)
  assert "\n" not in str(e.value)


def test_good_forwarded_flags_pass():
  vertex(args=(DATA, "--model=rnn_rbm", "--init_from=gs://b/rbm/model",
               "--num_hidden_recurrent=50", "--preset=original"))
  vertex(args=(DATA, "--epochs", "3", "--nomomentum", "--verbosity=1",
               "--alsologtostderr"))
  vertex("generate", args=("--primer=gs://b/song.mid", "--num_samples=10",
                           "--temperature", "1.0", "--previews"))
  vertex("generate", workers=2, gpus=0, args=(
      "--model_dir=gs://b/m", "--output=gs://b/out", "--init=data",
      "--data_dir=gs://b/dataset"))


def test_training_flags_get_the_models_defaults():
  """As trainer.task: --model=rnn_rbm's batch (8) when --batch_size is not
  given, not the window RBM's (100)."""
  vertex(gpus=0, workers=5)  # 100 = 5 x 20
  with pytest.raises(specs.SpecError, match=r"the default --batch_size=8 does "
                     r"not split over 5 replicas"):
    vertex(gpus=0, workers=5, args=(DATA, "--model=rnn_rbm"))
  vertex(gpus=0, workers=5, args=(DATA, "--model=rnn_rbm", "--batch_size=10"))


def test_parsing_leaves_this_process_flags_alone():
  before = flags.FLAGS["verbosity"].value
  names = set(flags.FLAGS)  # other test modules may have defined some
  values = {name: flags.FLAGS[name].value for name in names}
  vertex(args=(DATA, "--verbosity=2", "--num_hidden=20"))
  assert flags.FLAGS["verbosity"].value == before
  assert set(flags.FLAGS) == names
  assert {name: flags.FLAGS[name].value for name in names} == values


def test_every_path_flag_is_checked():
  """A new `str | None` setting of a forwarded config is a path until shown
  otherwise: it must be checked here (path_flags) or refused (soundfont)."""
  from trainer import config as trainer_config  # pylint: disable=g-import-not-at-top
  for job, classes in (("train", (trainer_config.TrainDirs,
                                  trainer_config.TrainConfig)),
                       ("generate", (trainer_config.GeneratePaths,
                                     trainer_config.GenerateConfig))):
    optional = set()
    for config_cls in classes:
      hints = typing.get_type_hints(config_cls)
      optional |= {f.name for f in dataclasses.fields(config_cls)
                   if f.metadata.get("cli", True)
                   and hints[f.name] == (str | None)}
    assert optional - set(specs.path_flags(job)) <= {"soundfont"}, job
  assert set(specs.path_flags("train")) >= {"data_dir", "init_from", "job_dir"}
  assert set(specs.path_flags("generate")) >= {"model_dir", "output", "primer",
                                               "data_dir"}


DEPLOY = ["--project=my-proj", "--region=us-central1", f"--image={IMAGE}",
          "--job_dir=gs://b/job", "--dry_run", "--"]


@pytest.mark.parametrize("args,message", [
    (["train"] + DEPLOY + [DATA, "--num_hiden=50"],
     "deploy.vertex: error: --num_hiden is not a flag of trainer.task (did you "
     "mean --num_hidden"),
    (["train"] + DEPLOY + [DATA, "--num_hidden=-3"],
     "deploy.vertex: error: trainer.task flags after `--`: --num_hidden=-3 "
     "must be >= 1."),
    (["train"] + DEPLOY + [DATA, "--model=rnn_rbm", "--init_from=/home/me/m"],
     "deploy.vertex: error: --init_from=/home/me/m is not a gs:// path"),
    (["generate"] + DEPLOY + ["--primer=/home/me/song.mid"],
     "deploy.vertex: error: --primer=/home/me/song.mid is not a gs:// path"),
    (["generate"] + DEPLOY + ["--num_sample=5"],
     "deploy.vertex: error: --num_sample is not a flag of trainer.generate"),
])
def test_vertex_cli_refuses_bad_job_flags(args, message):
  done = run_cli("deploy.vertex", *args)
  assert done.returncode == 2, done.stderr[-2000:]
  assert message in done.stderr
  assert "Traceback" not in done.stderr
  assert len(done.stderr.strip().splitlines()) == 1, done.stderr
  assert not done.stdout  # no spec printed


def test_vertex_cli_dry_runs_good_job_flags():
  done = run_cli("deploy.vertex", "train", *DEPLOY, DATA, "--model=rnn_rbm",
                 "--init_from=gs://b/rbm/model", "--alsologtostderr")
  assert done.returncode == 0, done.stderr[-2000:]
  assert '"--init_from=gs://b/rbm/model"' in done.stdout
