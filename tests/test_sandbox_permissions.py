"""Sandbox keys that lack a read permission answer as the exchanges document it.

Bitstamp refuses a call its key has no permission for with the authentication failure `API0003`
"No permission found" in its `{status, reason, code}` error body; Bitvavo refuses every account
read of a key without View with errorCode 311 "This key does not allow showing account
information." Signed with the test-local signers (not the clients), over real HTTP.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import requests
from sandbox_fixtures import world_fixture
from test_sandbox_helpers import clients, loads

from pipelines.sandbox.server import Sandbox, start_sandbox
from pipelines.sandbox.world import World

NOW_MS = 1_711_886_400_000  # 2024-03-31T12:00:00Z


world = world_fixture(seed=47, days=3, now_ms=NOW_MS)


@pytest.fixture(scope="module")
def lacking(world: World) -> Iterator[Sandbox]:
    with start_sandbox(
        seed=47,
        world=world,
        missing_permissions={"bitstamp": {"crypto-transactions", "user_transactions"}},
    ) as running:
        yield running


def auth_failures(base_url: str) -> dict[str, int]:
    root = base_url.removesuffix("/v2")
    stats: dict[str, Any] = requests.get(f"{root}/_sandbox/stats", timeout=10).json()
    return dict(stats["auth_failures"])


def test_bitstamp_refuses_only_the_calls_whose_permission_is_missing(lacking: Sandbox) -> None:
    bitstamp, _ = clients(lacking)
    for path in ("/api/v2/crypto-transactions/", "/api/v2/user_transactions/btcusd/"):
        refused = bitstamp.post(path, {"offset": 0} if "crypto" in path else {})
        assert refused.status_code == 403
        assert loads(refused.text) == {
            "status": "error",
            "reason": "No permission found",
            "code": "API0003",
        }
    allowed = bitstamp.post("/api/v2/account_balances/")
    assert allowed.status_code == 200 and isinstance(loads(allowed.text), list)
    assert auth_failures(lacking.bitstamp.base_url) == {"API0003": 2}


def test_bitvavo_without_view_refuses_every_account_read_but_no_public_one(world: World) -> None:
    with start_sandbox(seed=47, world=world, missing_permissions={"bitvavo": {"view"}}) as sandbox:
        _, bitvavo = clients(sandbox)
        for path in ("/balance", "/account/history", "/depositHistory"):
            refused = bitvavo.get(path)
            assert refused.status_code == 403
            assert loads(refused.text) == {
                "errorCode": 311,
                "error": "This key does not allow showing account information.",
            }
        assert bitvavo.get("/markets").status_code == 200, "a signed public read still answers"
        assert bitvavo.public("/time").status_code == 200
        assert auth_failures(sandbox.bitvavo.base_url) == {"311": 3}


def test_a_signature_is_checked_before_the_permission(world: World) -> None:
    """A wrong secret is told as such (API0005), not as a missing permission."""
    with start_sandbox(
        seed=47, world=world, missing_permissions={"bitstamp": {"account_balances"}}
    ) as sandbox:
        bitstamp, _ = clients(sandbox)
        bitstamp.secret = "x" * 32
        answer = bitstamp.post("/api/v2/account_balances/")
        assert loads(answer.text)["code"] == "API0005"


@pytest.mark.parametrize(
    "missing",
    [
        {"kraken": {"view"}},
        {"bitstamp": {"buy"}},
        {"bitvavo": {"trade"}},
        {"bitstamp": "account_balances"},
    ],
)
def test_unknown_permissions_are_refused_with_the_known_ones(missing: Any) -> None:
    with pytest.raises(ValueError, match="missing_permissions"):
        start_sandbox(seed=47, days=1, now_ms=NOW_MS, missing_permissions=missing)
