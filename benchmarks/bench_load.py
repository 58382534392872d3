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
  5. Preemption: SIGTERM halfway through training and through generation,
     then the same command again: the model and every sample file are the
     bytes of an uninterrupted run.
  6. A full disk halfway through generation (a small tmpfs; skipped where
     one cannot be mounted): one line, exit 1; a rerun with space writes
     exactly N files, no duplicates.
  7. A 10-minute piece in each split (train, valid, eval): an RNN-RBM trained
     and evaluated on every split, each evaluation's peak memory within 2 GB.
The smoke test (tests/test_bench_load.py) runs the same steps, smaller.
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
  eval_betas: int = cli.setting(
      1500, "AIS betas per frame when evaluating the long pieces (the "
      "RNN-RBM's default; the smoke test uses fewer).")
  long_minutes: float = cli.setting(
      10.0, "Length of the long piece of each split, in minutes at 120 bpm.")
  gibbs_steps: int = cli.setting(
      50, "Gibbs steps per window of every generation (the generator's "
      "default; the smoke test uses fewer).")
  preempt_steps: int = cli.setting(
      2000, "Updates of the training that is stopped by SIGTERM halfway: "
      "enough that the signal arrives well before the end.")

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


def generate_killed_and_resumed(model_dir: str, output: str, n: int,
                                gibbs_steps: int) -> dict:
  args = [sys.executable, "-m", "trainer.generate", f"--model_dir={model_dir}",
          f"--output={output}", f"--num_samples={n}",
          f"--gibbs_steps={gibbs_steps}"]
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


# --- 5. preemption: SIGTERM, then the same command again ----------------------


def _until(args: list, done, timeout: float = 1800):
  """Starts `args`, waits until done() is true (polled every 0.2 s), sends
  SIGTERM; returns (exit code, stderr)."""
  proc = subprocess.Popen(args, cwd=_ROOT, stdout=subprocess.DEVNULL,
                          stderr=subprocess.PIPE, text=True)
  deadline = time.monotonic() + timeout
  while proc.poll() is None and not done() and time.monotonic() < deadline:
    time.sleep(0.2)
  proc.send_signal(signal.SIGTERM)
  _, err = proc.communicate(timeout=120)
  return proc.returncode, err


def _same_files(a: str, b: str, names: list) -> list:
  """The names whose bytes differ between folders a and b."""
  differ = []
  for name in names:
    with open(os.path.join(a, name), "rb") as fa, open(os.path.join(b, name),
                                                       "rb") as fb:
      if fa.read() != fb.read():
        differ.append(name)
  return differ


def training_preempted(dataset: str, workdir: str, steps: int) -> list:
  """SIGTERM halfway through training, a rerun: the model of a straight run."""

  def task(job):
    return ["trainer.task", f"--data_dir={dataset}", f"--job_dir={job}",
            f"--max_steps={steps}", "--batch_size=16",
            f"--log_every_steps={max(1, steps // 20)}",
            "--steps_per_checkpoint=1000000", "--summary_every_steps=1000000"]
  straight, stopped = (os.path.join(workdir, x) for x in ("job-straight",
                                                          "job-sigterm"))
  _run(task(straight))
  marker = f"step {steps // 2}/{steps}"
  log = []

  def halfway():
    return any(marker in line for line in log)
  proc = subprocess.Popen([sys.executable, "-m"] + task(stopped), cwd=_ROOT,
                          stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                          text=True)
  for line in proc.stderr:
    log.append(line)
    if halfway():
      proc.send_signal(signal.SIGTERM)
      break
  rest = proc.communicate(timeout=300)[1]
  problems = []
  # Exit 0: the run ended before the signal arrived (tiny smoke runs).
  if not (proc.returncode == 0 or (proc.returncode == 1 and
                                   "stopped by SIGTERM" in rest)):
    problems.append(f"training SIGTERM: exit {proc.returncode}, "
                    f"{rest.strip().splitlines()[-1:]}")
  _run(task(stopped))
  problems += [f"training SIGTERM: {n} differs from the uninterrupted run's"
               for n in _same_files(os.path.join(straight, "model"),
                                    os.path.join(stopped, "model"),
                                    ["params.npz"])]
  print(f"preemption: training sent SIGTERM at {marker} (exit "
        f"{proc.returncode}), resumed: "
        f"{'identical' if not problems else 'DIFFERENT'} model")
  return problems


def generation_preempted(model: str, reference: str, output: str,
                         n: int, gibbs_steps: int) -> list:
  """SIGTERM halfway through generation, a rerun: reference's bytes."""
  args = [sys.executable, "-m", "trainer.generate", f"--model_dir={model}",
          f"--output={output}", f"--num_samples={n}",
          f"--gibbs_steps={gibbs_steps}"]
  code, err = _until(args, lambda: _sample_count(output) >= n // 2)
  problems = []
  if code not in (0, 1) or (code == 1 and "stopped by SIGTERM" not in err):
    problems.append(f"generation SIGTERM: exit {code}: {err[-500:]}")
  rerun = subprocess.run(args, cwd=_ROOT, capture_output=True, text=True)
  if rerun.returncode != 0:
    return problems + [f"generation SIGTERM: rerun exited {rerun.returncode}"]
  problems += check_output(output, n)
  names = sorted(os.path.basename(p)
                 for p in glob.glob(os.path.join(output, "sample-*.mid")))
  problems += [f"generation SIGTERM: {name} differs"
               for name in _same_files(reference, output, names)[:3]]
  print(f"preemption: generation stopped by SIGTERM (exit {code}), resumed: "
        f"{len(names)} samples, {'identical' if not problems else 'DIFFERENT'}")
  return problems


# --- 6. a full disk halfway through generation ----------------------------------


def generation_on_a_full_disk(model: str, workdir: str, n: int,
                              file_bytes: int, gibbs_steps: int) -> list:
  disk = os.path.join(workdir, "small-disk")
  os.makedirs(disk)
  size_kib = max(64, n * file_bytes // 2 // 1024)
  if subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size_kib}k",
                     "tmpfs", disk], capture_output=True).returncode:
    print("full disk: SKIP (cannot mount a tmpfs here)")
    return []
  try:
    output = os.path.join(disk, "samples")
    args = [sys.executable, "-m", "trainer.generate", f"--model_dir={model}",
            f"--output={output}", f"--num_samples={n}",
            f"--gibbs_steps={gibbs_steps}"]
    full = subprocess.run(args, cwd=_ROOT, capture_output=True, text=True)
    lines = [line for line in full.stderr.splitlines()
             if line.startswith("trainer.generate: error:")]
    problems = []
    if full.returncode != 1 or len(lines) != 1 or "no space left" not in (
        lines[0]):
      problems.append(f"full disk: exit {full.returncode}, {lines[-2:]}")
    written = _sample_count(output)
    subprocess.run(["mount", "-o", f"remount,size={4 * size_kib + 1024}k",
                    disk], check=True)
    rerun = subprocess.run(args, cwd=_ROOT, capture_output=True, text=True)
    if rerun.returncode != 0:
      problems.append(f"full disk: the rerun exited {rerun.returncode}: "
                      f"{rerun.stderr[-300:]}")
    else:
      problems += [f"full disk: {p}" for p in check_output(output, n)]
    print(f"full disk: stopped at {written}/{n} samples in one line "
          f"(exit {full.returncode}); rerun with space: "
          f"{'exactly N' if not problems else 'PROBLEMS'}")
    return problems
  finally:
    subprocess.run(["umount", disk], capture_output=True)


# --- 7. 10-minute pieces: evaluation memory ------------------------------------


def long_pieces(config: LoadConfig, workdir: str) -> list:
  """A long piece (--long_minutes) in each split, an RNN-RBM, evaluation of
  each split within 2 GB."""
  from tests import midi_builders  # pylint: disable=g-import-not-at-top
  folder = os.path.join(workdir, "long")
  os.makedirs(folder)
  rng = random.Random(config.seed)
  # 120 bpm: 120 quarters a minute, a chord change every 16th note.
  steps = int(config.long_minutes * 120 * 4)
  for split in ("train", "valid", "eval"):
    notes = [(rng.choice((48, 55, 60, 64, 67, 72)) + k, i / 4, (i + 1) / 4)
             for i in range(steps) for k in (0, 4)]
    with open(os.path.join(folder, f"long-{split}.mid"), "wb") as f:
      f.write(midi_builders.make_midi(notes))
  dataset = os.path.join(workdir, "dataset-long")
  _run(["preprocess.main", f"--input={folder}/long-train.mid",
        f"--valid_input={folder}/long-valid.mid",
        f"--eval_input={folder}/long-eval.mid", f"--output_dir={dataset}",
        "--num_timesteps=0", "--direct_num_workers=1",
        "--direct_running_mode=in_memory"])
  job = os.path.join(workdir, "job-long")
  _run(["trainer.task", "--model=rnn_rbm", f"--data_dir={dataset}",
        f"--job_dir={job}", "--max_steps=2", "--batch_size=1",
        "--pretrain_rnn_epochs=0", "--validation_ais_betas=20"])
  problems = []
  for split in ("train", "valid", "eval"):
    seconds, out, peak = _run([
        "trainer.evaluate", f"--model_dir={job}/model",
        f"--data_dir={dataset}", f"--split={split}",
        f"--ais_betas={config.eval_betas}"])
    frames = json.loads(out)["frames"]
    print(f"long piece ({split}): {frames} frames evaluated in {seconds:.0f} s, "
          f"peak memory {peak:.0f} MiB")
    if peak > 2048:
      problems.append(f"evaluating the long {split} piece took "
                      f"{peak:.0f} MiB (> 2 GB)")
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
                                      config.num_samples, config.gibbs_steps)
  print(f"generate local: {config.num_samples} samples, killed at "
        f"{local['killed_at']}, resumed; {local['samples_per_s']:.0f} samples/s overall")
  problems = check_output(os.path.join(workdir, "samples"), config.num_samples)
  from tests import gcs_emulator  # pylint: disable=g-import-not-at-top
  with gcs_emulator.running_emulator(own_process=True):
    bucket = gcs_emulator.new_bucket()
    out = f"gs://{bucket}/samples"
    remote = generate_killed_and_resumed(model, out, config.num_samples,
                                         config.gibbs_steps)
    print(f"generate gs:// (emulator): killed at {remote['killed_at']}, resumed; "
          f"{remote['samples_per_s']:.0f} samples/s overall")
    problems += [f"gs://: {p}" for p in check_output(out, config.num_samples)]

  problems += training_preempted(os.path.join(workdir, "dataset"), workdir,
                                 config.preempt_steps)
  reference = os.path.join(workdir, "samples")
  problems += generation_preempted(model, reference,
                                   os.path.join(workdir, "samples-sigterm"),
                                   config.num_samples, config.gibbs_steps)
  sizes = [os.path.getsize(p) for p in glob.glob(
      os.path.join(reference, "sample-*.mid"))]
  problems += generation_on_a_full_disk(model, workdir, config.num_samples,
                                        sum(sizes) // max(len(sizes), 1),
                                        config.gibbs_steps)
  problems += long_pieces(config, workdir)
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
