"""Samples against their corpus: the I/O around trainer/comparison/features.py.

Reads the samples (a local folder or gs://, through trainer/generation/storage.py) and
the data (a MIDI glob, local or gs://, or a preprocessed dataset folder),
computes the per-piece features of both, compares them, checks the samples
for copies of training windows, and writes a JSON, a figure and, when the
samples folder has a gallery this project wrote, a gallery with data
excerpts next to the samples (trainer/generation/previews.py).

Datasets of windows are stitched back into pieces; datasets of whole pieces
(preprocess.main --num_timesteps=0, the RNN-RBM's) give one piece per
untransposed sequence, and memorisation is then checked on spans of
features.SPAN_BARS bars instead of windows.

The grid. Samples and MIDI data are put on one grid and quantisation: the
dataset's (--data or --dataset_dir) when given, else the model's as
trainer.generate recorded it in the samples' generation.json, else
DEFAULT_SPEC's.
"""

import dataclasses
import glob
import io
import json
import os
import posixpath

from absl import logging
import numpy as np

from common import cli
from preprocess import pianoroll
from preprocess import records
from trainer.comparison import features as mf
from trainer.generation import storage as storage_lib

GENERATOR = "rbm-music compare"
DEFAULT_JSON = "comparison.json"
DEFAULT_FIGURE = "comparison.png"
# trainer.generate's record of a job (generation/lib.py SETTINGS_FILE; not
# imported: that would load the samplers and TensorFlow).
GENERATION_FILE = "generation.json"
# The grid of the features when no dataset says otherwise (the original post's).
DEFAULT_SPEC = pianoroll.RollSpec()


@dataclasses.dataclass(frozen=True)
class CompareConfig:
  """What to compare.

      python -m trainer.compare --samples=out/samples --data=out/dataset
  """

  samples: str = cli.setting(None, "Samples: a local folder or gs://BUCKET/PREFIX "
                             "holding *.mid (trainer.generate's --output).")
  data: str = cli.setting(None, "The data: a MIDI glob ('data/chorales/*.mid', "
                          "local or gs://) or a preprocess.main --output_dir.")
  dataset_dir: str | None = cli.setting(
      None, "A preprocessed dataset for the memorisation check when --data is "
      "a MIDI glob (a dataset --data serves both); its grid and quantisation "
      "also read the MIDI.")
  max_files: int = cli.setting(0, "Use at most this many samples and data "
                               "files each (0: all).")
  output: str | None = cli.setting(
      None, "The JSON to write (the figure goes next to it as .png). Default: "
      f"{DEFAULT_JSON} in the samples folder when trainer.generate wrote it.")
  soundfont: str | None = cli.setting(
      None, "A General MIDI .sf2 for the gallery's audio (default: a system "
      "one if FluidSynth finds one, else sine tones).")
  match_lengths: bool = cli.setting(
      False, "Measure each sample on an excerpt as long as a data piece "
      "drawn at random (from a bar line; seeded): pitch count and range grow "
      "with length, and 32-bar samples against 16-bar chorales compare "
      "unlike with unlike. Memorisation still reads whole samples.")
  transposed: bool = cli.setting(
      False, "With a dataset: count its transposed training copies "
      "(preprocess --transpose) as data pieces too, i.e. compare with the "
      "keys the model was trained on, not only the corpus's own keys.")
  gallery: bool = cli.setting(True, "Rewrite the samples' previews/index.html "
                              "with data excerpts and the comparison.")
  seed: int = cli.setting(0, "Seeds the distance subsampling and the choice "
                          "of data excerpts.")

  def __post_init__(self):
    if self.max_files < 0:
      raise cli.UsageError(f"--max_files={self.max_files} must be >= 0 "
                           "(0: all files).")
    if self.transposed and self.data and _is_glob(self.data):
      raise cli.UsageError(f"--transposed reads a dataset's transposed copies "
                           f"but --data={self.data} is MIDI: pass "
                           "--data=DATASET_DIR, or drop --transposed.")


def _is_glob(path: str) -> bool:
  return any(c in path for c in "*?[") or path.lower().endswith((".mid",
                                                                 ".midi"))


def _take(items: list, max_files: int) -> list:
  return items[:max_files] if max_files else items


def load_samples(url: str, max_files: int) -> tuple:
  """(the samples' store, [(name, MIDI bytes)] of the *.mid at its top level).

  Sorted by name, so --max_files takes the first samples of a job.
  """
  if "://" not in url and not os.path.isdir(url):
    raise cli.UsageError(f"--samples={url} is not a folder: give the "
                         "--output of trainer.generate (or gs://...).")
  store = storage_lib.open_storage(url)
  names = [n for n in store.list("") if n.lower().endswith((".mid", ".midi"))
           and "/" not in n]
  if not names:
    raise cli.UsageError(f"--samples={url} holds no .mid file: give the "
                         "--output of trainer.generate.")
  names = _take(names, max_files)
  return store, [(n, store.read(n)) for n in names]


def _pieces_from_midi(named_bytes: list, spec: pianoroll.RollSpec,
                      unmetered_bar: float = 4.0) -> tuple:
  """Pieces on `spec`'s grid, quantised as `spec` says, and the failures; a
  file without a time signature has bars of `unmetered_bar` quarters."""
  pieces, failed = [], []
  for name, data in named_bytes:
    try:
      pieces.append((name, mf.piece_from_midi(
          pianoroll.parse_midi(data), spec.steps_per_quarter, spec.quantize,
          unmetered_bar)))
    except Exception as e:  # pylint: disable=broad-except  # any bad MIDI
      failed.append(f"{name}: {e}")
  return pieces, failed


@dataclasses.dataclass(frozen=True)
class Dataset:
  """A preprocessed dataset as the comparison reads it.

  train / heldout: [(source, offset, transpose, matrix)], one per record:
  a window [num_timesteps, columns], or a whole piece [its num_steps,
  columns] when the dataset holds sequences (num_timesteps=0).
  """

  spec: records.DatasetSpec
  train: list
  heldout: list

  @property
  def whole_pieces(self) -> bool:
    return self.spec.num_timesteps == 0


def _read_dataset_records(data_dir: str, spec: records.DatasetSpec,
                          split: str) -> list:
  """[(source, offset, transpose, matrix)] of one split."""
  import tensorflow as tf  # pylint: disable=g-import-not-at-top  # only here
  from trainer import data as data_lib  # pylint: disable=g-import-not-at-top
  out = []
  for serialized in tf.data.TFRecordDataset(data_lib.split_files(data_dir,
                                                                 split)):
    ex = records.parse_example(serialized.numpy())
    # Whole pieces carry their length; a window has num_timesteps rows.
    steps = ex.get("num_steps", spec.num_timesteps)
    out.append((ex["source"], ex["offset"], ex["transpose"],
                records.unpack_window(ex["window"], steps, spec.n_columns)))
  return out


def _stitch(windows: list, spec: records.DatasetSpec,
            transposed: bool = False) -> list:
  """Pieces rebuilt from untransposed (or all) windows placed at their
  offsets.

  The tail shorter than a window was never written, so a piece ends at its
  last full window.
  """
  by_source = {}
  for source, offset, transpose, window in windows:
    if transpose == 0 or transposed:
      by_source.setdefault((source, transpose), []).append((offset, window))
  pieces = []
  for source, transpose in sorted(by_source):
    parts = by_source[(source, transpose)]
    length = max(o for o, _ in parts) + spec.num_timesteps
    matrix = np.zeros((length, spec.n_columns), np.uint8)
    for offset, window in parts:
      matrix[offset:offset + spec.num_timesteps] |= window
    pieces.append((_name(source, transpose),
                   mf.piece_from_matrix(matrix, spec.roll_spec)))
  return pieces


_TRANSPOSED = " (transposed {:+d})"


def _name(source: str, transpose: int) -> str:
  return source + _TRANSPOSED.format(transpose) if transpose else source


def _as_written(pieces: list) -> list:
  """The pieces that are not transposed copies (--transposed adds those)."""
  marker = _TRANSPOSED.split("{")[0]
  return [(name, piece) for name, piece in pieces if marker not in name]


def _whole_pieces(sequences: list, spec: records.DatasetSpec,
                  transposed: bool = False) -> list:
  """The untransposed (or all) sequences, one piece each, sorted by source.

  Transposed copies are training data, not more pieces of the corpus, unless
  asked for (CompareConfig.transposed).
  """
  return [(_name(source, transpose),
           mf.piece_from_matrix(matrix, spec.roll_spec))
          for source, _, transpose, matrix in sorted(
              sequences, key=lambda r: (r[0], r[2]))
          if transpose == 0 or transposed]


def load_dataset(data_dir: str) -> Dataset:
  """The spec and records of a dataset folder, or a UsageError."""
  from trainer import data as data_lib  # pylint: disable=g-import-not-at-top
  try:
    spec = data_lib.load_dataset_spec(data_dir)
  except FileNotFoundError as e:
    raise cli.UsageError(str(e)) from None
  return Dataset(spec,
                 _read_dataset_records(data_dir, spec, records.TRAIN_PREFIX),
                 _read_dataset_records(data_dir, spec, records.EVAL_PREFIX))


def heldout_pieces(data_dir: str, minimum: int = 2) -> tuple:
  """(pieces [(name, Piece)] as written, split): the valid split's pieces of
  a dataset, else the eval split's, else both held-out splits together
  ("valid+eval"), else the training split's (a corpus too small to hold
  `minimum` pieces out). Windows are stitched back into pieces."""
  from trainer import data as data_lib  # pylint: disable=g-import-not-at-top
  spec = data_lib.load_dataset_spec(data_dir)

  def read(split):
    if not data_lib.num_windows(spec, split):
      return []
    rows = _read_dataset_records(data_dir, spec, split)
    return (_whole_pieces(rows, spec) if spec.num_timesteps == 0
            else _stitch(rows, spec))

  # Each split is read only when the ones before it hold too few pieces.
  valid = read(records.VALID_PREFIX)
  if len(valid) >= minimum:
    return valid, records.VALID_PREFIX
  held_out = read(records.EVAL_PREFIX)
  for pieces, split in ((held_out, records.EVAL_PREFIX),
                        (valid + held_out, "valid+eval")):
    if len(pieces) >= minimum:
      return pieces, split
  train = read(records.TRAIN_PREFIX)
  if len(train) >= minimum:
    return train, records.TRAIN_PREFIX
  raise cli.UsageError(
      f"{data_dir} holds {len(valid) + len(held_out) + len(train)} piece(s) "
      f"in all splits; calibration needs at least {minimum}: preprocess more "
      "MIDI files.")


def samples_grid(samples_store) -> tuple:
  """(RollSpec, where it came from) for samples with no dataset given.

  trainer.generate records the model's layout in generation.json ("model");
  samples written before it did, or by anything else, get DEFAULT_SPEC.
  """
  raw = samples_store.read(GENERATION_FILE)
  try:
    layout = json.loads(raw)["model"]["roll_spec"] if raw else None
    if layout:
      return pianoroll.RollSpec(**layout), f"{GENERATION_FILE} (model)"
  except (ValueError, KeyError, TypeError) as e:
    logging.warning("%s: no usable model layout (%s): default grid",
                    samples_store.url(GENERATION_FILE), e)
  return DEFAULT_SPEC, "default"


def _list_midi(pattern: str) -> list:
  """The files a --data glob names. A local DIR/** is every MIDI file below
  DIR (as preprocess.main's --input reads it); other globs list what they
  match, MIDI or not (an unreadable file is counted, not hidden)."""
  import tensorflow as tf  # pylint: disable=g-import-not-at-top  # gs:// glob
  if "**" in pattern and "://" not in pattern:
    return sorted(p for p in glob.glob(pattern, recursive=True)
                  if os.path.isfile(p) and pianoroll.is_midi_path(p))
  return sorted(tf.io.gfile.glob(pattern))


def _read_midi_glob(pattern: str, max_files: int) -> list:
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  paths = _list_midi(pattern)
  if not paths:
    raise cli.UsageError(f"--data={pattern!r} matches no file: give a "
                         "glob of MIDI files or a dataset folder.")
  named = []
  for path in _take(paths, max_files):
    with tf.io.gfile.GFile(path, "rb") as f:
      named.append((path, f.read()))
  return named


def load_data(config: CompareConfig, grid: pianoroll.RollSpec):
  """(data pieces [(name, Piece)], Dataset or None, unreadable files).

  MIDI data goes on the dataset's grid and quantisation when there is a
  dataset, else on `grid` (the samples').
  """
  dataset_dir = None if _is_glob(config.data) else config.data
  if dataset_dir is None:
    named = _read_midi_glob(config.data, config.max_files)
    dataset = (load_dataset(config.dataset_dir) if config.dataset_dir
               else None)
    if dataset:
      grid = dataset.spec.roll_spec
    pieces, failed = _pieces_from_midi(named, grid)
    return pieces, dataset, failed
  if not os.path.isdir(dataset_dir) and "://" not in dataset_dir:
    raise cli.UsageError(f"--data={dataset_dir} is neither a MIDI glob nor a "
                         "folder (e.g. 'data/chorales/*.mid' or out/dataset).")
  dataset = load_dataset(dataset_dir)
  records_ = dataset.train + dataset.heldout
  pieces = (_whole_pieces(records_, dataset.spec, config.transposed)
            if dataset.whole_pieces
            else _stitch(records_, dataset.spec, config.transposed))
  return _take(pieces, config.max_files), dataset, []


def _memorisation(sample_pieces: list, dataset: Dataset | None) -> dict | None:
  """Copies of training windows (window datasets) or of training spans of
  mf.SPAN_BARS bars (whole-piece datasets) in the samples."""
  if dataset is None:
    return None
  spec = dataset.spec
  roll = spec.roll_spec
  matrices = [pianoroll.notes_to_matrix(piece.notes, roll,
                                        num_steps=piece.num_steps)[0]
              for _, piece in sample_pieces]
  if dataset.whole_pieces:
    return mf.span_memorisation(
        matrices, [r[3] for r in dataset.train], spec.steps_per_quarter,
        [r[3] for r in dataset.heldout])
  windows = [mf.sample_windows(m, spec.num_timesteps) for m in matrices]
  flat = lambda ws: np.stack([w[3].reshape(-1) for w in ws]) if ws else (
      np.zeros((0, spec.n_visible), np.uint8))
  return mf.memorisation(windows, flat(dataset.train), flat(dataset.heldout))


def _pieces_of(records_: list, dataset: Dataset) -> list:
  """The untransposed pieces of some of a dataset's records."""
  return [p for _, p in (_whole_pieces(records_, dataset.spec)
                         if dataset.whole_pieces
                         else _stitch(records_, dataset.spec))]


def _heldout_baseline(sample_pieces: list, dataset: Dataset | None,
                      seed: int) -> dict | None:
  """The corpus's own agreement, judged as the samples are: its held-out
  pieces, cut to the samples' lengths, against its training pieces. A
  feature they miss is one the corpus does not pin down to the goal's
  tolerance (a share of silent steps under 1% moves by tens of percent
  from one set of pieces to another). None without a dataset or with
  fewer than 2 pieces on either side."""
  if dataset is None:
    return None
  train, heldout = (_pieces_of(dataset.train, dataset),
                    _pieces_of(dataset.heldout, dataset))
  if len(train) < 2 or len(heldout) < 2:
    return None
  heldout = mf.cut_to_lengths(heldout, [p.num_steps for _, p in
                                        sample_pieces], seed)
  comparison = mf.compare_tables(mf.feature_table(train),
                                 mf.feature_table(heldout), seed)
  return mf.baseline_record(comparison, len(heldout), len(train))


def write_figure(data_table: dict, sample_table: dict, comparison: dict,
                 title: str) -> bytes:
  """PNG: one panel per feature, the data's distribution against the samples'."""
  import matplotlib  # pylint: disable=g-import-not-at-top
  matplotlib.use("Agg")  # no display on servers and CI
  from matplotlib import pyplot as plt  # pylint: disable=g-import-not-at-top
  cols = 4
  rows = -(-len(mf.FEATURES) // cols)
  fig, axes = plt.subplots(rows, cols, figsize=(4 * cols, 2.8 * rows + 0.8))
  for ax, feature in zip(axes.flat, mf.FEATURES):
    d, s, r = data_table[feature.name], sample_table[feature.name], \
        comparison[feature.name]
    if feature.kind == "scalar":
      lo, hi = min(d.min(), s.min()), max(d.max(), s.max())
      bins = np.linspace(lo, hi if hi > lo else lo + 1, 31)
      ax.hist(d, bins, density=True, alpha=0.55, label="data", color="C0")
      ax.hist(s, bins, density=True, alpha=0.55, label="samples", color="C1")
      note = f"{r['relative_difference']:+.0%}, OA {r['overlap']:.2f}"
    else:
      x = np.arange(len(feature.labels))
      ax.bar(x - 0.2, d.mean(axis=0), 0.4, label="data", color="C0")
      ax.bar(x + 0.2, s.mean(axis=0), 0.4, label="samples", color="C1")
      ax.set_xticks(x, feature.labels, fontsize=7)
      note = f"OA {r['overlap']:.2f}"
    mark = "" if r["meets_data"] else "  ✗"
    ax.set_title(f"{feature.name} ({note}){mark}", fontsize=9,
                 color="black" if r["meets_data"] else "firebrick")
    ax.tick_params(labelsize=7)
  for ax in list(axes.flat)[len(mf.FEATURES):]:
    ax.axis("off")
  # A fixed place: "best" searches every bar and point (slow, and warns).
  axes.flat[0].legend(fontsize=8, loc="upper right")
  fig.suptitle(title, fontsize=10)
  fig.tight_layout(rect=(0, 0, 1, 0.96))
  buf = io.BytesIO()
  fig.savefig(buf, format="png", dpi=80)
  plt.close(fig)
  return buf.getvalue()


def _output_store(config: CompareConfig, samples_store):
  """(store, json name, png name) to write to, refusing foreign files."""
  if config.output:
    folder, name = posixpath.split(config.output)
    store = storage_lib.open_storage(folder or ".")
    png = name.rsplit(".", 1)[0] + ".png"
  elif samples_store.read(GENERATION_FILE) is not None:
    store, name, png = samples_store, DEFAULT_JSON, DEFAULT_FIGURE
  else:
    return None, None, None
  existing = store.read(name)
  if existing is not None and GENERATOR.encode() not in existing[:200]:
    raise cli.UsageError(f"{store.url(name)} exists and was not written by "
                         "trainer.compare; choose another --output.")
  return store, name, png


def _grid_fields(spec: pianoroll.RollSpec) -> dict:
  return {"steps_per_quarter": spec.steps_per_quarter,
          "quantize": spec.quantize}


def compare(config: CompareConfig) -> dict:
  """Compares the samples with the data; writes the JSON, figure and gallery.

  Returns:
    The comparison (what the JSON holds), with "summary" its one line.

  Raises:
    cli.UsageError: missing folder, a glob with no match, no readable MIDI.
  """
  samples_store, named = load_samples(config.samples, config.max_files)
  grid, grid_source = samples_grid(samples_store)
  data_pieces, dataset, data_failed = load_data(config, grid)
  if dataset:
    if grid_source != "default" and _grid_fields(grid) != _grid_fields(
        dataset.spec.roll_spec):
      logging.warning("the samples' model has %s but the dataset %s: both "
                      "are read on the dataset's", _grid_fields(grid),
                      _grid_fields(dataset.spec.roll_spec))
    grid, grid_source = dataset.spec.roll_spec, "dataset"
  # The samples have no meter: their notes per bar are counted in the data
  # pieces' mean bar (Essen's tunes average 3.35 quarters: counted in 4/4,
  # samples as dense as the tunes read 19% more notes per bar).
  bar = (float(np.mean([p.quarters_per_bar for _, p in data_pieces]))
         if data_pieces else 4.0)
  sample_pieces, sample_failed = _pieces_from_midi(named, grid, bar)
  if len(data_pieces) < 2 or not sample_pieces:
    raise cli.UsageError(
        f"need >= 2 readable data pieces and >= 1 sample; read "
        f"{len(data_pieces)} from --data={config.data} and "
        f"{len(sample_pieces)} from --samples={config.samples}.")
  measured = [p for _, p in sample_pieces]
  if config.match_lengths:
    measured = mf.cut_to_lengths(measured, [p.num_steps for _, p in
                                            data_pieces], config.seed)
  data_table = mf.feature_table([p for _, p in data_pieces])
  sample_table = mf.feature_table(measured)
  comparison = mf.compare_tables(data_table, sample_table, config.seed)
  memo = _memorisation(sample_pieces, dataset)
  drift = mf.dense_drift(data_table, sample_table)
  baseline = _heldout_baseline(sample_pieces, dataset, config.seed)
  summary = mf.summary_line(comparison, memo, drift, baseline)
  result = {"generator": GENERATOR, "summary": summary,
            "samples": config.samples, "data": config.data,
            "num_samples": len(sample_pieces), "num_data": len(data_pieces),
            "unreadable": {"samples": sample_failed, "data": data_failed},
            "match_lengths": config.match_lengths,
            "transposed": config.transposed,
            "grid": {"steps_per_quarter": grid.steps_per_quarter,
                     "quantize": grid.quantize, "from": grid_source},
            "sample_bar_quarters": bar,
            "method": "Yang & Lerch 2018: OA and KL(intra-data || inter) of "
                      "KDE-smoothed pairwise feature distances",
            "features": comparison, "heldout_baseline": baseline,
            "dense_drift": drift,
            "memorisation": memo}
  store, json_name, png_name = _output_store(config, samples_store)
  if store is not None:
    title = (f"{len(data_pieces)} data pieces (blue) against "
             f"{len(sample_pieces)} samples (orange); red: misses the data")
    png = write_figure(data_table, sample_table, comparison, title)
    store.write(png_name, png, create_only=False)
    result["figure"] = store.url(png_name)
    store.write(json_name, (json.dumps(result, indent=1) + "\n").encode(),
                create_only=False)
    result["json"] = store.url(json_name)
    if config.gallery:
      from trainer.generation import previews  # pylint: disable=g-import-not-at-top
      # Excerpts of the corpus as written: a listener compares with Bach's
      # keys, and transposed copies would show one chorale several times.
      result["gallery"] = previews.update_gallery(
          samples_store, _as_written(data_pieces), png, summary,
          config.soundfont, config.seed)
  return result
