"""`tally sandbox` as a user runs it: a process that serves until SIGTERM."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests
from test_sandbox_helpers import loads

from pipelines.config import load_settings

REPO = Path(__file__).resolve().parents[1]


def test_tally_sandbox_serves_until_sigterm_and_writes_info_and_config(tmp_path: Path):
    info_file = tmp_path / "info.json"
    config_file = tmp_path / "tally.toml"
    command = [
        sys.executable,
        "-m",
        "pipelines.cli",
        "sandbox",
        "--seed",
        "3",
        "--days",
        "7",
        "--now",
        "2024-03-31T00:00:00Z",
        "--rate-scale",
        "0.5",
        "--info",
        str(info_file),
        "--write-config",
        str(config_file),
        "--variant",
        "bitvavo-trades-end=exclusive",
    ]
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    process = subprocess.Popen(
        command, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env
    )
    try:
        deadline = time.monotonic() + 60
        while not info_file.exists():
            assert process.poll() is None, process.communicate()
            assert time.monotonic() < deadline, "the sandbox did not start"
            time.sleep(0.05)
        assert process.stdout is not None
        printed = json.loads(process.stdout.readline())
        info = json.loads(info_file.read_text())
        assert printed == info
        assert set(info) == {"bitstamp", "bitvavo"}
        for exchange in info.values():
            assert set(exchange) == {"base_url", "key", "secret"}
        assert info["bitvavo"]["base_url"].endswith("/v2")
        assert len(info["bitvavo"]["key"]) == 64

        markets = requests.get(f"{info['bitstamp']['base_url']}/api/v2/markets/", timeout=10)
        assert markets.status_code == 200 and loads(markets.text)
        params: dict[str, str | int] = {"interval": "1d", "limit": 3}
        candles = requests.get(
            f"{info['bitvavo']['base_url']}/BTC-EUR/candles", params=params, timeout=10
        )
        assert candles.status_code == 200
        assert loads(candles.text)[0][0] <= 1_711_843_200_000  # the frozen clock

        # the variant is played: a trade at exactly `end` is left out
        trades_url = f"{info['bitvavo']['base_url']}/BTC-EUR/trades"
        newest = loads(requests.get(trades_url, params={"limit": 1}, timeout=10).text)[0]
        before = loads(
            requests.get(trades_url, params={"end": newest["timestamp"]}, timeout=10).text
        )
        assert before and all(t["timestamp"] < newest["timestamp"] for t in before)

        settings = load_settings(config_file, environ={})
        assert settings.data_dir == (tmp_path / "data").resolve()
        for name in ("bitstamp", "bitvavo"):
            exchange = settings.exchange(name)
            assert exchange.base_url == info[name]["base_url"]
            credentials = exchange.load_credentials()
            assert credentials is not None
            assert credentials.key.reveal() == info[name]["key"]
            assert credentials.secret.reveal() == info[name]["secret"]
            assert exchange.markets
        assert "BTC-EUR" in settings.exchange("bitvavo").markets
        bitstamp = settings.exchange("bitstamp")
        assert bitstamp.options.window_seconds == 300.0  # scaled with the server

        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=15) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


def test_tally_sandbox_rejects_bad_arguments(capsys: pytest.CaptureFixture[str]):
    from pipelines.cli import main

    with pytest.raises(SystemExit) as exit_info:
        main(["sandbox", "--now", "yesterday"])
    assert exit_info.value.code == 2
    assert "not an ISO time" in capsys.readouterr().err
    assert main(["sandbox", "--days", "1", "--fault-kinds", "gremlins", "--faults", "0.1"]) == 2
    assert "unknown fault kinds" in capsys.readouterr().err
    assert main(["sandbox", "--days", "1", "--variant", "bitvavo-history-ids=guess"]) == 2
    assert "bitvavo-history-ids" in capsys.readouterr().err
    assert main(["sandbox", "--days", "1", "--variant", "no-such-point=1"]) == 2
    assert "unknown sandbox variant 'no-such-point'" in capsys.readouterr().err
