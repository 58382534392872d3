r"""The per-file steps of preprocessing, as pure functions.

    glob -> ListedFile (path, size, key, split) -> FileBytes (path, bytes, split)
         -> ParsedFile -> FileWindows (Examples + stats)

Each step either returns its result or raises a `FileRejected` subclass whose
`reason` names why the file cannot be used; preprocess/pipeline.py turns the
raised ones into dead letters (errors-*.jsonl). Nothing here knows about Beam
transforms, flags or output folders, so the steps are tested directly.

Must not import TensorFlow: Examples are serialised by records.make_example.
"""

import dataclasses
import hashlib
import os
import posixpath
import re
import typing

from apache_beam.io.filesystem import CompressionTypes
from apache_beam.io.filesystem import FileSystem
from apache_beam.io.filesystems import FileSystems
import numpy as np

from preprocess import pianoroll
from preprocess import records
from preprocess.config import PreprocessConfig
from preprocess.config import printable_path

MIDI_EXTENSIONS = pianoroll.MIDI_EXTENSIONS
# The size given to a listed file whose size cannot be read (a broken
# symlink, a symlink loop): read_file rejects it as unreadable.
UNREADABLE_SIZE = -1
# The size given to a local file whose name is not valid UTF-8: it is listed
# under its printable name (config.printable_path), which is not a path that
# opens, and read_file rejects it as non_utf8_name.
NON_UTF8_NAME_SIZE = -2


# --- Why a file is rejected: the class carries the reason. -------------------


class FileRejected(Exception):
  """A file the pipeline cannot use; `reason` goes to errors-*.jsonl."""
  reason = "unexpected_error"


class EmptyFile(FileRejected):
  reason = "empty_file"


class TooLarge(FileRejected):
  reason = "too_large"


class Unreadable(FileRejected):
  """Listed but not readable (broken symlink, loop, permissions, I/O error)."""
  reason = "unreadable"


class NonUtf8Name(FileRejected):
  """A local file whose name's bytes are not UTF-8 (e.g. Latin-1)."""
  reason = "non_utf8_name"


class CorruptMidi(FileRejected):
  reason = "corrupt_midi"


class SmpteTiming(FileRejected):
  """Timed in SMPTE frames (negative division): no beats to put on a grid."""
  reason = "smpte_timing"


class NoNotes(FileRejected):
  reason = "no_notes"


class OnlyDrums(FileRejected):
  reason = "only_drums"


class TooLong(FileRejected):
  reason = "too_long"


# --- Listing. -------------------------------------------------------------------


is_midi_path = pianoroll.is_midi_path


def is_glob(pattern: str) -> bool:
  return any(c in pattern for c in "*?[")


class ListedFile(typing.NamedTuple):
  """An input file as listed, with what decides its split."""
  path: str
  size: int
  # The path below its glob's folder (split_key): hashed for the split.
  key: str
  # An explicit split's name (--eval_input, --valid_input), or "" until
  # assign_split hashes the key.
  split: str = ""


class FileBytes(typing.NamedTuple):
  path: str
  data: bytes
  split: str


def split_key(pattern: str, path: str) -> str:
  """What a file's split is hashed from: its path below the glob's folder.

  The folder is the pattern's text before its first wildcard (* ? [), cut
  back to the last '/'; a pattern without wildcards gives the file's name.
  The same corpus under another folder, or copied to gs://, then splits the
  same: 'data/chorales/*.mid' and 'gs://b/x/*.mid' both give 'bwv1.6.mid',
  'gs://b/corpus/**/*.mid' gives 'x/y.mid' for gs://b/corpus/x/y.mid.
  """
  if not is_glob(pattern):
    return posixpath.basename(path)
  prefix = re.match(r"^[^[*?]*", pattern).group(0)
  folder = prefix[:prefix.rfind("/") + 1]
  if path.startswith(folder):
    return path[len(folder):]
  # Beam spells a match's folder as the pattern does; should a local path
  # not (none seen), the same relative path still comes out.
  return os.path.relpath(path, folder or ".") if "://" not in path else path


def list_files(pattern: str, split: str = "") -> list:
  """A glob -> [ListedFile]; `split` names an explicit split's glob.

  A name that is not valid UTF-8 is listed under its printable name with
  NON_UTF8_NAME_SIZE: Beam's coders would fail on it and end the whole run.
  """
  listed = []
  for path, size in match_pattern(pattern):
    shown = printable_path(path)
    if shown != path:
      size = NON_UTF8_NAME_SIZE
    listed.append(ListedFile(shown, size, split_key(pattern, shown), split))
  return listed


def file_identity(path: str) -> str:
  """One local file is one file, however it is reached: two spellings
  ('a/x.mid', './a/x.mid') or a symlink (to it or to a folder above it)."""
  return path if "://" in path else os.path.realpath(path)


def listing_identity(listed: ListedFile) -> str:
  """What decides that two listings are the same file (pipeline's Dedupe).

  A file that cannot be stat'ed keeps its own path (two broken symlinks to
  one missing target are two unreadable files); a printable stand-in for a
  name that is not UTF-8 never merges with a real file spelled like it.
  """
  if "://" in listed.path:
    return listed.path
  if listed.size == NON_UTF8_NAME_SIZE:
    return "\0" + os.path.abspath(listed.path)  # no real path holds a NUL
  if listed.size == UNREADABLE_SIZE:
    return os.path.abspath(listed.path)
  return file_identity(listed.path)


def preferred_listing(listings) -> ListedFile:
  """One listing of a file several globs matched, whatever their order.

  An explicit split wins over the hash (a file in --input and --eval_input
  is eval; eval and valid globs overlapping is refused before launch), then
  the shortest key, then the smallest.
  """
  return min(listings, key=lambda f: (f.split == "", len(f.key), f.key,
                                      f.path, f.size))


def assign_split(listed: ListedFile, eval_fraction: float,
                 valid_fraction: float) -> ListedFile:
  """The explicit split if it has one, else the hash of its key."""
  if listed.split:
    return listed
  return listed._replace(split=split_of(listed.key, eval_fraction,
                                        valid_fraction))


def match_pattern(pattern: str) -> list:
  """A glob -> [(path, size)], counting files Beam's listing drops.

  Beam's local listing silently skips a file whose size it cannot read, so a
  broken symlink or a symlink loop would vanish from files_seen. Those are
  listed here again with UNREADABLE_SIZE, matched by Beam's own glob rules.
  """
  result = FileSystems.match([pattern])[0]
  found = [(m.path, m.size_in_bytes) for m in result.metadata_list]
  if "://" in pattern:
    return found
  listed = {os.path.abspath(path) for path, _ in found}
  return found + [(path, UNREADABLE_SIZE)
                  for path in _unstattable_local_files(pattern)
                  if os.path.abspath(path) not in listed]


def _unstattable_local_files(pattern: str):
  """Local paths matching `pattern` that exist as names but cannot be stat'ed."""
  if not is_glob(pattern):
    if os.path.lexists(pattern) and not os.path.exists(pattern):
      yield pattern
    return
  prefix = re.match(r"^[^[*?]*", pattern).group(0)
  root = prefix if os.path.isdir(prefix) else os.path.dirname(prefix) or "."
  regex = re.compile(FileSystem.translate_pattern(pattern))
  for dirpath, _, names in os.walk(root):
    for name in names:
      path = os.path.join(dirpath, name)
      if regex.match(path) and not os.path.exists(path):
        yield path


# --- Pure per-element steps. ------------------------------------------------


@dataclasses.dataclass
class ParsedFile:
  path: str
  split: str
  notes: pianoroll.Notes
  drum_notes: int


@dataclasses.dataclass
class FileWindows:
  """Serialized Examples of one file, their split, and its stats record."""
  split: str
  examples: list
  stats: dict


def split_of(key: str, eval_fraction: float, valid_fraction: float = 0.0) -> str:
  """Eval, valid or train, from a stable hash of the key (split_key).

  position = the SHA-256 digest's first 8 bytes (big-endian) / 2**64:
  [0, eval_fraction) is eval, then valid_fraction of valid, the rest train.
  Changing it moves every corpus's split (and every published figure on it).
  """
  digest = hashlib.sha256(key.encode("utf-8")).digest()
  position = int.from_bytes(digest[:8], "big") / 2.0**64  # uniform in [0, 1)
  if position < eval_fraction:
    return records.EVAL_PREFIX
  if position < eval_fraction + valid_fraction:
    return records.VALID_PREFIX
  return records.TRAIN_PREFIX


def read_file(listed: ListedFile, max_file_bytes: int) -> FileBytes:
  """ListedFile -> FileBytes. The size check happens before reading."""
  path, size = listed.path, listed.size
  if size == NON_UTF8_NAME_SIZE:
    raise NonUtf8Name(
        "the file's name is not valid UTF-8 (bytes shown as \\xNN), so it "
        "cannot be recorded; rename it in UTF-8 (e.g. convmv -f latin1 -t "
        "utf8 --notest FILE).")
  if size == UNREADABLE_SIZE:
    raise Unreadable("listed, but its size cannot be read (a broken symlink "
                     "or a symlink loop?)")
  if size > max_file_bytes:
    raise TooLarge(f"{size} bytes > max_file_bytes={max_file_bytes}")
  if size == 0:
    raise EmptyFile("0 bytes")
  try:
    # UNCOMPRESSED: a name ending in .gz must not be inflated behind our back.
    with FileSystems.open(path,
                          compression_type=CompressionTypes.UNCOMPRESSED) as f:
      data = f.read(max_file_bytes + 1)
  except OSError as e:  # BeamIOError is an OSError too
    raise Unreadable(f"{type(e).__name__}: {e}") from e
  if not data:
    raise EmptyFile("0 bytes")
  if len(data) > max_file_bytes:  # grew since it was listed
    raise TooLarge(f"more than max_file_bytes={max_file_bytes}")
  return FileBytes(path, data, listed.split)


def check_time_division(data: bytes) -> None:
  """Rejects SMPTE-timed files before pretty_midi misreads them.

  The header's division (bytes 12-13) with its top bit set counts SMPTE
  frames, not ticks per quarter note; pretty_midi then computes nonsense
  times or fails with an unrelated message.
  """
  if data[:4] == b"MThd" and len(data) >= 14 and data[12] & 0x80:
    fps = 256 - data[12]
    raise SmpteTiming(
        f"SMPTE time division ({fps} frames/s, {data[13]} ticks/frame): no "
        "beat grid; re-export it with ticks per quarter note (any DAW or "
        "notation program does).")


def parse_file(file: FileBytes, config: PreprocessConfig) -> ParsedFile:
  """(path, bytes, split) -> quantised notes, or a FileRejected saying why not."""
  path, data, split = file
  check_time_division(data)
  try:
    pm = pianoroll.parse_midi(data)
  except Exception as e:  # pylint: disable=broad-except
    # pretty_midi/mido raise many types (ValueError, EOFError, OSError,
    # KeyError, IndexError...) on bad bytes: all mean the same to us.
    raise CorruptMidi(f"{type(e).__name__}: {e}") from e
  notes, drum_notes = pianoroll.extract_notes(pm, config.steps_per_quarter,
                                              config.include_drums,
                                              config.quantize)
  if not len(notes):
    if drum_notes:
      raise OnlyDrums(f"{drum_notes} drum notes and no other notes "
                      "(--include_drums keeps drums)")
    raise NoNotes("the file has no notes")
  length = int(notes.end.max())
  if length > config.max_steps:
    raise TooLong(f"{length} grid steps > max_steps={config.max_steps}")
  return ParsedFile(path, split, notes, drum_notes)


def file_to_windows(parsed: ParsedFile, config: PreprocessConfig) -> FileWindows:
  """Renders a file (and its transpositions, if training) into Examples.

  Only training files are transposed: eval and valid measure the corpus as
  written.
  """
  spec = config.roll_spec
  is_train = parsed.split == records.TRAIN_PREFIX
  shifts = range(-config.transpose, config.transpose + 1) if is_train else [0]
  examples = []
  # Per-unit sums feed unit_means; whole pieces have no fixed units.
  unit_sum = (np.zeros(config.n_visible, np.int64)
              if is_train and not config.whole_pieces else None)
  silent = out_of_range = steps = 0
  for shift in shifts:
    matrix, dropped = pianoroll.notes_to_matrix(parsed.notes, spec, shift)
    if shift == 0:
      out_of_range = dropped
    for offset, window in _windows(matrix, config):
      if not window.any():
        silent += 1
        continue
      num_steps = len(window) if config.whole_pieces else None
      examples.append(records.make_example(window, parsed.path, offset, shift,
                                           num_steps))
      steps += len(window)
      if unit_sum is not None:
        unit_sum += window.reshape(-1)
  stats = {"path": parsed.path, "split": parsed.split, "windows": len(examples),
           "silent_windows": silent, "notes_out_of_range": out_of_range,
           "drum_notes": parsed.drum_notes, "unit_sum": unit_sum}
  if config.whole_pieces:
    stats["steps"] = steps
  if len(parsed.notes):
    # The piece's length as written, in bars of 4 quarters (rounded up): the
    # corpus's typical length sets the samples' default (records.py).
    stats["bars"] = -(-int(parsed.notes.end.max()) //
                      (4 * spec.steps_per_quarter))
  stats.update(_outcome(parsed, config, bool(examples), out_of_range))
  return FileWindows(parsed.split, examples, stats)


def _windows(matrix, config: PreprocessConfig):
  """(offset, window) pairs: fixed windows, or the whole piece as one."""
  if config.whole_pieces:
    return [(0, matrix)] if len(matrix) else []
  return pianoroll.cut_windows(matrix, config.num_timesteps, config.stride)


def _outcome(parsed: ParsedFile, config: PreprocessConfig, any_window: bool,
             out_of_range: int) -> dict:
  """Converted, or skipped and why.

  The reasons judge the file as written, not as rendered: a file whose notes
  all fall outside the pitch range renders to an empty matrix.
  """
  if any_window:
    return {"status": "converted"}
  length = int(parsed.notes.end.max())
  if not config.whole_pieces and length < config.num_timesteps:
    return {"status": "skipped", "reason": "shorter_than_window"}
  if out_of_range == len(parsed.notes):
    return {"status": "skipped", "reason": "all_notes_out_of_range"}
  return {"status": "skipped", "reason": "only_silent_windows"}


def skipped_stats(listed: ListedFile) -> dict:
  return {"path": listed.path, "status": "skipped", "reason": "not_midi"}


def dead_letter_to_error(bad) -> dict:
  """Beam's dead letter (element, (type, repr, traceback)) -> error record."""
  element, (exc_type, exc_repr, exc_traceback) = bad
  path = element[0] if isinstance(element, tuple) else getattr(
      element, "path", str(element))
  reason = getattr(exc_type, "reason", FileRejected.reason)
  error = {"path": path, "reason": reason, "message": exc_repr}
  if reason == FileRejected.reason:
    # Not a known kind of bad file but a bug (ours or a library's): keep
    # where it happened, or nobody can fix it.
    error["traceback"] = "".join(exc_traceback)
  return error


def error_stats(error: dict) -> dict:
  return {"path": error["path"], "status": "failed", "reason": error["reason"]}
