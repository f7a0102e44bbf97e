"""The engine: ``SessionManager`` and the procedures it runs (server-side and client-side),
written once as steps and driven by the one sync and one async driver of
``coatcheck.core.steps``.

May import: ``coatcheck.stores`` (the contract in ``stores.base``, never a backend),
``coatcheck.security``, ``coatcheck.core``, ``coatcheck.errors``. Never ``http``, an
integration, or a framework.
"""
