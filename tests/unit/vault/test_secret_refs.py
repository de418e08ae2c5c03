"""Secret references and masked values."""

from __future__ import annotations

import pickle

import pytest

from bastion.errors import ConfigError
from bastion.vault import MemorySecrets, Secret, SecretNotFound, secret_name


def test_when_secret_is_printed_then_only_its_name_shows() -> None:
    """repr, str and f-strings of a Secret never carry the value."""
    secret = Secret("fix/acct1", "hunter2-canary")
    for shown in (repr(secret), str(secret), f"{secret}", f"{secret!r}", f"{[secret]}"):
        assert "hunter2" not in shown
        assert "fix/acct1" in shown
    assert secret.reveal() == "hunter2-canary"


def test_when_secret_is_pickled_then_refused() -> None:
    """A Secret cannot be serialised by accident (into a queue, a snapshot)."""
    with pytest.raises(TypeError):
        pickle.dumps(Secret("a", "b"))


def test_when_field_holds_literal_then_refused_naming_key_not_value() -> None:
    """A literal value in a secret field is refused; the error names the key only."""
    with pytest.raises(ConfigError) as caught:
        secret_name("hunter2-canary", "venues[0].password")
    assert "venues[0].password" in str(caught.value)
    assert "hunter2" not in str(caught.value)


@pytest.mark.parametrize("ref", ["secret:", "secret:Fix", "secret:/a", "secret:a//b", "secret:a b"])
def test_when_reference_is_malformed_then_refused(ref: str) -> None:
    """A reference must name a secret in lowercase path form."""
    with pytest.raises(ConfigError, match="not a valid secret reference"):
        secret_name(ref, "k")


def test_when_reference_is_valid_then_name_is_returned() -> None:
    """'secret:NAME' yields NAME."""
    assert secret_name("secret:fix/acct-1.live_2", "k") == "fix/acct-1.live_2"


def test_when_name_is_missing_then_not_found_names_it() -> None:
    """A source that lacks the name says which."""
    with pytest.raises(SecretNotFound, match="'fix/x'"):
        MemorySecrets({"a": "b"}).get("fix/x")
