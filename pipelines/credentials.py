"""API credentials that cannot leak.

`Secret` wraps a string so that `repr`, `str`, f-strings, logging, pickling and Prefect parameter
serialisation all show a mask instead of the value; only `reveal()` returns it, and only signing
code calls that.
"""

from __future__ import annotations

from dataclasses import dataclass

MASK = "**********"


def env_name(exchange: str, half: str) -> str:
    """The environment variable of `exchange`'s `half` ("api_key", "api_secret"):
    `BITVAVO_API_KEY`."""
    return f"{exchange}_{half}".upper()


def env_names(exchange: str) -> tuple[str, str]:
    """The environment variables of `exchange`'s key and secret."""
    return env_name(exchange, "api_key"), env_name(exchange, "api_secret")


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


@dataclass(frozen=True, slots=True)
class Credentials:
    """A read-only API key pair. Both halves are secret: the key identifies the account."""

    key: Secret
    secret: Secret

    @classmethod
    def from_strings(cls, key: str, secret: str) -> Credentials:
        return cls(Secret(key), Secret(secret))

    @property
    def key_id(self) -> str:
        """A short, non-secret label for the key (for limiter sharing and log lines)."""
        import hashlib

        return hashlib.sha256(self.key.reveal().encode()).hexdigest()[:8]

    @property
    def fingerprint(self) -> str:
        """16 hex digits of the key's SHA-256: names per-key files (the shared rate budget)."""
        import hashlib

        return hashlib.sha256(self.key.reveal().encode()).hexdigest()[:16]
