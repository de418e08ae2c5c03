"""Alerts raised by a command that runs without its node (a systemd timer's ``bastion
backup create`` or ``bastion dr drill``): the config's own rules, routes and notifiers,
in the command's process, for the one condition it saw.

The path is the node's: the condition goes to an ``AlertEngine`` built from the config
(``[[alerts]]`` tables adjust or turn off its rules as they do on the node), which
logs the alert and hands it to the notifier; ``close`` waits (bounded) for the
deliveries. A journal event is published on the engine's bus (``event``); a counter is
read as two samples of the command's own series, before it counted and after
(``counted``), as a node's sampler would read it.

A failed backup command's one reading of ``bastion_backup_failures_total`` also
carries its error as the label ``error`` (one line, every secret the process loaded
masked, cut at ``MAX_ERROR_CHARS``), so the notification says what failed; the node's
own series never carry it.

Nothing is raised when the config has no ``[monitoring]`` (or turns it off), as on the
node; an alert that cannot be sent (a route's secret missing, a receiver down) is logged
and never turns the command's own outcome into another.
"""

from __future__ import annotations

from pathlib import Path
from typing import Final

import structlog

from bastion.bus import MessageBus
from bastion.clock import Clock
from bastion.config import PaperConfig, load_config
from bastion.errors import BastionError
from bastion.model.events import Event
from bastion.monitor.alerts.engine import AlertEngine
from bastion.monitor.alerts.node import route_urls
from bastion.monitor.notify import Notifier
from bastion.monitor.sample import SampleBuilder
from bastion.vault import redact
from bastion.vault.config import load_secrets

log = structlog.get_logger("bastion.monitor.alerts")

DRAIN_S: Final = 30.0
"""How long a command waits for its alert's deliveries (retries included) on exit."""
MAX_ERROR_CHARS: Final = 300


class CommandAlerts:
    """One command's alert engine and notifier (see the module docstring)."""

    def __init__(self, config: PaperConfig, *, base_dir: Path, clock: Clock) -> None:
        refs = [
            ref
            for n, route in enumerate(config.alert_routes)
            for ref in route.secret_refs(f"alert_routes[{n}]")
        ]
        secrets = None
        if refs:
            secrets = load_secrets(
                refs,
                vault=config.vault,
                base_dir=base_dir,
                scope="live" if config.node.mode == "live" else "paper",
                clock=clock,
            )
        self.clock = clock
        self.bus = MessageBus()
        self.notifier = Notifier(config.alert_routes, route_urls(config, secrets))
        self.engine = AlertEngine(
            bus=self.bus,
            clock=clock,
            rules=config.alert_rules(),
            routes=config.alert_routes,
            notifier=self.notifier,
            node=config.node.id,
            id_prefix="cmd.",
        )
        self.notifier.start()

    def event(self, event: Event) -> None:
        """The event rules see ``event`` as if the node had journaled it."""
        self.bus.publish(event)

    def observe(self, metric: str, value: float, **labels: str) -> None:
        """One reading of the command's series ``metric`` (a long-running command
        reads its counters after every round, as a node's sampler does)."""
        builder = SampleBuilder()
        builder.set(metric, value, **labels)
        self.engine.on_sample(builder.build(self.clock.timestamp_ns(), self.clock.monotonic_s()))
        self.engine.tick()

    def counted(self, metric: str, value: float, **labels: str) -> None:
        """The metric rules see counter ``metric`` go from 0 to ``value``."""
        self.observe(metric, 0.0, **labels)
        self.observe(metric, value, **labels)

    @property
    def firing(self) -> list[str]:
        return sorted(alert.rule.name for alert in self.engine.active.values())

    def close(self, drain_s: float = DRAIN_S) -> None:
        self.notifier.close(drain_s=drain_s)


def command_alerts(config_path: Path, *, clock: Clock) -> CommandAlerts | None:
    """The config's alerting for a command, or None (no ``[monitoring]``, or it failed:
    logged, the command goes on)."""
    try:
        config = load_config(config_path, PaperConfig)
        if config.monitoring is None or not config.monitoring.enabled:
            log.info("command_alert_off", config=str(config_path), reason="no [monitoring]")
            return None
        return CommandAlerts(config, base_dir=config_path.resolve().parent, clock=clock)
    except (BastionError, OSError) as error:
        log.error("command_alert_failed", config=str(config_path), error=str(error))
        return None


def raise_backup_failed(
    config_path: Path, command: str, *, clock: Clock, error: str | None = None
) -> list[str]:
    """``backup-failed`` for one failed ``bastion backup COMMAND`` (``error``: what
    failed, as the alert's ``error`` label); the alerts fired."""
    alerts = command_alerts(config_path, clock=clock)
    if alerts is None:
        return []
    labels = {"command": command}
    if error:
        labels["error"] = error_label(error)
    try:
        alerts.counted("bastion_backup_failures_total", 1.0, **labels)
        return alerts.firing
    finally:
        alerts.close()


def error_label(error: str) -> str:
    """An error as one printable line, secrets masked, at most ``MAX_ERROR_CHARS``."""
    line = " ".join(redact.redact(error).split())
    line = "".join(c if c.isprintable() else "?" for c in line)
    return line if len(line) <= MAX_ERROR_CHARS else line[: MAX_ERROR_CHARS - 3] + "..."


def raise_for_event(config_path: Path, event: Event, *, clock: Clock) -> list[str]:
    """The alerts ``event`` sets off under the config's rules (sent); their names."""
    alerts = command_alerts(config_path, clock=clock)
    if alerts is None:
        return []
    try:
        alerts.event(event)
        return alerts.firing
    finally:
        alerts.close()
