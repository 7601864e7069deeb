"""The `duckdb` shell's init file (`shell_init`) builds from the `AWS_*` variables the same S3
secret as Python's `open_object_store` builds from `S3Settings.from_environment`: endpoint,
region, URL style and TLS, whichever variables are set."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import duckdb
import pytest

from pipelines.lake_duckdb import open_object_store, shell_init
from pipelines.s3_settings import S3Settings

DUCKDB_SHELL = Path(sys.executable).parent / "duckdb"
LAKE = "s3://bucket/lake"
KEYS = {"AWS_ACCESS_KEY_ID": "key-id-x", "AWS_SECRET_ACCESS_KEY": "secret-x"}
ENVIRONMENTS = {
    "nothing": {},
    "region": {"AWS_REGION": "eu-west-3"},
    "default region": {"AWS_DEFAULT_REGION": "ap-southeast-2"},
    "both regions": {"AWS_REGION": "eu-central-1", "AWS_DEFAULT_REGION": "us-west-2"},
    "endpoint": {"AWS_ENDPOINT_URL": "http://127.0.0.1:9000/", "AWS_REGION": "eu-west-3"},
    "s3 endpoint": {
        "AWS_ENDPOINT_URL": "http://elsewhere:1",
        "AWS_ENDPOINT_URL_S3": "https://minio.example:9000",
    },
}
COMPARED = ("endpoint", "region", "url_style", "use_ssl", "scope", "key_id")


def fields(secret_string: str) -> dict[str, str]:
    pairs = dict(part.partition("=")[::2] for part in secret_string.split(";"))
    return {name: pairs[name] for name in COMPARED}


def python_secret(environ: dict[str, str]) -> dict[str, str]:
    with duckdb.connect() as connection:
        open_object_store(connection, LAKE, S3Settings.from_environment(environ))
        row = connection.execute("select secret_string from duckdb_secrets()").fetchone()
    assert row is not None
    return fields(row[0])


def shell_secret(environ: dict[str, str], tmp_path: Path) -> dict[str, str]:
    init = tmp_path / "init.sql"
    init.write_text(shell_init(LAKE))
    outside = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    done = subprocess.run(
        [
            str(DUCKDB_SHELL),
            "-init",
            str(init),
            "-list",
            "-noheader",
            "-c",
            "select secret_string from duckdb_secrets() where name = 'lake'",
        ],
        env={**outside, **environ},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return fields(done.stdout.strip())


@pytest.mark.parametrize("environ", ENVIRONMENTS.values(), ids=ENVIRONMENTS.keys())
def test_the_shell_secret_equals_pythons(environ: dict[str, str], tmp_path: Path) -> None:
    environ = {**KEYS, **environ}
    shell = shell_secret(environ, tmp_path)
    assert shell == python_secret(environ)
    assert shell["key_id"] == "key-id-x"


def test_without_an_endpoint_both_use_the_regions_aws_endpoint(tmp_path: Path) -> None:
    environ = {**KEYS, "AWS_REGION": "eu-west-3"}
    assert shell_secret(environ, tmp_path)["endpoint"] == "s3.eu-west-3.amazonaws.com"
