"""Previews of generated samples: piano-roll PNGs, WAVs and an index.html.

For listening and looking at a few samples of a large job, not for the job's
output itself. WAVs use pretty_midi's built-in sine synthesis (no sound font
needed); PNGs are encoded with TensorFlow (no extra dependency).
"""

import html
import io
import wave

import numpy as np
import tensorflow as tf

from preprocess import pianoroll

_SCALE = 4
_SAMPLE_RATE = 16000


def roll_png(matrix: np.ndarray, spec: pianoroll.RollSpec) -> bytes:
  """Pitch upwards, time to the right; held notes grey, note starts white."""
  image = matrix[:, :spec.n_pitches].astype(np.uint8) * 150
  if spec.encoding == "onoff":
    image = np.maximum(image, matrix[:, spec.n_pitches:].astype(np.uint8) * 255)
  image = np.flipud(image.T)
  image = np.kron(image, np.ones((_SCALE, _SCALE), np.uint8))
  image = np.pad(image, 1, constant_values=60)  # a frame
  return tf.io.encode_png(image[..., None]).numpy()


def wav_bytes(midi: bytes) -> bytes:
  audio = pianoroll.parse_midi(midi).synthesize(fs=_SAMPLE_RATE)
  peak = np.abs(audio).max() if len(audio) else 0.0
  pcm = (audio / peak * 0.8 * 32767 if peak > 0 else audio).astype(np.int16)
  buf = io.BytesIO()
  with wave.open(buf, "wb") as w:
    w.setnchannels(1)
    w.setsampwidth(2)
    w.setframerate(_SAMPLE_RATE)
    w.writeframes(pcm.tobytes())
  return buf.getvalue()


def write_previews(store, records: list, spec: pianoroll.RollSpec,
                   config) -> str:
  """Writes previews/ for `records` (manifest lines); returns index.html's URL."""
  files, rows = [], []
  for record in records:
    midi = store.read(record["path"])
    matrix = pianoroll.midi_to_matrix(pianoroll.parse_midi(midi), spec)
    if not len(matrix):
      matrix = np.zeros((1, spec.n_columns), np.uint8)
    stem = record["path"].rsplit(".", 1)[0]
    files.append((f"previews/{stem}.png", roll_png(matrix, spec)))
    files.append((f"previews/{stem}.wav", wav_bytes(midi)))
    rows.append(
        f"<figure><figcaption>{html.escape(stem)}: {record['notes']} notes, "
        f"{record['duration_s']} s{' (empty)' if record['empty'] else ''} "
        f"<a href='../{html.escape(record['path'])}'>MIDI</a></figcaption>"
        f"<img src='{html.escape(stem)}.png' alt='piano roll of {html.escape(stem)}'>"
        f"<audio controls preload='none' src='{html.escape(stem)}.wav'></audio>"
        "</figure>")
  page = ("<!doctype html><meta charset='utf-8'><title>RBM samples</title>"
          "<style>body{font-family:sans-serif;background:#222;color:#ddd}"
          "figure{display:inline-block;margin:8px;vertical-align:top}"
          "img{display:block;image-rendering:pixelated}a{color:#9cf}</style>"
          f"<h1>{len(records)} samples</h1><p>seed {config.seed}, "
          f"{config.gibbs_steps} Gibbs steps from {config.init}, "
          f"{config.num_windows} window(s)</p>" + "\n".join(rows))
  files.append(("previews/index.html", page.encode("utf-8")))
  store.write_many(files, create_only=False)
  return store.url("previews/index.html")
