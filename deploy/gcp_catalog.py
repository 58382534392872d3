"""The dated Google Cloud tables deploy/specs.py checks configs against.

They are data, hand-copied from Google's documentation on the date in
gcp_catalog.json ("as_of", with its "source"): update that file, not code,
when Google adds a GPU, a machine or a region. Read once at import; no
network.
"""

import json
import os

_PATH = os.path.join(os.path.dirname(os.path.abspath(__file__)),
                     "gcp_catalog.json")


def _load(path: str = _PATH) -> dict:
  with open(path, encoding="utf-8") as f:
    return json.load(f)


_CATALOG = _load()
# When the tables were copied, and from where.
AS_OF: str = _CATALOG["as_of"]
SOURCE: str = _CATALOG["source"]
# GPU type -> {machine type: the GPUs that machine comes with}.
BUILT_IN_GPUS: dict = _CATALOG["built_in_gpus"]["table"]
# GPU type attached to N1 machines -> {GPU count: most vCPUs allowed}.
N1_GPUS: dict = {gpu: {int(n): vcpus for n, vcpus in limits.items()}
                 for gpu, limits in _CATALOG["n1_gpus"]["table"].items()}
# Machine type prefixes that exist only with their built-in GPUs.
GPU_FAMILIES: tuple = tuple(_CATALOG["gpu_families"]["table"])
# Regions where Vertex AI custom training offers GPUs.
GPU_REGIONS: frozenset = frozenset(_CATALOG["gpu_regions"]["table"])
