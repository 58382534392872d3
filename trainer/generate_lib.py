"""Batch generation: thousands of samples from a trained RBM to disk or GCS.

Determinism. Sample i's randomness comes from (seed, i) alone: noise is keyed
by global sample index (trainer/random_streams.py), and the Gibbs chain is
the model's own (trainer/models/rbm.py). Float matmuls can round differently
for different batch shapes, so sampling always runs in blocks of BLOCK samples
aligned to global indices: sample i is row i % BLOCK of block i // BLOCK,
whatever the shard split, so every run computes it with the same shapes.
Shards own whole blocks (block % num_shards == shard_index).

Resumability. Files are written (atomically, create-only) before the block's
manifest lines, which go to `_progress/` as one immutable object per block
(GCS cannot append). A rerun verifies what the progress and manifest record
(object present, checksum equal) and writes only the rest. When a shard is
complete its lines are merged into its manifest and its progress removed.
"""

import concurrent.futures
import dataclasses
import hashlib
import json

from absl import logging
import numpy as np
import tensorflow as tf

from common import cli
from preprocess import pianoroll
from trainer import config as config_lib
from trainer import data as data_lib
from trainer import export
from trainer import generate_rnn_rbm
from trainer import primer as primer_lib
from trainer import random_streams
from trainer import storage as storage_lib
from trainer.models import rbm as model_lib

BLOCK = config_lib.GENERATION_BLOCK
INITS = config_lib.GENERATION_INITS
SETTINGS_FILE = "generation.json"
PROGRESS_DIR = "_progress"
# The settings live with the other jobs' in trainer/config.py.
GenerateConfig = config_lib.GenerateConfig


class GenerateError(cli.UsageError):
  """A primer, dataset or output that generation cannot use; nothing written."""


def sample_name(i: int) -> str:
  return f"sample-{i:06d}.mid"


def manifest_name(config: GenerateConfig) -> str:
  if config.num_shards == 1:
    return "manifest.jsonl"
  return f"manifest-{config.shard_index:05d}-of-{config.num_shards:05d}.jsonl"


# A shard keeps one manifest record (~1.5 KB in Python) per sample in memory
# and lists its ids: 1,000,000 samples are ~1.5 GB and ~20 minutes on a CPU.
MAX_SAMPLES_PER_SHARD = 1_000_000


def check_shard_size(config: GenerateConfig) -> None:
  """Refuses a shard too big for memory before anything is allocated.

  Raises:
    GenerateError: naming --num_samples and the --num_shards that would fit.
  """
  blocks = len(range(config.shard_index, -(-config.num_samples // BLOCK),
                     config.num_shards))  # O(1): a range is not a list
  if blocks * BLOCK > MAX_SAMPLES_PER_SHARD:
    num_blocks = -(-config.num_samples // BLOCK)
    need = -(-num_blocks // (MAX_SAMPLES_PER_SHARD // BLOCK))
    raise GenerateError(
        f"--num_samples={config.num_samples} over --num_shards="
        f"{config.num_shards} is {blocks * BLOCK} samples for one shard, more "
        f"than {MAX_SAMPLES_PER_SHARD} (memory): use --num_shards={need} or "
        "more, one worker each (deploy.vertex generate --workers).")


def shard_blocks(config: GenerateConfig) -> list:
  num_blocks = -(-config.num_samples // BLOCK)
  return list(range(config.shard_index, num_blocks, config.num_shards))


@tf.function
def _gibbs_blocks(weights, visible_bias, hidden_bias, v, clamp_mask,
                  clamp_values, seed, stream_bases, row_starts, steps,
                  init_streams, random_init, clamped, temperature,
                  threshold_mask, threshold, thresholded):
  """Gibbs chains for [blocks, BLOCK, V] states, block by block.

  Each block is its own [BLOCK, V] chain, so a sample's arithmetic never
  depends on how many blocks a call holds (two blocks run at once, on their
  own). Block b draws its noise from stream_bases[b] (and init_streams[b])
  for rows from row_starts[b]: the candidates of one block of samples are
  blocks with the same rows and other streams. With random_init the chains
  start from a sample of the visible biases, else from v. `clamped` (a Python
  bool) passes clamp_mask to the chain; without clamping it skips the pass.
  The chain runs at `temperature`; with `thresholded` (a Python bool) its
  last step sets the units of threshold_mask to p(v | h) >= threshold. The
  parameters are arguments, not captured variables, so one trace serves every
  model loaded in this process (models/rbm.py, RBMTensors).
  """
  rbm = model_lib.RBMTensors(weights, visible_bias, hidden_bias)

  def one_block(args):
    state, values, row_start, stream_base, init_stream = args
    if random_init:
      state = rbm.visible_bias_samples(seed, init_stream, row_start, BLOCK)
    return rbm.gibbs_chain(state, steps, seed, stream_base, row_start,
                           clamp_mask if clamped else None,
                           values if clamped else None, temperature,
                           threshold_mask if thresholded else None, threshold)
  return tf.map_fn(one_block, (v, clamp_values, row_starts, stream_bases,
                               init_streams),
                   fn_output_signature=v.dtype, parallel_iterations=2)


@tf.function
def _choose(weights, visible_bias, hidden_bias, candidates, projection,
            profile, by_free_energy):
  """Best of candidates [K, rows, V] per row: (chosen [rows, V], index).

  by_free_energy (a Python bool): the model's lowest F(v); else the best
  agreement of the projected profile with `profile` (models/rbm.py).
  """
  if by_free_energy:
    rbm = model_lib.RBMTensors(weights, visible_bias, hidden_bias)
    k, rows = tf.shape(candidates)[0], tf.shape(candidates)[1]
    # Block by block, as the chains: a matmul's rounding depends on its
    # shape, and a sample's choice must not depend on the call's blocks.
    blocks = tf.reshape(candidates, [-1, BLOCK, candidates.shape[-1]])
    scores = -tf.reshape(tf.map_fn(rbm.free_energy, blocks), [k, rows])
  else:
    # Exact whatever the shape: binary units times 0/1 weights sum to
    # integers; the rest is per row.
    scores = tf.map_fn(
        lambda c: model_lib.profile_agreement(c, projection, profile),
        candidates)
  return model_lib.best_of(candidates, scores)


def pitch_class_projection(spec: pianoroll.RollSpec, num_timesteps: int,
                           skip_steps: int) -> np.ndarray:
  """[V, 12]: each play unit of steps skip_steps.. to its pitch class.

  Sounding steps (play units), not onsets: a duration-weighted profile, as
  key profiles are, and the same for onoff and roll layouts.
  """
  columns = spec.n_columns
  projection = np.zeros((num_timesteps, columns, 12), np.float32)
  pitches = np.arange(spec.n_pitches) + spec.low_note
  projection[skip_steps:, np.arange(spec.n_pitches), pitches % 12] = 1.0
  return projection.reshape(num_timesteps * columns, 12)


class Generator:
  """Samples pieces block by block (see the module docstring)."""

  def __init__(self, loaded: export.LoadedModel, config: GenerateConfig,
               primer: np.ndarray | None, data_windows: np.ndarray | None):
    self.rbm = loaded.rbm
    self.spec = loaded.dataset.roll_spec
    self.num_timesteps = loaded.dataset.num_timesteps
    self.columns = self.spec.n_columns
    self.config = config
    self.overlap = config.overlap or max(1, self.num_timesteps // 3)
    if self.overlap >= self.num_timesteps and (config.num_windows > 1 or
                                               primer is not None):
      raise GenerateError(f"--overlap={self.overlap} must be shorter than the "
                          f"model's window of {self.num_timesteps} steps.")
    self.primer = primer
    self.data_windows = data_windows
    if config.articulate_threshold and self.spec.encoding != "onoff":
      raise GenerateError(
          f"--articulate_threshold={config.articulate_threshold} needs an "
          f"onoff model; this one is {self.spec.encoding!r}: pass 0.")
    # The last Gibbs step's thresholds: articulate units (the second half of
    # every step's row) at --articulate_threshold, play units at
    # --play_threshold; 0 leaves a unit sampled.
    articulate = np.tile(np.arange(self.columns) >= self.spec.n_pitches,
                         self.num_timesteps)
    self.thresholds = np.where(articulate, config.articulate_threshold,
                               config.play_threshold).astype(np.float32)
    self.threshold_mask = self.thresholds > 0
    # Candidates are scored on the steps they add, not the clamped overlap
    # all of them share; the piece's profile grows by the kept window's.
    self.projection = pitch_class_projection(self.spec, self.num_timesteps,
                                             self.overlap)

  def _init(self, rows, window, attempt):
    """[blocks * BLOCK, V] starting states, keyed by sample index.

    Zeros for init="random" too: the sampler draws those in the graph.
    """
    if self.config.init == "data":
      picks = [int.from_bytes(hashlib.sha256(
          f"{self.config.seed}/{i}/{window}/{attempt}".encode()).digest()[:8],
                              "big") % len(self.data_windows) for i in rows]
      return self.data_windows[picks]
    return np.zeros((len(rows), self.rbm.n_visible), np.float32)

  def _chains(self, blocks, v, mask, values, chain, num_candidates):
    """[num_candidates, rows, V] windows: candidate k of every row draws from
    random_streams.generation_candidate(chain, k)."""
    n_visible = self.rbm.n_visible
    chains = [random_streams.generation_candidate(chain, k)
              for k in range(num_candidates)]
    tile = lambda x: np.tile(x.reshape(len(blocks), BLOCK, n_visible),
                             (num_candidates, 1, 1))
    out = _gibbs_blocks(
        self.rbm.weights, self.rbm.visible_bias, self.rbm.hidden_bias,
        tf.constant(tile(v), tf.float32), tf.constant(mask),
        tf.constant(tile(values)), tf.constant(self.config.seed, tf.int64),
        tf.constant([random_streams.generation_base(c) for c in chains
                     for _ in blocks], tf.int64),
        tf.constant([b * BLOCK for _ in chains for b in blocks], tf.int64),
        tf.constant(self.config.gibbs_steps),
        tf.constant([random_streams.generation_init(c) for c in chains
                     for _ in blocks], tf.int64),
        self.config.init == "random", bool(mask.any()),
        tf.constant(self.config.temperature, tf.float32),
        tf.constant(self.threshold_mask), tf.constant(self.thresholds),
        bool(self.threshold_mask.any()))
    return tf.reshape(out, [num_candidates, len(blocks) * BLOCK, n_visible])

  def _profile(self, windows: np.ndarray, skip: int) -> np.ndarray:
    """[rows, 12] pitch-class counts of windows [rows, steps, columns] from
    step `skip` on, by the projection the scores use."""
    projection = pitch_class_projection(self.spec, windows.shape[1], skip)
    return windows.reshape(len(windows), -1).astype(np.float32) @ projection

  def sample(self, blocks: list, attempt: int) -> np.ndarray:
    """Pieces [len(blocks) * BLOCK, steps, columns] (uint8) for `blocks`.

    Each window after the first (or every one after a primer) is the best
    of --candidates continuations: the piece's tonal context is its
    pitch-class profile so far, which the 15-step window cannot see.
    """
    rows = np.concatenate([np.arange(b * BLOCK, (b + 1) * BLOCK) for b in blocks])
    n_visible, t, c = self.rbm.n_visible, self.num_timesteps, self.columns
    clamp_units = self.overlap * c
    pieces = []
    context = None
    profile = np.zeros((len(rows), 12), np.float32)
    if self.primer is not None:
      context = np.broadcast_to(self.primer[-self.overlap:].reshape(-1),
                                (len(rows), clamp_units))
      profile += self._profile(self.primer[None], 0)
    for window in range(self.config.num_windows):
      mask = np.zeros(n_visible, bool)
      values = np.zeros((len(rows), n_visible), np.float32)
      if context is not None:
        mask[:clamp_units] = True
        values[:, :clamp_units] = context
      # Nothing to agree with before the first window: one candidate.
      k = self.config.candidates if context is not None else 1
      candidates = self._chains(blocks, self._init(rows, window, attempt),
                                mask, values,
                                attempt * self.config.num_windows + window, k)
      if k > 1:
        chosen, _ = _choose(
            self.rbm.weights, self.rbm.visible_bias, self.rbm.hidden_bias,
            candidates, tf.constant(self.projection), tf.constant(profile),
            self.config.candidate_score == "free_energy")
      else:
        chosen = candidates[0]
      win = chosen.numpy().reshape(len(rows), t, c).astype(np.uint8)
      # Later windows repeat the clamped overlap: keep only what is new.
      pieces.append(win[:, self.overlap:] if window > 0 else win)
      # The profile counts each step once (a primer's tail is in it already).
      profile += self._profile(win, self.overlap if context is not None else 0)
      context = win[:, -self.overlap:].reshape(len(rows), -1)
    return np.concatenate(pieces, axis=1)


def _describe(piece: np.ndarray, spec: pianoroll.RollSpec, config) -> dict:
  notes = pianoroll.matrix_to_notes(piece, spec)
  polyphony = piece[:, :spec.n_pitches].sum(axis=1)
  return {"notes": len(notes), "mean_polyphony": round(float(polyphony.mean()), 4),
          "duration_s": round(len(piece) * 60.0 / config.tempo /
                              spec.steps_per_quarter, 4),
          "empty": len(notes) == 0}


def _load_primer(path: str, spec, overlap_needed: int) -> np.ndarray:
  matrix = primer_lib.load_primer(path, spec)
  if len(matrix) < overlap_needed:
    raise GenerateError(
        f"--primer={path} has {len(matrix)} steps in the model's range; at "
        f"least --overlap={overlap_needed} are needed.")
  return matrix


def _load_data_windows(data_dir: str, dataset, limit: int = 20000) -> np.ndarray:
  spec = data_lib.load_dataset_spec(data_dir)
  data_layout, model_layout = spec.layout(), dataset.layout()
  for field, value in model_layout.items():
    if data_layout[field] != value:
      raise GenerateError(f"--data_dir={data_dir} has {field}="
                          f"{data_layout[field]} but the model was trained on "
                          f"{field}={value}.")
  ds = data_lib.make_dataset(data_dir, "train", 1000, spec).unbatch().take(limit)
  return np.stack([w.numpy() for w in ds])


def _read_lines(store, names) -> dict:
  lines = {}
  for name in names:
    for line in (store.read(name) or b"").decode("utf-8").splitlines():
      if line.strip():
        record = json.loads(line)
        lines[record["id"]] = record
  return lines


def model_record(model_dir: str, loaded: export.LoadedModel) -> dict:
  """generation.json's "model": which model wrote the samples, on what grid.

  trainer.compare reads the samples on this grid and quantisation when no
  dataset is given (a 16th-note reading of quarter-note samples would
  measure other music).
  """
  return {"model_dir": model_dir, "kind": loaded.kind,
          "roll_spec": dataclasses.asdict(loaded.dataset.roll_spec),
          "num_timesteps": loaded.dataset.num_timesteps}


def _same_settings(existing: bytes, config: GenerateConfig) -> bool:
  """The settings part of generation.json equals this job's.

  "model" is left out: folders written before it was recorded resume, and
  the same model read from another path (a copy, gs://) is the same job.
  """
  try:
    recorded = json.loads(existing)
  except ValueError:
    return False
  if not isinstance(recorded, dict):
    return False
  recorded.pop("model", None)
  # Through JSON, so that tuples and lists compare equal.
  return recorded == json.loads(json.dumps(config.settings()))


def _check_settings(store, config: GenerateConfig, output: str,
                    model: dict | None = None) -> None:
  settings = dict(config.settings(), **({"model": model} if model else {}))
  wanted = json.dumps(settings, indent=1, sort_keys=True).encode()
  existing = store.read(SETTINGS_FILE)
  if existing is not None and not _same_settings(existing, config) and (
      not config.overwrite):
    raise FileExistsError(
        f"{output} holds samples generated with other settings ("
        f"{store.url(SETTINGS_FILE)}); pass --overwrite to replace them or "
        "choose another --output.")
  if existing is None and not config.overwrite:
    foreign = [n for n in store.list("sample-")][:1]
    if foreign:
      raise FileExistsError(
          f"{output} already holds {foreign[0]} but no {SETTINGS_FILE}; pass "
          "--overwrite to replace, or choose another --output.")
  if existing != wanted:
    store.write(SETTINGS_FILE, wanted, create_only=False)


def _sampled_ahead(generator: Generator, calls: list):
  """Yields (blocks, pieces) per call, sampling the next call meanwhile.

  TensorFlow releases the GIL, so the next call's Gibbs chains run while the
  caller decodes and writes this call's pieces.
  """
  with concurrent.futures.ThreadPoolExecutor(1) as sampler:
    ahead = [sampler.submit(generator.sample, c, 0) for c in calls[:1]]
    for n, call_blocks in enumerate(calls):
      if n + 1 < len(calls):
        ahead.append(sampler.submit(generator.sample, calls[n + 1], 0))
      yield call_blocks, ahead.pop(0).result()


@dataclasses.dataclass
class _Shard:
  """This shard's part of the job and what is already done."""
  config: GenerateConfig
  store: object  # storage_lib.LocalStorage or GCSStorage
  blocks: list
  ids: list
  progress_prefix: str
  # id -> manifest record of each sample verified on the output.
  done: dict
  # Paths recorded by an earlier run whose object is truncated or altered.
  damaged: set

  def block_ids(self, b: int) -> range:
    return range(b * BLOCK, min((b + 1) * BLOCK, self.config.num_samples))


def _plan(store, config: GenerateConfig) -> _Shard:
  """This shard's blocks and sample ids (blocks % num_shards == shard)."""
  blocks = shard_blocks(config)
  ids = [i for b in blocks
         for i in range(b * BLOCK, min((b + 1) * BLOCK, config.num_samples))]
  return _Shard(config, store, blocks, ids,
                f"{PROGRESS_DIR}/shard-{config.shard_index:05d}/", {}, set())


def _verify(shard: _Shard, output: str, model: dict | None = None) -> None:
  """Clears the output (--overwrite) or checks it is ours, then fills
  shard.done with what a previous run finished, verified against the objects
  themselves, and shard.damaged with what it must rewrite."""
  store, config = shard.store, shard.config
  if config.overwrite:
    store.delete([sample_name(i) for i in shard.ids] +
                 store.list(shard.progress_prefix) + [manifest_name(config)] +
                 _earlier_run_outputs(store, config))
  _check_settings(store, config, output, model)
  store.discard_partial([sample_name(i) for i in shard.ids])
  recorded = _read_lines(store, [manifest_name(config)] +
                         store.list(shard.progress_prefix))
  mine = set(shard.ids)
  for i, record in recorded.items():
    if i in mine:
      if store.checksum(record["path"]) == record["crc32c"]:
        shard.done[i] = record
      else:  # ours (recorded) but truncated or altered: rewrite it
        shard.damaged.add(record["path"])
  shard.damaged.update(_unrecorded_samples(store, config, recorded))


def _owns(config: GenerateConfig, i: int) -> bool:
  """Sample i is this shard's (under config's sharding)."""
  return (0 <= i < config.num_samples and
          (i // BLOCK) % config.num_shards == config.shard_index)


def _sample_ids(store) -> dict:
  """{id: name} of the sample-NNNNNN.mid files in the output."""
  out = {}
  for name in store.list("sample-"):
    stem = name[len("sample-"):-len(".mid")]
    if name.endswith(".mid") and stem.isdigit() and sample_name(
        int(stem)) == name:
      out[int(stem)] = name
  return out


def _unrecorded_samples(store, config: GenerateConfig, recorded) -> set:
  """This shard's sample files that no manifest or progress line records.

  Called once the folder's generation.json equals this job's settings: a
  file named as one of this shard's samples but never recorded was written
  by a run of this job killed before its progress record, e.g. truncated by
  a power cut (a rename can reach the disk before the data). It is rewritten
  (create-only would stop every rerun with ObjectExists).
  """
  return {name for i, name in _sample_ids(store).items()
          if i not in recorded and _owns(config, i)}


def _earlier_run_outputs(store, config: GenerateConfig) -> list:
  """--overwrite: what the folder's earlier job wrote beyond this job's names.

  Its samples are those its generation.json (num_samples) or a manifest or
  progress line records; never other files. Each shard deletes the ones it
  would own (the ownership rule of writing), so concurrent shards never
  delete each other's new files; shard 0 deletes the earlier job's manifests
  and progress of shard counts this job does not use.
  """
  raw = store.read(SETTINGS_FILE)
  if raw is None:
    return []
  old = json.loads(raw)
  old_n, old_shards = int(old.get("num_samples", 0)), int(old.get(
      "num_shards", 1))
  manifests = [manifest_name(dataclasses.replace(
      config, num_shards=old_shards, shard_index=k)) for k in range(old_shards)]
  recorded = _read_lines(store, [m for m in manifests if store.read(m)] +
                         store.list(PROGRESS_DIR + "/"))
  names = [name for i, name in _sample_ids(store).items()
           if (i < old_n or i in recorded) and
           (i // BLOCK) % config.num_shards == config.shard_index]
  if config.shard_index == 0 and old_shards != config.num_shards:
    names += manifests + [n for n in store.list(PROGRESS_DIR + "/") if int(
        n.split("/")[1][len("shard-"):]) >= config.num_shards]
  return names


def _resample_empty(generator, call_blocks, pieces, spec, config):
  """Replaces empty pieces by later attempts (up to --resample_empty).

  Returns (attempt of each piece, its description).
  """
  attempts = np.zeros(len(pieces), int)
  stats = [_describe(p, spec, config) for p in pieces]
  for attempt in range(1, config.resample_empty + 1):
    redo = [k for k, s in enumerate(stats) if s["empty"]]
    if not redo:
      break
    again = generator.sample(call_blocks, attempt)
    for k in redo:
      pieces[k], attempts[k] = again[k], attempt
      stats[k] = _describe(again[k], spec, config)
  return attempts, stats


def _write_block(shard: _Shard, b: int, rows, pieces, attempts, stats, spec,
                 summary: dict) -> None:
  """Block b's new MIDI files, then its progress record (in that order: a
  record never names a file that is not there)."""
  config, store = shard.config, shard.store
  files = []
  for k in np.flatnonzero(rows // BLOCK == b):
    i = int(rows[k])
    if i >= config.num_samples or i in shard.done:
      continue
    midi = pianoroll.matrix_to_midi_bytes(pieces[k], spec, config.tempo,
                                          config.program, config.velocity)
    record = {"id": i, "path": sample_name(i), "seed": config.seed,
              "attempt": int(attempts[k]), **stats[k],
              "crc32c": storage_lib.crc32c(midi), "bytes": len(midi)}
    files.append((record["path"], midi))
    summary["empty"] += stats[k]["empty"]
    summary["resampled"] += int(attempts[k] > 0)
    shard.done[i] = record
  store.write_many([f for f in files if f[0] not in shard.damaged])
  store.write_many([f for f in files if f[0] in shard.damaged],
                   create_only=False)
  lines = [json.dumps(shard.done[i], sort_keys=True) for i in shard.block_ids(b)]
  store.write(f"{shard.progress_prefix}block-{b:07d}.jsonl",
              ("\n".join(lines) + "\n").encode(), create_only=False)
  summary["written"] += len(files)


def _write(shard: _Shard, generator: Generator, spec, summary: dict) -> None:
  """Samples and writes every block not done yet, a call ahead."""
  config = shard.config
  todo = [b for b in shard.blocks
          if any(i not in shard.done for i in shard.block_ids(b))]
  calls = [todo[start:start + config.blocks_per_call]
           for start in range(0, len(todo), config.blocks_per_call)]
  for call_blocks, pieces in _sampled_ahead(generator, calls):
    rows = np.concatenate([np.arange(b * BLOCK, (b + 1) * BLOCK)
                           for b in call_blocks])
    attempts, stats = _resample_empty(generator, call_blocks, pieces, spec,
                                      config)
    for b in call_blocks:
      _write_block(shard, b, rows, pieces, attempts, stats, spec, summary)
    logging.info("shard %d: %d/%d samples", config.shard_index,
                 len(shard.done), len(shard.ids))


def _finalise(shard: _Shard, spec, summary: dict) -> None:
  """Merges the progress into the shard's manifest, then the previews."""
  store, config, done = shard.store, shard.config, shard.done
  manifest = "".join(json.dumps(done[i], sort_keys=True) + "\n"
                     for i in sorted(done))
  store.write(manifest_name(config), manifest.encode(), create_only=False)
  store.delete(store.list(shard.progress_prefix))
  summary["empty_total"] = sum(1 for r in done.values() if r["empty"])
  summary["manifest"] = store.url(manifest_name(config))
  if config.previews:
    from trainer import previews  # pylint: disable=g-import-not-at-top
    summary["gallery"] = previews.write_previews(
        store, [done[i] for i in sorted(done)][:config.num_previews], spec,
        config)


def generate(model_dir: str, output: str, config: GenerateConfig) -> dict:
  """Generates this shard's samples into OUTPUT (local path or gs://).

  Returns:
    Summary: samples written now, already present, empty, resampled, paths.

  Raises:
    FileNotFoundError: no model, primer or dataset where given.
    GenerateError: a primer or dataset the model cannot use, or a shard too
      big for memory.
    FileExistsError: OUTPUT holds other output and --overwrite is not given.
  """
  check_shard_size(config)
  loaded = export.load_model(model_dir)
  spec = loaded.dataset.roll_spec
  # An RNN-RBM has its own sampler (and fills in --num_frames); a window RBM
  # gets None and the Generator above.
  config, generator = generate_rnn_rbm.prepare(loaded, config)
  if generator is None:
    overlap = config.overlap or max(1, loaded.dataset.num_timesteps // 3)
    primer = (_load_primer(config.primer, spec, overlap)
              if config.primer else None)
    data_windows = (_load_data_windows(config.data_dir, loaded.dataset)
                    if config.init == "data" else None)
    generator = Generator(loaded, config, primer, data_windows)

  # Only once the model, primer and data are known to work.
  store = storage_lib.open_storage(output)
  shard = _plan(store, config)
  _verify(shard, output, model_record(model_dir, loaded))
  summary = {"output": output, "shard_index": config.shard_index,
             "num_shards": config.num_shards, "samples": len(shard.ids),
             "already_present": len(shard.done), "written": 0, "empty": 0,
             "resampled": 0}
  _write(shard, generator, spec, summary)
  _finalise(shard, spec, summary)
  return summary
