"""What the CoinTracking, Koinly and BittyTax files say about single transactions, checked
against each tool's documented rules with hand-built transactions (no lake); the ledger
export's value rounding. Every expected row is written from the rule quoted beside it:

- CoinTracking, "Entering fees" (support article 29000007202): amounts include the fee. "Buy 1
  BTC for 500 USD with a 5 USD fee: Buy = 1 BTC, Sell = 505 USD, Fee = 5 USD"; "a fee of 0.01
  BTC taken from the purchased Bitcoin: Buy = 0.99 BTC, Sell = 500 USD, Fee = 0.01 BTC";
  "Transfer 1 BTC with a 0.001 BTC fee: Withdrawal = 1.001 BTC, Fee = 0.001 BTC; Deposit = 1
  BTC"; "in case of a buy, the fee needs to be subtracted from the buy side (Deposit)"; a fee in
  a third currency is not deducted, so it needs its own "Other Fee" entry.
- Koinly, "What are transactions in Koinly" (article 9490022): "A deposit in Koinly can not
  have any fee ... add a separate withdrawal transaction for the 5 USD fee and tag it as a
  Cost. Alternatively, just add a deposit of 95 USD"; a send's and a trade's fee is its own
  column, paid on top of what was sent (Koinly adds a trade's fee to the cost basis, article
  9490025).
- BittyTax README: a disposal is matched with acquisitions in the 30 days after it ("bed and
  breakfast"), on UK (Europe/London) days.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal

from warehouse.exports import cointracking, koinly
from warehouse.exports.bittytax import covered_until
from warehouse.exports.ledger import rounded
from warehouse.exports.options import Period
from warehouse.exports.transactions import Movement, Transaction, Transfer

D = Decimal
AT = datetime(2024, 3, 1, 12, 0, tzinfo=UTC)


def tx(
    category: str,
    *,
    sent: tuple[tuple[str, str], ...] = (),
    received: tuple[tuple[str, str], ...] = (),
    fees: tuple[tuple[str, str], ...] = (),
    event_kind: str = "",
    transfer: Transfer | None = None,
) -> Transaction:
    """A transaction as `transactions` states one: unsigned legs, fees apart."""

    def legs(pairs: tuple[tuple[str, str], ...]) -> tuple[Movement, ...]:
        return tuple(Movement(asset, D(quantity)) for asset, quantity in pairs)

    return Transaction(
        exchange="bitstamp",
        account="main",
        at=AT,
        reference="1",
        source="user_transactions",
        category=category,
        event_kind=event_kind or category,
        event_type="",
        market="BTC-USD" if category == "trade" else None,
        sent=legs(sent),
        received=legs(received),
        fees=legs(fees),
        transfer=transfer,
    )


OWN = Transfer(own=True, txid="abc", counterpart="bitvavo/main")
OUTSIDE = Transfer(own=False, txid=None, counterpart=None)


def ct(transaction: Transaction) -> list[tuple[str, ...]]:
    """(Type, Buy Amount, Buy Currency, Sell Amount, Sell Currency, Fee, Fee Currency)."""
    return [row[:7] for row in cointracking._rows(transaction)]


def ko(transaction: Transaction) -> list[tuple[str, str, str, str, str, str, str]]:
    """(Sent, Sent Currency, Received, Received Currency, Fee, Fee Currency, Label)."""

    def text(movement: Movement | None) -> tuple[str, str]:
        return ("", "") if movement is None else (str(movement.quantity), movement.asset)

    return [
        (*text(line.sent), *text(line.received), *text(line.fee), line.label)
        for line in koinly.lines(transaction)
    ]


# --- CoinTracking --------------------------------------------------------------------------------


def test_cointracking_a_buy_with_a_fee_in_the_sold_currency_sells_the_fee_too() -> None:
    # the help's example: 1 BTC for 500 USD + 5 USD fee -> Sell 500 + 5 = 505 USD
    buy = tx("trade", sent=(("USD", "500"),), received=(("BTC", "1"),), fees=(("USD", "5"),))
    assert ct(buy) == [("Trade", "1", "BTC", "505", "USD", "5", "USD")]


def test_cointracking_a_fee_taken_from_what_was_bought_is_off_the_buy_amount() -> None:
    # the help's example: 1 BTC bought, 0.01 BTC of it kept as fee -> Buy 1 - 0.01 = 0.99 BTC
    buy = tx("trade", sent=(("USD", "500"),), received=(("BTC", "1"),), fees=(("BTC", "0.01"),))
    assert ct(buy) == [("Trade", "0.99", "BTC", "500", "USD", "0.01", "BTC")]


def test_cointracking_a_transfer_withdraws_the_fee_and_deposits_what_arrived() -> None:
    # the help's example: 1 BTC sent with a 0.001 BTC fee -> Withdrawal 1 + 0.001 = 1.001 BTC,
    # the other account's Deposit 1 BTC with no fee
    out = tx("withdrawal", sent=(("BTC", "1"),), fees=(("BTC", "0.001"),), transfer=OWN)
    into = tx("deposit", received=(("BTC", "1"),), transfer=OWN)
    assert ct(out) == [("Withdrawal", "", "", "1.001", "BTC", "0.001", "BTC")]
    assert ct(into) == [("Deposit", "1", "BTC", "", "", "", "")]


def test_cointracking_a_deposit_fee_is_off_the_deposit() -> None:
    # 100 USD deposited, 5 USD fee deducted: "subtracted from the buy side" -> 100 - 5 = 95
    deposit = tx("deposit", received=(("USD", "100"),), fees=(("USD", "5"),), transfer=OUTSIDE)
    assert ct(deposit) == [("Deposit", "95", "USD", "", "", "5", "USD")]


def test_cointracking_a_fee_in_a_third_currency_is_an_other_fee_row_of_its_own() -> None:
    # 1 BTC for 500 USD, fee 0.1 BNB: the trade row names no fee (it would count twice in
    # CoinTracking's fee reports); the BNB leaves through an Other Fee row, Sell 0.1 BNB
    buy = tx("trade", sent=(("USD", "500"),), received=(("BTC", "1"),), fees=(("BNB", "0.1"),))
    assert ct(buy) == [
        ("Trade", "1", "BTC", "500", "USD", "", ""),
        ("Other Fee", "", "", "0.1", "BNB", "", ""),
    ]


def test_cointracking_a_reward_with_a_fee_in_its_coin_credits_what_remained() -> None:
    # 0.5 ETH staking reward, 0.01 ETH fee taken from it -> Staking 0.5 - 0.01 = 0.49 ETH
    reward = tx(
        "reward", received=(("ETH", "0.5"),), fees=(("ETH", "0.01"),), event_kind="staking_reward"
    )
    assert ct(reward) == [("Staking", "0.49", "ETH", "", "", "0.01", "ETH")]


def test_cointracking_a_fee_charged_on_its_own_is_an_other_fee() -> None:
    fee = tx("fee", fees=(("EUR", "2.5"),))
    assert ct(fee) == [("Other Fee", "", "", "2.5", "EUR", "", "")]


# --- Koinly --------------------------------------------------------------------------------------


def test_koinly_a_trade_and_a_send_carry_their_fee_on_top() -> None:
    buy = tx("trade", sent=(("USD", "500"),), received=(("BTC", "1"),), fees=(("USD", "5"),))
    assert ko(buy) == [("500", "USD", "1", "BTC", "5", "USD", "")]
    out = tx("withdrawal", sent=(("BTC", "1"),), fees=(("BTC", "0.001"),), transfer=OWN)
    assert ko(out) == [("1", "BTC", "", "", "0.001", "BTC", "")]


def test_koinly_a_fiat_deposit_with_a_fee_is_written_net() -> None:
    # Koinly's own example: 100 USD transferred, 95 USD received -> a deposit of 95 USD
    deposit = tx("deposit", received=(("USD", "100"),), fees=(("USD", "5"),), transfer=OUTSIDE)
    assert ko(deposit) == [("", "", "95", "USD", "", "", "")]


def test_koinly_an_own_transfer_deposit_with_a_fee_is_written_net() -> None:
    # 1 BTC arrived, 0.0002 BTC deposit fee: 1 - 0.0002 = 0.9998 BTC, no fee on the deposit
    # (Koinly books the difference to the matching send as the transfer's fee)
    deposit = tx("deposit", received=(("BTC", "1"),), fees=(("BTC", "0.0002"),), transfer=OWN)
    assert ko(deposit) == [("", "", "0.9998", "BTC", "", "", "")]


def test_koinly_a_token_deposit_or_reward_with_a_fee_gets_a_separate_cost_send() -> None:
    # Koinly's other option: the gross deposit, and the fee as a withdrawal tagged Cost
    deposit = tx("deposit", received=(("BTC", "1"),), fees=(("BTC", "0.0002"),), transfer=OUTSIDE)
    assert ko(deposit) == [
        ("", "", "1", "BTC", "", "", ""),
        ("0.0002", "BTC", "", "", "", "", "cost"),
    ]
    reward = tx(
        "reward", received=(("ETH", "0.5"),), fees=(("EUR", "0.2"),), event_kind="staking_reward"
    )
    # a fiat fee in another asset: its own send, unlabelled ("Fiat withdrawals can not have
    # any labels")
    assert ko(reward) == [
        ("", "", "0.5", "ETH", "", "", "reward"),
        ("0.2", "EUR", "", "", "", "", ""),
    ]


def test_koinly_no_row_that_only_receives_carries_a_fee() -> None:
    cases = [
        tx("deposit", received=(("USD", "100"),), fees=(("USD", "5"),)),
        tx("deposit", received=(("BTC", "1"),), fees=(("BTC", "2"),)),  # fee larger than it
        tx("reward", received=(("ETH", "1"),), fees=(("ETH", "0.1"),)),
        tx("staking", received=(("ETH", "1"),), fees=(("ETH", "0.1"),)),
        tx("fee_rebate", received=(("EUR", "1"),), fees=(("BTC", "0.1"),)),
    ]
    for case in cases:
        for line in koinly.lines(case):
            assert line.fee is None or line.sent is not None, (case, line)
        # and nothing is lost: received - sent - fee is each asset's movement
        moved: dict[str, Decimal] = {}
        for line in koinly.lines(case):
            for movement, sign in ((line.received, 1), (line.sent, -1), (line.fee, -1)):
                if movement is not None:
                    moved[movement.asset] = (
                        moved.get(movement.asset, D(0)) + sign * movement.quantity
                    )
        expected: dict[str, Decimal] = {}
        for movement in case.received:
            expected[movement.asset] = expected.get(movement.asset, D(0)) + movement.quantity
        for movement in case.fees:
            expected[movement.asset] = expected.get(movement.asset, D(0)) - movement.quantity
        assert moved == expected, case


# --- BittyTax: how far the file reaches ----------------------------------------------------------


def test_a_bittytax_file_reaches_30_london_days_past_its_period() -> None:
    # UK tax year 2024/25 ends on 5 April 2025; 5 April + 30 days = 5 May, so the file holds
    # everything before 6 May 2025 00:00 in London (BST, UTC+1): 2025-05-05 23:00 UTC
    uk = Period.of(2024, uk=True, zone="Europe/London")
    assert covered_until(uk) == datetime(2025, 5, 5, 23, 0, tzinfo=UTC)
    # calendar 2024 in UTC ends on 31 December (London day too); + 30 = 30 January 2025, so
    # before 31 January 2025 00:00 London (GMT): 2025-01-31 00:00 UTC
    calendar = Period.of(2024, uk=False, zone="UTC")
    assert covered_until(calendar) == datetime(2025, 1, 31, 0, 0, tzinfo=UTC)
    # calendar 2024 in Tokyo ends at 2024-12-31 15:00 UTC, still 31 December in London
    tokyo = Period.of(2024, uk=False, zone="Asia/Tokyo")
    assert covered_until(tokyo) == datetime(2025, 1, 31, 0, 0, tzinfo=UTC)
    assert covered_until(Period.of(None, uk=True, zone="Europe/London")) is None
    assert uk.first == date(2024, 4, 6)


# --- the ledger export's values ------------------------------------------------------------------


def test_ledger_values_are_rounded_half_away_from_zero_to_18_places() -> None:
    # 0.000000000000000001 × 0.5 = 0.0000000000000000005: half away from zero -> 1e-18
    # (half-even would give 0); the negative mirrors it
    assert rounded(D("0.000000000000000001") * D("0.5")) == D("1e-18")
    assert rounded(D("-0.000000000000000001") * D("0.5")) == D("-1e-18")
    # 0.5 × 1.000000000000000001 = 0.5000000000000000005: a tie at the 19th decimal, up to
    # 0.500000000000000001 (half-even would keep ...000)
    assert rounded(D("0.5") * D("1.000000000000000001")) == D("0.500000000000000001")
    # 0.25 × 1.000000000000000001 = 0.25000000000000000025: 0.25e-18 is below half, down
    assert rounded(D("0.25") * D("1.000000000000000001")) == D("0.25")
    # 18 decimals or fewer stay as they are
    assert rounded(D("12.5") * D("3")) == D("37.5")
    assert rounded(None) is None
