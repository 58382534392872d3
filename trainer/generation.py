"""Batch generation: thousands of samples from a trained RBM to disk or GCS.

Determinism. Sample i's randomness comes from (seed, i) alone: noise is keyed
by global sample index (trainer/model.py). Float matmuls can round differently
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

from preprocess import pianoroll
from trainer import data as data_lib
from trainer import export
from trainer import model as model_lib
from trainer import storage as storage_lib

BLOCK = 128
INITS = ("random", "zeros", "data")
SETTINGS_FILE = "generation.json"
PROGRESS_DIR = "_progress"
# Stream layout: one stream pair per Gibbs step, 2^21 steps per (attempt,
# window); init noise on its own high streams.
_STEP_STREAMS = 2**21
_INIT_STREAM = 2**62


@dataclasses.dataclass(frozen=True)
class GenerateConfig:
  """What to generate. Defaults: 1,000 samples of one window each.

      python -m trainer.generate --model_dir=out/job/model --output=out/samples
  """

  # Total samples of the job (all shards together).
  num_samples: int = 1000
  # Gibbs steps per window. The seed used 1 step from silence, far from what
  # the model learned; on the demo model the chains' free energy and activity
  # stop moving after 10-25 steps (measured, see README): 50 leaves a margin.
  gibbs_steps: int = 50
  # Chain start: "random" (a sample of the visible biases, i.e. the data's
  # unit means), "zeros" (the seed's), "data" (training windows; --data_dir).
  init: str = "random"
  # Seeds every sample: sample i depends on (seed, i) only.
  seed: int = 0
  # Sampling temperature: both conditionals use sigmoid(pre-activation / T).
  # Below 1 sharpens them and thins the stray notes of a diffuse model
  # (1 = the model's own distribution, the seed's).
  temperature: float = 1.0
  # onoff models only. When > 0, the last Gibbs step sets each *articulate*
  # unit where p(articulate | h) >= this value instead of sampling it (play
  # units stay sampled). Articulate units fire with a small probability all
  # along a held note; sampled, they re-strike it every few steps (0: sample,
  # the seed's).
  articulate_threshold: float = 0.0
  # Windows per sample; each next one is conditioned on the last one's end.
  num_windows: int = 1
  # Steps shared by consecutive windows (clamped); 0: a third of a window.
  overlap: int = 0
  # A MIDI file whose end the first window continues (clamped); None: none.
  primer: str | None = None
  # The preprocessed dataset, for init="data".
  data_dir: str | None = None
  # Split one job across workers.
  num_shards: int = 1
  shard_index: int = 0
  # Resample an empty sample up to this many times (0: keep and count it).
  resample_empty: int = 0
  # Piano-roll PNGs, WAVs and index.html for the first `num_previews` samples.
  previews: bool = False
  num_previews: int = 32
  # A General MIDI .sf2 for the previews' audio; None: a system one when
  # FluidSynth is installed, else sine tones (trainer/previews.py).
  soundfont: str | None = None
  # Replace this shard's existing output.
  overwrite: bool = False
  # MIDI rendering.
  tempo: float = 120.0
  program: int = 0
  velocity: int = 80
  # Blocks of BLOCK samples sampled per device call (speed only: results do
  # not depend on it). Calls overlap with decoding and writing.
  blocks_per_call: int = 2

  def __post_init__(self):
    if self.num_samples < 1:
      raise ValueError(f"--num_samples={self.num_samples} must be >= 1.")
    if self.gibbs_steps < 1 or self.gibbs_steps >= _STEP_STREAMS // 2:
      raise ValueError(f"--gibbs_steps={self.gibbs_steps} must be in 1.."
                       f"{_STEP_STREAMS // 2 - 1}.")
    if self.init not in INITS:
      raise ValueError(f"--init={self.init!r}; use one of {INITS}.")
    if self.init == "data" and not self.data_dir:
      raise ValueError("--init=data needs --data_dir (the preprocessed dataset "
                       "whose training windows start the chains).")
    if self.num_windows < 1 or self.overlap < 0:
      raise ValueError(f"--num_windows={self.num_windows} must be >= 1 and "
                       f"--overlap={self.overlap} >= 0.")
    if not 0 <= self.shard_index < self.num_shards:
      raise ValueError(f"--shard_index={self.shard_index} must be in "
                       f"0..{self.num_shards - 1} (--num_shards="
                       f"{self.num_shards}).")
    if not self.temperature > 0:
      raise ValueError(f"--temperature={self.temperature} must be > 0 "
                       "(1 samples the model as it is).")
    if not 0 <= self.articulate_threshold <= 1:
      raise ValueError(f"--articulate_threshold={self.articulate_threshold} "
                       "must be in [0, 1] (0: sample articulate units).")
    if self.resample_empty < 0 or self.blocks_per_call < 1:
      raise ValueError("--resample_empty must be >= 0, blocks_per_call >= 1.")

  def settings(self) -> dict:
    """What decides the output bytes: shared by all shards of one job."""
    fields = dataclasses.asdict(self)
    for key in ("shard_index", "previews", "num_previews", "overwrite",
                "blocks_per_call", "soundfont"):
      fields.pop(key)
    fields["block"] = BLOCK  # the sampler's shapes decide the bytes too
    return fields


def sample_name(i: int) -> str:
  return f"sample-{i:06d}.mid"


def manifest_name(config: GenerateConfig) -> str:
  if config.num_shards == 1:
    return "manifest.jsonl"
  return f"manifest-{config.shard_index:05d}-of-{config.num_shards:05d}.jsonl"


def shard_blocks(config: GenerateConfig) -> list:
  num_blocks = -(-config.num_samples // BLOCK)
  return list(range(config.shard_index, num_blocks, config.num_shards))


@tf.function
def _gibbs_blocks(weights, visible_bias, hidden_bias, v, clamp_mask,
                  clamp_values, seed, stream_base, row_starts, steps,
                  init_stream, random_init, clamped, temperature,
                  threshold_mask, threshold, thresholded):
  """Gibbs chains for [blocks, BLOCK, V] states, block by block.

  Each block is its own [BLOCK, V] matmul, so a sample's arithmetic never
  depends on how many blocks a call holds (two blocks run at once, on their
  own). With random_init the chains start from a sample of the visible
  biases (noise keyed by init_stream), else from v. With `clamped`, units
  of clamp_mask are reset to clamp_values at the start and after every
  visible update (a Python bool: without clamping the step skips it).
  Pre-activations are divided by `temperature`. With `thresholded`, the last
  step sets the units of threshold_mask to p(v | h) >= threshold instead of
  sampling them.
  """
  def gibbs_step(state, s, row_start):
    stream = stream_base + tf.cast(s, tf.int64) * 2
    ph = tf.sigmoid((tf.matmul(state, weights) + hidden_bias) / temperature)
    h = model_lib.bernoulli(ph, seed, stream, row_start)
    pv = tf.sigmoid((tf.matmul(h, weights, transpose_b=True) + visible_bias)
                    / temperature)
    return pv, model_lib.bernoulli(pv, seed, stream + 1, row_start)

  def one_block(args):
    state, values, row_start = args
    if random_init:
      noise = model_lib.keyed_uniform(seed, init_stream, row_start, BLOCK,
                                      weights.shape[0])
      state = tf.cast(noise < tf.sigmoid(visible_bias), state.dtype)
    if clamped:
      state = tf.where(clamp_mask, values, state)
    for s in tf.range(steps - 1):
      _, state = gibbs_step(state, s, row_start)
      if clamped:
        state = tf.where(clamp_mask, values, state)
    # The last step apart, so that only it can be thresholded.
    pv, state = gibbs_step(state, steps - 1, row_start)
    if thresholded:
      state = tf.where(threshold_mask, tf.cast(pv >= threshold, state.dtype),
                       state)
    if clamped:
      state = tf.where(clamp_mask, values, state)
    return state

  return tf.map_fn(one_block, (v, clamp_values, row_starts),
                   fn_output_signature=v.dtype,
                   parallel_iterations=2)


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
      raise ValueError(f"--overlap={self.overlap} must be shorter than the "
                       f"model's window of {self.num_timesteps} steps.")
    self.primer = primer
    self.data_windows = data_windows
    if config.articulate_threshold and self.spec.encoding != "onoff":
      raise ValueError(f"--articulate_threshold={config.articulate_threshold} "
                       f"needs an onoff model; this one is "
                       f"{self.spec.encoding!r}: pass 0.")
    # Articulate units: the second half of every step's row.
    self.articulate_mask = np.tile(
        np.arange(self.columns) >= self.spec.n_pitches, self.num_timesteps)

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

  def sample(self, blocks: list, attempt: int) -> np.ndarray:
    """Pieces [len(blocks) * BLOCK, steps, columns] (uint8) for `blocks`."""
    rows = np.concatenate([np.arange(b * BLOCK, (b + 1) * BLOCK) for b in blocks])
    n_visible, t, c = self.rbm.n_visible, self.num_timesteps, self.columns
    clamp_units = self.overlap * c
    pieces = []
    context = None
    if self.primer is not None:
      context = np.broadcast_to(self.primer[-self.overlap:].reshape(-1),
                                (len(rows), clamp_units))
    for window in range(self.config.num_windows):
      v = self._init(rows, window, attempt)
      mask = np.zeros(n_visible, bool)
      values = np.zeros((len(rows), n_visible), np.float32)
      if context is not None:
        mask[:clamp_units] = True
        values[:, :clamp_units] = context
      chain = attempt * self.config.num_windows + window
      stream_base = chain * _STEP_STREAMS
      out = _gibbs_blocks(
          self.rbm.weights, self.rbm.visible_bias, self.rbm.hidden_bias,
          tf.constant(v.reshape(len(blocks), BLOCK, n_visible), tf.float32),
          tf.constant(mask), tf.constant(values.reshape(len(blocks), BLOCK,
                                                        n_visible)),
          tf.constant(self.config.seed, tf.int64),
          tf.constant(stream_base, tf.int64),
          tf.constant([b * BLOCK for b in blocks], tf.int64),
          tf.constant(self.config.gibbs_steps),
          tf.constant(_INIT_STREAM + chain, tf.int64),
          self.config.init == "random", context is not None,
          tf.constant(self.config.temperature, tf.float32),
          tf.constant(self.articulate_mask),
          tf.constant(self.config.articulate_threshold, tf.float32),
          self.config.articulate_threshold > 0)
      win = out.numpy().reshape(len(rows), t, c).astype(np.uint8)
      # Later windows repeat the clamped overlap: keep only what is new.
      pieces.append(win[:, self.overlap:] if window > 0 else win)
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
  try:
    with tf.io.gfile.GFile(path, "rb") as f:
      data = f.read()
  except tf.errors.NotFoundError:
    raise FileNotFoundError(f"--primer={path} does not exist.") from None
  try:
    matrix = pianoroll.midi_to_matrix(pianoroll.parse_midi(data), spec)
  except Exception as e:  # pylint: disable=broad-except  # any parse failure
    raise ValueError(f"--primer={path} is not a readable MIDI file: {e}") from None
  if len(matrix) < overlap_needed:
    raise ValueError(f"--primer={path} has {len(matrix)} steps in the model's "
                     f"range; at least --overlap={overlap_needed} are needed.")
  return matrix


def _load_data_windows(data_dir: str, dataset, limit: int = 20000) -> np.ndarray:
  spec = data_lib.load_dataset_spec(data_dir)
  for field in ("encoding", "low_note", "high_note", "num_timesteps",
                "n_visible"):
    if getattr(spec, field) != getattr(dataset, field):
      raise ValueError(f"--data_dir={data_dir} has {field}="
                       f"{getattr(spec, field)} but the model was trained on "
                       f"{field}={getattr(dataset, field)}.")
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


def _check_settings(store, config: GenerateConfig, output: str) -> None:
  wanted = json.dumps(config.settings(), indent=1, sort_keys=True).encode()
  existing = store.read(SETTINGS_FILE)
  if existing is not None and existing != wanted and not config.overwrite:
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


def generate(model_dir: str, output: str, config: GenerateConfig) -> dict:
  """Generates this shard's samples into OUTPUT (local path or gs://).

  Returns:
    Summary: samples written now, already present, empty, resampled, paths.

  Raises:
    FileNotFoundError / ValueError: bad model, primer or data.
    FileExistsError: OUTPUT holds other output and --overwrite is not given.
  """
  loaded = export.load_model(model_dir)
  spec = loaded.dataset.roll_spec
  store = storage_lib.open_storage(output)
  overlap = config.overlap or max(1, loaded.dataset.num_timesteps // 3)
  primer = (_load_primer(config.primer, spec, overlap)
            if config.primer else None)
  data_windows = (_load_data_windows(config.data_dir, loaded.dataset)
                  if config.init == "data" else None)
  generator = Generator(loaded, config, primer, data_windows)

  blocks = shard_blocks(config)
  my_ids = [i for b in blocks for i in range(b * BLOCK, min((b + 1) * BLOCK,
                                                            config.num_samples))]
  progress_prefix = f"{PROGRESS_DIR}/shard-{config.shard_index:05d}/"
  if config.overwrite:
    store.delete([sample_name(i) for i in my_ids] + store.list(progress_prefix)
                 + [manifest_name(config)])
  _check_settings(store, config, output)
  store.discard_partial([sample_name(i) for i in my_ids])

  # What a previous run finished, verified against the objects themselves.
  recorded = _read_lines(store, [manifest_name(config)] +
                         store.list(progress_prefix))
  done, damaged = {}, set()
  mine = set(my_ids)
  for i, record in recorded.items():
    if i in mine:
      if store.checksum(record["path"]) == record["crc32c"]:
        done[i] = record
      else:  # ours (recorded) but truncated or altered: rewrite it
        damaged.add(record["path"])
  summary = {"output": output, "shard_index": config.shard_index,
             "num_shards": config.num_shards, "samples": len(my_ids),
             "already_present": len(done), "written": 0, "empty": 0,
             "resampled": 0}

  todo = [b for b in blocks if any(
      i not in done for i in range(b * BLOCK, min((b + 1) * BLOCK,
                                                  config.num_samples)))]
  calls = [todo[start:start + config.blocks_per_call]
           for start in range(0, len(todo), config.blocks_per_call)]
  for call_blocks, pieces in _sampled_ahead(generator, calls):
    rows = np.concatenate([np.arange(b * BLOCK, (b + 1) * BLOCK)
                           for b in call_blocks])
    attempts = np.zeros(len(rows), int)
    stats = [_describe(p, spec, config) for p in pieces]
    for attempt in range(1, config.resample_empty + 1):
      redo = [k for k, s in enumerate(stats) if s["empty"]]
      if not redo:
        break
      again = generator.sample(call_blocks, attempt)
      for k in redo:
        pieces[k], attempts[k] = again[k], attempt
        stats[k] = _describe(again[k], spec, config)
    for b in call_blocks:
      files = []
      for k in np.flatnonzero(rows // BLOCK == b):
        i = int(rows[k])
        if i >= config.num_samples or i in done:
          continue
        midi = pianoroll.matrix_to_midi_bytes(pieces[k], spec, config.tempo,
                                              config.program, config.velocity)
        record = {"id": i, "path": sample_name(i), "seed": config.seed,
                  "attempt": int(attempts[k]), **stats[k],
                  "crc32c": storage_lib.crc32c(midi), "bytes": len(midi)}
        files.append((record["path"], midi))
        summary["empty"] += stats[k]["empty"]
        summary["resampled"] += int(attempts[k] > 0)
        done[i] = record
      # The files first, then the record of them.
      store.write_many([f for f in files if f[0] not in damaged])
      store.write_many([f for f in files if f[0] in damaged], create_only=False)
      lines = [json.dumps(done[i], sort_keys=True)
               for i in range(b * BLOCK, min((b + 1) * BLOCK,
                                             config.num_samples))]
      store.write(f"{progress_prefix}block-{b:07d}.jsonl",
                  ("\n".join(lines) + "\n").encode(), create_only=False)
      summary["written"] += len(files)
    logging.info("shard %d: %d/%d samples", config.shard_index, len(done),
                 len(my_ids))

  manifest = "".join(json.dumps(done[i], sort_keys=True) + "\n"
                     for i in sorted(done))
  store.write(manifest_name(config), manifest.encode(), create_only=False)
  store.delete(store.list(progress_prefix))
  summary["empty_total"] = sum(1 for r in done.values() if r["empty"])
  summary["manifest"] = store.url(manifest_name(config))
  if config.previews:
    from trainer import previews  # pylint: disable=g-import-not-at-top
    summary["gallery"] = previews.write_previews(
        store, [done[i] for i in sorted(done)][:config.num_previews], spec,
        config)
  return summary
