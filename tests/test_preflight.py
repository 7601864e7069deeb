"""`tally sync` checks before work: a problem ends the run within 10 s, one line each, with a
documented exit code, no traceback, nothing fetched and no Prefect server started.

Run as a user runs it: `python -m pipelines.cli sync` in a directory of its own, without the
exchanges' key variables in its environment, against the sandbox or against loopback sockets
that refuse or never answer. An error that ends a sync once it runs (a permission the key lacks
for one endpoint) is one line and exit 3 as well.
"""

from __future__ import annotations

import re
import socket
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from cli_runner import timed_tally as tally
from prefect_api import PrefectApi
from sandbox_fixtures import sandbox_fixture, world_fixture
from sandbox_stats import grown, requests_by_endpoint

from pipelines import config_file
from pipelines.checks.clock import ClockReading, clock_row
from pipelines.cli import main
from pipelines.config import ExchangeSettings, load_settings
from pipelines.datasets import BITSTAMP_LEDGER
from pipelines.exchanges.registry import get
from pipelines.exit_codes import ExitCode, OperatorError
from pipelines.http import PermissionDeniedError
from pipelines.lake import Lake
from pipelines.sandbox.server import Sandbox, start_sandbox
from pipelines.sandbox.world import World
from pipelines.sandbox_config import sandbox_document

REPO = Path(__file__).resolve().parents[1]
NOW_MS = int(datetime(2024, 3, 31, 12, tzinfo=UTC).timestamp() * 1000)
CONTRACT_S = 10.0  # the bound: every check before work answers within 10 s
MAX_LINES = 5


world = world_fixture(seed=41, days=5, now_ms=NOW_MS)
sandbox = sandbox_fixture()


def lines(text: str) -> list[str]:
    return text.strip().splitlines()


def write_config(sandbox: Sandbox, directory: Path, **changes: dict[str, Any]) -> Path:
    """The sandbox's tally.toml, with each section's keys in `changes` set to their value
    (None: left out)."""
    document = sandbox_document(sandbox)
    for section, values in changes.items():
        for key, value in values.items():
            assert key in document[section], key
            document[section][key] = value
        document[section] = {k: v for k, v in document[section].items() if v is not None}
    return config_file.write_config(directory / "tally.toml", document)


def failed_sync(
    sandbox: Sandbox, directory: Path, *, exit_code: int
) -> tuple[str, str, dict[str, int]]:
    """`tally sync` in `directory`, failing with `exit_code` within the contract in one stderr
    line: that line, the whole stderr, and the requests it made to the sandbox."""
    before = requests_by_endpoint(sandbox)
    done, seconds = tally("sync", cwd=directory)
    assert done.returncode == exit_code, done
    assert seconds <= CONTRACT_S
    (line,) = lines(done.stderr)
    return line, done.stderr, grown(before, requests_by_endpoint(sandbox))


def assert_nothing_started(directory: Path) -> None:
    assert not list(directory.rglob(".prefect")), "a Prefect home was created"
    assert not list(directory.rglob("*.parquet")), "something landed"


# --- no configuration, no keys ------------------------------------------------------------------


def test_sync_in_an_empty_directory_without_keys_says_which_variables_to_set(
    tmp_path: Path,
) -> None:
    done, seconds = tally("sync", cwd=tmp_path)
    assert done.returncode in (2, 3), done
    assert seconds <= CONTRACT_S
    out = lines(done.stderr)
    assert 1 <= len(out) <= MAX_LINES, done.stderr
    assert "Traceback" not in done.stderr + done.stdout
    assert "BITSTAMP_API_KEY" in done.stderr and "BITVAVO_API_KEY" in done.stderr
    assert all(line.startswith("tally sync: ") for line in out), out
    assert list(tmp_path.iterdir()) == [], "nothing is written, not even a data directory"


def test_an_account_sync_without_one_exchanges_keys_names_only_its_variables(
    tmp_path: Path, sandbox: Sandbox
) -> None:
    write_config(sandbox, tmp_path, bitstamp={"api_key": None, "api_secret": None})
    done, _ = tally("sync", "--exchange", "bitstamp", "--what", "account", cwd=tmp_path)
    assert done.returncode == 3, done
    (line,) = lines(done.stderr)
    assert line.startswith("tally sync: bitstamp: no API key and secret")
    assert "BITSTAMP_API_KEY and BITSTAMP_API_SECRET" in line and "BITVAVO" not in line


# --- unreachable exchanges ----------------------------------------------------------------------


@pytest.fixture
def silent_port() -> Iterator[int]:
    """A loopback socket that accepts connections and never answers."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(16)
        yield listener.getsockname()[1]


@pytest.fixture
def closed_port() -> int:
    """A loopback port nothing listens on (bound once, then released)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.mark.parametrize("silent", ["bitstamp", "bitvavo"])
def test_unreachable_base_urls_fail_within_ten_seconds_one_line_each(
    tmp_path: Path, silent_port: int, closed_port: int, silent: str
) -> None:
    urls = {
        "bitstamp": f"http://127.0.0.1:{silent_port if silent == 'bitstamp' else closed_port}",
        "bitvavo": f"http://127.0.0.1:{silent_port if silent == 'bitvavo' else closed_port}/v2",
    }
    config = config_file.config_document(
        **{name: {"base_url": url, "api_key": "k", "api_secret": "s"} for name, url in urls.items()}
    )
    config_file.write_config(tmp_path / "tally.toml", config)
    done, seconds = tally("sync", cwd=tmp_path)
    assert done.returncode == 3, done
    assert seconds <= CONTRACT_S
    out = lines(done.stderr)
    assert [line.split(":")[1].strip() for line in out] == ["bitstamp", "bitvavo"], out
    for line, (name, url) in zip(out, urls.items(), strict=True):
        assert f"tally sync: {name}: {url} does not answer" in line
        assert f"base_url under [{name}]" in line
        assert ("timed out" if name == silent else "connection failed") in line
    assert "Traceback" not in done.stderr + done.stdout
    assert_nothing_started(tmp_path)


# --- markets, keys and clocks against the sandbox ------------------------------------------------


def test_an_unknown_bitstamp_market_fetches_nothing_but_the_market_lists(
    tmp_path: Path, sandbox: Sandbox
) -> None:
    write_config(sandbox, tmp_path, bitstamp={"markets": ["BTC-EUR", "EUR-GBP"]})
    line, _, read = failed_sync(sandbox, tmp_path, exit_code=2)
    assert line.startswith("tally sync: bitstamp: configured market EUR-GBP is not listed")
    assert "GBP-EUR" in line, "its inverse is the closest match"
    assert read == {"bitstamp markets": 1, "bitvavo markets": 1}
    assert_nothing_started(tmp_path)


def test_a_refused_secret_fails_the_sync_naming_the_variable_to_check(
    tmp_path: Path, sandbox: Sandbox
) -> None:
    write_config(sandbox, tmp_path, bitvavo={"api_secret": "0" * 128})
    line, stderr, read = failed_sync(sandbox, tmp_path, exit_code=3)
    assert line.startswith("tally sync: bitvavo: the API key was refused: GET /v2/balance")
    assert "code 309" in line and "check BITVAVO_API_SECRET" in line
    assert "BITVAVO_API_KEY" not in line, "a bad signature is the secret's fault, not the key's"
    assert sandbox.bitvavo.secret not in stderr
    assert set(read) <= {
        "bitstamp markets",
        "bitstamp account_balances",
        "bitvavo markets",
        "bitvavo time",
        "bitvavo balance",
    }, read
    assert_nothing_started(tmp_path)


def test_clocks_beyond_each_exchanges_tolerance_fail_one_line_each(
    tmp_path: Path, world: World
) -> None:
    """Bitstamp refuses timestamps 150 s off, Bitvavo requests outside its 10 s window."""
    with start_sandbox(
        seed=41, world=world, bitstamp_clock_offset_s=400.0, bitvavo_clock_offset_s=-30.0
    ) as skewed:
        write_config(skewed, tmp_path)
        done, seconds = tally("sync", cwd=tmp_path)
    assert done.returncode == 3, done
    assert seconds <= CONTRACT_S
    bitstamp, bitvavo = lines(done.stderr)
    behind = re.match(
        r"tally sync: bitstamp: local clock (\d+\.\d+) s behind the exchange", bitstamp
    )
    ahead = re.match(
        r"tally sync: bitvavo: local clock (\d+\.\d+) s ahead of the exchange", bitvavo
    )
    assert behind and ahead, (bitstamp, bitvavo)
    # Bitstamp's `Date` header tells whole seconds; Bitvavo's `/time` milliseconds
    assert abs(float(behind[1]) - 400) <= 1.5 and abs(float(ahead[1]) - 30) <= 1.5
    assert "within 150 s" in bitstamp and "10 s access window" in bitvavo
    assert all("NTP" in line for line in (bitstamp, bitvavo))
    assert_nothing_started(tmp_path)


# --- once the sync runs ------------------------------------------------------------------------


def test_a_permission_refused_mid_sync_ends_it_in_one_line_with_exit_3(
    prefect_api: PrefectApi, world: World, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The checks before work make one signed read (the balances); the key may make it but not
    `crypto-transactions`, which the account sync reads after the ledger. Run in-process with
    `--debug`, so that the error `tally sync` would print as its one line is raised here."""
    monkeypatch.setenv("PREFECT_LOGGING_LEVEL", "WARNING")  # `tally sync` would set INFO
    with start_sandbox(
        seed=41, world=world, missing_permissions={"bitstamp": {"crypto-transactions"}}
    ) as lacking:
        config = write_config(lacking, tmp_path)
        args = ["sync", "--config", str(config), "--exchange", "bitstamp", "--what", "account"]
        with pytest.raises(OperatorError) as raised:
            main(["--debug", *args])
        url = f"{lacking.bitstamp.base_url}/api/v2/crypto-transactions/"
    assert raised.value.exit_code == ExitCode.EXCHANGE
    # the stream, what happened, the request it failed on, the fix
    assert raised.value.lines == (
        "crypto_transactions bitstamp: POST /api/v2/crypto-transactions/: permission denied "
        f"(code API0003, HTTP 403): No permission found (POST {url}); tick the permission for "
        "POST /api/v2/crypto-transactions/ for this key (Bitstamp: Settings → API access)",
    )
    assert isinstance(raised.value.__cause__, PermissionDeniedError), "--debug shows the cause"
    # the ledger, read before, stays landed: the next sync goes on from it
    ledger = Lake(load_settings(config).lake_dir).scan(BITSTAMP_LEDGER.dataset).collect()
    assert ledger.height == len(world.bitstamp.user_transactions)


# --- the clock rule ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("exchange", "window_ms", "offset_s", "signed", "status"),
    [
        ("bitvavo", 10_000, 4.0, True, "ok"),
        ("bitvavo", 10_000, -6.0, True, "warn"),  # past half the access window
        ("bitvavo", 10_000, 11.0, True, "fail"),  # outside it: every signed request refused
        ("bitvavo", 10_000, 11.0, False, "warn"),  # nothing will be signed
        ("bitvavo", 60_000, 30.0, True, "ok"),  # a wider access_window_ms in tally.toml
        ("bitstamp", 10_000, 80.0, True, "warn"),
        ("bitstamp", 10_000, -151.0, True, "fail"),  # beyond the 150 s timestamp validity
    ],
)
def test_the_clock_tolerance_is_each_exchanges_own_rule(
    exchange: str, window_ms: int, offset_s: float, signed: bool, status: str
) -> None:
    # an access window is an option only of the exchanges that sign with one
    declared = {option.name for option in get(exchange).ingestion.config.options}
    window: dict[str, Any] = {}
    if "access_window_ms" in declared:
        window["access_window_ms"] = window_ms
    config = ExchangeSettings(exchange, "http://127.0.0.1:1", (), (), **window)
    row = clock_row(config, ClockReading(offset_s, 0.01, "test"), signed=signed)
    assert (row.check, row.subject, row.status) == ("clock", exchange, status)
    assert ("NTP" in row.fix) == (status != "ok")
