"""Bitvavo's data rules for the warehouse views (EXCHANGES.md: fills, transfers, history)."""

from __future__ import annotations

from warehouse.rules import ExchangeRules

RULES = ExchangeRules(
    # depositHistory / withdrawalHistory move the balance; account/history lists them again
    primary_transfer_sources=("depositHistory", "withdrawalHistory"),
    secondary_transfer_sources=("account/history",),
    secondary_net_of_fee=False,
    # the two listings are not proven to agree on where a withdrawal's fee is
    secondary_withdrawal_fee_either_side=True,
    unmatched_secondary_in_ledger=True,
    withdrawal_fee_inside_recorded=False,
    raw_ledger="bitvavo_history",
    raw_ledger_is_balance_ledger=False,
    candles_skip_quiet_hours=False,
    fx_markets=(),
    eur_prices_first=True,
    usd_prices=False,
    exact_quote_sources=("trades",),
    leg_rounded_quote_sources=("account/history",),  # the app rounds one leg down
    quote_keyed_by_currency=False,
    fee_unchecked_sources=("account/history",),
)
