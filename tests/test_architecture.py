"""The shape of the code: no import cycle among shipped modules, and no job
outside trainer/models/ that tests a model's name (it asks the model)."""

import ast
import os

from trainer import models

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PACKAGES = ("common", "preprocess", "trainer", "deploy")


def _modules() -> dict:
  """{dotted name: path} of every shipped module."""
  found = {}
  for package in PACKAGES:
    for folder, _, names in os.walk(os.path.join(ROOT, package)):
      for name in names:
        if name.endswith(".py"):
          rel = os.path.relpath(os.path.join(folder, name), ROOT)[:-3]
          dotted = rel.replace(os.sep, ".")
          found[dotted.removesuffix(".__init__")] = os.path.join(folder, name)
  return found


def _module_level_imports(path: str, known: dict, this: str) -> set:
  """Shipped modules that `path` imports when it is loaded (imports inside
  functions run later, so they cannot make a load-time cycle)."""
  with open(path, encoding="utf-8") as f:
    tree = ast.parse(f.read())
  is_package = path.endswith("__init__.py")
  out = set()
  for node in tree.body:
    if isinstance(node, ast.Import):
      out.update(a.name for a in node.names if a.name in known)
    elif isinstance(node, ast.ImportFrom):
      base = node.module or ""
      if node.level:
        parts = this.split(".")[:len(this.split(".")) - node.level +
                                 (1 if is_package else 0)]
        base = ".".join(parts + ([base] if base else []))
      if base in known:
        out.add(base)
      out.update(f"{base}.{a.name}" for a in node.names
                 if f"{base}.{a.name}" in known)
  # A submodule import loads its parent packages first.
  for name in list(out):
    parts = name.split(".")
    out.update(".".join(parts[:i]) for i in range(1, len(parts))
               if ".".join(parts[:i]) in known)
  out.discard(this)
  return out


def _find_cycle(graph: dict) -> list | None:
  state, stack = {}, []

  def visit(node):
    state[node] = "open"
    stack.append(node)
    for nxt in sorted(graph[node]):
      if state.get(nxt) == "open":
        return stack[stack.index(nxt):] + [nxt]
      if nxt not in state:
        found = visit(nxt)
        if found:
          return found
    stack.pop()
    state[node] = "done"
    return None

  for node in sorted(graph):
    if node not in state:
      found = visit(node)
      if found:
        return found
  return None


def test_no_import_cycle_among_shipped_modules():
  known = _modules()
  graph = {}
  for name, path in known.items():
    parents = {".".join(name.split(".")[:i])
               for i in range(1, len(name.split(".")))} & set(known)
    # A package's own loading of its parent is not an edge back to it.
    graph[name] = _module_level_imports(path, known, name) - parents
  assert len(graph) > 50  # the walk found the tree
  assert _find_cycle(graph) is None, " -> ".join(_find_cycle(graph))


def test_the_cycle_finder_finds_a_cycle():
  assert _find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == [
      "a", "b", "c", "a"]
  assert _find_cycle({"a": {"b"}, "b": set()}) is None


def _string_constants(path: str) -> list:
  with open(path, encoding="utf-8") as f:
    tree = ast.parse(f.read())
  docstrings = {id(n.body[0].value) for n in ast.walk(tree)
                if isinstance(n, (ast.Module, ast.FunctionDef, ast.ClassDef))
                and n.body and isinstance(n.body[0], ast.Expr)}
  return [(n.lineno, n.value) for n in ast.walk(tree)
          if isinstance(n, ast.Constant) and isinstance(n.value, str)
          and id(n) not in docstrings]


def test_a_model_name_appears_only_under_trainer_models():
  names = set(models.NAMES)
  offenders = []
  for name, path in _modules().items():
    if name.startswith("trainer.models"):
      continue
    offenders += [f"{name}:{line}: {value!r}"
                  for line, value in _string_constants(path)
                  if value in names]
  assert not offenders


def test_every_registered_model_has_its_folder_and_settings():
  for name in models.NAMES:
    module = models.settings(name)
    for attr in ("Training", "Sampling", "DEFAULTS", "AIS_DEFAULTS",
                 "shape_fields"):
      assert hasattr(module, attr), f"{name}/settings.py has no {attr}"
    assert models.get(name).name == name
