"""TLS for FIX connections: the node's ``[venues.tls]`` and the simulator's ``[tls]``
tables, the ``ssl.SSLContext`` each builds, certificate pinning, and who a peer's
certificate says it is.

Both ends use TLS 1.2 at least and Python's default cipher choice. The node verifies
the venue against a CA file with hostname checking, or against a pinned certificate or
public key (SHA-256 of the DER certificate or of its SubjectPublicKeyInfo), or both; a
pin is checked after the handshake and before a byte of FIX is sent. A private key is a
secret: a key file must be readable by its owner only, and ``"secret:NAME"`` takes the
PEM from a ``SecretSource`` (the vault) instead; it reaches OpenSSL through an anonymous
in-memory file (Linux) or a file in a fresh 0700 directory, removed at once.
"""

from __future__ import annotations

import contextlib
import enum
import hashlib
import os
import ssl
import stat
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import msgspec

from bastion.errors import ConfigError
from bastion.vault import Secret, SecretSource, is_secret_ref, secret_name


class TlsVersion(enum.Enum):
    """The lowest TLS version a connection may use."""

    TLS_1_2 = "1.2"
    TLS_1_3 = "1.3"

    @property
    def ssl_version(self) -> ssl.TLSVersion:
        return ssl.TLSVersion.TLSv1_3 if self is TlsVersion.TLS_1_3 else ssl.TLSVersion.TLSv1_2


class TlsClientConfig(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """How the node checks the venue, and the certificate it shows (``[venues.tls]``).

    - ``ca_file``: verify the venue's certificate chain against these CA certificates,
      and its name against ``server_hostname`` (default: the venue's ``host``).
    - ``pin_cert_sha256`` / ``pin_spki_sha256``: the SHA-256 (hex, colons allowed) of
      the venue's certificate, or of its public key; checked after the handshake, and
      on a mismatch no Logon is sent. With a pin and no ``ca_file`` the chain is not
      checked: the pin is the trust.
    - ``client_cert`` / ``client_key``: the node's certificate (PEM) and its private key
      for mutual TLS; the key is a file readable by its owner only, or
      ``"secret:NAME"`` (a PEM in the vault).
    - ``min_version``: ``"1.2"`` (default) or ``"1.3"``.
    """

    ca_file: str | None = None
    pin_cert_sha256: str | None = None
    pin_spki_sha256: str | None = None
    server_hostname: str | None = None
    client_cert: str | None = None
    client_key: str | None = None
    min_version: TlsVersion = TlsVersion.TLS_1_2

    def check(self, key: str) -> None:
        """``ConfigError`` naming ``key.<field>`` for the first invalid value."""
        if self.ca_file is None and self.pin_cert_sha256 is None and self.pin_spki_sha256 is None:
            raise ConfigError(
                f"key '{key}': give ca_file, pin_cert_sha256 or pin_spki_sha256: "
                "TLS that trusts any certificate protects nothing"
            )
        for field in ("pin_cert_sha256", "pin_spki_sha256"):
            value = getattr(self, field)
            if value is not None and _normalise_fingerprint(value) is None:
                raise ConfigError(f"key '{key}.{field}': not a SHA-256 in hex (64 hex digits)")
        if (self.client_cert is None) != (self.client_key is None):
            raise ConfigError(f"keys '{key}.client_cert' and '{key}.client_key': give both")
        if self.client_key is not None and is_secret_ref(self.client_key):
            secret_name(self.client_key, f"{key}.client_key")

    def secret_refs(self, key: str) -> list[tuple[str, str]]:
        """The vault secret the client key refers to, if it does: ``(config key, name)``."""
        return _key_refs(self.client_key, f"{key}.client_key")

    def pin(self) -> Pin | None:
        if self.pin_cert_sha256 is None and self.pin_spki_sha256 is None:
            return None
        return Pin(
            cert_sha256=_normalise_fingerprint(self.pin_cert_sha256 or ""),
            spki_sha256=_normalise_fingerprint(self.pin_spki_sha256 or ""),
        )

    def client(self, base_dir: Path, key: str, *, secrets: SecretSource | None = None) -> ClientTls:
        """Context, hostname and pin, ready for ``FixInitiator``."""
        context = self.context(base_dir, key, secrets=secrets)
        return ClientTls(context, self.server_hostname, self.pin())

    def context(
        self, base_dir: Path, key: str, *, secrets: SecretSource | None = None
    ) -> ssl.SSLContext:
        """The client context; files are relative to ``base_dir``. ``ConfigError`` naming
        the key for a file that cannot be read or a key file others can read."""
        context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH)
        context.minimum_version = self.min_version.ssl_version
        if self.ca_file is None:
            context.check_hostname = False  # the pin, checked after the handshake, decides
            context.verify_mode = ssl.CERT_NONE
        else:
            path = _path(base_dir, self.ca_file)
            try:
                context.load_verify_locations(cafile=str(path))
            except (OSError, ssl.SSLError) as error:
                raise ConfigError(f"key '{key}.ca_file': cannot load {path}: {error}") from None
        if self.client_cert is not None and self.client_key is not None:
            load_cert_chain(
                context,
                _path(base_dir, self.client_cert),
                self.client_key,
                base_dir,
                f"{key}.client_key",
                secrets=secrets,
            )
        return context


class TlsServerConfig(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """The venue simulator's TLS (``[tls]``).

    - ``cert_file`` / ``key_file``: its certificate (PEM, chain after it) and private
      key: a file readable by its owner only, or ``"secret:NAME"``.
    - ``client_ca_file``: require a client certificate signed by these CAs (mutual
      TLS); an account can then name the certificate it must log on with.
    - ``min_version``: ``"1.2"`` (default) or ``"1.3"``.
    """

    cert_file: str
    key_file: str
    client_ca_file: str | None = None
    min_version: TlsVersion = TlsVersion.TLS_1_2

    def check(self, key: str) -> None:
        for field in ("cert_file", "key_file"):
            if not getattr(self, field):
                raise ConfigError(f"key '{key}.{field}': must not be empty")
        if is_secret_ref(self.key_file):
            secret_name(self.key_file, f"{key}.key_file")

    def secret_refs(self, key: str) -> list[tuple[str, str]]:
        """The vault secret the key refers to, if it does: ``(config key, name)``."""
        return _key_refs(self.key_file, f"{key}.key_file")

    def context(
        self, base_dir: Path, key: str, *, secrets: SecretSource | None = None
    ) -> ssl.SSLContext:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.minimum_version = self.min_version.ssl_version
        load_cert_chain(
            context,
            _path(base_dir, self.cert_file),
            self.key_file,
            base_dir,
            f"{key}.key_file",
            secrets=secrets,
        )
        if self.client_ca_file is not None:
            path = _path(base_dir, self.client_ca_file)
            try:
                context.load_verify_locations(cafile=str(path))
            except (OSError, ssl.SSLError) as error:
                raise ConfigError(
                    f"key '{key}.client_ca_file': cannot load {path}: {error}"
                ) from None
            context.verify_mode = ssl.CERT_REQUIRED
        return context


@dataclass(frozen=True, slots=True)
class ClientTls:
    """What an initiator needs for TLS: the context, the name the venue's certificate
    must carry (``None``: the host connected to), and the pin, if any."""

    context: ssl.SSLContext
    server_hostname: str | None = None
    pin: Pin | None = None


@dataclass(frozen=True, slots=True)
class Pin:
    """Expected SHA-256 fingerprints (lowercase hex) of the peer's certificate and/or
    public key; ``None`` for one not pinned."""

    cert_sha256: str | None
    spki_sha256: str | None

    def mismatch(self, der: bytes | None) -> str | None:
        """Why the certificate ``der`` does not match, or ``None`` when it does."""
        if der is None:
            return "the peer showed no certificate"
        fingerprints = Fingerprints.of(der)
        if self.cert_sha256 is not None and fingerprints.cert_sha256 != self.cert_sha256:
            return f"certificate SHA-256 is {fingerprints.cert_sha256}, pinned {self.cert_sha256}"
        if self.spki_sha256 is not None and fingerprints.spki_sha256 != self.spki_sha256:
            return f"public key SHA-256 is {fingerprints.spki_sha256}, pinned {self.spki_sha256}"
        return None


@dataclass(frozen=True, slots=True)
class Fingerprints:
    """SHA-256 (lowercase hex) of a DER certificate and of its SubjectPublicKeyInfo."""

    cert_sha256: str
    spki_sha256: str

    @classmethod
    def of(cls, der: bytes) -> Fingerprints:
        from cryptography import x509
        from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

        spki = (
            x509.load_der_x509_certificate(der)
            .public_key()
            .public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)
        )
        return cls(hashlib.sha256(der).hexdigest(), hashlib.sha256(spki).hexdigest())

    @classmethod
    def of_pem_file(cls, path: Path) -> Fingerprints:
        return cls.of(ssl.PEM_cert_to_DER_cert(path.read_text(encoding="ascii")))


@dataclass(frozen=True, slots=True)
class PeerCertificate:
    """What a verified client certificate says: its common name and SHA-256."""

    common_name: str | None
    cert_sha256: str

    @classmethod
    def of(cls, ssl_object: ssl.SSLObject | ssl.SSLSocket | None) -> PeerCertificate | None:
        """The peer's certificate on a connection, if it showed one that was verified."""
        if ssl_object is None:
            return None
        der = ssl_object.getpeercert(binary_form=True)
        decoded = ssl_object.getpeercert()
        if not der or not decoded:  # not shown, or not verified (no client CA)
            return None
        common_name = None
        for rdn in decoded.get("subject", ()):
            for attribute in rdn:
                if attribute[0] == "commonName":
                    common_name = str(attribute[1])
        return cls(common_name, hashlib.sha256(der).hexdigest())


def check_key_file(path: Path, key: str) -> None:
    """A private key file must be a regular file readable by its owner only."""
    try:
        info = path.stat()
    except OSError as error:
        raise ConfigError(f"key '{key}': cannot read {path}: {error.strerror}") from None
    if not stat.S_ISREG(info.st_mode):
        raise ConfigError(f"key '{key}': {path} is not a regular file")
    if info.st_mode & 0o077:
        raise ConfigError(
            f"key '{key}': private key {path} is readable by other users "
            f"(mode {stat.S_IMODE(info.st_mode):04o}); run: chmod 600 {path}"
        )


def load_cert_chain(
    context: ssl.SSLContext,
    cert_path: Path,
    key_value: str,
    base_dir: Path,
    key: str,
    *,
    secrets: SecretSource | None,
) -> None:
    """Load a certificate and its private key: a key file (owner-only) or a vault
    reference. Errors name the config key and the file, never key material."""
    try:
        if is_secret_ref(key_value):
            if secrets is None:
                raise ConfigError(f"key '{key}': secret references need the vault")
            secret = secrets.get(secret_name(key_value, key))
            with _pem_file(secret) as key_path:
                context.load_cert_chain(str(cert_path), str(key_path))
            return
        key_path = _path(base_dir, key_value)
        check_key_file(key_path, key)
        context.load_cert_chain(str(cert_path), str(key_path))
    except (OSError, ssl.SSLError) as error:
        raise ConfigError(
            f"key '{key}': cannot load the certificate {cert_path} with its key: "
            f"{getattr(error, 'strerror', None) or error.__class__.__name__}"
        ) from None


@contextlib.contextmanager
def _pem_file(secret: Secret) -> Iterator[Path]:
    """A path OpenSSL can read the PEM from, gone when the block ends: an anonymous
    memory file on Linux (never on disk), else a 0600 file in a fresh 0700 directory."""
    data = secret.reveal().encode()
    if hasattr(os, "memfd_create") and Path("/proc/self/fd").is_dir():
        fd = os.memfd_create("bastion-tls-key", os.MFD_CLOEXEC)
        try:
            os.write(fd, data)
            yield Path(f"/proc/self/fd/{fd}")
        finally:
            os.close(fd)
        return
    directory = tempfile.mkdtemp(prefix="bastion-tls-")  # 0700
    path = Path(directory) / "key.pem"
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        yield path
    finally:
        path.unlink(missing_ok=True)
        os.rmdir(directory)


def _key_refs(value: str | None, key: str) -> list[tuple[str, str]]:
    if value is None or not is_secret_ref(value):
        return []
    return [(key, secret_name(value, key))]


def _path(base_dir: Path, value: str) -> Path:
    path = Path(value).expanduser()
    return path if path.is_absolute() else base_dir / path


def _normalise_fingerprint(value: str) -> str | None:
    text = value.replace(":", "").strip().lower()
    if len(text) != 64 or any(c not in "0123456789abcdef" for c in text):
        return None
    return text
