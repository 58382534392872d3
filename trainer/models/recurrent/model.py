"""The base class of the temporal models' registered models (rnn_rbm/model.py,
rnn_nade/model.py)."""

import typing

from trainer.models import base
from trainer.models import files
from trainer.models.recurrent import sampling


class RecurrentModel(base.Model):
  """What the recurrent frame models share: files from their sizes, and the
  one-thread-per-op generation. A subclass names its MATHS class and PARAMS."""

  # The maths class, built from model.json's sizes (n_visible, n_hidden,
  # n_hidden_recurrent, recurrence: "tanh" when absent, as models saved
  # before the gated cell), and the arrays params.npz holds.
  MATHS: typing.ClassVar[type]
  PARAMS: typing.ClassVar[tuple]

  def param_names(self, info) -> tuple:
    del info
    return self.PARAMS

  def maths_options(self, sizes: dict) -> dict:
    """MATHS's keyword arguments beyond the four sizes, from model.json's
    sizes (a subclass's own)."""
    del sizes
    return {}

  def load(self, info, params, dataset, path) -> base.LoadedModel:
    sizes = info.get("sizes", {})
    try:
      model = self.MATHS(sizes["n_visible"], sizes["n_hidden"],
                         sizes["n_hidden_recurrent"],
                         recurrence=sizes.get("recurrence", "tanh"),
                         **self.maths_options(sizes))
    except KeyError as e:
      raise ValueError(f"{path}: model.json's sizes lack {e}.") from None
    except ValueError as e:  # a recurrence this version does not know
      raise ValueError(f"{path}: {e}") from None
    if model.n_visible != dataset.n_columns:
      raise ValueError(f"{path}: frames of {model.n_visible} units but the "
                       f"dataset's frames have {dataset.n_columns}.")
    files.assign_checked(model, params, self.param_names(info), path)
    return base.LoadedModel(self.name, model, dataset, info.get("config", {}),
                            int(info.get("step", 0)), info)

  def configure_generation(self) -> bool:
    return sampling.one_thread_per_op()
