"""Public import path of Starlette guards, kept stable: the code lives in
``coatcheck.integrations.starlette`` (see the layers in ``docs/architecture.md``)."""

from coatcheck.integrations.starlette import *  # noqa: F403
from coatcheck.integrations.starlette import __all__ as __all__
