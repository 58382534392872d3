"""The piano-roll codec: MIDI <-> binary matrices on a beat grid.

Shared by preprocessing (MIDI -> training windows) and generation (samples -> MIDI),
so both sides agree on the layout. Pure functions on numpy arrays and pretty_midi
objects: no file system, no Beam, no TensorFlow here.

Layouts (one row per grid step, `spec.n_columns` columns):
  * ``onoff`` (the original post's): ``[play block | articulate block]``, each ``n_pitches``
    wide. *play* is 1 while a note sounds, *articulate* is 1 on the step it is struck.
  * ``roll``: one column per pitch, 1 while a note sounds.

Time is quantised in quarter notes (MIDI ticks / resolution), never in seconds, so
files with any tempo map or ticks-per-beat land on the same grid.
"""

import dataclasses
import io

import numpy as np
import pretty_midi

ENCODINGS = ("onoff", "roll")
# How notes land on the grid (RollSpec.quantize):
#   * ``round``: onset and end to the nearest step (halves up), at least one
#     step. Keeps every note; right for fine grids and performed MIDI, whose
#     onsets jitter around the grid.
#   * ``sample``: a step holds the notes sounding at its grid point
#     (start <= t < end); a note spanning no grid point is left out. The
#     convention of the JSB Chorales / Nottingham / MuseData benchmarks
#     (Boulanger-Lewandowski et al. 2012), and right for coarse grids: on a
#     quarter-note grid ``round`` turns a voice's two 8ths into two notes of
#     one beat (4.7 notes per frame in the chorales instead of 3.9).
QUANTIZE = ("round", "sample")

# Ticks per quarter note of the MIDI files the project writes.
MIDI_RESOLUTION = 480
# What a MIDI file is called: folders are read for these, other files skipped.
MIDI_EXTENSIONS = (".mid", ".midi")


def is_midi_path(path: str) -> bool:
  return path.lower().endswith(MIDI_EXTENSIONS)


@dataclasses.dataclass(frozen=True)
class RollSpec:
  """What a matrix means: encoding, pitch range and grid resolution."""

  # "onoff" (play + articulate columns, the original post's) or "roll" (play only).
  encoding: str = "onoff"
  # Lowest MIDI pitch kept (inclusive). The original post's range is 24..101.
  low_note: int = 24
  # Highest MIDI pitch kept (exclusive).
  high_note: int = 102
  # Grid steps per quarter note: 4 = 16th notes, 1 = quarter notes.
  steps_per_quarter: int = 4
  # "round" or "sample": see QUANTIZE. Only MIDI -> matrix depends on it.
  quantize: str = "round"

  def __post_init__(self):
    if self.encoding not in ENCODINGS:
      raise ValueError(
          f"encoding={self.encoding!r} is not known; use one of {ENCODINGS}.")
    if not 0 <= self.low_note < self.high_note <= 128:
      raise ValueError(
          f"note range [{self.low_note}, {self.high_note}) is not a non-empty "
          "range inside MIDI's 0..128; e.g. low_note=24, high_note=102.")
    if self.quantize not in QUANTIZE:
      raise ValueError(
          f"quantize={self.quantize!r} is not known; use one of {QUANTIZE}.")
    if self.steps_per_quarter < 1:
      raise ValueError(
          f"steps_per_quarter={self.steps_per_quarter} must be >= 1 "
          "(4 = 16th notes).")

  @property
  def n_pitches(self) -> int:
    return self.high_note - self.low_note

  @property
  def n_columns(self) -> int:
    return 2 * self.n_pitches if self.encoding == "onoff" else self.n_pitches


@dataclasses.dataclass(frozen=True)
class Notes:
  """Notes quantised to the grid: MIDI pitch, first step, end step (exclusive)."""

  pitch: np.ndarray
  start: np.ndarray
  end: np.ndarray

  def __len__(self) -> int:
    return len(self.pitch)

  @classmethod
  def empty(cls) -> "Notes":
    z = np.zeros(0, np.int64)
    return cls(z, z.copy(), z.copy())

  def as_tuples(self) -> list:
    """Sorted (pitch, start, end) triples: a canonical form for comparisons."""
    return sorted(zip(self.pitch.tolist(), self.start.tolist(),
                      self.end.tolist()))


def parse_midi(data: bytes) -> pretty_midi.PrettyMIDI:
  """Parses MIDI file bytes. Raises whatever pretty_midi/mido raise on bad data."""
  return pretty_midi.PrettyMIDI(io.BytesIO(data))


def _seconds_to_quarters(pm: pretty_midi.PrettyMIDI,
                         times: np.ndarray) -> np.ndarray:
  """Maps absolute times (s) to quarter notes through the file's tempo map."""
  change_times, tempi = pm.get_tempo_changes()
  quarters_per_second = tempi / 60.0
  quarters_at_change = np.concatenate(
      [[0.0], np.cumsum(np.diff(change_times) * quarters_per_second[:-1])])
  idx = np.clip(np.searchsorted(change_times, times, side="right") - 1, 0, None)
  return quarters_at_change[idx] + (
      times - change_times[idx]) * quarters_per_second[idx]


def note_times(pm: pretty_midi.PrettyMIDI, include_drums: bool = False
               ) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
  """Every note of every instrument in quarter notes, before quantisation.

  Returns:
    (pitch, start, end, number of drum notes left out); start and end in
    quarter notes through the file's tempo map.
  """
  starts, ends, pitches = [], [], []
  drum_notes = 0
  for inst in pm.instruments:
    if inst.is_drum and not include_drums:
      drum_notes += len(inst.notes)
      continue
    for n in inst.notes:
      starts.append(n.start)
      ends.append(n.end)
      pitches.append(n.pitch)
  quarters = _seconds_to_quarters(pm, np.asarray(starts + ends, np.float64))
  return (np.asarray(pitches, np.int64), quarters[:len(starts)],
          quarters[len(starts):], drum_notes)


def extract_notes(pm: pretty_midi.PrettyMIDI, steps_per_quarter: int,
                  include_drums: bool = False,
                  quantize: str = "round") -> tuple[Notes, int]:
  """Quantises every note of every instrument to the beat grid.

  ``quantize="round"``: a note shorter than one step still sounds for one
  step. ``"sample"``: a note sounds on the steps whose grid point it covers;
  one that covers none comes back with end == start (no step: the renderer
  leaves it out). Pitch range is not applied here (see `notes_to_matrix`), so
  one extraction serves all transpositions.

  Returns:
    (notes, number of drum notes left out).
  """
  pitches, starts, ends, drum_notes = note_times(pm, include_drums)
  if not len(pitches):
    return Notes.empty(), drum_notes
  grid = np.concatenate([starts, ends]) * steps_per_quarter
  if quantize == "sample":
    # First grid point at or after each time; the tolerance absorbs tick
    # rounding (a note on the beat must not start one step late).
    steps = np.ceil(grid - 1e-6).astype(np.int64)
    start, end = steps[:len(starts)], steps[len(starts):]
  else:
    # Halves go up, consistently (np.rint's half-to-even would move every
    # other 8th of a quarter-note grid a step later).
    steps = np.floor(grid + 0.5).astype(np.int64)
    start, end = steps[:len(starts)], steps[len(starts):]
    end = np.maximum(end, start + 1)
  return Notes(pitches, start, end), drum_notes


def notes_to_matrix(notes: Notes, spec: RollSpec, transpose: int = 0,
                    num_steps: int | None = None) -> tuple[np.ndarray, int]:
  """Renders notes as a binary matrix in `spec`'s layout.

  Args:
    notes: quantised notes.
    spec: layout.
    transpose: semitones added to every pitch before the range is applied.
    num_steps: rows of the result; default: up to the last note's end. Notes
      past it are cut.

  Returns:
    (uint8 matrix [num_steps, spec.n_columns], number of notes dropped because
    their pitch fell outside [low_note, high_note)).
  """
  column = notes.pitch + transpose - spec.low_note
  keep = (column >= 0) & (column < spec.n_pitches)
  dropped = int(np.count_nonzero(~keep))
  column, start, end = column[keep], notes.start[keep], notes.end[keep]
  if num_steps is None:
    num_steps = int(end.max()) if len(end) else 0
  start = np.clip(start, 0, num_steps)
  end = np.clip(end, 0, num_steps)
  audible = end > start
  column, start, end = column[audible], start[audible], end[audible]

  # Sounding intervals as +1/-1 edges, integrated along time: no per-note loop.
  edges = np.zeros((num_steps + 1, spec.n_pitches), np.int32)
  np.add.at(edges, (start, column), 1)
  np.add.at(edges, (end, column), -1)
  play = (np.cumsum(edges[:-1], axis=0) > 0).astype(np.uint8)
  if spec.encoding == "roll":
    return play, dropped
  articulate = np.zeros_like(play)
  articulate[start, column] = 1
  return np.concatenate([play, articulate], axis=1), dropped


def matrix_to_notes(matrix: np.ndarray, spec: RollSpec) -> Notes:
  """Reads notes back from a matrix (any binary matrix, e.g. an RBM sample).

  ``onoff``: a note starts where *play* turns on, or where it stays on and
  *articulate* is set (a re-struck held note becomes two notes); it ends where
  *play* turns off. *articulate* without *play* is ignored, as in the original post.
  ``roll``: each run of *play* is one note.
  """
  _check_matrix(matrix, spec)
  play = matrix[:, :spec.n_pitches].astype(bool)
  num_steps = play.shape[0]
  previous = np.zeros_like(play)
  previous[1:] = play[:-1]
  onset = play & ~previous
  if spec.encoding == "onoff":
    onset |= play & matrix[:, spec.n_pitches:].astype(bool)
  # A note ends at the first later step that is silent or a new onset. Work
  # pitch-major on a [pitch, step + 1] grid whose extra last column is a
  # boundary, so one searchsorted finds every note's end at once.
  boundary = np.concatenate(
      [(~play | onset).T, np.ones((spec.n_pitches, 1), bool)], axis=1)
  width = num_steps + 1
  onset_flat = np.flatnonzero(np.concatenate(
      [onset.T, np.zeros((spec.n_pitches, 1), bool)], axis=1))
  if not len(onset_flat):
    return Notes.empty()
  stops = np.flatnonzero(boundary)
  end_flat = stops[np.searchsorted(stops, onset_flat, side="right")]
  column, start = np.divmod(onset_flat, width)
  return Notes((column + spec.low_note).astype(np.int64),
               start.astype(np.int64), (end_flat - column * width).astype(
                   np.int64))


def matrix_to_midi(matrix: np.ndarray, spec: RollSpec, tempo: float = 120.0,
                   program: int = 0, velocity: int = 80,
                   resolution: int = MIDI_RESOLUTION) -> pretty_midi.PrettyMIDI:
  """Writes a matrix as a one-instrument MIDI with a tempo event.

  Every note gets its note-off (the original post's writer left notes hanging at the
  end of the file).
  """
  if not 0 <= program <= 127:
    raise ValueError(f"program={program} must be a General MIDI program 0..127.")
  if not 1 <= velocity <= 127:
    raise ValueError(f"velocity={velocity} must be in 1..127.")
  if tempo <= 0:
    raise ValueError(f"tempo={tempo} must be a positive number of bpm.")
  notes = matrix_to_notes(matrix, spec)
  seconds_per_step = 60.0 / tempo / spec.steps_per_quarter
  pm = pretty_midi.PrettyMIDI(resolution=resolution, initial_tempo=tempo)
  inst = pretty_midi.Instrument(program=program)
  order = np.lexsort((notes.pitch, notes.start))
  inst.notes = [
      pretty_midi.Note(velocity=velocity, pitch=int(notes.pitch[i]),
                       start=float(notes.start[i] * seconds_per_step),
                       end=float(notes.end[i] * seconds_per_step))
      for i in order
  ]
  pm.instruments.append(inst)
  return pm


def midi_to_bytes(pm: pretty_midi.PrettyMIDI) -> bytes:
  buf = io.BytesIO()
  pm.write(buf)
  return buf.getvalue()


def midi_to_matrix(pm: pretty_midi.PrettyMIDI, spec: RollSpec,
                   include_drums: bool = False,
                   num_steps: int | None = None) -> np.ndarray:
  """Convenience: `extract_notes` then `notes_to_matrix` without transposition."""
  notes, _ = extract_notes(pm, spec.steps_per_quarter, include_drums,
                           spec.quantize)
  return notes_to_matrix(notes, spec, num_steps=num_steps)[0]


def canonicalize(matrix: np.ndarray, spec: RollSpec) -> np.ndarray:
  """The matrix that the notes `matrix` stands for encode to.

  For ``onoff`` this clears *articulate* where nothing plays and sets it at
  the first step of every run of *play*. encode(decode(m)) == canonicalize(m).
  """
  return notes_to_matrix(matrix_to_notes(matrix, spec), spec,
                         num_steps=matrix.shape[0])[0]


def cut_windows(matrix: np.ndarray, num_timesteps: int, stride: int):
  """Yields (first step, window) for every full window; the tail is dropped."""
  if num_timesteps < 1 or stride < 1:
    raise ValueError(
        f"num_timesteps={num_timesteps} and stride={stride} must be >= 1.")
  for offset in range(0, matrix.shape[0] - num_timesteps + 1, stride):
    yield offset, matrix[offset:offset + num_timesteps]


def _check_matrix(matrix: np.ndarray, spec: RollSpec) -> None:
  if matrix.ndim != 2 or matrix.shape[1] != spec.n_columns:
    raise ValueError(
        f"matrix of shape {matrix.shape} does not fit the {spec.encoding!r} "
        f"layout of {spec.n_pitches} pitches: expected [steps, "
        f"{spec.n_columns}].")


def _vlq(value: int) -> bytes:
  """MIDI variable-length quantity."""
  out = [value & 0x7F]
  value >>= 7
  while value:
    out.append(0x80 | (value & 0x7F))
    value >>= 7
  return bytes(reversed(out))


def matrix_to_midi_bytes(matrix: np.ndarray, spec: RollSpec,
                         tempo: float = 120.0, program: int = 0,
                         velocity: int = 80,
                         resolution: int = MIDI_RESOLUTION) -> bytes:
  """The bytes `matrix_to_midi(...)` would write, serialised directly.

  A format-0 Standard MIDI File: tempo, program change, then note-ons and
  note-offs on channel 0. Written with struct-free byte building because
  generation writes thousands of files a second; pretty_midi parses the result
  to the same notes as `matrix_to_midi` (tested).
  """
  if not 0 <= program <= 127 or not 1 <= velocity <= 127 or tempo <= 0:
    matrix_to_midi(matrix[:0], spec, tempo, program, velocity)  # same errors
  notes = matrix_to_notes(matrix, spec)
  ticks_per_step = resolution / spec.steps_per_quarter
  # (tick, order, status, pitch, velocity): note-offs sort before note-ons
  # at the same tick so a re-struck pitch stays two notes.
  events = sorted(
      [(round(s * ticks_per_step), 1, 0x90, p, velocity)
       for p, s in zip(notes.pitch.tolist(), notes.start.tolist())] +
      [(round(e * ticks_per_step), 0, 0x80, p, 0)
       for p, e in zip(notes.pitch.tolist(), notes.end.tolist())])
  us_per_quarter = round(60_000_000 / tempo)
  track = bytearray(b"\x00\xff\x51\x03" + us_per_quarter.to_bytes(3, "big"))
  track += bytes([0x00, 0xC0, program])
  last = 0
  for tick, _, status, pitch, vel in events:
    track += _vlq(tick - last) + bytes([status, pitch, vel])
    last = tick
  track += b"\x00\xff\x2f\x00"
  header = b"MThd" + (6).to_bytes(4, "big") + (0).to_bytes(2, "big") + (
      1).to_bytes(2, "big") + resolution.to_bytes(2, "big")
  return header + b"MTrk" + len(track).to_bytes(4, "big") + bytes(track)
