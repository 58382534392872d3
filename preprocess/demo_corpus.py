r"""Exports the demo corpus: the Bach chorales that ship inside music21.

    python -m preprocess.demo_corpus --output_dir=data/chorales

About 370 public-domain four-part chorales (350 distinct files), written as
MIDI files named after their BWV number. Idempotent: files already there are
kept. Runs on all cores (music21's export is the slow part, ~0.4 s a piece). The
few pieces music21 cannot export (badly formed repeats) are listed in
OUTPUT_DIR/export_errors.json and retried on the next run.
"""

import concurrent.futures
import json
import multiprocessing
import os

from absl import app
from absl import flags

FLAGS = flags.FLAGS
flags.DEFINE_string("output_dir", "data/chorales", "Folder for the .mid files.")
flags.DEFINE_integer("limit", 0, "Export only the first N chorales (0: all).",
                     lower_bound=0)
flags.DEFINE_integer("workers", 0, "Processes (0: one per core).", lower_bound=0)


def _export_one(name_and_path):
  name, path = name_and_path
  from music21 import corpus  # pylint: disable=g-import-not-at-top
  try:
    corpus.parse(name).write("midi", fp=path + ".part")
    os.replace(path + ".part", path)
    return name, None
  except Exception as e:  # pylint: disable=broad-except  # a few fail to export
    if os.path.exists(path + ".part"):
      os.remove(path + ".part")
    return name, f"{type(e).__name__}: {e}"


def export_chorales(output_dir: str, limit: int = 0, workers: int = 0) -> dict:
  """Writes the chorales as MIDI; returns {"written", "kept", "failed": {name: why}}.

  Raises:
    ImportError: music21 is missing (it is the "data" extra of setup.py).
  """
  try:
    from music21 import corpus  # pylint: disable=g-import-not-at-top
  except ImportError:
    raise ImportError("music21 is needed for the demo corpus: "
                      "pip install -e '.[data]'") from None
  names = sorted(set(corpus.chorales.Iterator(returnType="filename")))
  if limit:
    names = names[:limit]
  os.makedirs(output_dir, exist_ok=True)
  todo = []
  for name in names:
    path = os.path.join(output_dir, name.replace("/", "_") + ".mid")
    if not os.path.exists(path):
      todo.append((name, path))
  failed = {}
  if todo:
    # Spawned, not forked: a caller that holds threads (TensorFlow, a test
    # worker) can fork a child that dies before it runs (BrokenProcessPool).
    with concurrent.futures.ProcessPoolExecutor(
        workers or os.cpu_count(),
        mp_context=multiprocessing.get_context("spawn")) as pool:
      for name, error in pool.map(_export_one, todo, chunksize=4):
        if error:
          failed[name] = error
  errors_path = os.path.join(output_dir, "export_errors.json")
  if failed:
    with open(errors_path, "w") as f:
      json.dump(failed, f, indent=1, sort_keys=True)
  elif os.path.exists(errors_path):  # every piece is there now
    os.remove(errors_path)
  return {"written": len(todo) - len(failed), "kept": len(names) - len(todo),
          "failed": failed}


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
  result = export_chorales(FLAGS.output_dir, FLAGS.limit, FLAGS.workers)
  print(f"{FLAGS.output_dir}: {result['written']} written, {result['kept']} "
        f"already there, {len(result['failed'])} failed to export")
  for name, error in sorted(result["failed"].items()):
    print(f"  {name}: {error}")


if __name__ == "__main__":
  app.run(main)
