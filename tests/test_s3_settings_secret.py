"""The S3 secret key and session token never show: not in `repr` (of the settings, the store,
an object's path, the settings of tally), not in `dataclasses.asdict`, not in a pickle."""

from __future__ import annotations

import copy
import dataclasses
import pickle
from pathlib import Path

import pytest

from pipelines.config import Settings
from pipelines.credentials import Secret
from pipelines.lake_store import ObjectPath, S3Store
from pipelines.s3_settings import S3Settings

SECRET = "wJalrXUtnFEMI-K7MDENG-bPxRfiCY"
TOKEN = "FwoGZXIvYXdzEJr-session-token"
ENVIRONMENT = {
    "AWS_ENDPOINT_URL": "http://127.0.0.1:9000",
    "AWS_ACCESS_KEY_ID": "AKIDEXAMPLE",
    "AWS_SECRET_ACCESS_KEY": SECRET,
    "AWS_SESSION_TOKEN": TOKEN,
}


def assert_hidden(text: str | bytes) -> None:
    for secret in (SECRET, TOKEN):
        if isinstance(text, bytes):
            assert secret.encode() not in text
        else:
            assert secret not in text


def test_the_secret_and_token_are_secrets_revealed_only_on_demand() -> None:
    settings = S3Settings.from_environment(ENVIRONMENT)
    assert isinstance(settings.secret, Secret) and isinstance(settings.session_token, Secret)
    assert settings.secret.reveal() == SECRET and settings.session_token.reveal() == TOKEN


def test_repr_and_asdict_show_no_secret(tmp_path: Path) -> None:
    settings = S3Settings.from_environment(ENVIRONMENT)
    store = S3Store(settings)
    path = ObjectPath("bucket", "lake/x.parquet", store)
    tally = Settings(data_dir=tmp_path, lake_url="s3://bucket/lake", s3=settings)
    for shown in (settings, store, path, tally, dataclasses.asdict(settings)):
        assert_hidden(repr(shown))
        assert_hidden(str(shown))
    assert copy.deepcopy(settings) == settings


def test_a_pickled_store_holds_no_secret() -> None:
    settings = S3Settings.from_environment(ENVIRONMENT)
    path = ObjectPath("bucket", "lake/x.parquet", S3Store(settings))
    for value in (S3Store(settings), path):
        pickled = pickle.dumps(value)
        assert_hidden(pickled)
    back = pickle.loads(pickle.dumps(path)).store.settings
    assert back.endpoint_url == settings.endpoint_url and back.region == settings.region
    assert back.secret is None and back.session_token is None and back.key_id is None
    with pytest.raises(TypeError):
        pickle.dumps(settings)
