"""``bastion users`` through the real command line: enrolment by a code read back from
the QR code's URI, the store it leaves, and no password or seed shown but once."""

from __future__ import annotations

import contextlib
import subprocess
import time
from pathlib import Path
from urllib.parse import parse_qs, urlparse

import pytest

from bastion.clock import SimClock
from bastion.security.config import USERS_KEY
from bastion.security.roles import Role
from bastion.security.store import UserStore
from bastion.security.users import LoginReason
from bastion.vault.vault import Vault
from kit.node_process import bastion_cmd
from kit.terminal import Terminal
from kit.users import STEP_NS, code
from kit.vaults import PASSPHRASE, T0, key_file, new_vault, vault_env

PASSWORD = "operator-canary-4711-long"
NEW_PASSWORD = "second-canary-0815-longer"


class Run:
    """One finished command: its exit code and what it printed."""

    def __init__(self, returncode: int, stdout: str, stderr: str) -> None:
        self.returncode, self.stdout, self.stderr = returncode, stdout, stderr

    @property
    def output(self) -> str:
        return self.stdout + self.stderr


@pytest.fixture
def desk(tmp_path: Path) -> Path:
    """A directory with a vault (cheap Argon2) and its key file."""
    new_vault(tmp_path / "vault.bastion")
    key_file(tmp_path)
    return tmp_path


def _run(desk: Path, *args: str, stdin: str = "") -> Run:
    proc = subprocess.run(
        bastion_cmd("users", *args),
        cwd=desk,
        env=vault_env(desk / "vault.key"),
        input=stdin,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    return Run(proc.returncode, proc.stdout, proc.stderr)


def _enrol(
    desk: Path, *args: str, stdin_first: str = "", wrong_code: bool = False
) -> tuple[Run, str]:
    """Run a command that enrols TOTP: write ``stdin_first``, read the URI it shows, and
    answer with the app's current code (or a wrong one). Returns the run and the seed."""
    shown: list[str] = []
    seed = ""
    with subprocess.Popen(
        bastion_cmd("users", *args),
        cwd=desk,
        env=vault_env(desk / "vault.key"),
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    ) as proc:
        assert proc.stdin is not None and proc.stdout is not None and proc.stderr is not None
        try:
            proc.stdin.write(stdin_first)
            proc.stdin.flush()
            for line in proc.stdout:
                shown.append(line)
                if "otpauth://" in line:
                    uri = line[line.index("otpauth://") :].strip()
                    seed = parse_qs(urlparse(uri).query)["secret"][0]
                    break
            answer = code(seed, time.time_ns()) if seed else ""
            if wrong_code:
                answer = next(c for c in ("000000", "111111", "222222") if c != answer)
            with contextlib.suppress(BrokenPipeError):  # it may have stopped already
                proc.stdin.write(answer + "\n")
                proc.stdin.close()
            rest = proc.stdout.read()
            err = proc.stderr.read()
            proc.wait(timeout=60)
        finally:
            if proc.poll() is None:
                proc.kill()
    return Run(proc.returncode, "".join(shown) + rest, err), seed


def _store(desk: Path) -> UserStore:
    vault = Vault.open(desk / "vault.bastion", PASSPHRASE, clock=SimClock(T0))
    return UserStore.for_vault(vault, clock=SimClock(T0))


def test_when_operators_administered_then_store_holds_them_and_no_secret_is_shown(
    desk: Path,
) -> None:
    """add (twice), list, disable, enable, passwd, set-role: each does what it says; the
    seed is printed once, by its enrolment, and no password ever."""
    added, alice_seed = _enrol(
        desk,
        "add",
        "alice",
        "--role",
        "admin",
        "--role",
        "risk_officer",
        "--password-stdin",
        stdin_first=PASSWORD + "\n",
    )
    assert added.returncode == 0, added.stderr
    assert "added alice (roles admin,risk_officer" in added.stdout
    assert added.stdout.count(alice_seed) == 1 and alice_seed not in added.stderr
    assert "█" in added.stdout or "▀" in added.stdout  # the QR code
    bob, bob_seed = _enrol(
        desk,
        "add",
        "bob",
        "--role",
        "trader",
        "--strategy",
        "ema_cross",
        "--uid",
        "4242",
        "--password-stdin",
        stdin_first=PASSWORD + "\n",
    )
    assert bob.returncode == 0, bob.stderr
    listed = _run(desk, "list")
    assert listed.returncode == 0, listed.stderr
    lines = listed.stdout.splitlines()
    assert lines[1].split() == ["NAME", "ROLES", "STRATEGIES", "UID", "DISABLED", "LOCKED", "MFA"]
    assert lines[2].split() == ["alice", "admin,risk_officer", "-", "-", "no", "no", "yes"]
    assert lines[3].split() == ["bob", "trader", "ema_cross", "4242", "no", "no", "yes"]
    runs = [listed]
    runs.append(_run(desk, "disable", "bob"))
    assert _run(desk, "list").stdout.splitlines()[3].split()[4] == "yes"
    runs.append(_run(desk, "enable", "bob"))
    runs.append(_run(desk, "passwd", "bob", "--password-stdin", stdin=NEW_PASSWORD + "\n"))
    runs.append(_run(desk, "set-role", "bob", "--role", "viewer", "--no-strategies", "--no-uid"))
    assert all(r.returncode == 0 for r in runs), [r.stderr for r in runs]
    for run in [*runs, added, bob]:
        assert PASSWORD not in run.output and NEW_PASSWORD not in run.output
    for run in runs:
        assert alice_seed not in run.output and bob_seed not in run.output
        assert "argon2" not in run.output

    users = _store(desk)
    got = users.get("bob")
    assert (got.roles, got.strategies, got.os_uid, got.disabled) == (
        (Role.VIEWER,),
        (),
        None,
        False,
    )
    now = time.time_ns() + STEP_NS  # the enrolment used the current step
    assert users.verify_login("alice", PASSWORD, code(alice_seed, now), now_ns=now, source="t").ok
    old = users.verify_login("bob", PASSWORD, code(bob_seed, now), now_ns=now, source="t")
    assert old.reason is LoginReason.BAD_PASSWORD
    assert users.verify_login("bob", NEW_PASSWORD, code(bob_seed, now), now_ns=now, source="t").ok


def test_when_password_on_the_command_line_then_refused_without_echo(desk: Path) -> None:
    """--password X, --password=X, a positional X: exit 2, a message saying why, X not
    repeated, nothing stored."""
    secret = "argv-canary-password-99"
    for args in (
        ("add", "alice", "--role", "admin", "--password", secret),
        ("add", "alice", "--role", "admin", f"--password={secret}"),
        ("add", "alice", secret, "--role", "admin"),
        ("passwd", "alice", secret),
        ("add", "alice", "--role", "admin", "--password-std", secret),
    ):
        run = _run(desk, *args)
        assert run.returncode == 2, args
        assert "never taken from the command line" in run.stderr, args
        assert secret not in run.output, args
    assert not (desk / "users.bastion").exists()
    assert "--password " not in _run(desk, "add", "--help").stdout


def test_when_confirming_code_wrong_then_nothing_stored(desk: Path) -> None:
    """A code that does not match the shown seed: exit 2, no operator stored."""
    run, seed = _enrol(
        desk,
        "add",
        "alice",
        "--role",
        "admin",
        "--password-stdin",
        stdin_first=PASSWORD + "\n",
        wrong_code=True,
    )
    assert seed and run.returncode == 2
    assert "no matching code" in run.stderr and "nothing stored" in run.stderr
    assert _store(desk).find("alice") is None


def test_when_password_breaks_the_rule_then_refused_before_enrolment(desk: Path) -> None:
    """A short password: exit 2 naming the rule; no seed was shown."""
    run = _run(desk, "add", "alice", "--role", "admin", "--password-stdin", stdin="short-pw\n")
    assert run.returncode == 2
    assert "password rule: at least 12 characters" in run.stderr
    assert "otpauth://" not in run.output and "short-pw" not in run.output


def test_when_not_on_a_terminal_without_password_stdin_then_refused(desk: Path) -> None:
    """No terminal and no --password-stdin: exit 2 naming the option."""
    run = _run(desk, "add", "alice", "--role", "admin")
    assert run.returncode == 2 and "--password-stdin" in run.stderr


def test_when_mfa_reset_then_only_the_new_seed_logs_in(desk: Path) -> None:
    """reset-mfa shows a new seed once and replaces the old one."""
    added, old_seed = _enrol(
        desk, "add", "alice", "--role", "viewer", "--password-stdin", stdin_first=PASSWORD + "\n"
    )
    assert added.returncode == 0, added.stderr
    reset, new_seed = _enrol(desk, "reset-mfa", "alice")
    assert reset.returncode == 0, reset.stderr
    assert new_seed != old_seed and old_seed not in reset.output
    users = _store(desk)
    now = time.time_ns() + STEP_NS
    stale = users.verify_login("alice", PASSWORD, code(old_seed, now), now_ns=now, source="t")
    assert stale.reason is LoginReason.BAD_TOTP
    now += STEP_NS
    assert users.verify_login("alice", PASSWORD, code(new_seed, now), now_ns=now, source="t").ok


def test_when_unknown_operator_or_fresh_vault_then_clear_answers(desk: Path) -> None:
    """A fresh vault lists no operators (without making a key); an unknown name, a
    taken name or uid, a bad strategy name: exit 2 naming it, before any seed is shown."""
    empty = _run(desk, "list")
    assert empty.returncode == 0 and "no operators" in empty.stdout
    assert USERS_KEY not in Vault.open(desk / "vault.bastion", PASSPHRASE, clock=SimClock(T0))
    added, _ = _enrol(
        desk,
        *("add", "alice", "--role", "viewer", "--uid", "4242", "--password-stdin"),
        stdin_first=PASSWORD + "\n",
    )
    assert added.returncode == 0, added.stderr
    for args in (
        ("disable", "carol"),
        ("reset-mfa", "carol"),
        ("set-role", "carol", "--role", "admin"),
    ):
        run = _run(desk, *args)
        assert run.returncode == 2 and "no operator 'carol'" in run.stderr, args
        assert "otpauth://" not in run.output
    for args, error in (
        (("add", "alice", "--role", "admin"), "operator 'alice' already exists"),
        (("add", "carol", "--role", "admin", "--uid", "4242"), "uid 4242 is already mapped"),
        (("add", "carol", "--role", "trader", "--strategy", "a b"), "not a valid strategy"),
    ):
        run = _run(desk, *args, "--password-stdin", stdin=PASSWORD + "\n")
        assert run.returncode == 2 and error in run.stderr, (args, run.stderr)
        assert "otpauth://" not in run.output  # refused before a seed is shown


def test_when_store_damaged_then_exit_1_and_file_unchanged(desk: Path) -> None:
    """A flipped byte in users.bastion: list and disable exit 1 saying it is damaged;
    the file keeps its bytes."""
    added, _ = _enrol(
        desk, "add", "alice", "--role", "viewer", "--password-stdin", stdin_first=PASSWORD + "\n"
    )
    assert added.returncode == 0, added.stderr
    path = desk / "users.bastion"
    assert path.stat().st_mode & 0o777 == 0o600
    data = bytearray(path.read_bytes())
    data[-5] ^= 0x01
    path.write_bytes(bytes(data))
    for args in (("list",), ("disable", "alice")):
        run = _run(desk, *args)
        assert run.returncode == 1, args
        assert "user store" in run.stderr and "is damaged" in run.stderr
        assert "Traceback" not in run.stderr
    assert path.read_bytes() == bytes(data)


def test_when_on_a_terminal_then_password_hidden_and_a_wrong_code_retried(desk: Path) -> None:
    """On a terminal: the password is asked twice without echo, a wrong code is
    answered and asked again, the right one stores the operator and clears the screen."""
    cmd = bastion_cmd("users", "add", "alice", "--role", "admin")
    with Terminal(cmd, cwd=desk, env=vault_env(desk / "vault.key")) as term:
        term.expect("new password for alice: ")
        term.type(PASSWORD)
        term.expect("again: ")
        term.type(PASSWORD)
        screen = term.expect("the 6-digit code the app shows now: ")
        uri = screen[screen.index("otpauth://") :].split()[0]
        seed = parse_qs(urlparse(uri).query)["secret"][0]
        near = {code(seed, time.time_ns(), steps=s) for s in (-1, 0, 1, 2)}
        term.type(next(c for c in ("000000", "111111", "222222", "333333") if c not in near))
        term.expect("that code does not match")
        term.expect("the 6-digit code the app shows now: ", count=2)
        term.type(code(seed, time.time_ns()))
        assert term.wait() == 0, term.screen
    assert "added alice" in term.screen and "\x1b[2J\x1b[3J" in term.screen
    assert PASSWORD not in term.screen
    assert _store(desk).get("alice").mfa_enrolled


def test_when_on_a_terminal_and_entries_differ_then_nothing_changes(desk: Path) -> None:
    """passwd on a terminal: two different entries are refused; the store is unchanged."""
    added, _ = _enrol(
        desk, "add", "alice", "--role", "viewer", "--password-stdin", stdin_first=PASSWORD + "\n"
    )
    assert added.returncode == 0, added.stderr
    before = (desk / "users.bastion").read_bytes()
    cmd = bastion_cmd("users", "passwd", "alice")
    with Terminal(cmd, cwd=desk, env=vault_env(desk / "vault.key")) as term:
        term.expect("new password for alice: ")
        term.type(NEW_PASSWORD)
        term.expect("again: ")
        term.type(NEW_PASSWORD + "x")
        assert term.wait() == 2
    assert "the two entries differ; nothing changed" in term.screen
    assert NEW_PASSWORD not in term.screen
    assert (desk / "users.bastion").read_bytes() == before
