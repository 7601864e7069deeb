"""SQL that only reads: what `tally sql` and the notebook helper let through to the warehouse.

    result = read(connection, "select * from reconcile_balances")

The guarded connection (`warehouse.connect`) already refuses files outside the lake, other
databases, extensions and settings. What its settings cannot refuse — a `COPY … TO` or
`EXPORT DATABASE` into the lake it may read, a `CREATE TEMP TABLE`, a table function that changes
state (`checkpoint()`, `enable_logging()`) or runs SQL of its own (`query('…')`) — is refused
here, before anything runs: DuckDB's own parser splits the query into statements, and each must
be a SELECT (DESCRIBE, SHOW, SUMMARIZE, VALUES, FROM-first and the PRAGMAs that only read are
SELECTs to DuckDB), an EXPLAIN of one, or a CALL of a table function that reads. Every table
function a SELECT names, at any depth, must be one that reads. The files it reads are named by
constants or parameters, never computed, and no URL among them has a `..` segment: DuckDB's
`allowed_directories` compares an object URL as text, `s3://bucket/lake/../other` included.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import duckdb

from pipelines.exit_codes import ExitCode, OperatorError

Params = Sequence[object] | Mapping[str, object] | None

# The table functions of DuckDB's built-in extensions that only read (duckdb 1.5.5). Any other —
# checkpoint, force_checkpoint, copy_database, import_database, enable_/disable_logging,
# truncate_duckdb_logs, query, query_table, json_execute_serialized_sql… — is refused.
READERS = frozenset(
    {
        "read_parquet",
        "parquet_scan",
        "parquet_metadata",
        "parquet_file_metadata",
        "parquet_full_metadata",
        "parquet_kv_metadata",
        "parquet_schema",
        "parquet_bloom_probe",
        "read_csv",
        "read_csv_auto",
        "sniff_csv",
        "read_json",
        "read_json_auto",
        "read_json_objects",
        "read_json_objects_auto",
        "read_ndjson",
        "read_ndjson_auto",
        "read_ndjson_objects",
        "read_text",
        "read_blob",
        "glob",
        "json_each",
        "json_tree",
        "range",
        "generate_series",
        "unnest",
        "repeat",
        "repeat_row",
        "summary",
        "histogram",
        "histogram_values",
        "test_all_types",
        "icu_calendar_names",
        "pg_timezone_names",
        # the catalog and the engine, as the read-only PRAGMAs and SHOW ask for them
        "collations",
        "database_list",
        "database_size",
        "functions",
        "metadata_info",
        "platform",
        "show",
        "show_databases",
        "show_tables",
        "show_tables_expanded",
        "storage_info",
        "table_info",
        "user_agent",
        "version",
        "pragma_collations",
        "pragma_database_size",
        "pragma_metadata_info",
        "pragma_platform",
        "pragma_show",
        "pragma_storage_info",
        "pragma_table_info",
        "pragma_user_agent",
        "pragma_version",
    }
)
# duckdb_tables(), duckdb_views(), duckdb_settings()… : the catalog functions all only read
_READER_PREFIX = "duckdb_"
# scalar functions with an effect beyond their result (write_log: DuckDB's log, which may be a file)
WRITING_FUNCTIONS = frozenset({"write_log", "nextval"})

# the table functions whose first argument names files (a path, a glob or a list of them)
_FILE_READERS = ("read_", "parquet_", "sniff_csv", "glob")
# a `..` segment: DuckDB's `allowed_directories` compares an object URL as text, and a store may
# resolve `s3://bucket/lake/../other/x` outside the lake
_DOT_DOT = re.compile(r"(?:^|[/\\])\.\.(?:[/\\]|$)")
_PATH_HINT = "name the lake's files by their paths, without '..' and not computed in the query"
_COMMENT = re.compile(r"\A(?:\s+|--[^\n]*(?:\n|\Z)|/\*.*?\*/)*", re.S)
_EXPLAIN = re.compile(r"explain\s+(?:analy[sz]e\s+)?(?:\([^()]*\)\s*)?(?P<inner>.*)\Z", re.S | re.I)
_CALL = re.compile(r"call\s+(?P<call>.*)\Z", re.S | re.I)
_COPY_FROM = re.compile(r'copy\s+(?:"[^"]*"|[\w.]+)(?:\s*\([^()]*\))?\s+from\s', re.I)
_WORDS = re.compile(r"[a-z_]+(?:\s+[a-z_]+)?", re.I)
_DENIED = re.compile(r'Cannot access (?:file|directory) "(?P<path>[^"]*)"')

_EXPORT_HINT = "use tally export, or the duckdb shell on a copy"
_HINTS = {
    "COPY": _EXPORT_HINT,
    "EXPORT": _EXPORT_HINT,
    "ATTACH": "tally sql reads the warehouse alone; the duckdb shell attaches other databases",
    "DETACH": "tally sql reads the warehouse alone",
    "USE": "tally sql reads the warehouse alone",
    "INSTALL": "tally sql uses the extensions built into DuckDB",
    "LOAD": "tally sql uses the extensions built into DuckDB",
    "UPDATE EXTENSIONS": "tally sql uses the extensions built into DuckDB",
    "SET": "the settings are fixed",
    "RESET": "the settings are fixed",
    "PRAGMA": "the settings are fixed; the PRAGMAs that only read are allowed",
}
_DEFAULT_HINT = "use the duckdb shell on a copy"
_FUNCTION_HINT = "tally sql runs SELECTs that only read"
_PERMISSION_HINT = "tally sql reads the warehouse and its lake alone; use the duckdb shell"


class ReadOnlyError(OperatorError, duckdb.PermissionException):
    """A statement that would write, or reach beyond the warehouse: for `tally` an expected
    failure (exit 2, no traceback), for code that runs SQL a DuckDB error like any other."""

    def __init__(self, refused: str, hint: str) -> None:
        super().__init__(
            f"the warehouse is read-only: {refused} ({hint})", exit_code=ExitCode.USAGE
        )


def read(
    connection: duckdb.DuckDBPyConnection, sql: str, params: Params = None
) -> duckdb.DuckDBPyConnection:
    """Run `sql` on `connection` once every statement in it has been checked to only read;
    DuckDB's permission error for a file outside the lake becomes a `ReadOnlyError` too."""
    try:
        check(connection, sql)  # parsing reads files too: IMPORT DATABASE reads its schema.sql
        _check_parameters(params)
        return connection.execute(sql, params)
    except ReadOnlyError:
        raise
    except duckdb.PermissionException as error:
        raise ReadOnlyError(_outside(error), _PERMISSION_HINT) from error


def check(connection: duckdb.DuckDBPyConnection, sql: str) -> None:
    """Raise `ReadOnlyError` for the first statement of `sql` that does not only read."""
    for statement in connection.extract_statements(sql):
        _check_statement(connection, statement.type, statement.query)


def _check_statement(
    connection: duckdb.DuckDBPyConnection, kind: duckdb.StatementType, text: str
) -> None:
    body = _COMMENT.sub("", text, count=1)
    if kind == duckdb.StatementType.SELECT and body:
        _check_select(connection, body)
    elif kind == duckdb.StatementType.EXPLAIN and (explain := _EXPLAIN.match(body)):
        inner = connection.extract_statements(explain["inner"])
        if len(inner) != 1:
            raise ReadOnlyError("EXPLAIN of more than one statement is refused", _DEFAULT_HINT)
        _check_statement(connection, inner[0].type, inner[0].query)
    elif kind == duckdb.StatementType.CALL and (call := _CALL.match(body)):
        _check_select(connection, f"from {call['call']}")
    elif not body:
        # statements DuckDB makes up itself: a PIVOT without IN (…) first creates an enum type
        raise ReadOnlyError(
            "PIVOT … ON without IN (…) is refused: it creates a type",
            "list the values: PIVOT … ON column IN (…)",
        )
    else:
        keyword = _keyword(kind, body)
        hint = _HINTS.get(keyword, _HINTS.get(keyword.split()[0], _DEFAULT_HINT))
        raise ReadOnlyError(f"{keyword} is refused", hint)


def _check_select(connection: duckdb.DuckDBPyConnection, text: str) -> None:
    row = connection.execute("select json_serialize_sql(?)", [text]).fetchone()
    tree = json.loads(row[0]) if row else {"error": True}
    if tree.get("error"):
        message = tree.get("error_message", "cannot be read")
        raise ReadOnlyError(f"a query DuckDB cannot check is refused: {message}", _DEFAULT_HINT)
    for path in _paths(tree):
        if _climbs(path):
            raise ReadOnlyError("a URL with a '..' segment is refused", _PATH_HINT)
    for table_function, name in _functions(tree):
        if table_function and not (name in READERS or name.startswith(_READER_PREFIX)):
            raise ReadOnlyError(f"the table function {name}() is refused", _FUNCTION_HINT)
        if not table_function and name in WRITING_FUNCTIONS:
            raise ReadOnlyError(f"the function {name}() is refused", _FUNCTION_HINT)


def _functions(node: Any) -> Iterator[tuple[bool, str]]:
    """(is a table function, lower-case name) of every function call in a serialized query."""
    if isinstance(node, dict):
        if node.get("type") == "TABLE_FUNCTION":
            function = node.get("function") or {}
            yield True, str(function.get("function_name", "")).lower()
            # its arguments may call functions too
            yield from _functions(function.get("children", []))
            return
        if node.get("class") == "FUNCTION":
            yield False, str(node.get("function_name", "")).lower()
        for value in node.values():
            yield from _functions(value)
    elif isinstance(node, list):
        for value in node:
            yield from _functions(value)


def _paths(node: Any) -> Iterator[str]:
    """The file paths a serialized query names: tables named by a path (`from 'x.parquet'`)
    and the first argument of the table functions that read files, which must be a constant
    (or a list of them) or a parameter (checked by `_check_parameters`)."""
    if isinstance(node, dict):
        if node.get("type") == "BASE_TABLE":
            yield str(node.get("table_name", ""))
        if node.get("type") == "TABLE_FUNCTION":
            function = node.get("function") or {}
            name = str(function.get("function_name", "")).lower()
            children = function.get("children") or []
            if name.startswith(_FILE_READERS) and children:
                first = children[0]
                if first.get("function_name") == "list_value":
                    items = first.get("children") or []
                else:
                    items = [first]
                for item in items:
                    if item.get("type") == "VALUE_CONSTANT":
                        yield str((item.get("value") or {}).get("value") or "")
                    elif item.get("type") != "VALUE_PARAMETER":
                        raise ReadOnlyError(f"a path computed in {name}() is refused", _PATH_HINT)
        for value in node.values():
            yield from _paths(value)
    elif isinstance(node, list):
        for value in node:
            yield from _paths(value)


def _climbs(path: str) -> bool:
    """Whether `path` is a URL (`s3://…`) with a `..` segment (a local path DuckDB resolves
    itself before it compares it with the lake's directory)."""
    return "://" in path and _DOT_DOT.search(path) is not None


def _check_parameters(params: Params) -> None:
    """A parameter may name a file: no URL among them may have a `..` segment."""
    values: list[object] = list(params.values() if isinstance(params, Mapping) else params or [])
    while values:
        value = values.pop()
        if isinstance(value, str) and _climbs(value):
            raise ReadOnlyError("a parameter with a URL with a '..' segment is refused", _PATH_HINT)
        if isinstance(value, list | tuple):
            values.extend(value)


def _keyword(kind: duckdb.StatementType, body: str) -> str:
    """How the refusal names a statement: its leading words as typed (`COPY … TO`, `ATTACH`,
    `CREATE TABLE`, `SET threads`, `INSTALL httpfs`)."""
    words = _WORDS.match(body)
    if words is None:
        return kind.name
    first, *rest = words.group(0).split()
    first = first.upper()
    if first == "COPY" and kind == duckdb.StatementType.COPY:
        return "COPY … FROM" if _COPY_FROM.match(body) else "COPY … TO"
    if first in {"CREATE", "DROP", "ALTER", "EXPORT", "IMPORT"} or (
        first == "UPDATE" and kind != duckdb.StatementType.UPDATE  # UPDATE EXTENSIONS
    ):
        return " ".join([first, *(word.upper() for word in rest)])
    if first in {"SET", "RESET", "PRAGMA", "INSTALL", "LOAD"}:
        return " ".join([first, *rest])
    return first


def _outside(error: duckdb.PermissionException) -> str:
    path = _DENIED.search(str(error))
    if path is None:
        return str(error).splitlines()[0] if str(error) else type(error).__name__
    return f"{path['path']} is outside the lake, reading it is refused"
