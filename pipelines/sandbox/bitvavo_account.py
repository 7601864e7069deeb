"""The simulated Bitvavo account as its API shows it at a given `now_ms`.

What depends on `now_ms`:
- a fill is listed once executed; its `fee`/`feeCurrency` are absent and `settled` is false until
  `BITVAVO_SETTLE_MS` after execution, and the fee is charged to the balance at that moment;
- a withdrawal's `status` walks through its stages and its `txId` shows from "sending" on;
- `/account/history` lists a fill once it is settled (an order, under `order`, once every fill
  of it is settled).

Conventions (docs/exchanges.md tags them open; the sandbox picks one and sticks to it):
- a withdrawal's `amount` EXCLUDES its `fee`: the balance drops by `amount + fee`, and the other
  side receives exactly `amount` (under the variant `bitvavo-withdrawal-amount=gross` both
  `withdrawalHistory` and `/account/history` show `amount + fee` instead, the fee inside: the
  balance then drops by the amount shown, and the other side receives `amount − fee`);
- `/account/history` lists every balance change: order-book trades, app ("Price Guarantee")
  trades that `/v2/trades` never lists, staking rewards, deposits and withdrawals. For every
  item the balance changes by `-sentAmount` (sentCurrency), `+receivedAmount`, `-feesAmount`
  (feesCurrency; a negative fee is a rebate). For a fill `sentAmount`/`receivedAmount` are
  `amount` and `amount × price` (fee separate), exactly.

How history shows order-book trades is the open point `bitvavo-history-ids` (variants.py):
- `fill` (default): one item per fill, `transactionId` = the fill id of `/v2/trades`;
- `own`: one item per fill with an id of its own (a UUID, not the fill id);
- `order`: one item per order with an id of its own, summing the order's fills exactly (base
  amount, `amount × price`, fees; the fees may sum to a rebate). `executedAt` is the last fill's
  time; `priceAmount` is the amount-weighted price (quote sum / base sum) rounded half up to the
  market's price decimals (those of its fills' prices). The item appears once every fill of the
  order is settled.
The ids of `own` and `order` are deterministic for a seed (their own random stream).

How history shows their amounts is the open point `bitvavo-history-amounts`: `exact` (default)
as above; `rounded`: the quote amount (`sentAmount` of a buy, `receivedAmount` of a sell)
rounded half up to the quote currency's decimals (`QUOTE_DECIMALS`); `fee`: the fee inside it
(a buy's `sentAmount` is quote + fee, a sell's `receivedAmount` quote − fee; `feesAmount` still
shows the fee). Either way the balance moves as the fills say: history is not the balance
source of order-book trades.
"""

from __future__ import annotations

from collections.abc import Sequence
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from pipelines.sandbox.account_script import (
    BITVAVO_REBATE_MARKETS,
    BITVAVO_TIERS,
    CENT,
    VolumeLog,
    tier_for,
)
from pipelines.sandbox.events import (
    ZERO,
    BitvavoFill,
    BitvavoItem,
    BitvavoLedger,
    BitvavoTransfer,
    fixed,
    iso_ms,
    new_uuid,
    plain,
    reserved_at,
)
from pipelines.sandbox.market import market_key
from pipelines.sandbox.prices import rng_for

QUOTE_DECIMALS = {"EUR": 2}  # Bitvavo `/v2/assets` decimals of the quote currencies


class BitvavoAccount:
    """contracts.md §C: trades, history, deposits, withdrawals, balance, fees."""

    def __init__(
        self, ledger: BitvavoLedger, *, seed: int, volumes: VolumeLog, now_ms: int
    ) -> None:
        self.fills: tuple[BitvavoFill, ...] = tuple(ledger.fills)
        self.transfers: tuple[BitvavoTransfer, ...] = tuple(ledger.transfers)
        self.items: tuple[BitvavoItem, ...] = tuple(ledger.items)
        self.reservations = tuple(ledger.reservations)
        self.markets_traded: tuple[str, ...] = tuple(sorted({f.market for f in self.fills}))
        symbols = {f.base for f in self.fills} | {f.quote for f in self.fills}
        symbols |= {t.symbol for t in self.transfers}
        for item in self.items:
            symbols |= {leg[0] for leg in (item.sent, item.received, item.fee) if leg}
        self.symbols: tuple[str, ...] = tuple(sorted(symbols, key=lambda s: (s != "EUR", s)))
        rng = rng_for(market_key(seed, "bitvavo", "render"))
        self._transfer_ids = {id(t): new_uuid(rng) for t in self.transfers}
        orders: dict[str, list[BitvavoFill]] = {}
        for fill in self.fills:
            orders.setdefault(fill.order_id, []).append(fill)
        self.orders: tuple[tuple[BitvavoFill, ...], ...] = tuple(map(tuple, orders.values()))
        ids = rng_for(market_key(seed, "bitvavo", "history-ids"))
        self._own_ids = {fill.fill_id: new_uuid(ids) for fill in self.fills}
        self._order_ids = {order[0].order_id: new_uuid(ids) for order in self.orders}
        self._fees_at = now_ms
        self._volumes = volumes

    # --- /v2/trades ----------------------------------------------------------------------------

    def trades(self, market: str, now_ms: int) -> list[dict[str, Any]]:
        """Fills of `market` executed by `now_ms`, newest first."""
        rows = [
            self._fill(f, now_ms) for f in self.fills if f.market == market and f.ts_ms <= now_ms
        ]
        rows.reverse()
        return rows

    @staticmethod
    def _fill(fill: BitvavoFill, now_ms: int) -> dict[str, Any]:
        row: dict[str, Any] = {"id": fill.fill_id, "orderId": fill.order_id}
        if fill.client_order_id is not None:
            row["clientOrderId"] = fill.client_order_id
        row |= {
            "timestamp": fill.ts_ms,
            "market": fill.market,
            "side": fill.side,
            "amount": plain(fill.amount),
            "price": plain(fill.price),
            "taker": fill.taker,
        }
        settled = now_ms >= fill.settle_ms
        if settled:
            row["fee"] = plain(fill.fee)
            row["feeCurrency"] = fill.quote
        row["settled"] = settled
        return row

    # --- /v2/account/history -------------------------------------------------------------------

    def history(
        self,
        now_ms: int,
        ids: str = "fill",
        *,
        fee_in_amount: bool = False,
        amounts: str = "exact",
    ) -> list[dict[str, Any]]:
        """Every balance change known at `now_ms` (settled trades only), newest first; `ids` is
        the `bitvavo-history-ids` reality of the order-book trades, `amounts` their
        `bitvavo-history-amounts` reality, `fee_in_amount` that of
        `bitvavo-withdrawal-amount=gross` (module docstring)."""
        dated = [(ts, n, item) for ts, n, item, _ in self._book_items(now_ms, ids, amounts)]
        for n, item in enumerate(self.items):
            if item.ts_ms <= now_ms:
                dated.append((item.ts_ms, n, self._app_item(item)))
        for n, transfer in enumerate(self.transfers):
            if transfer.ts_ms <= now_ms:
                dated.append((transfer.ts_ms, n, self._transfer_item(transfer, fee_in_amount)))
        dated.sort(key=lambda d: (d[0], d[1]), reverse=True)
        return [d[2] for d in dated]

    def history_fills(self, now_ms: int, ids: str = "fill") -> dict[str, tuple[str, ...]]:
        """The order-book items `history(now_ms, ids)` lists: transaction id → the ids of the
        fills it stands for (the truth a test compares matches with)."""
        return {item["transactionId"]: fills for _, _, item, fills in self._book_items(now_ms, ids)}

    def _book_items(
        self, now_ms: int, ids: str, amounts: str = "exact"
    ) -> list[tuple[int, int, dict[str, Any], tuple[str, ...]]]:
        """(time, index, item, fill ids) of the order-book trades history lists at `now_ms`."""
        found = []
        if ids == "order":
            for n, order in enumerate(self.orders):
                if max(f.settle_ms for f in order) <= now_ms:
                    item = self._order_item(order, self._order_ids[order[0].order_id], amounts)
                    fill_ids = tuple(f.fill_id for f in order)
                    found.append((max(f.ts_ms for f in order), n, item, fill_ids))
        else:
            for n, fill in enumerate(self.fills):
                if fill.settle_ms <= now_ms:
                    own = self._own_ids[fill.fill_id] if ids == "own" else fill.fill_id
                    item = self._order_item((fill,), own, amounts)
                    found.append((fill.ts_ms, n, item, (fill.fill_id,)))
        return found

    @staticmethod
    def _order_item(
        order: Sequence[BitvavoFill], transaction_id: str, amounts: str
    ) -> dict[str, Any]:
        """One item for the whole order (or one fill): the sums of its fills, dated at its
        last fill, its quote amount shown as `amounts` says (module docstring)."""
        base = sum((f.amount for f in order), ZERO)
        quote = sum((f.quote_amount for f in order), ZERO)
        fee = sum((f.fee for f in order), ZERO)
        price = order[0].price
        if len(order) > 1:
            exponent = price.as_tuple().exponent
            assert isinstance(exponent, int)  # a price is a finite number
            quantum = Decimal(1).scaleb(exponent)
            price = (quote / base).quantize(quantum, ROUND_HALF_UP)
        shown = quote
        if amounts == "rounded":
            quantum = Decimal(1).scaleb(-QUOTE_DECIMALS.get(order[0].quote, 8))
            shown = quote.quantize(quantum, ROUND_HALF_UP)
        elif amounts == "fee":
            shown = quote + fee if order[0].side == "buy" else quote - fee
        last = max(f.ts_ms for f in order)
        return _trade_item(transaction_id, order[0], last, price, base, shown, fee)

    @staticmethod
    def _app_item(item: BitvavoItem) -> dict[str, Any]:
        row: dict[str, Any] = {
            "transactionId": item.transaction_id,
            "executedAt": iso_ms(item.ts_ms),
            "type": item.type,
        }
        for name, leg in (
            ("price", item.price),
            ("sent", item.sent),
            ("received", item.received),
            ("fees", item.fee),
        ):
            if leg is not None:
                row[f"{name}Currency"] = leg[0]
                row[f"{name}Amount"] = plain(leg[1])
        return row

    def _transfer_item(self, transfer: BitvavoTransfer, fee_in_amount: bool) -> dict[str, Any]:
        leg = "received" if transfer.kind == "deposit" else "sent"
        return {
            "transactionId": self._transfer_ids[id(transfer)],
            "executedAt": iso_ms(transfer.ts_ms),
            "type": transfer.kind,
            f"{leg}Currency": transfer.symbol,
            f"{leg}Amount": plain(_shown_amount(transfer, fee_in_amount)),
            "feesCurrency": transfer.symbol,
            "feesAmount": plain(transfer.fee),
            "address": transfer.address,
        }

    # --- deposits and withdrawals ------------------------------------------------------------

    def deposits(self, now_ms: int) -> list[dict[str, Any]]:
        return self._transfers("deposit", now_ms, fee_in_amount=False)

    def withdrawals(self, now_ms: int, *, fee_in_amount: bool = False) -> list[dict[str, Any]]:
        return self._transfers("withdrawal", now_ms, fee_in_amount=fee_in_amount)

    def _transfers(self, kind: str, now_ms: int, *, fee_in_amount: bool) -> list[dict[str, Any]]:
        rows = [
            self._transfer_row(t, now_ms, fee_in_amount)
            for t in self.transfers
            if t.kind == kind and t.ts_ms <= now_ms
        ]
        rows.reverse()
        return rows

    @staticmethod
    def _transfer_row(
        transfer: BitvavoTransfer, now_ms: int, fee_in_amount: bool
    ) -> dict[str, Any]:
        age = now_ms - transfer.ts_ms
        status = transfer.stages[0][1]
        for after, name in transfer.stages:
            if age >= after:
                status = name
        row: dict[str, Any] = {
            "timestamp": transfer.ts_ms,
            "symbol": transfer.symbol,
            "amount": plain(_shown_amount(transfer, fee_in_amount)),
            "fee": plain(transfer.fee),
            "status": status,
        }
        if transfer.crypto is not None and age >= transfer.txid_from_ms:
            row["txId"] = transfer.txid_padding + transfer.crypto.txid + transfer.txid_padding
        row["address"] = transfer.address
        return row

    # --- balance and fees ----------------------------------------------------------------------

    def totals(self, now_ms: int) -> dict[str, Decimal]:
        """Exact replay of everything known at `now_ms` (fees from their settlement on)."""
        total = dict.fromkeys(self.symbols, ZERO)
        for fill in self.fills:
            if fill.ts_ms > now_ms:
                continue
            value = fill.quote_amount
            if fill.side == "buy":
                total[fill.quote] -= value
                total[fill.base] += fill.amount
            else:
                total[fill.quote] += value
                total[fill.base] -= fill.amount
            if fill.settle_ms <= now_ms:
                total[fill.quote] -= fill.fee
        for transfer in self.transfers:
            if transfer.ts_ms <= now_ms:
                sign = 1 if transfer.kind == "deposit" else -1
                total[transfer.symbol] += sign * transfer.amount - transfer.fee
        for item in self.items:
            if item.ts_ms <= now_ms:
                for leg, sign in ((item.sent, -1), (item.received, 1), (item.fee, -1)):
                    if leg is not None:
                        total[leg[0]] += sign * leg[1]
        return total

    def balance(self, now_ms: int) -> list[dict[str, Any]]:
        """`/v2/balance` rows: `available` + `inOrder` = the exact replay total."""
        total = self.totals(now_ms)
        held = reserved_at(self.reservations, now_ms)
        return [
            {
                "symbol": symbol,
                "available": plain(total[symbol] - held.get(symbol, ZERO)),
                "inOrder": plain(held.get(symbol, ZERO)),
            }
            for symbol in self.symbols
        ]

    def fees(self, market: str) -> dict[str, str]:
        """`/v2/account/fees?market=…` as of the world's creation: fractions, rebate negative."""
        index, volume = tier_for(BITVAVO_TIERS, self._volumes, self._fees_at)
        _, taker, maker = BITVAVO_TIERS[index]
        maker = BITVAVO_REBATE_MARKETS.get(market, maker)
        return {
            "tier": str(index),
            "volume": fixed(volume.quantize(CENT), 2),
            "taker": fixed(taker, 4),
            "maker": fixed(maker, 4),
        }


def _trade_item(
    transaction_id: str,
    fill: BitvavoFill,
    ts_ms: int,
    price: Decimal,
    base: Decimal,
    quote: Decimal,
    fee: Decimal,
) -> dict[str, Any]:
    """A history buy/sell of order-book trades in `fill`'s market and side."""
    sent, received = (
        ((fill.quote, plain(quote)), (fill.base, plain(base)))
        if fill.side == "buy"
        else ((fill.base, plain(base)), (fill.quote, plain(quote)))
    )
    return {
        "transactionId": transaction_id,
        "executedAt": iso_ms(ts_ms),
        "type": fill.side,
        "priceCurrency": fill.quote,
        "priceAmount": plain(price),
        "sentCurrency": sent[0],
        "sentAmount": sent[1],
        "receivedCurrency": received[0],
        "receivedAmount": received[1],
        "feesCurrency": fill.quote,
        "feesAmount": plain(fee),
    }


def _shown_amount(transfer: BitvavoTransfer, fee_in_amount: bool) -> Decimal:
    """A transfer's amount as the API shows it: a withdrawal's fee inside it only when
    `fee_in_amount` (the `bitvavo-withdrawal-amount=gross` reality)."""
    if fee_in_amount and transfer.kind == "withdrawal":
        return transfer.amount + transfer.fee
    return transfer.amount
