"""Incident response: the bundle a post-mortem starts from (``bastion incident bundle``)."""

from bastion.incident.bundle import (
    DEFAULT_EVENTS,
    DEFAULT_LOG_LINES,
    BundleReport,
    BundleSource,
    NodeNotRunning,
    check_destination,
    check_log,
    default_name,
    make_bundle,
    tail_lines,
)
from bastion.incident.masking import mask_config, register_env_secrets

__all__ = [
    "DEFAULT_EVENTS",
    "DEFAULT_LOG_LINES",
    "BundleReport",
    "BundleSource",
    "NodeNotRunning",
    "check_destination",
    "check_log",
    "default_name",
    "make_bundle",
    "mask_config",
    "register_env_secrets",
    "tail_lines",
]
