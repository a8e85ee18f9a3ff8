"""Signed, expiring file URLs (like a storage bucket's signed URLs) and JWT access tokens.

Both use HMAC-SHA256 with the farm's secret. The JWT is only as much of RFC 7519 as the
vendor's client needs: HS256, with `aud` naming the API host, `exp`, `iat`, `sub`.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from typing import Any


def sign_file(secret: bytes, file_id: int, expires: int) -> str:
    mac = hmac.new(secret, f"file:{file_id}:{expires}".encode(), hashlib.sha256)
    return mac.hexdigest()[:32]


def check_file_signature(secret: bytes, file_id: int, expires: str, signature: str) -> str | None:
    """None if the signature is valid and unexpired; else the reason it is refused."""
    if not expires.isdigit():
        return "malformed signature"
    expected = sign_file(secret, file_id, int(expires))
    if not hmac.compare_digest(expected, signature):
        return "bad signature"
    if int(expires) < time.time():
        return "signature expired"
    return None


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64url(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def encode_jwt(claims: dict[str, Any], secret: bytes) -> str:
    header = _b64url(json.dumps({"alg": "HS256", "typ": "JWT"}, separators=(",", ":")).encode())
    payload = _b64url(json.dumps(claims, separators=(",", ":")).encode())
    signing_input = f"{header}.{payload}".encode("ascii")
    signature = _b64url(hmac.new(secret, signing_input, hashlib.sha256).digest())
    return f"{header}.{payload}.{signature}"


def decode_jwt(token: str, secret: bytes) -> dict[str, Any] | None:
    """The claims of a token we issued that is still valid, else None."""
    parts = token.split(".")
    if len(parts) != 3:
        return None
    signing_input = f"{parts[0]}.{parts[1]}".encode("ascii", "replace")
    expected = _b64url(hmac.new(secret, signing_input, hashlib.sha256).digest())
    if not hmac.compare_digest(expected, parts[2]):
        return None
    try:
        claims = json.loads(_unb64url(parts[1]))
    except ValueError:
        return None
    if not isinstance(claims, dict) or not isinstance(claims.get("exp"), int | float):
        return None
    if claims["exp"] < time.time():
        return None
    return claims
