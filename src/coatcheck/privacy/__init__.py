"""Privacy built in: consent and its ledger, Global Privacy Control, minimisation of what is
kept about a client, the personal-data contract (export this user, erase this user), retention
and the rotation of data keys.

The layer sits above ``engine`` and below ``http``: the edges apply GPC and minimisation through
it, and it reaches the stores only through the engine. The pure rules that a ``Session`` needs
(consent categories and their state) live in ``core``; this layer holds what needs a store, a
clock or a library.

May import: ``engine``, ``stores``, ``security``, ``core``, ``errors``.
"""
