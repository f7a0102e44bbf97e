"""Public import path of lifecycle event names and sinks, kept stable: the code lives in
``coatcheck.core.events`` (see the layers in ``docs/architecture.md``)."""

from coatcheck.core.events import *  # noqa: F403
from coatcheck.core.events import __all__ as __all__
