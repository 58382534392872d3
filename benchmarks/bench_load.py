r"""Load run: a large, partly hostile corpus through the pipeline, then 100,000 samples.

    python -m benchmarks.bench_load --corpus=data/chorales   # make bench-load

Not run in CI (about 15-25 minutes on 2 cores). Everything goes through the
CLIs a user runs, as separate processes:
  1. A corpus of --num_files MIDI files built from the demo corpus: every piece
     transposed (-6..+5 semitones), cut (a random span of its notes) and
     re-timed (60-180 bpm), plus --num_hostile hostile files (empty, random
     bytes, truncated, header only, SMPTE-timed, absurd ticks, a folder named
     .mid, broken symlinks, symlink loops) mixed in.
  2. preprocess.main on DirectRunner (all cores) over the corpus and over a
     quarter of it: files/s, peak memory of the process tree for both (it
     must not grow with the corpus: the pipeline streams), and the accounting
     (files seen = converted + failed + skipped = files matched).
  3. A quick model trained on that dataset (trainer.task --max_steps).
  4. trainer.generate of --num_samples samples to local disk and to gs:// on
     a local GCS emulator (its own process), each killed (SIGKILL) halfway and
     rerun: exactly N sample files, no duplicates, the manifest whole (every id
     once, every checksum equal to the file's).
Prints one line per figure and a final PASS/FAIL line; exits 1 on FAIL.
"""

import dataclasses
import glob
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time

from common import cli

_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@dataclasses.dataclass(frozen=True)
class LoadConfig:
  corpus: str = cli.setting("data/chorales", "Folder of MIDI files the corpus is built from.")
  num_files: int = cli.setting(20000, "MIDI files in the built corpus (hostile ones included).")
  num_hostile: int = cli.setting(300, "Hostile files among them.")
  num_samples: int = cli.setting(100000, "Samples generated to each destination.")
  train_steps: int = cli.setting(300, "Updates of the quick model.")
  workdir: str | None = cli.setting(None, "Keep everything here (default: a temp folder, removed).")
  seed: int = cli.setting(0, "Seeds the corpus variations.")
  direct_workers: int = cli.setting(
      0, "DirectRunner workers for preprocessing: 0 all cores (multi-processing), "
      "1 in this process (the smoke test: no worker start-up).")

  def __post_init__(self):
    if self.num_files < 20 or not 0 <= self.num_hostile < self.num_files:
      raise ValueError(f"--num_files={self.num_files} must be >= 20 and "
                       f"--num_hostile={self.num_hostile} in 0..num_files-1.")
    if self.direct_workers < 0:
      raise ValueError(f"--direct_workers={self.direct_workers} must be >= 0.")
    if self.num_samples < 1 or self.train_steps < 1:
      raise ValueError("--num_samples and --train_steps must be >= 1.")


# --- 1. the corpus ---------------------------------------------------------------------


def _variant(pm_bytes: bytes, rng: random.Random) -> bytes:
  """One transposed, cut and re-timed copy of a piece (pretty_midi round trip)."""
  import io  # pylint: disable=g-import-not-at-top
  import pretty_midi  # pylint: disable=g-import-not-at-top
  src = pretty_midi.PrettyMIDI(io.BytesIO(pm_bytes))
  shift = rng.randint(-6, 5)
  scale = 120.0 / rng.uniform(60.0, 180.0)
  notes = sorted((n for inst in src.instruments for n in inst.notes),
                 key=lambda n: n.start)
  if not notes:
    return pm_bytes
  first = rng.randrange(len(notes))
  last = rng.randrange(first, len(notes)) + 1
  t0 = notes[first].start
  out = pretty_midi.PrettyMIDI(initial_tempo=120.0)
  inst = pretty_midi.Instrument(program=0)
  for n in notes[first:last]:
    pitch = min(127, max(0, n.pitch + shift))
    inst.notes.append(pretty_midi.Note(n.velocity, pitch, (n.start - t0) * scale,
                                       (n.end - t0) * scale))
  out.instruments.append(inst)
  buf = io.BytesIO()
  out.write(buf)
  return buf.getvalue()


def _absurd_ticks_midi() -> bytes:
  import io  # pylint: disable=g-import-not-at-top
  import mido  # pylint: disable=g-import-not-at-top
  mid = mido.MidiFile(ticks_per_beat=480)
  track = mido.MidiTrack([mido.Message("note_on", note=60, velocity=90, time=2**27),
                          mido.Message("note_off", note=60, velocity=0, time=480)])
  mid.tracks.append(track)
  buf = io.BytesIO()
  mid.save(file=buf)
  return buf.getvalue()


def _hostile(k: int, good: bytes, folder: str, rng: random.Random) -> str:
  """Writes hostile file number k into folder; returns its kind."""
  path = os.path.join(folder, f"hostile-{k:05d}.mid")
  kinds = ("empty", "random", "truncated", "header_only", "smpte", "absurd_ticks",
           "folder", "broken_link", "link_loop")
  kind = kinds[k % len(kinds)]
  if kind == "folder":
    os.makedirs(path)
  elif kind == "broken_link":
    os.symlink(os.path.join(folder, f"missing-{k}.mid"), path)
  elif kind == "link_loop":
    os.symlink(path, path)
  else:
    if kind == "empty":
      data = b""
    elif kind == "random":
      data = rng.randbytes(rng.randint(1, 4096))
    elif kind == "truncated":
      data = good[:rng.randint(14, max(15, len(good) - 1))]
    elif kind == "header_only":
      data = good[:14]
    elif kind == "smpte":  # division < 0: SMPTE frames, 25 fps, 40 ticks
      data = good[:12] + bytes([0xE7, 40]) + good[14:]
    else:  # absurd_ticks: a note 2^27 ticks (days at any tempo) in
      data = _absurd_ticks_midi()
    with open(path, "wb") as f:
      f.write(data)
  return kind


def build_corpus(config: LoadConfig, folder: str) -> dict:
  sources = sorted(glob.glob(os.path.join(config.corpus, "*.mid")))
  if not sources:
    raise cli.UsageError(f"--corpus={config.corpus} has no *.mid files; run "
                         "`make data` first.")
  blobs = []
  for p in sources:
    with open(p, "rb") as f:
      blobs.append(f.read())
  rng = random.Random(config.seed)
  os.makedirs(folder)
  kinds = {}
  for k in range(config.num_hostile):
    kind = _hostile(k, blobs[k % len(blobs)], folder, rng)
    kinds[kind] = kinds.get(kind, 0) + 1
  for k in range(config.num_files - config.num_hostile):
    with open(os.path.join(folder, f"piece-{k:06d}.mid"), "wb") as f:
      f.write(_variant(blobs[k % len(blobs)], rng))
  return kinds


# --- 2. preprocessing ------------------------------------------------------------------


def _run(args, **kwargs) -> tuple:
  """Runs a CLI; returns (seconds, stdout, peak RSS in MiB of its process tree).

  ru_maxrss of RUSAGE_CHILDREN is the largest resident set of any waited-for
  descendant; each call runs in a fresh child, so take it from that child.
  """
  code = ("import resource, subprocess, sys, json; "
          "r = subprocess.run(sys.argv[1:], capture_output=True, text=True); "
          "sys.stderr.write(r.stderr[-3000:]); "
          "print(json.dumps([r.returncode, r.stdout, "
          "resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss]))")
  start = time.perf_counter()
  out = subprocess.run([sys.executable, "-c", code, sys.executable, "-m"] + args,
                       capture_output=True, text=True, cwd=_ROOT, **kwargs)
  seconds = time.perf_counter() - start
  if out.returncode != 0:
    raise RuntimeError(f"{args[0]} wrapper failed: {out.stderr[-2000:]}")
  rc, stdout, maxrss_kib = json.loads(out.stdout.splitlines()[-1])
  if rc != 0:
    raise RuntimeError(f"{' '.join(args[:2])} exited {rc}: {out.stderr[-2000:]}")
  return seconds, stdout, maxrss_kib / 1024.0


def preprocess(corpus_glob: str, output_dir: str, workers: int) -> dict:
  mode = "in_memory" if workers == 1 else "multi_processing"
  seconds, _, peak_mib = _run([
      "preprocess.main", f"--input={corpus_glob}", f"--output_dir={output_dir}",
      f"--direct_num_workers={workers}", f"--direct_running_mode={mode}"])
  with open(os.path.join(output_dir, "dataset.json")) as f:
    spec = json.load(f)
  return {"seconds": seconds, "peak_mib": peak_mib, "spec": spec}


def accounting(spec: dict) -> dict:
  """The file counts dataset.json records, whatever key layout it uses."""
  counts = spec.get("counts", spec)
  return {k: counts.get(k) for k in ("files_seen", "converted", "failed", "skipped")}


# --- 4. generation with a kill in the middle ------------------------------------------------


def _sample_count(output: str) -> int:
  if output.startswith("gs://"):
    from google.cloud import storage  # pylint: disable=g-import-not-at-top
    bucket, _, prefix = output[len("gs://"):].partition("/")
    return sum(1 for b in storage.Client().list_blobs(bucket, prefix=prefix + "/sample-"))
  return len(glob.glob(os.path.join(output, "sample-*.mid")))


def generate_killed_and_resumed(model_dir: str, output: str, n: int) -> dict:
  args = [sys.executable, "-m", "trainer.generate", f"--model_dir={model_dir}",
          f"--output={output}", f"--num_samples={n}"]
  start = time.perf_counter()
  proc = subprocess.Popen(args, cwd=_ROOT, stdout=subprocess.DEVNULL,
                          stderr=subprocess.DEVNULL)
  killed_at = None
  while proc.poll() is None:
    time.sleep(1.0)
    written = _sample_count(output)
    if written >= n // 2:
      proc.send_signal(signal.SIGKILL)
      proc.wait()
      killed_at = written
      break
  first = time.perf_counter() - start
  start = time.perf_counter()
  rerun = subprocess.run(args, cwd=_ROOT, capture_output=True, text=True)
  second = time.perf_counter() - start
  if rerun.returncode != 0:
    raise RuntimeError(f"the rerun exited {rerun.returncode}: {rerun.stderr[-2000:]}")
  summary = json.loads(rerun.stdout)
  return {"killed_at": killed_at, "seconds": first + second,
          "samples_per_s": n / (first + second), "summary": summary}


def check_output(output: str, n: int) -> list:
  """Problems with a finished output: exact count, unique ids, whole manifest."""
  from trainer.generation import storage  # pylint: disable=g-import-not-at-top
  store = storage.open_storage(output)
  problems = []
  names = store.list("sample-")
  if len(names) != n or len(set(names)) != n:
    problems.append(f"{len(names)} sample files ({len(set(names))} distinct), want {n}")
  lines = (store.read("manifest.jsonl") or b"").decode().splitlines()
  records = [json.loads(line) for line in lines if line.strip()]
  ids = [r["id"] for r in records]
  if sorted(ids) != list(range(n)):
    problems.append(f"manifest has {len(ids)} lines, {len(set(ids))} distinct ids, want 0..{n - 1}")
  bad = [r["path"] for r in records if store.checksum(r["path"]) != r["crc32c"]]
  if bad:
    problems.append(f"{len(bad)} files differ from their manifest checksum, e.g. {bad[0]}")
  if store.list("_progress/"):
    problems.append("progress records left behind")
  return problems


def run_load(config: LoadConfig, workdir: str) -> bool:
  ok = True
  corpus = os.path.join(workdir, "corpus")
  start = time.perf_counter()
  kinds = build_corpus(config, corpus)
  # What the pipeline must account for: every match but the folders (a folder
  # named x.mid is not a file; the broken links and loops are).
  matched = sum(1 for p in glob.glob(os.path.join(corpus, "*.mid"))
                if not os.path.isdir(p))
  print(f"corpus: {matched} files ({config.num_hostile} hostile: {kinds}) built in "
        f"{time.perf_counter() - start:.0f} s")

  # A slice of the corpus for the memory check: pieces 0..999 (or all, when
  # fewer), against the whole corpus.
  quarter_glob = os.path.join(corpus, "piece-000*.mid")
  small = preprocess(quarter_glob, os.path.join(workdir, "dataset-small"),
                     config.direct_workers)
  full = preprocess(os.path.join(corpus, "*.mid"), os.path.join(workdir, "dataset"),
                    config.direct_workers)
  small_files = len(glob.glob(quarter_glob))
  counts = accounting(full["spec"])
  print(f"preprocess: {matched} files in {full['seconds']:.0f} s = "
        f"{matched / full['seconds']:.1f} files/s on {os.cpu_count()} cores; "
        f"peak memory {full['peak_mib']:.0f} MiB (vs {small['peak_mib']:.0f} MiB "
        f"for {small_files} files)")
  print(f"accounting: {counts}")
  seen = counts["files_seen"]
  parts = sum(counts[k] or 0 for k in ("converted", "failed", "skipped"))
  if seen != matched or parts != seen:
    ok = False
    print(f"FAIL accounting: files matched {matched}, seen {seen}, "
          f"converted+failed+skipped {parts}")
  growth = full["peak_mib"] / max(small["peak_mib"], 1.0)
  if growth > 1.5:
    ok = False
    print(f"FAIL memory grows with the corpus: x{growth:.2f} for "
          f"x{matched / max(small_files, 1):.1f} files")

  job = os.path.join(workdir, "job")
  _run(["trainer.task", f"--data_dir={os.path.join(workdir, 'dataset')}",
        f"--job_dir={job}", f"--max_steps={config.train_steps}", "--batch_size=16"])
  model = os.path.join(job, "model")

  local = generate_killed_and_resumed(model, os.path.join(workdir, "samples"),
                                      config.num_samples)
  print(f"generate local: {config.num_samples} samples, killed at "
        f"{local['killed_at']}, resumed; {local['samples_per_s']:.0f} samples/s overall")
  problems = check_output(os.path.join(workdir, "samples"), config.num_samples)
  from tests import gcs_emulator  # pylint: disable=g-import-not-at-top
  with gcs_emulator.running_emulator(own_process=True):
    bucket = gcs_emulator.new_bucket()
    out = f"gs://{bucket}/samples"
    remote = generate_killed_and_resumed(model, out, config.num_samples)
    print(f"generate gs:// (emulator): killed at {remote['killed_at']}, resumed; "
          f"{remote['samples_per_s']:.0f} samples/s overall")
    problems += [f"gs://: {p}" for p in check_output(out, config.num_samples)]
  for p in problems:
    print(f"FAIL {p}")
  return ok and not problems


def main(argv):
  del argv
  config = cli.config_from_flags(LoadConfig)
  workdir = config.workdir or tempfile.mkdtemp(prefix="bench-load-")
  if config.workdir and os.path.exists(os.path.join(workdir, "corpus")):
    raise cli.UsageError(f"--workdir={workdir} already holds a corpus/; choose "
                         "an empty folder.")
  try:
    ok = run_load(config, workdir)
  finally:
    if not config.workdir:
      shutil.rmtree(workdir, ignore_errors=True)
  print("bench-load: PASS" if ok else "bench-load: FAIL")
  if not ok:
    raise cli.JobError("the load run found problems (FAIL lines above)")


if __name__ == "__main__":
  cli.define_flags(LoadConfig)
  cli.run(main)
