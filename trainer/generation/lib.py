"""Batch generation: thousands of samples of any model to disk or GCS.

The model gives its sampler (trainer/models/<name>/model.py `sampler`); this
job knows no model. Determinism. Sample i's randomness comes from (seed, i)
alone: the samplers key their noise by global sample index. Float matmuls can
round differently for different batch shapes, so sampling always runs in
blocks of BLOCK samples aligned to global indices: sample i is row i % BLOCK
of block i // BLOCK, whatever the shard split, so every run computes it with
the same shapes. Shards own whole blocks (block % num_shards == shard_index).

Resumability. Files are written (atomically, create-only) before the block's
manifest lines, which go to `_progress/` as one immutable object per block
(GCS cannot append). A rerun verifies what the progress and manifest record
(object present, checksum equal) and writes only the rest. When a shard is
complete its lines are merged into its manifest and its progress removed.
"""

import concurrent.futures
import dataclasses
import json

from absl import logging
import numpy as np

from common import preemption
from preprocess import pianoroll
from trainer import config as config_lib
from trainer.generation import calibration
from trainer.generation import storage as storage_lib
from trainer.models import base
from trainer.models import files

BLOCK = config_lib.GENERATION_BLOCK
SETTINGS_FILE = "generation.json"
PROGRESS_DIR = "_progress"
# The settings live with the other jobs' in trainer/config.py.
GenerateConfig = config_lib.GenerateConfig


# A flag, primer, dataset or output generation cannot use; nothing written.
GenerateError = base.GenerateError


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


def _describe(piece: np.ndarray, spec: pianoroll.RollSpec, config) -> dict:
  notes = pianoroll.matrix_to_notes(piece, spec)
  polyphony = piece[:, :spec.n_pitches].sum(axis=1)
  return {"notes": len(notes), "mean_polyphony": round(float(polyphony.mean()), 4),
          "duration_s": round(len(piece) * 60.0 / config.tempo /
                              spec.steps_per_quarter, 4),
          "empty": len(notes) == 0}


def _read_lines(store, names) -> dict:
  lines = {}
  for name in names:
    for line in (store.read(name) or b"").decode("utf-8").splitlines():
      if line.strip():
        record = json.loads(line)
        lines[record["id"]] = record
  return lines


def model_record(model_dir: str, loaded: base.LoadedModel) -> dict:
  """generation.json's "model": which model wrote the samples, on what grid.

  trainer.compare reads the samples on this grid and quantisation when no
  dataset is given (a 16th-note reading of quarter-note samples would
  measure other music).
  """
  return {"model_dir": model_dir, "kind": loaded.name,
          "digest": files.digest(model_dir),
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


def _check_model(existing: bytes, model: dict, output: str) -> None:
  """Refuses to add samples of another model to a folder: a model's digest
  (its files' bytes) must equal the one generation.json records (folders
  written before digests were recorded, or a copy of the same model on
  another path, pass)."""
  try:
    recorded = json.loads(existing).get("model") or {}
  except (ValueError, AttributeError):
    return  # not ours to judge here: _same_settings reports it
  old = recorded.get("digest") if isinstance(recorded, dict) else None
  if old and old != model.get("digest"):
    raise FileExistsError(
        f"{output} holds samples of another model ({recorded.get('model_dir')}"
        f", digest {old[:12]}); {model['model_dir']} has digest "
        f"{model['digest'][:12]}: pass --overwrite to replace them, or choose "
        "another --output.")


def _check_settings(store, config: GenerateConfig, output: str,
                    model: dict | None = None) -> None:
  settings = dict(config.settings(), **({"model": model} if model else {}))
  wanted = json.dumps(settings, indent=1, sort_keys=True).encode()
  existing = store.read(SETTINGS_FILE)
  if existing is not None and model and not config.overwrite:
    _check_model(existing, model, output)
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


def _sampled_ahead(generator, calls: list):
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


def _write(shard: _Shard, generator, spec, summary: dict,
           stop: preemption.StopSignals) -> None:
  """Samples and writes every block not done yet, a call ahead.

  Raises:
    preemption.Stopped: SIGTERM/SIGINT; every block written so far is whole
      and recorded, so a rerun writes only the rest.
  """
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
      if stop.requested:
        raise preemption.Stopped(
            f"stopped by {stop.requested} with {len(shard.done)} of "
            f"{len(shard.ids)} samples of shard {config.shard_index} written "
            "and recorded; rerun the same command to write the rest.")
    logging.info("shard %d: %d/%d samples", config.shard_index,
                 len(shard.done), len(shard.ids))


def _finalise(shard: _Shard, spec, summary: dict, caption: str,
              title: str) -> None:
  """Merges the progress into the shard's manifest, then the previews."""
  store, config, done = shard.store, shard.config, shard.done
  manifest = "".join(json.dumps(done[i], sort_keys=True) + "\n"
                     for i in sorted(done))
  store.write(manifest_name(config), manifest.encode(), create_only=False)
  store.delete(store.list(shard.progress_prefix))
  summary["empty_total"] = sum(1 for r in done.values() if r["empty"])
  summary["manifest"] = store.url(manifest_name(config))
  if config.previews:
    from trainer.generation import previews  # pylint: disable=g-import-not-at-top
    summary["gallery"] = previews.write_previews(
        store, [done[i] for i in sorted(done)][:config.num_previews], spec,
        config, caption, title)


def generate(model_dir: str, output: str, config: GenerateConfig) -> dict:
  """Generates this shard's samples into OUTPUT (local path or gs://).

  Returns:
    Summary: samples written now, already present, empty, resampled, paths.

  Raises:
    FileNotFoundError: no model, primer or dataset where given.
    GenerateError: a flag, primer or dataset the model cannot use, or a
      shard too big for memory.
    FileExistsError: OUTPUT holds other output and --overwrite is not given.
  """
  check_shard_size(config)
  loaded = files.load_model(model_dir)
  spec = loaded.dataset.roll_spec
  # trainer.calibrate's settings for this model, for the flags not given.
  config, calibrated = calibration.apply(config, model_dir)
  if calibrated:
    logging.info("calibrated for this model (%s): %s", files.SAMPLING_FILE,
                 calibrated)
  # The model's sampler, and the config it runs with (a model may fill in
  # its length or its neutral settings).
  config, generator = loaded.family.sampler(loaded, config)

  # Only once the model, primer and data are known to work.
  store = storage_lib.open_storage(output)
  shard = _plan(store, config)
  _verify(shard, output, model_record(model_dir, loaded))
  summary = {"output": output, "shard_index": config.shard_index,
             "num_shards": config.num_shards, "samples": len(shard.ids),
             "already_present": len(shard.done), "written": 0, "empty": 0,
             "resampled": 0}
  with preemption.StopSignals() as stop:
    _write(shard, generator, spec, summary, stop)
  _finalise(shard, spec, summary, loaded.family.describe_sampling(config),
            loaded.family.title)
  return summary
