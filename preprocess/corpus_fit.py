"""Fitting the grid and the note range to a corpus (preprocess --fit_corpus).

The original post's layout (16th notes, MIDI 24..101) suits neither a folk
tune collection that moves in 8ths within two octaves nor a piano corpus in
16ths and triplets. With --fit_corpus the launcher reads a sample of the
training files (at most MAX_FILES, chosen by a hash of their split key, so the
choice does not depend on listing order) and derives:

  * the grid: the coarsest of GRIDS on which at least ONSET_SHARE of the
    onsets lie (within ON_GRID_TOLERANCE of a step). A coarser grid means
    fewer frames for the same music, and a model that cannot write rhythms the
    corpus does not use. Performed MIDI, whose onsets fit no grid, falls back
    to FALLBACK_GRID.
  * how notes land on it: ``sample`` on grids coarser than 16ths (a note
    spanning no grid point is left out rather than stacked on its neighbour,
    pianoroll.QUANTIZE), ``round`` on finer ones;
  * the note range: the lowest and highest pitch once RANGE_TAIL of the notes
    are left out at each end (a stray note must not widen every window),
    widened by --transpose on both sides for the transposed copies.

Held-out files are not read: the layout is fitted on training data only.
What was measured and chosen goes into dataset.json ("fitted").
"""

import dataclasses
import hashlib

import numpy as np

from preprocess import pianoroll
from preprocess import steps

# Steps per quarter note tried, coarsest first: quarters, 8ths, 8th triplets,
# 16ths, 16th triplets, 32nds, 32nd triplets.
GRIDS = (1, 2, 3, 4, 6, 8, 12)
ONSET_SHARE = 0.95
# An onset is on a grid when it lies within this fraction of a step of one of
# its points (onsets with random phases would fit any grid 20% of the time).
ON_GRID_TOLERANCE = 0.1
# No grid fits: performed MIDI. 16th notes, the original post's grid.
FALLBACK_GRID = 4
# Grids coarser than this many steps per quarter quantise by ``sample``.
SAMPLE_BELOW = 4
RANGE_TAIL = 0.001
MAX_FILES = 1000


@dataclasses.dataclass
class CorpusProfile:
  """What the fit reads off the files; profiles of disjoint files add up."""

  files: int = 0
  notes: int = 0
  # onsets_on_grid[i]: onsets within tolerance of a point of GRIDS[i].
  onsets_on_grid: np.ndarray = dataclasses.field(
      default_factory=lambda: np.zeros(len(GRIDS), np.int64))
  # Notes of each MIDI pitch.
  pitch_counts: np.ndarray = dataclasses.field(
      default_factory=lambda: np.zeros(128, np.int64))
  # Files that could not be read as MIDI (the pipeline counts them properly).
  unreadable: int = 0

  def __add__(self, other: "CorpusProfile") -> "CorpusProfile":
    return CorpusProfile(self.files + other.files, self.notes + other.notes,
                         self.onsets_on_grid + other.onsets_on_grid,
                         self.pitch_counts + other.pitch_counts,
                         self.unreadable + other.unreadable)


def onsets_on_grids(onsets: np.ndarray) -> np.ndarray:
  """For each of GRIDS, how many `onsets` (in quarter notes) lie on it."""
  counts = np.zeros(len(GRIDS), np.int64)
  for i, grid in enumerate(GRIDS):
    steps_ = np.asarray(onsets, np.float64) * grid
    off = np.abs(steps_ - np.round(steps_))
    counts[i] = int(np.count_nonzero(off <= ON_GRID_TOLERANCE))
  return counts


def piece_profile(pitches: np.ndarray, onsets: np.ndarray) -> CorpusProfile:
  """One piece's profile from its notes' pitches and onsets (quarter notes)."""
  return CorpusProfile(
      files=1, notes=len(pitches), onsets_on_grid=onsets_on_grids(onsets),
      pitch_counts=np.bincount(np.asarray(pitches, np.int64),
                               minlength=128)[:128].astype(np.int64))


def fitted_layout(profile: CorpusProfile, transpose: int = 0,
                  given: dict | None = None) -> dict:
  """The grid, quantisation and note range for a corpus's profile.

  `given`: layout values the user set (by field name), kept as they are.

  Returns:
    {"steps_per_quarter", "quantize", "low_note", "high_note"}, plus the
    evidence: "onset_share" per grid, "notes_outside" (the share of notes
    outside the range, before transposition), "files", "notes", and "given"
    (the names of the values kept).

  Raises:
    ValueError: the profile holds no note.
  """
  if profile.notes == 0:
    raise ValueError("no training file holds a note")
  share = profile.onsets_on_grid / profile.notes
  fitting = [g for g, s in zip(GRIDS, share) if s >= ONSET_SHARE]
  grid = fitting[0] if fitting else FALLBACK_GRID
  cumulative = np.cumsum(profile.pitch_counts) / profile.notes
  tail = RANGE_TAIL + 1e-12
  low = int(np.argmax(cumulative > tail))
  high = int(np.argmax(cumulative >= 1.0 - tail)) + 1
  given = dict(given or {})
  layout = {
      "steps_per_quarter": grid,
      "quantize": "sample" if grid < SAMPLE_BELOW else "round",
      "low_note": max(0, low - transpose),
      "high_note": min(128, high + transpose),
  }
  layout.update(given)
  counts = profile.pitch_counts
  outside = (counts[:max(0, layout["low_note"])].sum() +
             counts[layout["high_note"]:].sum()) / profile.notes
  return {
      **layout,
      "onset_share": {str(g): round(float(s), 4) for g, s in zip(GRIDS, share)},
      "notes_outside": round(float(outside), 6),
      "files": profile.files, "notes": profile.notes,
      "given": sorted(given),
  }


def sample_files(listed: list, max_files: int = MAX_FILES) -> list:
  """Up to `max_files` of `listed` (steps.ListedFile), chosen by a hash of
  their split key: the same files whatever order they were listed in."""
  def rank(f):
    return hashlib.sha256(("fit:" + f.key).encode("utf-8")).digest(), f.path
  return sorted(listed, key=rank)[:max_files]


def read_profile(listed, include_drums: bool, max_file_bytes: int
                 ) -> CorpusProfile:
  """One file's profile; an unreadable file counts as such, not as an error."""
  try:
    data = steps.read_file(listed, max_file_bytes).data
    steps.check_time_division(data)
    pm = pianoroll.parse_midi(data)
  except Exception:  # pylint: disable=broad-except  # any bad file: skip it
    return CorpusProfile(unreadable=1)
  pitches, onsets, _, _ = pianoroll.note_times(pm, include_drums)
  return piece_profile(pitches, onsets) if len(pitches) else CorpusProfile()


def profile_corpus(training: list, include_drums: bool, max_file_bytes: int,
                   max_files: int = MAX_FILES) -> CorpusProfile:
  """The profile of a sample of the training files (steps.ListedFile)."""
  total = CorpusProfile()
  for listed in sample_files(training, max_files):
    if pianoroll.is_midi_path(listed.path):
      total = total + read_profile(listed, include_drums, max_file_bytes)
  return total


def describe(fitted: dict) -> str:
  """One line for the log: what was chosen and on what evidence."""
  grid = str(fitted["steps_per_quarter"])
  share = fitted["onset_share"].get(grid)
  given = fitted.get("given") or []
  if "steps_per_quarter" in given:
    why = "given" + (f"; {share:.1%} of onsets on it" if share is not None
                     else "")
  elif share is not None and share >= ONSET_SHARE:
    why = f"{share:.1%} of onsets on it"
  else:
    why = f"no grid holds {ONSET_SHARE:.0%} of the onsets: performed MIDI"
  given = fitted.get("given") or []
  return (f"fitted to {fitted['files']} training files ({fitted['notes']} "
          f"notes): {grid} steps per quarter ({why}), --quantize="
          f"{fitted['quantize']}, notes {fitted['low_note']}.."
          f"{fitted['high_note'] - 1} ({fitted['notes_outside']:.2%} of notes "
          "outside)" + (f"; kept as given: {', '.join(given)}" if given
                        else ""))
