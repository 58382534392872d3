"""The demo corpus export (music21's Bach chorales), on two pieces."""

import os

import pytest

from preprocess import config as config_lib
from preprocess import demo_corpus
from preprocess import steps

pytest.importorskip("music21")  # the "data" extra, which `make test` installs


def _read(path):
  with open(path, "rb") as f:
    return f.read()


def test_export_is_named_by_bwv_idempotent_and_usable(tmp_path):
  out = str(tmp_path / "chorales")
  result = demo_corpus.export_chorales(out, limit=2, workers=1)
  assert result["written"] + len(result["failed"]) == 2
  names = sorted(os.listdir(out))
  assert names and all(n.startswith("bach_bwv") and n.endswith(".mid")
                       for n in names)
  first = {n: _read(os.path.join(out, n)) for n in names}
  again = demo_corpus.export_chorales(out, limit=2, workers=1)
  assert again["written"] == 0 and again["kept"] == len(names)
  assert {n: _read(os.path.join(out, n)) for n in os.listdir(out)} == first
  config = config_lib.PreprocessConfig()
  for name, data in first.items():
    fw = steps.file_to_windows(
        steps.parse_file((name, data, "train"), config), config)
    assert fw.stats["status"] == "converted" and fw.stats["windows"] > 5
