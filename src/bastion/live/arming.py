"""Arming: the step a person takes before a live node may start.

``bastion arm CONFIG --why TEXT`` (``bastion.cli.arm``) proves that someone who knows
the live vault's passphrase asked for this start, and why: it writes an arming token
beside the journal (``<journal>.armed``, mode 0600) holding who armed, why, when, until
when, the config's SHA-256 and the node id, MACed (HMAC-SHA256) with a key kept in the
live vault (``live/arm``, made at the first arming). The node, at start, verifies the
MAC with that key (read from the vault it unlocks unattended), checks the token is not
expired on the wall clock, names this config and node, and was not used before (its id
is not in the journal's ``LiveArmed`` events); then it journals a ``LiveArmed``, and
deletes the token once that is committed (``verify_arming``, then ``discard_arming``).
A token is single-use: a restart, also after a crash, needs a new arming.

Any refusal is a ``NotArmed`` (a ``ConfigError``, exit 2) saying to run ``bastion arm``.

Both journal backends work alike. The token is a local file beside the journal's local
path (``journal.path``: for a PostgreSQL journal, the path the node names its own files
after), on the host that starts. Which armings were used is read from the journal
itself through ``bastion.journal.readable`` (SQLite read-only, or PostgreSQL selects on
``journal.name``), before the journal is opened for writing. Consuming one writes no
table of its own: it is the ``LiveArmed`` event, journaled through the node's journal
writer like any event (committed in a PostgreSQL transaction, hash-chained), so a
backup, a restore and an HA group's shared journal all carry it, and ``journal verify``
covers it. A journal not created yet has used none; one that cannot be read (not a
journal, a wrong key, a database that does not answer) refuses the start.
"""

from __future__ import annotations

import hashlib
import hmac
import os
from contextlib import closing
from pathlib import Path
from typing import Final

import msgspec
import structlog

from bastion.errors import NotArmed
from bastion.journal.locator import JournalLocator
from bastion.journal.readable import events_of_type
from bastion.journal.reader import NotAJournalError
from bastion.model.events import LiveArmed
from bastion.vault.files import write_private
from bastion.vault.refs import Secret

log = structlog.get_logger("bastion.live")

ARM_KEY_NAME: Final = "live/arm"
"""The vault entry whose value (hex) keys the arming tokens' MAC."""
TOKEN_VERSION: Final = 1
MAX_TOKEN_BYTES: Final = 16 * 1024
MAX_WHY_CHARS: Final = 500
_DOMAIN: Final = b"bastion arming token v1\n"


class ArmClaims(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """What an arming says; the MAC covers exactly its canonical JSON encoding."""

    version: int = TOKEN_VERSION
    token_id: str
    node_id: str
    config_sha256: str
    who: str
    why: str
    armed_at_ns: int
    expires_ns: int


class ArmToken(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """The token file: the claims and their MAC (hex)."""

    claims: ArmClaims
    mac: str


def token_path(journal: Path) -> Path:
    """Where the arming of the node journaling to ``journal`` is kept."""
    return journal.with_name(journal.name + ".armed")


def mac_key(secret: Secret) -> bytes:
    """The MAC key from the vault entry ``live/arm`` (hex, as ``Vault.ensure_key`` makes)."""
    try:
        key = bytes.fromhex(secret.reveal())
    except ValueError:
        raise NotArmed(f"vault secret '{ARM_KEY_NAME}' is not a hex key") from None
    if len(key) < 16:
        raise NotArmed(f"vault secret '{ARM_KEY_NAME}' is too short to be a MAC key")
    return key


def _mac(key: bytes, claims: ArmClaims) -> str:
    return hmac.new(key, _DOMAIN + msgspec.json.encode(claims), hashlib.sha256).hexdigest()


def new_claims(
    *, node_id: str, config_sha256: str, who: str, why: str, armed_at_ns: int, valid_s: float
) -> ArmClaims:
    """An arming from now (``armed_at_ns``) for ``valid_s`` seconds, with a fresh id."""
    why = why.strip()
    if not why:
        raise NotArmed("an arming needs a reason: --why TEXT (it is journaled)")
    if len(why) > MAX_WHY_CHARS:
        raise NotArmed(f"--why: at most {MAX_WHY_CHARS} characters, got {len(why)}")
    return ArmClaims(
        token_id=os.urandom(16).hex(),
        node_id=node_id,
        config_sha256=config_sha256,
        who=who,
        why=why,
        armed_at_ns=armed_at_ns,
        expires_ns=armed_at_ns + round(valid_s * 1e9),
    )


def write_token(path: Path, claims: ArmClaims, key: bytes) -> None:
    """Store ``claims`` MACed with ``key`` at ``path`` (0600, atomically; an earlier
    arming there is replaced)."""
    token = ArmToken(claims=claims, mac=_mac(key, claims))
    write_private(path, msgspec.json.format(msgspec.json.encode(token)) + b"\n")


def read_token(path: Path) -> ArmToken:
    """The token at ``path``; ``NotArmed`` when there is none or it is not a token."""
    try:
        data = path.read_bytes()[: MAX_TOKEN_BYTES + 1]
    except FileNotFoundError:
        raise NotArmed(
            f"this live node is not armed (no arming at {path}): run "
            "`bastion arm CONFIG --why TEXT` first; an arming is good for one start"
        ) from None
    except OSError as error:
        raise NotArmed(f"arming {path}: cannot read it: {error.strerror or error}") from None
    try:
        if len(data) > MAX_TOKEN_BYTES:
            raise msgspec.DecodeError("too large")
        return msgspec.json.decode(data, type=ArmToken)
    except (msgspec.DecodeError, msgspec.ValidationError) as error:
        raise NotArmed(
            f"arming {path} is not a valid arming token ({error}); run `bastion arm` again"
        ) from None


def used_token_ids(journal: JournalLocator) -> set[str]:
    """The ids of the armings earlier starts on ``journal`` consumed (its ``LiveArmed``
    events; a journal with nothing journaled yet: none)."""
    try:
        reader = journal.open_existing()
        if reader is None:
            return set()
        with closing(reader):
            events = events_of_type(reader, "LiveArmed")
    except NotAJournalError as error:
        raise NotArmed(f"key '{journal.config_key}': {error}") from None
    return {event.token_id for _, event in events if isinstance(event, LiveArmed)}


def verify_token(
    token: ArmToken,
    *,
    key: bytes,
    node_id: str,
    config_sha256: str,
    now_ns: int,
    used_ids: set[str],
) -> ArmClaims:
    """The token's claims if it arms this start; ``NotArmed`` saying why not."""
    again = "; run `bastion arm CONFIG --why TEXT` again"
    if not hmac.compare_digest(_mac(key, token.claims), token.mac):
        raise NotArmed(
            "the arming token's MAC does not match the live vault's arming key (forged, "
            "edited, or made with another vault)" + again
        )
    claims = token.claims
    if claims.version != TOKEN_VERSION:
        raise NotArmed(f"arming token version {claims.version} is not {TOKEN_VERSION}" + again)
    if claims.node_id != node_id:
        raise NotArmed(f"the arming is for node '{claims.node_id}', not '{node_id}'" + again)
    if claims.config_sha256 != config_sha256:
        raise NotArmed(
            "the arming is for another config (its SHA-256 differs: the config changed "
            "after `bastion arm`, or another config was armed)" + again
        )
    if claims.token_id in used_ids:
        raise NotArmed(
            f"the arming {claims.token_id} was already used by an earlier start "
            "(an arming is good for one start)" + again
        )
    if now_ns >= claims.expires_ns:
        expired_s = (now_ns - claims.expires_ns) / 1e9
        raise NotArmed(f"the arming expired {expired_s:.0f} s ago" + again)
    return claims


def verify_arming(
    journal: JournalLocator,
    *,
    key: Secret | None,
    node_id: str,
    config_sha256: str,
    now_ns: int,
    check_used: bool = True,
) -> LiveArmed:
    """Verify the arming beside ``journal``'s local path: the ``LiveArmed`` the node
    journals (``ts_ns`` = ``now_ns``). ``key``: the vault's ``live/arm`` (None: the vault
    has none, so nothing was ever armed with it). The armings already used are read from
    ``journal`` (with its keys; PostgreSQL with its password); ``check_used=False``
    leaves that to ``refuse_used`` (an HA member, which reads the group's journal only
    once it holds the lease: a standby starts while the database may be away).

    The token file is left in place: the node deletes it (``discard_arming``) only once
    its ``LiveArmed`` is committed to the journal. Deleted first, a crash before that
    commit would leave no record of the use, and a copy of the token saved earlier could
    arm one more start while it is valid; kept until then, a crash leaves a token whose
    id the journal names as used, which the next start refuses."""
    path = token_path(journal.path)
    token = read_token(path)
    if key is None:
        raise NotArmed(
            f"the live vault has no arming key ('{ARM_KEY_NAME}'): the arming at {path} "
            "was not made with it; run `bastion arm CONFIG --why TEXT`"
        )
    claims = verify_token(
        token,
        key=mac_key(key),
        node_id=node_id,
        config_sha256=config_sha256,
        now_ns=now_ns,
        used_ids=used_token_ids(journal) if check_used else set(),
    )
    return LiveArmed(
        ts_ns=now_ns,
        token_id=claims.token_id,
        node_id=claims.node_id,
        who=claims.who,
        why=claims.why,
        armed_at_ns=claims.armed_at_ns,
        expires_ns=claims.expires_ns,
        config_sha256=claims.config_sha256,
    )


def refuse_used(armed: LiveArmed, journal: JournalLocator) -> None:
    """``NotArmed`` if ``journal`` already holds the use of ``armed``'s token."""
    if armed.token_id in used_token_ids(journal):
        raise NotArmed(
            f"the arming {armed.token_id} was already used by an earlier start (an arming "
            "is good for one start): run `bastion arm CONFIG --why TEXT` again"
        )


def discard_arming(journal: Path) -> None:
    """Delete the arming beside ``journal`` (the local path), its ``LiveArmed`` committed:
    it has been used. One that cannot be deleted is left, logged: its id is in the
    journal, so no start accepts it again."""
    path = token_path(journal)
    try:
        path.unlink()
    except FileNotFoundError:
        pass
    except OSError as error:
        log.warning("live_arming_not_deleted", path=str(path), error=error.strerror or str(error))
