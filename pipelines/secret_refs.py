"""Secrets kept elsewhere: named in `tally.toml`, read only when they are needed.

A `SecretRef` says where one secret is kept and holds no value until `resolve()` reads it, once
per object (later calls give what was read; a failed read is tried again by the next call, and
concurrent first calls read once). Its `repr` and `where` show the name only; the value is a
`pipelines.credentials.Secret`; a read that fails is one `SecretUnavailable` line per secret
naming where it is kept and why, never a value nor the text of an error that might hold one.

Today's one kind is `PrefectSecretBlock`: a Prefect `Secret` block, loaded from the Prefect API
that this process's Prefect settings name (`PREFECT_API_URL`, or the active profile's): where a
flow run executes, its worker's API. Without an API configured it fails at once rather than let
Prefect start a temporary server of its own, which could not hold the block. Prefect is imported
only by `resolve()`, so that loading settings never imports it.

The exchanges' key pairs use it (`[bitvavo] api_key_block`, `pipelines.config`); another
secret (an S3 secret key, a database password) would name its block the same way, make a
`PrefectSecretBlock` of it, and call `resolve()` where it connects.
"""

from __future__ import annotations

import threading
from abc import ABC, abstractmethod
from urllib.parse import urlsplit

from pipelines.credentials import Secret
from pipelines.exit_codes import ExitCode, OperatorError

BLOCK_NAME = r"[a-z0-9]+(?:-[a-z0-9]+)*"  # what Prefect takes as a block's name (and no dashes
# at either end: `prefect block create` refuses those too)


class SecretUnavailable(OperatorError):
    """A secret kept elsewhere could not be read: one line per secret, naming where it is kept
    (never its value). Exit 3, as a refused key (credentials)."""

    exit_code = ExitCode.EXCHANGE


class SecretRef(ABC):
    """Where one secret is kept; `resolve()` reads it (see the module docstring)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._value: Secret | None = None

    @property
    @abstractmethod
    def where(self) -> str:
        """Where the secret is kept, for a person: `Prefect Secret block 'bitvavo-api-key'`."""

    @abstractmethod
    def _read(self) -> str:
        """The secret's value, read now; `SecretUnavailable` when it cannot be."""

    def resolve(self) -> Secret:
        with self._lock:
            if self._value is None:
                self._value = Secret(self._read())
            return self._value

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.where!r})"


class PrefectSecretBlock(SecretRef):
    """A Prefect `Secret` block, by name. Its value must be text: `Secret.get()` would turn text
    that reads as JSON (a key of digits only, `true`) into a number or a flag, so the stored
    text is taken as it is, and a block holding a JSON object is refused."""

    def __init__(self, name: str) -> None:
        super().__init__()
        self.name = name

    @property
    def where(self) -> str:
        return f"Prefect Secret block {self.name!r}"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, PrefectSecretBlock) and other.name == self.name

    def __hash__(self) -> int:
        return hash(("PrefectSecretBlock", self.name))

    def __reduce__(self) -> tuple[object, ...]:
        return (PrefectSecretBlock, (self.name,))  # the name only: what was read stays here

    def _read(self) -> str:
        from prefect.settings import get_current_settings

        url = get_current_settings().api.url
        if not url:
            raise SecretUnavailable(
                f"{self.where} cannot be loaded: no Prefect API is configured (set "
                "PREFECT_API_URL to the server that holds it)"
            )
        import httpx
        from prefect.blocks.system import Secret as SecretBlock

        api = _shown_url(str(url))
        try:
            block = SecretBlock.load(self.name)  # (tally's callers are synchronous)
        except ValueError as error:
            if "Unable to find block document" not in str(error):
                raise self._failed(
                    f"its document cannot be read at {api} ({_kind(error)})"
                ) from None
            raise self._failed(f"not found at {api}") from None
        except httpx.HTTPStatusError as error:
            raise self._failed(f"{api} answered {error.response.status_code}") from None
        except (httpx.TransportError, OSError) as error:
            raise self._failed(
                f"the Prefect API at {api} does not answer ({_kind(error)})"
            ) from None
        except Exception as error:  # whatever it says might hold the value: its kind only
            raise self._failed(f"{_kind(error)} from the Prefect API at {api}") from None
        if not isinstance(block, SecretBlock):  # (`load`'s type also allows its coroutine)
            raise self._failed(f"{type(block).__name__} from the Prefect API at {api}")
        value = block.value.get_secret_value()
        if not isinstance(value, str):
            raise self._failed(f"it holds {_json_kind(value)}, not text")
        return value

    def _failed(self, why: str) -> SecretUnavailable:
        return SecretUnavailable(f"{self.where} cannot be loaded: {why}")


def _kind(error: BaseException) -> str:
    """An error's kind, and its text only where that is the operating system's or httpx's own
    words about a connection (never a value)."""
    import httpx

    name = type(error).__name__
    if isinstance(error, OSError) and error.strerror:
        return f"{name}: {error.strerror}"
    if isinstance(error, httpx.TransportError) and str(error):
        return f"{name}: {error}"
    return name


def _json_kind(value: object) -> str:
    if isinstance(value, dict):
        return "a JSON object"
    if isinstance(value, list):
        return "a JSON list"
    if isinstance(value, bool):
        return "true or false"
    if isinstance(value, int | float):
        return "a number"
    return "a value"


def _shown_url(url: str) -> str:
    """The API's URL without any user name or password in it."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    port = f":{parts.port}" if parts.port else ""
    return f"{parts.scheme}://{host}{port}{parts.path}"
