"""The mapping of the landed systems: their default mappings, and the company's on top.

Each landing source ships a default mapping (`connectors/mapping/sources/<name>.yaml`): a CRM's
maps its tables to ``accounts`` and ``renewals``, a ticketing system's to ``tickets``. Naming the
systems (`RESCUE_SOURCES=hubspot,freshdesk`) is enough to load them: `compose_mapping` joins
the named systems' defaults into one mapping, so ``rescue data load`` (and the ``landed_mapping``
asset of the landing job) needs no file of the company's own.

A company mapping, when given (``rescue data load company.yaml``, or `RESCUE_MAPPING` for the
asset), is the base: every section and source it states is its own, and the defaults fill in
only the sections it leaves out (a company maps its accounts its own way, or adds usage or
subscriptions, and keeps Freshdesk's tickets as they come). Its top-level settings (``name``,
``data_end``, ``dates``, ``checks``) are its own too. Refused, naming what to change:

- two named systems mapping the same section (Salesforce and HubSpot both map ``accounts``):
  name one, or state the section in the company mapping;
- a default's source named like a different source of the company mapping;
- no ``accounts`` section in the end (only ticketing systems named, and no company mapping):
  the tickets need the accounts they belong to.

The result is checked as any mapping file is (`connectors.mapping.loader.parse_mapping`), under
the name ``<company file> + default mappings of hubspot, freshdesk`` in its messages.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml

from connectors.mapping.loader import LoadedMapping, MappingError, load_mapping, parse_mapping, read_document

#: Where each landing source's default mapping lives.
DEFAULTS_DIR = Path(__file__).resolve().parent / "sources"
#: The contract sections a mapping may state (`connectors.mapping.schema.Mapping`).
SECTIONS = ("accounts", "subscriptions", "renewals", "tickets", "usage", "churn")


def default_mapping_path(source: str) -> Path:
    return DEFAULTS_DIR / f"{source}.yaml"


def _read(path: Path, source: str) -> dict[str, Any]:
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise MappingError(source, [("", f"no default mapping for {source} ({path})")]) from None
    if not isinstance(data, dict):
        raise MappingError(str(path), [("", "a mapping is a YAML mapping of keys")])
    return data


def compose_mapping(sources: Sequence[str], company: str | Path | None = None) -> LoadedMapping:
    """The default mappings of `sources` (in order) under the `company` mapping file, checked.
    Raises `MappingError` naming the conflict or the problem (see the module docs)."""
    names = list(dict.fromkeys(sources))
    label = " + ".join([*([str(company)] if company else []), *([f"default mappings of {', '.join(names)}"] if names else [])])
    if not names:
        if company is None:
            raise MappingError("mapping", [("", "no mapping file and no landed system named (RESCUE_SOURCES)")])
        return load_mapping(company)
    if company is not None:
        # a part of a mapping: checked as one only once the defaults complete it
        merged: dict[str, Any] = read_document(company)
        base_dir = Path(company).resolve().parent
    else:
        merged, base_dir = {"version": 1}, Path.cwd()
    merged.setdefault("sources", {})
    owner = {s: str(company) for s in SECTIONS if s in merged}
    problems: list[tuple[str, str]] = []
    for name in names:
        default = _read(default_mapping_path(name), name)
        taken = [s for s in SECTIONS if s in default and s not in merged]
        clashing = [s for s in SECTIONS if s in default and s in owner and owner[s] != str(company)]
        for section in clashing:
            problems.append((section, f"both {owner[section]} and {name} map it: name one of them in RESCUE_SOURCES, "
                                      f"or state {section} in the company's mapping"))
        if not taken:
            continue
        used = {_source_name(default[s]) for s in taken} - {None}
        for src in sorted(used):
            spec = default.get("sources", {}).get(src)
            if src in merged["sources"] and merged["sources"][src] != spec:
                problems.append((f"sources.{src}", f"{name}'s default mapping has a source of this name, and so does "
                                                   f"{company}: rename the company's"))
            elif spec is not None:
                merged["sources"][src] = spec
        for section in taken:
            merged[section] = default[section]
            owner[section] = name
    if "accounts" not in merged:
        problems.append(("accounts", f"none of {', '.join(names)} maps the accounts: name a CRM in RESCUE_SOURCES "
                                     "(salesforce, hubspot) or give a company mapping with an accounts section"))
    if problems:
        raise MappingError(label, problems)
    return parse_mapping(yaml.safe_dump(merged, sort_keys=False), source=label, base_dir=base_dir)


def _source_name(section: Any) -> str | None:
    """The name under ``sources:`` a section reads (None: the section states its source inline)."""
    ref = section.get("source") if isinstance(section, dict) else None
    return ref if isinstance(ref, str) else None
