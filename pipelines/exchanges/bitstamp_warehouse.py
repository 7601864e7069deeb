"""Bitstamp's data rules for the warehouse views (EXCHANGES.md: the user_transactions ledger)."""

from __future__ import annotations

from warehouse.rules import ExchangeRules

RULES = ExchangeRules(
    # user_transactions moves the balance; crypto-transactions adds txid and address
    primary_transfer_sources=None,
    secondary_transfer_sources=("crypto-transactions",),
    secondary_net_of_fee=True,  # on chain = amount - fee
    secondary_withdrawal_fee_either_side=False,
    unmatched_secondary_in_ledger=False,  # the ledger is complete
    withdrawal_fee_inside_recorded=True,
    raw_ledger="bitstamp_ledger",
    raw_ledger_is_balance_ledger=True,
    candles_skip_quiet_hours=True,
    fx_markets=("EUR-USD", "GBP-EUR"),
    eur_prices_first=False,
    usd_prices=True,
    exact_quote_sources=(),
    leg_rounded_quote_sources=(),
    quote_keyed_by_currency=True,
    fee_unchecked_sources=(),
)
