"""Django's own session tests (``tests/sessions_tests`` of the supported Django release)
run against ``SESSION_ENGINE = "coatcheck.django"`` on every store.

The tests are fetched from PyPI at test time (``sdist``), never committed; ``harness``
binds them to coatcheck and holds the tables of expected failures.
"""
