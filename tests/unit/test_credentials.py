"""Credential loading: classification, errors, and the key never shown."""

import base64
import json
import logging

import pytest

from cdl_tui.core.farm.credentials import (
    BearerToken,
    VendorKey,
    VendorTokenExchange,
    credentials_from_file,
    credentials_from_text,
)
from cdl_tui.core.model.errors import AuthError, ConfigError
from cdl_tui.core.model.secrets import Secret, SecretScrubber, scrub

PRIVATE = "pk-SUPER-SECRET-4711"
VENDOR_JSON = json.dumps({"client_id": "studio-a", "private_key": PRIVATE})


def test_plain_text_is_a_bearer_token():
    creds = credentials_from_text("  tok-abcdef123\n", "CDL_API_KEY")
    assert isinstance(creds, BearerToken)
    assert creds.token.reveal() == "tok-abcdef123"


@pytest.mark.parametrize("text", [VENDOR_JSON, base64.b64encode(VENDOR_JSON.encode()).decode()])
def test_json_or_base64_json_with_client_id_is_a_vendor_key(text):
    creds = credentials_from_text(text, "CONDUCTOR_API_KEY")
    assert isinstance(creds, VendorKey)
    assert creds.client_id == "studio-a"
    assert creds.private_key.reveal() == PRIVATE


def test_a_key_file_is_classified_the_same_way(tmp_path):
    path = tmp_path / "key.json"
    path.write_text(VENDOR_JSON)
    assert isinstance(credentials_from_file(path, "--api-key-file"), VendorKey)
    path.write_text("just-a-token-value")
    assert isinstance(credentials_from_file(path, "--api-key-file"), BearerToken)


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("", "is empty"),
        (json.dumps({"client_id": "x"}), "has no 'private_key'"),
        (json.dumps({"client_id": 3, "private_key": PRIVATE}), "no usable 'client_id'"),
        (f"two words {PRIVATE}", "neither a token"),
    ],
)
def test_bad_key_material_is_a_one_line_config_error_without_the_key(text, fragment):
    with pytest.raises(ConfigError) as info:
        credentials_from_text(text, "CDL_API_KEY")
    message = str(info.value)
    assert fragment in message
    assert PRIVATE not in message
    assert "\n" not in message


def test_a_missing_key_file_names_the_path(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        credentials_from_file(tmp_path / "nope", "--api-key-file")


def test_secrets_never_show_in_str_repr_or_format():
    secret = Secret(PRIVATE)
    for text in (str(secret), repr(secret), f"{secret}", f"{[secret]}"):
        assert PRIVATE not in text
    assert secret.reveal() == PRIVATE


def test_the_scrubber_removes_registered_secrets_from_log_records(caplog):
    Secret(PRIVATE)
    logger = logging.getLogger("test.scrub")
    logger.addFilter(SecretScrubber())
    with caplog.at_level(logging.DEBUG):
        logger.warning("GET /api/oauth_jwt?client_secret=%s&x=1", PRIVATE)
        try:
            raise RuntimeError(f"boom {PRIVATE}")
        except RuntimeError:
            logger.exception("failed")
    text = caplog.text + "".join(r.getMessage() + (r.exc_text or "") for r in caplog.records)
    assert PRIVATE not in text
    assert caplog.records[0].getMessage() == "GET /api/oauth_jwt?…"  # the whole query goes
    assert scrub(f"a {PRIVATE} b") == "a *** b"


class FakeClock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self):
        return self.now


def test_vendor_tokens_are_cached_and_refreshed_shortly_before_expiry():
    clock = FakeClock()
    issued = []

    def exchange(client_id, private_key):
        assert (client_id, private_key) == ("studio-a", PRIVATE)
        issued.append(f"access-{len(issued)}")
        return {"access_token": issued[-1], "expires_in": 3600}

    source = VendorTokenExchange(credentials_from_text(VENDOR_JSON, "env"), exchange, clock)
    assert source.bearer() == "access-0"
    clock.now += 3000  # 10 minutes left: still cached
    assert source.bearer() == "access-0"
    clock.now += 560  # 40 s left, inside the refresh margin
    assert source.bearer() == "access-1"
    assert source.renew_after_401() is True
    assert source.bearer() == "access-2"
    assert source.exchanges == 3


def test_an_exchange_answer_without_a_token_is_an_auth_error():
    source = VendorTokenExchange(
        credentials_from_text(VENDOR_JSON, "env"), lambda *_: {"expires_in": 10}
    )
    with pytest.raises(AuthError) as info:
        source.bearer()
    assert PRIVATE not in str(info.value)
