"""One module (or folder) per framework: ASGI, WSGI, Starlette, FastAPI, Litestar, Flask,
Django. Each only translates its framework's request and response to ``coatcheck.http``
and ``coatcheck.engine`` calls; a rule written here is a rule in the wrong place.

May import: ``coatcheck.http`` and everything below it, and its own framework. Never
another integration's framework; never the CLI, the demo or the service.
"""
