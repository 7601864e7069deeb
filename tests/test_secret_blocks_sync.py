"""A key pair kept in Prefect Secret blocks, end to end against the sandbox, on the session's
Prefect server (`prefect_api`), with no key in the environment.

A sync flow run of Bitvavo's account loads the blocks, signs with them and lands rows; the key
and the secret appear in no flow-run parameter, no log record (captured here, and as the API
keeps them), no result and no file of the data directory. A block that is missing ends the flow
run, `tally sync`'s checks and `tally doctor`'s credentials row with a line naming it; one that
hangs, the checks at their deadline."""

from __future__ import annotations

import dataclasses
import json
import logging
import socket
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from uuid import UUID, uuid4

import pytest
from cli_runner import tally
from prefect_api import PrefectApi
from sandbox_fixtures import sandbox_fixture, world_fixture
from sandbox_stats import grown, requests_by_endpoint

from pipelines import config_file
from pipelines.config import load_settings
from pipelines.datasets import FILLS
from pipelines.lake import Lake
from pipelines.sandbox.server import Sandbox
from pipelines.sandbox_config import sandbox_document
from pipelines.secret_refs import SecretUnavailable

NOW_MS = int(datetime(2024, 3, 31, 12, tzinfo=UTC).timestamp() * 1000)
VARIABLES = ("BITSTAMP_API_KEY", "BITSTAMP_API_SECRET", "BITVAVO_API_KEY", "BITVAVO_API_SECRET")

world = world_fixture(seed=61, days=3, now_ms=NOW_MS)
sandbox = sandbox_fixture()


@pytest.fixture
def no_keys_in_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for variable in VARIABLES:
        monkeypatch.delenv(variable, raising=False)


class _Records(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@pytest.fixture
def every_log_record() -> Iterator[list[logging.LogRecord]]:
    """Every log record made in the test, DEBUG and up, of every logger (those that do not
    propagate too). Prefect's logging is configured first (importing its flows does it, and
    would replace a handler on the root logger put there before)."""
    import pipelines.flows.sync  # noqa: F401

    handler = _Records()
    loggers = [logging.getLogger()] + [
        logger
        for logger in logging.root.manager.loggerDict.values()
        if isinstance(logger, logging.Logger) and not logger.propagate
    ]
    levels = {name: logging.getLogger(name).level for name in ("", "prefect", "pipelines", "httpx")}
    for name in levels:
        logging.getLogger(name).setLevel(logging.DEBUG)
    for logger in loggers:
        logger.addHandler(handler)
    try:
        yield handler.records
    finally:
        for logger in loggers:
            logger.removeHandler(handler)
        for name, level in levels.items():
            logging.getLogger(name).setLevel(level)


def save_blocks(
    sandbox: Sandbox, *, secret: bool = True, exchange: str = "bitvavo"
) -> tuple[str, str]:
    """The exchange's sandbox key (and secret) saved as Secret blocks of names no other test
    uses."""
    from prefect.blocks.system import Secret as SecretBlock
    from pydantic import SecretStr

    names = (f"{exchange}-key-{uuid4().hex[:8]}", f"{exchange}-secret-{uuid4().hex[:8]}")
    served = sandbox.info()[exchange]
    SecretBlock(value=SecretStr(served["key"])).save(names[0])
    if secret:
        SecretBlock(value=SecretStr(served["secret"])).save(names[1])
    return names


def write_config(
    sandbox: Sandbox, directory: Path, blocks: tuple[str, str], exchange: str = "bitvavo"
) -> Path:
    """The sandbox's tally.toml with the exchange's pair named as blocks (no key in the file)."""
    document = sandbox_document(sandbox)
    section = document[exchange]
    del section["api_key"], section["api_secret"]
    section["api_key_block"], section["api_secret_block"] = blocks
    directory.mkdir(parents=True, exist_ok=True)
    return config_file.write_config(directory / "tally.toml", document)


def secrets(sandbox: Sandbox, exchange: str = "bitvavo") -> list[str]:
    served = sandbox.info()[exchange]
    return [served["key"], served["secret"]]


def assert_hidden(text: str, values: list[str]) -> None:
    for value in values:
        for start in range(len(value) - 11):
            assert value[start : start + 12] not in text, "a part of a key or secret shown"


def flow_run_record(flow_run_id: UUID | None) -> tuple[dict[str, Any], list[str], str]:
    """The run's parameters, its log messages and its state's message, as the API keeps them
    (after Prefect's log worker delivered what it held)."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import LogFilter, LogFilterFlowRunId

    from pipelines.flows.prefect_server import drain_workers

    assert flow_run_id is not None
    drain_workers()
    mine = LogFilter(flow_run_id=LogFilterFlowRunId(any_=[flow_run_id]))
    with get_client(sync_client=True) as client:
        run = client.read_flow_run(flow_run_id)
        logs = [log.message for log in client.read_logs(log_filter=mine)]
    assert run.state is not None
    return dict(run.parameters), logs, run.state.message or ""


def test_a_flow_run_signs_with_the_blocks_and_shows_them_nowhere(
    prefect_api: PrefectApi,
    sandbox: Sandbox,
    tmp_path: Path,
    no_keys_in_the_environment: None,
    every_log_record: list[logging.LogRecord],
) -> None:
    from pipelines.flows.sync import sync_flow

    config = write_config(sandbox, tmp_path, save_blocks(sandbox))
    state = sync_flow(str(config), ["bitvavo"], ["account"], return_state=True)
    results = state.result()
    landed = Lake(load_settings(config).lake_dir).scan(FILLS.dataset).collect()
    assert landed.height > 0 and set(landed["exchange"]) == {"bitvavo"}
    assert sum(sum(r["rows"].values()) for r in results) >= landed.height

    values = secrets(sandbox)
    parameters, logs, _ = flow_run_record(state.state_details.flow_run_id)
    assert parameters == {
        "config": str(config),
        "exchanges": ["bitvavo"],
        "what": ["account"],
        **{k: v for k, v in parameters.items() if k not in ("config", "exchanges", "what")},
    }
    assert logs, "the run's logs did not reach the API: nothing checked"
    assert every_log_record, "no log record captured: nothing checked"
    captured = [record.getMessage() + (record.exc_text or "") for record in every_log_record]
    assert_hidden(json.dumps([parameters, logs, captured, results], default=str), values)
    for path in tmp_path.rglob("*"):  # the lake, the warehouse, the rate budget, the logs
        if path.is_file():
            content = path.read_bytes()
            assert not any(value.encode() in content for value in values), path


def test_a_missing_block_ends_the_flow_run_naming_it(
    prefect_api: PrefectApi, sandbox: Sandbox, tmp_path: Path, no_keys_in_the_environment: None
) -> None:
    from pipelines.flows.sync import sync_flow

    key_block, secret_block = save_blocks(sandbox, secret=False)
    config = write_config(sandbox, tmp_path, (key_block, secret_block))
    state = sync_flow(str(config), ["bitvavo"], ["account"], return_state=True)
    assert state.is_failed()
    with pytest.raises(SecretUnavailable) as raised:
        state.result()
    (line,) = raised.value.lines
    assert line == (
        f"Prefect Secret block {secret_block!r} cannot be loaded: not found at {prefect_api.url}"
    )
    _, logs, message = flow_run_record(state.state_details.flow_run_id)
    assert secret_block in message
    assert_hidden(json.dumps([str(raised.value), logs, message]), secrets(sandbox))


def test_tally_sync_and_doctor_name_a_missing_block_before_any_work(
    prefect_api: PrefectApi, sandbox: Sandbox, tmp_path: Path
) -> None:
    key_block, secret_block = save_blocks(sandbox, secret=False)
    write_config(sandbox, tmp_path, (key_block, secret_block))
    env = prefect_api.env()  # no key in it (`clean_env`)
    fix = (
        "save a Secret block of that name on the Prefect server that PREFECT_API_URL names, or "
        "correct api_key_block and api_secret_block under [bitvavo] in tally.toml"
    )
    missing = (
        f"Prefect Secret block {secret_block!r} cannot be loaded: not found at {prefect_api.url}"
    )

    sync = tally("sync", "--exchange", "bitvavo", "--what", "account", cwd=tmp_path, env=env)
    assert sync.returncode == 3, sync.stderr
    assert sync.stderr.splitlines() == [f"tally sync: bitvavo: {missing}; {fix}"]
    assert not (tmp_path / "data" / "lake").exists()

    doctor = tally("doctor", "--json", "--exchange", "bitvavo", cwd=tmp_path, env=env)
    assert doctor.returncode == 3, doctor.stderr
    rows = [
        row
        for row in json.loads(doctor.stdout)["checks"]
        if (row["check"], row["subject"]) == ("credentials", "bitvavo")
    ]
    assert rows == [
        {
            "check": "credentials",
            "subject": "bitvavo",
            "status": "fail",
            "detail": missing,
            "fix": fix,
        }
    ]
    assert_hidden(sync.stdout + sync.stderr + doctor.stdout + doctor.stderr, secrets(sandbox))


@pytest.fixture
def silent_api() -> Iterator[str]:
    """A Prefect API URL whose port takes connections and never answers (a hung server)."""
    with socket.socket() as listening:
        listening.bind(("127.0.0.1", 0))
        listening.listen(8)  # never accepted: a request is sent and waits for ever
        yield f"http://127.0.0.1:{listening.getsockname()[1]}/api"


def test_a_prefect_api_that_hangs_is_told_within_the_checks_deadline(
    prefect_api: PrefectApi, sandbox: Sandbox, tmp_path: Path, silent_api: str
) -> None:
    import prefect.context
    from prefect.settings import PREFECT_API_URL, temporary_settings

    from pipelines.checks.exchange import Deadline, ExchangeProbe, run_steps

    settings = load_settings(write_config(sandbox, tmp_path, ("hung-key", "hung-secret")))
    probe = ExchangeProbe(settings, "bitvavo")
    with (
        temporary_settings(updates={PREFECT_API_URL: silent_api}),
        # the probe's thread reads Prefect's global settings, not this context's
        prefect.context._temporary_global_settings_context(prefect.context.get_settings_context()),
    ):
        run_steps([probe], lambda p: p.credentials(every_read=False), Deadline(1.0))
    assert [dataclasses.astuple(row) for row in probe.snapshot()] == [
        (
            "credentials",
            "bitvavo",
            "fail",
            "no answer within 1 s (loading Prefect Secret block 'hung-key' and Prefect Secret "
            "block 'hung-secret')",
            "check that the Prefect API (PREFECT_API_URL) answers",
        )
    ]


def test_a_missing_block_stops_a_market_data_sync_before_any_request(
    prefect_api: PrefectApi, sandbox: Sandbox, tmp_path: Path
) -> None:
    """Bitstamp's candles need no key, but its rate budget is named by the key: the sync would
    need the blocks, so its checks load them first."""
    from pipelines.checks.preflight import PreflightError, run_preflight

    key_block, secret_block = save_blocks(sandbox, secret=False, exchange="bitstamp")
    config = write_config(sandbox, tmp_path, (key_block, secret_block), exchange="bitstamp")
    before = requests_by_endpoint(sandbox)
    with pytest.raises(PreflightError) as raised:
        run_preflight(load_settings(config), ["bitstamp"], "candles")
    (line,) = raised.value.lines
    assert line.startswith(
        f"bitstamp: Prefect Secret block {secret_block!r} cannot be loaded: not found at "
    )
    assert raised.value.exit_code == 3
    assert grown(before, requests_by_endpoint(sandbox)) == {}
    assert_hidden(line, secrets(sandbox, "bitstamp"))


def test_a_refused_key_from_blocks_is_checked_in_its_blocks(
    prefect_api: PrefectApi, sandbox: Sandbox, tmp_path: Path
) -> None:
    from prefect.blocks.system import Secret as SecretBlock
    from pydantic import SecretStr

    from pipelines.checks.preflight import PreflightError, run_preflight

    key_block, secret_block = save_blocks(sandbox, secret=False)
    SecretBlock(value=SecretStr("f" * 128)).save(secret_block)  # not the sandbox's secret
    config = write_config(sandbox, tmp_path, (key_block, secret_block))
    with pytest.raises(PreflightError) as raised:
        run_preflight(load_settings(config), ["bitvavo"], "account")
    (line,) = raised.value.lines
    assert line.startswith("bitvavo: the API key was refused: ")
    assert line.endswith(
        f"; check the key and secret in Prefect Secret block {key_block!r} and Prefect Secret "
        f"block {secret_block!r}"
    )
    assert_hidden(line, [*secrets(sandbox), "f" * 128])
