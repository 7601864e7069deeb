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
from collections.abc import Iterable
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from typing import Protocol
from zoneinfo import ZoneInfo

import duckdb

from warehouse.costbasis.exact import EXACT, tidy
from warehouse.costbasis.history import History, between
from warehouse.costbasis.model import UNKNOWN_ASSET, ZERO, Holding, MissingPriceError
from warehouse.costbasis.prices import DEFAULT_MAX_STALENESS, PriceBook
from warehouse.rows import InternalTransfer

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
    history: History | None = None,
) -> list[Holding]:
    """Non-zero balances at 00:00 of `on` in `zone`, per wallet (or staking, or transfer in
    transit) and asset, with price and value (`prices` in `currency`, loaded if not given;
    `history`: the ledger and own transfers, read if not given)."""
    moment = start_of_day(on, zone)
    if prices is None:
        prices = PriceBook.load(connection, currency, max_staleness=max_staleness)
    if history is None:
        history = History.read(connection)
    held: dict[tuple[str, str, str], Decimal] = defaultdict(Decimal)
    for row in between(history.ledger, None, moment):
        if row.asset == UNKNOWN_ASSET:
            continue
        account = (row.wallet, row.asset, ACCOUNT)
        held[account] = EXACT.add(held[account], row.amount)
        if row.kind == "staking":
            staked = (f"{row.wallet} (staking)", row.asset, STAKING)
            held[staked] = EXACT.subtract(held[staked], row.amount)
    for place, asset, quantity in _in_transit(history.transfers, moment):
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
    transfers: Iterable[InternalTransfer], moment: datetime
) -> list[tuple[str, str, Decimal]]:
    """Matched pairs with one side booked before `moment` and the other at or after it."""
    found = []
    for t in transfers:
        if t.status != "matched" or t.asset == UNKNOWN_ASSET:
            continue
        if t.withdrawn_at is None or t.deposited_at is None:
            continue
        withdrawn = t.withdrawn_at < moment
        if withdrawn == (t.deposited_at < moment):
            continue
        place = (
            f"{t.withdrawal_exchange}/{t.withdrawal_account} -> "
            f"{t.deposit_exchange}/{t.deposit_account} (in transit)"
        )
        quantity = t.sent if withdrawn else t.received
        assert quantity is not None  # a matched pair's amounts are known
        found.append((place, t.asset, quantity if withdrawn else EXACT.minus(quantity)))
    return found
