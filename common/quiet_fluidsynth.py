"""Imports pyfluidsynth (if installed) without letting it write to stdout.

pyfluidsynth prints "'fluidsynth' was found at ..." to stdout on import when
the environment variable CI is set (its debug switch), and pretty_midi imports
it whenever pretty_midi is imported. Our CLIs print JSON on stdout, so every
package of this project imports this module first (their __init__.py): once
fluidsynth sits in sys.modules, pretty_midi's import of it prints nothing.
"""

import contextlib
import io

# ImportError / OSError: not installed, or no libfluidsynth (sine previews).
with contextlib.redirect_stdout(io.StringIO()), contextlib.suppress(
    ImportError, OSError):
  import fluidsynth  # noqa: F401  # pylint: disable=unused-import
