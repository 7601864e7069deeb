"""The notebooks, executed headless against a demo lake, and the helper they read it with.

The demo lake is built once per session (`pipelines.demo.run_demo`, in a child process so that
Prefect's settings stay out of this one; its flow runs on the session's Prefect server,
`prefect_api`, as on a user's own). Each notebook runs once in a `python3` kernel of this
interpreter, its `DATA_DIR` injected after the cell tagged `parameters`; a cell appended to the
in-memory copy prints the `RESULTS` it computed, which the tests compare with queries of their
own.
"""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from collections.abc import Iterable, Iterator
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal, localcontext
from pathlib import Path
from typing import Any

import duckdb
import nbformat
import polars as pl
import pytest
from jupyter_client.kernelspec import KernelSpecManager
from nbclient import NotebookClient
from prefect_api import PrefectApi

from pipelines.demo import DEMO_NOW
from warehouse.connect import connect
from warehouse.contracts import broken, contracts
from warehouse.costbasis import FIAT_CURRENCIES, compute, events_from_warehouse, holdings
from warehouse.costbasis.prices import PriceBook
from warehouse.notebook import DATA_DIR_VARIABLE, Warehouse, default_data_dir, frame, readable

REPO = Path(__file__).resolve().parents[1]
NOTEBOOKS = REPO / "notebooks"
KERNEL = "python3"
# Figures each notebook draws on the demo lake (market: 2 price/volume, spread, coverage timeline,
# monthly candle coverage; reconciliation: balances, holdings, fees, fee rates, transfers;
# tax_year: gains by month, open lots, income by month, holdings on 1 January).
FIGURES = {"market.ipynb": 5, "reconciliation.ipynb": 5, "tax_year.ipynb": 4}
# The demo's last full year: tax_year.ipynb's default YEAR (and the year the demo exports).
DEMO_YEAR = DEMO_NOW.year - 1

REPORT = """
import json as _json, sys as _sys
print(_json.dumps({"prefix": _sys.prefix, "results": RESULTS}, default=str))
"""

BUILD_DEMO = """
import sys
from pathlib import Path
from pipelines.demo import run_demo
sys.exit(run_demo(Path(sys.argv[1])))
"""


class Run:
    """One executed notebook: its cells with outputs, and what it reported."""

    def __init__(self, notebook: nbformat.NotebookNode, report: dict[str, Any]) -> None:
        self.notebook = notebook
        self.prefix: str = report["prefix"]
        self.results: dict[str, Any] = report["results"]

    def images(self) -> int:
        return sum(
            "image/png" in output.get("data", {})
            for cell in self.notebook.cells
            if cell.cell_type == "code"
            for output in cell.outputs
        )


@pytest.fixture(scope="session")
def demo_data(prefect_api: PrefectApi, tmp_path_factory: pytest.TempPathFactory) -> Path:
    data = tmp_path_factory.mktemp("notebook-demo") / "data"
    # the child keeps Prefect's home in the data directory, whatever this environment says
    environment = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
    environment["PREFECT_API_URL"] = prefect_api.url
    done = subprocess.run(
        [sys.executable, "-c", BUILD_DEMO, str(data)],
        cwd=data.parent,
        env=environment,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    # The exit code also judges later steps of the demo (exports…): what the notebooks need is
    # the warehouse; the tests below judge the reconciliation themselves.
    output = f"{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    assert (data / "warehouse.duckdb").is_file(), f"exit {done.returncode}, no warehouse:\n{output}"
    return data


@pytest.fixture(scope="session")
def warehouse(demo_data: Path) -> Iterator[duckdb.DuckDBPyConnection]:
    with connect(demo_data) as connection:
        yield connection


def execute(name: str, data_dir: Path) -> Run:
    notebook = nbformat.read(NOTEBOOKS / name, as_version=4)
    parameters = _parameter_cell(notebook)
    injected = nbformat.v4.new_code_cell(f"DATA_DIR = {str(data_dir)!r}")
    injected.metadata["tags"] = ["injected-parameters"]
    notebook.cells.insert(notebook.cells.index(parameters) + 1, injected)
    notebook.cells.append(nbformat.v4.new_code_cell(REPORT))
    client = NotebookClient(
        notebook,
        kernel_name=KERNEL,
        timeout=180,
        resources={"metadata": {"path": str(NOTEBOOKS)}},  # run where a person opens it
    )
    client.execute()
    printed = "".join(
        output.get("text", "")
        for output in notebook.cells[-1].outputs
        if output.output_type == "stream"
    )
    return Run(notebook, json.loads(printed))


@pytest.fixture(scope="session")
def market(demo_data: Path) -> Run:
    return execute("market.ipynb", demo_data)


@pytest.fixture(scope="session")
def reconciliation(demo_data: Path) -> Run:
    return execute("reconciliation.ipynb", demo_data)


@pytest.fixture(scope="session")
def tax_year(demo_data: Path) -> Run:
    return execute("tax_year.ipynb", demo_data)


def _parameter_cell(notebook: nbformat.NotebookNode) -> nbformat.NotebookNode:
    tagged = [c for c in notebook.cells if "parameters" in c.metadata.get("tags", [])]
    assert len(tagged) == 1, "exactly one cell is tagged `parameters`"
    return tagged[0]


def _rows(connection: duckdb.DuckDBPyConnection, sql: str) -> list[tuple[Any, ...]]:
    return connection.execute(sql).fetchall()


# --- the notebooks as committed -------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(FIGURES))
def test_notebook_is_saved_clean_with_one_parameters_cell(name: str) -> None:
    notebook = nbformat.read(NOTEBOOKS / name, as_version=4)
    nbformat.validate(notebook)
    assert notebook.metadata["kernelspec"]["name"] == KERNEL
    code = [cell for cell in notebook.cells if cell.cell_type == "code"]
    assert all(cell.outputs == [] and cell.execution_count is None for cell in code)
    parameters = _parameter_cell(notebook)
    assert parameters is code[0], "the parameters come first"
    assert "DATA_DIR = None" in parameters.source


def test_python3_kernel_is_this_interpreter() -> None:
    spec = KernelSpecManager().get_kernel_spec(KERNEL)
    # jupyter_client runs a spec whose argv starts with "python" with sys.executable
    assert spec.argv[0] in {"python", sys.executable}, spec.argv


@pytest.mark.parametrize("name", sorted(FIGURES))
def test_notebook_runs_in_this_venv_and_draws_its_figures(
    name: str, request: pytest.FixtureRequest
) -> None:
    run: Run = request.getfixturevalue(name.removesuffix(".ipynb"))  # its session fixture
    assert Path(run.prefix).resolve() == Path(sys.prefix).resolve()
    assert run.results["figures"] == run.images()
    assert run.images() >= FIGURES[name] >= 3


# --- market.ipynb -----------------------------------------------------------------------------


def test_market_lists_the_markets_of_each_exchange(
    market: Run, warehouse: duckdb.DuckDBPyConnection
) -> None:
    expected = dict(
        _rows(
            warehouse,
            "select exchange, list(distinct market order by market) from candles group by all",
        )
    )
    assert market.results["markets"] == expected
    assert market.results["shared_markets"] == sorted(
        set(expected["bitstamp"]) & set(expected["bitvavo"])
    )
    assert "BTC-EUR" in market.results["shared_markets"]  # the demo syncs it on both


def test_market_spread_statistics_match_an_independent_query(
    market: Run, warehouse: duckdb.DuckDBPyConnection
) -> None:
    rows = _rows(
        warehouse,
        """
        select
            s.market,
            count(*),
            count(*) filter (where v.close > s.close),
            count(*) filter (where v.close < s.close),
            sum(v.close - s.close),
            sum(abs(v.close - s.close)),
            min(v.close - s.close),
            max(v.close - s.close),
            avg((v.close - s.close)::double / s.close::double) * 10000,
            avg(abs((v.close - s.close)::double / s.close::double)) * 10000
        from candles as s
        inner join candles as v
            on v.market = s.market and v.interval = s.interval and v.open_time = s.open_time
        where s.exchange = 'bitstamp' and v.exchange = 'bitvavo' and s.interval = '1h'
            and s.volume > 0 and v.volume > 0
        group by s.market
        """,
    )
    spread = market.results["spread"]
    assert sorted(spread) == sorted(row[0] for row in rows)
    for name, hours, higher, lower, total, total_abs, low, high, mean, mean_abs in rows:
        got = spread[name]
        assert hours > 1000, name
        assert (got["hours"], got["bitvavo_higher"], got["bitstamp_higher"]) == (
            hours,
            higher,
            lower,
        )
        assert Decimal(got["spread_sum"]) == total
        assert Decimal(got["spread_abs_sum"]) == total_abs
        assert (Decimal(got["spread_min"]), Decimal(got["spread_max"])) == (low, high)
        assert got["mean_bps"] == pytest.approx(mean, rel=1e-9, abs=1e-12)
        assert got["mean_abs_bps"] == pytest.approx(mean_abs, rel=1e-9)
        assert got["mean_abs_bps"] > 0


def test_market_volumes_and_coverage_match_the_views(
    market: Run, warehouse: duckdb.DuckDBPyConnection
) -> None:
    volume: dict[str, dict[str, Decimal]] = {}
    for exchange, name, total in _rows(
        warehouse,
        "select exchange, market, sum(volume) from candles where interval = '1d' group by all",
    ):
        volume.setdefault(exchange, {})[name] = total
    got = {
        exchange: {name: Decimal(text) for name, text in markets.items()}
        for exchange, markets in market.results["volume"].items()
    }
    assert got == volume

    [(streams, gaps)] = _rows(
        warehouse,
        """
        select count(distinct stream), count(gap_start)
        from coverage
        where dataset in ('candles', 'public_trades')
        """,
    )
    assert (market.results["streams"], market.results["gaps"]) == (streams, gaps)
    assert streams > 0
    hours = dict(
        _rows(
            warehouse,
            "select exchange || ' ' || market, count(*) from candles where interval = '1h' "
            "group by all",
        )
    )
    assert market.results["candle_hours"] == hours


# --- reconciliation.ipynb ---------------------------------------------------------------------


def test_reconciliation_finds_every_balance_reconciled(
    reconciliation: Run, warehouse: duckdb.DuckDBPyConnection
) -> None:
    [(balances, mismatches, ledger_rows)] = _rows(
        warehouse,
        """
        select count(*), count(*) filter (where status <> 'ok'),
            (select count(*) from balances_computed)
        from reconcile_balances
        """,
    )
    results = reconciliation.results
    assert results["mismatches"] == 0 == mismatches
    assert results["mismatched"] == []
    assert results["balances"] == balances > 0
    assert results["ledger_rows"] == ledger_rows


def test_reconciliation_fees_total_the_fees_view(
    reconciliation: Run, warehouse: duckdb.DuckDBPyConnection
) -> None:
    [(total, legs, unvalued)] = _rows(
        warehouse, "select sum(value), sum(fees), sum(unvalued) from fees"
    )
    results = reconciliation.results
    assert Decimal(results["fees_eur"]) == total
    assert total > 0
    assert (results["fee_legs"], results["fees_unvalued"]) == (legs, unvalued)


def test_reconciliation_fill_checks_and_transfers_match_the_views(
    reconciliation: Run, warehouse: duckdb.DuckDBPyConnection
) -> None:
    results = reconciliation.results
    checks = {
        f"{exchange} {check}": fills
        for exchange, check, fills in _rows(
            warehouse, "select exchange, fee_check, count(*) from fill_checks group by all"
        )
    }
    assert results["fee_checks"] == checks
    [(fills, problems)] = _rows(
        warehouse, "select count(*), count(*) filter (where status <> 'ok') from fill_checks"
    )
    assert (results["fills_checked"], results["fill_problems"]) == (fills, problems)

    [(matched, unmatched, longest)] = _rows(
        warehouse,
        """
        select count(*) filter (where status = 'matched'),
            count(*) filter (where status <> 'matched'),
            max(in_transit)
        from internal_transfers
        """,
    )
    assert results["transfers_matched"] == matched > 0
    assert results["transfers_unmatched"] == unmatched
    assert results["max_in_transit_seconds"] == longest.total_seconds()


# --- tax_year.ipynb ---------------------------------------------------------------------------


def _exact_sum(values: Iterable[Decimal]) -> Decimal:
    with localcontext() as context:
        context.prec = 200  # the default 28 digits would round these sums
        return sum(values, Decimal(0))


def test_tax_year_is_the_engines_year(tax_year: Run, warehouse: duckdb.DuckDBPyConnection) -> None:
    """Default year, fifo, pooled: gains, income and new-year holdings as the engine has them."""
    prices = PriceBook.load(warehouse, "EUR")  # read once, for the events and the holdings
    result = compute(events_from_warehouse(warehouse, loaded=prices), method="fifo", lots="pooled")
    gains = [g for g in result.gains if g.date.year == DEMO_YEAR]
    income = [i for i in result.income if i.date.year == DEMO_YEAR]
    held = holdings(warehouse, date(DEMO_YEAR, 1, 1), "EUR", prices=prices.fresh())
    got = tax_year.results
    assert (got["year"], got["method"], got["lots"]) == (DEMO_YEAR, "fifo", "pooled")
    assert got["disposals"] == len(gains) > 100
    assert Decimal(got["total_gain"]) == _exact_sum(g.gain for g in gains)
    assert got["total_gain"] == format(Decimal(got["total_gain"]), "f")  # plain digits, exact
    by_asset: dict[str, list[Decimal]] = {}
    for g in gains:
        by_asset.setdefault(g.asset, []).append(g.gain)
    assert {asset: Decimal(text) for asset, text in got["gain_by_asset"].items()} == {
        asset: _exact_sum(values) for asset, values in by_asset.items()
    }
    assert got["rewards"] == len(income) > 50
    assert Decimal(got["income_value"]) == _exact_sum(i.value for i in income) > 0
    assert got["holdings_day"] == f"{DEMO_YEAR}-01-01"
    assert Decimal(got["holdings_value"]) == _exact_sum(h.value for h in held) > 0
    # the lots open at the year's end hold exactly the ledger's token balances then
    year_end = datetime(DEMO_YEAR + 1, 1, 1, tzinfo=UTC)
    balances = {
        asset: quantity
        for asset, quantity in warehouse.execute(
            "select asset, sum(amount) from ledger where executed_at < ? and kind <> 'staking' "
            "and asset <> '?' group by all having sum(amount) <> 0",
            [year_end],
        ).fetchall()
        if asset not in FIAT_CURRENCIES
    }
    lots = {asset: Decimal(lot["quantity"]) for asset, lot in got["open_lots"].items()}
    assert lots == balances
    assert balances


def test_tax_year_shows_what_tally_export_wrote(tax_year: Run, demo_data: Path) -> None:
    """The demo ran `tally export` for the same year, method and lots: the same numbers."""

    def column(pattern: str, name: str) -> list[Decimal]:
        [path] = (demo_data / "exports").glob(pattern)
        with path.open(newline="", encoding="utf-8") as file:
            return [Decimal(row[name]) for row in csv.DictReader(file)]

    got = tax_year.results
    gains = column(f"gains-{DEMO_YEAR}-fifo-EUR.csv", "gain")
    assert got["disposals"] == len(gains)
    assert Decimal(got["total_gain"]) == _exact_sum(gains)
    assert Decimal(got["income_value"]) == _exact_sum(column(f"income-{DEMO_YEAR}-*.csv", "value"))
    held = column(f"holdings-{DEMO_YEAR}-01-01-EUR.csv", "value")
    assert Decimal(got["holdings_value"]) == _exact_sum(held)


# --- warehouse/notebook.py --------------------------------------------------------------------


def test_every_model_of_the_demo_warehouse_keeps_its_contract(
    warehouse: duckdb.DuckDBPyConnection,
) -> None:
    """`sql/models.toml`'s keys and not-null columns, and no float, on the demo's data."""
    declared = contracts()
    models = warehouse.execute(
        "select table_name from information_schema.tables where table_schema = 'main'"
    ).fetchall()
    assert {name for (name,) in models} <= set(declared)
    assert [problem for c in declared.values() for problem in broken(warehouse, c)] == []
    counts = {
        name: warehouse.execute(f"select count(*) from {name}").fetchone()
        for name in ("ledger", "fills", "fill_checks", "fees", "prices", "reconcile_balances")
    }
    assert all(count and count[0] > 0 for count in counts.values()), counts


def test_warehouse_frames_keep_decimals_and_durations_and_are_read_only(demo_data: Path) -> None:
    with Warehouse(demo_data) as wh:
        transfers = wh.frame(
            "select withdrawn, in_transit from internal_transfers where status = ?", ["matched"]
        )
        assert transfers.schema["withdrawn"] == pl.Decimal(38, 18)
        assert transfers.schema["in_transit"] == pl.Duration("us")
        with connect(demo_data) as connection:
            expected = connection.execute(
                "select withdrawn, in_transit from internal_transfers where status = 'matched'"
            ).fetchall()
        assert sorted(transfers.rows()) == sorted(expected)
        assert "reconcile_balances" in wh.views()
        # fill_checks: thousands of rows of decimals, for a fraction of what the fees view costs
        assert wh.value("select count(*) from fill_checks") == len(
            frame("from fill_checks", data_dir=demo_data)
        )
        with pytest.raises(duckdb.Error):
            wh.frame("create table scribble as select 1 as x")
    with pytest.raises(RuntimeError):
        wh.frame("select 1")


def test_intervals_with_months_and_nulls_become_durations(demo_data: Path) -> None:
    with Warehouse(demo_data) as wh:
        got = wh.frame(
            "select * from (values (interval '1 month 2 days 3 microseconds'), (null),"
            " (- interval 90 minutes)) as t(i)"
        )
    # a month counts 30 days, as DuckDB's own epoch() does
    assert got["i"].to_list() == [
        timedelta(days=32, microseconds=3),
        None,
        timedelta(minutes=-90),
    ]


def test_readable_writes_decimals_as_their_shortest_exact_text() -> None:
    table = pl.DataFrame(
        {
            "amount": [Decimal("100"), Decimal("0.026766300"), Decimal("-138.5"), None],
            "name": ["a", "b", "c", "d"],
        },
        schema={"amount": pl.Decimal(38, 18), "name": pl.String},
    )
    assert readable(table)["amount"].to_list() == ["100", "0.0267663", "-138.5", None]
    assert readable(table)["name"].to_list() == table["name"].to_list()


def test_default_data_dir_resolution(tmp_path: Path) -> None:
    project = tmp_path / "project"
    (project / "notebooks").mkdir(parents=True)
    (project / "pyproject.toml").write_text("")
    environ: dict[str, str] = {}
    # a notebook opened in notebooks/ reads the project's ./data
    assert default_data_dir(project / "notebooks", environ=environ) == project / "data"
    # a tally.toml says where the data lives (relative to itself)
    (project / "tally.toml").write_text('data_dir = "elsewhere/lake-data"\n')
    assert (
        default_data_dir(project / "notebooks", environ=environ)
        == project / "elsewhere" / "lake-data"
    )
    # the environment wins over both
    chosen = tmp_path / "chosen"
    assert default_data_dir(project, environ={DATA_DIR_VARIABLE: str(chosen)}) == chosen
    # a built warehouse in data/ marks the project too
    loose = tmp_path / "loose"
    (loose / "data").mkdir(parents=True)
    (loose / "data" / "warehouse.duckdb").write_text("")
    (loose / "analysis" / "deeper").mkdir(parents=True)
    assert default_data_dir(loose / "analysis" / "deeper", environ=environ) == loose / "data"


def test_default_data_dir_falls_back_to_the_starting_directory(tmp_path: Path) -> None:
    markers = ("tally.toml", "pyproject.toml", "data/warehouse.duckdb")
    if any((parent / marker).exists() for parent in tmp_path.parents for marker in markers):
        pytest.skip("a directory above the temporary directory looks like a project")
    assert default_data_dir(tmp_path, environ={}) == tmp_path / "data"
