"""The session service: one HTTP API over the engine for every language and gateway.

``coatcheck serve`` runs it (FastAPI on uvicorn): the ``/v1`` calls (``api``, ``calls``),
forward-auth for gateways (``forward_auth``), JWTs and their JWKS (``signing``), API keys
(``apikeys``), health and Prometheus metrics (``health``, ``metrics``), all kept in the
session store itself (``reserved``) so that any number of nodes share them. It is one more
edge of the engine: every call loads and commits a session exactly as the middleware does.

It needs the ``serve`` extra (FastAPI, uvicorn, prometheus-client, PyJWT, cryptography).

May import: every layer below it (integrations, http, engine, stores, security, core,
errors), FastAPI, pydantic, prometheus-client, PyJWT and cryptography. Never the demo or
the testing helpers beside it; only the command line imports it.
"""
