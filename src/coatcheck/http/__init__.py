"""Framework-free rules of the HTTP edge: which token a request carries, the Set-Cookie and
Clear-Site-Data headers, refusals (503 / 429 / 403), the CSRF verdict, form parsing.
Every integration asks these instead of deciding for itself.

May import: ``coatcheck.engine`` and everything below it. Never an integration or a web
framework.
"""
