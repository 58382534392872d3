"""trainer.compare on whole-piece datasets (the RNN-RBM's) and on the grid and
quantisation of the model's dataset."""

import json
import os

import numpy as np
import pytest

from preprocess import pianoroll
from tests import fake_dataset
from tests import midi_builders
from trainer.comparison import lib as compare_lib
from trainer.generation import lib as generation
from trainer.comparison import features as mf
from trainer.generation import previews
from trainer.generation import storage as storage_lib

SPEC = fake_dataset.PIECE_SPEC  # roll, 12 pitches, quarter-note grid
SPAN = mf.span_steps(SPEC.steps_per_quarter)  # 4 bars: 16 quarters


def write_files(folder, named_bytes):
  os.makedirs(folder, exist_ok=True)
  for name, data in named_bytes:
    with open(os.path.join(folder, name), "wb") as f:
      f.write(data)


def noise_piece(rng, length=40):
  return (rng.random((length, SPEC.n_columns)) < 0.3).astype(np.uint8)


@pytest.fixture(scope="module")
def pieces_dataset(tmp_path_factory):
  """12 training pieces (+-2 semitone copies) and 3 held out, 24-60 steps."""
  folder = str(tmp_path_factory.mktemp("pieces"))
  train = fake_dataset.cycle_pieces(range(24, 60, 3), seed=1)
  heldout = fake_dataset.cycle_pieces([30, 41, 52], seed=2)
  fake_dataset.write_piece_dataset(folder, train, heldout, transpose=2)
  return folder, train, heldout


def test_a_sequence_dataset_against_itself(pieces_dataset, tmp_path):
  folder, train, heldout = pieces_dataset
  samples = str(tmp_path / "samples")
  write_files(samples, [(generation.sample_name(i),
                         pianoroll.matrix_to_midi_bytes(p, SPEC))
                        for i, p in enumerate(train + heldout)])
  result = compare_lib.compare(compare_lib.CompareConfig(
      samples=samples, data=folder, output=str(tmp_path / "c.json")))
  # One piece per untransposed sequence, whole: not windows, not copies.
  assert result["num_data"] == len(train) + len(heldout)
  assert result["grid"] == {"steps_per_quarter": 1, "quantize": "round",
                            "from": "dataset"}
  for name, r in result["features"].items():
    # The same pieces read from MIDI and from the records: the same features.
    assert r["relative_difference"] == pytest.approx(0, abs=1e-12), name
    # Not 1: the inter-set distances hold each piece's 0 to itself.
    assert r["overlap"] > 0.9, name
    assert r["meets_data"], name
  memo = result["memorisation"]
  # Every training piece is its own copy; the held-out ones are not.
  assert memo["span_steps"] == SPAN and memo["span_bars"] == 4
  assert memo["share_samples_with_copy"] == pytest.approx(
      len(train) / (len(train) + len(heldout)))
  # Spans at every offset of the 5 copies of each training piece.
  assert memo["train_spans"] == 5 * sum(len(p) - SPAN + 1 for p in train)
  assert "4-bar training span" in result["summary"]


def test_a_planted_span_is_found_at_any_offset(pieces_dataset, tmp_path):
  folder, train, _ = pieces_dataset
  rng = np.random.default_rng(7)
  copy = noise_piece(rng)
  # From a transposed training copy, off the bar lines on both sides.
  copy[5:5 + SPAN] = fake_dataset.transposed(train[3], -2)[9:9 + SPAN]
  near = noise_piece(rng)
  near[3:3 + SPAN] = train[0][:SPAN]
  near[10, 4] ^= 1  # one bit off: not a copy
  pieces = [noise_piece(rng) for _ in range(3)] + [copy, near]
  samples = str(tmp_path / "samples")
  write_files(samples, [(generation.sample_name(i),
                         pianoroll.matrix_to_midi_bytes(p, SPEC))
                        for i, p in enumerate(pieces)])
  result = compare_lib.compare(compare_lib.CompareConfig(
      samples=samples, data=folder, output=str(tmp_path / "c.json")))
  memo = result["memorisation"]
  assert memo["share_samples_with_copy"] == pytest.approx(1 / 5)
  assert memo["nearest_distance_min"] == 0
  assert "20.0% samples copy a 4-bar training span" in result["summary"]


def test_nearest_span_distance_is_exact_and_stays_inside_pieces():
  rng = np.random.default_rng(3)
  train = [noise_piece(rng, 20), noise_piece(rng, 25)]
  exact = train[1][6:6 + SPAN]
  one_off = exact.copy()
  one_off[2, 5] ^= 1
  # The end of one piece and the start of the next: adjacent in memory only.
  seam = np.concatenate([train[0][-8:], train[1][:8]])
  queries = np.stack([exact, one_off, seam])
  distances = mf.nearest_span_distance(queries, train, chunk=2)
  brute = [min(int(np.sum(q != p[o:o + SPAN])) for p in train
               for o in range(len(p) - SPAN + 1)) for q in queries]
  assert distances.tolist() == brute
  assert distances[0] == 0 and distances[1] == 1 and distances[2] > 0
  memo = mf.span_memorisation([seam, exact], train, SPEC.steps_per_quarter)
  assert memo["share_samples_with_copy"] == 0.5
  assert memo["share_spans_copied"] == 0.5


def test_a_large_corpus_gets_fewer_distance_spans_and_the_same_copy_check(
    monkeypatch):
  rng = np.random.default_rng(5)
  train = [noise_piece(rng, 60) for _ in range(4)]
  samples = [noise_piece(rng, 40) for _ in range(30)] + [train[2][5:45]]
  full = mf.span_memorisation(samples, train, 2, max_queries=40)
  monkeypatch.setattr(mf, "MIN_SPAN_QUERIES", 8)
  # 4 x 29 training spans of 32 steps: 3,712 products per query span.
  cut = mf.span_memorisation(samples, train, 2, max_queries=40,
                             max_work=3712 * 10)
  floor = mf.span_memorisation(samples, train, 2, max_queries=40,
                               max_work=1)
  # One span per sample piece (31) until the work bound cuts them.
  assert [m["distance_spans"] for m in (full, cut, floor)] == [31, 10, 8]
  for key in ("share_samples_with_copy", "share_spans_copied", "spans",
              "train_spans", "nearest_distance_min"):
    assert cut[key] == full[key] == floor[key]


def test_the_held_out_pieces_own_copy_rate_is_reported_beside_the_samples():
  # A folk corpus's tunes share formulas: some held-out tunes hold a
  # training span note for note, so the samples' rate needs a reference.
  # Held-out pieces are cut to the samples' median length (40 frames).
  rng = np.random.default_rng(6)
  train = [noise_piece(rng, 60) for _ in range(3)]
  samples = [noise_piece(rng, 40) for _ in range(3)]
  heldout = [np.concatenate([train[1][10:50], noise_piece(rng, 30)]),
             np.concatenate([noise_piece(rng, 45), train[0][:40]]),
             noise_piece(rng, 50), noise_piece(rng, 50)]
  memo = mf.span_memorisation(samples, train, 2, heldout)
  # The second piece's copy starts after its first 40 frames: cut off.
  assert memo["heldout_share_with_copy"] == 0.25
  assert memo["share_samples_with_copy"] == 0.0
  assert "0.0% samples copy a 4-bar training span (held-out pieces 25.0%)" in (
      mf.summary_line({}, memo))
  assert "held-out" not in mf.summary_line(
      {}, mf.span_memorisation(samples, train, 2))


def _compare_with_heldout(tmp_path, train, heldout, samples):
  folder = str(tmp_path / "dataset")
  fake_dataset.write_piece_dataset(folder, train, heldout)
  write_files(str(tmp_path / "samples"),
              [(generation.sample_name(i),
                pianoroll.matrix_to_midi_bytes(p, SPEC))
               for i, p in enumerate(samples)])
  return compare_lib.compare(compare_lib.CompareConfig(
      samples=str(tmp_path / "samples"), data=folder,
      output=str(tmp_path / "c.json")))


def test_held_out_pieces_like_the_training_ones_meet_every_feature(tmp_path):
  train = fake_dataset.cycle_pieces(range(24, 60, 3), seed=1)
  # Samples longer than every piece: the held-out pieces stay whole.
  result = _compare_with_heldout(tmp_path, train, train,
                                 fake_dataset.cycle_pieces([60] * 4, seed=5))
  baseline = result["heldout_baseline"]
  # The same pieces on both sides: nothing for them to miss.
  assert baseline == {"pieces": len(train), "train_pieces": len(train),
                      "features_met": 14, "features": 14, "missed": {}}
  assert ("the corpus's held-out pieces meet 14/14 against its training "
          "pieces;") in result["summary"]
  with open(tmp_path / "c.json") as f:
    assert json.load(f)["heldout_baseline"] == baseline


def test_a_feature_the_held_out_pieces_miss_is_named(tmp_path):
  train = fake_dataset.cycle_pieces(range(24, 60, 3), seed=1)
  # Held-out pieces with rests: two of every eight steps silent.
  rests = [p.copy() for p in fake_dataset.cycle_pieces([40] * 4, seed=2)]
  for p in rests:
    p[6::8] = 0
    p[7::8] = 0
  result = _compare_with_heldout(tmp_path, train, rests,
                                 fake_dataset.cycle_pieces([60] * 4, seed=5))
  baseline = result["heldout_baseline"]
  assert baseline["pieces"] == 4 and baseline["train_pieces"] == len(train)
  assert baseline["features_met"] < 14
  assert baseline["missed"]["silent_share"] > 1.0  # +25% of steps vs ~0
  assert "polyphony" in baseline["missed"] or (
      "polyphony_histogram" in baseline["missed"])
  assert "against its training pieces (missing " in result["summary"]
  assert "silent_share +" in result["summary"].split("(missing ")[1]


def _scale(length, start):
  """A rising scale of 4-step notes (one per bar of the 1-step grid)."""
  piece = np.zeros((length, SPEC.n_columns), np.uint8)
  steps = np.arange(length)
  piece[steps, (steps // 4 + start) % SPEC.n_columns] = 1
  return piece


@pytest.mark.parametrize("sample_steps,pitch_count", [(20, 0.0), (60, 1.4)])
def test_held_out_pieces_are_cut_to_the_samples_lengths(sample_steps,
                                                        pitch_count, tmp_path):
  # Pitch count grows with length: 5 pitches in 20 steps, 12 in 60. Against
  # 20-step training pieces, 60-step held-out pieces read 12 / 5 - 1 = +140%
  # unless cut to 20-step samples, as the samples would be measured.
  train = [_scale(20, k) for k in range(6)]
  heldout = [_scale(60, k) for k in range(6)]
  records_ = lambda pieces: [(f"p{i}", 0, 0, p) for i, p in enumerate(pieces)]
  dataset = compare_lib.Dataset(
      fake_dataset.write_piece_dataset(str(tmp_path), train, heldout),
      records_(train), records_(heldout))
  baseline = compare_lib._heldout_baseline(
      [("s", mf.piece_from_matrix(_scale(sample_steps, 0), SPEC))], dataset,
      seed=0)
  assert baseline["pieces"] == baseline["train_pieces"] == 6
  assert baseline.get("missed", {}).get("pitch_count", 0.0) == (
      pytest.approx(pitch_count))
  assert compare_lib._heldout_baseline([], None, 0) is None


def test_four_bars_of_silence_are_not_a_copy():
  rng = np.random.default_rng(7)
  train = [np.concatenate([noise_piece(rng, 30), np.zeros((20, 12),
                                                          np.uint8)])]
  rest = np.concatenate([noise_piece(rng, 10), np.zeros((18, 12), np.uint8),
                         noise_piece(rng, 10)])
  quote = np.concatenate([noise_piece(rng, 5), train[0][3:23]])
  memo = mf.span_memorisation([rest, quote], train, 1, [rest])  # 16 steps
  assert memo["share_samples_with_copy"] == 0.5  # the quote, not the rest
  assert memo["heldout_share_with_copy"] == 0.0
  windows = mf.memorisation(
      [mf.sample_windows(rest, 4)], np.zeros((3, 48), np.uint8))
  assert windows["share_samples_with_copy"] == 0.0
  assert windows["nearest_distance_min"] == 0


def test_a_span_is_four_bars_whatever_the_grid():
  # 8th notes: 4 bars are 32 steps (the report once read "8-bar").
  rng = np.random.default_rng(4)
  train = [noise_piece(rng, 40)]
  memo = mf.span_memorisation([train[0][3:35]], train, 2)
  assert memo["span_steps"] == 32 and memo["span_bars"] == 4
  assert memo["share_samples_with_copy"] == 1.0
  assert "4-bar training span" in mf.summary_line({}, memo)


# Two 8th notes per beat in one voice, then a held half note: on a
# quarter-note grid "round" gives every 8th a beat of its own (the off-beat
# ones a step late), "sample" keeps the note sounding on each beat.
def eighths_midi(base: int) -> bytes:
  notes = [(base + i % 3, 0.5 * i, 0.5 * (i + 1)) for i in range(8)]
  return midi_builders.make_midi(notes + [(base + 5, 4.0, 6.0)])


def notes_per_bar(pm, quantize):
  return len(mf.piece_from_midi(pm, 1, quantize).notes)


def test_midi_is_read_with_the_datasets_quantisation(tmp_path):
  pm = pianoroll.parse_midi(eighths_midi(60))
  assert notes_per_bar(pm, "sample") == 5 and notes_per_bar(pm, "round") == 9
  corpus = str(tmp_path / "corpus")
  write_files(corpus, [(f"p{i}.mid", eighths_midi(60 + i)) for i in range(3)])
  samples = str(tmp_path / "samples")
  write_files(samples, [(generation.sample_name(i), eighths_midi(62 + i))
                        for i in range(2)])
  means = {}
  for quantize in ("round", "sample"):
    dataset = str(tmp_path / quantize)
    spec = pianoroll.RollSpec("roll", 48, 84, 1, quantize)
    piece = fake_dataset.cycle_pieces([8], spec=spec)
    fake_dataset.write_piece_dataset(dataset, piece, piece, spec=spec)
    result = compare_lib.compare(compare_lib.CompareConfig(
        samples=samples, data=f"{corpus}/*.mid", dataset_dir=dataset,
        output=str(tmp_path / f"{quantize}.json")))
    assert result["grid"]["quantize"] == quantize
    feature = result["features"]["notes_per_bar"]
    means[quantize] = (feature["data_mean"], feature["samples_mean"])
  # 5 notes against 9, over 6 quarters (1.5 bars) either way.
  assert means["sample"] == pytest.approx((5 / 1.5, 5 / 1.5))
  assert means["round"] == pytest.approx((9 / 1.5, 9 / 1.5))


def test_without_a_dataset_the_samples_generation_record_sets_the_grid(
    tmp_path):
  corpus = str(tmp_path / "corpus")
  write_files(corpus, [(f"p{i}.mid", eighths_midi(60 + i)) for i in range(3)])
  samples = str(tmp_path / "samples")
  write_files(samples, [(generation.sample_name(0), eighths_midi(64))])
  config = compare_lib.CompareConfig(samples=samples, data=f"{corpus}/*.mid",
                                     output=str(tmp_path / "c.json"))
  default = compare_lib.compare(config)
  assert default["grid"] == {"steps_per_quarter": 4, "quantize": "round",
                             "from": "default"}
  spec = pianoroll.RollSpec("roll", 21, 109, 1, "sample")
  record = {"num_samples": 1, "model": {"model_dir": "m", "kind": "rnn_rbm",
                                        "roll_spec": spec.__dict__,
                                        "num_timesteps": 0}}
  write_files(samples, [("generation.json", json.dumps(record).encode())])
  result = compare_lib.compare(config)
  assert result["grid"] == {"steps_per_quarter": 1, "quantize": "sample",
                            "from": "generation.json (model)"}
  assert result["features"]["notes_per_bar"]["data_mean"] == pytest.approx(
      5 / 1.5)


def test_gallery_of_long_pieces_on_a_quarter_grid(tmp_path):
  """32-bar samples (128 quarters): excerpts as long, long pieces first."""
  spec = pianoroll.RollSpec("roll", 60, 72, 1)
  store = storage_lib.open_storage(str(tmp_path / "samples"))
  store.write("generation.json", b"{}")
  rng = np.random.default_rng(0)
  records = []
  for i in range(2):
    matrix = noise_piece(rng, 128)
    store.write(generation.sample_name(i),
                pianoroll.matrix_to_midi_bytes(matrix, spec))
    records.append({"path": generation.sample_name(i), "duration_s": 64.0,
                    "notes": len(pianoroll.matrix_to_notes(matrix, spec)),
                    "empty": False})
  config = generation.GenerateConfig(num_frames=128)
  previews.write_previews(store, records, spec, config, "seed 0, RNN-RBM")
  # The data: one piece longer than the samples among short ones.
  long_piece = fake_dataset.cycle_pieces([150], seed=4)[0]
  data = [(f"short-{i}", mf.piece_from_matrix(p, spec)) for i, p in
          enumerate(fake_dataset.cycle_pieces([30] * 9, seed=5))]
  data.append(("long", mf.piece_from_matrix(long_piece, spec)))
  page = previews.update_gallery(store, data, b"png", "compare: test")
  assert page
  html = store.read("previews/index.html").decode()
  assert "long from bar" in html  # chosen although 9 others exist
  assert html.count("then silence") == previews._DATA_EXCERPTS - 1  # pylint: disable=protected-access
  sample_png = store.read("previews/sample-000000.png")
  for k in range(previews._DATA_EXCERPTS):  # pylint: disable=protected-access
    # PNG width and height: the same size as the samples' rolls.
    assert store.read(f"previews/data-{k:02d}.png")[16:24] == sample_png[16:24]


def test_transposed_copies_and_matched_lengths(pieces_dataset, tmp_path):
  folder, train, heldout = pieces_dataset
  rng = np.random.default_rng(1)
  matrices = [noise_piece(rng, 128) for _ in range(4)]
  samples = str(tmp_path / "samples")
  write_files(samples, [(generation.sample_name(i),
                         pianoroll.matrix_to_midi_bytes(m, SPEC))
                        for i, m in enumerate(matrices)])
  config = compare_lib.CompareConfig(
      samples=samples, data=folder, transposed=True, match_lengths=True,
      output=str(tmp_path / "c.json"))
  result = compare_lib.compare(config)
  # Each training piece in 5 keys, the held-out ones as written.
  assert result["num_data"] == 5 * len(train) + len(heldout)
  pieces, _, _ = compare_lib.load_data(config, SPEC)
  as_written = compare_lib._as_written(pieces)  # pylint: disable=protected-access
  assert len(as_written) == len(train) + len(heldout)
  assert len({name for name, _ in pieces}) == len(pieces)
  lengths = [p.num_steps for _, p in pieces]
  assert max(lengths) < 128
  # The samples are measured at the data's lengths, not their 128 steps.
  cut = mf.cut_to_lengths([mf.piece_from_matrix(m, SPEC) for m in matrices],
                          lengths, config.seed)
  assert all(p.num_steps in lengths for p in cut)
  whole = mf.feature_table([mf.piece_from_matrix(m, SPEC) for m in matrices])
  expected = mf.feature_table(cut)
  for name in ("notes_per_bar", "mean_note_length_s", "polyphony"):
    got = result["features"][name]["samples_mean"]
    assert got == pytest.approx(expected[name].mean()), name
    assert got != pytest.approx(whole[name].mean()), name
  # Memorisation reads the whole samples.
  assert result["memorisation"]["spans"] == 4 * (128 - SPAN + 1)
