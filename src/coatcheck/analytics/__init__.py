"""Session analytics: event sinks, the consent-gated page-view recorder, the analytics store
and the engagement figures as Matomo, Plausible and Umami define them.

The layer sits above ``privacy`` (recording is gated by consent, and the analytics store is a
holder of personal data under the privacy contract) and below ``http``, so every edge can
record a page view through it. The engine only emits events; sinks here consume them.

May import: ``privacy``, ``engine``, ``stores``, ``security``, ``core``, ``errors``.
"""
