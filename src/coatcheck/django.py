"""Public import path of the Django session engine, kept stable: the code lives in
``coatcheck.integrations.django`` (see the layers in ``docs/architecture.md``)."""

from coatcheck.integrations.django import *  # noqa: F403
from coatcheck.integrations.django import __all__ as __all__
