"""Service-account key files for tests: real RSA keys for made-up accounts.

A key file from the Cloud console is JSON holding the account's email, a
private key in PEM and the token endpoint. These are made the same way, with
a fresh 2048-bit key, so the Google libraries accept them; nothing is ever
sent to Google with them.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

__all__ = ["EMAIL", "write_key"]

EMAIL = "robot@test-project.iam.gserviceaccount.com"


def write_key(path: Path, email: str = EMAIL, **fields: Any) -> dict[str, Any]:
    """Write a service-account key file at ``path``; return what it holds."""
    private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = private.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()
    info: dict[str, Any] = {
        "type": "service_account",
        "project_id": email.split("@")[1].split(".")[0],
        "private_key_id": "0123456789abcdef",
        "private_key": pem,
        "client_email": email,
        "client_id": "1234567890",
        "token_uri": "https://oauth2.googleapis.com/token",
        **fields,
    }
    path.write_text(json.dumps(info), encoding="utf-8")
    return info
