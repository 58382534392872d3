"""Feature maths on hand-built pieces with known answers; the set comparison."""

import numpy as np
import pretty_midi
import pytest

from preprocess import pianoroll
from tests import midi_builders
from trainer.comparison import features as mf


def piece(notes, num_steps=None, tempo=120.0, spq=4):
  """notes: (pitch, start step, end step)."""
  p, s, e = (np.asarray(x, np.int64) for x in zip(*notes)) if notes else (
      np.zeros(0, np.int64),) * 3
  n = pianoroll.Notes(p, s, e)
  steps = num_steps if num_steps is not None else int(e.max())
  return mf.Piece(n, steps, 60.0 / tempo / spq, spq)


def from_midi(notes, **kw):
  return mf.piece_from_midi(pianoroll.parse_midi(midi_builders.make_midi(
      notes, **kw)))


def test_scale_of_sixteenths():
  # 60..71 up, 71..60 down, 60..67 up: 32 16th notes, 8 quarters at 120 bpm.
  f = mf.piece_features(from_midi(midi_builders.scale(32)))
  assert f["notes_per_second"] == pytest.approx(32 / 4.0)
  assert f["notes_per_bar"] == pytest.approx(16.0)
  assert f["pitch_count"] == 12 and f["pitch_range"] == 11
  # 31 steps between consecutive notes: two of them repeat a pitch (71 71,
  # 60 60), the rest move by one semitone; both outer voices are the line.
  assert f["mean_interval"] == pytest.approx(29 / 31)
  assert f["polyphony"] == 1.0 and f["silent_share"] == 0.0
  # The repeated 71 and 60 start where the same pitch just ended.
  assert f["restrike_share"] == pytest.approx(2 / 32)
  assert f["mean_note_length_s"] == pytest.approx(0.125)
  np.testing.assert_allclose(f["note_length_histogram"], [1, 0, 0, 0, 0, 0, 0, 0])
  np.testing.assert_allclose(f["ioi_histogram"], [1, 0, 0, 0, 0, 0, 0, 0])
  expected = np.array([3] * 8 + [2] * 4) / 32
  np.testing.assert_allclose(f["pitch_class_histogram"], expected)


def test_restrikes_held_repeated_and_separated():
  notes = [(60, 0, 2), (60, 2, 4),   # ends and is struck again: re-strike
           (64, 0, 4), (64, 1, 2),   # struck again while held: re-strike
           (67, 0, 1), (67, 2, 3)]   # a rest in between: not a re-strike
  mask = mf.restrike_mask(piece(notes).notes)
  assert mask.tolist() == [False, True, False, True, False, False]
  assert mf.piece_features(piece(notes))["restrike_share"] == pytest.approx(2 / 6)


def test_polyphony_silence_and_lengths():
  # A C major triad for a quarter, a rest of a quarter, a half-note G.
  notes = [(60, 0, 4), (64, 0, 4), (67, 0, 4), (67, 8, 16)]
  f = mf.piece_features(piece(notes))
  assert f["polyphony"] == pytest.approx((3 * 4 + 8) / 12)  # sounding steps only
  assert f["silent_share"] == pytest.approx(4 / 16)
  np.testing.assert_allclose(f["note_length_histogram"],
                             [0, 0, 0, 0.75, 0, 0.25, 0, 0])
  np.testing.assert_allclose(f["ioi_histogram"], [0, 0, 0, 0, 0, 1, 0, 0])
  assert f["mean_note_length_s"] == pytest.approx((3 * 0.5 + 1.0) / 4)


def test_polyphony_histogram_counts_steps_by_notes_sounding():
  # The triad (3 notes, 4 steps), a rest (4 steps), a G (1 note, 8 steps),
  # then ten notes at once for 4 steps: the last bin holds ">= 9".
  cluster = [(40 + 2 * i, 16, 20) for i in range(10)]
  f = mf.piece_features(piece([(60, 0, 4), (64, 0, 4), (67, 0, 4),
                               (67, 8, 16)] + cluster))
  expected = np.zeros(mf.POLYPHONY_BINS)
  expected[[0, 1, 3, mf.POLYPHONY_BINS - 1]] = np.array([4, 8, 4, 4]) / 20
  np.testing.assert_allclose(f["polyphony_histogram"], expected)
  assert mf.piece_features(piece([], num_steps=8))[
      "polyphony_histogram"].tolist() == [1.0] + [0.0] * (mf.POLYPHONY_BINS - 1)


def _parts(notes):
  """A pretty_midi object with one part per note, as the chorales' files
  hold their voices (one track per voice); notes in 8th-note steps."""
  pm = pretty_midi.PrettyMIDI(initial_tempo=120.0)
  for p, s, e in notes:
    part = pretty_midi.Instrument(0)
    part.notes.append(pretty_midi.Note(80, p, s / 8, e / 8))
    pm.instruments.append(part)
  return pm


def test_a_pitch_held_by_two_voices_sounds_once():
  # Soprano and alto in unison on 67 for 4 steps while tenor and bass hold
  # 60 and 48: three pitches; then the alto moves to 64 (four), and a
  # doubled bass (a second part on 48 all along) never adds a pitch.
  notes = [(67, 0, 8), (67, 0, 4), (64, 4, 8), (60, 0, 8), (48, 0, 8),
           (48, 0, 8)]
  f = mf.piece_features(piece(notes))
  assert mf.sounding_counts(piece(notes)).tolist() == [3] * 4 + [4] * 4
  assert f["polyphony"] == pytest.approx(3.5)
  expected = np.zeros(mf.POLYPHONY_BINS)
  expected[[3, 4]] = 0.5
  np.testing.assert_allclose(f["polyphony_histogram"], expected)
  # Read from MIDI, as data pieces are, they are the notes one instrument
  # plays: four notes, a key each, struck once.
  data = mf.piece_from_midi(_parts(notes))
  assert data.notes.as_tuples() == [(48, 0, 8), (60, 0, 8), (64, 4, 8),
                                    (67, 0, 8)]
  g = mf.piece_features(data)
  assert g["polyphony"] == pytest.approx(3.5)
  assert g["notes_per_bar"] == pytest.approx(4 / (8 / 16))


def test_a_pitch_struck_while_another_voice_holds_it_is_one_key_restruck():
  # The tenor holds 60 for 8 steps; the alto strikes 60 at step 4 for 2:
  # one key, struck at 0 and again at 4, sounding until 8 (the play/
  # articulate codec's reading, so data and samples count alike).
  data = mf.piece_from_midi(_parts([(60, 0, 8), (60, 4, 6)]))
  assert data.notes.as_tuples() == [(60, 0, 4), (60, 4, 8)]
  assert mf.piece_features(data)["restrike_share"] == pytest.approx(0.5)


def test_key_free_pitch_classes_are_the_same_in_every_key():
  # A tune in C (C most used) and the same tune a fifth higher, in G: the
  # pitch-class histograms differ, the key-free ones agree, starting at the
  # most used class (ties: the lowest class).
  tune = [(60, 0, 2), (62, 2, 4), (64, 4, 6), (60, 6, 8), (67, 8, 10),
          (60, 10, 12)]
  in_c = mf.piece_features(piece(tune))
  in_g = mf.piece_features(piece([(p + 7, a, b) for p, a, b in tune]))
  assert not np.allclose(in_c["pitch_class_histogram"],
                         in_g["pitch_class_histogram"])
  expected = np.zeros(12)
  expected[[0, 2, 4, 7]] = np.array([3, 1, 1, 1]) / 6
  np.testing.assert_allclose(in_c["key_free_pitch_class_histogram"], expected)
  np.testing.assert_allclose(in_g["key_free_pitch_class_histogram"], expected)
  tie = mf.piece_features(piece([(62, 0, 1), (64, 1, 2)]))
  np.testing.assert_allclose(tie["key_free_pitch_class_histogram"],
                             [0.5, 0, 0.5] + [0] * 9)


def test_dense_drift_counts_pieces_above_the_datas_99th_percentile():
  data = {"polyphony": np.linspace(1.0, 4.0, 200)}
  threshold = float(np.percentile(data["polyphony"], mf.DENSE_PERCENTILE))
  calm = {"polyphony": np.full(100, 3.0)}
  drifting = {"polyphony": np.r_[np.full(95, 3.0), np.full(5, 6.0)]}
  same = mf.dense_drift(data, calm)
  assert same["polyphony_above"] == pytest.approx(threshold)
  assert same["share_data"] == pytest.approx(2 / 200)
  assert same["share_samples"] == 0.0 and same["meets_data"]
  worse = mf.dense_drift(data, drifting)
  assert worse["share_samples"] == pytest.approx(0.05)
  assert not worse["meets_data"]
  line = mf.summary_line({}, None, worse)
  assert "5.0% samples drift dense (data 1.0%" in line


def test_outer_voices_interval():
  # C-E-G then D-F-B: the top voice moves 67 -> 71, the bass 60 -> 62.
  notes = [(60, 0, 4), (64, 0, 4), (67, 0, 4), (62, 4, 8), (65, 4, 8),
           (71, 4, 8)]
  assert mf.piece_features(piece(notes))["mean_interval"] == pytest.approx(3.0)


def test_bars_follow_the_time_signature_and_tempo():
  pm = pretty_midi.PrettyMIDI(initial_tempo=60.0)
  pm.time_signature_changes.append(pretty_midi.TimeSignature(3, 4, 0.0))
  inst = pretty_midi.Instrument(0)
  inst.notes = [pretty_midi.Note(80, 60 + i % 5, i * 1.0, i * 1.0 + 1.0)
                for i in range(6)]  # six quarters at 60 bpm: 6 s, two 3/4 bars
  pm.instruments.append(inst)
  p = mf.piece_from_midi(pianoroll.parse_midi(pianoroll.midi_to_bytes(pm)))
  f = mf.piece_features(p)
  assert p.quarters_per_bar == 3.0
  assert f["notes_per_bar"] == pytest.approx(3.0)
  assert f["notes_per_second"] == pytest.approx(1.0)
  assert f["mean_note_length_s"] == pytest.approx(1.0)


def test_empty_piece_is_silence():
  f = mf.piece_features(piece([], num_steps=8))
  assert f["notes_per_second"] == 0 and f["silent_share"] == 1.0
  assert not f["pitch_class_histogram"].any()


def chorale_like(n, seed):
  """n four-voice pieces in C major: quarter and eighth notes, stepwise."""
  rng = np.random.default_rng(seed)
  major = np.array([0, 2, 4, 5, 7, 9, 11])
  pieces = []
  for _ in range(n):
    notes = []
    for base in (48, 55, 60, 67):
      degree, t = rng.integers(7), 0
      while t < 64:
        length = int(rng.choice([2, 4, 4, 8]))
        degree = int(np.clip(degree + rng.integers(-2, 3), 0, 13))
        notes.append((base + 12 * (degree // 7) + major[degree % 7], t,
                      t + length))
        t += length
    pieces.append(piece(notes, num_steps=64))
  return pieces


def noise_pieces(n, seed, spec=None):
  spec = spec or pianoroll.RollSpec()
  rng = np.random.default_rng(seed)
  return [mf.piece_from_matrix((rng.random((64, spec.n_columns)) < 0.5
                                ).astype(np.uint8), spec) for _ in range(n)]


def test_data_against_itself_overlaps_fully():
  table = mf.feature_table(chorale_like(60, seed=0))
  result = mf.compare_tables(table, table)
  for name, r in result.items():
    assert r["overlap"] > 0.95, name
    assert r["kl"] < 0.05, name
    assert r["relative_difference"] == 0 and r["meets_data"], name
  assert mf.summary_line(result, None).startswith(
      f"compare: {len(mf.FEATURES)}/{len(mf.FEATURES)} features meet")


def test_two_draws_of_one_distribution_overlap():
  a = mf.feature_table(chorale_like(80, seed=1))
  b = mf.feature_table(chorale_like(80, seed=2))
  result = mf.compare_tables(a, b)
  assert min(r["overlap"] for r in result.values()) > 0.8
  assert sum(r["meets_data"] for r in result.values()) == len(mf.FEATURES)


def test_uniform_noise_fails_clearly():
  data = mf.feature_table(chorale_like(60, seed=0))
  noise = mf.feature_table(noise_pieces(30, seed=3))
  result = mf.compare_tables(data, noise)
  line = mf.summary_line(result, None)
  met = sum(r["meets_data"] for r in result.values())
  assert met <= 3, line
  assert result["pitch_class_histogram"]["overlap"] < 0.5
  assert result["notes_per_second"]["relative_difference"] > 1.0
  assert "worst: " in line


def test_overlap_of_far_apart_sets_is_near_zero():
  rng = np.random.default_rng(0)
  oa, kl = mf.overlap_and_kl(rng.normal(0, 1, 500), rng.normal(10, 1, 500))
  assert oa < 0.01 and kl > 5
  oa, kl = mf.overlap_and_kl(rng.normal(0, 1, 2000), rng.normal(0, 1, 2000))
  assert oa > 0.9 and kl < 0.05


def test_nearest_hamming_matches_brute_force():
  rng = np.random.default_rng(0)
  q = (rng.random((37, 90)) < 0.3).astype(np.uint8)
  r = (rng.random((55, 90)) < 0.3).astype(np.uint8)
  brute = (q[:, None, :] != r[None, :, :]).sum(-1).min(axis=1)
  np.testing.assert_array_equal(mf.nearest_hamming(q, r, chunk=8), brute)


def test_memorisation_finds_a_planted_copy():
  rng = np.random.default_rng(0)
  t, cols = 4, 24
  train = (rng.random((200, t * cols)) < 0.2).astype(np.uint8)
  samples = [(rng.random((12, cols)) < 0.2).astype(np.uint8) for _ in range(9)]
  planted = np.zeros((12, cols), np.uint8)
  planted[4:8] = train[123].reshape(t, cols)  # a copy in the middle
  samples.append(planted)
  memo = mf.memorisation([mf.sample_windows(s, t) for s in samples], train,
                         baseline_windows=train[:5])
  assert memo["share_samples_with_copy"] == pytest.approx(0.1)
  assert memo["nearest_distance_min"] == 0
  assert memo["heldout_nearest_distance_mean"] == 0  # they are training windows
  assert "10.0% samples copy" in mf.summary_line(
      mf.compare_tables(*(2 * [mf.feature_table(chorale_like(5, 0))])), memo)


def test_sample_windows_pads_short_pieces():
  windows = mf.sample_windows(np.ones((2, 3), np.uint8), 4)
  assert windows.shape == (1, 12) and windows.sum() == 6


def test_large_sets_draw_random_pairs_and_still_overlap():
  rng = np.random.default_rng(0)
  data = rng.dirichlet(np.ones(12), 3000)
  samples = rng.dirichlet(np.ones(12), 2500)
  far = rng.dirichlet(np.full(12, 0.05), 2500)
  assert mf._MAX_PAIR_ENTRIES < 3000 * 2500 * 12  # pylint: disable=protected-access
  assert mf.compare_feature(data, samples)["overlap"] > 0.9
  assert mf.compare_feature(data, far)["overlap"] < 0.5


def test_cut_to_lengths_measures_samples_at_the_datas_lengths():
  notes = pianoroll.Notes(np.array([60, 62, 64]), np.array([0, 5, 40]),
                          np.array([10, 40, 64]))
  piece = mf.Piece(notes, 64, 0.5, 1, 4.0)
  cut = mf.excerpt(piece, 4, 8)
  assert cut.num_steps == 8
  assert cut.notes.as_tuples() == [(60, 0, 6), (62, 1, 8)]
  pieces = mf.cut_to_lengths([piece] * 20, [16, 64, 100], seed=1)
  assert {p.num_steps for p in pieces} == {16, 64}
  assert all(p.num_steps == 64 for p in pieces if len(p.notes) == 3)
  again = mf.cut_to_lengths([piece] * 20, [16, 64, 100], seed=1)
  assert [(p.num_steps, p.notes.as_tuples()) for p in pieces] == [
      (p.num_steps, p.notes.as_tuples()) for p in again]
