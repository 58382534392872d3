"""The piano-roll codec: unit and property tests (no Beam, no TF graphs)."""

import hypothesis
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
import numpy as np
import pytest

from preprocess import pianoroll
from tests import midi_builders

ONOFF = pianoroll.RollSpec()
ROLL = pianoroll.RollSpec(encoding="roll")
SMALL_ONOFF = pianoroll.RollSpec("onoff", 60, 66)
SMALL_ROLL = pianoroll.RollSpec("roll", 60, 66)


def encode_bytes(data, spec, **kw):
  return pianoroll.midi_to_matrix(pianoroll.parse_midi(data), spec, **kw)


def test_default_spec_is_the_seeds_layout():
  assert ONOFF.n_pitches == 78 and ONOFF.n_columns == 156
  assert ROLL.n_columns == 78


@pytest.mark.parametrize("kwargs", [
    {"encoding": "bits"}, {"low_note": 50, "high_note": 50},
    {"high_note": 129}, {"steps_per_quarter": 0}, {"quantize": "floor"}])
def test_bad_spec_is_rejected_with_the_value(kwargs):
  with pytest.raises(ValueError, match=str(next(iter(kwargs.values())))):
    pianoroll.RollSpec(**kwargs)


def test_onoff_layout_play_then_articulate():
  # C4 for a quarter (4 steps), then D4 struck twice (re-struck held note).
  data = midi_builders.make_midi([(60, 0, 1), (62, 1, 1.5), (62, 1.5, 2)])
  m = encode_bytes(data, ONOFF)
  assert m.shape == (8, 156) and m.dtype == np.uint8
  c, d = 60 - 24, 62 - 24
  np.testing.assert_array_equal(m[:, c], [1, 1, 1, 1, 0, 0, 0, 0])
  np.testing.assert_array_equal(m[:, 78 + c], [1, 0, 0, 0, 0, 0, 0, 0])
  np.testing.assert_array_equal(m[:, d], [0, 0, 0, 0, 1, 1, 1, 1])
  np.testing.assert_array_equal(m[:, 78 + d], [0, 0, 0, 0, 1, 0, 1, 0])
  assert m.sum() == 4 + 1 + 4 + 2


def test_roll_layout_is_play_only():
  data = midi_builders.make_midi([(60, 0, 1)])
  m = encode_bytes(data, ROLL)
  assert m.shape == (4, 78)
  assert m[:, 36].tolist() == [1, 1, 1, 1] and m.sum() == 4


@pytest.mark.parametrize("tempo,resolution", [(60, 96), (120, 480), (173.5, 1000)])
def test_grid_is_in_beats_whatever_the_tempo_or_resolution(tempo, resolution):
  data = midi_builders.make_midi(midi_builders.scale(16), tempo=tempo,
                                 resolution=resolution)
  reference = encode_bytes(midi_builders.make_midi(midi_builders.scale(16)),
                           ONOFF)
  np.testing.assert_array_equal(encode_bytes(data, ONOFF), reference)


def test_tempo_changes_do_not_move_the_grid():
  notes = midi_builders.scale(24)
  plain = encode_bytes(midi_builders.make_midi(notes), ONOFF)
  changing = encode_bytes(
      midi_builders.make_midi(notes, tempo_changes=[(1, 60), (3.5, 200)]), ONOFF)
  np.testing.assert_array_equal(changing, plain)


def test_steps_per_quarter_one_is_a_quarter_note_grid():
  data = midi_builders.make_midi([(60, 0, 2), (64, 2, 3)])
  m = encode_bytes(data, pianoroll.RollSpec(steps_per_quarter=1))
  assert m.shape == (3, 156)
  assert m[:, 36].tolist() == [1, 1, 0] and m[:, 40].tolist() == [0, 0, 1]


# One voice moving in 8ths on a quarter-note grid: C D | E F | G (quarter).
EIGHTHS = [(60, 0, 0.5), (62, 0.5, 1), (64, 1, 1.5), (65, 1.5, 2), (67, 2, 3)]


def test_round_keeps_every_note_and_rounds_halves_up():
  m = encode_bytes(midi_builders.make_midi(EIGHTHS),
                   pianoroll.RollSpec("roll", 60, 72, 1, "round"))
  # Every off-beat 8th moves to the next beat, beside that beat's note
  # (half-to-even would keep D on beat 0 and move F: [[0, 2], [4], [5, 7]]).
  assert [np.flatnonzero(row).tolist() for row in m] == [[0], [2, 4], [5, 7]]


def test_sample_holds_what_sounds_at_each_grid_point():
  m = encode_bytes(midi_builders.make_midi(EIGHTHS),
                   pianoroll.RollSpec("roll", 60, 72, 1, "sample"))
  assert [np.flatnonzero(row).tolist() for row in m] == [[0], [4], [7]]
  notes, _ = pianoroll.extract_notes(
      pianoroll.parse_midi(midi_builders.make_midi(EIGHTHS)), 1,
      quantize="sample")
  # The off-beat 8ths span no grid point: no step.
  assert sorted((p, e - s) for p, s, e in notes.as_tuples()) == [
      (60, 1), (62, 0), (64, 1), (65, 0), (67, 1)]


def test_quantize_modes_agree_on_a_grid_aligned_file():
  data = midi_builders.make_midi(midi_builders.scale(12) + [(72, 1, 4)])
  np.testing.assert_array_equal(
      encode_bytes(data, pianoroll.RollSpec(quantize="sample")),
      encode_bytes(data, ONOFF))


def test_drums_are_excluded_by_default_and_counted():
  data = midi_builders.make_midi([(60, 0, 1)], drums=[(36, 0, 0.25)] * 3)
  pm = pianoroll.parse_midi(data)
  notes, drums = pianoroll.extract_notes(pm, 4)
  assert len(notes) == 1 and drums == 3
  notes, drums = pianoroll.extract_notes(pm, 4, include_drums=True)
  assert len(notes) == 4 and drums == 0


def test_out_of_range_notes_are_dropped_and_counted():
  data = midi_builders.make_midi([(10, 0, 1), (60, 0, 1), (110, 0, 1)])
  notes, _ = pianoroll.extract_notes(pianoroll.parse_midi(data), 4)
  m, dropped = pianoroll.notes_to_matrix(notes, ONOFF)
  assert dropped == 2 and m[:, :78].sum() == 4


def test_transposition_shifts_and_drops_at_the_edges():
  data = midi_builders.make_midi([(24, 0, 1), (60, 0, 1)])
  notes, _ = pianoroll.extract_notes(pianoroll.parse_midi(data), 4)
  m, dropped = pianoroll.notes_to_matrix(notes, ONOFF, transpose=-2)
  assert dropped == 1 and m[0, 58 - 24] == 1
  m, dropped = pianoroll.notes_to_matrix(notes, ONOFF, transpose=3)
  assert dropped == 0 and m[0, 27 - 24] == 1 and m[0, 63 - 24] == 1


def test_short_notes_sound_for_one_step():
  data = midi_builders.make_midi([(60, 0, 0.01)])
  assert encode_bytes(data, ONOFF)[:, 36].tolist() == [1]


def test_decoder_writes_tempo_program_velocity_and_note_offs():
  m = np.zeros((8, 156), np.uint8)
  m[2:, 36] = 1  # a note held to the very end of the matrix
  m[2, 78 + 36] = 1
  pm = pianoroll.matrix_to_midi(m, ONOFF, tempo=90, program=40, velocity=70)
  reparsed = pianoroll.parse_midi(pianoroll.midi_to_bytes(pm))
  # MIDI stores microseconds per quarter as an integer: 90 bpm is 666667 us.
  assert reparsed.get_tempo_changes()[1][0] == pytest.approx(90, rel=1e-5)
  (inst,) = reparsed.instruments
  assert inst.program == 40 and len(inst.notes) == 1
  note = inst.notes[0]
  assert note.velocity == 70 and note.pitch == 60
  assert note.end == pytest.approx(8 * 60 / 90 / 4, rel=1e-5)  # closed at the end


def test_decoder_follows_the_seeds_rules_for_odd_matrices():
  m = np.zeros((4, 156), np.uint8)
  m[0:2, 0] = 1        # play without articulate after silence: a note
  m[3, 78 + 1] = 1     # articulate without play: ignored
  notes = pianoroll.matrix_to_notes(m, ONOFF)
  assert notes.as_tuples() == [(24, 0, 2)]


def test_matrix_of_wrong_width_is_a_clear_error():
  with pytest.raises(ValueError, match=r"\(4, 10\).*156"):
    pianoroll.matrix_to_notes(np.zeros((4, 10), np.uint8), ONOFF)


def test_file_on_the_grid_survives_note_for_note():
  notes = [(60, 0, 1), (64, 0, 0.5), (64, 0.5, 1), (67, 1.25, 3), (48, 2, 2.25)]
  data = midi_builders.make_midi(notes, tempo=97, resolution=384,
                                 tempo_changes=[(1.5, 140)])
  m = encode_bytes(data, ONOFF)
  out = pianoroll.parse_midi(
      pianoroll.midi_to_bytes(pianoroll.matrix_to_midi(m, ONOFF)))
  got = sorted((n.pitch, round(n.start * 2, 6), round(n.end * 2, 6))
               for n in out.instruments[0].notes)  # 120 bpm: 2 quarters/s
  assert got == sorted((p, float(s), float(e)) for p, s, e in notes)


def test_cut_windows_non_overlapping_and_strided():
  m = np.arange(40).reshape(40, 1)
  assert [o for o, _ in pianoroll.cut_windows(m, 15, 15)] == [0, 15]
  windows = list(pianoroll.cut_windows(m, 15, 5))
  assert [o for o, _ in windows] == [0, 5, 10, 15, 20, 25]
  assert windows[-1][1][:, 0].tolist() == list(range(25, 40))
  assert list(pianoroll.cut_windows(m[:10], 15, 15)) == []
  with pytest.raises(ValueError, match="stride=0"):
    list(pianoroll.cut_windows(m, 15, 0))


def binary_matrices(spec):
  return hnp.arrays(np.uint8, st.tuples(st.integers(1, 24),
                                        st.just(spec.n_columns)),
                    elements=st.integers(0, 1))


def _encode_through_midi_bytes(matrix, spec):
  pm = pianoroll.matrix_to_midi(matrix, spec)
  return encode_bytes(pianoroll.midi_to_bytes(pm), spec,
                      num_steps=matrix.shape[0])


@hypothesis.settings(max_examples=150, deadline=None)
@hypothesis.given(binary_matrices(SMALL_ONOFF))
def test_property_onoff_round_trip_exact_on_canonical_matrices(m):
  canonical = pianoroll.canonicalize(m, SMALL_ONOFF)
  # decode/encode is exact on valid matrices, through real MIDI bytes ...
  np.testing.assert_array_equal(
      _encode_through_midi_bytes(canonical, SMALL_ONOFF), canonical)
  # ... and any binary matrix is valid once canonical.
  np.testing.assert_array_equal(
      _encode_through_midi_bytes(m, SMALL_ONOFF), canonical)


@hypothesis.settings(max_examples=150, deadline=None)
@hypothesis.given(binary_matrices(SMALL_ROLL))
def test_property_roll_round_trip_exact_on_any_matrix(m):
  np.testing.assert_array_equal(_encode_through_midi_bytes(m, SMALL_ROLL), m)


@hypothesis.settings(max_examples=60, deadline=None)
@hypothesis.given(binary_matrices(ONOFF))
def test_property_full_range_onoff_round_trip(m):
  canonical = pianoroll.canonicalize(m, ONOFF)
  np.testing.assert_array_equal(_encode_through_midi_bytes(m, ONOFF), canonical)


@hypothesis.settings(max_examples=100, deadline=None)
@hypothesis.given(binary_matrices(SMALL_ONOFF), st.sampled_from([60, 97.5, 120]),
                  st.integers(0, 127), st.integers(1, 127))
def test_property_fast_writer_matches_pretty_midi(m, tempo, program, velocity):
  fast = pianoroll.parse_midi(pianoroll.matrix_to_midi_bytes(
      m, SMALL_ONOFF, tempo, program, velocity))
  slow = pianoroll.parse_midi(pianoroll.midi_to_bytes(pianoroll.matrix_to_midi(
      m, SMALL_ONOFF, tempo, program, velocity)))
  key = lambda pm: sorted((n.pitch, pm.time_to_tick(n.start),
                           pm.time_to_tick(n.end), n.velocity)
                          for i in pm.instruments for n in i.notes)
  assert key(fast) == key(slow)
  assert fast.get_tempo_changes()[1][0] == pytest.approx(tempo, rel=1e-5)
  assert all(i.program == program for i in fast.instruments)
  np.testing.assert_array_equal(
      pianoroll.midi_to_matrix(fast, SMALL_ONOFF, num_steps=len(m)),
      pianoroll.canonicalize(m, SMALL_ONOFF))
