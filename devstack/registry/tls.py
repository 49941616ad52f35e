"""Certificates for running the local registry, Kafka (or anything else on loopback) over TLS.

Tests that want real TLS call `make_self_signed_cert(tmp_path)` and hand the certificate to the client as
its CA file. Tests that need a chain (a broker that checks client certificates, a client that must not trust
another CA) make a `CertificateAuthority` with `make_ca` and `issue` server and client certificates from it.
Server certificates name ``localhost`` and ``127.0.0.1`` (as subject alternative names, which is what
hostname verification checks). Everything is written as unencrypted PEM (PKCS#8 keys), valid for a day.
The self-signed pair is made with the `cryptography` package when installed, else with the ``openssl``
command; a CA and its certificates need `cryptography`.
"""

from __future__ import annotations

import datetime
import ipaddress
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = ["CertificateAuthority", "make_ca", "make_self_signed_cert"]

_HOSTS = ("localhost", "127.0.0.1")
_VALID_FOR = datetime.timedelta(days=1)
_BACKDATE = datetime.timedelta(minutes=5)


def make_self_signed_cert(directory: Path, name: str = "registry") -> tuple[Path, Path]:
    """Write ``<name>.crt`` and ``<name>.key`` (PEM) into `directory`, valid for a day.

    Returns:
        The certificate path and the private key path.

    Raises:
        RuntimeError: Neither `cryptography` nor the ``openssl`` command is available, or openssl failed.
    """
    directory.mkdir(parents=True, exist_ok=True)
    cert, key = directory / f"{name}.crt", directory / f"{name}.key"
    try:
        _with_cryptography(cert, key)
    except ImportError:
        _with_openssl(cert, key)
    return cert, key


@dataclass(frozen=True, slots=True)
class CertificateAuthority:
    """A CA on disk (``<name>.crt``, ``<name>.key``) that signs server and client certificates."""

    cert: Path
    key: Path

    def issue(self, directory: Path, name: str, *, client: bool = False) -> tuple[Path, Path]:
        """Write ``<name>.crt`` and ``<name>.key`` signed by this CA into `directory`.

        Args:
            directory: where the files go (created when missing).
            name: the file stem and the certificate's common name (a client certificate's principal).
            client: a client certificate (extended key usage clientAuth) instead of a server one
                (serverAuth, with ``localhost`` and ``127.0.0.1`` as subject alternative names).

        Returns:
            The certificate path and the private key path.
        """
        from cryptography import x509
        from cryptography.hazmat.primitives import serialization
        from cryptography.x509.oid import ExtendedKeyUsageOID

        directory.mkdir(parents=True, exist_ok=True)
        ca_cert = x509.load_pem_x509_certificate(self.cert.read_bytes())
        ca_key: Any = serialization.load_pem_private_key(self.key.read_bytes(), password=None)
        key = _new_key()
        usage = ExtendedKeyUsageOID.CLIENT_AUTH if client else ExtendedKeyUsageOID.SERVER_AUTH
        builder = (
            _builder(_name(name), ca_cert.subject, key)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(_key_usage(ca=False), critical=True)
            .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False
            )
        )
        if not client:
            builder = builder.add_extension(_san(), critical=False)
        return _write(
            directory / f"{name}.crt", directory / f"{name}.key", builder.sign(ca_key, _sha256()), key
        )


def make_ca(directory: Path, name: str = "ca") -> CertificateAuthority:
    """Write a new CA's ``<name>.crt`` and ``<name>.key`` (PEM) into `directory`, valid for a day.

    Raises:
        RuntimeError: the `cryptography` package is not installed.
    """
    try:
        from cryptography import x509
    except ImportError as exc:
        raise RuntimeError("making a certificate authority needs the cryptography package") from exc
    directory.mkdir(parents=True, exist_ok=True)
    key = _new_key()
    subject = _name(f"avroflow test CA {name}")
    cert = (
        _builder(subject, subject, key)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(_key_usage(ca=True), critical=True)
        .sign(key, _sha256())
    )
    cert_path, key_path = _write(directory / f"{name}.crt", directory / f"{name}.key", cert, key)
    return CertificateAuthority(cert_path, key_path)


def _new_key() -> Any:
    from cryptography.hazmat.primitives.asymmetric import ec

    return ec.generate_private_key(ec.SECP256R1())


def _sha256() -> Any:
    from cryptography.hazmat.primitives import hashes

    return hashes.SHA256()


def _name(common_name: str) -> Any:
    from cryptography import x509
    from cryptography.x509.oid import NameOID

    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _san() -> Any:
    from cryptography import x509

    return x509.SubjectAlternativeName(
        [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
    )


def _key_usage(*, ca: bool) -> Any:
    from cryptography import x509

    return x509.KeyUsage(
        digital_signature=not ca,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=ca,
        crl_sign=ca,
        encipher_only=False,
        decipher_only=False,
    )


def _builder(subject: Any, issuer: Any, key: Any) -> Any:
    from cryptography import x509

    now = datetime.datetime.now(datetime.UTC)
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - _BACKDATE)
        .not_valid_after(now + _VALID_FOR)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
    )


def _write(cert_path: Path, key_path: Path, cert: Any, key: Any) -> tuple[Path, Path]:
    from cryptography.hazmat.primitives import serialization

    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return cert_path, key_path


def _with_cryptography(cert_path: Path, key_path: Path) -> None:
    from cryptography import x509

    key = _new_key()
    subject = _name("localhost")
    cert = (
        _builder(subject, subject, key)
        .add_extension(_san(), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, _sha256())
    )
    _write(cert_path, key_path, cert, key)


def _with_openssl(cert_path: Path, key_path: Path) -> None:
    openssl = shutil.which("openssl")
    if openssl is None:
        raise RuntimeError("making a certificate needs the cryptography package or the openssl command")
    san = "subjectAltName=" + ",".join(f"IP:{h}" if h[0].isdigit() else f"DNS:{h}" for h in _HOSTS)
    result = subprocess.run(
        [
            openssl, "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
            "-days", "1", "-subj", "/CN=localhost", "-addext", san,
            "-keyout", str(key_path), "-out", str(cert_path),
        ],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )  # fmt: skip
    if result.returncode != 0:
        raise RuntimeError(f"openssl req failed: {result.stderr.strip()}")
