"""Public import path of the ASGI middleware, kept stable: the code lives in
``coatcheck.integrations.asgi`` (see the layers in ``docs/architecture.md``)."""

from coatcheck.integrations.asgi import *  # noqa: F403
from coatcheck.integrations.asgi import __all__ as __all__
