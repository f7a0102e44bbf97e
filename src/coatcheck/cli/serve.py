"""``coatcheck serve``, ``coatcheck api-keys`` and ``coatcheck jwt-keys``: the session
service and what it keeps in the store.

``build_app`` composes the service with the demo shop at ``/`` over one manager; with
``--workers N`` uvicorn starts N processes, each building its own app (and its own store
connections) through ``app_from_env``. Before any of them starts, ``run_serve`` prepares
the store once: the first admin API key when there is none, and the JWT signing ring.
"""

from __future__ import annotations

import atexit
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from coatcheck.cli.common import PROBE_KEY, CommandError, is_loopback, managed, printable, redacted
from coatcheck.core.config import SessionConfig
from coatcheck.engine.manager import SessionManager
from coatcheck.engine.operations import run_sync
from coatcheck.errors import ConfigError
from coatcheck.privacy import minimise
from coatcheck.stores import from_url
from coatcheck.stores.base import AnyStore, Store

if TYPE_CHECKING:
    from rich.console import Console

    from coatcheck.privacy.registry import PrivacyRegistry
    from coatcheck.service.apikeys import ApiKey
    from coatcheck.service.metrics import ASGIApp, Metrics
    from coatcheck.service.settings import ServiceSettings
    from coatcheck.service.signing import SigningKey

SERVE_HINT = "the service needs {name!r}: pip install 'coatcheck[serve]'"
FACTORY = "coatcheck.cli.serve:app_from_env"


def _service_modules() -> None:
    """Import what the service needs, or fail with the install hint."""
    try:
        import fastapi  # noqa: F401
        import jwt  # noqa: F401
        import prometheus_client  # noqa: F401
        import uvicorn  # noqa: F401

        import coatcheck.service.app  # noqa: F401
    except ImportError as exc:
        raise CommandError(SERVE_HINT.format(name=exc.name)) from None


def service_manager(
    store_url: str, metrics: Metrics, analytics_url: str | None = None
) -> tuple[SessionManager, PrivacyRegistry]:
    """A manager over the store ``store_url`` names, timed and counted by ``metrics``,
    recording analytics in ``analytics_url`` (None: off), and the deployment's privacy
    registry, whose event sinks (the activity log, the consent ledger) it feeds."""
    from coatcheck.privacy.settings import PrivacySettings
    from coatcheck.service.holders import default_registry, deployment
    from coatcheck.service.metrics import TimedStore

    try:
        store = server_store(from_url(store_url))
        config = SessionConfig.from_env().replace(analytics_url=analytics_url)
        privacy = PrivacySettings.from_env()
        clock = time.time
        registry = default_registry(deployment(store, store_url, config, clock, privacy))
    except ConfigError as exc:
        raise CommandError(str(exc)) from None
    sinks = [metrics.sink, *registry.sinks]
    manager = SessionManager(TimedStore(store, metrics), config, clock, events=sinks)
    for holder in registry.holders:
        attach = getattr(holder, "attach", None)  # the consent ledger: sink and recall
        if callable(attach):
            attach(manager)
    return minimise.install(manager), registry


def build_app(settings: ServiceSettings) -> ASGIApp:
    """The service over ``settings.store_url``, with the demo shop at ``/``."""
    from coatcheck.demo import create_app as create_demo
    from coatcheck.integrations.asgi import SessionMiddleware
    from coatcheck.service.app import create_app
    from coatcheck.service.context import Service
    from coatcheck.service.metrics import Metrics

    metrics = Metrics()
    manager, registry = service_manager(settings.store_url, metrics, settings.analytics_url)
    service = Service.build(manager, settings, metrics, privacy=registry)
    demo = SessionMiddleware(create_demo(manager, privacy=registry), manager=manager)
    return create_app(manager, service, fallback=demo)


def app_from_env() -> ASGIApp:
    """uvicorn's factory for each worker process: the settings travel in ``COATCHECK_*``."""
    from coatcheck.service.settings import ServiceSettings

    return build_app(ServiceSettings.from_env())


def load_settings(store_url: str) -> ServiceSettings:
    from coatcheck.service.settings import ServiceSettings

    try:
        return ServiceSettings.from_env(store_url=store_url)
    except ConfigError as exc:
        raise CommandError(str(exc)) from None


def prepare_store(settings: ServiceSettings) -> str | None:
    """Check the store answers, give it a JWT ring, and on a store with no API key at all
    create the first admin key; returns that key (shown once), or None."""
    from coatcheck.service.apikeys import create_first
    from coatcheck.service.signing import ensure

    with managed(settings.store_url) as manager:
        try:
            store = server_store(manager.store)
        except ConfigError as exc:
            raise CommandError(str(exc)) from None
        store.get_sync(PROBE_KEY)  # an unreachable store fails here, not per request
        now = manager.clock()
        key = run_sync(create_first(now), store)
        run_sync(ensure(settings.jwt_algorithm, now), store)
    return key


def run_serve(host: str, port: int, workers: int, store_url: str, console: Console) -> None:
    """Serve until interrupted."""
    _service_modules()
    import uvicorn

    settings = load_settings(store_url)
    first_key = prepare_store(settings)
    if first_key is not None:
        console.print(
            "No API key existed: created [bold]admin[/bold] (scope admin). "
            "It is shown only this once:"
        )
        sys.stdout.write(first_key + "\n")
        sys.stdout.flush()
    shown = f"[{host}]" if ":" in host else host
    base = f"http://{shown}:{port}"
    console.print(f"[bold]coatcheck session service[/bold] on {base}/v1 (docs: {base}/docs)")
    console.print(f"demo shop: {base}/", markup=False)
    console.print(f"dashboard: {base}/admin (sign in with an admin API key)", markup=False)
    console.print(f"store: {printable(redacted(store_url))}", markup=False)
    if SessionConfig.from_env().secure and not is_loopback(host):
        console.print(
            "[yellow]note:[/yellow] browsers keep Secure cookies over plain HTTP only on "
            "localhost; elsewhere serve it behind HTTPS."
        )
    if workers == 1:
        uvicorn.run(build_app(settings), host=host, port=port, log_level="info")
        return
    os.environ["COATCHECK_STORE"] = store_url  # each worker reads its settings from here
    if not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        directory = tempfile.mkdtemp(prefix="coatcheck-metrics-")
        atexit.register(shutil.rmtree, directory, True)
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = directory
    uvicorn.run(FACTORY, factory=True, host=host, port=port, workers=workers, log_level="info")


# -- api-keys and jwt-keys -------------------------------------------------------------------
# The API keys need nothing beyond the ``cli`` extra; the JWT ring needs PyJWT and
# cryptography, from the ``serve`` extra.
def create_key(store_url: str, name: str, scopes: Iterable[str]) -> str:
    from coatcheck.service.apikeys import ApiKeyError, create

    with managed(store_url) as manager:
        try:
            return run_sync(create(name, scopes, manager.clock()), server_store(manager.store))
        except ApiKeyError as exc:
            raise CommandError(str(exc)) from None


def list_keys(store_url: str) -> list[ApiKey]:
    from coatcheck.service.apikeys import listing

    with managed(store_url) as manager:
        return run_sync(listing(), server_store(manager.store))


def revoke_key(store_url: str, name: str) -> None:
    from coatcheck.service.apikeys import ApiKeyError, revoke

    with managed(store_url) as manager:
        try:
            run_sync(revoke(name, manager.clock()), server_store(manager.store))
        except ApiKeyError as exc:
            raise CommandError(str(exc)) from None


def _signing() -> None:
    try:
        import coatcheck.service.signing  # noqa: F401
    except ImportError as exc:
        raise CommandError(SERVE_HINT.format(name=exc.name)) from None


def rotate_jwt_key(store_url: str, algorithm: str) -> SigningKey:
    _signing()
    from coatcheck.service.signing import rotate

    with managed(store_url) as manager:
        return run_sync(rotate(algorithm, manager.clock()), server_store(manager.store))


def jwt_keys(store_url: str) -> tuple[list[SigningKey], float]:
    """Every key of the ring (newest first), and the time now."""
    _signing()
    from coatcheck.service.reserved import JWT_KEYS, read
    from coatcheck.service.signing import parse

    with managed(store_url) as manager:
        data: dict[str, Any] = run_sync(read(JWT_KEYS), server_store(manager.store))
        now = manager.clock()
    return sorted(parse(data).values(), key=lambda k: -k.created_at), now


def server_store(store: AnyStore) -> Store:
    """``store`` as the server-side store the service needs (its reserved records)."""
    from coatcheck.service.reserved import server_store as checked

    return checked(store)
