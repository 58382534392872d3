r"""Runs a job module on one replica of a multi-machine Vertex AI job, as its shard.

    python -m deploy.replica trainer.generate --model_dir=gs://... --output=gs://...

is the container command that deploy.vertex gives every replica of a
`generate --workers=N` job. It reads which replica this is from CLUSTER_SPEC
(set by Vertex AI; pool 0 = shard 0, replica i of pool 1 = shard i + 1, see
deploy/specs.py `replica_shard`) and replaces itself with

    python -m MODULE ARGS... --num_shards=N --shard_index=K

so the job module itself stays unaware of Vertex AI. It lives in deploy/, next
to the spec that lays out the pools, because both must agree on that layout.
It does nothing else: no flags of its own, no I/O.
"""

import os
import sys

from deploy import specs


def shard_argv(argv: list, environ) -> list:
  """The command this replica runs: MODULE ARGS + its shard flags.

  Args:
    argv: [MODULE, ARGS...].
    environ: the environment (CLUSTER_SPEC or TF_CONFIG).

  Raises:
    specs.SpecError: no module, shard flags already given, or no cluster spec.
  """
  if not argv or argv[0].startswith("-"):
    raise specs.SpecError("usage: python -m deploy.replica MODULE [ARGS...], "
                          "e.g. trainer.generate --model_dir=... --output=...")
  module, args = argv[0], list(argv[1:])
  given = [a for a in args if a.split("=", 1)[0] in ("--num_shards",
                                                     "--shard_index")]
  if given:
    raise specs.SpecError(f"{given[0]}: deploy.replica sets the shard from the "
                          "cluster; remove it.")
  index, count = specs.replica_shard(environ)
  return [sys.executable, "-m", module, *args, f"--num_shards={count}",
          f"--shard_index={index}"]


def main() -> None:
  try:
    argv = shard_argv(sys.argv[1:], os.environ)
  except specs.SpecError as e:
    sys.exit(f"deploy.replica: {e}")
  print(f"deploy.replica: {' '.join(argv[2:])}", flush=True)
  os.execv(argv[0], argv)


if __name__ == "__main__":
  main()
