"""The test shop (tests/support/shop.py) as an importable ASGI app for subprocess servers.

``uvicorn tests.apps.shop_app:app`` serves it over the store named by ``COATCHECK_STORE``
(any store URL), so a test can run several app processes that share one store, or kill one.
"""

from __future__ import annotations

import os

from coatcheck import SessionConfig, SessionManager
from coatcheck.stores import from_url
from tests.support.shop import create_shop

manager = SessionManager(from_url(os.environ["COATCHECK_STORE"]), SessionConfig.from_env())
app = create_shop(manager)
