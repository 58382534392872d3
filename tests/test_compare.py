"""trainer.compare: CLI, data from a glob or a dataset, GCS samples, gallery."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from preprocess import pianoroll
from tests import fake_dataset
from tests import midi_builders
from trainer.comparison import lib as compare_lib
from trainer.generation import lib as generation
from trainer.generation import previews
from trainer.generation import storage as storage_lib

SPEC = fake_dataset.SMALL_SPEC
T = fake_dataset.SMALL_TIMESTEPS


def chorale_midi(seed: int) -> bytes:
  """A short four-voice piece in C major (quarters and eighths)."""
  rng = np.random.default_rng(seed)
  major = [0, 2, 4, 5, 7, 9, 11]
  notes = []
  for base in (48, 55, 60, 64):
    t = 0.0
    while t < 8:
      length = float(rng.choice([0.5, 1.0, 1.0, 2.0]))
      notes.append((base + major[int(rng.integers(7))], t, t + length))
      t += length
  return midi_builders.make_midi(notes)


def noise_midi(seed: int) -> bytes:
  rng = np.random.default_rng(seed)
  matrix = (rng.random((32, SPEC.n_columns)) < 0.5).astype(np.uint8)
  return pianoroll.matrix_to_midi_bytes(matrix, SPEC)


def write_files(folder, named_bytes):
  os.makedirs(folder, exist_ok=True)
  for name, data in named_bytes:
    with open(os.path.join(folder, name), "wb") as f:
      f.write(data)


def run_cli(*args, env=None):
  return subprocess.run(
      [sys.executable, "-m", "trainer.compare", *args], capture_output=True,
      text=True, env={**os.environ, **(env or {})}, timeout=300, check=False)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
  folder = tmp_path_factory.mktemp("corpus")
  write_files(folder, [(f"piece-{i:02d}.mid", chorale_midi(i))
                       for i in range(12)])
  return str(folder)


def test_cli_noise_fails_and_writes_json_and_figure(corpus, tmp_path):
  samples = str(tmp_path / "samples")
  write_files(samples, [(generation.sample_name(i), noise_midi(i))
                        for i in range(6)])
  out = str(tmp_path / "report" / "cmp.json")
  os.makedirs(os.path.dirname(out))
  done = run_cli(f"--samples={samples}", f"--data={corpus}/*.mid",
                 f"--output={out}")
  assert done.returncode == 0, done.stderr
  line = done.stdout.strip().splitlines()[-1]
  assert line.startswith("compare: ") and "worst: " in line
  with open(out) as f:
    result = json.load(f)
  assert result["summary"] == line
  assert result["num_samples"] == 6 and result["num_data"] == 12
  assert sum(r["meets_data"] for r in result["features"].values()) <= 4
  assert result["memorisation"] is None  # no dataset given
  with open(out[:-5] + ".png", "rb") as f:
    assert f.read(8) == b"\x89PNG\r\n\x1a\n"


@pytest.mark.parametrize("args, message", [
    (["--data=/nonexistent/*.mid"], "matches no file"),
    (["--data=/nonexistent/dataset"], "neither a MIDI glob nor a folder"),
    (["--samples=/nonexistent/samples"], "is not a folder"),
    (["--max_files=-1"], "--max_files=-1"),
    (["--transposed"], "--transposed reads a dataset"),
])
def test_usage_errors_are_one_line(corpus, tmp_path, args, message):
  samples = str(tmp_path / "s")
  write_files(samples, [("sample-000000.mid", chorale_midi(0))])
  defaults = {"--samples": samples, "--data": f"{corpus}/*.mid"}
  for arg in args:
    defaults.pop(arg.split("=")[0], None)
  argv = [f"{k}={v}" for k, v in defaults.items()] + args
  done = run_cli(*argv)
  assert done.returncode == 2, done.stderr
  assert message in done.stderr
  # TensorFlow's runtime may log its own start-up lines; ours is one line.
  ours = [line for line in done.stderr.splitlines() if "trainer.compare" in line]
  assert len(ours) == 1 and ours[0].startswith("trainer.compare: error: ")
  assert "Traceback" not in done.stderr
  assert not os.path.exists("/nonexistent")


def test_dataset_data_and_a_planted_copy(tmp_path):
  # Canonical, as preprocessing writes them (the noise of structured_windows
  # leaves articulate bits without play, which no MIDI file can hold).
  train = np.stack([pianoroll.canonicalize(w, SPEC)
                    for w in fake_dataset.structured_windows(60, seed=1)])
  data_dir = str(tmp_path / "data")
  fake_dataset.write_dataset(data_dir, train, train[:10])
  # Ten "pieces" of windows (write_dataset gives each its own source), plus
  # samples: one a copy of a training window, the rest noise.
  samples = str(tmp_path / "samples")
  named = [(generation.sample_name(i), noise_midi(i)) for i in range(4)]
  named.append((generation.sample_name(4),
                pianoroll.matrix_to_midi_bytes(train[7], SPEC)))
  write_files(samples, named)
  config = compare_lib.CompareConfig(samples=samples, data=data_dir,
                                     output=str(tmp_path / "c.json"))
  result = compare_lib.compare(config)
  memo = result["memorisation"]
  assert memo["share_samples_with_copy"] == pytest.approx(1 / 5)
  assert memo["train_windows"] == 60
  assert "20.0% samples copy a training window" in result["summary"]


def test_cli_reads_samples_from_gcs(corpus, gcs_bucket, tmp_path):
  store = storage_lib.open_storage(f"gs://{gcs_bucket}/job/samples")
  named = [(generation.sample_name(i), chorale_midi(100 + i)) for i in range(5)]
  store.write_many(named)
  out = str(tmp_path / "gcs.json")
  done = run_cli(f"--samples=gs://{gcs_bucket}/job/samples",
                 f"--data={corpus}/*.mid", f"--output={out}",
                 env={"STORAGE_EMULATOR_HOST": os.environ["STORAGE_EMULATOR_HOST"]})
  assert done.returncode == 0, done.stderr
  with open(out) as f:
    result = json.load(f)
  assert result["num_samples"] == 5
  # Samples drawn like the data: the note rate meets it.
  assert result["features"]["notes_per_second"]["meets_data"], result["summary"]


def make_gallery(folder, n=3):
  """A samples folder with a generation.json and its gallery, as generate writes."""
  config = generation.GenerateConfig(num_samples=n)
  store = storage_lib.open_storage(folder)
  store.write("generation.json", b"{}")
  records = []
  for i in range(n):
    matrix = fake_dataset.structured_windows(1, seed=i)[0]
    midi = pianoroll.matrix_to_midi_bytes(matrix, SPEC)
    notes = len(pianoroll.matrix_to_notes(matrix, SPEC))
    store.write(generation.sample_name(i), midi)
    records.append({"path": generation.sample_name(i), "notes": notes,
                    "duration_s": T * 0.125, "empty": notes == 0})
  return store, previews.write_previews(store, records, SPEC, config,
                                        "seed 0, window RBM")


def _without_meter(midi: bytes) -> bytes:
  """The file with its time signatures taken out (pretty_midi writes a 4/4)."""
  import io  # pylint: disable=g-import-not-at-top
  import mido  # pylint: disable=g-import-not-at-top
  song = mido.MidiFile(file=io.BytesIO(midi))
  for track in song.tracks:
    track[:] = [m for m in track if m.type != "time_signature"]
  out = io.BytesIO()
  song.save(file=out)
  return out.getvalue()


def test_samples_without_a_meter_count_bars_of_the_datas_mean_bar(tmp_path):
  """Pieces in 3/4 against the same notes with no time signature (as the
  samples are written): the same notes per bar, not 4/3 as many."""
  import pretty_midi  # pylint: disable=g-import-not-at-top
  data, samples = [], []
  for i in range(6):
    notes = [(60 + (i + k) % 7, k, k + 1) for k in range(24)]  # a quarter each
    plain = midi_builders.make_midi(notes)
    pm = pianoroll.parse_midi(plain)
    pm.time_signature_changes = [pretty_midi.TimeSignature(3, 4, 0.0)]
    data.append((f"waltz-{i}.mid", pianoroll.midi_to_bytes(pm)))
    samples.append((f"sample-{i:06d}.mid", _without_meter(plain)))
  write_files(tmp_path / "data", data)
  write_files(tmp_path / "samples", samples)
  result = compare_lib.compare(compare_lib.CompareConfig(
      samples=str(tmp_path / "samples"), data=str(tmp_path / "data/*.mid"),
      output=str(tmp_path / "c.json"), gallery=False))
  assert result["sample_bar_quarters"] == 3.0
  per_bar = result["features"]["notes_per_bar"]
  assert per_bar["data_mean"] == pytest.approx(3.0)
  assert per_bar["samples_mean"] == pytest.approx(3.0)


def test_compare_adds_data_and_figure_to_the_gallery(corpus, tmp_path):
  folder = str(tmp_path / "samples")
  store, index = make_gallery(folder)
  assert index.endswith("previews/index.html")
  first = store.read("previews/index.html").decode()
  assert "Audio: " in first and "Data:" not in first
  result = compare_lib.compare(compare_lib.CompareConfig(
      samples=folder, data=f"{corpus}/*.mid"))
  page = store.read("previews/index.html").decode()
  assert result["gallery"] == index
  assert result["summary"].replace("%", "") in page.replace("%", "").replace(
      "&gt;", ">")
  assert "comparison.png" in page and "Data: " in page
  excerpts = [n for n in store.list("previews/data-") if n.endswith(".png")]
  assert len(excerpts) == min(previews._DATA_EXCERPTS, 12)  # pylint: disable=protected-access
  # Same size as the samples' rolls.
  assert store.read(excerpts[0])[16:24] == store.read(
      "previews/sample-000000.png")[16:24]
  assert store.read("comparison.json") and store.read("comparison.png")


def test_a_users_own_gallery_is_left_alone(corpus, tmp_path):
  folder = str(tmp_path / "samples")
  write_files(folder, [("sample-000000.mid", chorale_midi(1)),
                       ("generation.json", b"{}")])
  os.makedirs(os.path.join(folder, "previews"))
  mine = b"<html>my own notes</html>"
  write_files(os.path.join(folder, "previews"), [("index.html", mine)])
  result = compare_lib.compare(compare_lib.CompareConfig(
      samples=folder, data=f"{corpus}/*.mid"))
  assert result["gallery"] is None
  with open(os.path.join(folder, "previews", "index.html"), "rb") as f:
    assert f.read() == mine


def test_sine_fallback_and_a_missing_soundfont(tmp_path):
  with pytest.raises(FileNotFoundError, match="soundfont"):
    previews.find_renderer(str(tmp_path / "none.sf2"))
  wav = previews.wav_bytes(chorale_midi(0), None)
  assert wav[:4] == b"RIFF" and len(wav) > 1000


def test_fluidsynth_renders_a_piano():
  path, renderer = previews.find_renderer()
  if path is None:
    pytest.skip(f"no FluidSynth or GM sound font here ({renderer})")
  assert "FluidSynth" in renderer
  midi = midi_builders.make_midi([(60, 0, 1)])
  piano = np.frombuffer(previews.wav_bytes(midi, path)[44:], np.int16)
  sine = np.frombuffer(previews.wav_bytes(midi, None)[44:], np.int16)
  assert np.abs(piano).max() > 1000
  # A piano is not a sine: its spectrum has overtones well above 261.6 Hz.
  spectrum = np.abs(np.fft.rfft(piano.astype(float)))
  freqs = np.fft.rfftfreq(len(piano), 1 / 22050)
  assert spectrum[freqs > 400].sum() > 0.05 * spectrum.sum()
  assert not np.array_equal(piano[:len(sine)], sine[:len(piano)])
