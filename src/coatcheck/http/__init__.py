"""Framework-free rules of the HTTP edge, one module per question every integration asks:
``transport`` (which token a request carries), ``cookies`` and ``headers`` (what a commit
sends back: Set-Cookie, Clear-Site-Data, no-store), ``refusals`` (the 503 / 429 / 403
answers, by error class), ``csrf_check`` (the CSRF verdict, sans I/O), ``forms`` (the
token field of a form body) and ``forwarded`` (the client's address and scheme behind
trusted proxies). Every integration asks these instead of deciding for itself.

May import: ``coatcheck.engine`` and everything below it. Never an integration or a web
framework.
"""
