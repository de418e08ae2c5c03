"""How a session validates inbound FIX 4.4 messages: its configuration.

``ValidationConfig`` is what a broker configures per session: validate user-defined
fields (tags 5000 and up) or let them through, allow fields the dictionary does not
define for the message type, and the user-defined fields each message type may carry
(``PROJECT_FIELDS``, bastion's own, always). Its ``validator()`` is the
``bastion.fix.validator.Validator`` (compiled with mypyc) that checks each message in one
pass against the data dictionary (``bench/fix_validation.py``).
"""

from __future__ import annotations

import functools

import msgspec

from bastion.errors import ConfigError
from bastion.fix.validator import ENVELOPE_TAGS, USER_DEFINED_MIN, Validator

__all__ = ["ENVELOPE_TAGS", "PROJECT_FIELDS", "USER_DEFINED_MIN", "ValidationConfig", "Validator"]

PROJECT_FIELDS: dict[str, tuple[int, ...]] = {"A": (8013, 8014)}
"""bastion's own user-defined fields, allowed in every session: on the Logon,
CancelOrdersOnDisconnect (8013) and FencingEpoch (8014)."""


class ValidationConfig(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """How one session validates what it receives (a ``[validation]`` table).

    - ``enabled``: check every inbound message against the FIX 4.4 dictionary.
    - ``validate_user_defined_fields``: tags from 5000 up must be allowed for the message
      type (``extra_fields``); off: they pass unchecked.
    - ``allow_unknown_fields``: accept tags the dictionary does not define for the
      message type (or at all, below 5000); their values are still checked when the
      dictionary knows the field.
    - ``extra_fields``: MsgType -> user-defined tags it may carry, beyond
      ``PROJECT_FIELDS``, e.g. ``{ "D" = [9001] }``.
    """

    enabled: bool = True
    validate_user_defined_fields: bool = True
    allow_unknown_fields: bool = False
    extra_fields: dict[str, list[int]] = {}

    def check(self, key: str) -> None:
        for msg_type, tags in self.extra_fields.items():
            for tag in tags:
                if tag <= 0:
                    raise ConfigError(
                        f"key '{key}.extra_fields.{msg_type}': tag must be > 0, got {tag}"
                    )

    def validator(self) -> Validator | None:
        """The validator of this configuration (shared by sessions configured alike)."""
        if not self.enabled:
            return None
        extra = tuple(sorted((t, tuple(sorted(tags))) for t, tags in self.extra_fields.items()))
        return _validator(self.validate_user_defined_fields, self.allow_unknown_fields, extra)


@functools.cache
def _validator(
    user_defined: bool, allow_unknown: bool, extra: tuple[tuple[str, tuple[int, ...]], ...]
) -> Validator:
    allowed: dict[str, frozenset[int]] = {}
    for msg_type, tags in (*PROJECT_FIELDS.items(), *extra):
        allowed[msg_type] = allowed.get(msg_type, frozenset()) | frozenset(tags)
    return Validator(
        validate_user_defined_fields=user_defined,
        allow_unknown_fields=allow_unknown,
        extra_fields=allowed,
    )
