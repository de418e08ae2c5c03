"""A config as it leaves the desk in an incident bundle: references kept, literals under
secret keys masked wherever they are written, the rest of the text untouched."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

from bastion.incident import mask_config, register_env_secrets, tail_lines
from bastion.incident.masking import is_secret_key
from bastion.vault import redact

CONFIG = """\
# desk config
[node]
id = "n-1"

[journal]
path = "journal.sqlite"
encryption_key = "secret:journal/encryption"
chain_key = 'raw-chain-key-0123456789'

[[venues]]
kind = "fix"
name = "FIX"
password = "hunter2-hunter2"
password_env = "FIX_PASSWORD"
tls = { client_key = "secret:fix/key", ca_file = "ca.pem" }
# password = "old-password-1234"

[[alert_routes]]
name = "chat"
urls = ["secret:notify/slack", "slack://TokenA/TokenB/TokenC"]
deadman = { url = "https://hc-ping.com/0c1f-uuid" }
"""


def test_when_config_has_secret_literals_then_each_is_masked_and_references_kept() -> None:
    """Plain, quoted, inline-table, array and commented-out literals are masked; secret
    references, env variable names and other values stay as written."""
    masked, count = mask_config(CONFIG)
    for literal in (
        "raw-chain-key-0123456789",
        "hunter2-hunter2",
        "old-password-1234",
        "slack://TokenA/TokenB/TokenC",
        "https://hc-ping.com/0c1f-uuid",
    ):
        assert literal not in masked, literal
    assert count == 5
    for kept in (
        'encryption_key = "secret:journal/encryption"',
        'password_env = "FIX_PASSWORD"',
        'client_key = "secret:fix/key"',
        'ca_file = "ca.pem"',
        'urls = ["secret:notify/slack", "***"]',
        "chain_key = '***'",
        'path = "journal.sqlite"',
        "# desk config",
    ):
        assert kept in masked, kept
    tomllib.loads(masked)  # still TOML


def test_when_a_secret_literal_also_appears_elsewhere_then_it_is_masked_there_too() -> None:
    """A value under a secret key, repeated in a comment or under an innocent key, and
    one written with an escape, are masked wherever the parsed value appears."""
    text = (
        'token = "abc\\u0064efgh-token"\n# the token was abcdefgh-token\nnote = "abcdefgh-token"\n'
    )
    masked, count = mask_config(text)
    assert "abcdefgh-token" not in masked and "u0064efgh" not in masked
    assert count == 3


@pytest.mark.parametrize(
    ("key", "secret"),
    [
        ("password", True),
        ("store_encryption_key", True),
        ("key", True),
        ("url", True),
        ("api_key", True),
        ("password_env", False),
        ("path", False),
        ("monkey_business", False),
        ("sender_comp_id", False),
    ],
)
def test_when_a_key_is_named_then_its_secrecy_follows_its_name(key: str, secret: bool) -> None:
    """Names that hold secrets, or URLs that carry tokens, count; env names do not."""
    assert is_secret_key(key) is secret


def test_when_config_names_env_variables_then_their_values_are_registered() -> None:
    """A password handed down through password_env is redacted from the bundle too."""
    environ = {"FIX_PASSWORD": "handed-down-password", "OTHER": "x"}
    assert register_env_secrets(CONFIG, environ) == 1
    assert redact.redact("pw handed-down-password") == f"pw {redact.MASK}"


def test_when_config_is_not_toml_then_masking_still_covers_what_is_written() -> None:
    """A broken file (the reason for the incident, perhaps) is masked by its text."""
    masked, count = mask_config('password = "broken-secret-9"\n[unclosed\n')
    assert "broken-secret-9" not in masked and count == 1
    assert register_env_secrets("[unclosed\n", {}) == 0


def test_when_a_log_is_tailed_then_its_last_lines_come_back(tmp_path: Path) -> None:
    """The last N lines, read from the end: across blocks, without a final newline, and
    a file shorter than N."""
    log = tmp_path / "node.log"
    lines = [f"line {n} " + "x" * 100 + "\n" for n in range(3000)]
    log.write_text("".join(lines))
    assert tail_lines(log, 2) == "".join(lines[-2:]).encode()
    assert tail_lines(log, 1500) == "".join(lines[-1500:]).encode()
    log.write_text("a\nb\nc")
    assert tail_lines(log, 2) == b"b\nc"
    assert tail_lines(log, 10) == b"a\nb\nc"
    log.write_text("")
    assert tail_lines(log, 3) == b""
