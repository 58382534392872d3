"""Tiny MIDI files built in memory for tests (no corpus needed)."""

import pretty_midi

from preprocess import pianoroll


def make_midi(notes, tempo=120.0, resolution=480, program=0, drums=(),
              tempo_changes=()) -> bytes:
  """MIDI bytes with `notes` as (pitch, start_quarter, end_quarter).

  `tempo_changes`: (quarter, bpm) pairs after the initial tempo; note times are
  given in quarters and placed through the resulting tempo map.
  `drums`: (pitch, start_quarter, end_quarter) on a drum track.
  """
  pm = pretty_midi.PrettyMIDI(resolution=resolution, initial_tempo=tempo)
  if tempo_changes:
    # pretty_midi has no public tempo setter: write the meta events by hand.
    import mido  # pylint: disable=g-import-not-at-top
    mid = mido.MidiFile(ticks_per_beat=resolution)
    track = mido.MidiTrack()
    mid.tracks.append(track)
    events = [(0, mido.MetaMessage("set_tempo", tempo=mido.bpm2tempo(tempo)))]
    for quarter, bpm in tempo_changes:
      events.append((round(quarter * resolution),
                     mido.MetaMessage("set_tempo", tempo=mido.bpm2tempo(bpm))))
    for pitch, start, end in notes:
      events.append((round(start * resolution),
                     mido.Message("note_on", note=pitch, velocity=90)))
      events.append((round(end * resolution),
                     mido.Message("note_off", note=pitch, velocity=0)))
    for pitch, start, end in drums:
      events.append((round(start * resolution),
                     mido.Message("note_on", note=pitch, velocity=90, channel=9)))
      events.append((round(end * resolution),
                     mido.Message("note_off", note=pitch, velocity=0, channel=9)))
    # note_off before note_on at equal ticks, so re-struck notes stay apart
    events.sort(key=lambda e: (e[0], e[1].type != "note_off"))
    last = 0
    for tick, msg in events:
      track.append(msg.copy(time=tick - last))
      last = tick
    import io  # pylint: disable=g-import-not-at-top
    buf = io.BytesIO()
    mid.save(file=buf)
    return buf.getvalue()
  seconds_per_quarter = 60.0 / tempo
  inst = pretty_midi.Instrument(program=program)
  for pitch, start, end in notes:
    inst.notes.append(pretty_midi.Note(90, pitch, start * seconds_per_quarter,
                                       end * seconds_per_quarter))
  pm.instruments.append(inst)
  if drums:
    drum = pretty_midi.Instrument(program=0, is_drum=True)
    for pitch, start, end in drums:
      drum.notes.append(pretty_midi.Note(90, pitch, start * seconds_per_quarter,
                                         end * seconds_per_quarter))
    pm.instruments.append(drum)
  return pianoroll.midi_to_bytes(pm)


def scale(num_notes=32, low=60, step_quarters=0.25):
  """An ascending-descending scale of 16th notes, as (pitch, start, end)."""
  pitches = [low + (i % 12 if (i // 12) % 2 == 0 else 11 - i % 12)
             for i in range(num_notes)]
  return [(p, i * step_quarters, (i + 1) * step_quarters)
          for i, p in enumerate(pitches)]
