"""Rules for the SQL a mapping may contain: single expressions and single SELECT queries.

Derived columns are SQL expressions the warehouse evaluates on each source row (never Python
``eval``); a query source is one SELECT. Neither may carry a second statement or change the
warehouse: `expression_problem` and `query_problem` return why a text is refused (None when it
is acceptable). String literals and quoted identifiers are ignored when looking for keywords, so
``status = 'deleted'`` is fine. Whether the text is valid SQL is the warehouse's call: the
mapping binds every expression against its source before anything is written.
"""

from __future__ import annotations

import re

#: Statements that change the warehouse or its session; refused anywhere in mapping SQL.
FORBIDDEN_KEYWORDS = (
    "alter", "attach", "call", "checkpoint", "comment", "commit", "copy", "create", "deallocate",
    "delete", "detach", "do", "drop", "execute", "export", "grant", "import", "insert", "install",
    "load", "merge", "pragma", "prepare", "reindex", "replace", "reset", "revoke", "rollback",
    "savepoint", "set", "truncate", "update", "upsert", "use", "vacuum",
)
_WORD = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_QUOTED = re.compile(r"'(?:[^']|'')*'|\"(?:[^\"]|\"\")*\"")
MAX_SQL_CHARS = 4_000


def _code_only(text: str) -> str:
    """``text`` with string literals and quoted identifiers blanked out."""
    return _QUOTED.sub(lambda m: " " * len(m.group(0)), text)


def _common_problem(text: str, what: str) -> str | None:
    if not isinstance(text, str) or not text.strip():
        return f"{what} is empty"
    if len(text) > MAX_SQL_CHARS:
        return f"{what} is {len(text):,} characters (at most {MAX_SQL_CHARS:,})"
    code = _code_only(text)
    if code.count("'") or code.count('"'):
        return f"{what} has an unterminated quote"
    if ";" in code:
        return f"must be a single {'expression' if what == 'expression' else 'statement'}: no ';'"
    if "--" in code or "/*" in code:
        return f"{what} may not contain SQL comments"
    for word in _WORD.findall(code):
        if word.lower() in FORBIDDEN_KEYWORDS:
            return f"{what} may not use {word.upper()}: mapping SQL only reads"
    depth = 0
    for char in code:
        depth += {"(": 1, ")": -1}.get(char, 0)
        if depth < 0:
            return f"{what} has unbalanced parentheses"
    if depth:
        return f"{what} has unbalanced parentheses"
    return None


def expression_problem(text: str) -> str | None:
    """Why ``text`` is not acceptable as a derived column's SQL expression (None if it is)."""
    return _common_problem(text, "expression")


def query_problem(text: str) -> str | None:
    """Why ``text`` is not acceptable as a query source (None if it is): one SELECT (or WITH)."""
    problem = _common_problem(text, "query")
    if problem:
        return problem
    first = _WORD.search(_code_only(text))
    if first is None or first.group(0).lower() not in ("select", "with"):
        return "query must start with SELECT or WITH"
    return None


def glob_to_like(pattern: str) -> str:
    """A feature-name glob (``api_*``, ``report_?``) as a SQL LIKE pattern with ``\\`` escapes."""
    out = []
    for char in pattern:
        if char in "%_\\":
            out.append("\\" + char)
        elif char == "*":
            out.append("%")
        elif char == "?":
            out.append("_")
        else:
            out.append(char)
    return "".join(out)
