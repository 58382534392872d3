"""Per-piece music features and their comparison, after Yang & Lerch (2018).

"On the evaluation of generative models in music" (Neural Computing and
Applications): compute features per piece for the data and for the samples,
then compare the two sets. Pure functions on numpy arrays and
`pianoroll.Notes`: no files, no TensorFlow, no plotting here
(trainer/comparison/lib.py does the I/O).

A piece is its notes on the beat grid (`pianoroll.Notes`, steps of
1/steps_per_quarter quarter note) plus its length in steps and the seconds one
step lasts. The grid is the one the model sees, so data and samples are
measured alike whatever tempo map a MIDI file had.

Voices. Samples are one polyphonic stream with no voice labels, so "voice" is
defined the same way for data and samples: the two outer voices, the skyline
(the highest pitch struck at each onset) and the bass line (the lowest pitch
struck at each onset). The mean absolute interval is averaged over both.
Inner voices are left out on purpose: any assignment of a chord's inner notes
to voices is a guess that would favour one side.

Comparison. For every feature, the Yang & Lerch intra/inter-set method: the
distances (Euclidean; |a - b| for a scalar) between every pair of data pieces
(intra-set) and between every data piece and every sample (inter-set) are
smoothed with a Gaussian KDE; the overlapping area (OA) of the two densities
and KL(intra || inter) say how far the samples sit from the data compared
with how far the data pieces sit from one another. Chosen over a KDE of the
per-piece values themselves because it treats vector features (the
pitch-class, note-length and inter-onset histograms) the same way as scalars,
and gives figures comparable with the paper's. OA is ~1 when the samples are
drawn from the data's distribution, and falls towards 0 as they move away.
"""

import dataclasses

import numpy as np

from preprocess import pianoroll

# Bins of the note-length and inter-onset-interval histograms, in grid steps
# at 4 steps per quarter: 16th, 8th, dotted 8th, quarter, 5-7, half, 9-15,
# whole or longer. Lower edges; the last bin is open.
DURATION_BIN_EDGES = (1, 2, 3, 4, 5, 8, 9, 16)
DURATION_BIN_LABELS = ("1/16", "1/8", "3/16", "1/4", "<1/2", "1/2", "<1",
                       ">=1")
# Bins of the per-step polyphony histogram: pitches sounding at a step, 0 (a
# silent step) to POLYPHONY_BINS - 2; the last bin holds more.
POLYPHONY_BINS = 10
POLYPHONY_LABELS = tuple(str(n) for n in range(POLYPHONY_BINS - 1)) + (
    f">={POLYPHONY_BINS - 1}",)
# A piece "drifts dense" when its mean polyphony exceeds this percentile of
# the data pieces' (so the data's own share is about 1 - it / 100).
DENSE_PERCENTILE = 99.0
DENSE_TOLERANCE = 0.01
# A scalar feature "meets the data" within this relative difference of the
# data's mean; a histogram feature when its overlapping area reaches
# HISTOGRAM_MIN_OVERLAP (the sample-quality goals).
SCALAR_TOLERANCE = 0.15
HISTOGRAM_MIN_OVERLAP = 0.85
# Pairwise distances fed to the KDE are subsampled to this many (fixed seed).
MAX_DISTANCES = 20000
_KDE_POINTS = 512


@dataclasses.dataclass(frozen=True)
class Piece:
  """Notes on the grid, how many steps the piece lasts and a step's seconds."""

  notes: pianoroll.Notes
  num_steps: int
  seconds_per_step: float
  steps_per_quarter: int = 4
  quarters_per_bar: float = 4.0


@dataclasses.dataclass(frozen=True)
class Feature:
  name: str
  kind: str  # "scalar" or "histogram"
  description: str
  labels: tuple = ()


FEATURES = (
    Feature("notes_per_second", "scalar", "notes struck per second"),
    Feature("notes_per_bar", "scalar", "notes struck per bar"),
    Feature("pitch_count", "scalar", "distinct pitches used"),
    Feature("pitch_range", "scalar", "highest minus lowest pitch (semitones)"),
    Feature("mean_interval", "scalar",
            "mean |interval| between consecutive notes of the outer voices"),
    Feature("mean_note_length_s", "scalar", "mean note length (s)"),
    Feature("polyphony", "scalar",
            "mean pitches sounding over sounding steps"),
    Feature("silent_share", "scalar", "share of steps where nothing sounds"),
    Feature("restrike_share", "scalar",
            "share of notes struck on a pitch that was already sounding or "
            "ended at that very step"),
    Feature("pitch_class_histogram", "histogram", "notes per pitch class",
            ("C", "C#", "D", "D#", "E", "F", "F#", "G", "G#", "A", "A#", "B")),
    Feature("key_free_pitch_class_histogram", "histogram",
            "notes per pitch class, counted in semitones above the piece's "
            "most used pitch class (the same for every key)",
            tuple(f"+{n}" for n in range(12))),
    Feature("polyphony_histogram", "histogram",
            "steps by the number of pitches sounding (0: silent)",
            POLYPHONY_LABELS),
    Feature("note_length_histogram", "histogram",
            "note lengths (quarter = 1/4)", DURATION_BIN_LABELS),
    Feature("ioi_histogram", "histogram",
            "inter-onset intervals (quarter = 1/4)", DURATION_BIN_LABELS),
)
FEATURE_NAMES = tuple(f.name for f in FEATURES)


def piece_from_midi(pm, steps_per_quarter: int = 4,
                    quantize: str = "round",
                    unmetered_bar: float = 4.0) -> Piece:
  """A pretty_midi object on the grid (all non-drum notes, any pitch).

  `steps_per_quarter` and `quantize` must be those of the model's dataset
  (its RollSpec): on a quarter-note grid, "round" turns a voice's two 8ths
  into two one-beat notes where "sample" keeps the one sounding on the beat,
  which changes the note rate by ~20% on the chorales. Notes that cover no
  grid point under "sample" are left out, as preprocessing leaves them out.
  A step lasts as long as at the file's first tempo; the bar is the first time
  signature's, else `unmetered_bar` quarters (the samples carry none:
  trainer.compare measures them in the data pieces' mean bar).
  """
  notes, _ = pianoroll.extract_notes(pm, steps_per_quarter, quantize=quantize)
  sounding = notes.end > notes.start
  if not sounding.all():
    notes = pianoroll.Notes(notes.pitch[sounding], notes.start[sounding],
                            notes.end[sounding])
  notes = one_key_per_pitch(notes)
  _, tempi = pm.get_tempo_changes()
  tempo = float(tempi[0]) if len(tempi) else 120.0
  signatures = pm.time_signature_changes
  quarters_per_bar = (signatures[0].numerator * 4.0 / signatures[0].denominator
                      if signatures else float(unmetered_bar))
  num_steps = int(notes.end.max()) if len(notes) else 0
  return Piece(notes, num_steps, 60.0 / tempo / steps_per_quarter,
               steps_per_quarter, quarters_per_bar)


def one_key_per_pitch(notes: pianoroll.Notes) -> pianoroll.Notes:
  """The notes as one instrument plays them, a key per pitch: two voices in
  unison sound one note, and a pitch struck while it sounds ends the note
  that held it. The play/articulate codec does exactly this (a piano roll,
  the samples' and the models' encoding, holds one note per pitch), so data
  pieces and samples are counted alike: the Bach chorales' unisons and
  doubled parts would otherwise add notes no roll can write."""
  if not len(notes):
    return notes
  return pianoroll.matrix_to_notes(*_own_range_roll(notes, "onoff"))


def _own_range_roll(notes: pianoroll.Notes, encoding: str,
                    num_steps: int | None = None):
  """(matrix, spec): non-empty `notes` through the codec over their own
  pitch range (no pitch is dropped)."""
  spec = pianoroll.RollSpec(encoding=encoding,
                            low_note=int(notes.pitch.min()),
                            high_note=int(notes.pitch.max()) + 1)
  matrix, _ = pianoroll.notes_to_matrix(notes, spec, num_steps=num_steps)
  return matrix, spec


def piece_from_matrix(matrix: np.ndarray, spec: pianoroll.RollSpec,
                      tempo: float = 120.0) -> Piece:
  """A piano-roll matrix (a sample, or windows stitched back) as a Piece."""
  return Piece(pianoroll.matrix_to_notes(matrix, spec), int(matrix.shape[0]),
               60.0 / tempo / spec.steps_per_quarter, spec.steps_per_quarter)


def excerpt(piece: Piece, offset: int, num_steps: int) -> Piece:
  """Steps [offset, offset + num_steps) of a piece; notes crossing an edge
  are cut to it (a note held into the excerpt starts at its first step)."""
  n = piece.notes
  end_step = offset + num_steps
  keep = (n.start < end_step) & (n.end > offset)
  notes = pianoroll.Notes(n.pitch[keep],
                          np.maximum(n.start[keep], offset) - offset,
                          np.minimum(n.end[keep], end_step) - offset)
  return dataclasses.replace(piece, notes=notes,
                             num_steps=min(num_steps, piece.num_steps - offset))


def cut_to_lengths(pieces: list, lengths: list, seed: int = 0) -> list:
  """Each piece cut to a length drawn from `lengths` (e.g. the data pieces'),
  from a bar line drawn at random; pieces no longer than the draw stay whole.

  Features such as the pitch count and range grow with a piece's length: to
  compare 32-bar samples with 16-bar chorales like with like, measure the
  samples on excerpts with the data's distribution of lengths.
  """
  rng = np.random.default_rng(seed)
  out = []
  for piece in pieces:
    length = int(rng.choice(lengths))
    bar = max(1, round(piece.steps_per_quarter * piece.quarters_per_bar))
    bars = max(0, (piece.num_steps - length) // bar)
    offset = int(rng.integers(0, bars + 1)) * bar
    out.append(excerpt(piece, offset, length) if piece.num_steps > length
               else piece)
  return out


def _duration_histogram(steps: np.ndarray, steps_per_quarter: int) -> np.ndarray:
  """Normalised histogram of durations in steps, in DURATION_BIN_EDGES bins.

  Durations are rescaled to 4 steps per quarter first, so the bins mean the
  same note values on any grid.
  """
  counts = np.zeros(len(DURATION_BIN_EDGES))
  if len(steps):
    sixteenths = np.asarray(steps, np.float64) * 4.0 / steps_per_quarter
    index = np.searchsorted(DURATION_BIN_EDGES, sixteenths, side="right") - 1
    np.add.at(counts, np.clip(index, 0, len(counts) - 1), 1)
    counts /= counts.sum()
  return counts


def _outer_voices(notes: pianoroll.Notes) -> list:
  """[skyline pitches, bass-line pitches], one pitch per onset step."""
  order = np.lexsort((notes.pitch, notes.start))
  start, pitch = notes.start[order], notes.pitch[order]
  first = np.r_[True, start[1:] != start[:-1]]
  last = np.r_[start[1:] != start[:-1], True]
  return [pitch[last], pitch[first]]  # sorted by pitch within an onset


def sounding_counts(piece: Piece) -> np.ndarray:
  """Pitches sounding at each step [num_steps].

  A pitch counts once however many notes hold it: two voices in unison sound
  one pitch (one key of a piano), and a piano roll, the samples' and the
  models' encoding, holds one. Counting notes instead read the Bach chorales'
  unisons (7% of their steps) and doubled instrument parts as 4- and 9-note
  frames the samples can never write.
  """
  if not len(piece.notes):
    return np.zeros(piece.num_steps, np.int64)
  play, _ = _own_range_roll(piece.notes, "roll", piece.num_steps)
  return play.sum(axis=1, dtype=np.int64)


def restrike_mask(notes: pianoroll.Notes) -> np.ndarray:
  """True for each note struck where another note of its pitch was sounding
  or ended at that very step (start_other < start <= end_other).

  A voice that holds a pitch and strikes it again, or a repeated note with no
  rest in between; in the onoff layout, an articulate bit inside a held note.
  """
  mask = np.zeros(len(notes), bool)
  for pitch in np.unique(notes.pitch):
    idx = np.flatnonzero(notes.pitch == pitch)
    start, end = notes.start[idx], notes.end[idx]
    # Pairwise within one pitch: a piece has few notes per pitch.
    hit = (start[None, :] < start[:, None]) & (start[:, None] <= end[None, :])
    mask[idx] = hit.any(axis=1)
  return mask


def piece_features(piece: Piece) -> dict:
  """Every feature of FEATURES for one piece: floats and numpy vectors.

  An empty piece has zero notes: its rates are 0, its histograms all zeros,
  its silent share 1 (a sampler that writes silence must show up as such).
  """
  notes = piece.notes
  n = len(notes)
  seconds = piece.num_steps * piece.seconds_per_step
  bars = piece.num_steps / piece.steps_per_quarter / piece.quarters_per_bar
  sounding = sounding_counts(piece)
  active = sounding[sounding > 0]
  onsets = np.unique(notes.start)
  intervals = [np.abs(np.diff(v)) for v in _outer_voices(notes)] if n else []
  intervals = np.concatenate(intervals) if intervals else np.zeros(0)
  pitch_classes = np.bincount(notes.pitch % 12, minlength=12).astype(np.float64)
  polyphony = np.bincount(np.minimum(sounding, POLYPHONY_BINS - 1),
                          minlength=POLYPHONY_BINS).astype(np.float64)
  return {
      "notes_per_second": n / seconds if seconds > 0 else 0.0,
      "notes_per_bar": n / bars if bars > 0 else 0.0,
      "pitch_count": float(len(np.unique(notes.pitch))),
      "pitch_range": float(notes.pitch.max() - notes.pitch.min()) if n else 0.0,
      "mean_interval": float(intervals.mean()) if len(intervals) else 0.0,
      "mean_note_length_s": float((notes.end - notes.start).mean() *
                                  piece.seconds_per_step) if n else 0.0,
      "polyphony": float(active.mean()) if len(active) else 0.0,
      "silent_share": (float(np.mean(sounding == 0)) if piece.num_steps
                       else 1.0),
      "restrike_share": float(restrike_mask(notes).mean()) if n else 0.0,
      "pitch_class_histogram": pitch_classes / max(n, 1),
      # np.argmax takes the lowest class on a tie: the same for data and
      # samples.
      "key_free_pitch_class_histogram": np.roll(
          pitch_classes, -int(np.argmax(pitch_classes))) / max(n, 1),
      "polyphony_histogram": polyphony / max(piece.num_steps, 1),
      "note_length_histogram": _duration_histogram(
          notes.end - notes.start, piece.steps_per_quarter),
      "ioi_histogram": _duration_histogram(np.diff(onsets),
                                           piece.steps_per_quarter),
  }


def feature_table(pieces: list) -> dict:
  """{feature name: array [pieces] or [pieces, bins]} over `pieces`."""
  rows = [piece_features(p) for p in pieces]
  return {f.name: np.asarray([r[f.name] for r in rows], np.float64)
          for f in FEATURES}


# --- comparing two sets ------------------------------------------------------


def _pairwise(a: np.ndarray, b: np.ndarray, same: bool) -> np.ndarray:
  """Euclidean distances between rows of a and rows of b (i != j if same)."""
  a = a.reshape(len(a), -1)
  b = b.reshape(len(b), -1)
  d = np.sqrt(np.maximum(((a[:, None, :] - b[None, :, :]) ** 2).sum(-1), 0))
  if same:
    return d[~np.eye(len(a), dtype=bool)]
  return d.reshape(-1)


def _subsample(x: np.ndarray, rng) -> np.ndarray:
  return x if len(x) <= MAX_DISTANCES else rng.choice(x, MAX_DISTANCES,
                                                      replace=False)


# Above this many pair x dimension entries the distances are computed for
# MAX_DISTANCES random pairs only (e.g. a dataset's 4,000 transposed copies:
# 4,000^2 pairs of 12-bin histograms would take 1.6 GB); below it, all pairs
# and then a subsample, as before (same figures).
_MAX_PAIR_ENTRIES = 20_000_000


def _distances(a: np.ndarray, b: np.ndarray, same: bool, rng) -> np.ndarray:
  """Up to MAX_DISTANCES distances between rows of a and b (i != j if same)."""
  a = a.reshape(len(a), -1)
  b = b.reshape(len(b), -1)
  if len(a) * len(b) * a.shape[1] <= _MAX_PAIR_ENTRIES:
    return _subsample(_pairwise(a, b, same), rng)
  i = rng.integers(0, len(a), MAX_DISTANCES)
  j = rng.integers(0, len(b) - same, MAX_DISTANCES)
  if same:
    j += j >= i  # a uniform j != i
  return np.sqrt(((a[i] - b[j]) ** 2).sum(-1))


def kde(points: np.ndarray, grid: np.ndarray, bandwidth: float) -> np.ndarray:
  """Gaussian kernel density of `points` on `grid`, normalised on the grid."""
  density = np.zeros(len(grid))
  for chunk in np.array_split(points, max(1, len(points) // 4096)):
    z = (grid[:, None] - chunk[None, :]) / bandwidth
    density += np.exp(-0.5 * z * z).sum(axis=1)
  total = density.sum() * (grid[1] - grid[0])
  return density / total if total > 0 else density


def overlap_and_kl(p_points: np.ndarray, q_points: np.ndarray) -> tuple:
  """Overlapping area and KL(p || q) of two 1-D samples' Gaussian KDEs.

  One bandwidth for both (Scott's rule on the pooled points), so that two
  samples of one distribution give OA ~ 1. KL uses a floor of 1e-10 on q.
  """
  pooled = np.concatenate([p_points, q_points])
  spread = pooled.std()
  scale = max(np.abs(pooled).max(), 1e-9)
  bandwidth = max(1.06 * spread * len(pooled) ** -0.2, 1e-3 * scale, 1e-9)
  grid = np.linspace(pooled.min() - 4 * bandwidth, pooled.max() + 4 * bandwidth,
                     _KDE_POINTS)
  step = grid[1] - grid[0]
  p, q = kde(p_points, grid, bandwidth), kde(q_points, grid, bandwidth)
  oa = float(np.minimum(p, q).sum() * step)
  kl = float(np.sum(np.where(p > 0, p * np.log(np.maximum(p, 1e-300) /
                                                np.maximum(q, 1e-10)), 0))
             * step)
  return min(oa, 1.0), max(kl, 0.0)


def compare_feature(data: np.ndarray, samples: np.ndarray, seed: int = 0) -> dict:
  """Yang & Lerch comparison of one feature (rows = pieces).

  Returns mean ± std of each set (lists for histograms), the relative
  difference of the means (|s - d| / |d|; for histograms the L1 distance of
  the mean histograms over the data's L1 norm) and OA / KL of the intra-set
  (data vs data) against the inter-set (data vs samples) distances.
  """
  if len(data) < 2 or len(samples) < 1:
    raise ValueError(f"need >= 2 data pieces and >= 1 sample, got "
                     f"{len(data)} and {len(samples)}.")
  rng = np.random.default_rng(seed)
  intra = _distances(data, data, True, rng)
  inter = _distances(data, samples, False, rng)
  oa, kl = overlap_and_kl(intra, inter)
  d_mean, s_mean = data.mean(axis=0), samples.mean(axis=0)
  norm = np.abs(d_mean).sum()
  rel = float(np.abs(s_mean - d_mean).sum() / norm) if norm > 0 else (
      0.0 if np.abs(s_mean).sum() == 0 else float("inf"))
  if data.ndim == 1:
    rel = float((s_mean - d_mean) / abs(d_mean)) if d_mean != 0 else rel
  as_out = lambda x: x.tolist() if np.ndim(x) else float(x)
  return {"data_mean": as_out(d_mean), "data_std": as_out(data.std(axis=0)),
          "samples_mean": as_out(s_mean),
          "samples_std": as_out(samples.std(axis=0)),
          "relative_difference": rel, "overlap": oa, "kl": kl}


def meets_data(feature: Feature, result: dict) -> bool:
  """A scalar within SCALAR_TOLERANCE of the data; a histogram's OA high."""
  if feature.kind == "histogram":
    return result["overlap"] >= HISTOGRAM_MIN_OVERLAP
  return abs(result["relative_difference"]) <= SCALAR_TOLERANCE


def compare_tables(data: dict, samples: dict, seed: int = 0) -> dict:
  """{feature: compare_feature(...) + {"meets_data": bool}} for FEATURES."""
  out = {}
  for feature in FEATURES:
    result = compare_feature(data[feature.name], samples[feature.name], seed)
    result["meets_data"] = meets_data(feature, result)
    out[feature.name] = result
  return out


def dense_drift(data: dict, samples: dict) -> dict:
  """Pieces that drift into dense clusters: mean polyphony (over sounding
  steps) above the data pieces' DENSE_PERCENTILE-th percentile. The samples'
  share "meets the data" within DENSE_TOLERANCE of the data's own share."""
  threshold = float(np.percentile(data["polyphony"], DENSE_PERCENTILE))
  data_share = float(np.mean(data["polyphony"] > threshold))
  samples_share = float(np.mean(samples["polyphony"] > threshold))
  return {"polyphony_above": threshold, "share_data": data_share,
          "share_samples": samples_share,
          "meets_data": samples_share <= data_share + DENSE_TOLERANCE}


# --- memorisation ------------------------------------------------------------


def nearest_hamming(queries: np.ndarray, references: np.ndarray,
                    chunk: int = 2048) -> np.ndarray:
  """For each binary row of `queries`, the Hamming distance to the nearest row
  of `references` (both [rows, bits] of 0/1).

  |a xor b| = |a| + |b| - 2 a.b, with a.b as a float32 matmul: exact for
  counts below 2^24 and far faster than a popcount over every pair.
  """
  if not len(references):
    raise ValueError("no reference windows to compare with.")
  ref = references.astype(np.float32)
  ref_ones = ref.sum(axis=1)
  out = np.empty(len(queries), np.int64)
  for begin in range(0, len(queries), chunk):
    q = queries[begin:begin + chunk].astype(np.float32)
    distance = q.sum(axis=1)[:, None] + ref_ones[None, :] - 2 * (q @ ref.T)
    out[begin:begin + chunk] = np.rint(distance.min(axis=1)).astype(np.int64)
  return out


def sample_windows(matrix: np.ndarray, num_timesteps: int,
                   max_windows: int = 32) -> np.ndarray:
  """Up to `max_windows` evenly spaced windows of a piece, flattened [w, bits].

  A piece shorter than a window is padded with silence, as the sampler's
  window would be.
  """
  if len(matrix) < num_timesteps:
    matrix = np.pad(matrix, ((0, num_timesteps - len(matrix)), (0, 0)))
  last = len(matrix) - num_timesteps
  offsets = np.unique(np.linspace(0, last, min(max_windows, last + 1)
                                  ).round().astype(int))
  return np.stack([matrix[o:o + num_timesteps].reshape(-1) for o in offsets])


def memorisation(sample_windows_list: list, train_windows: np.ndarray,
                 baseline_windows: np.ndarray | None = None) -> dict:
  """Exact copies of training windows among the samples' windows (a window
  with no note copies nothing: a rest as long as a window is not a quote).

  Args:
    sample_windows_list: per sample, its windows [w, bits] (`sample_windows`).
    train_windows: the training windows [n, bits].
    baseline_windows: held-out data windows: their nearest distance to the
      training windows says what "near" means for music that is not a copy.
  """
  counts = [len(w) for w in sample_windows_list]
  windows = np.concatenate(sample_windows_list)
  distances = nearest_hamming(windows, train_windows)
  copied = (distances == 0) & windows.any(axis=1)
  per_sample = np.split(copied, np.cumsum(counts)[:-1])
  out = {
      "samples": len(counts), "windows": len(distances),
      "train_windows": len(train_windows),
      "share_samples_with_copy": float(np.mean([c.any()
                                                for c in per_sample])),
      "share_windows_copied": float(np.mean(copied)),
      "nearest_distance_mean": float(distances.mean()),
      "nearest_distance_median": float(np.median(distances)),
      "nearest_distance_min": int(distances.min()),
  }
  if baseline_windows is not None and len(baseline_windows):
    base = nearest_hamming(baseline_windows, train_windows)
    out["heldout_nearest_distance_mean"] = float(base.mean())
    out["heldout_nearest_distance_median"] = float(np.median(base))
  return out


# --- memorisation in whole pieces (sequence datasets, the RNN-RBM's) ---------
#
# A whole-piece dataset has no window length, and a long sample has no
# window boundaries: a copy may start at any step. The unit is a span of
# SPAN_BARS bars of 4/4 on the dataset's grid (16 frames on a quarter-note
# grid, 64 on a 16th grid): four bars of four-part music equal to the data,
# bit for bit, are not chance (a cadence or a held chord is shorter). Exact
# copies are found among every span of every sample against every span of
# every training sequence (transposed copies included: the model saw them),
# by hashing. The nearest Hamming distance is exact over all training spans
# but computed for at most MAX_SPAN_QUERIES sample spans (it costs a matmul
# against every training frame per span step), and fewer on a large corpus:
# at most MAX_SPAN_WORK query-frame products (queries x training frames x
# span steps; no fewer than MIN_SPAN_QUERIES spans). The six styles' corpora
# but Essen stay at 512 (MuseData: 5.0e9); Essen's 822,367 training spans of
# 64 steps take 114 (its trainer.compare: 255 s at 512, 97 s at 114).
SPAN_BARS = 4
MAX_SPAN_QUERIES = 512
MIN_SPAN_QUERIES = 64
MAX_SPAN_WORK = 6e9


def span_steps(steps_per_quarter: int, bars: int = SPAN_BARS) -> int:
  """Grid steps of `bars` bars of 4/4."""
  return bars * 4 * steps_per_quarter


def _padded_to(matrix: np.ndarray, span: int) -> np.ndarray:
  """A piece shorter than a span is padded with silence (as `sample_windows`)."""
  if len(matrix) >= span:
    return matrix
  return np.pad(matrix, ((0, span - len(matrix)), (0, 0)))


def span_keys(matrix: np.ndarray, span: int) -> list:
  """Every span of `span` consecutive rows (stride 1) as bytes, in order."""
  packed = np.packbits(_padded_to(matrix, span).astype(np.uint8), axis=1)
  windows = np.lib.stride_tricks.sliding_window_view(
      packed, (span, packed.shape[1]))[:, 0]
  flat = np.ascontiguousarray(windows.reshape(len(windows), -1))
  return [row.tobytes() for row in flat]


def _frames_and_starts(matrices: list, span: int) -> tuple:
  """All training frames end to end [N, C] and which rows start a span that
  stays inside its own piece [N - span + 1] (bool)."""
  padded = [_padded_to(m, span) for m in matrices]
  frames = np.concatenate(padded)
  valid = np.zeros(len(frames) - span + 1, bool)
  position = 0
  for m in padded:
    valid[position:position + len(m) - span + 1] = True
    position += len(m)
  return frames, valid


def nearest_span_distance(queries: np.ndarray, train_matrices: list,
                          chunk: int = 32) -> np.ndarray:
  """For each query span [q, span, C], the Hamming distance to the nearest
  span of any training piece, at any offset (all 0/1).

  |a xor b| = |a| + |b| - 2 a.b summed over the span's frames: the dot
  products of each query frame with every training frame (one float32 matmul
  per span step, exact below 2^24) are added along the diagonals.
  """
  q, span, _ = queries.shape
  frames, valid = _frames_and_starts(train_matrices, span)
  frames_t = np.ascontiguousarray(frames.T.astype(np.float32))  # [C, N]
  starts = len(valid)
  ones = np.concatenate([[0.0], np.cumsum(frames.sum(axis=1, dtype=np.float64))])
  span_ones = (ones[span:] - ones[:-span]).astype(np.float32)  # [starts]
  out = np.empty(q, np.int64)
  for begin in range(0, q, chunk):
    block = queries[begin:begin + chunk].astype(np.float32)
    dots = np.zeros((len(block), starts), np.float32)
    for k in range(span):
      dots += (block[:, k] @ frames_t)[:, k:k + starts]
    distance = block.sum(axis=(1, 2))[:, None] + span_ones[None, :] - 2 * dots
    distance[:, ~valid] = np.inf
    out[begin:begin + chunk] = np.rint(distance.min(axis=1)).astype(np.int64)
  return out


def _query_spans(matrices: list, span: int, max_queries: int) -> np.ndarray:
  """Up to `max_queries` spans [q, span, C], evenly spaced in each piece and
  spread evenly over the pieces."""
  per_piece = max(1, max_queries // max(1, len(matrices)))
  spans = []
  for m in matrices:
    m = _padded_to(m, span)
    last = len(m) - span
    for o in np.unique(np.linspace(0, last, min(per_piece, last + 1)
                                   ).round().astype(int)):
      spans.append(m[o:o + span])
  keep = np.unique(np.linspace(0, len(spans) - 1, min(max_queries, len(spans))
                               ).round().astype(int))
  return np.stack([spans[i] for i in keep]).astype(np.uint8)


def span_memorisation(sample_matrices: list, train_matrices: list,
                      steps_per_quarter: int,
                      heldout_matrices: list | None = None,
                      max_queries: int = MAX_SPAN_QUERIES,
                      max_work: float = MAX_SPAN_WORK) -> dict:
  """Copies of training spans in whole samples (sequence datasets).

  Args:
    sample_matrices: the samples [T_i, C] on the dataset's grid and layout.
    train_matrices: every training sequence [T_j, C] (transposed ones too).
    steps_per_quarter: the dataset's grid; a span is SPAN_BARS bars of it
      (`span_steps`).
    heldout_matrices: held-out pieces: their nearest distance to the training
      spans says what "near" means for music that is not a copy.
    max_queries: sample (and held-out) spans whose nearest distance is
      computed; the copy check itself covers every span.
    max_work: fewer of them when queries x training spans x span steps
      would pass this (at least MIN_SPAN_QUERIES).

  Returns:
    share_samples_with_copy and the nearest distances as `memorisation`
    gives them (spans for windows: spans, train_spans, share_spans_copied),
    plus span_steps, span_bars and distance_spans (the spans the distances
    are computed over).
  """
  if not train_matrices:
    raise ValueError("no training pieces to compare with.")
  span = span_steps(steps_per_quarter)
  train = set()
  for m in train_matrices:
    train.update(span_keys(m, span))
  # Four bars of silence copy nothing (Piano-midi.de has one in its training
  # pieces: a sample's long rest matched it and read as a copy).
  train.discard(span_keys(np.zeros((span, train_matrices[0].shape[1]),
                                   np.uint8), span)[0])
  copied = [np.array([k in train for k in span_keys(m, span)])
            for m in sample_matrices]
  _, valid = _frames_and_starts(train_matrices, span)
  affordable = int(max_work // max(1, int(valid.sum()) * span))
  max_queries = min(max_queries, max(MIN_SPAN_QUERIES, affordable))
  queries = _query_spans(sample_matrices, span, max_queries)
  distances = nearest_span_distance(queries, train_matrices)
  any_copy = any(c.any() for c in copied)
  out = {
      "span_steps": span, "span_bars": SPAN_BARS,
      "samples": len(sample_matrices),
      "spans": int(sum(len(c) for c in copied)),
      "train_spans": int(valid.sum()),
      "share_samples_with_copy": float(np.mean([c.any() for c in copied])),
      "share_spans_copied": float(np.mean(np.concatenate(copied))),
      "distance_spans": len(queries),
      "nearest_distance_mean": float(distances.mean()),
      "nearest_distance_median": float(np.median(distances)),
      # The distances' subsample may miss a copy that the full check found.
      "nearest_distance_min": 0 if any_copy else int(distances.min()),
  }
  if heldout_matrices:
    base = nearest_span_distance(
        _query_spans(heldout_matrices, span, max_queries), train_matrices)
    out["heldout_nearest_distance_mean"] = float(base.mean())
    out["heldout_nearest_distance_median"] = float(np.median(base))
    # The corpus's own rate: held-out pieces (cut to the samples' median
    # length, as many chances each) holding a training span note for note.
    # Folk tunes share formulas and variants, so it need not be 0.
    length = int(np.median([len(m) for m in sample_matrices]))
    out["heldout_share_with_copy"] = float(np.mean(
        [any(k in train for k in span_keys(m[:length], span))
         for m in heldout_matrices]))
  return out


def _figure(name: str, result: dict) -> float:
  """A feature's figure against its goal: a histogram's overlap, a scalar's
  relative difference."""
  histogram = next(f.kind for f in FEATURES if f.name == name) == "histogram"
  return result["overlap"] if histogram else result["relative_difference"]


def baseline_record(comparison: dict, pieces: int, train_pieces: int) -> dict:
  """What the JSON keeps of the held-out pieces' own comparison: how many
  features they meet and, for each they miss, its figure."""
  return {"pieces": pieces, "train_pieces": train_pieces,
          "features_met": sum(r["meets_data"] for r in comparison.values()),
          "features": len(comparison),
          "missed": {name: _figure(name, r) for name, r in comparison.items()
                     if not r["meets_data"]}}


def summary_line(comparison: dict, memo: dict | None,
                 drift: dict | None = None,
                 baseline: dict | None = None) -> str:
  """One line: how many features meet the data (and how many the corpus's
  held-out pieces meet against its training pieces), the worst ones, dense
  drift, copies."""
  met = [n for n, r in comparison.items() if r["meets_data"]]
  missed = [n for n, r in comparison.items() if not r["meets_data"]]
  kinds = {f.name: f.kind for f in FEATURES}

  def badness(name):
    r = comparison[name]
    if kinds[name] == "histogram":
      return 1.0 - r["overlap"]
    return abs(r["relative_difference"]) - SCALAR_TOLERANCE

  def show_value(name, value):
    if kinds[name] == "histogram":
      return f"{name} overlap {value:.2f}"
    return f"{name} {value:+.0%}"

  def show(name):
    return show_value(name, _figure(name, comparison[name]))

  worst = sorted(missed, key=badness, reverse=True)[:3]
  pc = comparison.get("pitch_class_histogram", {}).get("overlap")
  parts = [f"compare: {len(met)}/{len(comparison)} features meet the data "
           f"(scalars within {SCALAR_TOLERANCE:.0%}, histograms overlap >= "
           f"{HISTOGRAM_MIN_OVERLAP})"]
  if baseline is not None:
    own = ", ".join(show_value(n, v) for n, v in baseline["missed"].items())
    parts.append(f"the corpus's held-out pieces meet {baseline['features_met']}"
                 f"/{baseline['features']} against its training pieces"
                 + (f" (missing {own})" if own else ""))
  if pc is not None:
    parts.append(f"pitch-class overlap {pc:.2f}")
  if drift is not None:
    parts.append(f"{drift['share_samples']:.1%} samples drift dense (data "
                 f"{drift['share_data']:.1%}; mean polyphony > "
                 f"{drift['polyphony_above']:.2f})")
  if memo is not None:
    what = (f"{memo['span_bars']}-bar training span" if "span_steps" in memo
            else "training window")
    heldout = memo.get("heldout_share_with_copy")
    parts.append(f"{memo['share_samples_with_copy']:.1%} samples copy a "
                 f"{what}" + ("" if heldout is None else
                              f" (held-out pieces {heldout:.1%})"))
  if worst:
    parts.append("worst: " + ", ".join(show(n) for n in worst))
  return "; ".join(parts)
