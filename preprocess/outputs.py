r"""The output folder: what this project wrote there, and nothing else.

A dataset folder holds dataset.json, train-NNNNN-of-NNNNN.tfrecord,
eval-/valid-NNNNN-of-NNNNN.tfrecord, errors-NNNNN-of-NNNNN.jsonl and a marker file,
OUTPUTS_MARKER, written before the run starts. Only files with exactly those
names, in a folder that holds the marker or a dataset.json, count as ours:
--overwrite deletes those and never a file the user put there (a MIDI file
called train-1.mid, notes named errors-todo.txt). A folder that overlaps the
inputs is refused outright.

Everything here runs on the launching machine, before or after the Beam job.
"""

import dataclasses
import os
import posixpath
import re

from absl import logging
from apache_beam.io.filesystems import FileSystems

from common import cli
from preprocess import records
from preprocess.steps import is_glob

# Written first; says the folder's outputs are preprocess.main's. It is not
# read by training.
OUTPUTS_MARKER = ".preprocess-outputs"
_MARKER_TEXT = (
    "This folder holds a dataset written by rbm-music's preprocess.main.\n"
    "preprocess.main --overwrite deletes only its own files here: dataset.json,"
    "\n{train,eval,valid}-NNNNN-of-NNNNN.tfrecord and "
    "errors-NNNNN-of-NNNNN.jsonl.\n")
_SHARD = r"-\d{5,}-of-\d{5,}"  # Beam's default -SSSSS-of-NNNNN
_OURS = re.compile("^(" + "|".join([
    re.escape(records.SPEC_FILENAME), re.escape(OUTPUTS_MARKER),
    f"({'|'.join(records.SPLITS)}){_SHARD}"
    + re.escape(records.TFRECORD_SUFFIX),
    f"{records.ERRORS_PREFIX}{_SHARD}" + re.escape(".jsonl")]) + ")$")


class OutputError(cli.UsageError):
  """The output folder cannot be used as asked; nothing was written."""


class OutputExistsError(OutputError, FileExistsError):
  """output_dir already holds a dataset and overwrite was not asked for."""


def join(directory: str, name: str) -> str:
  return FileSystems.join(directory, name)


def is_ours(name: str) -> bool:
  """Whether a file name is one preprocess.main writes (no folder)."""
  return bool(_OURS.match(name))


def previous_outputs(output_dir: str) -> list:
  """Paths in output_dir named as this pipeline names its outputs."""
  found = []
  for pattern in (records.SPEC_FILENAME, OUTPUTS_MARKER,
                  *[f"{split}-*" for split in records.SPLITS],
                  f"{records.ERRORS_PREFIX}-*"):
    # A missing local folder matches nothing; a missing bucket raises, which
    # is the right thing to tell the user before anything runs.
    result = FileSystems.match([join(output_dir, pattern)])[0]
    found.extend(m.path for m in result.metadata_list
                 if is_ours(posixpath.basename(m.path)))
  return sorted(found)


def _folder_of(pattern: str) -> str:
  """The folder a glob lists: everything before its first wildcard."""
  if not is_glob(pattern):
    return posixpath.dirname(pattern)
  prefix = re.match(r"^[^[*?]*", pattern).group(0)
  return prefix if prefix.endswith("/") else posixpath.dirname(prefix)


def _canonical(path: str) -> str:
  if "://" in path:
    return path.rstrip("/") + "/"
  return os.path.realpath(path or ".").rstrip(os.sep) + os.sep


def check_no_overlap(inputs, output_dir: str, flag: str = "--input") -> None:
  """Refuses an output folder that is, holds, or is read as, an input folder.

  Raises:
    OutputError: naming both and the fix.
  """
  out = _canonical(output_dir)
  for pattern in inputs:
    folder = _canonical(_folder_of(pattern))
    inside_recursive_input = out.startswith(folder) and "**" in pattern
    if out == folder or folder.startswith(out) or inside_recursive_input:
      raise OutputError(
          f"--output_dir={output_dir} overlaps {flag} {pattern}: the dataset "
          "would mix with (or be read as) the corpus; choose a folder outside "
          "the input folders, e.g. out/dataset.")


def prepare_output_dir(output_dir: str, overwrite: bool) -> None:
  """Refuses to mix two datasets in one folder; with overwrite, empties ours.

  Earlier outputs are deleted before the run, not after: Beam's file sinks
  delete or skip same-named files of an earlier run at finalize time, and
  shards of another shard count would be read as extra data. The marker is
  written last, which also proves the folder is writable before Beam starts.

  Raises:
    OutputExistsError: output_dir holds outputs and overwrite is False.
    OutputError: output_dir is a file, cannot be written, or holds files
      named like ours that this project did not write.
  """
  local = "://" not in output_dir
  if local and os.path.exists(output_dir) and not os.path.isdir(output_dir):
    raise OutputError(f"--output_dir={output_dir} is a file, not a folder; "
                      "give a folder (it is created if missing).")
  existing = previous_outputs(output_dir)
  names = {posixpath.basename(p) for p in existing}
  if existing and not names & {OUTPUTS_MARKER, records.SPEC_FILENAME}:
    raise OutputError(
        f"--output_dir={output_dir} holds files named like a dataset (e.g. "
        f"{existing[0]}) that preprocess.main did not write; move them or "
        "choose another folder.")
  if existing and not overwrite:
    raise OutputExistsError(
        f"--output_dir={output_dir} already holds a dataset ({len(existing)} "
        f"files, e.g. {existing[0]}); choose another directory or pass "
        "--overwrite to replace it.")
  if existing:
    logging.info("--overwrite: deleting the %d files of the earlier dataset "
                 "in %s", len(existing), output_dir)
    FileSystems.delete(existing)
  try:
    if local:
      os.makedirs(output_dir, exist_ok=True)
    write_file(join(output_dir, OUTPUTS_MARKER), _MARKER_TEXT.encode("utf-8"))
  except OSError as e:
    raise OutputError(
        f"--output_dir={output_dir} cannot be written ({e.strerror or e}); "
        "choose a folder you can write to.") from None


def write_file(path: str, data: bytes) -> None:
  # FileSystems.create opens local files with open(): they follow the umask
  # like Beam's sinks' (tests/test_preprocess_reliability.py checks every one).
  with FileSystems.create(path) as f:
    f.write(data)


def write_dataset_spec(spec: records.DatasetSpec, output_dir: str) -> dict:
  """Writes dataset.json with the shard names listed; returns its counts.

  The shard names come from listing output_dir, which `prepare_output_dir`
  left empty of earlier outputs: a sink whose finalize is retried does not
  return the shards it had already renamed.
  """
  written = previous_outputs(output_dir)
  counts = dict(spec.counts)
  counts["shards"] = sorted(
      posixpath.basename(p) for p in written
      if p.endswith(records.TFRECORD_SUFFIX))
  spec = dataclasses.replace(spec, counts=counts)
  write_file(join(output_dir, records.SPEC_FILENAME),
             spec.to_json().encode("utf-8"))
  return counts


def read_counts(output_dir: str) -> dict:
  with FileSystems.open(join(output_dir, records.SPEC_FILENAME)) as f:
    return records.DatasetSpec.from_json(f.read().decode("utf-8")).counts
