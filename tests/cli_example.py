"""A tiny CLI built the way every project CLI is (tests/test_cli.py runs it)."""

import dataclasses
import typing

from common import cli


@dataclasses.dataclass(frozen=True)
class ExampleConfig:
  PRESETS: typing.ClassVar[dict] = {"seed": {"count": 50, "fast": True}}
  PRESET_HELP: typing.ClassVar[dict] = {"seed": "the seed's settings"}

  path: str | None = cli.setting(None, "A file to read.")
  count: int = cli.setting(200, "How many.")
  mode: str = cli.setting("a", "Which mode.", choices=("a", "b"))
  names: tuple = cli.setting(("x",), "Some names.")
  fast: bool = cli.setting(False, "Go fast.")
  rate: float = cli.setting(0.5, "A rate.", flag="example_rate")

  def __post_init__(self):
    if self.count < 1:
      raise ValueError(f"--count={self.count} must be >= 1.")


def main(argv):
  del argv
  config = cli.config_from_flags(ExampleConfig)
  if config.mode == "b":
    raise cli.JobError("mode b fails while running; rerun with --mode=a")
  with open(config.path, encoding="utf-8") as f:
    f.read()
  print(config)


if __name__ == "__main__":
  cli.define_flags(ExampleConfig, required=["path"])
  cli.run(main)
