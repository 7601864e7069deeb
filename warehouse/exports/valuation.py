"""The reporting-currency value of a transaction, as the third-party formats state it.

A trade is worth its leg in the reporting currency when it has one, else its quote leg valued
through `prices`, failing that its base leg (as the cost-basis engine values a fill); any other
transaction its received (then sent) legs, the first that has a price. A fee is valued through
`prices` like any other amount. None where nothing prices it.
"""

from __future__ import annotations

from decimal import Decimal

from warehouse.exports.pricing import Prices
from warehouse.exports.transactions import Movement, Transaction


def transaction_value(tx: Transaction, prices: Prices) -> Decimal | None:
    legs = (*tx.received, *tx.sent)
    for leg in legs:
        if leg.asset == prices.currency:
            return leg.quantity
    if tx.market and "-" in tx.market:
        base, quote = tx.market.split("-", 1)
        order = {quote: 0, base: 1}
        legs = tuple(sorted(legs, key=lambda leg: order.get(leg.asset, 2)))
    for leg in legs:
        value = prices.value(leg.asset, tx.at, leg.quantity)
        if value is not None:
            return value
    return None


def fee_value(tx: Transaction, fee: Movement, prices: Prices) -> Decimal | None:
    return prices.value(fee.asset, tx.at, fee.quantity)
