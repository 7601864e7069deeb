"""Static reference data both emulators describe their markets and assets with."""

from __future__ import annotations

ASSET_NAMES = {
    "BTC": "Bitcoin",
    "ETH": "Ether",
    "XRP": "XRP",
    "LTC": "Litecoin",
    "ADA": "Cardano",
    "DOT": "Polkadot",
    "LINK": "Chainlink",
    "NEO": "NEO",
    "PHA": "Phala Network",
    "USDT": "Tether",
    "USDC": "USD Coin",
    "EUR": "Euro",
    "USD": "U.S. dollar",
    "GBP": "British Pound",
}

FIAT = frozenset({"EUR", "USD", "GBP"})


def asset_name(symbol: str) -> str:
    return ASSET_NAMES.get(symbol.upper(), symbol.upper())
