"""The keys of `tally.toml`, declared once: one pydantic model per table, each key with its type,
default, meaning and the values it allows (each exchange's `[name]` table built from what its
adapter declares, `Exchange.ingestion.config`); and pydantic's complaints turned into one line
per problem, naming the file, the key (`[bitvavo] intervals`) and what is allowed.

The models are strict (no `"5"` for 5, no `true` for 1) and forbid unknown keys; an unknown key
or section is told with the nearest valid name.
"""

from __future__ import annotations

import difflib
import json
import re
from collections.abc import Sequence
from datetime import UTC, date, datetime, time
from typing import Annotated, Any
from urllib.parse import urlsplit

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    create_model,
)

from pipelines.credentials import api_text, env_name
from pipelines.currencies import DEFAULT_REPORTING_CURRENCY, REPORTING_CURRENCIES
from pipelines.database_url import masked_url, url_problem
from pipelines.exchanges.adapter import Exchange
from pipelines.exchanges.registry import EXCHANGES
from pipelines.s3_settings import LakeUrlError, lake_url_text
from pipelines.secret_refs import BLOCK_NAME

MARKET = re.compile(r"[A-Z0-9]+-[A-Z0-9]+(?:-[A-Z0-9]+)?")  # BTC-EUR, BTC-USD-PERP
MEMORY_SIZE = re.compile(r"\d+(?:\.\d+)? ?(?:[KMGT]i?B)")  # as DuckDB's memory_limit takes it
SHOWN_CHARS = 60  # a value longer than this is cut in a message


def key(default: Any, meaning: str, allowed: str, **constraints: Any) -> Any:
    """A key of `tally.toml`: its default, what it does, and the values it takes (for messages,
    `tally config` and the README)."""
    return Field(
        default, description=meaning, json_schema_extra={"allowed": allowed}, **constraints
    )


def _upper(value: object) -> object:
    return value.upper() if isinstance(value, str) else value


def _one_of(allowed: Sequence[str]) -> AfterValidator:
    def check(value: str) -> str:
        if value not in allowed:
            raise ValueError(f"not one of {', '.join(allowed)}")
        return value

    return AfterValidator(check)


def _market(value: str) -> str:
    if not MARKET.fullmatch(value):
        raise ValueError("not BASE-QUOTE")
    return value


def _http_url(value: str) -> str:
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname or " " in value:
        raise ValueError("not an http(s) URL")
    return value.rstrip("/")


def _one_word(value: str) -> str:
    if not api_text(value):
        raise ValueError("has spaces or line breaks")
    return value


def _block_name(value: str) -> str:
    if not re.fullmatch(BLOCK_NAME, value):
        raise ValueError("not a block name")
    return value


def _memory_size(value: str) -> str:
    if not MEMORY_SIZE.fullmatch(value):
        raise ValueError("not a size such as 1GB or 512MB")
    return value.replace(" ", "")


def _lake_url(value: str) -> str:
    try:
        return lake_url_text(value)
    except LakeUrlError as error:
        raise ValueError(str(error)) from None


def _database_url(value: str) -> str:
    problem = url_problem(value)
    if problem:
        raise ValueError(problem)
    return value


def _distinct(values: list[str]) -> list[str]:
    return list(dict.fromkeys(values))


def _aware_time(value: object) -> datetime | None:
    """`now`: a TOML offset date-time or an ISO text with its zone, in UTC."""
    if value is None:
        return None
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            raise ValueError("not an ISO time") from None
    if not isinstance(value, datetime) or value.tzinfo is None:
        raise ValueError("no time zone")
    return value.astimezone(UTC)


Currency = Annotated[str, BeforeValidator(_upper), _one_of(REPORTING_CURRENCIES)]
Market = Annotated[str, BeforeValidator(_upper), AfterValidator(_market)]
Markets = Annotated[list[Market], AfterValidator(_distinct)]
Url = Annotated[str, AfterValidator(_http_url)]
Moment = Annotated[Any, AfterValidator(_aware_time)]
MemorySize = Annotated[str, AfterValidator(_memory_size)]
LakeUrl = Annotated[str | None, AfterValidator(lambda v: None if v is None else _lake_url(v))]
ApiText = Annotated[str, AfterValidator(_one_word)]
BlockName = Annotated[str, AfterValidator(_block_name)]
DatabaseUrlText = Annotated[str, AfterValidator(_database_url)]


def _intervals(allowed: Sequence[str]) -> Any:
    return Annotated[list[Annotated[str, _one_of(allowed)]], AfterValidator(_distinct)]


class _Table(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


def _api_key(exchange: str, half: str) -> Any:
    variable = env_name(exchange, f"api_{half}")
    return key(
        None,
        f"the API {half} (the environment variable {variable} wins; better kept there)",
        "text without spaces or line breaks, as the exchange shows it",
    )


def _api_block(exchange: str, half: str) -> Any:
    other = "secret" if half == "key" else "key"
    return key(
        None,
        f"the Prefect Secret block holding the API {half}, loaded when a client first needs it "
        f"(named with api_{other}_block; then neither {env_name(exchange, f'api_{half}')} nor "
        f"api_{half} may be set)",
        "a Prefect block name: lowercase letters, digits and dashes",
    )


_MARKETS_ALLOWED = "a market spelled BASE-QUOTE, e.g. BTC-EUR"
_URL_ALLOWED = "an http:// or https:// URL"


def _section(exchange: Exchange) -> type[_Table]:
    """The model of `[name]`: the keys every section has, then the exchange's own options."""
    spec = exchange.ingestion.config
    fields: dict[str, Any] = {
        "base_url": (
            Url,
            key(
                spec.base_url,
                f"where {exchange.title}'s API is",
                f"{_URL_ALLOWED}, e.g. {spec.base_url}",
            ),
        ),
        "markets": (Markets, key(list(spec.markets), spec.markets_meaning, _MARKETS_ALLOWED)),
        "intervals": (
            _intervals(spec.intervals),
            key(
                list(spec.default_intervals),
                "candle intervals synced for every market",
                f"one of {', '.join(spec.intervals)}",
            ),
        ),
        "api_key": (ApiText | None, _api_key(exchange.name, "key")),
        "api_secret": (ApiText | None, _api_key(exchange.name, "secret")),
        "api_key_block": (BlockName | None, _api_block(exchange.name, "key")),
        "api_secret_block": (BlockName | None, _api_block(exchange.name, "secret")),
    }
    for option in spec.options:
        fields[option.name] = (
            option.type,
            key(option.default, option.meaning, option.allowed, **option.bounds),
        )
    model: type[_Table] = create_model(
        f"{exchange.title}Section", __base__=_Table, __doc__=f"`[{exchange.name}]`", **fields
    )
    return model


SECTIONS: dict[str, type[_Table]] = {name: _section(e) for name, e in EXCHANGES.items()}


class TopLevel(_Table):
    """The top-level keys of `tally.toml` (`ConfigFile` adds the sections)."""

    data_dir: str = key(
        "data",
        "the lake, warehouse.duckdb, exports and Prefect's state (relative to the file)",
        "a directory as text",
    )
    reporting_currency: Currency = key(
        DEFAULT_REPORTING_CURRENCY,
        "what `tally export` and the notebooks value in unless told (--currency)",
        f"one of {', '.join(REPORTING_CURRENCIES)}",
    )
    now: Moment = key(
        None,
        "a frozen present for every sync (a sandbox's clock); unset: the wall clock",
        "a time with its zone, e.g. 2024-03-31T00:00:00Z",
    )
    public_trades_days: int = key(
        1,
        "how far back the first public-trades sync of a market reaches, in days (Bitstamp "
        "keeps a day at most)",
        "a whole number of days, 1 or more",
        ge=1,
    )
    rate_budget_dir: str | None = key(
        None,
        "where syncs using one key share its rate budget (relative to the file); unset: "
        "<data_dir>/.ratelimit",
        "a directory as text",
    )
    rate_budget_url: DatabaseUrlText | None = key(
        None,
        "a PostgreSQL database where syncs using one key share its rate budget, on every "
        "machine that names it (instead of rate_budget_dir), and where a fan-out's children "
        "lock their streams; the password from PGPASSWORD or ~/.pgpass",
        "a URL postgresql://USER@HOST:PORT/DATABASE",
    )
    candles_reread_minutes: int = key(
        180,
        "a candle read sooner than this after its close is read again (the newest candles "
        "change for a while)",
        "a whole number of minutes, 0 or more",
        ge=0,
    )
    lake_url: LakeUrl = key(
        None,
        "put the lake on S3-compatible storage instead of <data_dir>/lake; endpoint and keys "
        "from the AWS_* variables",
        "s3://bucket/prefix",
    )
    warehouse_memory_limit: MemorySize = key(
        "1GB",
        "the memory `tally warehouse` lets DuckDB use; what does not fit spills to disk",
        "a size, e.g. 1GB or 512MB",
    )


_SECTION_KEYS: dict[str, Any] = {
    name: (model, key(model(), f"the [{name}] section", f"a table: the [{name}] section"))
    for name, model in SECTIONS.items()
}
ConfigFile: type[TopLevel] = create_model(
    "ConfigFile",
    __base__=TopLevel,
    __doc__="The whole of `tally.toml`: the top-level keys and one section per exchange.",
    **_SECTION_KEYS,
)
TOP_LEVEL_KEYS: tuple[str, ...] = tuple(k for k in ConfigFile.model_fields if k not in SECTIONS)
SECRET_KEYS = ("api_key", "api_secret")
# the names of the Prefect Secret blocks holding them (names, not secrets: shown as they are)
SECRET_BLOCK_KEYS = ("api_key_block", "api_secret_block")
URL_KEYS = ("rate_budget_url",)  # a password they may hold is masked in messages


def allowed(section: str | None, name: str) -> str:
    model = SECTIONS[section] if section else ConfigFile
    extra = model.model_fields[name].json_schema_extra
    assert isinstance(extra, dict)
    return str(extra["allowed"])


def meaning(section: str | None, name: str) -> str:
    model = SECTIONS[section] if section else ConfigFile
    return model.model_fields[name].description or ""


def key_name(section: str | None, name: str) -> str:
    """`data_dir`, `[bitvavo] intervals`."""
    return f"[{section}] {name}" if section else name


# --- what is wrong, one line each -------------------------------------------------------------


def problem_lines(file: str, error: ValidationError) -> list[str]:
    """One line per problem of `file` (in the order of the keys above), each naming the key and
    what it allows."""
    lines: list[str] = []
    for item in error.errors(include_url=False):
        line = _problem(file, item["loc"], item["type"], item["input"])
        if line not in lines:
            lines.append(line)
    return lines


def _problem(file: str, loc: tuple[int | str, ...], kind: str, value: object) -> str:
    section: str | None = None
    if len(loc) > 1 and loc[0] in SECTIONS:
        section, loc = str(loc[0]), loc[1:]
    name, rest = str(loc[0]), loc[1:]
    if kind == "extra_forbidden":
        return f"{file}: {unknown_key(section, name, value)}"
    where, rule = key_name(section, name), allowed(section, name)
    if name in SECRET_KEYS:  # never a part of a key or secret, whatever its shape
        return f"{file}: {where} = {hidden(value)}: expected {rule}"
    if name in URL_KEYS:  # a URL's password never shown
        text = masked_url(value) if isinstance(value, str) else None
        problem = url_problem(value) if isinstance(value, str) else None
        said = shown(text) if text is not None else hidden(value)
        return f"{file}: {where} = {said}: {problem + '; ' if problem else ''}expected {rule}"
    if rest and isinstance(rest[0], int):
        return f"{file}: {where} has {shown(value)}: expected {rule}"
    if kind == "list_type":
        return f"{file}: {where} = {shown(value)}: expected a list, each {rule}"
    return f"{file}: {where} = {shown(value)}: expected {rule}"


def unknown_key(section: str | None, name: str, value: object) -> str:
    """`unknown key 'reporting_curency' (did you mean 'reporting_currency'?)`"""
    if section is None and isinstance(value, dict):
        return f"unknown section [{name}] ({_nearest(name, list(SECTIONS), '[{}]')})"
    where = "" if section is None else f" in [{section}]"
    here = list((SECTIONS[section] if section else ConfigFile).model_fields)
    return f"unknown key {name!r}{where} ({_elsewhere(section, name) or _nearest(name, here)})"


def _elsewhere(section: str | None, name: str) -> str | None:
    """Where a key that is not at home here belongs, if anywhere."""
    if section is not None and name in TOP_LEVEL_KEYS:
        return "a top-level key: put it above the first [section]"
    owners = [s for s, model in SECTIONS.items() if s != section and name in model.model_fields]
    if not owners:
        return None
    tables = " and ".join(f"[{s}]" for s in owners)
    return f"a key of {tables} only" if section else f"a key of {tables}: put it in there"


def _nearest(name: str, candidates: list[str], form: str = "{!r}") -> str:
    close = difflib.get_close_matches(name, candidates, n=1, cutoff=0.6)
    if close:
        return f"did you mean {form.format(close[0])}?"
    return "known: " + ", ".join(form.format(c) for c in candidates)


_KINDS: tuple[tuple[type | tuple[type, ...], str], ...] = (
    (str, "text"),
    (bool, "true or false"),  # before int: a bool is an int
    ((int, float), "a number"),
    ((list, tuple), "a list"),
    (dict, "a table"),
    ((datetime, date, time), "a date or time"),
)


def hidden(value: object) -> str:
    """What kind of value a secret key holds, and nothing of the value itself."""
    kind = next((name for types, name in _KINDS if isinstance(value, types)), "a value")
    return f"({kind}, not shown)"


def shown(value: object) -> str:
    """A value as TOML spells it, cut short when long."""
    text = _toml(value)
    return text if len(text) <= SHOWN_CHARS else text[: SHOWN_CHARS - 1] + "…"


def _toml(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, datetime | date | time):
        return value.isoformat()
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_toml(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{…} (a table)"
    return repr(value)
