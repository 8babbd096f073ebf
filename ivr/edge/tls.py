"""The edge's TLS listener: certificate files and the tls module's lines."""

from __future__ import annotations

from pathlib import Path

from config.settings import Settings
from ivr.edge.cfgtext import EdgeConfigError, quote
from ivr.edge.paths import EdgePaths


def tls_files(settings: Settings, paths: EdgePaths) -> tuple[Path, Path]:
    """The TLS listener's certificate and private key (PEM): the configured files, else the
    self-signed pair generated under ``paths.tls_dir`` (``Edge.render`` makes it)."""
    sip = settings.sip
    if bool(sip.tls_certificate) != bool(sip.tls_private_key):
        raise EdgeConfigError("sip.tls_certificate and sip.tls_private_key go together")
    if sip.tls_certificate:
        return Path(sip.tls_certificate).resolve(), Path(sip.tls_private_key).resolve()
    if settings.environment == "production":
        raise EdgeConfigError(
            f"sip.tls_port: {sip.tls_port}: production needs sip.tls_certificate and "
            "sip.tls_private_key (a self-signed certificate is generated only for the demo)"
        )
    return paths.tls_dir / "edge.crt", paths.tls_dir / "edge.key"


def render_tls(settings: Settings, paths: EdgePaths, host: str) -> tuple[str, str]:
    """The TLS listener's core lines and the tls module's, or nothing when tls_port is 0."""
    sip = settings.sip
    if not sip.tls_port:
        return "", ""
    if sip.tls_port == sip.edge_port:
        raise EdgeConfigError(f"sip.tls_port: {sip.tls_port} is already the UDP/TCP port")
    certificate, key = tls_files(settings, paths)
    listen = f"enable_tls=yes\nlisten=tls:{host}:{sip.tls_port}\n"
    module = "\n".join(
        [
            "# Debian's kamailio-tls-modules: SIP over TLS for softphones (no client certs).",
            'loadmodule "tls.so"',
            f'modparam("tls", "certificate", {quote(str(certificate))})',
            f'modparam("tls", "private_key", {quote(str(key))})',
            'modparam("tls", "tls_method", "TLSv1.2+")',
            'modparam("tls", "verify_certificate", 0)',
            'modparam("tls", "require_certificate", 0)',
            "",
        ]
    )
    return listen, module
