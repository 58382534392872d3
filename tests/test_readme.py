"""README.md and docs/*.md: short enough, and every command in them runs.

For each fenced code block's commands: `make TARGET [VAR=value]` names a
target and variables of the Makefile; `python -m MODULE --flag ...` names a
module that exists and flags it defines (read from its `--help`). Flags in a
make variable that a target hands to a job (`TRAIN_FLAGS=--epochs=20`) are
checked against that job's module. Other commands (gcloud, docker, pip, ...)
are skipped. Links to files of the repository must resolve.
"""

import concurrent.futures
import functools
import glob
import importlib.util
import os
import re
import shlex
import subprocess
import sys

import pytest

_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
_README = os.path.join(_ROOT, "README.md")
_DOCS = [_README, *sorted(glob.glob(os.path.join(_ROOT, "docs", "*.md"))),
         os.path.join(_ROOT, "benchmarks", "RESULTS.md")]
_MAX_README_LINES = 300

# A fenced block: ``` or ```sh / ```bash / ```console ... ```.
_FENCE = re.compile(r"^```[^\n]*\n(.*?)^```", re.S | re.M)
# A flag as absl's --help lists it: "  --name: ..." or "  --[no]name: ...".
_HELP_FLAG = re.compile(r"^\s*--(\[no\])?([a-z_0-9]+):", re.M)
_FLAG = re.compile(r"^--([a-z][a-z_0-9]*)")
_MAKE_TARGET = re.compile(r"^([A-Za-z0-9_.-]+)\s*:(?!=)", re.M)
_MAKE_VAR = re.compile(r"^([A-Z_][A-Z0-9_]*)\s*[?:+]?=", re.M)
_LINK = re.compile(r"\]\(([^)#\s]*)(?:#([^)\s]*))?\)")
_HEADING = re.compile(r"^#+\s+(.*?)\s*$", re.M)
# Flags every absl CLI understands.
_ABSL_FLAGS = {"help", "helpfull", "helpshort", "helpxml", "flagfile", "undefok"}
# Make variables whose value the Makefile passes to a job as flags.
_MAKE_FLAG_VARS = {
    "PREPROCESS_FLAGS": "preprocess.main",
    "TRAIN_FLAGS": "trainer.task",
    "EVAL_FLAGS": "trainer.evaluate",
    "GENERATE_FLAGS": "trainer.generate",
    "COMPARE_FLAGS": "trainer.compare",
    "VERTEX_FLAGS": "deploy.vertex",
    "DATAFLOW_FLAGS": "deploy.dataflow",
    "BENCH_FLAGS": "benchmarks.chorales_benchmark",
}
# CLIs that hand the flags they do not define to Beam.
_BEAM_MODULES = {"preprocess.main", "deploy.dataflow"}
# CLIs whose flags after `--` belong to another module, by first argument.
_FORWARDS = {("deploy.vertex", "train"): "trainer.task",
             ("deploy.vertex", "generate"): "trainer.generate"}
_SEPARATORS = {"&&", "||", ";", "|"}


def _read(path):
  with open(path, encoding="utf-8") as f:
    return f.read()


def _commands(text):
  """The commands of every fenced block: continuations joined, comments cut."""
  commands = []
  for block in _FENCE.findall(text):
    logical = ""
    for line in block.splitlines():
      if line.rstrip().endswith("\\"):
        logical += line.rstrip()[:-1] + " "
        continue
      logical += line
      if logical.strip() and not logical.lstrip().startswith("#"):
        commands.append(logical.strip())
      logical = ""
  return commands


def _segments(command):
  """Each simple command of a line (split at &&, ;, |), as tokens."""
  try:
    tokens = shlex.split(command, comments=True)
  except ValueError:  # not shell (e.g. a line of program output)
    return []
  segments, current = [], []
  for token in tokens:
    if token in _SEPARATORS:
      segments.append(current)
      current = []
    else:
      current.append(token)
  segments.append(current)
  return [s for s in segments if s]


def _python_module(tokens):
  """(module, its arguments) for `[VAR=x] [time] python -m MODULE ...`, else None."""
  while tokens and (re.match(r"^[A-Z_][A-Z0-9_]*=", tokens[0]) or tokens[0] == "time"):
    tokens = tokens[1:]
  if (len(tokens) >= 3 and os.path.basename(tokens[0]).startswith("python")
      and tokens[1] == "-m"):
    return tokens[2], tokens[3:]
  return None


def _is_project_module(module):
  top = module.split(".")[0]
  return os.path.isdir(os.path.join(_ROOT, top)) or os.path.isfile(
      os.path.join(_ROOT, top + ".py"))


def _module_file_exists(module):
  base = os.path.join(_ROOT, *module.split("."))
  return os.path.isfile(base + ".py") or os.path.isfile(os.path.join(base, "__main__.py"))


@functools.cache
def _makefile():
  text = _read(os.path.join(_ROOT, "Makefile"))
  targets = set(_MAKE_TARGET.findall(text))
  variables = set(_MAKE_VAR.findall(text)) | set(re.findall(r"\$\(([A-Z_][A-Z0-9_]*)\)", text))
  return targets, variables


def _help_flags(module):
  """(flags, boolean flags, error) from what `python -m MODULE --help` lists."""
  env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
  out = subprocess.run([sys.executable, "-m", module, "--help"], cwd=_ROOT, env=env,
                       capture_output=True, text=True, timeout=120)
  text = out.stdout + out.stderr
  error = None
  # --help exits 1 in some CLIs today; the listing is what matters.
  if out.returncode not in (0, 1):
    error = f"`{module} --help` exited {out.returncode}"
  elif not text.strip():
    error = f"`{module} --help` printed nothing"
  elif "Traceback (most recent call last)" in text:
    error = f"`{module} --help` crashed: {text.strip().splitlines()[-1]}"
  flags, booleans = set(_ABSL_FLAGS), set()
  for no, name in _HELP_FLAG.findall(text):
    flags.add(name)
    if no:
      booleans.add(name)
  return frozenset(flags), frozenset(booleans), error


def _beam_options():
  code = ("from apache_beam.options.pipeline_options import PipelineOptions\n"
          "parsers = []\n"
          "PipelineOptions([]).get_all_options(add_extra_args_fn=parsers.append)\n"
          "print('\\n'.join(s for a in parsers[0]._actions for s in a.option_strings))\n")
  out = subprocess.run([sys.executable, "-c", code], cwd=_ROOT, capture_output=True,
                       text=True, timeout=120, check=True)
  return frozenset(line[2:] for line in out.stdout.split() if line.startswith("--"))


def _flag_uses(module, args):
  """[(module, flag token)] for every --flag of a `python -m MODULE` command."""
  uses, owner = [], module
  positional = [a for a in args if not a.startswith("-")]
  for arg in args:
    if arg == "--":  # the rest goes to another module, if this one forwards
      owner = _FORWARDS.get((module, positional[0] if positional else ""))
      continue
    if owner and _FLAG.match(arg):
      uses.append((owner, arg))
  if module == "deploy.replica" and positional:  # deploy.replica MODULE [ARGS...]
    inner = args[args.index(positional[0]) + 1:]
    uses = [(positional[0], a) for a in inner if _FLAG.match(a)]
  return uses


def _collect(path):
  """(problems found without running anything, [(module, flag token, command)])."""
  targets, variables = _makefile()
  problems, uses = [], []
  for command in _commands(_read(path)):
    for tokens in _segments(command):
      if tokens[0] == "make":
        for token in tokens[1:]:
          if token.startswith("-"):
            continue
          if "=" in token:
            name, value = token.split("=", 1)
            if name not in variables:
              problems.append(f"{command!r}: the Makefile has no variable {name}")
            elif name in _MAKE_FLAG_VARS:
              uses += [(_MAKE_FLAG_VARS[name], a, command) for a in shlex.split(value)
                       if _FLAG.match(a)]
          elif token not in targets:
            problems.append(f"{command!r}: the Makefile has no target {token!r}")
        continue
      found = _python_module(tokens)
      if found is None:
        continue  # gcloud, docker, pip, tensorboard, ...: not ours to check
      module, args = found
      if not _is_project_module(module):
        if importlib.util.find_spec(module.split(".")[0]) is None:
          problems.append(f"{command!r}: no module {module}")
        continue
      if not _module_file_exists(module):
        problems.append(f"{command!r}: no module {module} "
                        f"({module.replace('.', '/')}.py is missing)")
        continue
      uses += [(m, a, command) for m, a in _flag_uses(module, args)]
  return problems, uses


@functools.cache
def _all_help():
  """Every module's flags, from one --help subprocess each, run in parallel."""
  modules = {m for path in _DOCS if os.path.exists(path) for m, _, _ in _collect(path)[1]}
  modules = sorted(m for m in modules if _module_file_exists(m))
  with concurrent.futures.ThreadPoolExecutor(max_workers=8) as pool:
    helps = dict(zip(modules, pool.map(_help_flags, modules)))
    beam = pool.submit(_beam_options).result() if _BEAM_MODULES & set(modules) else frozenset()
  return helps, beam


def _unknown_flag(module, token, helps, beam):
  if module not in helps:
    return f"no module {module}"
  flags, booleans, error = helps[module]
  if error:
    return error
  name = _FLAG.match(token).group(1)
  if name in flags:
    return None
  if name.startswith("no") and name[2:] in booleans:
    return None
  if module in _BEAM_MODULES and name in beam:
    return None
  return f"{module} defines no flag --{name}"


def _relative(path):
  return os.path.relpath(path, _ROOT)


def test_readme_is_at_most_300_lines():
  lines = _read(_README).count("\n")
  assert lines <= _MAX_README_LINES, (
      f"README.md has {lines} lines; move detail to docs/ or benchmarks/RESULTS.md")


@pytest.mark.parametrize("path", [p for p in _DOCS if os.path.exists(p)], ids=_relative)
def test_commands_name_existing_targets_modules_and_flags(path):
  problems, uses = _collect(path)
  helps, beam = _all_help()
  for module, token, command in uses:
    problem = _unknown_flag(module, token, helps, beam)
    if problem and f"{command!r}: {problem}" not in problems:
      problems.append(f"{command!r}: {problem}")
  assert not problems, "\n".join(problems)


def _anchors(markdown):
  """GitHub's anchors of a page's headings (fenced blocks left out)."""
  text = _FENCE.sub("", markdown)
  return {re.sub(r"[^\w\- ]", "", h.lower()).replace(" ", "-")
          for h in _HEADING.findall(text)}


@pytest.mark.parametrize("path", [p for p in _DOCS if os.path.exists(p)], ids=_relative)
def test_links_to_repository_files_and_headings_resolve(path):
  missing = []
  for target, anchor in _LINK.findall(_read(path)):
    if re.match(r"^[a-z]+:", target):  # https:, mailto:
      continue
    full = os.path.join(os.path.dirname(path), target) if target else path
    if not os.path.exists(full):
      missing.append(target)
    elif anchor and full.endswith(".md") and anchor not in _anchors(_read(full)):
      missing.append(f"{target}#{anchor}")
  assert not missing, f"{_relative(path)} links to missing targets: {sorted(set(missing))}"


def test_the_checker_reads_commands_as_the_shell_would():
  text = ("```sh\n# a comment\nmake train TRAIN_FLAGS='--epochs=2 --nomomentum'  # why\n"
          "python -m trainer.task \\\n  --data_dir=d --job_dir=j\n```\n")
  make, python = _commands(text)
  assert _segments(make) == [["make", "train", "TRAIN_FLAGS=--epochs=2 --nomomentum"]]
  assert _segments(python) == [["python", "-m", "trainer.task", "--data_dir=d", "--job_dir=j"]]
  assert _flag_uses("deploy.vertex", ["train", "--gpus=1", "--", "--epochs=3"]) == [
      ("deploy.vertex", "--gpus=1"), ("trainer.task", "--epochs=3")]
  helps = {"m": (frozenset({"epochs", "momentum"}), frozenset({"momentum"}), None)}
  assert _unknown_flag("m", "--nomomentum", helps, frozenset()) is None
  assert _unknown_flag("m", "--noepochs", helps, frozenset()) == "m defines no flag --noepochs"
