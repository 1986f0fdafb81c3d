"""The certificate of the box's encrypted DNS: the operator's, or a self-signed pair made once.

A self-signed certificate is made at first start by ``openssl`` (always present where Python's
ssl module is) with fixed arguments, into ``<state_dir>/tls/``; machines that are told its
SHA-256 fingerprint (``parafoudre doctor`` shows it) can pin it. Several workers may start at
once: each makes its pair in a directory of its own and renames it into place; the first rename
wins and the others use the winner's.
"""

from __future__ import annotations

import contextlib
import hashlib
import ipaddress
import os
import shutil
import socket
import ssl
import subprocess
from pathlib import Path
from typing import Final

from resolver.config.server import ServerConfig
from resolver.errors import ParafoudreError

CERT_FILE: Final = "cert.pem"
KEY_FILE: Final = "key.pem"
_DAYS: Final = "3650"  # a self-signed certificate is pinned, not renewed: ten years
_OPENSSL_TIMEOUT: Final = 60.0


class CertificateError(ParafoudreError):
    """The certificate or key cannot be read or made."""


def server_name(server: ServerConfig) -> str:
    """The name clients check in the certificate and find in the DDR answer."""
    return server.tls_name or socket.gethostname().lower()[:253] or "parafoudre"


def trusting(cert: Path) -> ssl.SSLContext:
    """A client context that trusts exactly this certificate (and its chain), for self-checks:
    the leaf itself is a trust anchor, so a self-signed or a CA-issued one verifies alike."""
    ctx = ssl.create_default_context(cafile=str(cert))
    ctx.verify_flags |= ssl.VERIFY_X509_PARTIAL_CHAIN
    return ctx


def self_signed_dir(state_dir: Path) -> Path:
    return state_dir / "tls"


def configured(server: ServerConfig, state_dir: Path) -> tuple[Path, Path, bool]:
    """(certificate, key, self-signed?) as the config says, made or not yet."""
    if server.certificate:
        return Path(server.certificate).expanduser(), Path(server.private_key).expanduser(), False
    d = self_signed_dir(state_dir)
    return d / CERT_FILE, d / KEY_FILE, True


def ensure_self_signed(directory: Path, name: str, addresses: list[str]) -> tuple[Path, Path]:
    """``directory``'s certificate and key, made first if absent: (certificate, key)."""
    cert, key = directory / CERT_FILE, directory / KEY_FILE
    if cert.exists() and key.exists():
        return cert, key
    directory.parent.mkdir(parents=True, exist_ok=True)
    tmp = directory.parent / f".tls-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(mode=0o700)
    try:
        _openssl(tmp / CERT_FILE, tmp / KEY_FILE, name, addresses)
        try:
            tmp.rename(directory)
        except OSError:
            if not (cert.exists() and key.exists()):  # not another worker's: a real failure
                raise
    except OSError as exc:
        raise CertificateError(
            f"cannot write the self-signed certificate in {directory}: {exc}"
        ) from None
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return cert, key


def _openssl(cert: Path, key: Path, name: str, addresses: list[str]) -> None:
    # RFC 9462 §4.2: a client verifying a designated resolver wants the address it used in the
    # certificate, so every specific listen address goes into subjectAltName with the name.
    alt = [f"DNS:{name}"] + [
        f"IP:{a}" for a in addresses if not ipaddress.ip_address(a).is_unspecified
    ]
    argv = [
        "openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
        "-nodes", "-days", _DAYS, "-subj", f"/CN={name}", "-addext",
        f"subjectAltName={','.join(alt)}", "-keyout", str(key), "-out", str(cert),
    ]  # fmt: skip
    try:
        subprocess.run(argv, check=True, capture_output=True, timeout=_OPENSSL_TIMEOUT)  # noqa: S603 -- fixed argv, our own values
    except FileNotFoundError:
        raise CertificateError(
            "openssl is not installed: install it (apt-get install openssl), or set "
            "server.certificate and server.private_key"
        ) from None
    except (subprocess.CalledProcessError, subprocess.TimeoutExpired) as exc:
        err = getattr(exc, "stderr", b"") or b""
        raise CertificateError(
            f"openssl could not make a certificate: {err.decode(errors='replace')[:200]}"
        ) from None
    key.chmod(0o600)


def server_context(cert: Path, key: Path) -> ssl.SSLContext:
    """A server context for DoT and DoH: TLS 1.2 or later (RFC 8310 §9, RFC 8484 §5.2)."""
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    try:
        ctx.load_cert_chain(cert, key)
    except (OSError, ssl.SSLError) as exc:
        raise CertificateError(
            f"cannot use certificate {cert} with key {key}: {exc} "
            "(check server.certificate and server.private_key: PEM files, readable)"
        ) from None
    return ctx


def fingerprint(cert: Path) -> str:
    """The SHA-256 fingerprint of the first certificate in a PEM file, as AB:CD:..."""
    try:
        pem = cert.read_text(encoding="ascii", errors="replace")
    except OSError as exc:
        raise CertificateError(f"cannot read {cert}: {exc.strerror}") from None
    start, end = pem.find(ssl.PEM_HEADER), pem.find(ssl.PEM_FOOTER)
    if start < 0 or end < start:
        raise CertificateError(f"{cert} holds no PEM certificate")
    with contextlib.suppress(ValueError):
        der = ssl.PEM_cert_to_DER_cert(pem[start : end + len(ssl.PEM_FOOTER)] + "\n")
        digest = hashlib.sha256(der).hexdigest().upper()
        return ":".join(digest[i : i + 2] for i in range(0, len(digest), 2))
    raise CertificateError(f"{cert} holds no readable PEM certificate")
