"""DuckDB over a lake on object storage: `httpfs` loaded by path, and the lake's S3 secret.

The `duckdb-extension-httpfs` package ships the extension file and no Python API; DuckDB does not
take the endpoint from the environment, so the secret always names it. `shell_init` is the same
for the `duckdb` shell, as a file that holds no key (`getenv` reads the `AWS_*` variables, a
function the shell has and Python's DuckDB has not).
"""

from __future__ import annotations

import re
from importlib import resources
from pathlib import Path

import duckdb

from pipelines.s3_settings import DEFAULT_REGION, S3Settings


def httpfs_extension() -> Path:
    """The `httpfs` extension the `duckdb-extension-httpfs` package ships for this DuckDB. Its
    layout has no platform directory, so `load httpfs` and `extension_directory` do not find it:
    it is loaded by path, nothing installed or downloaded."""
    package = Path(str(resources.files("duckdb_extension_httpfs")))
    return package / "extensions" / f"v{duckdb.__version__}" / "httpfs.duckdb_extension"


def open_object_store(
    connection: duckdb.DuckDBPyConnection, lake: str, settings: S3Settings
) -> None:
    """Let `connection` read the lake at `lake` (`s3://bucket/prefix`): `httpfs` loaded by path
    and a temporary S3 secret scoped to the lake, its values bound (no key in any SQL text).
    DuckDB does not read the endpoint from the environment: it is always named."""
    connection.execute(f"load {quote_literal(str(httpfs_extension()))}")
    options = ["type s3", "region ?", "endpoint ?", "url_style 'path'", "use_ssl ?", "scope ?"]
    values: list[object] = [settings.region, settings.endpoint, settings.use_ssl]
    values.append(lake if lake.endswith("/") else f"{lake}/")
    if settings.key_id is not None and settings.secret is not None:
        options += ["key_id ?", "secret ?"]
        values += [settings.key_id, settings.secret.reveal()]
        if settings.session_token is not None:
            options.append("session_token ?")
            values.append(settings.session_token.reveal())
    name = "lake_" + re.sub(r"[^a-z0-9]", "_", lake.lower())
    connection.execute(f"create or replace secret {name} ({', '.join(options)})", values)


def quote_literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


SHELL_INIT_FILE = "duckdb-s3.sql"


def shell_init(lake: str) -> str:
    """An init file for the `duckdb` shell that reads the lake at `lake` (`s3://bucket/prefix`):
    `httpfs` by path and a secret built from the `AWS_*` variables when the shell starts (no key
    in the file). Open the catalog with `duckdb -readonly -init data/duckdb-s3.sql
    data/warehouse.duckdb` with the variables set."""
    # as `S3Settings.from_environment` reads them: the endpoint's host:port (AWS's endpoint of
    # the region when none is set), the region with the same default
    given = (
        "coalesce(nullif(getenv('AWS_ENDPOINT_URL_S3'), ''),"
        " nullif(getenv('AWS_ENDPOINT_URL'), ''))"
    )
    region = (
        "coalesce(nullif(getenv('AWS_REGION'), ''), nullif(getenv('AWS_DEFAULT_REGION'), ''),"
        f" {quote_literal(DEFAULT_REGION)})"
    )
    endpoint = (
        f"coalesce(regexp_replace({given}, '^[a-zA-Z]+://([^/]*).*$', '\\1'),"
        f" 's3.' || {region} || '.amazonaws.com')"
    )
    scope = lake if lake.endswith("/") else f"{lake}/"
    return (
        "-- written by `tally warehouse`: the lake on object storage, keys from the environment\n"
        f"load {quote_literal(str(httpfs_extension()))};\n"
        ".output /dev/null\n"  # (the secret's "Success" row)
        "create or replace secret lake (type s3,\n"
        "    key_id getenv('AWS_ACCESS_KEY_ID'), secret getenv('AWS_SECRET_ACCESS_KEY'),\n"
        "    session_token getenv('AWS_SESSION_TOKEN'),\n"
        f"    region {region},\n"
        f"    endpoint {endpoint},\n"
        f"    url_style 'path', use_ssl not starts_with(coalesce({given}, ''), 'http://'),\n"
        f"    scope {quote_literal(scope)});\n"
        "set TimeZone = 'UTC';\n"
        ".output\n"
    )
