"""``bastion secrets`` and ``bastion init``'s vault through the real command line."""

from __future__ import annotations

import subprocess
from pathlib import Path

from bastion.clock import SimClock
from bastion.config import BacktestConfig, PaperConfig, load_config
from bastion.vault.vault import Vault
from bastion.venue_server.config import VenueSimConfig
from kit.node_process import bastion_cmd
from kit.vaults import FAST_KDF_ARGS, PASSPHRASE, T0, key_file, new_vault, vault_env

SECRET = "fix-pw-canary-4711"


def _run(
    *args: str | Path, cwd: Path, key: Path | None, stdin: str = "", **env: str
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        bastion_cmd(*args),
        cwd=cwd,
        env=vault_env(key, **env),
        input=stdin,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_when_init_set_list_rm_rotate_then_round_trip(tmp_path: Path) -> None:
    """The whole life of a vault; no value ever on stdout or stderr."""
    key = key_file(tmp_path)
    v = ("--vault", "v/vault.bastion")
    init = _run("secrets", "init", *v, *FAST_KDF_ARGS, cwd=tmp_path, key=key)
    assert init.returncode == 0, init.stderr
    assert "scope paper" in init.stdout
    put = _run("secrets", "set", "fix/acct1", *v, cwd=tmp_path, key=key, stdin=SECRET + "\n")
    assert put.returncode == 0 and "added fix/acct1" in put.stdout, put.stderr
    _run("secrets", "set", "fix/acct2", *v, cwd=tmp_path, key=key, stdin="other-value")
    listed = _run("secrets", "list", *v, cwd=tmp_path, key=key)
    assert listed.returncode == 0
    assert "fix/acct1" in listed.stdout and "fix/acct2" in listed.stdout
    gone = _run("secrets", "rm", "fix/acct2", *v, cwd=tmp_path, key=key)
    assert gone.returncode == 0, gone.stderr
    new_key = key_file(tmp_path, "the next passphrase", name="new.key")
    rotated = _run(
        "secrets", "rotate-key", *v, "--new-key-file", str(new_key), cwd=tmp_path, key=key
    )
    assert rotated.returncode == 0, rotated.stderr
    old = _run("secrets", "list", *v, cwd=tmp_path, key=key)
    assert old.returncode == 2 and "wrong passphrase" in old.stderr
    vault = Vault.open(tmp_path / "v" / "vault.bastion", "the next passphrase", clock=SimClock(T0))
    assert [e.name for e in vault.entries()] == ["fix/acct1"]
    assert vault.get("fix/acct1").reveal() == SECRET
    assert vault.kdf.memory_kib == 64  # rotate kept the cost
    for proc in (init, put, listed, gone, rotated, old):
        assert SECRET not in proc.stdout + proc.stderr
        assert PASSPHRASE not in proc.stdout + proc.stderr


def test_when_wrong_passphrase_or_damaged_then_clear_error_and_unchanged(tmp_path: Path) -> None:
    """Exit 2 for a wrong passphrase, 1 for a damaged file; the file never changes."""
    key = key_file(tmp_path)
    _run("secrets", "init", *FAST_KDF_ARGS, cwd=tmp_path, key=key)
    path = tmp_path / "vault.bastion"
    before = path.read_bytes()
    wrong = key_file(tmp_path, "not the passphrase", name="wrong.key")
    proc = _run("secrets", "set", "fix/a", cwd=tmp_path, key=wrong, stdin=SECRET)
    assert proc.returncode == 2 and proc.stderr.startswith("error: vault")
    assert "Traceback" not in proc.stderr and path.read_bytes() == before
    path.write_bytes(before[:-3])
    proc = _run("secrets", "set", "fix/a", cwd=tmp_path, key=key, stdin=SECRET)
    assert proc.returncode == 1 and "damaged" in proc.stderr
    assert path.read_bytes() == before[:-3]


def test_when_key_file_readable_by_others_then_refused_naming_the_fix(tmp_path: Path) -> None:
    """A 0644 key file: exit 2 naming the file and `chmod 600 PATH`; no vault made."""
    key = key_file(tmp_path)
    key.chmod(0o644)
    proc = _run("secrets", "init", *FAST_KDF_ARGS, cwd=tmp_path, key=key)
    assert proc.returncode == 2
    assert f"chmod 600 {key}" in proc.stderr
    assert not (tmp_path / "vault.bastion").exists()


def test_when_credentials_directory_given_then_it_supplies_the_passphrase(tmp_path: Path) -> None:
    """Under systemd: $CREDENTIALS_DIRECTORY/bastion-vault unlocks the vault."""
    creds = tmp_path / "creds"
    creds.mkdir(mode=0o700)
    key_file(creds, name="bastion-vault")
    proc = _run(
        "secrets", "init", *FAST_KDF_ARGS, cwd=tmp_path, key=None, CREDENTIALS_DIRECTORY=str(creds)
    )
    assert proc.returncode == 0, proc.stderr
    assert Vault.open(tmp_path / "vault.bastion", PASSPHRASE, clock=SimClock(T0)).scope == "paper"


def test_when_value_given_as_argument_then_refused(tmp_path: Path) -> None:
    """`set` has no way to take the value on the command line (ps would show it)."""
    key = key_file(tmp_path)
    _run("secrets", "init", *FAST_KDF_ARGS, cwd=tmp_path, key=key)
    for args in (("fix/a", SECRET), ("fix/a", "--value", SECRET), ("fix/a", f"--value={SECRET}")):
        proc = _run("secrets", "set", *args, cwd=tmp_path, key=key)
        assert proc.returncode == 2 and "unrecognized arguments" in proc.stderr
    assert "--value" not in _run("secrets", "set", "--help", cwd=tmp_path, key=key).stdout


def test_when_no_passphrase_source_then_clear_error(tmp_path: Path) -> None:
    """Not on a terminal, no key file, no credential: one error line saying what to set."""
    proc = _run("secrets", "init", cwd=tmp_path, key=None)
    assert proc.returncode == 2
    assert "BASTION_VAULT_KEY_FILE" in proc.stderr and "Traceback" not in proc.stderr


def test_when_desk_initialised_then_vault_with_machine_keys(tmp_path: Path) -> None:
    """`bastion init DIR` creates DIR/vault.bastion (0600) with the machine keys: the
    journal's two, the node's FIX store's, the simulator's ledger's and stores'."""
    key = key_file(tmp_path)
    proc = _run("init", "desk", cwd=tmp_path, key=key)
    assert proc.returncode == 0, proc.stderr
    path = tmp_path / "desk" / "vault.bastion"
    assert path.stat().st_mode & 0o777 == 0o600
    vault = Vault.open(path, PASSPHRASE, clock=SimClock(T0))
    assert [e.name for e in vault.entries()] == [
        "fix/store",
        "journal/chain",
        "journal/encryption",
        "venue/ledger",
        "venue/store",
    ]


def test_when_desk_initialised_without_passphrase_then_nothing_created(tmp_path: Path) -> None:
    """No passphrase source: init refuses before writing, and says --no-vault."""
    proc = _run("init", "desk", cwd=tmp_path, key=None)
    assert proc.returncode == 2 and "--no-vault" in proc.stderr
    assert not (tmp_path / "desk").exists()
    ok = _run("init", "--no-vault", "desk", cwd=tmp_path, key=None)
    assert ok.returncode == 0, ok.stderr
    assert not (tmp_path / "desk" / "vault.bastion").exists()


def test_when_node_config_names_missing_secret_then_refused_naming_key(tmp_path: Path) -> None:
    """The scaffold's FIX node refers to fix/trader; absent from the vault: exit 2
    naming the key and the secret, before anything starts."""
    key = key_file(tmp_path)
    assert _run("init", "desk", cwd=tmp_path, key=key).returncode == 0
    proc = _run("run", "desk/paper-fix.toml", cwd=tmp_path, key=key)
    assert proc.returncode == 2
    assert "venues[0].password" in proc.stderr and "fix/trader" in proc.stderr


def test_when_init_force_and_vault_rejects_passphrase_then_no_file_rewritten(
    tmp_path: Path,
) -> None:
    """`init --force` on a desk whose vault refuses the passphrase fails before touching
    the scaffold (an edited config survives); with the right one it rewrites it."""
    assert _run("init", "--no-vault", "desk", cwd=tmp_path, key=None).returncode == 0
    desk = tmp_path / "desk"
    new_vault(desk / "vault.bastion")
    paper = desk / "paper.toml"
    paper.write_text("# the operator's own edits\n", encoding="utf-8")
    wrong = key_file(tmp_path, "not the passphrase", name="wrong.key")
    proc = _run("init", "--force", "desk", cwd=tmp_path, key=wrong)
    assert proc.returncode != 0 and "passphrase" in proc.stderr, proc.stderr
    assert paper.read_text(encoding="utf-8") == "# the operator's own edits\n"
    ok = _run("init", "--force", "desk", cwd=tmp_path, key=key_file(tmp_path))
    assert ok.returncode == 0, ok.stderr
    assert paper.read_text(encoding="utf-8") != "# the operator's own edits\n"


def test_when_desk_initialised_with_vault_then_its_stores_are_encrypted_with_its_keys(
    tmp_path: Path,
) -> None:
    """The paper nodes' journals, the FIX store and the simulator's ledger and stores
    refer to the vault's machine keys; backtest.toml stays plaintext. --no-vault: none
    does, and the comments say how to turn it on."""
    key = key_file(tmp_path)
    assert _run("init", "desk", cwd=tmp_path, key=key).returncode == 0
    assert _run("init", "--no-vault", "plain", cwd=tmp_path, key=None).returncode == 0
    desk, plain = tmp_path / "desk", tmp_path / "plain"
    journal = [
        ("journal.encryption_key", "journal/encryption"),
        ("journal.chain_key", "journal/chain"),
    ]
    assert load_config(desk / "paper.toml", PaperConfig).secret_refs() == journal
    assert load_config(desk / "paper-fix.toml", PaperConfig).secret_refs() == [
        ("venues[0].store_encryption_key", "fix/store"),
        ("venues[0].password", "fix/trader"),
        *journal,
    ]
    assert load_config(desk / "venue-sim.toml", VenueSimConfig).secret_refs() == [
        ("ledger_encryption_key", "venue/ledger"),
        ("store_encryption_key", "venue/store"),
        ("accounts[0].password", "fix/trader"),
    ]
    assert load_config(desk / "backtest.toml", BacktestConfig).journal is None
    assert load_config(plain / "paper.toml", PaperConfig).secret_refs() == []
    assert load_config(plain / "venue-sim.toml", VenueSimConfig).secret_refs() == [
        ("accounts[0].password", "fix/trader")
    ]
    assert '# encryption_key = "secret:journal/encryption"' in (plain / "paper.toml").read_text()
