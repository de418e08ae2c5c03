"""The vault file: round trips, a wrong passphrase, damage and tampering detected with
nothing changed, re-keying, machine keys, scope."""

from __future__ import annotations

import json
import stat
import struct
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bastion.clock import SimClock
from bastion.errors import ConfigError, InsecureFile, UsageError, VaultCorrupt, VaultLocked
from bastion.vault import SecretNotFound
from bastion.vault._format import MAGIC
from bastion.vault.vault import Vault, require_scope
from kit.vaults import FAST_KDF, PASSPHRASE, T0, new_vault

CLOCK = SimClock(T0)
NAMES = st.from_regex(r"[a-z0-9][a-z0-9_.-]{0,8}(/[a-z0-9][a-z0-9_.-]{0,8}){0,2}", fullmatch=True)
VALUES = st.text(min_size=1, max_size=64)


def _header_span(data: bytes) -> tuple[int, int]:
    start = len(MAGIC) + 4
    (length,) = struct.unpack_from(">I", data, len(MAGIC))
    return start, start + length


def test_when_values_set_then_reopen_gives_them_back(tmp_path: Path) -> None:
    """What is set is what a fresh unlock reads; the file holds no value in clear."""
    path = tmp_path / "vault.bastion"
    new_vault(path, fix__acct1="hunter2-canary", notify__slack="xoxb-canary-77")
    vault = Vault.open(path, PASSPHRASE, clock=CLOCK)
    assert vault.get("fix/acct1").reveal() == "hunter2-canary"
    assert vault.get("notify/slack").reveal() == "xoxb-canary-77"
    data = path.read_bytes()
    assert b"hunter2" not in data and b"xoxb" not in data and b"fix/acct1" not in data


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(entries=st.dictionaries(NAMES, VALUES, min_size=0, max_size=5))
def test_when_any_names_and_values_then_round_trip(
    tmp_path_factory: pytest.TempPathFactory, entries: dict[str, str]
) -> None:
    """Any valid names with any non-empty text values come back exactly after reopening."""
    path = tmp_path_factory.mktemp("prop") / "vault.bastion"
    vault = Vault.create(path, PASSPHRASE, clock=CLOCK, kdf=FAST_KDF)
    for name, value in entries.items():
        assert vault.set(name, value) is True
    reopened = Vault.open(path, PASSPHRASE, clock=CLOCK)
    assert {e.name for e in reopened.entries()} == set(entries)
    for name, value in entries.items():
        assert reopened.get(name).reveal() == value


def test_when_value_replaced_then_created_kept_and_updated_moves(tmp_path: Path) -> None:
    """Replacing a value keeps its creation time and stamps the update."""
    clock = SimClock(T0)
    path = tmp_path / "vault.bastion"
    vault = Vault.create(path, PASSPHRASE, clock=clock, kdf=FAST_KDF)
    assert vault.set("fix/acct1", "first-value") is True
    clock.set_time(T0 + 5_000)
    assert vault.set("fix/acct1", "second-value") is False
    (entry,) = Vault.open(path, PASSPHRASE, clock=clock).entries()
    assert (entry.created_ns, entry.updated_ns) == (T0, T0 + 5_000)


def test_when_removed_then_gone_and_removing_again_refused(tmp_path: Path) -> None:
    """rm deletes the entry on disk; a second rm names the missing secret."""
    path = tmp_path / "vault.bastion"
    vault = new_vault(path, fix__acct1="hunter2-canary", fix__acct2="other-value")
    vault.remove("fix/acct1")
    reopened = Vault.open(path, PASSPHRASE, clock=CLOCK)
    assert [e.name for e in reopened.entries()] == ["fix/acct2"]
    with pytest.raises(SecretNotFound, match="fix/acct1"):
        reopened.remove("fix/acct1")
    with pytest.raises(SecretNotFound, match="fix/acct1"):
        reopened.get("fix/acct1")


@pytest.mark.parametrize("name", ["Fix/acct", "/a", "a//b", "a b", ""])
def test_when_name_invalid_then_set_refused(tmp_path: Path, name: str) -> None:
    """Names follow the reference syntax, so every stored secret can be referred to."""
    vault = new_vault(tmp_path / "vault.bastion")
    with pytest.raises(UsageError, match="not a valid secret name"):
        vault.set(name, "value-1")


def test_when_wrong_passphrase_then_locked_and_file_unchanged(tmp_path: Path) -> None:
    """A wrong passphrase is VaultLocked naming the file; the file is not touched."""
    path = tmp_path / "vault.bastion"
    new_vault(path, fix__acct1="hunter2-canary")
    before = path.read_bytes()
    with pytest.raises(VaultLocked, match="wrong passphrase") as caught:
        Vault.open(path, PASSPHRASE + "x", clock=CLOCK)
    assert str(path) in str(caught.value)
    assert path.read_bytes() == before


def _damaged(data: bytes, where: str) -> bytes:
    start, end = _header_span(data)
    spots = {"magic": 0, "header": start + 2, "wrapped": end + 20, "body": len(data) - 5}
    if where == "truncated":
        return data[: len(data) - 1]
    if where == "cut-to-header":
        return data[:end]
    spot = spots[where]
    return data[:spot] + bytes([data[spot] ^ 0x01]) + data[spot + 1 :]


@pytest.mark.parametrize(
    ("where", "error"),
    [
        ("magic", VaultCorrupt),
        ("header", (VaultCorrupt, VaultLocked)),  # unreadable JSON, or a changed value
        ("wrapped", VaultLocked),
        ("body", VaultCorrupt),
        ("truncated", VaultCorrupt),
        ("cut-to-header", VaultCorrupt),
    ],
)
def test_when_file_damaged_then_clear_error_and_unchanged(
    tmp_path: Path, where: str, error: type[Exception] | tuple[type[Exception], ...]
) -> None:
    """One flipped bit anywhere, or a cut, is refused with a vault error naming the file;
    nothing is decrypted and the file stays as it was."""
    path = tmp_path / "vault.bastion"
    new_vault(path, fix__acct1="hunter2-canary")
    damaged = _damaged(path.read_bytes(), where)
    path.write_bytes(damaged)
    with pytest.raises(error) as caught:
        Vault.open(path, PASSPHRASE, clock=CLOCK)
    assert str(path) in str(caught.value)
    assert "hunter2" not in str(caught.value)
    assert path.read_bytes() == damaged


def _rewrite_header(path: Path, change: dict[str, object]) -> None:
    data = path.read_bytes()
    start, end = _header_span(data)
    header = json.loads(data[start:end])
    for key, value in change.items():
        if "." in key:
            outer, inner = key.split(".")
            header[outer][inner] = value
        else:
            header[key] = value
    encoded = json.dumps(header, separators=(",", ":")).encode()
    path.write_bytes(MAGIC + struct.pack(">I", len(encoded)) + encoded + data[end:])


@pytest.mark.parametrize(
    "change",
    [
        {"scope": "live"},
        {"kdf.time_cost": 2},
        {"kdf.memory_kib": 32},  # weaker than the file was sealed with
    ],
)
def test_when_header_tampered_then_detected(tmp_path: Path, change: dict[str, object]) -> None:
    """A header rewritten to well-formed other values (a scope swap, a weaker Argon2
    cost) fails authentication: the header is the unwrap's associated data."""
    path = tmp_path / "vault.bastion"
    new_vault(path, fix__acct1="hunter2-canary")
    _rewrite_header(path, change)
    with pytest.raises(VaultLocked, match="header was altered"):
        Vault.open(path, PASSPHRASE, clock=CLOCK)


def test_when_header_asks_for_absurd_argon2_cost_then_refused_before_work(tmp_path: Path) -> None:
    """A header asking 1 TiB of memory is refused as damaged, before Argon2 runs."""
    path = tmp_path / "vault.bastion"
    new_vault(path)
    _rewrite_header(path, {"kdf.memory_kib": 1 << 30})
    with pytest.raises(VaultCorrupt, match="out of bounds"):
        Vault.open(path, PASSPHRASE, clock=CLOCK)


def test_when_rotated_then_new_passphrase_opens_and_old_does_not(tmp_path: Path) -> None:
    """rotate: a new passphrase, salt and data key; every entry re-encrypted, kept."""
    path = tmp_path / "vault.bastion"
    vault = new_vault(path, fix__acct1="hunter2-canary", journal__chain="ab" * 32)
    before = path.read_bytes()
    start, end = _header_span(before)
    vault.rotate("a brand new passphrase")
    after = path.read_bytes()
    start2, end2 = _header_span(after)
    assert (
        json.loads(after[start2:end2])["kdf"]["salt"]
        != json.loads(before[start:end])["kdf"]["salt"]
    )
    with pytest.raises(VaultLocked):
        Vault.open(path, PASSPHRASE, clock=CLOCK)
    reopened = Vault.open(path, "a brand new passphrase", clock=CLOCK)
    assert reopened.get("fix/acct1").reveal() == "hunter2-canary"
    assert reopened.get("journal/chain").reveal() == "ab" * 32
    assert len(reopened) == 2


def test_when_rotated_then_the_data_key_is_new(tmp_path: Path) -> None:
    """The old data key opens nothing after a rotation (a leaked data key is retired)."""
    path = tmp_path / "vault.bastion"
    vault = new_vault(path, fix__acct1="hunter2-canary")
    old_key = vault._data_key
    vault.rotate("a brand new passphrase")
    assert Vault.open(path, "a brand new passphrase", clock=CLOCK)._data_key != old_key


def test_when_machine_key_ensured_then_made_once(tmp_path: Path) -> None:
    """ensure_key makes 32 random bytes as hex, once; a second call keeps it."""
    vault = new_vault(tmp_path / "vault.bastion")
    assert vault.ensure_key("journal/chain") is True
    first = vault.get("journal/chain").reveal()
    assert vault.ensure_key("journal/chain") is False
    assert vault.get("journal/chain").reveal() == first
    assert len(bytes.fromhex(first)) == 32
    vault.ensure_key("journal/encryption")
    assert vault.get("journal/encryption").reveal() != first


def test_when_vault_written_then_file_0600_and_new_directory_0700(tmp_path: Path) -> None:
    """The vault file is private from creation; a directory it creates is 0700."""
    path = tmp_path / "new" / "dir" / "vault.bastion"
    vault = new_vault(path)
    vault.set("fix/acct1", "hunter2-canary")
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert stat.S_IMODE(path.parent.parent.stat().st_mode) == 0o700
    assert [p.name for p in path.parent.iterdir()] == ["vault.bastion"]  # no temp left


def test_when_vault_file_readable_by_others_then_refused_naming_the_fix(tmp_path: Path) -> None:
    """A vault others may read is refused before it is read, naming chmod 600."""
    path = tmp_path / "vault.bastion"
    new_vault(path)
    path.chmod(0o644)
    with pytest.raises(InsecureFile, match=f"chmod 600 {path}"):
        Vault.open(path, PASSPHRASE, clock=CLOCK)


def test_when_vault_exists_then_create_refuses(tmp_path: Path) -> None:
    """A vault is never overwritten by a new one."""
    path = tmp_path / "vault.bastion"
    new_vault(path, fix__acct1="hunter2-canary")
    before = path.read_bytes()
    with pytest.raises(UsageError, match="already exists"):
        Vault.create(path, PASSPHRASE, clock=CLOCK, kdf=FAST_KDF)
    assert path.read_bytes() == before


def test_when_passphrase_short_then_create_refused(tmp_path: Path) -> None:
    """A passphrase under 8 characters is refused; nothing is written."""
    path = tmp_path / "vault.bastion"
    with pytest.raises(UsageError, match="at least 8"):
        Vault.create(path, "short", clock=CLOCK, kdf=FAST_KDF)
    assert not path.exists()


def test_when_write_fails_then_memory_and_file_keep_the_old_state(tmp_path: Path) -> None:
    """A failed write (the path became a directory) leaves file and object unchanged."""
    path = tmp_path / "vault.bastion"
    vault = new_vault(path, fix__acct1="hunter2-canary")
    vault._path = tmp_path / "gone" / "vault.bastion"  # its directory does not exist
    with pytest.raises(Exception, match="cannot write"):
        vault.set("fix/acct2", "another-value")
    assert "fix/acct2" not in vault
    assert [e.name for e in Vault.open(path, PASSPHRASE, clock=CLOCK).entries()] == ["fix/acct1"]


def test_when_scope_differs_then_require_scope_refuses_naming_key(tmp_path: Path) -> None:
    """A live vault for a paper config (and the reverse) is a ConfigError naming key."""
    live = Vault.create(
        tmp_path / "live.bastion", PASSPHRASE, clock=CLOCK, scope="live", kdf=FAST_KDF
    )
    paper = new_vault(tmp_path / "paper.bastion")
    assert live.scope == "live" and paper.scope == "paper"
    require_scope(paper, "paper", "vault.path")
    with pytest.raises(ConfigError, match=r"key 'vault\.path'.*live secrets"):
        require_scope(live, "paper", "vault.path")
    with pytest.raises(ConfigError, match="paper secrets"):
        require_scope(paper, "live", "vault.path")


def test_when_vault_printed_then_no_value_shows(tmp_path: Path) -> None:
    """repr of the vault and of what it gives shows names at most."""
    vault = new_vault(tmp_path / "vault.bastion", fix__acct1="hunter2-canary")
    shown = f"{vault!r} {vault.get('fix/acct1')} {vault.entries()}"
    assert "hunter2" not in shown and PASSPHRASE not in shown
