"""`holdings(connection, on, currency, zone=…)`: what the owner held at the start of a day, valued.

The moment is 00:00 of `on` in `zone` (for box 3, 1 January at 00:00 in the Netherlands:
Europe/Amsterdam). Everything booked before it counts, nothing booked at or after it. Three
kinds of rows, so that the accounts' own rows are exactly their ledger balances then (the ledger
export's opening balances for a period starting at that moment):

- "exchange/account": the `ledger` replayed up to the moment, per wallet and asset;
- "exchange/account (staking)": the account's coins in the exchange's staking then (the
  staking debits less credits booked before the moment): still the owner's;
- "from -> to (in transit)": an own transfer (`internal_transfers`, matched) whose withdrawal
  is booked before the moment and its deposit at or after it is on its way: what was sent on
  chain (the withdrawal fee is spent). Where the deposit is booked first (the two exchanges'
  clocks differ) the coins would count in both accounts: the row takes back what the deposit
  credited, so that they count once.

Every asset is listed, fiat included (the reporting currency at 1); a fee whose asset the source
did not name (asset "?") cannot be held or valued and is left out. The price is the latest at or
before the moment (see `prices`); a missing one raises MissingPriceError listing every asset.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from typing import Protocol
from zoneinfo import ZoneInfo

import duckdb

from warehouse.costbasis.exact import EXACT, tidy
from warehouse.costbasis.model import ZERO, Holding, MissingPriceError
from warehouse.costbasis.prices import DEFAULT_MAX_STALENESS, PriceBook

ACCOUNT, STAKING, IN_TRANSIT = "account", "staking", "in transit"


class Prices(Protocol):
    """What values the holdings: a `PriceBook`, or the exports' `Prices` already loaded."""

    def price(self, asset: str, at: datetime) -> Decimal | None: ...


def start_of_day(on: date, zone: str = "UTC") -> datetime:
    """00:00 of `on` in `zone`, in UTC."""
    return datetime.combine(on, time(0), tzinfo=ZoneInfo(zone)).astimezone(UTC)


def holdings(
    connection: duckdb.DuckDBPyConnection,
    on: date,
    currency: str = "EUR",
    *,
    zone: str = "UTC",
    prices: Prices | None = None,
    max_staleness: timedelta = DEFAULT_MAX_STALENESS,
) -> list[Holding]:
    """Non-zero balances at 00:00 of `on` in `zone`, per wallet (or staking, or transfer in
    transit) and asset, with price and value (`prices` in `currency`, loaded if not given)."""
    moment = start_of_day(on, zone)
    if prices is None:
        prices = PriceBook.load(connection, currency, max_staleness=max_staleness)
    held: dict[tuple[str, str, str], Decimal] = defaultdict(Decimal)
    for wallet, asset, kind, quantity in connection.execute(
        "select exchange || '/' || account, asset, kind = 'staking', sum(amount) from ledger "
        "where executed_at < ? and asset <> '?' group by all",
        [moment],
    ).fetchall():
        held[(wallet, asset, ACCOUNT)] = EXACT.add(held[(wallet, asset, ACCOUNT)], quantity)
        if kind:
            staked = (f"{wallet} (staking)", asset, STAKING)
            held[staked] = EXACT.subtract(held[staked], quantity)
    for place, asset, quantity in _in_transit(connection, moment):
        held[(place, asset, IN_TRANSIT)] = EXACT.add(held[(place, asset, IN_TRANSIT)], quantity)
    result = []
    missing = []
    for (wallet, asset, place), quantity in sorted(held.items()):
        if quantity == ZERO:
            continue
        price = prices.price(asset, moment)
        if price is None:
            missing.append((asset, moment))
            continue
        amount = tidy(quantity)
        value = tidy(EXACT.multiply(amount, price))
        result.append(Holding(wallet, asset, amount, price, value, place))
    if missing:
        raise MissingPriceError(missing, currency)
    return result


def _in_transit(
    connection: duckdb.DuckDBPyConnection, moment: datetime
) -> list[tuple[str, str, Decimal]]:
    rows = connection.execute(
        "select withdrawal_exchange || '/' || withdrawal_account, "
        "deposit_exchange || '/' || deposit_account, asset, withdrawn_at < ?, sent, received "
        "from internal_transfers where status = 'matched' and asset <> '?' "
        "and (withdrawn_at < ?) <> (deposited_at < ?)",
        [moment, moment, moment],
    ).fetchall()
    return [
        (f"{source} -> {target} (in transit)", asset, sent if withdrawn else EXACT.minus(received))
        for source, target, asset, withdrawn, sent, received in rows
    ]
