"""One way for every CLI to read its flags and to fail.

Settings are declared once, as fields of a frozen dataclass with their help
text (`setting(...)`); `define_flags` turns the fields into absl flags and
`config_from_flags` builds the dataclass back from them, so a default lives in
exactly one place. `run` starts a CLI: a mistake the user can fix prints one
or two lines naming the value and the fix, never the whole --help or a
traceback.

Exit codes (README.md, "Exit codes"): 0 done, 2 usage error (bad flag, missing or
unusable path, wrong dataset for a model), 1 failure while running (a
diverged run, a job already running, a broken checkpoint).

This module must not import TensorFlow or Beam: every CLI imports it first.
"""

import dataclasses
import errno
import os
import re
import sys
import types
import typing

from absl import app
from absl import flags

EXIT_USAGE = 2
EXIT_FAILURE = 1

# `import tensorflow` imports Keras 3 eagerly (for its optimizers'
# registrations), and Keras imports scikit-learn when it is installed: 1.6 of
# the 4.5 CPU-seconds TensorFlow's import costs each process here. No job of
# this project uses Keras, so `run` sets this variable unless the user did:
# TensorFlow then looks for tf_keras instead, finds none (not a dependency)
# and goes on without (tensorflow/__init__.py catches that ImportError).
SKIP_KERAS = ("TF_USE_LEGACY_KERAS", "1")


class UsageError(ValueError):
  """Something the user asked for cannot work; the message says what would.

  CLIs print it as one line and exit 2. Library code raises it (or a subclass)
  for bad settings, paths and datasets, before any output is written.
  """


class JobError(RuntimeError):
  """The job started but cannot finish; the message says why and what to do.

  CLIs print it as one line and exit 1 (e.g. a diverged run, a locked job
  folder, an unreadable checkpoint).
  """


# OS errors about a path the user gave are usage errors too: "missing model",
# "output dir is a file", "unwritable folder".
_PATH_ERRORS = (FileNotFoundError, NotADirectoryError, IsADirectoryError,
                PermissionError, FileExistsError)


def setting(default, help: str, *, choices=None, flag: str | None = None,
            cli: bool = True):  # pylint: disable=redefined-builtin
  """A dataclass field that is also a flag.

  Args:
    default: the default value (a tuple for list flags).
    help: the flag's help text; also the field's documentation.
    choices: for a str field: the allowed values (an enum flag).
    flag: the flag's name when it differs from the field's.
    cli: False for a field that is not a flag (set by code only).
  """
  return dataclasses.field(default=default, metadata={
      "help": help, "choices": choices, "flag": flag, "cli": cli})


def _flag_fields(config_cls, skip=()):
  for field in dataclasses.fields(config_cls):
    if field.name in skip or not field.metadata.get("cli", True):
      continue
    if "help" not in field.metadata:
      raise TypeError(f"{config_cls.__name__}.{field.name} has no help: "
                      "declare it with common.cli.setting(default, help).")
    yield field, field.metadata.get("flag") or field.name


def _base_type(annotation):
  """int | None -> int; tuple[str, ...] -> tuple."""
  origin = typing.get_origin(annotation)
  if origin in (typing.Union, types.UnionType):
    args = [a for a in typing.get_args(annotation) if a is not type(None)]
    return _base_type(args[0])
  return origin or annotation


def define_flags(config_cls, *, skip=(), required=(),
                 flag_values=flags.FLAGS) -> None:
  """Defines one absl flag per field of `config_cls` (help from `setting`).

  Args:
    config_cls: a dataclass whose fields were declared with `setting`.
    skip: field names the CLI does not expose.
    required: flag names that must be given.
    flag_values: the FlagValues to define them in.
  """
  hints = typing.get_type_hints(config_cls)
  presets = getattr(config_cls, "PRESETS", None)
  if presets:
    aliases = list(getattr(config_cls, "PRESET_ALIASES", {}))
    flags.DEFINE_enum(
        "preset", "default", ["default", *presets, *aliases],
        "Starting values for the settings not given as flags: default (the "
        "tuned defaults) or " + ", ".join(
            f"{name} ({doc})" for name, doc in getattr(
                config_cls, "PRESET_HELP", {}).items()) + ".",
        flag_values=flag_values)
  for field, name in _flag_fields(config_cls, skip):
    kind = _base_type(hints[field.name])
    default, help_text = field.default, field.metadata["help"]
    choices = field.metadata.get("choices")
    if kind is bool:
      flags.DEFINE_bool(name, default, help_text, flag_values=flag_values)
    elif kind is int:
      flags.DEFINE_integer(name, default, help_text, flag_values=flag_values)
    elif kind is float:
      flags.DEFINE_float(name, default, help_text, flag_values=flag_values)
    elif kind is str and choices:
      flags.DEFINE_enum(name, default, list(choices), help_text,
                        flag_values=flag_values)
    elif kind is str:
      flags.DEFINE_string(name, default, help_text, flag_values=flag_values)
    elif kind in (tuple, list):
      flags.DEFINE_list(name, list(default) if default is not None else None,
                        help_text, flag_values=flag_values)
    else:
      raise TypeError(f"{config_cls.__name__}.{field.name}: no flag type for "
                      f"{hints[field.name]}.")
  for name in required:
    flags.mark_flag_as_required(name, flag_values=flag_values)
  # absl credits a flag to the module that called DEFINE (this one): credit
  # them to the CLI too, so that its --helpshort lists them.
  caller = sys._getframe(1).f_globals.get("__name__", "")  # pylint: disable=protected-access
  if caller == "__main__":
    caller = sys.argv[0]  # absl's own name for the main module
  names = [name for _, name in _flag_fields(config_cls, skip)]
  for name in names + (["preset"] if presets else []):
    flag_values.register_key_flag_for_module(caller, flag_values[name])


def config_from_flags(config_cls, *, skip=(), flag_values=flags.FLAGS,
                      **values):
  """The dataclass built from the flags `define_flags` made (plus `values`).

  Raises:
    UsageError: the dataclass rejected a value (its message names it).
  """
  hints = typing.get_type_hints(config_cls)
  presets = getattr(config_cls, "PRESETS", None) or {}
  preset = {}
  if presets and "preset" in flag_values:
    preset = presets.get(_preset_name(config_cls, flag_values["preset"].value),
                         {})
  for field, name in _flag_fields(config_cls, skip):
    if field.name in values:
      continue
    value = flag_values[name].value
    if field.name in preset and not flag_values[name].present:
      value = preset[field.name]  # a flag given explicitly wins over the preset
    if _base_type(hints[field.name]) is tuple and value is not None:
      value = tuple(value)
    values[field.name] = value
  try:
    return config_cls(**values)
  except UsageError:
    raise
  except (ValueError, TypeError) as e:
    raise UsageError(str(e)) from None


def _preset_name(config_cls, name: str) -> str:
  """A preset's current name; an old name still works, with a one-line note."""
  current = getattr(config_cls, "PRESET_ALIASES", {}).get(name)
  if current is None:
    return name
  print(f"{program_name()}: note: --preset={name} is now called "
        f"--preset={current}.", file=sys.stderr)
  return current


def explicit_fields(config_cls, *, skip=(), flag_values=flags.FLAGS):
  """The names of `config_cls`'s fields whose flags the command line gave
  (a value equal to the default still counts; a preset's does not)."""
  return frozenset(field.name for field, name in _flag_fields(config_cls, skip)
                   if flag_values[name].present)


def preset(config_cls, name: str, **values):
  """`config_cls` with preset `name`'s values, then `values` on top.

  A config class offers presets as a ClassVar `PRESETS` = {name: {field:
  value}} (and `PRESET_HELP` = {name: one line}); "default" is the class's own
  defaults. Raises UsageError for an unknown name.
  """
  presets = getattr(config_cls, "PRESETS", None) or {}
  name = _preset_name(config_cls, name)
  if name != "default" and name not in presets:
    raise UsageError(f"--preset={name}: use one of {['default', *presets]}.")
  return config_cls(**{**presets.get(name, {}), **values})


def flag_args(config, *, skip=(), only_changed: bool = True) -> list:
  """`config` as command-line flags (for jobs that launch other CLIs).

  Args:
    config: a dataclass instance declared with `setting`.
    skip: field names to leave out.
    only_changed: leave out fields equal to their default.
  """
  args = []
  for field, name in _flag_fields(type(config), skip):
    value = getattr(config, field.name)
    if only_changed and value == field.default:
      continue
    if isinstance(value, bool):
      args.append(f"--{name}" if value else f"--no{name}")
    elif isinstance(value, (tuple, list)):
      args.append(f"--{name}={','.join(str(v) for v in value)}")
    elif value is not None:
      args.append(f"--{name}={value}")
  return args


def program_name() -> str:
  """`preprocess.main` for `python -m preprocess.main`, else the script name."""
  main = sys.modules.get("__main__")
  spec = getattr(main, "__spec__", None)
  if spec is not None and spec.name:
    return spec.name
  return os.path.basename(sys.argv[0] or "cli")


def _fail(code: int, message: str, hint: str | None = None):
  print(f"{program_name()}: error: {message}", file=sys.stderr)
  if hint:
    print(hint, file=sys.stderr)
  sys.exit(code)


def _flag_error_message(error: flags.Error) -> str:
  text = str(error).strip()
  # absl: "flag --x=None: Flag --x must have a value other than None."
  if "must have a value other than None" in text:
    name = text.split("=", 1)[0].replace("flag ", "").strip()
    return f"{name} is required"
  return text.splitlines()[0] if text else type(error).__name__


_HELP_FLAGS = ("--help", "-help", "-h", "-?", "--helpshort", "--helpfull",
               "--helpxml")


def _is_tensorflow_error(error: Exception) -> bool:
  """TensorFlow's own I/O errors (tf.errors.*: a full disk while saving a
  checkpoint, a folder where a file should be), told apart without importing
  TensorFlow."""
  return any(c.__module__.startswith("tensorflow.") and c.__name__ == "OpError"
             for c in type(error).__mro__)


# What to do after an interruption or a full disk. Training and generation
# resume where they stopped; preprocessing starts again, and its output folder
# then holds a run that did not finish, which only --overwrite replaces.
_RESUME = "rerun the same command to resume"
_RERUN = {"preprocess.main": "rerun with --overwrite to start again",
          "deploy.dataflow": "rerun with --overwrite to start again, once the "
                             "Dataflow job has ended (gcloud dataflow jobs "
                             "list --status=active)",
          "trainer.evaluate": "rerun the same command (it starts over)",
          "trainer.compare": "rerun the same command (it starts over)",
          "deploy.vertex": "check whether the job was submitted (gcloud ai "
                           "custom-jobs list) before rerunning"}


def _rerun_hint() -> str:
  """How this program continues after it was stopped (program_name's)."""
  return _RERUN.get(program_name(), _RESUME)


def _os_error(error: Exception) -> tuple:
  """(exit code, one line) for an operating-system error while running."""
  text = re.sub(r"\{\{function_node [^}]*\}\}\s*", "",
                getattr(error, "message", None) or str(error))
  first = text.strip().splitlines()[0] if text.strip() else type(
      error).__name__
  errno_value = getattr(error, "errno", None)
  if errno_value == errno.ENOSPC or "No space left on device" in text:
    where = getattr(error, "filename", None) or first
    kept = ("what was written before is kept; " if _rerun_hint() == _RESUME
            else "")
    return (EXIT_FAILURE, f"no space left on device ({where}): {kept}free "
            f"some space and {_rerun_hint()}.")
  if errno_value == errno.ENAMETOOLONG or "File name too long" in text:
    where = getattr(error, "filename", None) or first
    return (EXIT_USAGE, f"file name too long: {where}: use a shorter path "
            "(each folder name at most 255 bytes).")
  if isinstance(error, OSError):
    return EXIT_FAILURE, f"{_path_error_message(error)}"
  return EXIT_FAILURE, f"{type(error).__name__}: {first}"


def _dangling_link(path) -> str | None:
  """`path` or the nearest folder above it that is a symbolic link to
  nothing, or None."""
  if not isinstance(path, str) or "://" in path:
    return None
  while path and path not in (os.sep, "."):
    if os.path.islink(path) and not os.path.exists(path):
      return path
    parent = os.path.dirname(path)
    if parent == path:
      break
    path = parent
  return None


def _path_error_message(error: OSError) -> str:
  what = error.strerror or str(error)
  for path in (error.filename, getattr(error, "filename2", None)):
    link = _dangling_link(path)
    if link:
      return (f"{link} is a symbolic link to {os.readlink(link)}, which does "
              "not exist: create its target, or remove the link.")
  if error.filename:
    return f"{what}: {error.filename}"
  return what


def run(main, *, known_only: bool = False, positional: bool = False,
        unknown_flag_hint: str = "", extra_usage_errors=(),
        extra_failures=()) -> None:
  """Runs `main(argv)` as a CLI with one-line errors and exit codes 2/1.

  TensorFlow, when main imports it, starts without Keras (SKIP_KERAS).

  Args:
    main: the CLI's main(argv); argv[0] is the program, the rest are
      arguments absl did not consume (an error unless known_only).
    known_only: pass flags absl does not know through to main (Beam options).
    positional: main takes positional arguments (and those after `--`).
    unknown_flag_hint: said after an unknown flag's error, e.g. where such
      flags belong.
    extra_usage_errors: more exception types printed as usage errors (exit 2).
    extra_failures: more exception types printed as failures (exit 1).
  """
  os.environ.setdefault(*SKIP_KERAS)
  usage_errors = (UsageError, app.UsageError) + tuple(extra_usage_errors)
  failures = (JobError,) + tuple(extra_failures)

  def parse(argv):
    try:
      rest = flags.FLAGS(argv, known_only=known_only)
    except SystemExit as e:
      # absl exits 1 after printing --help (--helpshort, ...): asked for, it
      # is no error.
      if e.code == 1 and any(a.split("=")[0] in _HELP_FLAGS for a in argv[1:]):
        sys.exit(0)
      raise
    except flags.Error as e:
      hint = (unknown_flag_hint if isinstance(e, flags.UnrecognizedFlagError)
              and unknown_flag_hint else
              f"Run `{program_name()} --helpshort` for the flags.")
      _fail(EXIT_USAGE, _flag_error_message(e), hint)
    if not (known_only or positional) and len(rest) > 1:
      _fail(EXIT_USAGE, f"unexpected arguments {rest[1:]} (flags are "
            "written --name=value)")
    return rest

  def guarded(argv):
    try:
      return main(argv)
    except usage_errors as e:
      _fail(EXIT_USAGE, str(e))
    except _PATH_ERRORS as e:
      _fail(EXIT_USAGE, _path_error_message(e))
    except failures as e:
      _fail(EXIT_FAILURE, str(e))
    except OSError as e:
      _fail(*_os_error(e))
    except MemoryError:
      _fail(EXIT_FAILURE, "out of memory; ask for less at once (e.g. fewer "
            "samples per shard, a smaller batch)")
    except KeyboardInterrupt:
      _fail(130, f"interrupted; {_rerun_hint()}")
    except Exception as e:  # pylint: disable=broad-except
      if not _is_tensorflow_error(e):
        raise
      _fail(*_os_error(e))

  app.run(guarded, flags_parser=parse)
