r"""Benchmark: generation throughput to local disk and to GCS (emulator).

    python -m benchmarks.bench_generate --model_dir=out/job/model  (make bench-generate)

Measured in one run:

Sampler efficiency (issue 9), at the default settings (13 windows, each after
the first the best of 4 candidates, T=0.9, the articulate threshold,
--model_dir's model) next to the seed preset's (one
window, T=1, a 50-hidden-unit model: --seed_model_dir, or one with
--model_dir's visible biases and random weights, since the cost of a Gibbs
step does not depend on the weights' values):
  * bars per second of the sampler alone (no decoding, no writing);
  * useful FLOP/s: only the two matmuls of each Gibbs step count, 2 V H FLOP
    per sample each, per step, per window and candidate; over
  * the machine's matmul FLOP/s for the sampler's shape, a [BLOCK, V] x
    [V, H] product (BLOCK = 128 chains) timed in the same run.
A bigger model or longer samples cost more time; the fraction (useful /
matmul) shows whether any of it is wasted, and must not drop.

Throughput (issue 4), the seed preset's one-window samples of the seed's
model shape (H=50, the same model as above; the goals are files per second
and were set when the default model had that shape; the cost of a longer
sample or a bigger model is the sampler's, measured above), 10,000 samples:
  * trainer.generate to a local folder, end to end (sampling, decoding,
    atomic writes, manifest), samples/s; and the same with --model_dir's
    model (no goal);
  * the same job to gs:// on a local GCS emulator (gcp-storage-emulator in
    its own process, as a remote service would be), samples/s;
  * the breakdown: Gibbs sampling alone, and decoding + MIDI encoding alone;
  * the baseline: pretty_midi's bare write rate for the same pieces
    (PrettyMIDI objects built and written to memory; nothing else).
Goals (issue 4): >= 1,000 samples/s to local disk on 2 cores; >= 200
samples/s to the emulator. Then the RNN-RBM at the Theano tutorial's shape
(measure_rnn_rbm): 32-bar pieces (128 frames, 25 Gibbs steps per frame) per
second, sampler alone and end to end, with CPU seconds (goal, issue 10:
>= 100 pieces/s on 2 cores), in a process of its own that gives each
TensorFlow op one thread as trainer.generate does for an RNN-RBM
(the RNN-RBM's configure_generation). Run from the repository's root (tests/ holds the
emulator helper; benchmarks are not installed). tests/test_benchmarks.py runs
it at a tiny size (--num_samples, --gibbs_steps) so that it cannot rot.
"""

import os
import shutil
import tempfile
import time

from absl import app
from absl import flags
from trainer import config as config_lib

FLAGS = flags.FLAGS
flags.DEFINE_string("model_dir", "out/job/model", "A trained model/ folder.")
flags.DEFINE_integer("num_samples", 10000, "Samples per measurement.",
                     lower_bound=1)
flags.DEFINE_integer("gibbs_steps", None, "Default: generation's default.")
flags.DEFINE_string("seed_model_dir", None,
                    "A model trained with --preset=original (50 hidden units) for "
                    "the seed's side of the efficiency figures; default: "
                    "random weights of that shape.")
flags.DEFINE_integer("efficiency_samples", 512,
                     "Samples per sampler-efficiency measurement.",
                     lower_bound=1)
# Each measurement repeats until it has run this long, so that fast settings
# are not timed on one short call.
MIN_SECONDS = 2.0


def _rate(n, fn):
  start = time.perf_counter()
  result = fn()
  return n / (time.perf_counter() - start), result


def _matmul_flops(n_visible, n_hidden, block):
  """The machine's FLOP/s for a [block, V] x [V, H] float32 matmul."""
  # pylint: disable=g-import-not-at-top  # TensorFlow after flag parsing
  import numpy as np
  import tensorflow as tf
  rng = np.random.default_rng(0)
  a = tf.constant(rng.random((block, n_visible), np.float32))
  b = tf.constant(rng.random((n_visible, n_hidden), np.float32))
  reps = 50

  @tf.function
  def run():
    # A graph loop, as benchmarks/bench_train.py's matmul_rate: one product
    # per iteration (identical ops in one graph would be merged by grappler).
    acc = tf.constant(0.0)
    for _ in tf.range(reps):
      acc += tf.reduce_sum(tf.matmul(a, b))
    return acc
  run().numpy()  # trace
  calls, start, cpu = 0, time.perf_counter(), time.process_time()
  while time.perf_counter() - start < MIN_SECONDS:
    run().numpy()
    calls += 1
  flop = calls * reps * 2 * block * n_visible * n_hidden
  return (flop / (time.perf_counter() - start),
          flop / (time.process_time() - cpu))


def _sampler_rate(loaded, config, n):
  """(samples/s, samples per CPU second) of the Gibbs sampler alone, at
  `config` (n samples a round)."""
  # pylint: disable=g-import-not-at-top
  from trainer.generation import lib as generate_lib
  from trainer.models.rbm import sampling as rbm_sampling  # pylint: disable=g-import-not-at-top
  generator = rbm_sampling.Generator(loaded, config, None, None)
  blocks = generate_lib.shard_blocks(config)
  generator.sample(blocks[:1], 0)  # trace, not timed
  done, start, cpu = 0, time.perf_counter(), time.process_time()
  while time.perf_counter() - start < MIN_SECONDS or not done:
    for i in range(0, len(blocks), config.blocks_per_call):
      generator.sample(blocks[i:i + config.blocks_per_call], 0)
    done += len(blocks) * generate_lib.BLOCK
  return (done / (time.perf_counter() - start),
          done / (time.process_time() - cpu))


def _seed_model(loaded, n_hidden=50):
  """The seed's model shape: --model_dir's biases, random N(0, 0.01) weights."""
  # pylint: disable=g-import-not-at-top
  import dataclasses
  import numpy as np
  from trainer.models.rbm import maths as model_lib
  rbm = model_lib.RBM(loaded.model.n_visible, n_hidden)
  rng = np.random.default_rng(0)
  rbm.weights.assign(rng.normal(0, 0.01, (loaded.model.n_visible, n_hidden))
                     .astype(np.float32))
  rbm.visible_bias.assign(loaded.model.visible_bias)
  return dataclasses.replace(loaded, model=rbm)


def sampler_efficiency(loaded, config, n) -> dict:
  """Bars/s, useful FLOP/s and matmul FLOP/s of the sampler at `config`."""
  # pylint: disable=g-import-not-at-top
  from trainer.generation import lib as generate_lib
  from trainer.models.rbm import sampling as rbm_sampling
  # As trainer.generate runs it: --num_windows=0 is the corpus's length.
  config = rbm_sampling.with_length(config, loaded)
  spec, t = loaded.dataset.roll_spec, loaded.dataset.num_timesteps
  overlap = config.overlap or max(1, t // 3)
  steps = t + (config.num_windows - 1) * (t - overlap)
  bars = steps / (4 * spec.steps_per_quarter)  # 4/4: 16 steps of 16ths a bar
  v, h = loaded.model.n_visible, loaded.model.n_hidden
  rate, per_cpu_second = _sampler_rate(loaded, config, n)
  # Every window after the first samples --candidates chains (the first has
  # no context to agree with, so one): all of them are Gibbs work, whichever
  # is kept. Scoring them (a [V, 12] projection, or one free energy) is not
  # counted, so it shows as waste if it costs anything.
  chains = 1 + (config.num_windows - 1) * config.candidates
  flop_per_sample = chains * config.gibbs_steps * 2 * 2 * v * h
  useful = rate * flop_per_sample
  matmul, matmul_per_cpu_s = _matmul_flops(v, h, generate_lib.BLOCK)
  # On a shared machine the wall-clock rates move with the other jobs'
  # load, and the matmul is timed at another moment than the sampler (two
  # runs here at load 12-19 gave fractions 1.23 and 0.30 for the same
  # settings). FLOP per CPU second of this process move much less: the
  # verdict uses their fraction.
  useful_per_cpu_s = per_cpu_second * flop_per_sample
  return {"hidden": h, "windows": config.num_windows,
          "candidates": config.candidates, "bars": bars,
          "samples_per_s": rate, "bars_per_s": rate * bars,
          "useful_flops": useful, "matmul_flops": matmul,
          "fraction": useful / matmul,
          "useful_flop_per_cpu_s": useful_per_cpu_s,
          "matmul_flop_per_cpu_s": matmul_per_cpu_s,
          "cpu_fraction": useful_per_cpu_s / matmul_per_cpu_s}


def _print_efficiency(new, old):
  for name, r in (("defaults", new), ("seed preset", old)):
    print(f"{name:12s} H={r['hidden']:<4d} {r['windows']:2d} window(s) x "
          f"{r['candidates']} candidate(s), "
          f"{r['bars']:4.1f} bars: {r['bars_per_s']:8.1f} bars/s "
          f"({r['samples_per_s']:.1f} samples/s); useful "
          f"{r['useful_flops'] / 1e9:6.2f} GFLOP/s of "
          f"{r['matmul_flops'] / 1e9:6.2f} matmul GFLOP/s = "
          f"{r['fraction']:.2f}; per CPU second: useful "
          f"{r['useful_flop_per_cpu_s'] / 1e9:.2f} GFLOP of "
          f"{r['matmul_flop_per_cpu_s'] / 1e9:.2f} matmul GFLOP = "
          f"{r['cpu_fraction']:.2f}")
  verdict = "PASS" if new["cpu_fraction"] >= old["cpu_fraction"] else "MISS"
  print(f"useful / matmul FLOP per CPU second, defaults vs seed preset: "
        f"{new['cpu_fraction']:.2f} vs {old['cpu_fraction']:.2f} (goal: no "
        f"drop: {verdict}); wall clock: {new['fraction']:.2f} vs "
        f"{old['fraction']:.2f}")


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
  if FLAGS.rnn_rbm_child:
    _rnn_rbm_child()
    return
  # pylint: disable=g-import-not-at-top  # after the flags are parsed
  from common import cli
  from preprocess import pianoroll
  from tests import gcs_emulator
  from trainer.models import files as export
  from trainer.generation import lib as generate_lib
  from trainer.models.rbm import sampling as rbm_sampling  # pylint: disable=g-import-not-at-top
  from trainer.models.rbm import training as rbm_training  # pylint: disable=g-import-not-at-top
  if not os.path.exists(os.path.join(FLAGS.model_dir, "model.json")):
    raise app.UsageError(f"--model_dir={FLAGS.model_dir} has no model.json; "
                         "run `make train` first.")
  loaded = export.load_model(FLAGS.model_dir)
  spec = loaded.dataset.roll_spec
  n = FLAGS.num_samples
  steps = {} if FLAGS.gibbs_steps is None else {"gibbs_steps": FLAGS.gibbs_steps}
  m = min(n, FLAGS.efficiency_samples)
  seed_loaded = (export.load_model(FLAGS.seed_model_dir)
                 if FLAGS.seed_model_dir else _seed_model(loaded))
  new = sampler_efficiency(
      loaded, config_lib.GenerateConfig(num_samples=m, **steps), m)
  old = sampler_efficiency(
      seed_loaded, cli.preset(config_lib.GenerateConfig, "original",
                              num_samples=m, **steps), m)
  _print_efficiency(new, old)

  config = cli.preset(config_lib.GenerateConfig, "original", num_samples=n,
                      **steps)
  workdir = tempfile.mkdtemp(prefix="bench-generate-")
  try:
    # Issue 4's goals are for the seed's model shape (H=50, as the default
    # model was then); the default model's own rate is printed beside them.
    seed_dir = FLAGS.seed_model_dir or os.path.join(workdir, "seed_model")
    if not FLAGS.seed_model_dir:
      rbm_training.save(seed_dir, seed_loaded.model, seed_loaded.dataset,
                        seed_loaded.config, seed_loaded.step)
    # Warm-up (tracing, imports), not timed.
    for model_dir in (seed_dir, FLAGS.model_dir):
      generate_lib.generate(
          model_dir, os.path.join(workdir, "warm", os.path.basename(model_dir)),
          cli.preset(config_lib.GenerateConfig, "original",
                     num_samples=min(n, 256), **steps))
    local_rate, _ = _rate(n, lambda: generate_lib.generate(
        seed_dir, os.path.join(workdir, "local"), config))
    default_model_rate, _ = _rate(n, lambda: generate_lib.generate(
        FLAGS.model_dir, os.path.join(workdir, "local-default-model"), config))

    with gcs_emulator.running_emulator(own_process=True):
      bucket = gcs_emulator.new_bucket()
      gcs_rate, _ = _rate(n, lambda: generate_lib.generate(
          seed_dir, f"gs://{bucket}/bench", config))

    generator = rbm_sampling.Generator(
        seed_loaded, rbm_sampling.with_length(config, seed_loaded), None, None)
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
        f"one window (seed preset), {os.cpu_count()} cores; the seed's model "
        f"shape (H={seed_loaded.model.n_hidden}), for which issue 4 set the goals")
  print(f"generate -> local disk:          {local_rate:8.0f} samples/s "
        f"({verdict(local_rate, 1000)})")
  print(f"  the same with --model_dir's model (H={loaded.model.n_hidden}): "
        f"{default_model_rate:8.0f} samples/s (no goal: a bigger model)")
  print(f"generate -> GCS emulator:        {gcs_rate:8.0f} samples/s "
        f"({verdict(gcs_rate, 200)})")
  print(f"  breakdown: Gibbs sampling only {sample_rate:8.0f} samples/s")
  print(f"  breakdown: decode + MIDI bytes {decode_rate:8.0f} samples/s "
        "(our direct writer)")
  print(f"baseline: bare pretty_midi write {pretty_rate:8.0f} samples/s")
  print(f"ratio generate-local / bare pretty_midi write: "
        f"{local_rate / pretty_rate:.2f}x; our writer / pretty_midi: "
        f"{decode_rate / pretty_rate:.2f}x")
  if FLAGS.rnn_rbm_samples:
    report_rnn_rbm(_rnn_rbm_in_subprocess())


# --- The RNN-RBM (issue 10) ------------------------------------------------

flags.DEFINE_integer("rnn_rbm_samples", 1024, "RNN-RBM pieces per measurement "
                     "(0: skip the RNN-RBM).", lower_bound=0)
flags.DEFINE_integer("rnn_rbm_frames", 128, "Frames per RNN-RBM piece (128: "
                     "32 bars on a quarter-note grid).", lower_bound=1)
flags.DEFINE_integer("rnn_rbm_gibbs_steps", 25, "Gibbs steps per frame (the "
                     "Theano tutorial's 25).", lower_bound=1)
flags.DEFINE_bool("rnn_rbm_child", False, "Internal: run only the RNN-RBM "
                  "measurement, in this process, and print it as JSON.")
# The Theano tutorial's RNN-RBM: 88 keys, 150 hidden, 100 recurrent units.
RNN_RBM_SHAPE = (88, 150, 100)


def _timed(fn):
  """(wall seconds, CPU seconds of this process, fn())."""
  wall, cpu = time.perf_counter(), time.process_time()
  result = fn()
  return time.perf_counter() - wall, time.process_time() - cpu, result


def measure_rnn_rbm(num_samples: int, num_frames: int, gibbs_steps: int,
                    shape=RNN_RBM_SHAPE) -> dict:
  """RNN-RBM pieces/s: the sampler alone, and trainer.generate to local disk.

  The model has the tutorial's initial weights and visible biases for 4
  notes of 88 per frame (a chorale's density, which sets the writing cost);
  the sampler's ops are dense, so its speed does not depend on the values.
  Wall and CPU seconds are both reported: on a shared machine the wall time
  says more about the other jobs than about this one.
  """
  # pylint: disable=g-import-not-at-top
  from preprocess import records
  from trainer.models import files as export
  from trainer.generation import lib as generate_lib
  from trainer.models.recurrent import training as sequence_training
  from trainer.models.rnn_rbm import training as sequence_train_lib
  from trainer.models.rnn_rbm import sampling as generate_rnn_rbm
  from trainer.models.rnn_rbm import maths as rnn_rbm
  n_visible, n_hidden, n_recurrent = shape
  dataset = records.DatasetSpec(
      encoding="roll", low_note=21, high_note=21 + n_visible,
      steps_per_quarter=1, num_timesteps=0, stride=0, n_visible=0,
      unit_means=[], counts={})
  workdir = tempfile.mkdtemp(prefix="bench-generate-rnn-rbm-")
  try:
    model_dir = os.path.join(workdir, "model")
    means = [4 / 88] * n_visible
    sequence_training.save(model_dir, rnn_rbm.RNNRBM(
        n_visible, n_hidden, n_recurrent, unit_means=means), dataset, {}, 0,
                           means, 1, name="rnn_rbm",
                           params=sequence_train_lib.PARAMS)
    config = config_lib.GenerateConfig(
        num_samples=num_samples, num_frames=num_frames,
        gibbs_steps_per_frame=gibbs_steps)
    _, generator = generate_rnn_rbm.prepare(export.load_model(model_dir),
                                            config)
    generator.sample([0], 0)  # warm-up: tracing, not timed
    blocks = generate_lib.shard_blocks(config)
    # In the job's calls (blocks_per_call blocks, each in its own thread).
    step = config.blocks_per_call
    sample_wall, sample_cpu, _ = _timed(lambda: [
        generator.sample(blocks[i:i + step], 0)
        for i in range(0, len(blocks), step)])
    local_wall, local_cpu, _ = _timed(lambda: generate_lib.generate(
        model_dir, os.path.join(workdir, "local"), config))
  finally:
    shutil.rmtree(workdir, ignore_errors=True)
  # The sampler makes whole blocks: count what it computed.
  computed = len(blocks) * generate_lib.BLOCK
  return {"shape": shape, "samples": num_samples, "frames": num_frames,
          "gibbs_steps": gibbs_steps, "sample_rate": computed / sample_wall,
          "sample_cpu_per_piece": sample_cpu / computed,
          "local_rate": num_samples / local_wall,
          "local_cpu_per_piece": local_cpu / num_samples}


def _rnn_rbm_child() -> None:
  """The RNN-RBM measurement as trainer.generate runs it: a process whose
  TensorFlow ops have one thread each (the RNN-RBM's configure_generation),
  set before any op runs, so it needs a process of its own."""
  # pylint: disable=g-import-not-at-top
  import json
  from trainer.models.recurrent import sampling as frame_sampling
  configured = frame_sampling.one_thread_per_op()
  r = measure_rnn_rbm(FLAGS.rnn_rbm_samples, FLAGS.rnn_rbm_frames,
                      FLAGS.rnn_rbm_gibbs_steps)
  print(json.dumps(dict(r, one_thread_per_op=configured,
                        load_average=os.getloadavg())))


def _rnn_rbm_in_subprocess() -> dict:
  # pylint: disable=g-import-not-at-top
  import json
  import subprocess
  import sys
  out = subprocess.run(
      [sys.executable, "-m", "benchmarks.bench_generate", "--rnn_rbm_child",
       f"--rnn_rbm_samples={FLAGS.rnn_rbm_samples}",
       f"--rnn_rbm_frames={FLAGS.rnn_rbm_frames}",
       f"--rnn_rbm_gibbs_steps={FLAGS.rnn_rbm_gibbs_steps}"],
      capture_output=True, text=True, check=False,
      cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
      env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3"))
  if out.returncode:
    raise RuntimeError(f"the RNN-RBM measurement failed:\n{out.stderr[-3000:]}")
  return json.loads(out.stdout.strip().splitlines()[-1])


def report_rnn_rbm(r: dict) -> None:
  v, h, u = r["shape"]
  goal = "PASS" if r["sample_rate"] >= 100 else "MISS"
  print(f"RNN-RBM V={v} H={h} U={u}: {r['samples']} pieces of {r['frames']} "
        f"frames x {r['gibbs_steps']} Gibbs steps per frame")
  print(f"RNN-RBM Gibbs sampling only:    {r['sample_rate']:8.1f} pieces/s "
        f"(goal >= 100: {goal}); {1000 * r['sample_cpu_per_piece']:.1f} ms "
        f"CPU per piece = {1 / r['sample_cpu_per_piece']:.0f} pieces per "
        "CPU-second")
  print(f"RNN-RBM generate -> local disk: {r['local_rate']:8.1f} pieces/s; "
        f"{1000 * r['local_cpu_per_piece']:.1f} ms CPU per piece = "
        f"{1 / r['local_cpu_per_piece']:.0f} pieces per CPU-second")
  print(f"  (one thread per op: {r.get('one_thread_per_op')}; load average "
        f"during the run: {r.get('load_average', ['?'])[0]})")


if __name__ == "__main__":
  app.run(main)
