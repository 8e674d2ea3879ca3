"""TLS for ``https://`` backend URLs: one client context per set of options, made once."""

from __future__ import annotations

import functools
import ssl
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class TlsOptions:
    ca_file: str | None = None
    """PEM bundle to trust instead of the system's CAs (a private CA, a self-signed cert)."""
    verify: bool = True
    """Check the certificate chain and that it names the URL's host; off only for testing."""


@functools.cache
def client_context(options: TlsOptions) -> ssl.SSLContext:
    """A context with the defaults of :func:`ssl.create_default_context` (TLS 1.2+)."""
    context = ssl.create_default_context(cafile=options.ca_file)
    if not options.verify:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    return context
