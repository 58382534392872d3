"""common/cli.py: flags generated from a dataclass, presets, one-line errors."""

import dataclasses
import os
import subprocess
import sys

from absl import flags
import pytest

from common import cli
from tests import cli_example

_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _parse(argv):
  values = flags.FlagValues()
  cli.define_flags(cli_example.ExampleConfig, flag_values=values)
  values(["prog", *argv])
  return values


def test_flags_are_generated_from_the_fields_with_their_help():
  values = _parse([])
  assert values["count"].default == 200 and values["count"].help == "How many."
  assert values["example_rate"].value == 0.5  # a renamed flag
  assert values["mode"].parser.enum_values == ["a", "b"]
  assert values["names"].value == ["x"]


def test_config_from_flags_round_trips_and_names_bad_values():
  config = cli.config_from_flags(
      cli_example.ExampleConfig,
      flag_values=_parse(["--count=3", "--names=p,q", "--fast", "--example_rate=2"]))
  assert config == cli_example.ExampleConfig(count=3, names=("p", "q"), fast=True, rate=2.0)
  assert cli.flag_args(config) == ["--count=3", "--names=p,q", "--fast", "--example_rate=2.0"]
  with pytest.raises(cli.UsageError, match="--count=0"):
    cli.config_from_flags(cli_example.ExampleConfig, flag_values=_parse(["--count=0"]))


def test_a_preset_fills_what_the_flags_do_not_give():
  cls = cli_example.ExampleConfig
  assert cli.config_from_flags(cls, flag_values=_parse(["--preset=seed"])).count == 50
  given = cli.config_from_flags(cls, flag_values=_parse(["--preset=seed", "--count=7",
                                                          "--nofast"]))
  assert (given.count, given.fast) == (7, False)
  assert cli.preset(cls, "seed", mode="b") == cls(count=50, fast=True, mode="b")
  with pytest.raises(cli.UsageError, match="--preset=nope"):
    cli.preset(cls, "nope")


def test_a_field_without_help_is_a_programming_error():
  @dataclasses.dataclass(frozen=True)
  class NoHelp:
    x: int = 1
  with pytest.raises(TypeError, match="no help"):
    cli.define_flags(NoHelp, flag_values=flags.FlagValues())


def _run(*args):
  return subprocess.run([sys.executable, "-m", "tests.cli_example", *args], cwd=_ROOT,
                        capture_output=True, text=True, timeout=60)


@pytest.mark.parametrize("args, code, words", [
    ([], 2, "--path is required"),
    (["--path=x", "--count=0"], 2, "--count=0 must be >= 1"),
    (["--path=x", "--count=many"], 2, "--count=many"),
    (["--path=x", "--bogus=1"], 2, "bogus"),
    (["--path=x", "stray"], 2, "unexpected arguments ['stray']"),
    (["--path=/nonexistent/file.mid"], 2, "No such file or directory: /nonexistent/file.mid"),
    (["--path=x", "--mode=b"], 1, "mode b fails while running"),
])
def test_errors_are_one_or_two_lines_with_exit_codes(args, code, words):
  out = _run(*args)
  assert out.returncode == code, out.stderr
  assert words in out.stderr
  assert out.stderr.startswith("tests.cli_example: error: ")
  assert len(out.stderr.strip().splitlines()) <= 2, out.stderr
  assert "Traceback" not in out.stderr


_STOPPED = """
import errno, sys
from common import cli
def main(argv):
  if what == "full":
    raise OSError(errno.ENOSPC, "No space left on device", "/out/x")
  raise KeyboardInterrupt
what = sys.argv.pop()
sys.argv[0] = sys.argv.pop()  # the program's name, as cli reports it
cli.run(main)
"""


@pytest.mark.parametrize("program, what, code, words", [
    ("trainer.task", "stop", 130, "interrupted; rerun the same command to resume"),
    ("preprocess.main", "stop", 130,
     "interrupted; rerun with --overwrite to start again"),
    ("deploy.dataflow", "stop", 130,
     "rerun with --overwrite to start again, once the Dataflow job has ended"),
    ("trainer.generate", "full", 1, "no space left on device (/out/x): what was "
     "written before is kept; free some space and rerun the same command to resume."),
    ("preprocess.main", "full", 1, "no space left on device (/out/x): free some "
     "space and rerun with --overwrite to start again."),
    ("trainer.evaluate", "stop", 130,
     "interrupted; rerun the same command (it starts over)"),
    ("deploy.vertex", "stop", 130, "interrupted; check whether the job was "
     "submitted (gcloud ai custom-jobs list) before rerunning"),
])
def test_a_stopped_run_says_how_this_program_goes_on(program, what, code, words):
  # Training and generation resume; preprocessing starts again, with
  # --overwrite since its output folder holds a run that did not finish.
  out = subprocess.run([sys.executable, "-c", _STOPPED, program, what],
                       cwd=_ROOT, capture_output=True, text=True, timeout=60)
  assert out.returncode == code, out.stderr
  assert out.stderr.startswith(f"{program}: error: "), out.stderr
  assert words in out.stderr, out.stderr
  assert len(out.stderr.strip().splitlines()) == 1, out.stderr


def test_success_runs_main(tmp_path):
  (tmp_path / "in.txt").write_text("hi")
  out = _run(f"--path={tmp_path / 'in.txt'}", "--preset=seed")
  assert out.returncode == 0, out.stderr
  assert "count=50" in out.stdout and "fast=True" in out.stdout


def test_no_package_lets_pyfluidsynth_print_to_stdout():
  # pyfluidsynth prints "'fluidsynth' was found at ..." on import when CI is
  # set, and pretty_midi imports it: the CLIs' JSON on stdout would break.
  code = ("import importlib, sys; importlib.import_module(sys.argv[1]); "
          "import pretty_midi")
  for package in ("common", "preprocess", "trainer", "deploy"):
    out = subprocess.run([sys.executable, "-c", code, package], cwd=_ROOT,
                         capture_output=True, text=True, timeout=120,
                         env=dict(os.environ, CI="true"))
    assert out.returncode == 0, out.stderr
    assert out.stdout == "", (package, out.stdout)


_KERAS_PROBE = """
import sys
from common import cli

def main(argv):
  import tensorflow as tf
  print(tf.constant(2.0).numpy(), "keras" in sys.modules)

cli.run(main)
"""


@pytest.mark.parametrize("user_value,keras_loaded", [(None, "False"),
                                                     ("0", "True")])
def test_tensorflow_starts_without_keras_unless_the_user_chose(
    user_value, keras_loaded):
  env = {k: v for k, v in os.environ.items() if k != cli.SKIP_KERAS[0]}
  if user_value is not None:
    env[cli.SKIP_KERAS[0]] = user_value
  out = subprocess.run([sys.executable, "-c", _KERAS_PROBE], cwd=_ROOT,
                       env=env, capture_output=True, text=True, timeout=120)
  assert out.returncode == 0, out.stderr[-2000:]
  assert out.stdout.split() == ["2.0", keras_loaded]
