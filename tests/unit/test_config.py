"""Settings precedence: flags > CDL_* env > config file > CONDUCTOR_* env > defaults."""

from pathlib import Path

import pytest

from cdl_tui.core.config import describe_settings, resolve_settings
from cdl_tui.core.connect import api_url_from, credentials_from
from cdl_tui.core.farm.credentials import BearerToken, VendorKey
from cdl_tui.core.model.errors import ConfigError

TOKEN = "tok-from-somewhere-123"


@pytest.fixture
def home(tmp_path):
    """An environment whose XDG config dir is empty and private to the test."""
    return {"XDG_CONFIG_HOME": str(tmp_path / "xdg"), "HOME": str(tmp_path)}


def write_config(env, text):
    path = Path(env["XDG_CONFIG_HOME"]) / "cdl" / "config.toml"
    path.parent.mkdir(parents=True)
    path.write_text(text)
    return path


def test_defaults_apply_when_nothing_is_set(home):
    settings = resolve_settings({}, home)
    assert settings.threads == 8
    assert settings.api_url is None
    assert settings.source_of("threads") == "default"


def test_each_layer_overrides_the_one_below(home):
    path = write_config(home, 'api_url = "https://file.example"\nthreads = 3\nlocation = "a"\n')
    env = {
        **home,
        "CONDUCTOR_URL": "https://vendor.example",
        "CDL_THREADS": "5",
        "CONDUCTOR_LOG_LEVEL": "DEBUG",
    }
    settings = resolve_settings({"location": "b"}, env)
    assert settings.api_url == "https://file.example"  # config file beats CONDUCTOR_URL
    assert settings.source_of("api_url") == f"config {path}"
    assert settings.threads == 5  # CDL env beats the config file
    assert settings.source_of("threads") == "env CDL_THREADS"
    assert settings.location == "b"  # the flag beats everything
    assert settings.source_of("location") == "flag --location"
    assert settings.log_level == "DEBUG"  # the vendor's variable beats the default
    assert settings.source_of("log_level") == "env CONDUCTOR_LOG_LEVEL"


def test_conductor_url_is_the_last_resort(home):
    settings = resolve_settings({}, {**home, "CONDUCTOR_URL": "https://vendor.example/"})
    assert api_url_from(settings) == "https://vendor.example"


def test_no_url_says_how_to_set_one_or_try_the_demo(home):
    with pytest.raises(ConfigError) as info:
        api_url_from(resolve_settings({}, home))
    assert "--api-url" in str(info.value)
    assert "CDL_API_URL" in str(info.value)
    assert "--demo" in str(info.value)


def test_unknown_config_keys_are_an_error_naming_the_key(home):
    write_config(home, 'api_url = "https://x.example"\nthraeds = 4\n')
    with pytest.raises(ConfigError, match="unknown setting 'thraeds'"):
        resolve_settings({}, home)


def test_bad_values_name_the_setting_and_source(home):
    with pytest.raises(ConfigError, match="threads from env CDL_THREADS"):
        resolve_settings({}, {**home, "CDL_THREADS": "many"})
    with pytest.raises(ConfigError, match="threads from flag --threads"):
        resolve_settings({"threads": "0"}, home)


def test_broken_toml_is_a_clear_error(home):
    write_config(home, "api_url = \n")
    with pytest.raises(ConfigError, match="is not valid TOML"):
        resolve_settings({}, home)


def test_an_explicit_config_path_must_exist(home, tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        resolve_settings({}, home, tmp_path / "missing.toml")
    # ...while a missing default file is fine
    resolve_settings({}, home)


def test_cdl_config_env_names_the_file(home, tmp_path):
    path = tmp_path / "other.toml"
    path.write_text("threads = 2\n")
    assert resolve_settings({}, {**home, "CDL_CONFIG": str(path)}).threads == 2


def test_credentials_follow_the_same_precedence(home, tmp_path):
    key_file = tmp_path / "key"
    key_file.write_text("token-in-a-file-xyz")
    vendor = '{"client_id": "c", "private_key": "pk-1234567"}'
    env = {**home, "CONDUCTOR_API_KEY": vendor}
    assert isinstance(credentials_from(resolve_settings({}, env)), VendorKey)
    env["CDL_API_KEY"] = TOKEN
    creds = credentials_from(resolve_settings({}, env))
    assert isinstance(creds, BearerToken)
    assert creds.token.reveal() == TOKEN
    creds = credentials_from(resolve_settings({"api_key_file": str(key_file)}, env))
    assert creds.token.reveal() == "token-in-a-file-xyz"
    assert "flag --api-key-file" in creds.source


def test_print_config_redacts_the_key(home):
    settings = resolve_settings({}, {**home, "CDL_API_KEY": TOKEN})
    rows = describe_settings(settings)
    text = repr(rows) + repr(settings)
    assert TOKEN not in text
    assert ("api_key", "*** (set)", "env CDL_API_KEY") in rows


def test_no_credentials_is_a_clear_error(home):
    with pytest.raises(ConfigError, match="no API key"):
        credentials_from(resolve_settings({}, home))
