"""The trade/withdraw row of `tally doctor`: a warning (never ok, never a failure) that says why
a key's trade and withdraw rights cannot be told on that exchange and how to check them by hand.
"""

from __future__ import annotations

import pytest

from pipelines.checks.permissions import trade_withdraw_row


@pytest.mark.parametrize(
    ("exchange", "why", "by_hand"),
    [
        ("bitstamp", ("API v2 has no endpoint", "API0003"), ("Settings → API access", "unticked")),
        (
            "bitvavo",
            ("no endpoint that lists a key's rights", "errorCode 311", "GET /v2/account"),
            ("Settings → API", "Trade and Withdraw off"),
        ),
    ],
)
def test_the_row_says_why_it_cannot_tell_and_how_to_check_by_hand(
    exchange: str, why: tuple[str, ...], by_hand: tuple[str, ...]
) -> None:
    row = trade_withdraw_row(exchange)
    assert (row.check, row.subject, row.status) == ("trade/withdraw", exchange, "warn")
    assert row.detail.startswith("cannot tell whether this key may trade or withdraw")
    for part in why:
        assert part in row.detail
    assert "tally never does" in row.detail
    assert row.fix.startswith("check by hand: ")
    for part in by_hand:
        assert part in row.fix
