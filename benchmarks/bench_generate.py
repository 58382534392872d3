r"""Benchmark: generation throughput to local disk and to GCS (emulator).

    python -m benchmarks.bench_generate --model_dir=out/job/model  (make bench-generate)

Measured in one run, on the same samples (default settings, 10,000 samples):
  * trainer.generate to a local folder, end to end (sampling, decoding,
    atomic writes, manifest), samples/s;
  * the same job to gs:// on a local GCS emulator (gcp-storage-emulator in
    its own process, as a remote service would be), samples/s;
  * the breakdown: Gibbs sampling alone, and decoding + MIDI encoding alone;
  * the baseline: pretty_midi's bare write rate for the same pieces
    (PrettyMIDI objects built and written to memory; nothing else).
Goals (issue 4): >= 1,000 samples/s to local disk on 2 cores; >= 200
samples/s to the emulator. Run from the repository's root (tests/ holds the
emulator helper; benchmarks are not installed). tests/test_benchmarks.py runs
it at a tiny size (--num_samples, --gibbs_steps) so that it cannot rot.
"""

import os
import shutil
import tempfile
import time

from absl import app
from absl import flags

FLAGS = flags.FLAGS
flags.DEFINE_string("model_dir", "out/job/model", "A trained model/ folder.")
flags.DEFINE_integer("num_samples", 10000, "Samples per measurement.",
                     lower_bound=1)
flags.DEFINE_integer("gibbs_steps", None, "Default: generation's default.")


def _rate(n, fn):
  start = time.perf_counter()
  result = fn()
  return n / (time.perf_counter() - start), result


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
  # pylint: disable=g-import-not-at-top  # after the flags are parsed
  from preprocess import pianoroll
  from tests import gcs_emulator
  from trainer import export
  from trainer import generate_lib
  if not os.path.exists(os.path.join(FLAGS.model_dir, "model.json")):
    raise app.UsageError(f"--model_dir={FLAGS.model_dir} has no model.json; "
                         "run `make train` first.")
  loaded = export.load_model(FLAGS.model_dir)
  spec = loaded.dataset.roll_spec
  n = FLAGS.num_samples
  steps = {} if FLAGS.gibbs_steps is None else {"gibbs_steps": FLAGS.gibbs_steps}
  config = generate_lib.GenerateConfig(num_samples=n, **steps)
  workdir = tempfile.mkdtemp(prefix="bench-generate-")
  try:
    # Warm-up (tracing, imports), not timed.
    generate_lib.generate(
        FLAGS.model_dir, os.path.join(workdir, "warm"),
        generate_lib.GenerateConfig(num_samples=min(n, 256), **steps))
    local_rate, _ = _rate(n, lambda: generate_lib.generate(
        FLAGS.model_dir, os.path.join(workdir, "local"), config))

    with gcs_emulator.running_emulator(own_process=True):
      bucket = gcs_emulator.new_bucket()
      gcs_rate, _ = _rate(n, lambda: generate_lib.generate(
          FLAGS.model_dir, f"gs://{bucket}/bench", config))

    generator = generate_lib.Generator(loaded, config, None, None)
    blocks = generate_lib.shard_blocks(config)
    sample_rate, pieces = _rate(n, lambda: [
        p for b in blocks for p in generator.sample([b], 0)][:n])
    decode_rate, _ = _rate(n, lambda: [
        pianoroll.matrix_to_midi_bytes(p, spec) for p in pieces])
    pretty_rate, _ = _rate(n, lambda: [
        pianoroll.midi_to_bytes(pianoroll.matrix_to_midi(p, spec))
        for p in pieces])
  finally:
    shutil.rmtree(workdir, ignore_errors=True)

  def verdict(rate, goal):
    return f"goal >= {goal}: {'PASS' if rate >= goal else 'MISS'}"
  print(f"{n} samples, {config.gibbs_steps} Gibbs steps, init={config.init}, "
        f"{os.cpu_count()} cores")
  print(f"generate -> local disk:          {local_rate:8.0f} samples/s "
        f"({verdict(local_rate, 1000)})")
  print(f"generate -> GCS emulator:        {gcs_rate:8.0f} samples/s "
        f"({verdict(gcs_rate, 200)})")
  print(f"  breakdown: Gibbs sampling only {sample_rate:8.0f} samples/s")
  print(f"  breakdown: decode + MIDI bytes {decode_rate:8.0f} samples/s "
        "(our direct writer)")
  print(f"baseline: bare pretty_midi write {pretty_rate:8.0f} samples/s")
  print(f"ratio generate-local / bare pretty_midi write: "
        f"{local_rate / pretty_rate:.2f}x; our writer / pretty_midi: "
        f"{decode_rate / pretty_rate:.2f}x")


if __name__ == "__main__":
  app.run(main)
