"""Self-signed certificates for running the local registry (or anything else on loopback) over TLS.

Tests that want real TLS call `make_self_signed_cert(tmp_path)` and hand the certificate to the client as
its CA file. The certificate names ``localhost`` and ``127.0.0.1`` (as subject alternative names, which is
what hostname verification checks). It is made with the `cryptography` package when installed, else with
the ``openssl`` command.
"""

from __future__ import annotations

import datetime
import ipaddress
import shutil
import subprocess
from pathlib import Path

__all__ = ["make_self_signed_cert"]

_HOSTS = ("localhost", "127.0.0.1")


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


def _with_cryptography(cert_path: Path, key_path: Path) -> None:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.datetime.now(datetime.UTC)
    san = x509.SubjectAlternativeName(
        [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
    )
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(san, critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))


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
