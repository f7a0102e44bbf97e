"""Public import path of SessionConfig, kept stable: the code lives in
``coatcheck.core.config`` (see the layers in ``docs/architecture.md``)."""

from coatcheck.core.config import *  # noqa: F403
from coatcheck.core.config import __all__ as __all__
