"""API credentials that cannot leak.

`Secret` wraps a string so that `repr`, `str`, f-strings, logging, pickling and Prefect parameter
serialisation all show a mask instead of the value; only `reveal()` returns it, and only signing
code calls that.

An exchange's key pair is either at hand (`Credentials`: from the environment or the file) or
kept elsewhere and read when a client first needs it (`CredentialsRef`: two Prefect Secret blocks,
`pipelines.secret_refs`); both have `resolve()`, which gives the `Credentials`.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pipelines.secret_refs import SecretRef

MASK = "**********"


def env_name(exchange: str, half: str) -> str:
    """The environment variable of `exchange`'s `half` ("api_key", "api_secret"):
    `BITVAVO_API_KEY`."""
    return f"{exchange}_{half}".upper()


def env_names(exchange: str) -> tuple[str, str]:
    """The environment variables of `exchange`'s key and secret."""
    return env_name(exchange, "api_key"), env_name(exchange, "api_secret")


def api_text(value: object) -> bool:
    """Whether `value` can be an API key or secret: text without spaces or line breaks."""
    return isinstance(value, str) and all(c.isprintable() and not c.isspace() for c in value)


class Secret:
    """A string that never prints itself."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        if not isinstance(value, str):
            raise TypeError("Secret wraps a str")
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return f"Secret({MASK!r})"

    def __str__(self) -> str:
        return MASK

    def __format__(self, spec: str) -> str:
        return MASK

    def __bool__(self) -> bool:
        return bool(self._value)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(("Secret", self._value))

    def __reduce__(self) -> tuple[object, ...]:
        raise TypeError("a Secret cannot be pickled or serialised")

    # immutable: a copy is the same Secret (`dataclasses.asdict` deep-copies what it holds)
    def __copy__(self) -> Secret:
        return self

    def __deepcopy__(self, memo: object) -> Secret:
        return self


@dataclass(frozen=True, slots=True)
class Credentials:
    """A read-only API key pair. Both halves are secret: the key identifies the account."""

    key: Secret
    secret: Secret

    @classmethod
    def from_strings(cls, key: str, secret: str) -> Credentials:
        return cls(Secret(key), Secret(secret))

    def resolve(self) -> Credentials:
        """Itself: a pair at hand (as `CredentialsRef.resolve` gives one kept elsewhere)."""
        return self

    @property
    def key_id(self) -> str:
        """A short, non-secret label for the key (for limiter sharing and log lines)."""
        return hashlib.sha256(self.key.reveal().encode()).hexdigest()[:8]

    @property
    def fingerprint(self) -> str:
        """16 hex digits of the key's SHA-256: names per-key files (the shared rate budget); the
        same wherever the key came from."""
        return hashlib.sha256(self.key.reveal().encode()).hexdigest()[:16]


@dataclass(frozen=True, slots=True)
class CredentialsRef:
    """A key pair kept elsewhere (today: two Prefect Secret blocks), read by `resolve()` when a
    client first needs it, never when the settings are loaded. Shows only where it is kept."""

    key: SecretRef
    secret: SecretRef

    @property
    def where(self) -> str:
        """`Prefect Secret block 'bitvavo-api-key' and Prefect Secret block 'bitvavo-api-secret'`:
        names, no value."""
        return f"{self.key.where} and {self.secret.where}"

    def resolve(self) -> Credentials:
        """Read both halves (each once per process); `SecretUnavailable` names every half that
        cannot be read, or that is not one word of text, and never shows a value."""
        from pipelines.secret_refs import SecretUnavailable

        values: list[Secret] = []
        problems: list[str] = []
        for ref in (self.key, self.secret):
            try:
                value = ref.resolve()
            except SecretUnavailable as error:
                problems.extend(error.lines)
                continue
            if not value:
                problems.append(f"{ref.where} is empty")
            elif not api_text(value.reveal()):
                problems.append(
                    f"{ref.where} holds text with spaces or line breaks: expected the key or "
                    "secret as the exchange shows it"
                )
            values.append(value)
        if problems:
            raise SecretUnavailable(*problems)
        return Credentials(*values)
