"""Security mechanisms that need no store and no framework: CSRF checks, sealing (AES-GCM
key rings), re-authentication levels, the unknown-token throttle.

May import: ``coatcheck.core``, ``coatcheck.errors``, the standard library, and
``cryptography`` (sealing only, imported by the cookie store). Never the engine, a store,
or an edge.
"""
