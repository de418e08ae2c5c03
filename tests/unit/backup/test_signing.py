"""Signed backup records: what a signature covers, and every way a record is refused
(unsigned, another key, any field changed), keys rotated, keys malformed."""

from __future__ import annotations

import base64
import json
import pickle
from typing import Any

import msgspec
import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from bastion.backup.config import BackupConfig
from bastion.backup.manifest import (
    Record,
    check_signature,
    decode_record,
    encode_record,
    signed_bytes,
)
from bastion.backup.signing import (
    UNCHECKED,
    Signers,
    new_signing_key,
    parse_public_key,
    signer_from_secret,
)
from bastion.errors import ConfigError, IntegrityError
from bastion.vault import Secret
from kit.backup_desk import SIGNING_SEEDS, secret_forms, signing_public

DESK = signer_from_secret(Secret("backup/signing", SIGNING_SEEDS["desk"]), "backup.signing_key")
NEXT = signer_from_secret(Secret("backup/signing", SIGNING_SEEDS["next"]), "backup.signing_key")
INTRUDER = signer_from_secret(Secret("x", SIGNING_SEEDS["intruder"]), "backup.signing_key")
TRUSTED = Signers([(DESK.public, "test")])

RECORD = Record(
    id="seg-000000000051-000000000060-20261207T063034712Z",
    kind="segment",
    node_id="desk-1",
    created_ns=1_796_625_034_712_000_000,
    blob="seg-000000000051-000000000060-20261207T063034712Z.age",
    blob_size=4096,
    blob_sha256="ab" * 32,
    first_seq=51,
    last_seq=60,
    head_hash="cd" * 32,
    prev_hash="ef" * 32,
    recipients=["age1qqq"],
)

OLD_RECORD = b"""{
  "blob": "full-20261207T063029696Z-000000000050.age",
  "blob_sha256": "abababababababababababababababababababababababababababababababab",
  "blob_size": 1234,
  "checksum": "dc5a47afa2470db993785676f952837c0e2b0061b15f98f7e4f89a82a76d0e4a",
  "created_ns": 1796625029696000000,
  "first_seq": 1,
  "format": "bastion-backup/1",
  "head_hash": "cdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcd",
  "id": "full-20261207T063029696Z-000000000050",
  "kind": "full",
  "last_seq": 50,
  "node_id": "desk-1",
  "prev_hash": null,
  "recipients": [
    "age1xyz"
  ]
}
"""
"""A record as bastion wrote it before records were signed (byte for byte)."""


def stored(record: Record) -> Record:
    """``record`` written and read back as a verifier does (checksum checked)."""
    return decode_record(encode_record(record), record.id + ".json")


def test_when_signed_then_the_record_verifies_and_its_checksum_holds() -> None:
    """A signed record round-trips: checksum, then signature by a trusted key."""
    signed = stored(RECORD.signed_by(DESK))
    assert signed.signer == DESK.public and signed.signature
    check_signature(signed, TRUSTED, RECORD.id)
    assert signed_bytes(signed).startswith(b"bastion-backup-record/1\n")
    assert b'"blob_sha256":"' + b"ab" * 32 + b'"' in signed_bytes(signed)


def test_when_a_record_made_before_signing_is_read_then_it_is_accepted_only_unchecked() -> None:
    """Old records keep their checksum; configured keys refuse them as unsigned."""
    record = decode_record(OLD_RECORD, "old.json")
    assert record.signer is None and record.signature is None
    check_signature(record, UNCHECKED, record.id)
    with pytest.raises(IntegrityError, match=f"backup {record.id}: its record is not signed"):
        check_signature(record, TRUSTED, record.id)
    assert b"signer" not in encode_record(RECORD) and b"signature" not in encode_record(RECORD)


_HEX = st.text(alphabet="0123456789abcdef", min_size=64, max_size=64)
_NAME = st.text(min_size=0, max_size=60)
_SEQ = st.integers(min_value=0, max_value=2**62)
_CHANGES: dict[str, st.SearchStrategy[Any]] = {
    "id": _NAME,
    "kind": st.sampled_from(["full", "segment"]),
    "node_id": _NAME,
    "created_ns": _SEQ,
    "blob": _NAME,
    "blob_size": _SEQ,
    "blob_sha256": _HEX,
    "first_seq": _SEQ,
    "last_seq": _SEQ,
    "head_hash": st.none() | _HEX,
    "prev_hash": st.none() | _HEX,
    "recipients": st.lists(_NAME, max_size=3),
    "signer": st.just(NEXT.public),
}


@given(data=st.data())
def test_when_any_field_of_a_signed_record_is_changed_and_resealed_then_it_is_refused(
    data: st.DataObject,
) -> None:
    """Seq range, blob SHA-256, kind, time or any other field: the checksum recomputed
    (anyone can), the signature no longer verifies."""
    field = data.draw(st.sampled_from(sorted(_CHANGES)), label="field")
    value = data.draw(_CHANGES[field], label="value")
    signed = RECORD.signed_by(DESK)
    assume(getattr(signed, field) != value)
    forged = stored(msgspec.structs.replace(signed, **{field: value}))  # checksum passes
    both = Signers([(DESK.public, "a"), (NEXT.public, "b")])
    with pytest.raises(IntegrityError, match="signature does not verify"):
        check_signature(forged, both, RECORD.id)


def test_when_the_signature_is_stripped_then_the_record_is_refused_as_unsigned() -> None:
    """Removing the signature (and resealing) is no way around it."""
    stripped = stored(msgspec.structs.replace(RECORD.signed_by(DESK), signer=None, signature=None))
    with pytest.raises(IntegrityError, match="not signed"):
        check_signature(stripped, TRUSTED, RECORD.id)


def test_when_signed_by_another_key_then_the_record_is_refused() -> None:
    """An intruder's key, named as itself or passed off as the desk's, is refused."""
    own = stored(RECORD.signed_by(INTRUDER))
    with pytest.raises(IntegrityError, match="which is not one of the trusted keys"):
        check_signature(own, TRUSTED, RECORD.id)
    posing = stored(msgspec.structs.replace(own, signer=DESK.public))
    with pytest.raises(IntegrityError, match="signature does not verify"):
        check_signature(posing, TRUSTED, RECORD.id)
    garbage = stored(msgspec.structs.replace(own, signature="not base64!"))
    with pytest.raises(IntegrityError, match="signature does not verify"):
        check_signature(garbage, Signers([(INTRUDER.public, "t")]), RECORD.id)


def test_when_two_keys_are_trusted_then_records_by_either_verify() -> None:
    """Rotation: the old key's records and the new key's both verify; the old one's
    are refused once its key is dropped."""
    rotating = Signers([(DESK.public, "old"), (NEXT.public, "new")])
    old, new = stored(RECORD.signed_by(DESK)), stored(RECORD.signed_by(NEXT))
    check_signature(old, rotating, RECORD.id)
    check_signature(new, rotating, RECORD.id)
    with pytest.raises(IntegrityError, match="not one of the trusted keys"):
        check_signature(old, Signers([(NEXT.public, "new")]), RECORD.id)


def test_when_the_vault_holds_a_malformed_key_then_the_error_names_the_key_not_the_value() -> None:
    """A short, non-hex or public key in the vault: the config key and secret named."""
    for value in ("abc123", "zz" * 32, DESK.public, SIGNING_SEEDS["desk"][:-2]):
        with pytest.raises(ConfigError) as caught:
            signer_from_secret(Secret("backup/signing", value), "backup.signing_key")
        message = str(caught.value)
        assert "key 'backup.signing_key': secret 'backup/signing'" in message
        assert "bastion backup keygen --signing" in message
        assert value not in message


def test_when_a_public_key_is_malformed_or_private_then_config_refuses_it_by_name() -> None:
    """signing_public_keys: a pasted private key is named as such and never echoed."""
    base = {"destination": {"kind": "dir", "path": "x"}, "recipients": ["age1x"]}
    seed = SIGNING_SEEDS["desk"]
    for bad, expected in (
        (seed, "looks like a private signing key"),
        ("ed25519:" + seed, "looks like a private signing key"),
        ("ssh-ed25519 AAAA", "starts with 'ed25519:'"),
        ("ed25519:AAAA", "32 bytes in base64"),
        ("ed25519:not base64!", "32 bytes in base64"),
    ):
        with pytest.raises(ConfigError, match=expected) as caught:
            msgspec.convert(
                {**base, "signing_public_keys": [DESK.public, bad]},
                BackupConfig,
            )
        assert "key 'backup.signing_public_keys[1]'" in str(caught.value)
        assert seed not in str(caught.value)
    with pytest.raises(ConfigError, match=r"key 'backup\.signing_key'"):
        msgspec.convert({**base, "signing_key": seed}, BackupConfig)
    with pytest.raises(ConfigError, match="--signer"):
        parse_public_key("nope", "--signer")


def test_when_shown_the_signer_never_reveals_its_private_key() -> None:
    """repr/str show the public key only; it is not pickled; a new key's seed is masked."""
    seed = SIGNING_SEEDS["desk"]
    shown = f"{DESK!r} {DESK} {[DESK]}"
    assert DESK.public in shown
    for form in secret_forms(seed):
        assert form.decode() not in shown
    with pytest.raises(TypeError):
        pickle.dumps(DESK)
    made, public = new_signing_key()
    assert made.reveal() not in repr(made) and public.startswith("ed25519:")
    assert signer_from_secret(made, "k").public == public
    assert signing_public(seed) == DESK.public


def test_when_a_record_names_a_malformed_signer_then_the_error_does_not_echo_it() -> None:
    """A signer field is the store's text: shown only when it is a well-formed key."""
    odd = stored(msgspec.structs.replace(RECORD.signed_by(INTRUDER), signer="\x1b[2Jowned"))
    with pytest.raises(IntegrityError, match="signed by a malformed key") as caught:
        check_signature(odd, TRUSTED, RECORD.id)
    assert "\x1b" not in str(caught.value)


def _json_text(items: list[tuple[str, Any]], *, escape: bool) -> bytes:
    """A JSON object written by hand from ``items`` (keys may repeat); ``escape``: every
    character of every string as a ``\\uXXXX`` escape."""

    def text(value: Any) -> str:
        if isinstance(value, str) and escape:
            units = value.encode("utf-16-be")
            pairs = (units[i : i + 2].hex() for i in range(0, len(units), 2))
            return '"' + "".join(f"\\u{unit}" for unit in pairs) + '"'
        return json.dumps(value)

    return ("{" + ",".join(f"{text(k)}:{text(v)}" for k, v in items) + "}").encode()


@given(data=st.data())
def test_when_a_signed_record_is_rewritten_with_repeated_keys_then_what_verifies_is_what_is_read(
    data: st.DataObject,
) -> None:
    """Duplicate keys, escapes and any order: the checksum and the signature cover the
    record as parsed, never the text. A forged value before the genuine one is read as
    the genuine one (and verifies); after it, it is read and refused."""
    signed = RECORD.signed_by(DESK)
    genuine = json.loads(encode_record(signed))
    field = data.draw(st.sampled_from(sorted(_CHANGES)), label="field")
    value = data.draw(_CHANGES[field], label="value")
    assume(genuine.get(field) != value)
    items = data.draw(st.permutations(sorted(genuine.items())), label="order")
    escape = data.draw(st.booleans(), label="escape")
    read = decode_record(_json_text([(field, value), *items], escape=escape), "r.json")
    assert read == signed
    check_signature(read, TRUSTED, RECORD.id)
    resealed = msgspec.structs.replace(signed, **{field: value}).sealed().checksum  # anyone can
    items = [(k, resealed if k == "checksum" else v) for k, v in items]
    forged = decode_record(_json_text([*items, (field, value)], escape=escape), "r.json")
    assert getattr(forged, field) == value  # the parser reads the last: the forgery
    both = Signers([(DESK.public, "a"), (NEXT.public, "b")])
    with pytest.raises(IntegrityError, match="signature does not verify"):
        check_signature(forged, both, RECORD.id)


def test_when_the_signature_is_written_another_way_then_only_the_same_bytes_verify() -> None:
    """URL-safe base64, hex, unpadded, wrapped: refused. Base64 spelling the same 64
    bytes otherwise (its last character's unused bits) verifies: it signs nothing new."""
    signed = RECORD.signed_by(DESK)
    assert signed.signature is not None
    raw = base64.b64decode(signed.signature)
    bad_forms = [
        base64.urlsafe_b64encode(raw).decode().replace("=", "") + "==",
        raw.hex(),
        signed.signature.rstrip("="),
        signed.signature[:40] + "\n" + signed.signature[40:],
        " " + signed.signature,
        base64.b64encode(raw + b"\0").decode(),
        base64.b64encode(raw[:-1]).decode(),
    ]
    for form in bad_forms:
        if form == signed.signature:
            continue
        rewritten = stored(msgspec.structs.replace(signed, signature=form))
        with pytest.raises(IntegrityError, match="signature does not verify"):
            check_signature(rewritten, TRUSTED, RECORD.id)
    last = signed.signature[-3]  # ...X== : X's low 4 bits are not data
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
    other = alphabet[alphabet.index(last) ^ 1]
    respelled = signed.signature[:-3] + other + "=="
    assert base64.b64decode(respelled) == raw
    check_signature(stored(msgspec.structs.replace(signed, signature=respelled)), TRUSTED, "x")
