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
  * the encoding: ``roll`` (play bits only) when fewer than RESTRIKE_SHARE
    of the notes on that grid are re-struck (start while, or the step that,
    a note of the same pitch ends), as in piano-roll corpora, where a held
    note and a repeated one were never told apart: the articulate bits would
    carry nothing the play bits do not, and a model given them writes
    re-strikes the corpus never has. Otherwise ``onoff``, the original post's;
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
# Below this share of re-struck notes the corpus is a piano roll: --encoding=roll.
RESTRIKE_SHARE = 0.005
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
  # restrikes_on_grid[i]: notes re-struck on GRIDS[i] (`restrikes_on_grids`).
  restrikes_on_grid: np.ndarray = dataclasses.field(
      default_factory=lambda: np.zeros(len(GRIDS), np.int64))
  # Notes of each MIDI pitch.
  pitch_counts: np.ndarray = dataclasses.field(
      default_factory=lambda: np.zeros(128, np.int64))
  # Files that could not be read as MIDI (the pipeline counts them properly).
  unreadable: int = 0

  def __add__(self, other: "CorpusProfile") -> "CorpusProfile":
    return CorpusProfile(self.files + other.files, self.notes + other.notes,
                         self.onsets_on_grid + other.onsets_on_grid,
                         self.restrikes_on_grid + other.restrikes_on_grid,
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


def restrikes_on_grids(pitches: np.ndarray, onsets: np.ndarray,
                       ends: np.ndarray) -> np.ndarray:
  """For each of GRIDS, how many notes are re-struck on it: rounded to the
  grid, the note starts after an earlier note of its pitch and no later than
  that note ends. The play bits alone would merge the two."""
  counts = np.zeros(len(GRIDS), np.int64)
  pitches = np.asarray(pitches, np.int64)
  if len(pitches) < 2:
    return counts
  onsets = np.asarray(onsets, np.float64)
  ends = np.asarray(ends, np.float64)
  for i, grid in enumerate(GRIDS):
    start, end = np.round(onsets * grid), np.round(ends * grid)
    order = np.lexsort((start, pitches))
    p, s, e = pitches[order], start[order], end[order]
    # The furthest end among the earlier notes of each pitch: a running
    # maximum within each pitch's run (runs lifted apart by `span`).
    same = p[1:] == p[:-1]
    run = np.r_[0, np.cumsum(~same)]
    span = e.max() - e.min() + 1
    furthest = np.maximum.accumulate(e - e.min() + run * span) - run * span
    prev_end = furthest[:-1] + e.min()
    counts[i] = int(np.count_nonzero(same & (s[1:] > s[:-1]) &
                                     (s[1:] <= prev_end)))
  return counts


def piece_profile(pitches: np.ndarray, onsets: np.ndarray,
                  ends: np.ndarray) -> CorpusProfile:
  """One piece's profile from its notes' pitches, onsets and ends (quarter
  notes)."""
  return CorpusProfile(
      files=1, notes=len(pitches), onsets_on_grid=onsets_on_grids(onsets),
      restrikes_on_grid=restrikes_on_grids(pitches, onsets, ends),
      pitch_counts=np.bincount(np.asarray(pitches, np.int64),
                               minlength=128)[:128].astype(np.int64))


def fitted_layout(profile: CorpusProfile, transpose: int = 0,
                  given: dict | None = None) -> dict:
  """The grid, quantisation and note range for a corpus's profile.

  `given`: layout values the user set (by field name), kept as they are.

  Returns:
    {"steps_per_quarter", "quantize", "encoding", "low_note", "high_note"},
    plus the evidence: "onset_share" per grid, "restrike_share" on the grid
    chosen, "notes_outside" (the share of notes
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
  grid = given.get("steps_per_quarter", grid)
  # On the grid used (a given one too); a grid outside GRIDS is not measured.
  restrikes = (profile.restrikes_on_grid[GRIDS.index(grid)] / profile.notes
               if grid in GRIDS else None)
  layout = {
      "steps_per_quarter": grid,
      "quantize": "sample" if grid < SAMPLE_BELOW else "round",
      "encoding": ("roll" if restrikes is not None
                   and restrikes < RESTRIKE_SHARE else "onoff"),
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
      "restrike_share": (None if restrikes is None
                         else round(float(restrikes), 6)),
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
  pitches, onsets, ends, _ = pianoroll.note_times(pm, include_drums)
  return piece_profile(pitches, onsets, ends) if len(pitches) else CorpusProfile()


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
  restrikes = fitted.get("restrike_share")
  if "encoding" in given:
    encoding = "given"
  elif restrikes is None:
    encoding = "re-strikes not measured on this grid"
  else:
    encoding = f"{restrikes:.2%} of notes re-struck"
  return (f"fitted to {fitted['files']} training files ({fitted['notes']} "
          f"notes): {grid} steps per quarter ({why}), --quantize="
          f"{fitted['quantize']}, --encoding={fitted['encoding']} ({encoding}), "
          f"notes {fitted['low_note']}.."
          f"{fitted['high_note'] - 1} ({fitted['notes_outside']:.2%} of notes "
          "outside)" + (f"; kept as given: {', '.join(given)}" if given
                        else ""))
