r"""The output folder: what this project wrote there, and nothing else.

A dataset folder holds dataset.json, train-NNNNN-of-NNNNN.tfrecord,
eval-/valid-NNNNN-of-NNNNN.tfrecord, errors-NNNNN-of-NNNNN.jsonl and a marker file,
OUTPUTS_MARKER, written before the run starts. Only files with exactly those
names, in a folder that holds the marker or a dataset.json, count as ours:
--overwrite deletes those and never a file the user put there (a MIDI file
called train-1.mid, notes named errors-todo.txt). A folder that overlaps the
inputs is refused outright.

While a run writes, Beam's sinks keep their shards in temporary folders
beside them, beam-temp-{train,eval,valid,errors}-<32 hex digits>; a run that
fails removes those it made (pipeline.run_pipeline), --overwrite those an
older run left.

Everything here runs on the launching machine, before or after the Beam job.
"""

import dataclasses
import errno
import os
import posixpath
import re
import shutil

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
# Beam's FileBasedSink: base folder + 'beam-temp-' + prefix + '-' + uuid1 hex.
_TEMP = re.compile(
    f"^beam-temp-({'|'.join(records.SPLITS)}|{records.ERRORS_PREFIX})"
    "-[0-9a-f]{32}$")
# Errors that mean the disk (or the user's quota) is full.
FULL_DISK = (errno.ENOSPC, errno.EDQUOT)


class OutputError(cli.UsageError):
  """The output folder cannot be used as asked; nothing was written."""


class OutputExistsError(OutputError, FileExistsError):
  """output_dir already holds a dataset and overwrite was not asked for."""


def shown(path: str, limit: int = 200) -> str:
  """A path short enough for a one-line message (its middle elided)."""
  if len(path) <= limit:
    return path
  return f"{path[:limit // 2]}...{path[-limit // 2:]} ({len(path)} characters)"


def too_long_error(output_dir: str) -> OutputError:
  """ENAMETOOLONG on a path in output_dir: the folder's name is the cause."""
  return OutputError(
      f"--output_dir={shown(output_dir)} is too long for the file system (a "
      "name over 255 bytes, or a path over 4096 with the files written in "
      "it); choose a shorter path.")


def full_disk_error(output_dir: str, code: int = errno.ENOSPC
                    ) -> cli.JobError:
  """ENOSPC (or EDQUOT) writing output_dir: what was kept, and what to do."""
  return cli.JobError(
      f"{os.strerror(code).lower()} while writing --output_dir="
      f"{shown(output_dir)}: the run stopped; it holds no new dataset.json "
      "and no temporary files (the inputs are untouched); free space (or "
      "choose another folder) and rerun with --overwrite.")


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
  if existing and not overwrite and records.SPEC_FILENAME not in names:
    # The marker without dataset.json: a run that failed or was stopped.
    raise OutputExistsError(
        f"--output_dir={output_dir} holds a run that did not finish (no "
        f"dataset.json; {len(existing)} files of ours, e.g. {existing[0]}); "
        "pass --overwrite to start it again, or choose another directory.")
  if existing and not overwrite:
    raise OutputExistsError(
        f"--output_dir={output_dir} already holds a dataset ({len(existing)} "
        f"files, e.g. {existing[0]}); choose another directory or pass "
        "--overwrite to replace it.")
  if existing:
    logging.info("--overwrite: deleting the %d files of the earlier dataset "
                 "in %s", len(existing), output_dir)
    FileSystems.delete(existing)
    # Beam's temporary folders of an earlier run that failed (the marker
    # says the folder is ours).
    remove_temp_folders(output_dir)
  try:
    if local:
      os.makedirs(output_dir, exist_ok=True)
    write_file(join(output_dir, OUTPUTS_MARKER), _MARKER_TEXT.encode("utf-8"))
  except OSError as e:
    if e.errno == errno.ENAMETOOLONG:
      raise too_long_error(output_dir) from None
    if e.errno in FULL_DISK:
      raise full_disk_error(output_dir, e.errno) from None
    raise OutputError(
        f"--output_dir={shown(output_dir)} cannot be written "
        f"({e.strerror or e}); choose a folder you can write to.") from None


def temp_folders(output_dir: str) -> set:
  """Beam's temporary folders in output_dir (beam-temp-<sink>-<uuid>)."""
  if "://" not in output_dir:
    try:
      names = os.listdir(output_dir)
    except OSError:  # missing, or not readable: nothing of ours to remove
      return set()
    return {join(output_dir, name) for name in names if _TEMP.match(name)
            and os.path.isdir(os.path.join(output_dir, name))}
  # Object stores have no folders: a temporary folder is its objects' prefix.
  result = FileSystems.match([join(output_dir, "beam-temp-*/*")])[0]
  return {posixpath.dirname(m.path) for m in result.metadata_list
          if _TEMP.match(posixpath.basename(posixpath.dirname(m.path)))}


def remove_temp_folders(output_dir: str, keep=frozenset()) -> None:
  """Deletes Beam's temporary folders in output_dir, except those in `keep`.

  Best effort: this runs after a failure (a full disk, an interrupt), whose
  own message matters more than a folder left behind.
  """
  try:
    folders = sorted(temp_folders(output_dir) - set(keep))
    for folder in folders:
      if "://" not in folder:
        shutil.rmtree(folder, ignore_errors=True)
      else:
        result = FileSystems.match([join(folder, "*")])[0]
        FileSystems.delete([m.path for m in result.metadata_list])
  except Exception as e:  # pylint: disable=broad-except
    logging.warning("could not remove Beam's temporary folders in %s: %s",
                    output_dir, e)


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


def read_spec(output_dir: str) -> records.DatasetSpec:
  with FileSystems.open(join(output_dir, records.SPEC_FILENAME)) as f:
    return records.DatasetSpec.from_json(f.read().decode("utf-8"))


def read_counts(output_dir: str) -> dict:
  return read_spec(output_dir).counts
