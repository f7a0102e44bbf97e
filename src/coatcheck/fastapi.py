"""Public import path of FastAPI dependencies, kept stable: the code lives in
``coatcheck.integrations.fastapi`` (see the layers in ``docs/architecture.md``)."""

from coatcheck.integrations.fastapi import *  # noqa: F403
from coatcheck.integrations.fastapi import __all__ as __all__
