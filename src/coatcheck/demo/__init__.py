"""The demo shop behind ``coatcheck demo``: every engine feature on a few plain HTML pages.

It exists to show a newcomer what happens to a session (an anonymous cart, a sign-in that
keeps it, an account page with "your devices", revocation, a password change that ends the
other sessions, an e-mail change that asks for the password again) without reading any
code first. It needs the ``demo`` extra (Starlette, uvicorn, python-multipart, argon2-cffi).

May import: every layer below it (the engine, the security checks, the ASGI integration,
the core), Starlette and argon2-cffi.
Only the command line imports it.
"""

from __future__ import annotations

from coatcheck.demo.app import create_app

__all__ = ["create_app"]
