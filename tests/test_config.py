from __future__ import annotations

import pickle
from pathlib import Path

import pytest

from pipelines.config import ConfigError, load_settings
from pipelines.credentials import Credentials, Secret


def test_secret_never_prints_itself() -> None:
    secret = Secret("s3cr3t-value")
    assert "s3cr3t" not in repr(secret)
    assert "s3cr3t" not in str(secret)
    assert "s3cr3t" not in f"{secret} {secret!r}"
    assert secret.reveal() == "s3cr3t-value"
    with pytest.raises(TypeError):
        pickle.dumps(secret)


def test_credentials_repr_hides_both_halves() -> None:
    creds = Credentials.from_strings("my-key-123", "my-secret-456")
    text = repr(creds)
    assert "my-key-123" not in text and "my-secret-456" not in text
    assert len(creds.key_id) == 8 and creds.key_id not in ("my-key-1",)


def test_defaults_without_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    settings = load_settings(environ={})
    assert settings.data_dir == (tmp_path / "data").resolve()
    assert settings.exchange("bitstamp").base_url == "https://www.bitstamp.net"
    assert settings.exchange("bitvavo").credentials is None


def test_file_and_environment(tmp_path: Path) -> None:
    config = tmp_path / "tally.toml"
    config.write_text(
        'data_dir = "lakehouse"\n'
        "[bitvavo]\n"
        'base_url = "http://127.0.0.1:9/v2/"\n'
        'markets = ["btc-eur"]\n'
        'api_key = "file-key"\n'
        'api_secret = "file-secret"\n'
    )
    settings = load_settings(config, environ={"BITVAVO_API_KEY": "env-key"})
    bitvavo = settings.exchange("bitvavo")
    assert settings.data_dir == tmp_path / "lakehouse"
    assert bitvavo.base_url == "http://127.0.0.1:9/v2"
    assert bitvavo.markets == ("BTC-EUR",)
    credentials = bitvavo.load_credentials()
    assert credentials is not None
    assert credentials.key.reveal() == "env-key"
    assert credentials.secret.reveal() == "file-secret"


def test_unknown_setting_is_an_error(tmp_path: Path) -> None:
    config = tmp_path / "tally.toml"
    config.write_text('[bitstamp]\nbase_ur = "typo"\n')
    with pytest.raises(ConfigError, match="base_ur"):
        load_settings(config, environ={})
