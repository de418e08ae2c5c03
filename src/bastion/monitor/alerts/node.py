"""Alerting wired for one node: the engine on its loop, the notifier's threads and the
dead-man's switch, built from the node's config and vault.

The node runner builds it (``Alerting.for_node``, None when the config has no
``[monitoring]`` or turns it off), starts it once its state is recovered (the alerts of
its last run are carried over, and those that state calls for fire then), runs
``run()`` as one of its tasks (the heartbeat of the dead-man's switch, and the engine's
``tick``) and closes it on the way out. The node's sampler hands it each sample
(``on_sample``) and asks it for its own series (``sources``).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Final

from bastion.bus import MessageBus
from bastion.clock import Clock
from bastion.config import PaperConfig
from bastion.errors import ConfigError
from bastion.monitor.alerts.config import AlertRouteConfig
from bastion.monitor.alerts.engine import AlertEngine
from bastion.monitor.alerts.restart import StartingNode, clearing_of, standing_conditions
from bastion.monitor.deadman import DeadmanSwitch, check_ping_url
from bastion.monitor.notify import Notifier, Transport
from bastion.monitor.sample import Sample, SampleBuilder
from bastion.vault.refs import MemorySecrets, Secret, SecretSource, secret_name

TICK_S: Final = 0.25
"""How often the engine looks at repeats, escalations, silences and quiet alerts (and
the loop proves it turns to the dead-man's switch)."""


def route_urls(config: PaperConfig, secrets: SecretSource | None) -> dict[str, list[Secret]]:
    """Each route's URLs from the vault (``ConfigError`` naming the key if missing)."""
    source = secrets if secrets is not None else MemorySecrets({})
    urls: dict[str, list[Secret]] = {}
    for n, route in enumerate(config.alert_routes):
        urls[route.name] = [
            _secret(source, key, name) for key, name in route.secret_refs(f"alert_routes[{n}]")
        ]
    return urls


def _secret(source: SecretSource, key: str, name: str) -> Secret:
    try:
        return source.get(name)
    except ConfigError as error:
        raise type(error)(f"key '{key}': {error}") from None


class Alerting:
    """One node's engine, notifier and dead-man's switch."""

    def __init__(
        self, *, engine: AlertEngine, notifier: Notifier, deadman: DeadmanSwitch | None
    ) -> None:
        self.engine = engine
        self.notifier = notifier
        self.deadman = deadman

    @classmethod
    def for_node(
        cls,
        *,
        bus: MessageBus,
        clock: Clock,
        config: PaperConfig,
        secrets: SecretSource | None,
        epoch: int,
        transport: Callable[[AlertRouteConfig], Transport] | None = None,
    ) -> Alerting | None:
        """The node's alerting, or None when its monitoring is off."""
        monitoring = config.monitoring
        if monitoring is None or not monitoring.enabled:
            return None
        notifier = Notifier(config.alert_routes, route_urls(config, secrets), transport=transport)
        deadman = None
        if monitoring.deadman is not None:
            key = "monitoring.deadman.url"
            name = secret_name(monitoring.deadman.url, key)
            url = _secret(secrets if secrets is not None else MemorySecrets({}), key, name)
            check_ping_url(url, key)
            deadman = DeadmanSwitch(
                url,
                interval_s=monitoring.deadman.interval_s,
                timeout_s=monitoring.deadman.timeout_s,
                monotonic=clock.monotonic_s,
            )
        sources = [notifier.sources] + ([deadman.sources] if deadman is not None else [])
        engine = AlertEngine(
            bus=bus,
            clock=clock,
            rules=config.alert_rules(),
            routes=config.alert_routes,
            notifier=notifier,
            node=config.node.id,
            id_prefix=f"{epoch}.",
            sources=sources,
        )
        return cls(engine=engine, notifier=notifier, deadman=deadman)

    def start(self, node: StartingNode) -> None:
        """Start the delivery threads and the dead-man's switch; carry over the alerts
        of the node's last run (its ``AlertBook``), alert on the conditions it recovered
        and end those of its last run that the state it starts in clears
        (``bastion.monitor.alerts.restart``)."""
        self.notifier.start()
        if self.deadman is not None:
            self.deadman.start()
        engine = self.engine
        engine.take_over(node.alerts)
        engine.standing(standing_conditions(node.risk, engine.clock), clearing_of(node))

    async def run(self) -> None:
        """On the trading loop until canceled: the heartbeat and the engine's tick."""
        while True:
            if self.deadman is not None:
                self.deadman.beat()
            self.engine.tick()
            await asyncio.sleep(TICK_S)

    def on_sample(self, sample: Sample) -> None:
        self.engine.on_sample(sample)

    def sources(self, builder: SampleBuilder) -> None:
        self.engine.sources(builder)

    def close(self) -> None:
        """Stop the dead-man's switch (the outside monitor notices), then the notifier
        (what is queued gets a short while to go out)."""
        if self.deadman is not None:
            self.deadman.close()
        self.notifier.close()
