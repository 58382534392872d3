r"""Benchmark: generation throughput to local disk and to GCS (emulator).

    python -m trainer.benchmark_generate --model_dir=out/job/model

Measured in one run, on the same 10,000 samples (default settings):
  * trainer.generate to a local folder, end to end (sampling, decoding,
    atomic writes, manifest), samples/s;
  * the same job to gs:// on a local GCS emulator (gcp-storage-emulator, in
    this process), samples/s;
  * the bare write rate of pretty_midi for the same pieces (PrettyMIDI objects
    built and written to memory; nothing else), and of our direct writer.
Goals (issue 4): >= 1,000 samples/s to local disk on 2 cores; >= 200 samples/s
to the emulator.
"""

import os
import shutil
import sys
import tempfile
import time

from absl import app
from absl import flags

FLAGS = flags.FLAGS
flags.DEFINE_string("model_dir", "out/job/model", "A trained model/ folder.")
flags.DEFINE_integer("num_samples", 10000, "Samples per measurement.")


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
  sys.path.insert(0, os.getcwd())
  from preprocess import pianoroll  # pylint: disable=g-import-not-at-top
  from tests import gcs_emulator  # pylint: disable=g-import-not-at-top
  from trainer import export  # pylint: disable=g-import-not-at-top
  from trainer import generation  # pylint: disable=g-import-not-at-top
  if not os.path.exists(os.path.join(FLAGS.model_dir, "model.json")):
    raise app.UsageError(f"--model_dir={FLAGS.model_dir} has no model; run "
                         "`make train` first.")
  spec = export.load_model(FLAGS.model_dir).dataset.roll_spec
  n = FLAGS.num_samples
  config = generation.GenerateConfig(num_samples=n)
  workdir = tempfile.mkdtemp(prefix="bench-generate-")
  try:
    # Warm-up (tracing, imports) on a few samples, not timed.
    generation.generate(FLAGS.model_dir, os.path.join(workdir, "warm"),
                        generation.GenerateConfig(num_samples=64))
    local = os.path.join(workdir, "local")
    start = time.perf_counter()
    generation.generate(FLAGS.model_dir, local, config)
    local_rate = n / (time.perf_counter() - start)

    with gcs_emulator.running_emulator():
      from apache_beam.internal.gcp import auth  # pylint: disable=g-import-not-at-top
      auth.get_service_credentials = lambda *a, **k: None
      bucket = gcs_emulator.new_bucket()
      start = time.perf_counter()
      generation.generate(FLAGS.model_dir, f"gs://{bucket}/bench", config)
      gcs_rate = n / (time.perf_counter() - start)

    pieces = []
    for i in range(n):
      with open(os.path.join(local, generation.sample_name(i)), "rb") as f:
        pieces.append(pianoroll.midi_to_matrix(pianoroll.parse_midi(f.read()),
                                               spec))
    start = time.perf_counter()
    for m in pieces:
      pianoroll.midi_to_bytes(pianoroll.matrix_to_midi(m, spec))
    pretty_rate = n / (time.perf_counter() - start)
    start = time.perf_counter()
    for m in pieces:
      pianoroll.matrix_to_midi_bytes(m, spec)
    direct_rate = n / (time.perf_counter() - start)
  finally:
    shutil.rmtree(workdir, ignore_errors=True)

  print(f"{n} samples, {config.gibbs_steps} Gibbs steps, init={config.init}, "
        f"{os.cpu_count()} cores")
  print(f"generate -> local disk:        {local_rate:8.0f} samples/s "
        f"(goal >= 1000: {'PASS' if local_rate >= 1000 else 'MISS'})")
  print(f"generate -> GCS emulator:      {gcs_rate:8.0f} samples/s "
        f"(goal >= 200: {'PASS' if gcs_rate >= 200 else 'MISS'})")
  print(f"bare pretty_midi write:        {pretty_rate:8.0f} samples/s")
  print(f"bare direct writer (ours):     {direct_rate:8.0f} samples/s")
  print(f"ratio generate-local / bare pretty_midi write: "
        f"{local_rate / pretty_rate:.2f}x")


if __name__ == "__main__":
  app.run(main)
