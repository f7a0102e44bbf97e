"""RedisStore: sessions in Redis or Valkey, standalone, behind Sentinel, or on a Cluster.

Layout (``P`` is the key prefix, ``coatcheck:`` by default)::

    P s:<key>      hash, the whole session: "d:<name>" holds the JSON text of one session
                   value; "l", "e" and "a" the last-seen time and the two deadlines
                   (expires_at, absolute_at) as exact decimal text; "m" the rest of the
                   record's metadata as one JSON object of strings (short names: h handle,
                   u user_id, c created_at, t auth_at, r remember, ua user_agent, ip,
                   x meta; absent means None, False or empty). Data fields all start with
                   "d:", so a user's keys never collide with metadata. A commit is
                   HSET/HDEL of exactly the fields that changed (the common one, data and
                   a touch, decodes no JSON on the server); a change to "m" is merged by
                   the script (cjson, strings only, so no number loses a digit). The key's
                   TTL is the record's deadline (PEXPIREAT min(expires_at, absolute_at)),
                   so Redis drops a session by itself when it ends.
    P h:<handle>   string: the storage key of the session with that public handle (revoke,
                   ``is_active``). Expires at the session's absolute deadline.
    P u:<user_id>  sorted set: the handles of a user's sessions, scored by absolute deadline.

``<key>`` is SHA-256 of the token (all a store ever receives): no key or value here holds a
raw token. The only other identifiers are public handles and user ids.

Round trips (what an operation costs on the wire; each line is one request/response):

- load: HGETALL. One. (Metadata packed in few fields keeps the reply short: a session with
  one value is ten bulk strings, not twenty-odd, which the profile showed costing more
  than the rest of the load; it also keeps a small session's hash small in memory.)
- commit of a data change, or a touch: one Lua script that checks the record exists
  (never resurrecting it), applies the delta and resets the TTL. One, on every topology.
  (Scripts run by EVALSHA; the first call on a node whose script cache is empty, after a
  restart or failover, costs one more: NOSCRIPT, then EVAL, which caches it again.)
- a read-only request between touches: the load, nothing else.
- new session: one MULTI pipeline (record, handle pointer, user index).
- login/regenerate (a rename): one script on a single node; two on a cluster (below). (The
  manager writes a superseded marker before it, a new session's pipeline: one more.)
- logout: one script on a single node; two on a cluster.

Why the indexes cannot leak. Spring Session's index of a user's sessions grows forever when
an expiry notification is missed. Here nothing depends on notifications (they need CONFIG,
which managed Redis disables): every index entry is scored by its session's *absolute*
deadline, which only a login changes, so the hot path never has to update the index; each
access trims entries whose deadline passed (ZREMRANGEBYSCORE) and the sorted set itself
expires with its last deadline, so an abandoned user's index disappears even if nobody ever
reads it again. Entries whose session ended early (idle timeout, logout that crashed
half-way) are filtered on read and, on a single node, removed atomically when found. The
handle pointer expires at the absolute deadline for the same reason.

Redis Cluster. A session is one key, so it always lives in one slot, and every script
touches exactly one key; pipelines are split by the client per node and are one round trip
of latency. The one operation that spans slots is a rename: the new token's key hashes to a
different slot than the old one, and nothing stable (the handle) is known to a loader that
only has the token. So on a cluster a rename is two steps: a script on the old slot applies
the patch, returns the record and deletes it (the old token is dead from that instant), then
one pipeline writes the record under the new key and repoints the handle and user index.
Nobody knows the new key until the commit returns, so the gap is invisible to other
requests; if the second step fails the user is logged out (fail-safe), never left holding a
live old token. The cost: a revocation that runs within that one round trip can miss the
session being logged in. On a single node (standalone or Sentinel) the same rename is one
atomic script: the store remembers, per process, the handle and user of the records it just
loaded, so the script can name every key it touches (never computing key names inside Lua,
which would break on proxies and clusters). Without a hint (another process loaded the
record, or the 8,192 hints moved on), or with a stale one the script refused, the store
reads the record's handle and user first (one HGET, one more round trip) and still runs
the one atomic script, which checks them: a single node never takes the two-step path
(only a record whose user changes under three such reads would).

Time. Deadlines come from the manager's clock and become absolute TTLs on Redis' clock
(PEXPIREAT), so the TTL equals the deadline exactly; the policy, on the app's clock, stays
the judge of validity. App and Redis clocks should agree (NTP): a skew only moves the moment
Redis reclaims memory, never lets an expired session in. Tests that freeze time in the future
still see every record (purge then deletes by the record's own deadline).

Failures. Every Redis error, timeout or lost connection is ``StoreUnavailable``. Timeouts are
bounded: waiting for a free connection, connecting and each operation each have a limit, and
a lost connection is retried once at once (a pooled socket that died with a restarted
server), never with a sleep.

Requires Redis >= 7.0 or Valkey (``SET PXAT``, ``PEXPIREAT NX/GT``); needs no CONFIG,
keyspace notifications, KEYS or other admin commands (``purge`` and ``count`` use SCAN).

Modules: ``store`` (the contract, each operation written once as a procedure of Redis
operations), ``operations`` (those operations as data), ``scripts`` (the Lua sources and
their SHA1s), ``codec`` (a record as a hash and a patch as script arguments: no I/O),
``hints`` (what a rename needs to be one script), ``options`` (``RedisOptions`` and the
URL forms; a bad URL is a StoreURLError), ``clients`` (redis-py clients and the kept
connections of the hot path), ``exchange`` (a pipeline or a SCAN page as client calls,
written once for both paths), ``drivers`` (the sync and async executors of an operation).

This package may import errors, core, stores.base and redis-py; this module only
re-exports the names ``coatcheck.stores.redis`` has always offered (the scheme registry
imports ``from_url`` from here).
"""

from __future__ import annotations

from coatcheck.stores.redis.options import DEFAULT_PREFIX, RedisOptions
from coatcheck.stores.redis.store import RedisStore, from_url

__all__ = ["DEFAULT_PREFIX", "RedisOptions", "RedisStore", "from_url"]
