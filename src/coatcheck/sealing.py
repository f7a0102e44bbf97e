"""Public import path of AES-256-GCM sealing and key rings, kept stable: the code lives in
``coatcheck.security.sealing`` (see the layers in ``docs/architecture.md``)."""

from coatcheck.security.sealing import *  # noqa: F403
from coatcheck.security.sealing import __all__ as __all__
