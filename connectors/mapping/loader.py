"""Reading a mapping file: size cap, ``yaml.safe_load``, pydantic validation, cross-references.

`load_mapping` returns a `LoadedMapping` (the validated `Mapping`, where its files are, its content
hash) or raises `MappingError`, whose problems are ``(key path, reason)`` pairs and whose lines read

    tests/companies/subscription_saas.yaml: tickets.columns.prioirty: unknown field; expected one of ...

Files are resolved relative to the mapping file and must exist; nothing else is read here (the
columns of each source are checked against the data by `connectors.mapping.compile`).
"""

from __future__ import annotations

import difflib
import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from connectors.mapping.schema import BRANCHES, Checks, Mapping, Rule, Section, Source
from models.mapping.fields import SECTION_FIELDS, VOCABULARIES
from models.schema_errors import describe

#: A mapping is a page of YAML; anything larger is not one.
MAX_MAPPING_BYTES = 256 * 1024


class MappingError(ValueError):
    """A mapping file cannot be used. `problems` holds ``(key path, reason)`` pairs."""

    def __init__(self, source: str, problems: list[tuple[str, str]]) -> None:
        self.source = source
        self.problems = problems
        super().__init__("\n".join(self.lines()))

    def lines(self) -> list[str]:
        return [f"{self.source}: {path}: {why}" if path else f"{self.source}: {why}" for path, why in self.problems]


@dataclass(frozen=True)
class LoadedMapping:
    path: Path                # the mapping file (or a stand-in name for text)
    mapping: Mapping
    base_dir: Path            # where relative file paths start
    content_hash: str         # sha256 of the normalized content (comments and layout do not count)

    def file_path(self, source: Source) -> Path:
        """Absolute path of a file source."""
        path = Path(source.file)
        return path if path.is_absolute() else (self.base_dir / path).resolve()


def load_mapping(path: str | Path) -> LoadedMapping:
    """Read and validate a mapping file (see the module docs)."""
    path = Path(path)
    return parse_mapping(read_text(path), source=str(path), base_dir=path.resolve().parent)


def read_document(path: str | Path) -> dict:
    """A mapping file's YAML as a dict, not yet validated as a mapping (a part of one, which
    `connectors.mapping.compose` completes); its problems are `MappingError`s naming the file."""
    return _yaml(read_text(Path(path)), str(path))


def read_text(path: Path) -> str:
    """A mapping file's text; a file that is missing, too large or not UTF-8 is a `MappingError`."""
    name = str(path)
    try:
        size = path.stat().st_size
        if size > MAX_MAPPING_BYTES:
            raise MappingError(name, [("", f"the file is {size:,} bytes; a mapping is at most {MAX_MAPPING_BYTES:,}")])
        text = path.read_bytes().decode("utf-8")
    except FileNotFoundError:
        raise MappingError(name, [("", "file not found")]) from None
    except IsADirectoryError:
        raise MappingError(name, [("", "is a directory, not a mapping file")]) from None
    except UnicodeDecodeError:
        raise MappingError(name, [("", "not UTF-8 text")]) from None
    except OSError as exc:
        raise MappingError(name, [("", f"cannot read the file: {exc.strerror or exc}")]) from None
    return text


def parse_mapping(text: str, *, source: str = "<mapping>", base_dir: Path | None = None,
                  check_files: bool = True) -> LoadedMapping:
    """Validate mapping YAML text; file sources are relative to ``base_dir`` (default: cwd)."""
    if len(text.encode("utf-8")) > MAX_MAPPING_BYTES:
        raise MappingError(source, [("", f"the text is over {MAX_MAPPING_BYTES:,} bytes")])
    data = _yaml(text, source)
    try:
        mapping = Mapping.model_validate(data)
    except ValidationError as exc:
        raise MappingError(source, [_describe(e) for e in exc.errors()]) from None
    base = (base_dir or Path.cwd()).resolve()
    loaded = LoadedMapping(Path(source), mapping, base, _content_hash(mapping))
    problems = cross_reference_problems(mapping)
    if check_files:
        problems += _file_problems(loaded)
    if problems:
        raise MappingError(source, problems)
    return loaded


def _yaml(text: str, source: str) -> dict:
    try:
        if any(isinstance(token, yaml.AliasToken) for token in yaml.scan(text)):
            raise MappingError(source, [("", "YAML aliases (*name) are not allowed in a mapping")])
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise MappingError(source, [(where, f"invalid YAML: {getattr(exc, 'problem', None) or exc}")]) from None
    if not isinstance(data, dict):
        raise MappingError(source, [("", f"a mapping is a YAML mapping of keys, got {type(data).__name__}")])
    return data


def _content_hash(mapping: Mapping) -> str:
    data = mapping.model_dump(mode="json")
    data.pop("checks", None)  # a mapping without checks hashes as it did before they existed
    if overrides := mapping.threshold_overrides():
        data["checks"] = overrides
    normalized = json.dumps(data, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(normalized.encode("utf-8")).hexdigest()


def _location(loc: tuple[Any, ...]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif part in BRANCHES or str(part).startswith("function-"):
            continue  # union branches and validators are not keys
        else:
            out += f".{part}" if out else str(part)
    return out


def _describe(err: dict[str, Any]) -> tuple[str, str]:
    loc = tuple(err["loc"])
    if err["type"] == "extra_forbidden" and len(loc) == 2 and loc[0] == "checks":
        return _location(loc), f"unknown threshold; {_unknown(str(loc[1]), Checks.model_fields)}"
    return describe(err, _location(loc), show_input=lambda value: None if isinstance(value, dict) else repr(value))


def _one_of(values: Any) -> str:
    return "expected one of " + ", ".join(sorted(map(str, values)))


def _unknown(name: str, known: Any) -> str:
    close = difflib.get_close_matches(name, list(known), n=1)
    return (f"did you mean {close[0]!r}? " if close else "") + _one_of(known)


def cross_reference_problems(mapping: Mapping) -> list[tuple[str, str]]:
    """Problems between keys that the schema alone cannot see, with their key paths."""
    problems: list[tuple[str, str]] = []
    sections = mapping.sections()
    if "subscriptions" not in sections and "renewals" not in sections:
        problems.append(("", "a mapping needs a subscriptions or a renewals section (the renewal terms and their outcomes)"))
    for name, section in sections.items():
        if isinstance(section.source, str) and section.source not in mapping.sources:
            known = mapping.sources or {"(none defined under sources)": None}
            problems.append((f"{name}.source", f"unknown source {section.source!r}; {_unknown(section.source, known)}"))
        problems += _column_problems(name, section, has_subscriptions="subscriptions" in sections)
    usage = mapping.usage
    if usage is not None:
        mapped = set(usage.columns)
        needs = {"user": ("user_id",), "subscription": ("subscription_id",), "account": ("account_id",)}[usage.grain]
        for field in needs:
            if field not in mapped:
                problems.append((f"usage.columns.{field}", f"required for grain {usage.grain}"))
        if usage.grain == "user" and not ({"account_id", "subscription_id"} & mapped):
            problems.append(("usage.columns", "grain user needs account_id or subscription_id"))
        if "subscription_id" in mapped and (mapping.subscriptions is None or "subscription_id" not in mapping.subscriptions.columns):
            problems.append(("usage.columns.subscription_id",
                             "usage by subscription needs subscriptions.columns.subscription_id to find the account"))
        if not (usage.features.core.empty and usage.features.advanced.empty) and "feature" not in mapped:
            problems.append(("usage.features", "feature groups need usage.columns.feature"))
    return problems


def _column_problems(name: str, section: Section, *, has_subscriptions: bool) -> list[tuple[str, str]]:
    fields = SECTION_FIELDS[name]
    problems: list[tuple[str, str]] = []
    for key, rule in section.columns.items():
        where = f"{name}.columns.{key}"
        if key not in fields:
            problems.append((where, f"unknown field; {_unknown(key, fields)}"))
            continue
        problems += _rule_problems(where, name, key, rule, section)
    required = {f.name for f in fields.values() if f.required}
    if name == "accounts" and not has_subscriptions:
        required |= {"arr", "seats", "created_at"}
    for key in sorted(required - set(section.columns)):
        why = "required"
        if name == "accounts" and key in ("arr", "seats", "created_at"):
            why = "required (without a subscriptions section nothing else provides it)"
        problems.append((f"{name}.columns.{key}", why))
    if name == "subscriptions" and not ({"arr", "mrr"} & set(section.columns)):
        problems.append(("subscriptions.columns.arr", "required: map arr (or mrr, and ARR is 12 x MRR)"))
    return problems


def _rule_problems(where: str, section_name: str, key: str, rule: Rule, section: Section) -> list[tuple[str, str]]:
    field = SECTION_FIELDS[section_name][key]
    problems: list[tuple[str, str]] = []
    if field.kind != "datetime":
        for attr in ("after", "format", "day_first", "timezone"):
            if getattr(rule, attr) is not None:
                problems.append((f"{where}.{attr}", f"only for date fields; {key} is {field.kind}"))
    elif rule.after is not None:
        other = section.columns.get(rule.after)
        if rule.after not in SECTION_FIELDS[section_name] or SECTION_FIELDS[section_name][rule.after].kind != "datetime":
            problems.append((f"{where}.after", f"{rule.after!r} is not a date field of {section_name}"))
        elif other is None:
            problems.append((f"{where}.after", f"{section_name}.columns.{rule.after} is not mapped"))
        elif other.after is not None or rule.after == key:
            problems.append((f"{where}.after", f"{rule.after!r} is itself a duration after another field"))
    vocabulary = VOCABULARIES.get((section_name, key))
    targets = [*(rule.values or {}).values()]
    if rule.has_otherwise:
        targets.append(rule.otherwise)
    if rule.default is not None:
        targets.append(rule.default)
    if vocabulary:
        bad = sorted({str(v) for v in targets if v is not None and v not in vocabulary})
        if bad:
            problems.append((f"{where}.values", f"{', '.join(map(repr, bad))} not canonical; {_one_of(vocabulary)}"))
    elif field.kind == "bool":
        bad = sorted({repr(v) for v in targets if v is not None and not isinstance(v, bool)})
        if bad:
            problems.append((f"{where}.values", f"{', '.join(bad)} not a boolean; use true or false"))
    return problems


def _file_problems(loaded: LoadedMapping) -> list[tuple[str, str]]:
    problems = []
    mapping = loaded.mapping
    named = {f"sources.{k}": s for k, s in mapping.sources.items()}
    inline = {f"{n}.source": s.source for n, s in mapping.sections().items() if isinstance(s.source, Source)}
    for where, source in {**named, **inline}.items():
        if source.file is None:
            continue
        path = loaded.file_path(source)
        if not path.exists():
            problems.append((f"{where}.file", f"file not found: {path}"))
        elif not path.is_file():
            problems.append((f"{where}.file", f"not a file: {path}"))
    return problems
