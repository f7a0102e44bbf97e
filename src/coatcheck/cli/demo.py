"""``coatcheck demo``: the demo shop on uvicorn, over the store the operator names, with
the deployment's privacy registry (the consent ledger and the activity log fed by the
manager's events), so the banner's answers are recorded and the privacy page's download
and erasure work as under ``coatcheck serve``."""

from __future__ import annotations

from typing import TYPE_CHECKING

from coatcheck.cli.common import PROBE_KEY, CommandError, is_loopback, printable, redacted
from coatcheck.cli.privacy import registry_over
from coatcheck.stores.base import Store

if TYPE_CHECKING:
    from rich.console import Console


def run_demo(host: str, port: int, store_url: str, console: Console) -> None:
    """Serve the demo shop with uvicorn until interrupted."""
    try:
        import uvicorn

        from coatcheck.demo import create_app
        from coatcheck.integrations.asgi import SessionMiddleware
    except ImportError as exc:
        raise CommandError(f"the demo needs {exc.name!r}: pip install 'coatcheck[demo]'") from None
    with registry_over(store_url) as (manager, registry):
        manager.sinks.extend(s for s in registry.sinks if s not in manager.sinks)
        for holder in registry.holders:
            attach = getattr(holder, "attach", None)  # the consent ledger: sink and recall
            if callable(attach):
                attach(manager)
        store = manager.store  # an unreachable store fails here, not per request:
        probe = store if isinstance(store, Store) else store.revocations
        if probe is not None:
            probe.get_sync(PROBE_KEY)
        app = SessionMiddleware(create_app(manager, privacy=registry), manager=manager)
        shown = f"[{host}]" if ":" in host else host
        url = f"http://{shown}:{port}/"
        console.print(f"[bold]coatcheck demo shop[/bold] on [link={url}]{url}[/link]")
        console.print(f"store: {printable(redacted(store_url))}", markup=False)
        if manager.config.secure and not is_loopback(host):
            console.print(
                "[yellow]note:[/yellow] browsers keep Secure cookies over plain HTTP only on "
                "localhost and 127.0.0.1; elsewhere, serve the demo behind HTTPS."
            )
        uvicorn.run(app, host=host, port=port, log_level="info")
