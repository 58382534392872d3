"""The gallery of a samples folder: piano rolls, audio and previews/index.html.

For listening to and looking at a few samples of a large job next to excerpts
of the data, not for the job's output itself. trainer.generate writes it with
the samples; trainer.compare rewrites it with data excerpts (same number of
steps, same rendering), the comparison figure and its summary line.

Audio: a General MIDI piano through FluidSynth (pretty_midi's `fluidsynth()`)
when the pyfluidsynth library and a sound font are there, else pretty_midi's
sine synthesis; the page says which. PNGs are encoded with TensorFlow.

Only pages this module wrote are rewritten (they carry GENERATOR_TAG): a
previews/index.html of the user's own is left alone.
"""

import html
import inspect
import io
import json
import os
import wave

from absl import logging
import numpy as np
import tensorflow as tf

from preprocess import pianoroll

# Pixels per step (time) and per pitch: a one-window sample (15 steps x 78
# pitches) is then about as wide as its audio player.
_STEP_PIXELS = 8
_PITCH_PIXELS = 3
# Long pieces (an RNN-RBM's minutes) get fewer pixels per step, down to 1, so
# a roll stays about a screen wide (128 steps keep 8 px).
_MAX_ROLL_PIXELS = 1024
# Audio of the first this many seconds: a preview, not the piece (a WAV is
# 2.6 MB a minute, and synthesis time grows with the length).
MAX_AUDIO_SECONDS = 120.0
_SAMPLE_RATE = 22050
GENERATOR_TAG = "<meta name='generator' content='rbm-music previews'>"
STATE_FILE = "previews/gallery.json"
INDEX = "previews/index.html"
# Where Debian/Ubuntu (fluid-soundfont-gm), Fedora and Homebrew put a GM font.
SOUNDFONT_CANDIDATES = (
    "/usr/share/sounds/sf2/FluidR3_GM.sf2",
    "/usr/share/soundfonts/FluidR3_GM.sf2",
    "/usr/share/sounds/sf2/default-GM.sf2",
    "/usr/share/soundfonts/default.sf2",
    "/opt/homebrew/share/soundfonts/default.sf2",
)
_DATA_EXCERPTS = 8


class ForeignGallery(Exception):
  """previews/index.html exists and this project did not write it."""


def find_renderer(soundfont: str | None = None) -> tuple:
  """(sound font path or None, a description of the renderer for the page).

  Raises:
    FileNotFoundError: `soundfont` was given and does not exist.
  """
  if soundfont and not os.path.isfile(soundfont):
    raise FileNotFoundError(2, "--soundfont is not a file (install e.g. "
                            "fluid-soundfont-gm, or omit the flag)", soundfont)
  try:
    import fluidsynth  # noqa: F401  # pylint: disable=g-import-not-at-top,unused-import
  except (ImportError, OSError) as e:
    if soundfont:
      logging.warning("--soundfont=%s given but FluidSynth is missing (%s): "
                      "sine tones instead", soundfont, e)
    return None, "sine tones (pretty_midi.synthesize; no FluidSynth found)"
  path = soundfont or next((p for p in SOUNDFONT_CANDIDATES
                            if os.path.isfile(p)), None)
  if path is None:
    return None, "sine tones (pretty_midi.synthesize; no sound font found)"
  return path, f"FluidSynth, General MIDI sound font {os.path.basename(path)}"


def roll_png(matrix: np.ndarray, spec: pianoroll.RollSpec) -> bytes:
  """Pitch upwards, time to the right; held notes grey, note starts white."""
  image = matrix[:, :spec.n_pitches].astype(np.uint8) * 150
  if spec.encoding == "onoff":
    image = np.maximum(image, matrix[:, spec.n_pitches:].astype(np.uint8) * 255)
  image = np.flipud(image.T)
  step_pixels = max(1, min(_STEP_PIXELS, _MAX_ROLL_PIXELS // max(1, len(matrix))))
  image = np.kron(image, np.ones((_PITCH_PIXELS, step_pixels), np.uint8))
  image = np.pad(image, 1, constant_values=60)  # a frame
  return tf.io.encode_png(image[..., None]).numpy()


def wav_bytes(midi: bytes, soundfont: str | None = None) -> bytes:
  """Mono 16-bit WAV of `midi`'s first MAX_AUDIO_SECONDS: FluidSynth with
  `soundfont`, else sine tones."""
  pm = pianoroll.parse_midi(midi)
  for instrument in pm.instruments:  # cut before synthesis: it is the cost
    instrument.notes = [n for n in instrument.notes
                        if n.start < MAX_AUDIO_SECONDS]
    for note in instrument.notes:
      note.end = min(note.end, MAX_AUDIO_SECONDS)
  if soundfont:
    # pretty_midi 0.2.11 renamed sf2_path to synthesizer; 0.2.10 has only
    # sf2_path (setup.py allows both).
    if "synthesizer" in inspect.signature(pm.fluidsynth).parameters:
      audio = pm.fluidsynth(fs=_SAMPLE_RATE, synthesizer=soundfont)
    else:
      audio = pm.fluidsynth(fs=_SAMPLE_RATE, sf2_path=soundfont)
  else:
    audio = pm.synthesize(fs=_SAMPLE_RATE)
  peak = np.abs(audio).max() if len(audio) else 0.0
  pcm = (audio / peak * 0.8 * 32767 if peak > 0 else audio).astype(np.int16)
  buf = io.BytesIO()
  with wave.open(buf, "wb") as w:
    w.setnchannels(1)
    w.setsampwidth(2)
    w.setframerate(_SAMPLE_RATE)
    w.writeframes(pcm.tobytes())
  return buf.getvalue()


def _check_ours(store) -> None:
  existing = store.read(INDEX)
  # Pages written before the tag existed carry this project's title.
  if existing is not None and GENERATOR_TAG.encode() not in existing and (
      b"<title>RBM samples</title>" not in existing):
    raise ForeignGallery(f"{store.url(INDEX)} was not written by rbm-music: "
                         "left as it is (move it away to get a gallery).")


def _figure(stem: str, caption: str, link: str) -> str:
  return (f"<figure><figcaption>{html.escape(caption)} "
          f"<a href='{html.escape(link)}'>MIDI</a></figcaption>"
          f"<img src='{html.escape(stem)}.png' alt='piano roll of "
          f"{html.escape(stem)}'><audio controls preload='none' "
          f"src='{html.escape(stem)}.wav'></audio></figure>")


def _page(state: dict, sample_rows: list, data_rows: list) -> bytes:
  top = ""
  if state.get("summary"):
    top = (f"<p class='summary'>{html.escape(state['summary'])}</p>"
           "<img class='fig' src='comparison.png' alt='feature histograms, "
           "data against samples'>")
  data = ""
  if data_rows:
    data = (f"<h2>Data: {len(data_rows)} excerpts of the same length</h2>"
            "<div class='row'>" + "\n".join(data_rows) + "</div>")
  page = (
      "<!doctype html><meta charset='utf-8'>" + GENERATOR_TAG +
      "<title>RBM samples</title>"
      "<style>body{font-family:sans-serif;background:#222;color:#ddd;margin:16px}"
      ".row{display:grid;grid-template-columns:repeat(auto-fill,minmax(150px,"
      "max-content));gap:10px}"
      "figure{margin:0;font-size:12px;overflow-wrap:anywhere}"
      "img{display:block;image-rendering:pixelated}a{color:#9cf}"
      ".fig{image-rendering:auto;background:#fff;max-width:100%}"
      ".summary{font-size:15px;color:#fff;background:#333;padding:8px}"
      "audio{width:150px;height:28px;display:block}"
      "figcaption{max-width:150px;min-height:2.6em}</style>"
      f"<h1>{html.escape(state.get('model') or 'RBM')} samples: "
      f"{len(sample_rows)} previewed</h1>"
      f"<p>{html.escape(state['settings'])}"
      f"<br>Audio: {html.escape(state['renderer'])}</p>" + top + data +
      "<h2>Samples</h2><div class='row'>" + "\n".join(sample_rows) + "</div>")
  return page.encode("utf-8")


def _padded(matrix: np.ndarray, num_steps: int, spec) -> np.ndarray:
  out = np.zeros((num_steps, spec.n_columns), np.uint8)
  out[:min(num_steps, len(matrix))] = matrix[:num_steps]
  return out


def _render_samples(store, state: dict, spec, soundfont) -> list:
  """PNG + WAV of each previewed sample, all `num_steps` wide; the rows."""
  files, rows = [], []
  for record in state["records"]:
    midi = store.read(record["path"])
    matrix = pianoroll.midi_to_matrix(pianoroll.parse_midi(midi), spec)
    stem = record["path"].rsplit(".", 1)[0]
    files.append((f"previews/{stem}.png",
                  roll_png(_padded(matrix, state["num_steps"], spec), spec)))
    files.append((f"previews/{stem}.wav", wav_bytes(midi, soundfont)))
    cut = (f" (audio: first {MAX_AUDIO_SECONDS:.0f} s)"
           if record["duration_s"] > MAX_AUDIO_SECONDS else "")
    rows.append(_figure(stem, f"{stem}: {record['notes']} notes, "
                        f"{record['duration_s']} s"
                        f"{' (empty)' if record['empty'] else ''}{cut}",
                        f"../{record['path']}"))
  store.write_many(files, create_only=False)
  return rows


def write_previews(store, records: list, spec: pianoroll.RollSpec,
                   config, settings_line: str,
                   model_title: str = "") -> str | None:
  """Writes previews/ for `records` (manifest lines); returns index.html's URL.

  settings_line: the model and how it sampled (the model's
  describe_sampling), shown on the page.
  model_title: the model as users call it (Model.title), in the heading.

  None (and a warning) when previews/index.html is the user's own.
  """
  try:
    _check_ours(store)
  except ForeignGallery as e:
    logging.warning("%s", e)
    return None
  soundfont, renderer = find_renderer(getattr(config, "soundfont", None))
  lengths = [round(r["duration_s"] * config.tempo / 60.0 * spec.steps_per_quarter)
             for r in records]
  state = {"records": records, "spec": [spec.encoding, spec.low_note,
                                        spec.high_note, spec.steps_per_quarter,
                                        spec.quantize],
           "num_steps": max(lengths + [1]), "tempo": config.tempo,
           "program": config.program, "velocity": config.velocity,
           "renderer": renderer,
           "settings": settings_line, "model": model_title}
  rows = _render_samples(store, state, spec, soundfont)
  store.write(STATE_FILE, json.dumps(state, indent=1).encode(),
              create_only=False)
  store.write(INDEX, _page(state, rows, []), create_only=False)
  return store.url(INDEX)


def _data_excerpts(store, state, spec, data_pieces, soundfont, seed) -> list:
  """Up to _DATA_EXCERPTS excerpts of `num_steps` steps, from a bar line.

  Pieces at least as long as the samples come first: an RNN-RBM's 32 bars
  are longer than most chorales (about 16 bars), and a whole shorter piece
  is shown, then silence, only when there are too few long ones.
  """
  rng = np.random.default_rng(seed)
  num_steps = state["num_steps"]
  bar = 4 * spec.steps_per_quarter
  order = rng.permutation(len(data_pieces))
  order = order[np.argsort([data_pieces[i][1].num_steps < num_steps
                            for i in order], kind="stable")]
  files, rows = [], []
  for k, index in enumerate(sorted(order[:_DATA_EXCERPTS])):
    name, piece = data_pieces[index]
    if piece.steps_per_quarter != spec.steps_per_quarter:
      logging.warning("data on %d steps per quarter, samples on %d: no data "
                      "excerpts in the gallery", piece.steps_per_quarter,
                      spec.steps_per_quarter)
      return []
    matrix, _ = pianoroll.notes_to_matrix(piece.notes, spec,
                                          num_steps=piece.num_steps)
    bars = max(0, (len(matrix) - num_steps) // bar)
    offset = int(rng.integers(0, bars + 1)) * bar
    excerpt = _padded(matrix[offset:], num_steps, spec)
    midi = pianoroll.matrix_to_midi_bytes(excerpt, spec, state["tempo"],
                                          state["program"], state["velocity"])
    stem = f"data-{k:02d}"
    files += [(f"previews/{stem}.mid", midi),
              (f"previews/{stem}.png", roll_png(excerpt, spec)),
              (f"previews/{stem}.wav", wav_bytes(midi, soundfont))]
    label = os.path.basename(name).rsplit(".", 1)[0]
    where = (f"from bar {offset // bar + 1}" if len(matrix) >= num_steps else
             f"whole ({len(matrix) / bar:.0f} bars, then silence)")
    rows.append(_figure(stem, f"{label} {where}", f"{stem}.mid"))
  store.write_many(files, create_only=False)
  return rows


def update_gallery(store, data_pieces: list, figure_png: bytes, summary: str,
                   soundfont: str | None = None, seed: int = 0) -> str | None:
  """Adds data excerpts, the figure and the summary to the samples' gallery.

  Re-renders the samples' audio with the same renderer as the excerpts, so
  both are judged alike. Returns index.html's URL, or None when there is no
  gallery of ours (trainer.generate --previews writes one).
  """
  raw = store.read(STATE_FILE)
  try:
    _check_ours(store)
  except ForeignGallery as e:
    logging.warning("%s", e)
    return None
  if raw is None:
    if store.read(INDEX) is not None:
      logging.warning("%s predates %s: rerun trainer.generate --previews to "
                      "rebuild it, then compare again.", store.url(INDEX),
                      STATE_FILE)
    return None
  state = json.loads(raw)
  spec = pianoroll.RollSpec(*state["spec"])
  path, state["renderer"] = find_renderer(soundfont)
  state["summary"] = summary
  rows = _render_samples(store, state, spec, path)
  data_rows = _data_excerpts(store, state, spec, data_pieces, path, seed)
  store.write("previews/comparison.png", figure_png, create_only=False)
  store.write(STATE_FILE, json.dumps(state, indent=1).encode(),
              create_only=False)
  store.write(INDEX, _page(state, rows, data_rows), create_only=False)
  return store.url(INDEX)
