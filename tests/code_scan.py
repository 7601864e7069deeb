"""The string literals that are code, for the tests that prove a layer names no exchange.

A docstring (a string that is a statement of its own) and a comment are prose: they may say
which exchange does what. Every other string literal, f-strings included, is code.
"""

from __future__ import annotations

import io
import token
import tokenize
from collections.abc import Iterator

# On Python 3.12+ an f-string is split into tokens; its literal text is FSTRING_MIDDLE.
_FSTRING_MIDDLE = getattr(token, "FSTRING_MIDDLE", -1)
_STATEMENT_START = (token.NEWLINE, token.INDENT, token.DEDENT)
_PREFIX = "rRbBuUfF"


def code_strings(source: str) -> Iterator[tuple[int, str]]:
    """(line, token text) of each string literal of `source` that is code, not a docstring."""
    previous = token.NEWLINE
    for item in tokenize.generate_tokens(io.StringIO(source).readline):
        is_code = item.type == token.STRING and previous not in _STATEMENT_START
        if is_code or item.type == _FSTRING_MIDDLE:
            yield item.start[0], item.string
        if item.type not in (token.COMMENT, token.NL):
            previous = item.type


def body(literal: str) -> str:
    """The text between a literal's quotes: `f'Bitvavo'` → `Bitvavo`."""
    text = literal.lstrip(_PREFIX)
    quote = text[:3] if text[:3] in ('"""', "'''") else text[:1]
    return text[len(quote) : len(text) - len(quote)] if quote else text
