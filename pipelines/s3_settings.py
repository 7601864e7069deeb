"""Where a lake on S3-compatible storage is and how to sign for it: `lake_url` plus the standard
`AWS_*` variables.

`lake_url = "s3://bucket/prefix"` in `tally.toml` puts the lake there; the endpoint and the
credentials come from the environment, as every S3 client reads them: `AWS_ENDPOINT_URL_S3` or
`AWS_ENDPOINT_URL` (unset: AWS itself), `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`,
`AWS_SESSION_TOKEN`, `AWS_REGION` or `AWS_DEFAULT_REGION`. One `S3Settings` feeds pyarrow
(`endpoint_override`: pyarrow ignores the endpoint variable) and DuckDB (a secret whose values
are bound parameters). The secret key and session token are `Secret`s: never in `repr`,
`asdict`, a pickle or a message; revealed only where pyarrow and DuckDB take them.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from pipelines.credentials import Secret

DEFAULT_REGION = "us-east-1"
ENDPOINT_VARIABLES = ("AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL")
REGION_VARIABLES = ("AWS_REGION", "AWS_DEFAULT_REGION")


class LakeUrlError(ValueError):
    """`lake_url` is not `s3://bucket[/prefix]`."""


@dataclass(frozen=True)
class S3Settings:
    """The endpoint, region and credentials of the object store (from the `AWS_*` variables)."""

    endpoint_url: str | None = None  # "http://127.0.0.1:9000"; None: AWS
    region: str = DEFAULT_REGION
    key_id: str | None = None
    secret: Secret | None = field(default=None, repr=False)
    session_token: Secret | None = field(default=None, repr=False)

    @classmethod
    def from_environment(cls, environ: Mapping[str, str]) -> S3Settings:
        endpoint = next((environ[v] for v in ENDPOINT_VARIABLES if environ.get(v)), None)
        region = next((environ[v] for v in REGION_VARIABLES if environ.get(v)), DEFAULT_REGION)
        return cls(
            endpoint_url=endpoint.rstrip("/") if endpoint else None,
            region=region,
            key_id=environ.get("AWS_ACCESS_KEY_ID") or None,
            secret=_secret(environ.get("AWS_SECRET_ACCESS_KEY")),
            session_token=_secret(environ.get("AWS_SESSION_TOKEN")),
        )

    def without_credentials(self) -> S3Settings:
        """These settings with no key: a client made from them uses the default chain (the
        `AWS_*` variables, `~/.aws`, an instance's role) of the process that makes it."""
        return S3Settings(self.endpoint_url, self.region)

    @property
    def use_ssl(self) -> bool:
        return self.endpoint_url is None or not self.endpoint_url.startswith("http://")

    @property
    def endpoint(self) -> str:
        """`host:port` as DuckDB's secret takes it (the scheme goes to `USE_SSL`)."""
        if self.endpoint_url is None:
            return f"s3.{self.region}.amazonaws.com"
        return urlsplit(self.endpoint_url).netloc

    def filesystem(self) -> object:
        """A `pyarrow.fs.S3FileSystem` on this store (paths are `bucket/key`)."""
        from pyarrow.fs import S3FileSystem

        options: dict[str, object] = {"region": self.region, "allow_delayed_open": True}
        if self.endpoint_url is not None:
            options["endpoint_override"] = self.endpoint_url
        if self.key_id is not None and self.secret is not None:
            options.update(access_key=self.key_id, secret_key=self.secret.reveal())
            if self.session_token is not None:
                options["session_token"] = self.session_token.reveal()
        return S3FileSystem(**options)


def _secret(value: str | None) -> Secret | None:
    return Secret(value) if value else None


def split_lake_url(url: str) -> tuple[str, str]:
    """`s3://bucket/some/prefix` → `("bucket", "some/prefix")` (prefix without slashes at its
    ends, may be empty)."""
    parts = urlsplit(url)
    if parts.scheme != "s3" or not parts.netloc or parts.query or parts.fragment:
        raise LakeUrlError("not s3://bucket/prefix")
    prefix = parts.path.strip("/")
    if any(segment in ("", ".", "..") for segment in prefix.split("/")) and prefix:
        raise LakeUrlError("the prefix has an empty, . or .. segment")
    return parts.netloc, prefix


def lake_url_text(url: str) -> str:
    """`url` normalised: `s3://bucket/prefix` without a trailing slash."""
    bucket, prefix = split_lake_url(url)
    return f"s3://{bucket}/{prefix}" if prefix else f"s3://{bucket}"
