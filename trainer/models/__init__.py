"""The model registry: a model is a name here and a folder beside this file.

Each folder `trainer/models/<name>/` holds everything one model is:

    settings.py     its own settings (dataclasses declared with
                    common.cli.setting), its defaults for the job's shared
                    settings, and their checks; READS, the settings of
                    another model it uses too. No TensorFlow: deploy/ and
                    the CLIs read it before TensorFlow starts.
    model.py        `MODEL`, a `base.Model`: the training step, the sampler,
                    the likelihood, and how the model is saved and loaded.
    the rest        its maths and the parts model.py assembles.

The jobs (trainer/training, evaluation, generation, comparison) ask the model
for what they need; none of them tests a model's name. Adding a model is a
folder and one line in MODELS. `recurrent/` is no model: it holds the parts
the temporal models (rnn_rbm, rnn_nade) share.
"""

import importlib

# name -> one line for --model's help. The first is the default.
MODELS = {
    "rbm": "the window RBM of the original post: one RBM over a window of "
           "frames",
    "rnn_rbm": "the RNN-RBM (Boulanger-Lewandowski et al. 2012): an RBM per "
               "frame whose biases follow an RNN over the piece so far",
    "rnn_nade": "the RNN-NADE (the same paper): the RNN-RBM's RNN with an "
                "exact NADE per frame, scored without AIS",
    "bernoulli": "independent Bernoulli units per frame: the baseline every "
                 "model must beat",
}
NAMES = tuple(MODELS)
DEFAULT = NAMES[0]


def check_name(name: str) -> None:
  """Raises ValueError (one line) for a name that is not registered."""
  if name not in MODELS:
    raise ValueError(f"--model={name!r}; use one of {', '.join(NAMES)}.")


def settings(name: str):
  """The settings module of model `name` (no TensorFlow)."""
  check_name(name)
  return importlib.import_module(f"trainer.models.{name}.settings")


def get(name: str):
  """Model `name`'s `base.Model` (imports TensorFlow)."""
  check_name(name)
  return importlib.import_module(f"trainer.models.{name}.model").MODEL


def training_settings() -> tuple:
  """Every model's own training settings class, in registry order: the
  job's TrainConfig holds their fields beside the shared ones."""
  return tuple(settings(name).Training for name in NAMES)


def sampling_settings() -> tuple:
  """Every model's own generation settings class (GenerateConfig's)."""
  return tuple(settings(name).Sampling for name in NAMES)


def owner(field: str) -> str | None:
  """The model whose own (training or sampling) setting `field` is."""
  for name in NAMES:
    module = settings(name)
    for cls in (module.Training, module.Sampling):
      if field in cls.__dataclass_fields__:
        return name
  return None
