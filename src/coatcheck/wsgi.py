"""Public import path of the WSGI middleware, kept stable: the code lives in
``coatcheck.integrations.wsgi`` (see the layers in ``docs/architecture.md``)."""

from coatcheck.integrations.wsgi import *  # noqa: F403
from coatcheck.integrations.wsgi import __all__ as __all__
