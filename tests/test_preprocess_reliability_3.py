"""Reliability, round 3, preprocessing: odd names, full disks, empty splits.

Each test names the case it covers and what the code before this change did
(checked by running it).
"""

import errno
import json
import os
import subprocess
import sys

from apache_beam.io import filebasedsink
from apache_beam.io import tfrecordio
import pytest

from common import cli
from preprocess import config as config_lib
from preprocess import outputs
from preprocess import pipeline
from preprocess import stats
from preprocess import steps
from tests import midi_builders

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CONFIG = config_lib.PreprocessConfig(eval_fraction=0.0, num_shards=1)
LATIN1_NAME = b"caf\xe9.mid"  # "café.mid" in Latin-1: not valid UTF-8


def piece(i=0) -> bytes:
  return midi_builders.make_midi(midi_builders.scale(40, low=50 + i))


def write_corpus(folder, n=2):
  folder.mkdir(parents=True, exist_ok=True)
  for i in range(n):
    (folder / f"p{i}.mid").write_bytes(piece(i))
  return folder


def write_latin1_file(folder):
  """A file whose name's bytes are not UTF-8 (made through a bytes path)."""
  fd = os.open(os.path.join(os.fsencode(folder), LATIN1_NAME),
               os.O_WRONLY | os.O_CREAT, 0o644)
  try:
    os.write(fd, piece(5))
  finally:
    os.close(fd)


def beam_temp_folders(folder) -> list:
  return sorted(n for n in os.listdir(folder) if n.startswith("beam-temp-"))


def run_main(*args, prelude=""):
  """preprocess.main in a subprocess; `prelude` runs first (a fault)."""
  env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
  code = (prelude + "\nimport runpy\n"
          "runpy.run_module('preprocess.main', run_name='__main__', "
          "alter_sys=True)\n")
  return subprocess.run([sys.executable, "-c", code, *args], cwd=ROOT, env=env,
                        capture_output=True, text=True, timeout=300)


def error_lines(stderr: str) -> list:
  """The CLI's own error lines (Beam's INFO log lines are left out)."""
  return [line for line in stderr.splitlines()
          if line.startswith("preprocess.main: error:")]


# --- case 1: a file name that is not UTF-8 is one rejected file. --------------


def test_a_non_utf8_file_name_is_one_rejected_file(tmp_path):
  # Before: Beam's coder failed on the name (UnicodeEncodeError, "surrogates
  # not allowed") and the whole run ended; dataset.json was never written.
  corpus, out = write_corpus(tmp_path / "corpus"), tmp_path / "out"
  write_latin1_file(corpus)
  counts = pipeline.run_pipeline([f"{corpus}/*.mid"], str(out), CONFIG)
  assert counts["files_seen"] == 3 and counts["converted"] == 2
  assert counts["failed_reasons"] == {"non_utf8_name": 1}
  with open(out / "errors-00000-of-00001.jsonl", encoding="utf-8") as f:
    [error] = [json.loads(line) for line in f]
  assert error["path"] == f"{corpus}/caf\\xe9.mid"  # shown safely, escaped
  assert "UTF-8" in error["message"] and "traceback" not in error
  assert beam_temp_folders(out) == []


def test_a_non_utf8_name_is_listed_printably_and_rejected_unread(tmp_path):
  write_latin1_file(tmp_path)
  [listed] = steps.list_files(f"{tmp_path}/*.mid")
  assert listed.path == f"{tmp_path}/caf\\xe9.mid"
  assert listed.key == "caf\\xe9.mid"
  assert listed.path.encode("utf-8")  # what Beam's coders need
  with pytest.raises(steps.NonUtf8Name, match="rename it"):
    steps.read_file(listed, CONFIG.max_file_bytes)
  # Never merged with a real file spelled like the escaped name (which only
  # ** lists: Beam's * does not match a backslash).
  (tmp_path / "caf\\xe9.mid").write_bytes(piece())
  listed = steps.list_files(f"{tmp_path}/**")
  assert len(listed) == len({steps.listing_identity(f) for f in listed}) == 2


def test_a_non_utf8_glob_is_a_usage_error():
  pattern = os.fsdecode(b"/data/caf\xe9/*.mid")  # as argv decodes it
  with pytest.raises(cli.UsageError, match=r"--input=/data/caf\\xe9/\*\.mid "
                     "is not valid UTF-8"):
    config_lib.RunConfig(input=(pattern,), output_dir="out")


@pytest.mark.slow
def test_cli_run_with_a_non_utf8_name_goes_on(tmp_path):
  # Before: exit code 1 after a 100-line traceback, no dataset.
  corpus, out = write_corpus(tmp_path / "corpus"), tmp_path / "out"
  write_latin1_file(corpus)
  done = run_main(f"--input={corpus}/*.mid", f"--output_dir={out}",
                  "--eval_fraction=0")
  assert done.returncode == 0, done.stderr[-3000:]
  assert ("3 files seen: 2 converted, 1 failed {'non_utf8_name': 1}"
          in done.stdout)
  assert beam_temp_folders(out) == []


# --- case 2: a full disk, a path too long: one line, no temporary folder. ---


def no_space(*args, **kwargs):
  raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


def test_a_full_disk_is_a_job_error_and_a_rerun_with_overwrite_works(
    tmp_path, monkeypatch):
  # Before: a RuntimeError ("OSError: [Errno 28] ... [while running
  # 'WriteTrain/...']") and three beam-temp-* folders left in --output_dir.
  corpus, out = write_corpus(tmp_path / "corpus"), tmp_path / "out"
  sink = tfrecordio._TFRecordUtil  # pylint: disable=protected-access
  monkeypatch.setattr(sink, "write_record", staticmethod(no_space))
  with pytest.raises(cli.JobError) as e:
    pipeline.run_pipeline([f"{corpus}/*.mid"], str(out), CONFIG)
  message = str(e.value)
  assert "no space left" in message and f"--output_dir={out}" in message
  assert "--overwrite" in message and "\n" not in message
  assert beam_temp_folders(out) == []
  assert not (out / "dataset.json").exists()
  monkeypatch.undo()  # space freed
  with pytest.raises(outputs.OutputExistsError, match="a run that did not "
                     "finish .*pass --overwrite"):
    pipeline.run_pipeline([f"{corpus}/*.mid"], str(out), CONFIG)
  counts = pipeline.run_pipeline([f"{corpus}/*.mid"], str(out), CONFIG,
                                 overwrite=True)
  assert counts["converted"] == 2 and counts["windows"]["train"] == 4


def test_overwrite_also_clears_temporary_folders_of_an_older_failed_run(
    tmp_path):
  # Before: beam-temp-* folders left by a failed run stayed for ever.
  corpus, out = write_corpus(tmp_path / "corpus"), tmp_path / "out"
  pipeline.run_pipeline([f"{corpus}/*.mid"], str(out), CONFIG)
  stale = out / "beam-temp-train-0123456789abcdef0123456789abcdef"
  stale.mkdir()
  (stale / "5b7d0a52-5d0e-4f6b-8f7e-2a8d8f1f0c3e.tfrecord").write_bytes(b"x")
  theirs = out / "beam-temp-notes"  # not named like Beam's: not ours
  theirs.mkdir()
  pipeline.run_pipeline([f"{corpus}/*.mid"], str(out), CONFIG, overwrite=True)
  assert beam_temp_folders(out) == ["beam-temp-notes"]


@pytest.mark.slow
def test_cli_full_disk_is_one_line_exit_1(tmp_path):
  # Before: exit 1 after ~220 lines of tracebacks (Beam's log and ours).
  corpus, out = write_corpus(tmp_path / "corpus"), tmp_path / "out"
  prelude = ("import errno, os\n"
             "from apache_beam.io import tfrecordio\n"
             "def no_space(*a, **k):\n"
             "  raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))\n"
             "tfrecordio._TFRecordUtil.write_record = staticmethod(no_space)\n")
  done = run_main(f"--input={corpus}/*.mid", f"--output_dir={out}",
                  prelude=prelude)
  assert done.returncode == 1, done.stderr[-3000:]
  assert "Traceback" not in done.stderr, done.stderr[-3000:]
  [line] = error_lines(done.stderr)
  assert "no space left" in line and str(out) in line
  assert beam_temp_folders(out) == []


def test_a_too_long_output_dir_component_says_to_shorten_it(tmp_path):
  # Before: "cannot be written (File name too long); choose a folder you can
  # write to" -- the folder was writable, its name too long.
  corpus = write_corpus(tmp_path / "corpus")
  out = tmp_path / ("x" * 300) / "out"
  with pytest.raises(cli.UsageError, match="too long.*shorter path"):
    pipeline.run_pipeline([f"{corpus}/*.mid"], str(out), CONFIG)


def long_output_dir(tmp_path) -> str:
  """A folder that can be made, but whose files' paths pass PATH_MAX (4096)."""
  path = str(tmp_path)
  while len(path) < 4040:
    path = os.path.join(path, "d" * min(200, 4040 - len(path)))
  return path


@pytest.mark.slow
def test_cli_output_paths_past_path_max_are_one_line_exit_2(tmp_path):
  # Before: exit 1 after ~200 lines of tracebacks: Beam could not make its
  # temporary folder (File name too long).
  corpus, out = write_corpus(tmp_path / "corpus"), long_output_dir(tmp_path)
  done = run_main(f"--input={corpus}/*.mid", f"--output_dir={out}")
  assert done.returncode == 2, done.stderr[-3000:]
  assert "Traceback" not in done.stderr, done.stderr[-3000:]
  [line] = error_lines(done.stderr)
  assert "too long" in line and "shorter path" in line
  assert beam_temp_folders(out) == []


# --- case 3: a split plan that leaves nothing to train on is refused. ---------


@pytest.mark.parametrize("kwargs,config,message", [
    ({"eval_inputs": "same"}, {}, "2 also matched by --eval_input"),
    ({"eval_inputs": "p0", "valid_inputs": "p1"}, {},
     "1 also matched by --eval_input, 1 also matched by --valid_input"),
    ({}, {"eval_fraction": 1.0}, "2 held out by --eval_fraction=1.0"),
    ({}, {"eval_fraction": 0.5, "valid_fraction": 0.5},
     "--eval_fraction=0.5 and --valid_fraction=0.5"),
])
def test_a_split_plan_without_training_files_is_refused(tmp_path, kwargs,
                                                        config, message):
  # Before: the run went through (exit 0) with 0 training windows; the
  # trainer then asked for "--batch_size <= 0".
  corpus, out = write_corpus(tmp_path / "corpus"), tmp_path / "out"
  glob = f"{corpus}/*.mid"
  globs = {"same": [glob], "p0": [f"{corpus}/p0.mid"],
           "p1": [f"{corpus}/p1.mid"]}
  with pytest.raises(cli.UsageError, match="nothing is left to train on") as e:
    pipeline.run_pipeline(
        [glob], str(out), config_lib.PreprocessConfig(**config),
        **{k: globs[v] for k, v in kwargs.items()})
  assert message in str(e.value) and "\n" not in str(e.value)
  assert not out.exists()


def test_a_corpus_the_hash_sends_entirely_to_eval_is_refused(tmp_path):
  corpus, out = tmp_path / "corpus", tmp_path / "out"
  corpus.mkdir()
  name = next(f"p{k}.mid" for k in range(1000)
              if steps.split_of(f"p{k}.mid", 0.1) == "eval")
  (corpus / name).write_bytes(piece())
  with pytest.raises(cli.UsageError, match="1 held out by --eval_fraction=0.1; "
                     "add files or lower"):
    pipeline.run_pipeline([f"{corpus}/*.mid"], str(out),
                          config_lib.PreprocessConfig())
  # One file for training is enough; non-MIDI files do not count.
  (corpus / "notes.txt").write_text("x")
  write_corpus(corpus, n=1)
  pipeline.run_pipeline([f"{corpus}/*"], str(out),
                        config_lib.PreprocessConfig())


@pytest.mark.slow
def test_cli_eval_input_equal_to_input_is_one_line_exit_2(tmp_path):
  corpus, out = write_corpus(tmp_path / "corpus"), tmp_path / "out"
  glob = f"{corpus}/*.mid"
  done = run_main(f"--input={glob}", f"--eval_input={glob}",
                  f"--output_dir={out}")
  assert done.returncode == 2, done.stderr[-3000:]
  [line] = done.stderr.strip().splitlines()
  assert "nothing is left to train on" in line and "--eval_input" in line
  assert not out.exists()


# --- case 4: a file reached twice (a symlinked folder) is read once. ----------


def test_a_folder_also_reached_through_a_symlink_is_read_once(tmp_path):
  # Before: 4 files seen, 4 converted, every window twice.
  corpus, out = write_corpus(tmp_path / "corpus"), tmp_path / "out"
  link = tmp_path / "link"
  os.symlink(corpus, link)
  counts = pipeline.run_pipeline([f"{corpus}/*.mid", f"{link}/*.mid"],
                                 str(out), CONFIG)
  assert counts["files_seen"] == 2 and counts["converted"] == 2
  assert counts["windows"]["train"] == 4
  assert counts["duplicates"] == 2
  assert "2 duplicate listings read once" in stats.summary(counts, str(out))


def test_an_eval_file_reached_through_a_symlink_is_not_trained_on(tmp_path):
  # Before: p0.mid was in train (as corpus/p0.mid) and in eval (as
  # link/p0.mid): the test set leaked into training.
  corpus, out = write_corpus(tmp_path / "corpus"), tmp_path / "out"
  link = tmp_path / "link"
  os.symlink(corpus, link)
  counts = pipeline.run_pipeline([f"{corpus}/*.mid"], str(out), CONFIG,
                                 eval_inputs=[f"{link}/p0.mid"])
  assert counts["files"] == {"train": 1, "eval": 1, "valid": 0}
  assert counts["duplicates"] == 1


def test_file_identity_follows_symlinks_but_keeps_broken_ones_apart(tmp_path):
  (tmp_path / "a.mid").write_bytes(piece())
  os.symlink(tmp_path / "a.mid", tmp_path / "b.mid")
  os.symlink(tmp_path / "gone1.mid", tmp_path / "c.mid")
  os.symlink(tmp_path / "gone1.mid", tmp_path / "d.mid")
  listed = steps.list_files(f"{tmp_path}/*.mid")
  by_name = {os.path.basename(f.path): steps.listing_identity(f)
             for f in listed}
  assert by_name["a.mid"] == by_name["b.mid"]
  assert by_name["c.mid"] != by_name["d.mid"]  # two unreadable files


# --- case 5: gs://bucket//x is refused, naming the flag. ----------------------


@pytest.mark.parametrize("flag,kwargs", [
    ("--input", {"input": ("gs://b//corpus/*.mid",), "output_dir": "gs://b/o"}),
    ("--output_dir", {"input": ("gs://b/c/*.mid",), "output_dir": "gs://b//o"}),
    ("--eval_input", {"input": ("gs://b/c/*.mid",), "output_dir": "gs://b/o",
                      "eval_input": ("gs://b/t//*.mid",)}),
])
def test_gs_paths_with_an_empty_folder_name_are_refused(flag, kwargs):
  # Before: accepted; objects were written under a name starting with "/"
  # ("gs://b//o/train-..."), which consoles and gsutil show differently.
  with pytest.raises(cli.UsageError, match=f"{flag}=gs://b\\S*//\\S* has an "
                     "empty folder name") as e:
    config_lib.RunConfig(**kwargs)
  assert "gs://b/" in str(e.value) and "\n" not in str(e.value)


def test_gs_paths_that_stay_fine():
  for path in ("gs://b/o/", "gs://b/corpus/**", "gs://b/c/*.mid"):
    config_lib.check_cloud_path("--output_dir", path)
  with pytest.raises(cli.UsageError, match="no bucket"):
    config_lib.check_cloud_path("--output_dir", "gs:///o")


def test_output_dir_with_double_slash_is_refused_before_any_gcs_access(
    monkeypatch):
  # Refused by the launch checks, before the output folder is looked at.
  def no_gcs(*args, **kwargs):
    raise AssertionError("GCS was accessed")
  monkeypatch.setattr(outputs, "prepare_output_dir", no_gcs)
  monkeypatch.setattr(steps, "match_pattern", no_gcs)
  with pytest.raises(cli.UsageError, match="--output_dir=gs://b//o has"):
    pipeline.run_pipeline(["gs://b/c/*.mid"], "gs://b//o", CONFIG)


def test_a_failed_run_on_gcs_leaves_no_temporary_objects(gcs_bucket,
                                                         monkeypatch):
  # Before: every shard stayed in gs://.../dataset/beam-temp-*/ objects.
  from google.cloud import storage  # pylint: disable=g-import-not-at-top
  bucket = storage.Client().bucket(gcs_bucket)
  for i in range(2):
    bucket.blob(f"corpus/p{i}.mid").upload_from_string(piece(i))

  def broken_finalize(*args, **kwargs):
    raise ValueError("a bug while finalizing")
  monkeypatch.setattr(filebasedsink.FileBasedSink, "finalize_write",
                      broken_finalize)
  with pytest.raises(ValueError, match="a bug while finalizing"):
    pipeline.run_pipeline([f"gs://{gcs_bucket}/corpus/*.mid"],
                          f"gs://{gcs_bucket}/dataset", CONFIG)
  names = sorted(b.name for b in bucket.list_blobs(prefix="dataset/"))
  assert names == ["dataset/" + outputs.OUTPUTS_MARKER], names
