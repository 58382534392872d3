"""The preprocess.main entry point, as a user runs it: a subprocess.

The one multi-process DirectRunner run of the suite is here: dead letters,
stats and counters then cross process boundaries, as they do on Dataflow.
"""

import json
import os
import subprocess
import sys

from preprocess import records
from tests import midi_builders

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def run_main(*args):
  env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
  return subprocess.run([sys.executable, "-m", "preprocess.main", *args],
                        cwd=ROOT, env=env, capture_output=True, text=True,
                        timeout=300)


def test_multi_process_run_then_refusal_to_overwrite(tmp_path):
  corpus, out = tmp_path / "corpus", str(tmp_path / "out")
  corpus.mkdir()
  for i in range(3):
    (corpus / f"p{i}.mid").write_bytes(
        midi_builders.make_midi(midi_builders.scale(45, low=50 + i)))
  (corpus / "broken.mid").write_bytes(b"MThd\x00\x00\x00\x06garbage")
  (corpus / "notes.txt").write_text("not music")
  # Overlapping globs: every file is still seen once.
  args = [f"--input={corpus}/*.mid,{corpus}/*", f"--output_dir={out}",
          "--eval_fraction=0", "--num_shards=1",
          # Beam options, in both spellings
          "--runner", "DirectRunner", "--direct_num_workers=2",
          "--direct_running_mode", "multi_processing"]
  done = run_main(*args)
  assert done.returncode == 0, done.stderr[-3000:]
  assert "5 files seen: 3 converted, 1 failed {'corrupt_midi': 1}, " \
         "1 skipped {'not_midi': 1}" in done.stdout
  assert ("windows: train 9 from 3 files, eval 0 from 0 files, valid 0 from "
          "0 files") in done.stdout
  with open(os.path.join(out, "dataset.json")) as f:
    spec = records.DatasetSpec.from_json(f.read())
  assert spec.counts["windows"] == {"train": 9, "eval": 0, "valid": 0}
  # No valid split asked for: no valid shards written.
  assert spec.counts["shards"] == ["eval-00000-of-00001.tfrecord",
                                   "train-00000-of-00001.tfrecord"]
  with open(os.path.join(out, "errors-00000-of-00001.jsonl")) as f:
    errors = [json.loads(line) for line in f]
  assert [(os.path.basename(e["path"]), e["reason"]) for e in errors] == [
      ("broken.mid", "corrupt_midi")]

  again = run_main(*args)
  assert again.returncode != 0
  assert "already holds a dataset" in again.stderr
  assert "--overwrite" in again.stderr and "Traceback" not in again.stderr


def test_bad_flags_are_named_before_anything_runs(tmp_path):
  out = str(tmp_path / "out")
  typo = run_main("--input=x/*.mid", f"--output_dir={out}", "--num_timestep=3")
  assert typo.returncode != 0 and "['--num_timestep=3']" in typo.stderr
  bad = run_main(f"--input={tmp_path}/none*.mid", f"--output_dir={out}")
  assert bad.returncode != 0 and "none*.mid' matches no file" in bad.stderr
  config = run_main(f"--input={tmp_path}/*.mid", f"--output_dir={out}",
                    "--stride=0")
  assert config.returncode != 0 and "stride=0 must be >= 1" in config.stderr
  assert not os.path.exists(out)


def test_split_mistakes_are_one_line_usage_errors(tmp_path):
  corpus, out = tmp_path / "corpus", str(tmp_path / "out")
  corpus.mkdir()
  (corpus / "a.mid").write_bytes(
      midi_builders.make_midi(midi_builders.scale(30)))
  glob = f"{corpus}/*.mid"
  for args, message in (
      (["--eval_fraction=0.6", "--valid_fraction=0.5"],
       "--eval_fraction=0.6 + --valid_fraction=0.5 exceed 1"),
      (["--valid_fraction=1.5"], "--valid_fraction=1.5 must be in [0, 1]"),
      ([f"--eval_input={glob}", "--eval_fraction=0.2"],
       "--eval_fraction=0.2 and --eval_input are both given"),
      ([f"--eval_input={glob}", f"--valid_input={corpus}/a*"],
       f"{corpus}/a.mid is matched by both --eval_input and --valid_input"),
      ([f"--valid_input={corpus}/none*.mid"],
       f"--valid_input glob '{corpus}/none*.mid' matches no file")):
    done = run_main(f"--input={glob}", f"--output_dir={out}", *args)
    assert done.returncode == 2, (args, done.stderr[-2000:])
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0], (args, done.stderr)
  assert not os.path.exists(out)
