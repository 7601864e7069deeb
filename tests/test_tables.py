"""The one text-table renderer (`pipelines.tables`) and every table printed through it.

The expected texts are what each command printed before it used the shared renderer, byte for
byte: trailing spaces where a command kept them, none where it stripped them.
"""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import pytest

from pipelines import tables
from pipelines.checks import CheckRow
from pipelines.checks.doctor import Report
from pipelines.checks.doctor import format_table as doctor_table
from pipelines.config import SettingRow, format_settings
from pipelines.exit_codes import ExitCode
from pipelines.flows.sync import summary_table
from pipelines.status import StreamStatus, format_status
from warehouse.exports.summary import lines as summary_lines
from warehouse.exports.writer import Export, Table
from warehouse.output import format_table as query_table
from warehouse.reconcile import Verdict, format_verdicts, verdict_headline, verdicts_markdown

ROWS = [("name", "n", "note"), ("candles", "239", "x"), ("ab", "1234567", "")]


def test_columns_are_padded_to_the_widest_cell_two_spaces_apart() -> None:
    assert tables.render(ROWS) == [
        "name     n        note",
        "candles  239      x   ",
        "ab       1234567      ",
    ]


def test_right_aligned_columns_and_stripped_lines() -> None:
    assert tables.render(ROWS, right={1}, strip=True) == [
        "name           n  note",
        "candles      239  x",
        "ab       1234567",
    ]


def test_a_fixed_width_pads_short_cells_and_leaves_long_ones_whole() -> None:
    rows = [("a", "1"), ("b", "12345678901")]
    assert tables.render(rows, right={1}, fixed={1: 10}) == [
        "a           1",
        "b  12345678901",
    ]


def test_the_last_column_unpadded() -> None:
    rows = [("total", "12 EUR"), ("n", "3")]
    assert tables.render(rows, pad_last=False) == ["total  12 EUR", "n      3"]


def test_widths_offset_rule_and_no_rows() -> None:
    assert tables.widths(ROWS) == [7, 7, 4]
    assert tables.widths(ROWS, fixed={2: 9}) == [7, 7, 9]
    assert tables.offset([7, 7, 4], 0) == 0
    assert tables.offset([7, 7, 4], 2) == 18
    assert tables.rule([7, 1, 0]) == "-------  -  "
    assert tables.widths([]) == []
    assert tables.render([]) == []


def test_widths_count_characters_not_bytes() -> None:
    assert tables.render([("€", "é"), ("ab", "c")]) == ["€   é", "ab  c"]


def test_a_live_table_prints_each_row_as_it_comes_then_all_aligned(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """What the benchmarks print: a row per case as it finishes, then the aligned table."""
    table = tables.LiveTable(ROWS[0])
    for row in ROWS[1:]:
        table.add(row)
    table.print_aligned()
    printed = capsys.readouterr().out.splitlines()
    assert printed == ["candles  239  x", "ab  1234567  ", "", *tables.render(ROWS)]


def test_status_table_keeps_its_trailing_spaces() -> None:
    at = datetime(2024, 3, 1, 12, 30, tzinfo=UTC)
    statuses = [
        StreamStatus("candles bitvavo BTC-EUR 1h", 239, at, at, at, 0),
        StreamStatus("fills bitstamp main", 12345, None, None, None, 12),
    ]
    assert format_status(statuses) == (
        "stream                      rows   first             last              "
        "last fetch        gaps\n"
        "candles bitvavo BTC-EUR 1h  239    2024-03-01 12:30  2024-03-01 12:30  "
        "2024-03-01 12:30  0   \n"
        "fills bitstamp main         12345  -                 -                 "
        "-                 12  "
    )


def test_sync_summary_table() -> None:
    results = [
        {
            "stream": "trades bitvavo",
            "rows": {"public_trades": 40, "raw": 0},
            "windows": 2,
            "requests": 3,
            "weight": 15,
            "retries": 1,
            "gaps": ["a"],
        },
        {
            "stream": "candles",
            "rows": {},
            "windows": 10,
            "requests": 1,
            "weight": 1,
            "retries": 0,
            "gaps": [],
        },
    ]
    assert summary_table(results) == (
        "stream          rows              windows  requests  weight  retries  gaps\n"
        "candles         -                 10       1         1       0        0   \n"
        "trades bitvavo  public_trades 40  2        3         15      1        1   \n"
        "total           40                12       4         16      1        1   "
    )


def test_settings_table_is_stripped() -> None:
    rows = [
        SettingRow("data_dir", "/data", "tally.toml"),
        SettingRow("markets", [], "default"),
        SettingRow("bitstamp.api_key", None, ""),
    ]
    assert format_settings(rows) == (
        "key               value   source\n"
        "data_dir          /data   tally.toml\n"
        "markets           (none)  default\n"
        "bitstamp.api_key  -"
    )


def test_doctor_table_puts_a_fix_under_its_detail() -> None:
    report = Report(
        (
            (CheckRow("credentials", "bitstamp", "ok", "set, id abc"), ExitCode.OK),
            (
                CheckRow("clock", "bitvavo", "fail", "off by 9 s", "set the clock"),
                ExitCode.EXCHANGE,
            ),
            (CheckRow("lake", "", "skip", "", "nothing to check"), ExitCode.OK),
        )
    )
    assert doctor_table(report) == (
        "check        subject   status  detail\n"
        "credentials  bitstamp  ok      set, id abc\n"
        "clock        bitvavo   FAIL    off by 9 s\n"
        "                               fix: set the clock\n"
        "lake                   skip\n"
        "                               fix: nothing to check\n"
        f"1 ok, 1 fail, 1 skip: exit {int(ExitCode.EXCHANGE)}"
    )


def test_query_table_right_aligns_numbers_under_a_rule() -> None:
    columns = ["asset", "amount", "n", "note"]
    rows = [
        ["BTC", Decimal("0.000000000000000000"), 1, None],
        ["EUR", Decimal("-12.5"), None, "long note"],
    ]
    assert query_table(columns, rows) == (
        "asset                amount     n  note\n"
        "-----  --------------------  ----  ---------\n"
        "BTC    0.000000000000000000     1  NULL\n"
        "EUR                   -12.5  NULL  long note\n"
        "(2 rows)"
    )
    assert query_table(["x", "y"], []) == "x  y\n-  -\n(0 rows)"


def test_reconciliation_verdicts_right_align_the_amounts() -> None:
    verdicts = [
        Verdict(
            "bitstamp",
            "main",
            "BTC",
            Decimal("1.500000000000000000"),
            Decimal("1.5"),
            Decimal("0E-18"),
            "ok",
            None,
            None,
        ),
        Verdict(
            "bitvavo",
            "main",
            "EUR",
            Decimal("10"),
            Decimal("12.25"),
            Decimal("-2.25"),
            "mismatch",
            "fill 7",
            datetime(2024, 1, 2, 3, 4, 5, tzinfo=UTC),
        ),
    ]
    assert format_verdicts(verdicts) == (
        "exchange  account  asset  reported  computed  difference  status\n"
        "bitstamp  main     BTC         1.5       1.5           0  ok\n"
        "bitvavo   main     EUR          10     12.25       -2.25  "
        "MISMATCH (diverged after fill 7 at 2024-01-02 03:04:05)"
    )
    assert verdicts_markdown(verdicts) == (
        "**1 of 2 balance(s) do not reconcile.**\n"
        "\n"
        "| exchange | account | asset | reported | computed | difference | status |\n"
        "|---|---|---|---:|---:|---:|---|\n"
        "| bitstamp | main | BTC | 1.5 | 1.5 | 0 | ok |\n"
        "| bitvavo | main | EUR | 10 | 12.25 | -2.25 | "
        "MISMATCH (diverged after fill 7 at 2024-01-02 03:04:05) |"
    )
    assert verdict_headline(verdicts[:1]) == "All 1 balances reconcile exactly."
    assert verdicts_markdown([]) == "**Nothing to reconcile: no balance snapshot has landed.**"


def test_summary_export_figures_on_screen() -> None:
    table = Table(
        "s.csv",
        ("figure", "value", "unit", "source", "rule"),
        (
            ("gains", "12.50", "EUR", "", ""),
            ("disposals", "3", "count", "", ""),
            ("over_limit", "no", "yes/no", "", ""),
        ),
    )
    assert summary_lines(Export("summary", "s", (table,))) == [
        "gains       12.50 EUR",
        "disposals   3",
        "over_limit  no",
    ]
