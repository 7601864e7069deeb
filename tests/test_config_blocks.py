"""`[exchange] api_key_block` / `api_secret_block`: `load_settings` notes where a key pair is
kept and never asks Prefect; a pair comes from one place (a block named with the environment
variable or the file's value of either half set is refused, naming both, never the value); the
shared rate budget is named the same whether the key came from the environment or a block."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from uuid import uuid4

import pytest
from cli_runner import REPO, clean_env
from prefect_api import PrefectApi

from pipelines.config import ConfigError, kept_in_blocks, load_settings
from pipelines.credentials import CredentialsRef
from pipelines.flows.runtime import Runtime
from pipelines.secret_refs import PrefectSecretBlock

KEY = "Vb61QmTz80NcRw"
SECRET = "Hs27LpXe95KdJy"
BLOCKS = '[bitvavo]\napi_key_block = "bitvavo-key"\napi_secret_block = "bitvavo-secret"\n'


def write(tmp_path: Path, text: str) -> Path:
    tmp_path.mkdir(parents=True, exist_ok=True)
    path = tmp_path / "tally.toml"
    path.write_text(text, encoding="utf-8")
    return path


def problems(path: Path, environ: dict[str, str]) -> tuple[str, ...]:
    with pytest.raises(ConfigError) as raised:
        load_settings(path, environ=environ)
    return raised.value.lines


def test_block_names_make_a_pair_kept_in_prefect(tmp_path: Path) -> None:
    settings = load_settings(write(tmp_path, BLOCKS), environ={})
    bitvavo = settings.exchange("bitvavo")
    assert bitvavo.credentials == CredentialsRef(
        PrefectSecretBlock("bitvavo-key"), PrefectSecretBlock("bitvavo-secret")
    )
    assert kept_in_blocks(settings) == ["bitvavo"]
    assert settings.exchange("bitstamp").credentials is None
    assert settings.sources["[bitvavo] api_key"] == "Prefect Secret block 'bitvavo-key'"
    assert settings.sources["[bitvavo] api_secret_block"] == f"file {tmp_path / 'tally.toml'}"


def test_loading_the_settings_and_tally_config_never_import_prefect(tmp_path: Path) -> None:
    """Nothing is read before a client needs it: Prefect is not even imported."""
    path = write(tmp_path, BLOCKS)
    script = (
        "import json, sys\n"
        "from pipelines.cli import main\n"
        f"code = main(['config', '--json', '--config', {str(path)!r}])\n"
        "print(json.dumps([code, any(m.split('.')[0] == 'prefect' for m in sys.modules)]))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script],
        cwd=REPO,
        env=clean_env(PREFECT_API_URL="http://127.0.0.1:9/api"),
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    *shown, last = done.stdout.splitlines()
    assert json.loads(last) == [0, False], done.stderr
    rows = {row["key"]: row for row in json.loads("\n".join(shown))["settings"]}
    assert rows["[bitvavo] api_key_block"]["value"] == "bitvavo-key"
    assert rows["[bitvavo] api_secret_block"]["value"] == "bitvavo-secret"
    assert rows["[bitvavo] api_key"]["source"] == "Prefect Secret block 'bitvavo-key'"
    assert rows["[bitstamp] api_key_block"]["value"] is None


def test_half_a_pair_of_blocks_is_refused(tmp_path: Path) -> None:
    path = write(tmp_path, '[bitstamp]\napi_secret_block = "stamp-secret"\n')
    assert problems(path, {}) == (
        f"{path}: [bitstamp] api_secret_block is set but api_key_block is not: name the Prefect "
        "Secret blocks of both halves",
    )


@pytest.mark.parametrize("variable", ["BITVAVO_API_KEY", "BITVAVO_API_SECRET"])
def test_a_block_and_an_environment_variable_are_refused_naming_both(
    tmp_path: Path, variable: str
) -> None:
    path = write(tmp_path, BLOCKS)
    (line,) = problems(path, {variable: KEY})
    assert line == (
        f"environment: {variable} is set and [bitvavo] of {path} names Prefect Secret blocks "
        "(api_key_block = 'bitvavo-key', api_secret_block = 'bitvavo-secret'): a key pair comes "
        f"from one place: unset {variable} or remove the block names"
    )
    # the other exchange's variables are its own business
    assert load_settings(path, environ={"BITSTAMP_API_KEY": KEY, "BITSTAMP_API_SECRET": SECRET})


def test_a_block_and_a_value_in_the_file_are_refused_without_the_value(tmp_path: Path) -> None:
    path = write(tmp_path, BLOCKS + f'api_secret = "{SECRET}"\n')
    (line,) = problems(path, {})
    assert line.startswith(f"{path}: [bitvavo] api_secret is set and [bitvavo] names Prefect ")
    assert SECRET not in line


def test_a_block_name_prefect_would_refuse_is_refused(tmp_path: Path) -> None:
    path = write(tmp_path, '[bitvavo]\napi_key_block = "Bitvavo Key"\napi_secret_block = "s"\n')
    (line,) = problems(path, {})
    assert line == (
        f'{path}: [bitvavo] api_key_block = "Bitvavo Key": expected a Prefect block name: '
        "lowercase letters, digits and dashes"
    )


def test_the_shared_rate_budget_is_named_alike_from_a_block_or_the_environment(
    prefect_api: PrefectApi, tmp_path: Path
) -> None:
    from prefect.blocks.system import Secret as SecretBlock
    from pydantic import SecretStr

    names = f"test-{uuid4().hex[:12]}"
    SecretBlock(value=SecretStr(KEY)).save(f"{names}-key")
    SecretBlock(value=SecretStr(SECRET)).save(f"{names}-secret")
    budgets = tmp_path / "budgets"
    common = f'rate_budget_dir = "{budgets}"\n[bitvavo]\n'
    from_blocks = write(
        tmp_path / "blocks",
        common + f'api_key_block = "{names}-key"\napi_secret_block = "{names}-secret"\n',
    )
    from_env = write(tmp_path / "env", common)
    paths = []
    for path, environ in (
        (from_blocks, {}),
        (from_env, {"BITVAVO_API_KEY": KEY, "BITVAVO_API_SECRET": SECRET}),
    ):
        settings = load_settings(path, environ=environ)
        budget = Runtime(settings).shared_budget(settings.exchange("bitvavo"))
        paths.append(budget.path)  # type: ignore[attr-defined]
    assert paths[0] == paths[1]
    assert paths[0].parent == budgets and paths[0].name != "bitvavo-public.json"
    assert KEY not in str(paths[0])
