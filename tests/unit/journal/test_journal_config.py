"""JournalConfig: durability policy keys, validated with the key's name."""

from __future__ import annotations

from pathlib import Path

import pytest

from bastion.config import PaperConfig, load_config, scaffold_dir
from bastion.errors import ConfigError
from bastion.journal import JournalConfig, SqliteJournal


def paper_with_journal(tmp_path: Path, journal_lines: str) -> Path:
    text = (scaffold_dir() / "paper.toml").read_text(encoding="utf-8")
    head, _, tail = text.partition("[journal]")
    _, _, rest = tail.partition("[account]")
    (tmp_path / "strategies").mkdir()
    (tmp_path / "strategies" / "ema_cross.py").write_bytes(
        (scaffold_dir() / "strategies" / "ema_cross.py").read_bytes()
    )
    path = tmp_path / "paper.toml"
    path.write_text(f"{head}[journal]\n{journal_lines}\n[account]{rest}", encoding="utf-8")
    return path


def test_when_scaffold_loaded_then_journal_defaults_to_group_commit() -> None:
    """The packaged paper.toml sets group commit every 5 ms."""
    config = load_config(scaffold_dir() / "paper.toml", PaperConfig)
    assert config.journal == JournalConfig(path="journal.sqlite")
    assert config.journal.durability == "group"
    assert config.journal.flush_interval_ms == 5


def test_when_fsync_each_configured_then_journal_opens_in_that_mode(tmp_path: Path) -> None:
    """durability = "fsync_each" reaches the journal (no writer thread)."""
    config = load_config(paper_with_journal(tmp_path, 'durability = "fsync_each"'), PaperConfig)
    journal = SqliteJournal.from_config(tmp_path / "j.sqlite", config.journal)
    journal.close()
    assert journal.durability == "fsync_each"


@pytest.mark.parametrize(
    ("lines", "message"),
    [
        ('durability = "sometimes"', "journal.durability"),
        ("group_commit_max_events = 0", "journal.group_commit_max_events"),
        ("flush_interval_ms = 0", "journal.flush_interval_ms"),
        ("group_commit_ms = 5", "unknown key 'journal.group_commit_ms'"),
    ],
)
def test_when_journal_key_is_bad_then_config_error_names_it(
    tmp_path: Path, lines: str, message: str
) -> None:
    """Bad or unknown journal keys are config errors naming the key."""
    with pytest.raises(ConfigError, match=message.replace(".", r"\.")):
        load_config(paper_with_journal(tmp_path, lines), PaperConfig)


def test_when_postgres_without_url_then_refused_naming_the_key() -> None:
    with pytest.raises(ConfigError, match=r"key 'journal\.url': required"):
        JournalConfig(backend="postgres")


def test_when_url_holds_a_password_then_refused_without_echoing_it() -> None:
    """The password belongs in the vault: the error names the keys, never the value."""
    for url in ("postgresql://bastion:hunter2x@db/desk", "host=db user=bastion password=hunter2x"):
        with pytest.raises(ConfigError, match=r"key 'journal\.url': holds a password") as caught:
            JournalConfig(backend="postgres", url=url)
        assert "hunter2x" not in str(caught.value) and "journal.password" in str(caught.value)


def test_when_postgres_keys_on_sqlite_then_refused_naming_the_key() -> None:
    with pytest.raises(ConfigError, match=r"key 'journal\.url': only for backend"):
        JournalConfig(url="postgresql://bastion@db/desk")
    with pytest.raises(ConfigError, match=r"key 'journal\.password'"):
        JournalConfig(backend="postgres", url="postgresql://db/x", password="hunter2x")


def test_when_postgres_configured_then_password_is_a_secret_ref() -> None:
    config = JournalConfig(
        backend="postgres", url="postgresql://bastion@db/desk", password="secret:journal/pw"
    )
    assert ("journal.password", "journal/pw") in config.secret_refs()
