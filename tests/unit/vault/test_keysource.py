"""Where the vault passphrase comes from: key file, systemd credential, prompt; files
open to other users refused naming the fix."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from bastion.errors import InsecureFile, UsageError, VaultError
from bastion.vault import keysource
from bastion.vault.files import ensure_private
from kit.vaults import PASSPHRASE, key_file


def test_when_key_file_named_then_passphrase_read_without_newline(tmp_path: Path) -> None:
    """The key file's text, its trailing newline dropped, is the passphrase."""
    env = {keysource.KEY_FILE_ENV: str(key_file(tmp_path))}
    assert keysource.passphrase(purpose="t", environ=env) == PASSPHRASE


@pytest.mark.parametrize("mode", [0o644, 0o640, 0o604, 0o660, 0o606])
def test_when_key_file_open_to_others_then_refused_naming_path_and_fix(
    tmp_path: Path, mode: int
) -> None:
    """Group- or other-readable/writable key file: refused, naming it and chmod 600."""
    path = key_file(tmp_path)
    path.chmod(mode)
    with pytest.raises(InsecureFile) as caught:
        keysource.passphrase(purpose="t", environ={keysource.KEY_FILE_ENV: str(path)})
    assert str(path) in str(caught.value) and f"chmod 600 {path}" in str(caught.value)
    assert PASSPHRASE not in str(caught.value)


def test_when_key_file_missing_then_error_and_no_fall_through(tmp_path: Path) -> None:
    """A named key file that is missing is an error, even with a credential present."""
    creds = tmp_path / "creds"
    creds.mkdir(mode=0o700)
    key_file(creds, "from-the-credential", name=keysource.CREDENTIAL_NAME)
    env = {
        keysource.KEY_FILE_ENV: str(tmp_path / "nope.key"),
        keysource.CREDENTIALS_ENV: str(creds),
    }
    with pytest.raises(VaultError, match=r"nope\.key: no such file"):
        keysource.passphrase(purpose="t", environ=env)


def test_when_systemd_credential_present_then_used(tmp_path: Path) -> None:
    """$CREDENTIALS_DIRECTORY/bastion-vault supplies the passphrase (mode 0400 is fine)."""
    creds = tmp_path / "creds"
    creds.mkdir(mode=0o700)
    path = key_file(creds, "from-the-credential", name=keysource.CREDENTIAL_NAME)
    path.chmod(0o400)
    env = {keysource.CREDENTIALS_ENV: str(creds)}
    assert keysource.passphrase(purpose="t", environ=env) == "from-the-credential"


def test_when_key_file_empty_then_refused(tmp_path: Path) -> None:
    """An empty key file is not an empty passphrase."""
    path = key_file(tmp_path, "")
    with pytest.raises(VaultError, match="is empty"):
        keysource.passphrase(purpose="t", environ={keysource.KEY_FILE_ENV: str(path)})


def test_when_no_source_and_no_terminal_then_usage_error_saying_what_to_set(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Non-interactive with nothing configured: the error names both unattended ways."""
    monkeypatch.setattr(keysource, "can_prompt", lambda: False)
    with pytest.raises(UsageError) as caught:
        keysource.passphrase(purpose="t", environ={})
    assert keysource.KEY_FILE_ENV in str(caught.value)
    assert keysource.CREDENTIAL_NAME in str(caught.value)


def test_when_prompted_twice_and_answers_differ_then_refused() -> None:
    """A new passphrase is asked twice; two different answers change nothing."""
    answers = iter(["first answer!", "second answer"])
    with pytest.raises(UsageError, match="differ"):
        keysource.passphrase(purpose="t", confirm=True, environ={}, prompt=lambda _q: next(answers))


def test_when_prompted_twice_and_answers_match_then_returned() -> None:
    """Matching answers give the passphrase; the question says what it is for."""
    asked: list[str] = []

    def prompt(question: str) -> str:
        asked.append(question)
        return "same answer"

    assert keysource.passphrase(purpose="create v", confirm=True, environ={}, prompt=prompt) == (
        "same answer"
    )
    assert asked[0] == "vault passphrase to create v: " and len(asked) == 2


def test_when_directory_open_to_others_then_refused_naming_0700(tmp_path: Path) -> None:
    """ensure_private on a group-readable directory names chmod 700."""
    folder = tmp_path / "d"
    folder.mkdir()
    folder.chmod(0o750)
    with pytest.raises(InsecureFile, match=f"chmod 700 {folder}"):
        ensure_private(folder, "vault directory")
    folder.chmod(0o700)
    ensure_private(folder, "vault directory")


@pytest.mark.skipif(os.geteuid() != 0, reason="giving a file away needs root")
def test_when_file_belongs_to_another_user_then_refused(tmp_path: Path) -> None:
    """A 0600 file owned by another uid is not ours to trust."""
    path = key_file(tmp_path)
    os.chown(path, 54321, -1)
    with pytest.raises(InsecureFile, match="belongs to another user"):
        keysource.passphrase(purpose="t", environ={keysource.KEY_FILE_ENV: str(path)})
