"""MemcachedStore: sessions in memcached, expiring natively, indexes kept with compare-and-set.

What a cache cannot promise
---------------------------
Memcached is a cache: it may drop any item at any moment, and this store cannot hide that.

- **Sessions may vanish.** Under memory pressure memcached evicts least-recently-used items;
  an evicted session looks exactly like an unknown token, so its user is logged out and
  its data (a cart, say) is lost. The manager then hands out a fresh anonymous session: no
  error, no 503. Size the cache (``-m``) well above the working set and watch its
  ``evictions`` counter.
- **Indexes may miss sessions.** The per-user index and the handle index are items too and
  can be evicted on their own. Then "your devices" lists fewer sessions than exist, and
  ``revoke`` / ``revoke_user`` ("log out everywhere") cannot reach the sessions the index
  forgot: they stay valid until their own deadline. Applications that must guarantee
  revocation should use the Redis or PostgreSQL store.
- **Nothing survives a restart** of the memcached process, and nothing is replicated: a
  restart or a lost node logs out every user whose session lived there.
- **Expired sessions look unknown.** Memcached drops an item at its deadline, so the
  manager sees "unknown" rather than "idle expired" for most expired sessions.

Layout (every name starts with the configurable ``prefix``)
----------------------------------------------------------
- ``s:<key>``: the record, one JSON value; ``<key>`` is SHA-256 of the token, never the
  token. Its memcached expiry is its deadline (``expires_at``), so memcached expires it
  itself. The record's own ``expires_at`` stays authoritative for validity: the item lives
  at least until then (rounded up, plus a second for memcached's coarse clock) and the
  policy rejects it afterwards.
- ``h:<handle>``: the storage key that currently holds this handle.
- ``u:<sha256(user_id)>``: the user's index, a JSON list of ``[key, handle, absolute_at]``.
- ``r:<first 3 hex digits of key>``: one of 4096 registry buckets, ``[key, absolute_at]``
  lists through which ``purge_expired`` and ``count`` reach every session (memcached
  cannot enumerate its keys portably). Sharding keeps each bucket small (about 20 KB at a
  million sessions) and spreads contention.

Index entries carry the session's *absolute* deadline, not the idle one: it is the bound
that never moves when a session is touched, so a touch costs no index write. Each index
item expires with the latest absolute deadline it lists, every write drops the entries
whose absolute deadline has passed, and reads drop entries whose record is missing,
renamed or now belongs to someone else: indexes stay bounded without expiry
notifications. The registry is pruned by ``purge_expired``; run it periodically (as for
the SQL stores) to keep the buckets compact.

Expiry times: memcached reads an expiry of up to 30 days as relative seconds and a larger
one as an absolute unix time. The store computes ``max(1, deadline - time.time())``
seconds, capped at ``max_ttl`` (a year by default, so a clock far in the future cannot pin
items for ever), and sends it as relative seconds (rounded up, plus one) when that is at
most 30 days and as an absolute time otherwise. Expiry thus follows the wall clock of this
host and of memcached; a manager with an injected clock ahead of the wall clock only makes
items live longer, one behind it makes them vanish early (as if evicted).

Atomicity
---------
Each record is one item, so ``apply`` is a ``gets`` + ``cas`` loop: read the record and
its CAS token, apply the patch in memory, write it back only if nobody wrote in between,
otherwise read again. There is no sleep: a loser retries at once and at least one writer
wins each round, so N concurrent writers finish within N attempts; the loop gives up
(StoreUnavailable) after ``max_cas_attempts``. A ``cas`` that finds no item returns False:
a commit never resurrects a session that was revoked, purged or evicted meanwhile.

``rename`` cannot be one operation across two keys. It writes the patched record under the
new key, then replaces the old record with a tombstone (``{"moved_to": new_key}``) by
``cas``; if any other write reached the old record in between, the ``cas`` fails, the new
copy is deleted and the rename starts again from fresh state, so no concurrent write is
lost. Afterwards the handle is re-pointed and the tombstone deleted. The window: between
writing the new copy and the tombstone ``cas`` (one round trip) the session exists under
both keys; the new key is known to nobody yet, and ``list_user`` shows one entry per
handle. Readers that meet the tombstone (``get_by_handle``, ``delete_handle``) follow it;
``get``, ``apply`` and ``rename`` of the old key find nothing.

Index writes come before the record write they describe and index removals after, so an
index is a superset of the truth (except for evictions): a session being created or
renamed for a user is always reachable by "log out everywhere". ``revoke_user`` follows
the tombstone of a rename under way, and reads the user's index again until it lists no
key it has not seen, so a rename that completes while it runs cannot hide the session.

Clients
-------
The sync path uses pymemcache over a small bounded pool of connections. The async path
runs the same code on a dedicated thread pool of the same size (``run_in_executor``)
rather than on a native asyncio client. The two maintained asyncio clients with gets/cas
were tried against a real memcached and rejected: aiomcache 0.8 spins forever without
yielding (blocking the whole event loop, so no timeout can fire) when the server closes
the connection in the middle of a storage command; emcache 1.3 does not report connection
failures to waiting callers, so during an outage every operation waits its full timeout,
and it reconnects with an exponential backoff of up to 60 s, so traffic recovered 4 s
after a 4 s outage. pymemcache fails at once on a refused connection and reconnects on the
next call. The price is the thread hop: on a 2-core machine against a loopback memcached,
``get`` took about 130 us on the sync path and 300 us on the async one (``apply``: 290
and 510 us). A sound async client would save that hop; swapping one in later changes
nothing else here.

Timeouts: ``connect_timeout`` bounds connecting, ``timeout`` each send and receive, and
a caller waits at most ``connect_timeout + timeout`` for a free connection. The async path
waits as boundedly for a worker thread: at most ``max_queued`` calls (256) wait, more fail
at once, and one that waited ``connect_timeout + timeout`` fails when a thread takes it,
without reaching the server; a hung memcached thus never builds an endless backlog. Every memcached
error, refused connection or timeout is raised as StoreUnavailable, so the edge answers 503.
A connection found dead on reuse (memcached restarted) is replaced and the call retried
once, so traffic recovers on the first request after a restart.

Round trips: ``get`` 1; ``apply`` (update or touch) 2; ``create`` 4 (6 for a logged-in
user); ``delete`` 4 (6 for a logged-in user); ``rename`` 9 (login) to 11 (regenerate).

Modules: ``codec`` (item names, JSON documents, expiry: no I/O), ``protocol`` (the pool of
pymemcache clients, raw item access, the worker threads), ``indexes`` (handle pointers,
user lists, registry), ``store`` (the contract), ``url`` (``from_url``).

This package may import errors, core, stores.base and pymemcache; this module only
re-exports the names ``coatcheck.stores.memcached`` has always offered (the scheme
registry imports ``from_url`` from here).
"""

from __future__ import annotations

from coatcheck.stores.memcached.store import MemcachedStore
from coatcheck.stores.memcached.url import from_url

__all__ = ["MemcachedStore", "from_url"]
