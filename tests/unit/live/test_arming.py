"""The arming token: only the live vault's key makes one, any edit breaks it, and it arms
one start of one config and node before it expires, once."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import msgspec
import pytest

from bastion.errors import NotArmed
from bastion.journal.locator import JournalLocator
from bastion.journal.sqlite import SqliteJournal
from bastion.live.arming import (
    ARM_KEY_NAME,
    ArmClaims,
    discard_arming,
    new_claims,
    read_token,
    token_path,
    used_token_ids,
    verify_arming,
    write_token,
)
from bastion.model.events import LiveArmed
from bastion.vault.refs import Secret

KEY_HEX = "11" * 32
KEY = bytes.fromhex(KEY_HEX)
SECRET = Secret(ARM_KEY_NAME, KEY_HEX)
NODE = "live-1"
CONFIG_SHA = "ab" * 32
T0 = 1_767_225_600_000_000_000  # 2026-01-01T00:00:00Z
S = 1_000_000_000


def claims(**changes: object) -> ArmClaims:
    made = new_claims(
        node_id=NODE,
        config_sha256=CONFIG_SHA,
        who="alice",
        why="go live after review",
        armed_at_ns=T0,
        valid_s=900,
    )
    return msgspec.structs.replace(made, **changes)


def arm(tmp_path: Path, made: ArmClaims | None = None, key: bytes = KEY) -> Path:
    journal = tmp_path / "journal.sqlite"
    write_token(token_path(journal), made or claims(), key)
    return journal


def consume(
    journal: Path,
    *,
    now_ns: int = T0 + 60 * S,
    key: Secret | None = SECRET,
    node_id: str = NODE,
    config_sha256: str = CONFIG_SHA,
) -> LiveArmed:
    """What a start does with its arming and nothing failing between: verified, then
    (its LiveArmed committed) deleted."""
    armed = verify_arming(
        JournalLocator.sqlite(journal),
        key=key,
        node_id=node_id,
        config_sha256=config_sha256,
        now_ns=now_ns,
    )
    discard_arming(journal)
    return armed


def test_when_armed_then_the_start_consumes_the_token_once(tmp_path: Path) -> None:
    """A fresh token arms the start, says who and why, and is deleted."""
    journal = arm(tmp_path)
    armed = consume(journal)
    assert not token_path(journal).exists()
    assert armed.who == "alice" and armed.why == "go live after review"
    assert armed.expires_ns == T0 + 900 * S
    with pytest.raises(NotArmed, match=r"not armed .*bastion arm"):
        consume(journal)


def test_when_the_token_is_written_then_only_its_owner_may_read_it(tmp_path: Path) -> None:
    """The token file is 0600."""
    journal = arm(tmp_path)
    assert stat.S_IMODE(token_path(journal).stat().st_mode) == 0o600


def test_when_no_token_then_refused_saying_to_arm(tmp_path: Path) -> None:
    """No token: refused, naming `bastion arm`."""
    with pytest.raises(NotArmed, match="bastion arm CONFIG --why"):
        consume(tmp_path / "journal.sqlite")


def test_when_forged_without_the_key_then_refused(tmp_path: Path) -> None:
    """A token MACed with another key (someone without the vault) is refused, kept."""
    journal = arm(tmp_path, key=b"\x22" * 32)
    with pytest.raises(NotArmed, match="MAC does not match"):
        consume(journal)
    assert token_path(journal).exists()


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("expires_ns", T0 + 86_400 * S),
        ("who", "mallory"),
        ("why", "other reason"),
        ("config_sha256", "cd" * 32),
        ("node_id", "live-2"),
        ("token_id", "00" * 16),
    ],
)
def test_when_a_field_is_edited_then_the_mac_fails(
    tmp_path: Path, field: str, value: object
) -> None:
    """Editing any claim in the file (with a valid MAC of the original) is refused."""
    journal = arm(tmp_path)
    path = token_path(journal)
    document = json.loads(path.read_text())
    document["claims"][field] = value
    path.write_text(json.dumps(document))
    with pytest.raises(NotArmed, match="MAC does not match"):
        consume(journal, node_id=document["claims"]["node_id"])


def test_when_the_file_is_not_a_token_then_refused(tmp_path: Path) -> None:
    """Garbage, or a token with an extra field, is refused as not a token."""
    journal = tmp_path / "journal.sqlite"
    token_path(journal).write_text("{not json")
    with pytest.raises(NotArmed, match="not a valid arming token"):
        consume(journal)
    arm(tmp_path)
    document = json.loads(token_path(journal).read_text())
    document["claims"]["allow_anything"] = True
    token_path(journal).write_text(json.dumps(document))
    with pytest.raises(NotArmed, match="not a valid arming token"):
        read_token(token_path(journal))


def test_when_expired_then_refused_at_the_limit_and_accepted_one_step_before(
    tmp_path: Path,
) -> None:
    """At expires_ns the arming is over; one nanosecond before it still arms."""
    journal = arm(tmp_path)
    with pytest.raises(NotArmed, match="expired"):
        consume(journal, now_ns=T0 + 900 * S)
    assert token_path(journal).exists()
    consume(journal, now_ns=T0 + 900 * S - 1)
    assert not token_path(journal).exists()


def test_when_another_config_starts_then_refused(tmp_path: Path) -> None:
    """A token for another config's hash (or a config edited after arming) is refused."""
    journal = arm(tmp_path)
    with pytest.raises(NotArmed, match="another config"):
        consume(journal, config_sha256="cd" * 32)


def test_when_another_node_starts_then_refused(tmp_path: Path) -> None:
    """A token for another node id is refused."""
    journal = arm(tmp_path)
    with pytest.raises(NotArmed, match="for node 'live-1', not 'live-2'"):
        consume(journal, node_id="live-2")


def test_when_the_vault_has_no_arming_key_then_refused(tmp_path: Path) -> None:
    """A vault without `live/arm` never armed anything: the token is refused."""
    journal = arm(tmp_path)
    with pytest.raises(NotArmed, match="no arming key"):
        consume(journal, key=None)


def test_when_a_consumed_token_is_replayed_from_a_copy_then_refused(tmp_path: Path) -> None:
    """A copy saved before the start is refused once its id is in the journal."""
    journal = arm(tmp_path)
    copy = token_path(journal).read_bytes()
    armed = consume(journal)
    store = SqliteJournal(journal)
    store.begin_run(NODE, T0)
    store.append(armed)
    store.close()
    assert used_token_ids(JournalLocator.sqlite(journal)) == {armed.token_id}
    token_path(journal).write_bytes(copy)
    with pytest.raises(NotArmed, match="already used"):
        consume(journal, now_ns=T0 + 120 * S)


def test_when_no_reason_is_given_then_no_claims(tmp_path: Path) -> None:
    """An empty or blank reason is refused: an arming is journaled with why."""
    with pytest.raises(NotArmed, match="needs a reason"):
        new_claims(
            node_id=NODE, config_sha256=CONFIG_SHA, who="a", why="  ", armed_at_ns=T0, valid_s=1
        )


def test_when_two_armings_are_made_then_their_ids_differ() -> None:
    """Each arming has a fresh random id (what replay protection keys on)."""
    assert claims().token_id != claims().token_id


def test_when_a_start_dies_around_its_live_armed_commit_then_the_token_is_used_once(
    tmp_path: Path,
) -> None:
    """The token stays until the start's LiveArmed is committed: a start that dies
    before the commit used nothing (the same token arms the next start); one that dies
    after it but before deleting the token leaves a token the journal names as used,
    refused."""
    journal = arm(tmp_path)
    locator = JournalLocator.sqlite(journal)
    first = verify_arming(
        locator, key=SECRET, node_id=NODE, config_sha256=CONFIG_SHA, now_ns=T0 + 60 * S
    )
    assert token_path(journal).exists()  # died here: nothing journaled, nothing used
    second = verify_arming(
        locator, key=SECRET, node_id=NODE, config_sha256=CONFIG_SHA, now_ns=T0 + 61 * S
    )
    assert second.token_id == first.token_id
    store = SqliteJournal(journal)
    store.begin_run(NODE, T0)
    store.append(second)
    store.close()  # committed; died before discard_arming
    assert token_path(journal).exists()
    with pytest.raises(NotArmed, match="already used"):
        verify_arming(
            locator, key=SECRET, node_id=NODE, config_sha256=CONFIG_SHA, now_ns=T0 + 62 * S
        )
