r"""The settings of a preprocessing run, each declared once with its help text.

`PreprocessConfig` decides what the windows look like (it travels to the Beam
workers and into dataset.json); `RunConfig` says where they come from and go.
preprocess/main.py and deploy/dataflow.py generate their flags from both with
common.cli, so a default or a help text lives only here:

    python -m preprocess.main --input='data/chorales/*.mid' --output_dir=out/dataset

This module must not import Beam or TensorFlow: deploy/dataflow.py and the
flag definitions read it.
"""

import dataclasses
import re

from common import cli
from preprocess import pianoroll


@dataclasses.dataclass(frozen=True)
class PreprocessConfig:
  """Everything that decides what the windows look like.

  The defaults reproduce the original post: onoff encoding, 78 pitches, 16th notes,
  non-overlapping windows of 15 steps (2340 visible units).
  """

  encoding: str = cli.setting(
      "onoff", "onoff: play + articulate columns (the original post's); roll: play only.",
      choices=("onoff", "roll"))
  # Notes outside [low_note, high_note) are dropped and counted.
  low_note: int = cli.setting(24, "Lowest MIDI pitch kept.")
  high_note: int = cli.setting(102, "Highest MIDI pitch kept, exclusive.")
  steps_per_quarter: int = cli.setting(
      4, "Grid steps per quarter note (4 = 16th notes).")
  # pianoroll.QUANTIZE says when each is right.
  quantize: str = cli.setting(
      "round", "round: onsets and ends to the nearest step, every note kept "
      "(fine grids, performed MIDI); sample: a step holds the notes sounding "
      "at its grid point (coarse grids; the JSB Chorales convention).",
      choices=pianoroll.QUANTIZE)
  # One window is one visible vector of the model; 0 keeps every piece
  # whole, as one variable-length sequence (for a temporal model).
  num_timesteps: int = cli.setting(
      15, "Steps per window; 0: one example per piece, the whole sequence.")
  # = num_timesteps gives non-overlapping windows.
  stride: int = cli.setting(15, "Steps between window starts.")
  # Files, not windows, are held out: a piece is in one split only. The
  # hash is of the path relative to its glob's folder (steps.split_key), so
  # a corpus splits the same wherever it lives.
  eval_fraction: float = cli.setting(
      0.1, "Fraction of --input files held out as the test split, eval (by "
      "a hash of the path below the glob's folder).")
  # Model selection (early stopping, best export) reads valid when there is
  # one; without it, it reads eval and the eval figure is optimistic.
  valid_fraction: float = cli.setting(
      0.0, "Fraction of --input files held out for validation, valid (model "
      "selection), hashed like --eval_fraction.")
  transpose: int = cli.setting(
      0, "Augment training files with shifts -K..K semitones.")
  num_shards: int = cli.setting(
      0, "TFRecord shards per split (0: one per 64 MiB of records).")
  # preprocess/corpus_fit.py: how, and on what evidence.
  fit_corpus: bool = cli.setting(
      False, "Derive the grid (--steps_per_quarter, --quantize), --encoding "
      "and the note range (--low_note, --high_note) from the training files: "
      "the coarsest grid holding 95% of the onsets, roll when under 0.5% of "
      "the notes are re-struck, the range of 99.8% of the notes; "
      "any of those flags given is kept. dataset.json records the choice "
      "(\"fitted\").")
  # Drum "pitches" are instruments, so off by default.
  include_drums: bool = cli.setting(False, "Keep drum tracks.")
  max_file_bytes: int = cli.setting(
      32 * 1024 * 1024, "Larger files are rejected unread (reason too_large).")
  # 200k 16th notes is ~3.5 hours at 120 bpm, far beyond any real piece.
  max_steps: int = cli.setting(
      200_000, "Longer files (in grid steps) are rejected (too_long).")

  def __post_init__(self):
    _ = self.roll_spec  # validates the layout (RollSpec raises)
    if self.num_timesteps < 0:
      raise cli.UsageError(f"--num_timesteps={self.num_timesteps} must be >= 1 "
                           "(the original post uses 15), or 0 for whole pieces.")
    if self.stride < 1:
      raise cli.UsageError(f"--stride={self.stride} must be >= 1; use --stride="
                           f"{self.num_timesteps} for non-overlapping windows.")
    for name in ("eval_fraction", "valid_fraction"):
      if not 0.0 <= getattr(self, name) <= 1.0:
        raise cli.UsageError(f"--{name}={getattr(self, name)} must be in "
                             "[0, 1].")
    if self.eval_fraction + self.valid_fraction > 1.0:
      raise cli.UsageError(
          f"--eval_fraction={self.eval_fraction} + --valid_fraction="
          f"{self.valid_fraction} exceed 1: together they are the share of "
          "files held out, the rest trains.")
    if not 0 <= self.transpose <= 12:
      raise cli.UsageError(f"--transpose={self.transpose} must be in 0..12 "
                           "semitones.")
    if self.num_shards < 0:
      raise cli.UsageError(f"--num_shards={self.num_shards} must be >= 0 "
                           "(0: one per 64 MiB of records).")
    if self.max_file_bytes < 1 or self.max_steps < 1:
      raise cli.UsageError(
          f"--max_file_bytes={self.max_file_bytes} and --max_steps="
          f"{self.max_steps} must be positive.")

  @property
  def roll_spec(self) -> pianoroll.RollSpec:
    return pianoroll.RollSpec(self.encoding, self.low_note, self.high_note,
                              self.steps_per_quarter, self.quantize)

  @property
  def whole_pieces(self) -> bool:
    """One example per piece, of its own length (--num_timesteps=0)."""
    return self.num_timesteps == 0

  @property
  def n_visible(self) -> int:
    """Units of one window; 0 for whole pieces (their length varies)."""
    return self.num_timesteps * self.roll_spec.n_columns


@dataclasses.dataclass(frozen=True)
class RunConfig:
  """Where a run reads and writes: not part of the dataset's layout."""

  input: tuple = cli.setting(
      None, "Comma-separated globs of MIDI files (local or gs://).")
  # A benchmark's own split (e.g. JSB Chorales' valid/ and test/ folders):
  # these files go to that split whatever their hash (steps.assign_split).
  eval_input: tuple = cli.setting(
      (), "Comma-separated globs of the eval (test) split's files; --input "
      "files then hash into train and valid only.")
  valid_input: tuple = cli.setting(
      (), "Comma-separated globs of the valid split's files.")
  output_dir: str = cli.setting(
      None, "Where the TFRecords and dataset.json go.")
  # Only files this project wrote are replaced (preprocess/outputs.py).
  overwrite: bool = cli.setting(
      False, "Replace a dataset already in --output_dir.")

  def __post_init__(self):
    for name in ("input", "eval_input", "valid_input"):
      object.__setattr__(self, name, tuple(getattr(self, name) or ()))
      for pattern in getattr(self, name):
        check_cloud_path(f"--{name}", pattern)
        check_utf8(f"--{name}", pattern)
    check_cloud_path("--output_dir", self.output_dir or "")
    check_utf8("--output_dir", self.output_dir or "")


def printable_path(path: str) -> str:
  """`path` as valid UTF-8 text: bytes that are not UTF-8 shown as \\xNN.

  Python gives a local name that is not UTF-8 (b'caf\\xe9.mid', Latin-1) as
  text with lone surrogates; Beam's coders encode text as strict UTF-8 and
  fail on it, and so would dataset.json and errors-*.jsonl.
  """
  try:
    path.encode("utf-8")
    return path
  except UnicodeEncodeError:
    pass
  try:
    raw = path.encode("utf-8", "surrogateescape")
  except UnicodeEncodeError:  # a surrogate that no byte decoded to
    return path.encode("utf-8", "backslashreplace").decode("utf-8")
  return raw.decode("utf-8", "backslashreplace")


def check_utf8(flag: str, path: str) -> None:
  """Refuses a path given on the command line whose bytes are not UTF-8.

  Raises:
    cli.UsageError: naming the path with those bytes escaped.
  """
  shown = printable_path(path)
  if shown != path:
    raise cli.UsageError(
        f"{flag}={shown} is not valid UTF-8 (bytes shown as \\xNN); rename "
        "that folder in UTF-8 (e.g. convmv -f latin1 -t utf8 --notest).")


def check_cloud_path(flag: str, path: str) -> None:
  """Refuses a gs:// path with a query string, a fragment or an empty name.

  A signed URL's query (?X-Goog-Signature=...&access_token=...) is a secret:
  it would become part of object names and of every log line. `?` alone is a
  glob wildcard, so a query is a `?` followed by `=` or `&`.

  A path with `//` after the bucket (gs://b//x) would write objects whose
  names start with "/": the URLs printed would not match what consoles show.

  Raises:
    cli.UsageError: naming the path up to the query, never the query.
  """
  if not path.startswith("gs://"):
    return
  cut = len(path)
  question = path.find("?")
  if question >= 0 and any(c in path[question:] for c in "=&"):
    cut = question
  if "#" in path:
    cut = min(cut, path.index("#"))
  if cut < len(path):
    raise cli.UsageError(
        f"{flag}={path[:cut]}... has a query string or fragment (not shown: "
        "it may hold a credential); give the plain gs://BUCKET/PATH, the "
        "pipeline authenticates by itself.")
  rest = path[len("gs://"):]
  if not rest.split("/", 1)[0]:
    raise cli.UsageError(f"{flag}={path} names no bucket; write "
                         "gs://BUCKET/PATH.")
  if "//" in rest.rstrip("/"):
    # GCS keeps the empty name: gs://b//x/train-... is the object
    # "/x/train-...", which consoles and gsutil show apart from gs://b/x.
    raise cli.UsageError(
        f"{flag}={path} has an empty folder name (//), which GCS keeps in "
        f"object names; write gs://{re.sub('/{2,}', '/', rest)}.")


# What --fit_corpus decides (corpus_fit.fitted_layout).
FITTED_FIELDS = ("steps_per_quarter", "quantize", "encoding", "low_note",
                 "high_note")


def layout_given(given) -> tuple:
  """Of the fields --fit_corpus decides, those the command line set
  (`given`: cli.explicit_fields): the fit keeps them as given."""
  return tuple(name for name in FITTED_FIELDS if name in given)


def with_explicit_splits(config: PreprocessConfig, eval_input=(),
                         valid_input=()) -> PreprocessConfig:
  """The config that hashes --input given explicit eval/valid globs.

  With --eval_input, the eval split is those files alone: --input hashes
  into train and valid only (eval_fraction 0). Likewise for --valid_input.
  A fraction set as well would be ignored silently, so it is refused.

  Raises:
    cli.UsageError: an explicit split's glob together with its fraction.
  """
  defaults = {f.name: f.default for f in dataclasses.fields(PreprocessConfig)}
  changes = {}
  for split, globs in (("eval", eval_input), ("valid", valid_input)):
    name = f"{split}_fraction"
    if not globs:
      continue
    if getattr(config, name) not in (defaults[name], 0.0):
      raise cli.UsageError(
          f"--{name}={getattr(config, name)} and --{split}_input are both "
          f"given: the {split} split is either the --{split}_input files or a "
          f"hashed share of --input; drop one.")
    changes[name] = 0.0
  return dataclasses.replace(config, **changes)
