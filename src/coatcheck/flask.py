"""Public import path of the Flask integration, kept stable: the code lives in
``coatcheck.integrations.flask`` (see the layers in ``docs/architecture.md``)."""

from coatcheck.integrations.flask import *  # noqa: F403
from coatcheck.integrations.flask import __all__ as __all__
