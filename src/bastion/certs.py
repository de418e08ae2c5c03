"""A local certificate authority and short-lived certificates for FIX over TLS.

``create_certs(DIR)`` writes, into a directory readable by its owner only:

- ``ca.pem``: a new CA certificate. Its private key signs the others and is then
  dropped, never written: nothing more can be signed with it, so a stolen copy of
  the directory cannot mint a certificate. Run again to renew everything.
- ``venue.pem`` / ``venue.key``: the simulator's certificate, valid for each host
  given (default ``127.0.0.1``, ``::1`` and ``localhost``).
- ``<client>.pem`` / ``<client>.key`` per client name (default ``node``): a client
  certificate whose common name is that name, for mutual TLS.

Keys are EC P-256, files 0600; certificates last ``days`` (default 30).

``create_server_cert`` writes one self-signed server certificate and its key (the
console's HTTPS, ``bastion console init``).
"""

from __future__ import annotations

import datetime
import ipaddress
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from bastion.errors import UsageError

DEFAULT_HOSTS = ("127.0.0.1", "::1", "localhost")
DEFAULT_DAYS = 30


@dataclass(frozen=True, slots=True)
class CertFiles:
    """The files ``create_certs`` wrote."""

    ca: Path
    venue_cert: Path
    venue_key: Path
    clients: dict[str, tuple[Path, Path]]


def create_certs(
    directory: Path,
    *,
    hosts: Sequence[str] = DEFAULT_HOSTS,
    clients: Sequence[str] = ("node",),
    days: int = DEFAULT_DAYS,
    now: datetime.datetime | None = None,
) -> CertFiles:
    """Write a CA, the venue's certificate and one client certificate per name."""
    if days <= 0:
        raise UsageError(f"--days must be > 0, got {days}")
    for name in clients:
        if not name or not all(c.isalnum() or c in "-_." for c in name) or name == "venue":
            raise UsageError(f"client name {name!r}: letters, digits, '-', '_', '.'; not 'venue'")
    directory.mkdir(parents=True, exist_ok=True)
    os.chmod(directory, 0o700)
    start = (now or datetime.datetime.now(datetime.UTC)) - datetime.timedelta(minutes=5)
    end = start + datetime.timedelta(days=days, minutes=5)

    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "bastion local CA")])
    ca_cert = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(end)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=False,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), False)
        .sign(ca_key, hashes.SHA256())
    )

    def issue(common_name: str, usage: x509.ObjectIdentifier, sans: Sequence[str]) -> bytes:
        key = ec.generate_private_key(ec.SECP256R1())
        builder = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)]))
            .issuer_name(ca_name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(start)
            .not_valid_after(end)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), False
            )
        )
        if sans:
            builder = builder.add_extension(
                x509.SubjectAlternativeName([_general_name(h) for h in sans]), critical=False
            )
        cert = builder.sign(ca_key, hashes.SHA256())
        _write_key(key, paths[common_name][1])
        return cert.public_bytes(Encoding.PEM)

    paths: dict[str, tuple[Path, Path]] = {
        name: (directory / f"{name}.pem", directory / f"{name}.key") for name in ("venue", *clients)
    }
    ca_path = directory / "ca.pem"
    _write_public(ca_path, ca_cert.public_bytes(Encoding.PEM))
    _write_public(paths["venue"][0], issue("venue", ExtendedKeyUsageOID.SERVER_AUTH, hosts))
    for name in clients:
        _write_public(paths[name][0], issue(name, ExtendedKeyUsageOID.CLIENT_AUTH, ()))
    return CertFiles(
        ca=ca_path,
        venue_cert=paths["venue"][0],
        venue_key=paths["venue"][1],
        clients={name: paths[name] for name in clients},
    )


def _general_name(host: str) -> x509.GeneralName:
    try:
        return x509.IPAddress(ipaddress.ip_address(host))
    except ValueError:
        return x509.DNSName(host)


def _write_key(key: ec.EllipticCurvePrivateKey, path: Path) -> None:
    data = key.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption())
    path.unlink(missing_ok=True)  # a new file, created 0600: never a moment more open
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(data)


def _write_public(path: Path, data: bytes) -> None:
    path.write_bytes(data)
    os.chmod(path, 0o644)


def create_server_cert(
    cert_path: Path,
    key_path: Path,
    *,
    hosts: Sequence[str] = DEFAULT_HOSTS,
    days: int = 365,
    now: datetime.datetime | None = None,
) -> None:
    """A self-signed server certificate for ``hosts`` (the console's HTTPS), its key
    (EC P-256) written 0600. A browser asks once to trust it; a desk with its own CA
    puts that certificate in the console config instead."""
    if days <= 0:
        raise UsageError(f"--days must be > 0, got {days}")
    start = (now or datetime.datetime.now(datetime.UTC)) - datetime.timedelta(minutes=5)
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"bastion console {hosts[0]}")])
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(start + datetime.timedelta(days=days, minutes=5))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(
            x509.SubjectAlternativeName([_general_name(h) for h in hosts]), critical=False
        )
        .sign(key, hashes.SHA256())
    )
    _write_key(key, key_path)
    _write_public(cert_path, cert.public_bytes(Encoding.PEM))
