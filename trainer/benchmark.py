r"""Benchmark: the CD trainer against this machine's matmul rate and the seed.

    python -m trainer.benchmark --data_dir=out/dataset

Measured in one run:
  * examples/s of CDTrainer's CD-1 step (the real training step, in-memory
    data) at the seed's shape (V=2340, H=50, B=100) and a large shape
    (H=1024, B=1024), on 1 replica and on 2 (MirroredStrategy on 2 logical
    CPUs);
  * this machine's fp32 matmul FLOP/s on the step's own matmul shapes, and the
    trainer's useful FLOP/s (model.flops_per_cd_example) as a fraction of it;
  * the seed's own loop, reimplemented faithfully in TF1 style (graph mode,
    one session.run per batch of at most 100 windows, batches cut per song) on
    the same corpus: its examples/s, and ours against it.
Goals (issue 3): >= 50% of the matmul rate at the large shape; >= 5x the
seed's loop at the seed's shape; 2 replicas >= 0.8x of 1 replica.
"""

import collections
import time

from absl import app
from absl import flags
import numpy as np

FLAGS = flags.FLAGS
flags.DEFINE_string("data_dir", "out/dataset",
                    "Preprocessed corpus for the seed-loop comparison.")
flags.DEFINE_float("seconds", 6.0, "Timed seconds per measurement.")

SEED_SHAPE = (2340, 50, 100)
LARGE_SHAPE = (2340, 1024, 1024)


def _timed(fn, seconds: float, warmup: int = 2) -> tuple:
  """Calls fn() (which returns work units done) until `seconds` pass."""
  for _ in range(warmup):
    fn()
  done, start = 0, time.perf_counter()
  while time.perf_counter() - start < seconds:
    done += fn()
  return done, time.perf_counter() - start


def trainer_rate(tf, devices, n_visible, n_hidden, batch, seconds) -> float:
  """examples/s of CDTrainer.train_loop on an in-memory batch."""
  from trainer import config as config_lib  # pylint: disable=g-import-not-at-top
  from trainer import model as model_lib  # pylint: disable=g-import-not-at-top
  from trainer import train  # pylint: disable=g-import-not-at-top
  strategy = tf.distribute.MirroredStrategy(devices)
  rng = np.random.default_rng(0)
  windows = tf.constant(rng.random((batch, n_visible)) < 0.05, tf.float32)
  with strategy.scope():
    rbm = model_lib.RBM(n_visible, n_hidden, seed=0)
  trainer = train.CDTrainer(strategy, rbm,
                            config_lib.TrainConfig(num_hidden=n_hidden,
                                                   batch_size=batch),
                            batch, n_visible)
  iterator = iter(strategy.experimental_distribute_dataset(
      tf.data.Dataset.from_tensors(windows).repeat()))
  steps = tf.constant(20)

  def run():
    trainer.train_loop(iterator, steps)["steps"].numpy()
    return 20 * batch

  examples, elapsed = _timed(run, seconds)
  return examples / elapsed


def matmul_rate(tf, n_visible, n_hidden, batch, seconds) -> float:
  """fp32 FLOP/s of the CD step's matmul shapes, run back to back."""
  a = tf.random.uniform([batch, n_visible])
  w = tf.random.uniform([n_visible, n_hidden])
  h = tf.random.uniform([batch, n_hidden])

  @tf.function
  def loop():
    acc = tf.constant(0.0)
    for _ in tf.range(20):
      acc += tf.reduce_sum(tf.matmul(a, w)[0])                    # v W
      acc += tf.reduce_sum(tf.matmul(h, w, transpose_b=True)[0])  # h W^T
      acc += tf.reduce_sum(tf.matmul(a, h, transpose_a=True)[0])  # v^T h
    return acc

  def run():
    loop().numpy()
    return 20 * 3 * 2 * n_visible * n_hidden * batch

  flops, elapsed = _timed(run, seconds)
  return flops / elapsed


def songs_from_dataset(data_dir: str) -> list:
  """Training windows grouped by source file: the seed trains song by song."""
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  from preprocess import records  # pylint: disable=g-import-not-at-top
  from trainer import data  # pylint: disable=g-import-not-at-top
  spec = data.load_dataset_spec(data_dir)
  songs = collections.defaultdict(list)
  for path in data.split_files(data_dir, "train"):
    for raw in tf.data.TFRecordDataset(path):
      ex = records.parse_example(raw.numpy())
      songs[ex["source"]].append(records.unpack_window(
          ex["window"], spec.num_timesteps, spec.n_columns).reshape(-1))
  return [np.asarray(s, np.float32) for _, s in sorted(songs.items())]


def seed_loop_rate(tf, songs, n_hidden, batch, seconds) -> float:
  """The blog post's training loop, TF1 style, as it was written."""
  n_visible = songs[0].shape[1]
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
        for i in range(0, len(song), batch):
          tr_x = song[i:i + batch]
          sess.run(updt, feed_dict={x: tr_x})
          n += len(tr_x)
      return n

    examples, elapsed = _timed(epoch, seconds, warmup=1)
  return examples / elapsed


def our_rate_on_songs(tf, songs, n_hidden, batch, seconds) -> float:
  """The trainer on the same windows, batched across songs as it trains."""
  from trainer import config as config_lib  # pylint: disable=g-import-not-at-top
  from trainer import model as model_lib  # pylint: disable=g-import-not-at-top
  from trainer import train  # pylint: disable=g-import-not-at-top
  windows = np.concatenate(songs)
  n_visible = windows.shape[1]
  strategy = tf.distribute.MirroredStrategy(["/cpu:0"])
  with strategy.scope():
    rbm = model_lib.RBM(n_visible, n_hidden, windows.mean(0), seed=0)
  trainer = train.CDTrainer(strategy, rbm, config_lib.TrainConfig(), batch,
                            n_visible)
  ds = (tf.data.Dataset.from_tensor_slices(windows).shuffle(len(windows), seed=0)
        .repeat().batch(batch, drop_remainder=True).prefetch(tf.data.AUTOTUNE))
  iterator = iter(strategy.experimental_distribute_dataset(ds))
  steps = tf.constant(50)

  def run():
    trainer.train_loop(iterator, steps)["steps"].numpy()
    return 50 * batch

  examples, elapsed = _timed(run, seconds)
  return examples / elapsed


def _verdict(ok: bool) -> str:
  return "PASS" if ok else "MISS"


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
  from trainer import distribute  # pylint: disable=g-import-not-at-top
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  from trainer import model as model_lib  # pylint: disable=g-import-not-at-top
  distribute.use_logical_cpus(2)
  seconds = FLAGS.seconds
  rows = {}
  for name, (v, h, b) in (("seed", SEED_SHAPE), ("large", LARGE_SHAPE)):
    one = trainer_rate(tf, ["/cpu:0"], v, h, b, seconds)
    two = trainer_rate(tf, ["/cpu:0", "/cpu:1"], v, h, b, seconds)
    mm = matmul_rate(tf, v, h, b, seconds)
    useful = model_lib.flops_per_cd_example(v, h, 1)
    rows[name] = (v, h, b, one, two, mm, useful)
  songs = songs_from_dataset(FLAGS.data_dir)
  seed_rate = seed_loop_rate(tf, songs, 50, 100, seconds)
  ours_on_songs = our_rate_on_songs(tf, songs, 50, 100, seconds)

  print(f"{'shape':>6} {'V':>5} {'H':>5} {'B':>5} {'1 replica ex/s':>15} "
        f"{'2 replicas ex/s':>16} {'2/1':>5} {'matmul GFLOP/s':>15} "
        f"{'useful GFLOP/s':>15} {'fraction':>8}")
  for name, (v, h, b, one, two, mm, useful) in rows.items():
    print(f"{name:>6} {v:5d} {h:5d} {b:5d} {one:15.0f} {two:16.0f} "
          f"{two / one:5.2f} {mm / 1e9:15.1f} {one * useful / 1e9:15.1f} "
          f"{one * useful / mm:8.2f}")
  print(f"seed's own loop (TF1 graph, session.run per batch, per song, "
        f"{sum(map(len, songs))} windows in {len(songs)} songs): "
        f"{seed_rate:.0f} examples/s")
  print(f"this trainer on the same windows (CD-1, H=50, B=100, 1 replica): "
        f"{ours_on_songs:.0f} examples/s")
  _, _, _, one_l, two_l, mm_l, useful_l = rows["large"]
  _, _, _, one_s, two_s, _, _ = rows["seed"]
  goals = [
      ("fraction of matmul rate at the large shape", one_l * useful_l / mm_l, 0.5),
      ("speed-up over the seed's loop at the seed's shape",
       ours_on_songs / seed_rate, 5.0),
      ("2 replicas / 1 replica, seed shape", two_s / one_s, 0.8),
      ("2 replicas / 1 replica, large shape", two_l / one_l, 0.8),
  ]
  for label, value, goal in goals:
    print(f"{label}: {value:.2f} (goal >= {goal}: {_verdict(value >= goal)})")


if __name__ == "__main__":
  app.run(main)
