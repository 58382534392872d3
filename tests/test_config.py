"""trainer/config.py: the tuned defaults and the seed preset that undoes them."""

import dataclasses

from absl import flags
import pytest

from common import cli
from trainer import config as config_lib

# The configurations before issue 9's tuning (main before this change), field
# by field: --preset=seed must give exactly these back.
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
def test_preset_seed_is_exactly_the_old_configuration(config_cls, seed):
  old = config_cls(**seed)
  assert _from_flags(config_cls, ["--preset=seed"]) == old
  assert cli.preset(config_cls, "seed") == old
  # The tuned defaults differ from it, and only in the preset's fields.
  new = _from_flags(config_cls, [])
  assert new == config_cls()
  changed = {f.name for f in dataclasses.fields(config_cls)
             if getattr(new, f.name) != getattr(old, f.name)}
  assert changed == set(config_cls.PRESETS["seed"])


def test_an_explicit_flag_wins_over_the_preset():
  train = _from_flags(config_lib.TrainConfig,
                      ["--preset=seed", "--num_hidden=100", "--momentum"])
  assert (train.num_hidden, train.momentum, train.weight_decay) == (100, True,
                                                                   0.0)
  # A flag given with the preset's own value, or the default's, is kept too.
  train = _from_flags(config_lib.TrainConfig,
                      ["--weight_decay=1e-4", "--preset=seed"])
  assert (train.num_hidden, train.weight_decay) == (50, 1e-4)
  generate = _from_flags(config_lib.GenerateConfig,
                         ["--preset=seed", "--num_windows=4"])
  assert (generate.num_windows, generate.temperature,
          generate.articulate_threshold) == (4, 1.0, 0.0)
  generate = _from_flags(config_lib.GenerateConfig,
                         ["--preset=seed", "--temperature=0.9"])
  assert (generate.num_windows, generate.temperature) == (1, 0.9)


def test_an_unknown_preset_is_a_usage_error():
  with pytest.raises(flags.IllegalFlagValueError, match="seed"):
    _from_flags(config_lib.TrainConfig, ["--preset=nope"])
  with pytest.raises(cli.UsageError, match="--preset=nope"):
    cli.preset(config_lib.GenerateConfig, "nope")


def test_default_samples_are_at_least_8_bars():
  # Issue 9: windows of 15 steps (the demo corpus's) at 4 steps a quarter,
  # chained with the default overlap (a third of a window), as generate_lib
  # chains them.
  config, window = config_lib.GenerateConfig(), 15
  overlap = config.overlap or window // 3
  steps = window + (config.num_windows - 1) * (window - overlap)
  assert steps / 16 >= 8
  seed = cli.preset(config_lib.GenerateConfig, "seed")
  assert seed.num_windows == 1  # 15 steps: under a bar, as the seed wrote
