"""Small preprocessed datasets written straight to disk, for trainer tests.

The layout is exactly what preprocess.main writes (records.make_example in
TFRecord shards + dataset.json), without running Beam, so trainer tests stay
fast and independent of the pipeline.
"""

import os

import numpy as np
import tensorflow as tf

from preprocess import pianoroll
from preprocess import records

# 12 pitches, onoff, 4 steps: 96 visible units. Big enough to have structure,
# small enough for exact partition functions with few hidden units.
SMALL_SPEC = pianoroll.RollSpec("onoff", 60, 72, 4)
SMALL_TIMESTEPS = 4


def structured_windows(n: int, spec: pianoroll.RollSpec = SMALL_SPEC,
                       num_timesteps: int = SMALL_TIMESTEPS, seed: int = 0,
                       num_prototypes: int = 4, noise: float = 0.02,
                       prototype_seed: int = 0) -> np.ndarray:
  """[n, num_timesteps, n_columns] windows: a few chord prototypes plus noise.

  Each prototype holds a random 3-note chord for the whole window (play set,
  articulate at step 0); samples flip each bit with probability `noise`. An
  RBM can learn this clearly; an independent-Bernoulli model cannot capture it.
  The prototypes depend on `prototype_seed` only, so train and eval sets drawn
  with different `seed`s come from the same distribution.
  """
  rng = np.random.default_rng(prototype_seed)
  protos = np.zeros((num_prototypes, num_timesteps, spec.n_columns), np.uint8)
  for p in protos:
    chord = rng.choice(spec.n_pitches, 3, replace=False)
    p[:, chord] = 1
    if spec.encoding == "onoff":
      p[0, spec.n_pitches + chord] = 1
  rng = np.random.default_rng([prototype_seed, seed])
  windows = protos[rng.integers(num_prototypes, size=n)]
  flips = (rng.random(windows.shape) < noise).astype(np.uint8)
  return windows ^ flips


def write_dataset(data_dir: str, train: np.ndarray, eval_: np.ndarray,
                  spec: pianoroll.RollSpec = SMALL_SPEC,
                  num_shards: int = 2,
                  windows_per_file: int = 1,
                  valid: np.ndarray | None = None) -> records.DatasetSpec:
  """Writes train/eval (and valid) windows [N, T, C] as preprocess.main would.

  Consecutive runs of `windows_per_file` windows come from one MIDI file (at
  offsets 0, T, 2T, ...), e.g. for the seed's per-song loop. Without `valid`
  the dataset is one of before the valid split (dataset.json counts none).
  """
  tf.io.gfile.makedirs(data_dir)
  num_timesteps = train.shape[1]
  splits = {records.TRAIN_PREFIX: train, records.EVAL_PREFIX: eval_}
  if valid is not None:
    splits[records.VALID_PREFIX] = valid
  for prefix, windows in splits.items():
    for shard in range(num_shards):
      path = os.path.join(
          data_dir, f"{prefix}-{shard:05d}-of-{num_shards:05d}"
          f"{records.TFRECORD_SUFFIX}")
      with tf.io.TFRecordWriter(path) as w:
        for i in range(shard, len(windows), num_shards):
          song, part = divmod(i, windows_per_file)
          w.write(records.make_example(windows[i], f"fake/{prefix}/{song}.mid",
                                       offset=part * num_timesteps))
  n_visible = num_timesteps * spec.n_columns
  dataset = records.DatasetSpec(
      encoding=spec.encoding, low_note=spec.low_note, high_note=spec.high_note,
      steps_per_quarter=spec.steps_per_quarter, num_timesteps=num_timesteps,
      stride=num_timesteps, n_visible=n_visible,
      unit_means=train.reshape(len(train), -1).mean(axis=0).tolist()
      if len(train) else [0.0] * n_visible,
      counts={"windows": {k: len(v) for k, v in splits.items()},
              "files_seen": sum(len(v) for v in splits.values()),
              "converted": sum(len(v) for v in splits.values()), "failed": 0,
              "skipped": 0})
  with tf.io.gfile.GFile(os.path.join(data_dir, records.SPEC_FILENAME),
                         "w") as f:
    f.write(dataset.to_json())
  return dataset


# 12 pitches, roll: 12 units per frame (exact log Z with few hidden units).
PIECE_SPEC = pianoroll.RollSpec("roll", 60, 72, 1)


def cycle_pieces(lengths, seed: int = 0, flip: float = 0.03,
                 spec: pianoroll.RollSpec = PIECE_SPEC) -> list:
  """Pieces [T_i, n_columns]: a 4-chord cycle from a random phase, each bit
  flipped with probability `flip` (a temporal model predicts the next chord;
  a frame model cannot)."""
  c = spec.n_columns
  chords = np.zeros((4, c), np.uint8)
  for i in range(4):
    chords[i, [i, (i + 4) % c, (i + 7) % c]] = 1
  rng = np.random.default_rng(seed)
  pieces = []
  for length in lengths:
    phase = rng.integers(4)
    piece = chords[(phase + np.arange(length)) % 4]
    pieces.append(piece ^ (rng.random(piece.shape) < flip).astype(np.uint8))
  return pieces


def transposed(piece: np.ndarray, shift: int) -> np.ndarray:
  """A roll piece shifted by `shift` semitones; pitches pushed out of the
  range are dropped, as preprocessing drops them."""
  out = np.zeros_like(piece)
  if shift >= 0:
    out[:, shift:] = piece[:, :piece.shape[1] - shift]
  else:
    out[:, :shift] = piece[:, -shift:]
  return out


def write_piece_dataset(data_dir: str, train: list, eval_: list,
                        spec: pianoroll.RollSpec = PIECE_SPEC,
                        num_shards: int = 2,
                        valid: list | None = None,
                        transpose: int = 0) -> records.DatasetSpec:
  """Writes whole pieces as `preprocess.main --num_timesteps=0` would (with a
  valid split if `valid` is given).

  transpose > 0 adds each training piece shifted by +-1..transpose
  semitones (roll layouts only), records marked with their shift.
  """
  tf.io.gfile.makedirs(data_dir)
  splits = {records.TRAIN_PREFIX: train, records.EVAL_PREFIX: eval_}
  if valid is not None:
    splits[records.VALID_PREFIX] = valid
  shifts = [s for s in range(-transpose, transpose + 1) if s]
  copies = {k: 1 + len(shifts) if k == records.TRAIN_PREFIX else 1
            for k in splits}
  for prefix, pieces in splits.items():
    examples = [records.make_example(p, f"fake/{prefix}/{i}.mid", 0,
                                     num_steps=len(p))
                for i, p in enumerate(pieces)]
    if prefix == records.TRAIN_PREFIX:
      examples += [records.make_example(transposed(p, s), f"fake/{prefix}/"
                                        f"{i}.mid", 0, s, num_steps=len(p))
                   for i, p in enumerate(pieces) for s in shifts]
    for shard in range(num_shards):
      path = os.path.join(
          data_dir, f"{prefix}-{shard:05d}-of-{num_shards:05d}"
          f"{records.TFRECORD_SUFFIX}")
      with tf.io.TFRecordWriter(path) as w:
        for example in examples[shard::num_shards]:
          w.write(example)
  dataset = records.DatasetSpec(
      encoding=spec.encoding, low_note=spec.low_note, high_note=spec.high_note,
      steps_per_quarter=spec.steps_per_quarter, num_timesteps=0, stride=0,
      n_visible=0, unit_means=[], quantize=spec.quantize, transpose=transpose,
      counts={"windows": {k: len(v) * copies[k] for k, v in splits.items()},
              "files": {k: len(v) for k, v in splits.items()},
              "steps": {k: int(sum(map(len, v))) * copies[k]
                        for k, v in splits.items()},
              "files_seen": sum(len(v) for v in splits.values()),
              "converted": sum(len(v) for v in splits.values()), "failed": 0,
              "skipped": 0})
  with tf.io.gfile.GFile(os.path.join(data_dir, records.SPEC_FILENAME),
                         "w") as f:
    f.write(dataset.to_json())
  return dataset


def write_cycle_piece_dataset(data_dir: str) -> records.DatasetSpec:
  """24 training and 6 eval pieces of 10-29 frames of the chord cycle: the
  temporal models' small dataset."""
  rng = np.random.default_rng(0)
  return write_piece_dataset(
      data_dir, cycle_pieces(rng.integers(10, 30, 24), seed=1),
      cycle_pieces(rng.integers(10, 30, 6), seed=2))
