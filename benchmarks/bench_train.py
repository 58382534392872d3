r"""Benchmark: the CD trainer against this machine's matmul rate and the seed.

    python -m benchmarks.bench_train --data_dir=out/dataset    (make bench-train)

Measured in one run:
  * examples/s of CDTrainer's CD-1 step (the real training step, in-memory
    data) at the seed's shape (V=2340, H=50, B=100) and a large shape
    (H=1024, B=1024), on 1 replica and on 2 (MirroredStrategy on 2 logical
    CPUs);
  * this machine's fp32 matmul FLOP/s on the step's own matmul shapes, and the
    trainer's useful FLOP/s (models/rbm.flops_per_cd_example) as a fraction of it;
  * a breakdown at the seed's shape: the CD maths alone, + the strategy's
    step (constant batch), + the distributed input (the trainer's figure);
  * the seed's own loop, reimplemented faithfully in TF1 style (graph mode,
    per epoch and song: np.array, trim, reshape; one session.run per slice of
    at most 100 windows from window 1, fed as the int matrix it is) on the
    same corpus: its examples/s, the matmul-rate cap relative to it, and ours
    against it;
  * the RNN-RBM: frames/s of the RNN-RBM's SequenceTrainer step (the
    one the trainer runs: CD-k, Adam, gradient clipping; 1 replica, in-memory
    data) at the Theano tutorial's shape (V=88, H=150, U=100, 100 sequences
    x 100 frames, CD-15), and its useful FLOP/s
    (models/rnn_rbm.flops_per_cd_frame) as a fraction of the matmul rate on
    the same step's matmul shapes.
  * the peer a CPU user would pick, scikit-learn's BernoulliRBM (PCD-1 SGD,
    partial_fit per batch, float32) on the corpus's windows at both shapes,
    against `python -m trainer.task` as users run it (--preset=original at
    the shape, monitoring and checkpoints on: its final examples/s).
Goals (issue 3): >= 50% of the matmul rate at the large shape; >= 5x the
seed's loop at the seed's shape; 2 replicas >= 0.8x of 1 replica. Issue 10:
the RNN-RBM at >= 30% of the matmul rate. Issue 19: trainer.task >= 4x
BernoulliRBM at the seed's shape, >= 3x at the large one.
--tiny runs the same code at tiny shapes (tests/test_benchmarks.py's smoke
run; its figures mean nothing).
"""

import collections
import json
import os
import subprocess
import sys
import time

from absl import app
from absl import flags
import numpy as np

FLAGS = flags.FLAGS


def _define_flags():
  """Called only when run as a program: tests import this module next to the
  trainer's CLIs, whose --data_dir it would clash with."""
  flags.DEFINE_string("data_dir", "out/dataset",
                      "Preprocessed corpus for the seed-loop comparison.")
  flags.DEFINE_float("seconds", 6.0, "Timed seconds per measurement.")
  flags.DEFINE_string("measurement", None,
                      "Internal: run only this measurement and print it as "
                      "JSON (main runs each one in its own process).")
  flags.DEFINE_bool("tiny", False, "Tiny shapes: a smoke run of the same code.")

# `python -m benchmarks.bench_train` finds this package from the repository's
# root (benchmarks are not installed).
_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# (V, H, B) of each measured shape.
# "rnn_rbm": (V, H, U, sequences, frames, k) of the RNN-RBM.
SHAPES = {"seed": (2340, 50, 100), "large": (2340, 1024, 1024),
          "rnn_rbm": (88, 150, 100, 100, 100, 15)}
TINY_SHAPES = {"seed": (96, 4, 8), "large": (96, 8, 16),
               "rnn_rbm": (12, 6, 5, 4, 5, 2)}


# CPU and wall seconds of the last `_timed` loop (CPU: user + system, all
# threads). On a shared machine a wall rate says as much about the other jobs
# as about this one; work per CPU-second does not depend on the cores given.
_last_timing = {"cpu": 0.0, "wall": 1.0}


def _cpu_seconds() -> float:
  """CPU seconds of every thread of this process, to the nanosecond
  (os.times counts 10 ms ticks: a short loop under load read 0, and the
  per-CPU-second report divided by it)."""
  return time.process_time()


def _timed(fn, seconds: float, warmup: int = 2) -> tuple:
  """Calls fn() (which returns work units done) until `seconds` pass."""
  for _ in range(warmup):
    fn()
  done, start, cpu = 0, time.perf_counter(), _cpu_seconds()
  while time.perf_counter() - start < seconds:
    done += fn()
  wall = time.perf_counter() - start
  _last_timing.update(cpu=_cpu_seconds() - cpu, wall=wall)
  return done, wall


def _random_windows(tf, batch, n_visible):
  """A fixed [batch, n_visible] binary batch, 5% of units on."""
  rng = np.random.default_rng(0)
  return tf.constant(rng.random((batch, n_visible)) < 0.05, tf.float32)


def _cd_trainer(tf, strategy, n_visible, n_hidden, batch, unit_means=None,
                windows=None, compute_dtype="float32"):
  """A CDTrainer (CD-1, the seed's other defaults) on a fresh RBM; windows:
  None (batches from an iterator) or the uint8 windows it holds in memory."""
  # pylint: disable=g-import-not-at-top  # main imports TF after the flags
  from trainer import config as config_lib
  from trainer.models.rbm import maths as model_lib
  from trainer.models.rbm import training as rbm_training
  with strategy.scope():
    rbm = model_lib.RBM(n_visible, n_hidden, unit_means, seed=0)
  trainer = rbm_training.CDTrainer(
      strategy, rbm, config_lib.TrainConfig(num_hidden=n_hidden,
                                            batch_size=batch,
                                            compute_dtype=compute_dtype),
      batch, n_visible, windows)
  if windows is not None:
    trainer.start_epoch(0)  # calls wrap around epoch 0's order
  return trainer


def _train_loop_rate(tf, strategy, trainer, dataset, batch, seconds,
                     unpin: bool, steps: int) -> float:
  """examples/s of trainer.train_loop over a distributed iterator of dataset.

  unpin: call distribute.unpin_malloc_mmap_threshold() once the distributed
  iterator exists (see there), as the training loop does.
  """
  from trainer.training import distribute  # pylint: disable=g-import-not-at-top
  iterator = None  # dataset None: the trainer's windows in memory
  if dataset is not None:
    iterator = iter(strategy.experimental_distribute_dataset(dataset))
  if unpin:
    distribute.unpin_malloc_mmap_threshold()
  num_steps = tf.constant(steps)

  def run():
    trainer.train_loop(iterator, num_steps)["steps"].numpy()
    return steps * batch

  examples, elapsed = _timed(run, seconds)
  return examples / elapsed


def trainer_rate(tf, devices, n_visible, n_hidden, batch, seconds,
                 unpin: bool = False, memory: bool = False) -> float:
  """examples/s of CDTrainer.train_loop on a batch from a tf.data iterator
  (one batch repeated), or with memory on 20 batches of windows it holds
  (as the training loop runs it when the windows fit, --in_memory_mb)."""
  strategy = tf.distribute.MirroredStrategy(devices)
  if memory:
    rng = np.random.default_rng(0)
    windows = (rng.random((20 * batch, n_visible)) < 0.05).astype(np.uint8)
    trainer = _cd_trainer(tf, strategy, n_visible, n_hidden, batch,
                          windows=windows)
    return _train_loop_rate(tf, strategy, trainer, None, batch, seconds,
                            unpin, steps=20)
  trainer = _cd_trainer(tf, strategy, n_visible, n_hidden, batch)
  dataset = tf.data.Dataset.from_tensors(
      _random_windows(tf, batch, n_visible)).repeat()
  return _train_loop_rate(tf, strategy, trainer, dataset, batch, seconds,
                          unpin, steps=20)


def breakdown_rates(tf, n_visible, n_hidden, batch, seconds,
                    only: str | None = None) -> dict:
  """Where the step's time goes: examples/s with layers of the trainer removed.

  "maths": model.cd_statistics and a plain update, no strategy, no input;
  "step": CDTrainer.train_step on a constant batch (1 replica: strategy.run,
  all-reduce, momentum, the finite check), no input pipeline. The trainer's
  own figure (with its distributed iterator) is `trainer_rate`.
  """
  from trainer.models.rbm import maths as model_lib  # pylint: disable=g-import-not-at-top
  windows = _random_windows(tf, batch, n_visible)
  rbm = model_lib.RBM(n_visible, n_hidden, seed=0)
  scale = 0.005 / batch

  @tf.function
  def maths(start):
    for i in tf.range(20):
      stats = rbm.cd_statistics(windows, 1, 0, start + tf.cast(i, tf.int64), 0)
      rbm.weights.assign_add(scale * stats["w"])
      rbm.visible_bias.assign_add(scale * stats["visible_bias"])
      rbm.hidden_bias.assign_add(scale * stats["hidden_bias"])
    return start + 20

  trainer = _cd_trainer(tf, tf.distribute.MirroredStrategy(["/cpu:0"]),
                        n_visible, n_hidden, batch)

  @tf.function
  def steps():
    for _ in tf.range(20):
      trainer.train_step(windows)
    return trainer.step.read_value()

  start = [tf.constant(0, tf.int64)]

  def run_maths():
    start[0] = maths(start[0])
    start[0].numpy()
    return 20 * batch

  def run_steps():
    steps().numpy()
    return 20 * batch

  return {name: np.divide(*_timed(fn, seconds))
          for name, fn in (("maths", run_maths), ("step", run_steps))
          if only in (None, name)}


def matmul_rate(tf, n_visible, n_hidden, batch, seconds) -> float:
  """fp32 FLOP/s of the CD step's matmul shapes, run back to back."""
  return matmul_rate_dtype(tf, n_visible, n_hidden, batch, seconds, "float32")


def rnn_trainer_rate(tf, n_visible, n_hidden, n_recurrent, batch, frames, k,
                     seconds) -> float:
  """Frames/s of SequenceTrainer.train_loop (1 replica) on an in-memory batch
  of `batch` sequences of `frames` frames, unpinned as the trainer runs."""
  # pylint: disable=g-import-not-at-top  # main imports TF after the flags
  from trainer import config as config_lib
  from trainer import models
  from trainer.models.rnn_rbm import maths as rnn_rbm
  from trainer.models.rnn_rbm import training as sequence_train_lib
  strategy = tf.distribute.MirroredStrategy(["/cpu:0"])
  # The CLI's --model=rnn_rbm defaults (Adam 1e-3, cosine, clip 10, no
  # momentum or weight decay), at this shape.
  config = config_lib.TrainConfig(**{
      **models.settings("rnn_rbm").DEFAULTS, "model": "rnn_rbm",
      "num_hidden": n_hidden, "num_hidden_recurrent": n_recurrent,
      "cd_k": k, "batch_size": batch, "sequence_length": frames})
  with strategy.scope():
    model = rnn_rbm.RNNRBM(n_visible, n_hidden, n_recurrent, seed=0)
  trainer = sequence_train_lib.RBMSequenceTrainer(strategy, model, config,
                                                  total_steps=10**6)
  rolls = tf.reshape(_random_windows(tf, batch * frames, n_visible),
                     [batch, frames, n_visible])
  dataset = tf.data.Dataset.from_tensors(
      (rolls, tf.fill([batch], tf.constant(frames, tf.int32)))).repeat()
  # A step is ~11 GFLOP at the tutorial's shape: 2 steps per call.
  return _train_loop_rate(tf, strategy, trainer, dataset, batch * frames,
                          seconds, unpin=True, steps=2)


def rnn_matmul_rate(tf, n_visible, n_hidden, n_recurrent, batch, frames, k,
                    seconds) -> float:
  """fp32 FLOP/s of the RNN-RBM step's matmuls (flops_per_cd_frame's list),
  back to back: the per-frame ones on all batch * frames rows at once, the
  recurrence's forward and backward products per time step on [batch, U]."""
  n, v, h, u = batch * frames, n_visible, n_hidden, n_recurrent
  uniform = lambda *shape: tf.random.uniform(shape)
  xv, xh, xu, ub = uniform(n, v), uniform(n, h), uniform(n, u), uniform(batch, u)
  w, w_uv, w_uh, w_vu, w_uu = (uniform(v, h), uniform(u, v), uniform(u, h),
                               uniform(v, u), uniform(u, u))
  first = lambda x: tf.reduce_sum(x[0])

  @tf.function
  def step():
    acc = tf.constant(0.0)
    for _ in tf.range(k + 1):  # chain + free energies: v W, h W^T
      acc += first(tf.matmul(xv, w)) + first(tf.matmul(xh, w, transpose_b=True))
    for _ in tf.range(2):  # dF/dW of F(v) and F(v*)
      acc += first(tf.matmul(xv, xh, transpose_a=True))
    acc += (first(tf.matmul(xv, w_vu)) + first(tf.matmul(xu, w_uv)) +
            first(tf.matmul(xv, w_uv, transpose_b=True)) +
            first(tf.matmul(xu, xv, transpose_a=True)) +
            first(tf.matmul(xv, xu, transpose_a=True)))  # 5 UV
    acc += (first(tf.matmul(xu, w_uh)) +
            first(tf.matmul(xh, w_uh, transpose_b=True)) +
            first(tf.matmul(xu, xh, transpose_a=True)))  # 3 UH
    acc += first(tf.matmul(xu, xu, transpose_a=True))  # dW_uu
    for _ in tf.range(frames):  # the recurrence, forward and backward
      acc += first(tf.matmul(ub, w_uu)) + first(
          tf.matmul(ub, w_uu, transpose_b=True))
    return acc

  from trainer.models.rnn_rbm import maths as rnn_rbm  # pylint: disable=g-import-not-at-top
  per_step = n * rnn_rbm.flops_per_cd_frame(v, h, u, k)

  def run():
    step().numpy()
    return per_step

  flops, elapsed = _timed(run, seconds)
  return flops / elapsed


def songs_from_dataset(data_dir: str) -> list:
  """The training split as the seed holds its corpus: one time-major int matrix
  [timesteps, n_columns] per song (its windows in order, end to end)."""
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  from preprocess import records  # pylint: disable=g-import-not-at-top
  from trainer import data  # pylint: disable=g-import-not-at-top
  spec = data.load_dataset_spec(data_dir)
  songs = collections.defaultdict(list)
  for path in data.split_files(data_dir, "train"):
    for raw in tf.data.TFRecordDataset(path):
      ex = records.parse_example(raw.numpy())
      songs[ex["source"], ex["transpose"]].append((ex["offset"], ex["window"]))
  # The seed's get_songs keeps np.array(midiToNoteStateMatrix(f)): int64.
  return [np.concatenate([
      records.unpack_window(w, spec.num_timesteps, spec.n_columns)
      for _, w in sorted(windows)]).astype(np.int64)
          for _, windows in sorted(songs.items())]


def seed_windows(songs: list, num_timesteps: int) -> int:
  """Windows one epoch of the seed's loop trains on (it skips each song's first)."""
  return sum(max(0, len(s) // num_timesteps - 1) for s in songs)


def seed_loop_rate(tf, songs, num_timesteps, n_hidden, batch,
                   seconds) -> float:
  """The blog post's training loop, TF1 style, as it was written.

  Per epoch and song, as the seed does: np.array(song), trim to whole
  windows, reshape to [windows, num_timesteps * n_columns], then one
  session.run per slice song[i:i + batch] for i in range(1, len(song), batch)
  (sic: window 0 of every song is never trained on), feeding the int matrix.
  One function of ~60 lines on purpose: it mirrors the seed's script as
  written, so that it can be read side by side with it.
  """
  n_visible = songs[0].shape[1] * num_timesteps
  lr = 0.005
  graph = tf.Graph()
  with graph.as_default():
    v1 = tf.compat.v1
    x = v1.placeholder(tf.float32, [None, n_visible], name="x")
    # The seed draws W ~ N(0.01, 1); kept here only for faithfulness of cost.
    w = tf.Variable(v1.random_normal([n_visible, n_hidden], 0.01), name="W")
    bh = tf.Variable(tf.zeros([1, n_hidden], tf.float32), name="bh")
    bv = tf.Variable(tf.zeros([1, n_visible], tf.float32), name="bv")

    def sample(probs):
      return tf.floor(probs + v1.random_uniform(tf.shape(probs), 0, 1))

    def gibbs_sample(k):
      def gibbs_step(count, k, xk):
        hk = sample(tf.sigmoid(tf.matmul(xk, w) + bh))
        xk = sample(tf.sigmoid(tf.matmul(hk, tf.transpose(w)) + bv))
        return count + 1, k, xk
      ct = tf.constant(0)
      [_, _, x_sample] = v1.while_loop(lambda count, num_iter, *args: count < num_iter,
                                       gibbs_step, [ct, tf.constant(k), x])
      return tf.stop_gradient(x_sample)

    x_sample = gibbs_sample(1)
    h = sample(tf.sigmoid(tf.matmul(x, w) + bh))
    h_sample = sample(tf.sigmoid(tf.matmul(x_sample, w) + bh))
    size_bt = tf.cast(tf.shape(x)[0], tf.float32)
    w_adder = tf.multiply(lr / size_bt, tf.subtract(
        tf.matmul(tf.transpose(x), h), tf.matmul(tf.transpose(x_sample), h_sample)))
    bv_adder = tf.multiply(lr / size_bt, tf.reduce_sum(tf.subtract(x, x_sample), 0, True))
    bh_adder = tf.multiply(lr / size_bt, tf.reduce_sum(tf.subtract(h, h_sample), 0, True))
    updt = [w.assign_add(w_adder), bv.assign_add(bv_adder), bh.assign_add(bh_adder)]
    init = v1.global_variables_initializer()
  with v1.Session(graph=graph) as sess:
    sess.run(init)

    def epoch():
      n = 0
      for song in songs:  # as the seed: batches never cross a song
        song = np.array(song)
        song = song[:len(song) // num_timesteps * num_timesteps]
        song = np.reshape(song, [song.shape[0] // num_timesteps,
                                 song.shape[1] * num_timesteps])
        for i in range(1, len(song), batch):
          tr_x = song[i:i + batch]
          sess.run(updt, feed_dict={x: tr_x})
          n += len(tr_x)
      return n

    examples, elapsed = _timed(epoch, seconds, warmup=1)
  return examples / elapsed


def our_rate_on_songs(tf, songs, num_timesteps, n_hidden, batch, seconds,
                      unpin: bool = False, memory: bool = False) -> float:
  """The trainer on the same windows, batched across songs as it trains:
  from a shuffled tf.data pipeline, or held in memory (memory)."""
  windows = _song_windows(songs, num_timesteps)
  n_visible = windows.shape[1]
  strategy = tf.distribute.MirroredStrategy(["/cpu:0"])
  if memory:
    trainer = _cd_trainer(tf, strategy, n_visible, n_hidden, batch,
                          windows.mean(0), windows.astype(np.uint8))
    return _train_loop_rate(tf, strategy, trainer, None, batch, seconds,
                            unpin, steps=min(50, len(windows) // batch))
  trainer = _cd_trainer(tf, strategy, n_visible, n_hidden, batch,
                        windows.mean(0))
  ds = (tf.data.Dataset.from_tensor_slices(windows).shuffle(len(windows), seed=0)
        .repeat().batch(batch, drop_remainder=True).prefetch(tf.data.AUTOTUNE))
  return _train_loop_rate(tf, strategy, trainer, ds, batch, seconds, unpin,
                          steps=50)


def _song_windows(songs, num_timesteps) -> np.ndarray:
  """The songs' whole windows, flattened [n, V] (as ours_on_songs trains)."""
  return np.concatenate([
      s[:len(s) // num_timesteps * num_timesteps].reshape(
          -1, num_timesteps * s.shape[1]) for s in songs]).astype(np.float32)


def sklearn_rate(windows: np.ndarray, n_hidden: int, batch: int,
                 seconds: float) -> float:
  """examples/s of scikit-learn's BernoulliRBM (PCD-1 SGD, the peer a CPU
  user would pick) as its users train it: `fit` over the windows (float32,
  its fastest input), one epoch per call.

  Not `partial_fit`: from scratch it initialises the weights as a float64,
  Fortran-ordered array, and every batch then mixes float32 and float64 in
  its products, which ran at less than half of `fit`'s rate here.
  """
  from sklearn.neural_network import BernoulliRBM  # pylint: disable=g-import-not-at-top
  rbm = BernoulliRBM(n_components=n_hidden, learning_rate=0.005,
                     batch_size=batch, n_iter=1, random_state=0)
  usable = len(windows) // batch * batch  # whole batches, as we train

  def run():
    rbm.fit(windows[:usable])
    return usable

  examples, elapsed = _timed(run, seconds)
  return examples / elapsed


def task_rate(data_dir: str, n_hidden: int, batch: int,
              steps: int) -> float:
  """examples/s that `python -m trainer.task` reports (its final JSON), as
  users run it: monitoring, summaries and checkpoints on, the original
  post's settings (--preset=original) at this shape."""
  import tempfile  # pylint: disable=g-import-not-at-top
  with tempfile.TemporaryDirectory() as job:
    out = subprocess.run(
        [sys.executable, "-m", "trainer.task", f"--data_dir={data_dir}",
         f"--job_dir={job}", "--preset=original", f"--num_hidden={n_hidden}",
         f"--batch_size={batch}", f"--max_steps={steps}"],
        capture_output=True, text=True, check=False, cwd=_ROOT,
        env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3"))
  if out.returncode:
    raise RuntimeError(f"trainer.task failed:\n{out.stderr[-3000:]}")
  return json.loads(out.stdout.strip().splitlines()[-1])["examples_per_sec"]


def _verdict(ok: bool) -> str:
  return "PASS" if ok else "MISS"


def _measure(name: str, data_dir: str, seconds: float,
             shapes: dict = SHAPES) -> dict:
  """One measurement (see MEASUREMENTS); main runs each in a fresh process
  that has split the CPU in 2 logical devices (distribute.use_logical_cpus).

  Returns:
    {name: value}, plus the figures that come with it for free (the FLOPs per
    example with the matmul rate; the corpus's counts with the seed's loop).
  """
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  from trainer import data  # pylint: disable=g-import-not-at-top
  from trainer.models.rbm import maths as model_lib  # pylint: disable=g-import-not-at-top
  kind, _, arg = name.partition(":")
  unpin, memory = kind.endswith("+unpin"), kind.endswith("+memory")
  kind = kind.removesuffix("+unpin").removesuffix("+memory")
  if kind in ("1_replica", "2_replicas"):
    devices = ["/cpu:0"] if kind == "1_replica" else ["/cpu:0", "/cpu:1"]
    return {name: trainer_rate(tf, devices, *shapes[arg], seconds, unpin,
                               memory)}
  if kind == "matmul_flops":
    v, h, b = shapes[arg]
    return {name: matmul_rate(tf, v, h, b, seconds),
            f"useful_flops_per_example:{arg}":
                model_lib.flops_per_cd_example(v, h, 1)}
  if kind == "rnn_rbm":
    rate = rnn_trainer_rate(tf, *shapes["rnn_rbm"], seconds)
    return {name: rate, f"{name}:cores": _cores_used()}
  if kind == "rnn_matmul_flops":
    from trainer.models.rnn_rbm import maths as rnn_rbm  # pylint: disable=g-import-not-at-top
    v, h, u, _, _, k = shapes["rnn_rbm"]
    rate = rnn_matmul_rate(tf, *shapes["rnn_rbm"], seconds)
    return {name: rate, f"{name}:cores": _cores_used(),
            "useful_flops_per_frame:rnn_rbm":
                rnn_rbm.flops_per_cd_frame(v, h, u, k)}
  if kind in ("maths", "step"):
    return breakdown_rates(tf, *shapes["seed"], seconds, only=kind)
  if kind == "bf16":
    return bf16_rates(tf, shapes, seconds)
  num_timesteps = data.load_dataset_spec(data_dir).num_timesteps
  songs = songs_from_dataset(data_dir)
  if kind == "seed_loop":
    return {name: seed_loop_rate(tf, songs, num_timesteps, shapes["seed"][1],
                                 shapes["seed"][2], seconds),
            "seed_windows": seed_windows(songs, num_timesteps),
            "songs": len(songs)}
  if kind == "sklearn":
    _, h, b = shapes[arg]
    windows = _song_windows(songs, num_timesteps)
    if len(windows) < b:  # the large shape's batch: windows repeated
      windows = np.resize(windows, (b * 2, windows.shape[1]))
    return {name: sklearn_rate(windows, h, b, seconds)}
  if kind == "task":
    _, h, b = shapes[arg]
    steps = 5 if shapes is TINY_SHAPES else TASK_STEPS[arg]
    return {name: task_rate(data_dir, h, b, steps)}
  if kind == "ours_on_songs":
    return {name: our_rate_on_songs(tf, songs, num_timesteps,
                                    shapes["seed"][1], shapes["seed"][2],
                                    seconds, unpin, memory)}
  raise app.UsageError(f"--measurement={name} is not one of {MEASUREMENTS}")


def _cores_used() -> float:
  """Cores the last `_timed` loop kept busy on average (CPU s / wall s):
  its rate / this is its work per CPU-second."""
  return _last_timing["cpu"] / _last_timing["wall"]


# Each runs in a process of its own: measured in one process, earlier runs
# slowed later ones by up to 40% here (e.g. the first distributed iterator pins
# malloc's mmap threshold for the whole process, see distribute.py), and TF1
# graph mode stays apart from TF2 eager. "+unpin": with
# distribute.unpin_malloc_mmap_threshold() after the iterator is built;
# without it, the trainer as it ran before the training loop called it too.
MEASUREMENTS = (
    "1_replica:seed", "2_replicas:seed", "1_replica+unpin:seed",
    "2_replicas+unpin:seed", "matmul_flops:seed", "maths", "step",
    "1_replica:large", "2_replicas:large", "1_replica+unpin:large",
    "2_replicas+unpin:large", "matmul_flops:large",
    "1_replica+memory:seed", "2_replicas+memory:seed",
    "1_replica+memory:large", "2_replicas+memory:large",
    "seed_loop", "ours_on_songs", "ours_on_songs+unpin",
    "ours_on_songs+memory", "rnn_rbm",
    "rnn_matmul_flops", "sklearn:seed", "sklearn:large", "task:seed",
    "task:large", "bf16")
# Updates of the trainer.task measurements (long enough that start-up and the
# first call's tracing are a small part of the run's examples/s).
TASK_STEPS = {"seed": 4000, "large": 300}


def _in_subprocess(name: str, data_dir: str, seconds: float,
                   tiny: bool) -> dict:
  out = subprocess.run(
      [sys.executable, "-m", "benchmarks.bench_train", f"--measurement={name}",
       f"--data_dir={data_dir}", f"--seconds={seconds}",
       "--tiny" if tiny else "--notiny"],
      capture_output=True, text=True, check=False, cwd=_ROOT,
      env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3"))
  if out.returncode:
    raise RuntimeError(f"measurement {name} failed:\n{out.stderr[-3000:]}")
  return json.loads(out.stdout.strip().splitlines()[-1])


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
  shapes = TINY_SHAPES if FLAGS.tiny else SHAPES
  if not FLAGS.tiny and not FLAGS.measurement:
    spec_path = os.path.join(FLAGS.data_dir, "dataset.json")
    if not os.path.isfile(spec_path):
      raise app.UsageError(f"--data_dir={FLAGS.data_dir} has no dataset.json: "
                           "run make bench-train, which builds it.")
    with open(spec_path, encoding="utf-8") as f:
      n_visible = json.load(f).get("n_visible")
    if n_visible != shapes["seed"][0]:
      raise app.UsageError(
          f"--data_dir={FLAGS.data_dir} has windows of {n_visible} units; the "
          f"benchmark is at the original post's {shapes['seed'][0]}: "
          "preprocess with --nofit_corpus (make bench-train does).")
  if FLAGS.measurement:
    from trainer.training import distribute  # pylint: disable=g-import-not-at-top
    # Before TF initialises, in every process, so all runs see the same devices.
    distribute.use_logical_cpus(2)
    print(json.dumps(_measure(FLAGS.measurement, FLAGS.data_dir,
                              FLAGS.seconds, shapes)))
    return
  r = {}
  for name in MEASUREMENTS:
    r.update(_in_subprocess(name, FLAGS.data_dir, FLAGS.seconds, FLAGS.tiny))
    print(f"  measured {name}: {r[name]:.4g}", flush=True)

  for variant, suffix in (("a tf.data iterator, without "
                           "distribute.unpin_malloc_mmap_threshold()", ""),
                          ("a tf.data iterator, with distribute."
                           "unpin_malloc_mmap_threshold(): the training loop "
                           "with --in_memory_mb=0", "+unpin"),
                          ("windows in memory: the training loop when they "
                           "fit (--in_memory_mb)", "+memory")):
    print(f"\n== {variant}")
    _report(r, suffix, shapes)
  print()
  _report_peer(r, shapes)
  _report_rnn(r, shapes)
  _report_bf16(r, shapes)


def _report(r: dict, suffix: str, shapes: dict = SHAPES) -> None:
  """Prints the table, the seed comparison and the goals for one variant."""
  print(f"{'shape':>6} {'V':>5} {'H':>5} {'B':>5} {'1 replica ex/s':>15} "
        f"{'2 replicas ex/s':>16} {'2/1':>5} {'matmul GFLOP/s':>15} "
        f"{'useful GFLOP/s':>15} {'fraction':>8} {'matmul cap ex/s':>16}")
  for shape in ("seed", "large"):
    v, h, b = shapes[shape]
    one = r[f"1_replica{suffix}:{shape}"]
    two = r[f"2_replicas{suffix}:{shape}"]
    mm = r[f"matmul_flops:{shape}"]
    useful = r[f"useful_flops_per_example:{shape}"]
    print(f"{shape:>6} {v:5d} {h:5d} {b:5d} {one:15.0f} {two:16.0f} "
          f"{two / one:5.2f} {mm / 1e9:15.1f} {one * useful / 1e9:15.1f} "
          f"{one * useful / mm:8.2f} {mm / useful:16.0f}")
  cap = r["matmul_flops:seed"] / r["useful_flops_per_example:seed"]
  print(f"seed shape, 1 replica, examples/s: CD maths alone {r['maths']:.0f}; "
        f"+ strategy.run/all-reduce/momentum (train_step, constant batch) "
        f"{r['step']:.0f}; + its input (train_loop) "
        f"{r[f'1_replica{suffix}:seed']:.0f}")
  print(f"seed's own loop (TF1 graph, session.run per batch, per song; "
        f"{r['seed_windows']:.0f} windows of {r['songs']:.0f} songs per "
        f"epoch): {r['seed_loop']:.0f} examples/s; the matmul rate caps this "
        f"shape at {cap / r['seed_loop']:.1f}x that")
  ours = r[f"ours_on_songs{suffix}"]
  print(f"this trainer on the same windows (CD-1, H=50, B=100, 1 replica): "
        f"{ours:.0f} examples/s")
  fraction = {shape: r[f"1_replica{suffix}:{shape}"] *
              r[f"useful_flops_per_example:{shape}"] /
              r[f"matmul_flops:{shape}"] for shape in ("seed", "large")}
  goals = [  # issue 19's
      ("fraction of matmul rate at the seed's shape", fraction["seed"], 0.5),
      ("fraction of matmul rate at the large shape", fraction["large"], 0.5),
      ("speed-up over the seed's loop at the seed's shape",
       ours / r["seed_loop"], 5.0),
      ("2 replicas / 1 replica, seed shape",
       r[f"2_replicas{suffix}:seed"] / r[f"1_replica{suffix}:seed"], 0.9),
      ("2 replicas / 1 replica, large shape",
       r[f"2_replicas{suffix}:large"] / r[f"1_replica{suffix}:large"], 0.9),
  ]
  for label, value, goal in goals:
    print(f"{label}: {value:.2f} (goal >= {goal}: {_verdict(value >= goal)})")


def _report_peer(r: dict, shapes: dict) -> None:
  """trainer.task as users run it against scikit-learn's BernoulliRBM on the
  corpus's windows (issue 19: >= 4x at the seed's shape, >= 3x at H=1024,
  B=1024)."""
  for shape, goal in (("seed", 4.0), ("large", 3.0)):
    _, h, b = shapes[shape]
    task, peer = r[f"task:{shape}"], r[f"sklearn:{shape}"]
    print(f"H={h} B={b}: trainer.task (--preset=original, monitoring on) "
          f"{task:.0f} examples/s; scikit-learn BernoulliRBM {peer:.0f}: "
          f"{task / peer:.2f}x (goal >= {goal}: {_verdict(task / peer >= goal)})")


def _report_rnn(r: dict, shapes: dict = SHAPES) -> None:
  """Prints the RNN-RBM's figures and its goal (issue 10)."""
  v, h, u, b, t, k = shapes["rnn_rbm"]
  frames, mm = r["rnn_rbm"], r["rnn_matmul_flops"]
  useful = frames * r["useful_flops_per_frame:rnn_rbm"]
  print(f"\n== RNN-RBM: the RNN-RBM's SequenceTrainer step (CD-{k}, "
        f"Adam, gradient clipping), 1 replica, V={v} H={h} U={u}, {b} "
        f"sequences x {t} frames")
  print(f"frames/s {frames:.0f} ({frames / t:.1f} sequences/s); useful "
        f"{useful / 1e9:.1f} GFLOP/s of the same matmuls' {mm / 1e9:.1f} "
        f"GFLOP/s")
  print(f"RNN-RBM fraction of matmul rate: {useful / mm:.2f} "
        f"(goal >= 0.3: {_verdict(useful / mm >= 0.3)})")
  step_cores, mm_cores = r["rnn_rbm:cores"], r["rnn_matmul_flops:cores"]
  print(f"per CPU-second: step {frames / step_cores:.0f} frames = "
        f"{useful / step_cores / 1e9:.1f} useful GFLOP, matmuls "
        f"{mm / mm_cores / 1e9:.1f} GFLOP: fraction "
        f"{useful / step_cores / (mm / mm_cores):.2f} (cores busy: step "
        f"{step_cores:.2f}, matmuls {mm_cores:.2f}; load average "
        f"{os.getloadavg()[0]:.1f})")


# The CPU flags that say whether 16-bit matmuls can beat float32 here.
_BF16_CPU_FLAGS = ("avx512_bf16", "amx_bf16", "amx_tile", "avx512_fp16",
                   "avx512f")


def device_name(tf) -> str:
  """The first GPU's name, else the CPU's model name and its bf16 flags."""
  gpus = tf.config.list_physical_devices("GPU")
  if gpus:
    details = tf.config.experimental.get_device_details(gpus[0])
    return f"GPU {details.get('device_name', gpus[0].name)} (x{len(gpus)})"
  model, cpu_flags = "unknown CPU", set()
  try:
    with open("/proc/cpuinfo", encoding="utf-8") as f:
      for line in f:
        key, _, value = line.partition(":")
        if key.strip() == "model name" and model == "unknown CPU":
          model = value.strip()
        elif key.strip() == "flags" and not cpu_flags:
          cpu_flags = set(value.split())
  except OSError:
    pass
  present = [f for f in _BF16_CPU_FLAGS if f in cpu_flags]
  return f"CPU {model} ({', '.join(present) or 'no avx512/bf16 flags'})"


def matmul_rate_dtype(tf, n_visible, n_hidden, batch, seconds,
                      dtype: str) -> float:
  """FLOP/s of the CD step's matmul shapes (v W, h W^T, v^T h) with `dtype`
  operands, run back to back, each product cast to float32 as
  --compute_dtype's step does (a no-op for float32)."""
  a = tf.cast(tf.random.uniform([batch, n_visible]), dtype)
  w = tf.cast(tf.random.uniform([n_visible, n_hidden]), dtype)
  h = tf.cast(tf.random.uniform([batch, n_hidden]), dtype)
  first = lambda x: tf.reduce_sum(tf.cast(x, tf.float32)[0])

  @tf.function
  def loop():
    acc = tf.constant(0.0)
    for _ in tf.range(20):
      acc += first(tf.matmul(a, w))                    # v W
      acc += first(tf.matmul(h, w, transpose_b=True))  # h W^T
      acc += first(tf.matmul(a, h, transpose_a=True))  # v^T h
    return acc

  def run():
    loop().numpy()
    return 20 * 3 * 2 * n_visible * n_hidden * batch

  flops, elapsed = _timed(run, seconds)
  return flops / elapsed


def bf16_rates(tf, shapes: dict, seconds: float) -> dict:
  """--compute_dtype=bfloat16 against float32 at both shapes, 1 replica:
  CDTrainer.train_loop's examples/s (as trainer_rate, unpinned) and the
  matmul rate, per wall and per CPU second. The two dtypes alternate in
  rounds of seconds / 2, so a change of the machine's load hits both."""
  from trainer.models.rbm import maths as model_lib  # pylint: disable=g-import-not-at-top
  out = {"bf16:device": device_name(tf)}
  dtypes = ("float32", "bfloat16")
  for shape in ("seed", "large"):
    v, h, b = shapes[shape]
    strategy = tf.distribute.MirroredStrategy(["/cpu:0"])
    trainers = {dtype: _cd_trainer(tf, strategy, v, h, b, compute_dtype=dtype)
                for dtype in dtypes}
    dataset = tf.data.Dataset.from_tensors(
        _random_windows(tf, b, v)).repeat()
    done = {(kind, dtype): [0.0, 0.0, 0.0]  # work, wall s, CPU s
            for kind in ("train", "matmul") for dtype in dtypes}
    for _ in range(2):
      for dtype in dtypes:
        for kind in ("train", "matmul"):
          if kind == "train":
            rate = _train_loop_rate(tf, strategy, trainers[dtype], dataset, b,
                                    seconds / 2, unpin=True, steps=20)
          else:
            rate = matmul_rate_dtype(tf, v, h, b, seconds / 2, dtype)
          wall, cpu = _last_timing["wall"], _last_timing["cpu"]
          total = done[kind, dtype]
          total[0] += rate * wall
          total[1] += wall
          total[2] += cpu
    for (kind, dtype), (work, wall, cpu) in done.items():
      out[f"bf16:{kind}:{shape}:{dtype}"] = work / wall
      out[f"bf16:{kind}:{shape}:{dtype}:cpu"] = work / max(cpu, 1e-9)
  out["bf16"] = out["bf16:train:seed:bfloat16"]
  out["bf16:useful_flops_per_example:seed"] = model_lib.flops_per_cd_example(
      *shapes["seed"][:2], 1)
  out["bf16:useful_flops_per_example:large"] = model_lib.flops_per_cd_example(
      *shapes["large"][:2], 1)
  return out


def _report_bf16(r: dict, shapes: dict = SHAPES) -> None:
  """Prints bfloat16's figures next to float32's (issue 19, "ready for
  GPUs"): the trainer's examples/s and the matmul rate at both shapes."""
  print(f"\n== --compute_dtype=bfloat16 against float32: CDTrainer.train_loop "
        f"(CD-1, 1 replica) and the step's matmul shapes, on "
        f"{r['bf16:device']}")
  print(f"{'shape':>6} {'V':>5} {'H':>5} {'B':>5} {'f32 ex/s':>10} "
        f"{'bf16 ex/s':>10} {'bf16/f32':>8} {'per CPU s':>9} "
        f"{'f32 GFLOP/s':>11} {'bf16 GFLOP/s':>12} {'bf16/f32':>8} "
        f"{'bf16 useful':>11}")
  for shape in ("seed", "large"):
    v, h, b = shapes[shape]
    f32, bf16 = (r[f"bf16:train:{shape}:{d}"] for d in ("float32", "bfloat16"))
    per_cpu = (r[f"bf16:train:{shape}:bfloat16:cpu"] /
               r[f"bf16:train:{shape}:float32:cpu"])
    mm32, mm16 = (r[f"bf16:matmul:{shape}:{d}"]
                  for d in ("float32", "bfloat16"))
    useful = bf16 * r[f"bf16:useful_flops_per_example:{shape}"] / mm16
    print(f"{shape:>6} {v:5d} {h:5d} {b:5d} {f32:10.0f} {bf16:10.0f} "
          f"{bf16 / f32:8.2f} {per_cpu:9.2f} {mm32 / 1e9:11.1f} "
          f"{mm16 / 1e9:12.1f} {mm16 / mm32:8.2f} {useful:11.2f}")
  print("(bf16/f32 per CPU s: the trainers' ratio per CPU-second; bf16 "
        "useful: bfloat16's useful FLOP/s over its own matmul rate)")


if __name__ == "__main__":
  _define_flags()
  app.run(main)
