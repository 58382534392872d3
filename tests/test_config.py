"""trainer/config.py: the tuned defaults, the preset that undoes them (the
original post's settings), and each model's own settings."""

import dataclasses

from absl import flags
import pytest

from common import cli
from trainer import config as config_lib

# The original post's configurations, field by field: --preset=original must
# give exactly these back.
SEED_TRAIN = dict(num_hidden=50, learning_rate=0.005, batch_size=100,
                  epochs=200, cd_k=1, persistent=False, momentum=False,
                  weight_decay=0.0, seed=0)
SEED_GENERATE = dict(num_samples=1000, gibbs_steps=50, init="random", seed=0,
                     temperature=1.0, articulate_threshold=0.0, num_windows=1,
                     overlap=0, primer=None, num_shards=1, shard_index=0,
                     resample_empty=0, tempo=120.0, program=0, velocity=80,
                     candidates=1)  # one candidate: no choice, as before


def _from_flags(config_cls, argv):
  values = flags.FlagValues()
  cli.define_flags(config_cls, flag_values=values)
  values(["prog", *argv])
  return cli.config_from_flags(config_cls, flag_values=values)


@pytest.mark.parametrize("config_cls, seed", [
    (config_lib.TrainConfig, SEED_TRAIN),
    (config_lib.GenerateConfig, SEED_GENERATE)])
def test_preset_original_is_exactly_the_old_configuration(config_cls, seed,
                                                          capsys):
  old = config_cls(**seed)
  assert _from_flags(config_cls, ["--preset=original"]) == old
  assert cli.preset(config_cls, "original") == old
  # Its old name still works, with a one-line note.
  capsys.readouterr()
  assert _from_flags(config_cls, ["--preset=seed"]) == old
  note = capsys.readouterr().err.strip().splitlines()
  assert len(note) == 1 and "--preset=original" in note[0]
  # The tuned defaults differ from it, and only in the preset's fields.
  new = _from_flags(config_cls, [])
  assert new == config_cls()
  changed = {f.name for f in dataclasses.fields(config_cls)
             if getattr(new, f.name) != getattr(old, f.name)}
  assert changed == set(config_cls.PRESETS["original"])


def test_an_explicit_flag_wins_over_the_preset():
  train = _from_flags(config_lib.TrainConfig,
                      ["--preset=original", "--num_hidden=100", "--momentum"])
  assert (train.num_hidden, train.momentum, train.weight_decay) == (100, True,
                                                                   0.0)
  # A flag given with the preset's own value, or the default's, is kept too.
  train = _from_flags(config_lib.TrainConfig,
                      ["--weight_decay=1e-4", "--preset=original"])
  assert (train.num_hidden, train.weight_decay) == (50, 1e-4)
  generate = _from_flags(config_lib.GenerateConfig,
                         ["--preset=original", "--num_windows=4"])
  assert (generate.num_windows, generate.temperature,
          generate.articulate_threshold) == (4, 1.0, 0.0)
  generate = _from_flags(config_lib.GenerateConfig,
                         ["--preset=original", "--temperature=0.9"])
  assert (generate.num_windows, generate.temperature) == (1, 0.9)


def test_an_unknown_preset_is_a_usage_error():
  with pytest.raises(flags.IllegalFlagValueError, match="original"):
    _from_flags(config_lib.TrainConfig, ["--preset=nope"])
  with pytest.raises(cli.UsageError, match="--preset=nope"):
    cli.preset(config_lib.GenerateConfig, "nope")


def test_default_length_is_the_corpus_and_the_original_one_window():
  # 0: the sampler reads the corpus's median piece (test_default_length.py).
  assert config_lib.GenerateConfig().num_windows == 0
  assert config_lib.GenerateConfig().num_frames == 0
  original = cli.preset(config_lib.GenerateConfig, "original")
  assert original.num_windows == 1  # 15 steps: under a bar, as the post


def test_a_setting_of_another_model_is_refused():
  with pytest.raises(ValueError, match="--init_from.*--model=rnn_rbm"):
    config_lib.TrainConfig(init_from="x")
  with pytest.raises(ValueError, match="--persistent.*--model=rbm"):
    config_lib.TrainConfig(model="bernoulli", persistent=True,
                           **config_lib.model_defaults("bernoulli", set()))
  # Each model's settings are its own dataclass's fields, all in the job's.
  from trainer import models  # pylint: disable=g-import-not-at-top
  for cls in models.training_settings():
    assert set(cls.__dataclass_fields__) <= set(
        config_lib.TrainConfig.__dataclass_fields__)
