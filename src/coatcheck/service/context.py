"""The parts one service process shares between its routes, kept in the app's state."""

from __future__ import annotations

from dataclasses import dataclass

from starlette.requests import Request

from coatcheck.analytics.setup import Analytics, analytics_for
from coatcheck.engine.manager import SessionManager
from coatcheck.privacy.registry import PrivacyRegistry
from coatcheck.service.apikeys import KeyChecker
from coatcheck.service.metrics import Metrics
from coatcheck.service.reserved import server_store
from coatcheck.service.settings import ServiceSettings
from coatcheck.service.signing import Signer


@dataclass(frozen=True, slots=True)
class Service:
    manager: SessionManager
    settings: ServiceSettings
    keys: KeyChecker
    signer: Signer
    metrics: Metrics
    privacy: PrivacyRegistry | None = None
    """Export and erasure of a user (``/v1/users/{user_id}``), retention; None: the
    service offers neither (those calls answer 503)."""
    analytics: Analytics | None = None
    """The manager's analytics (``COATCHECK_ANALYTICS_URL``), or None when it is off."""

    @classmethod
    def build(
        cls,
        manager: SessionManager,
        settings: ServiceSettings,
        metrics: Metrics,
        privacy: PrivacyRegistry | None = None,
    ) -> Service:
        """The parts over ``manager``'s store (the API keys and the JWT ring live there)."""
        store, clock = server_store(manager.store), manager.clock
        analytics = analytics_for(manager)
        if analytics is not None:
            metrics.analytics = analytics.writer.stats
        return cls(
            manager=manager,
            settings=settings,
            keys=KeyChecker(store, clock, settings.api_key_cache),
            signer=Signer(store, clock, settings.jwt_algorithm),
            metrics=metrics,
            privacy=privacy,
            analytics=analytics,
        )


def service_of(request: Request) -> Service:
    service = request.app.state.coatcheck_service
    assert isinstance(service, Service)
    return service
