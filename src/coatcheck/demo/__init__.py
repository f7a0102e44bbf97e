"""The demo shop behind ``coatcheck demo``: every engine feature on a few plain HTML pages.

It exists to show a newcomer what happens to a session (an anonymous cart, a login that
keeps it, a "your devices" list with revocation) without reading any code first. It needs
the ``demo`` extra (Starlette, uvicorn, python-multipart).

May import: every layer below it (the engine, the ASGI integration, the core) and Starlette.
Only the command line imports it.
"""

from __future__ import annotations

from coatcheck.demo.app import create_app

__all__ = ["create_app"]
