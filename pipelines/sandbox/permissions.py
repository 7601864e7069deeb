"""API keys that lack a read permission: `start_sandbox(missing_permissions=...)`.

Bitstamp grants a key one permission per API call ("User transactions", "Account balance", …)
and refuses a call its key may not make with `API0003` "No permission found" (the documented
authentication failure). Bitvavo has three permissions per key (View, Trade, Withdraw); a key
without View is refused every account read with errorCode 311 "This key does not allow showing
account information." The sandbox serves no trading or withdrawal endpoint, so only the read
permissions can be taken away:

- Bitstamp: the private route's name without its path parameter: `user_transactions`,
  `crypto-transactions`, `account_balances`, `fees/trading`, `fees/withdrawal`.
- Bitvavo: `view`.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping

from pipelines.sandbox.auth import AuthFailure, bitstamp_error, bitvavo_error

PERMISSIONS: Mapping[str, tuple[str, ...]] = {
    "bitstamp": (
        "user_transactions",
        "crypto-transactions",
        "account_balances",
        "fees/trading",
        "fees/withdrawal",
    ),
    "bitvavo": ("view",),
}


def missing_permissions(
    missing: Mapping[str, Collection[str]] | None,
) -> dict[str, frozenset[str]]:
    """`{"bitstamp": {"crypto-transactions"}}` checked against `PERMISSIONS`, for both
    exchanges (empty when not given); a name the sandbox does not know is a `ValueError`."""
    found = {exchange: frozenset[str]() for exchange in PERMISSIONS}
    for exchange, names in (missing or {}).items():
        if exchange not in PERMISSIONS:
            raise ValueError(f"missing_permissions: unknown exchange {exchange!r}")
        if isinstance(names, str):
            raise ValueError(f"missing_permissions[{exchange!r}]: a collection of names")
        unknown = set(names) - set(PERMISSIONS[exchange])
        if unknown:
            raise ValueError(
                f"missing_permissions[{exchange!r}]: unknown {sorted(unknown)}; "
                f"one of {list(PERMISSIONS[exchange])}"
            )
        found[exchange] = frozenset(names)
    return found


def bitstamp_refusal(route_name: str, missing: frozenset[str]) -> AuthFailure | None:
    """The refusal of a private Bitstamp call whose permission the key lacks, else None."""
    if route_name.split("/{", 1)[0] not in missing:
        return None
    return bitstamp_error("API0003", "No permission found")


def bitvavo_refusal(missing: frozenset[str]) -> AuthFailure | None:
    """The refusal of a private Bitvavo read by a key without View, else None."""
    if "view" not in missing:
        return None
    return bitvavo_error(311, "This key does not allow showing account information.")
