"""YAML read with limits: a document of a few kilobytes cannot expand into millions of nodes.

YAML aliases (`*name`) repeat a node anchored elsewhere (`&name`), and a chain of them grows
exponentially: ten aliases of ten aliases of ... ("billion laughs") is a 400-byte document with
ten million leaves. A loader that expands them hangs or runs out of memory, and every error
message that repeats the value is as big. `read_yaml` composes the document while counting its
nodes as if every alias were expanded (each anchored node's expanded size is remembered, so the
count costs one step per alias) and refuses it as soon as the count passes `MAX_NODES`, the
nesting passes `MAX_DEPTH`, or an alias refers to a node that contains it. Only then is the
document built into Python values, with PyYAML's safe constructors (no arbitrary objects).

libyaml's parser is used when PyYAML was built with it (fast on a large file), PyYAML's own
otherwise; either way the composition, and so the counting, is this module's.
"""

from __future__ import annotations

from typing import Any

import yaml
from yaml.composer import Composer
from yaml.constructor import SafeConstructor
from yaml.events import AliasEvent
from yaml.resolver import Resolver

try:
    from yaml._yaml import CParser as _Parser
except ImportError:  # PyYAML without libyaml
    _Parser = None

#: Most nodes (scalars, lists, mappings) a document may hold with every alias expanded; the
#: shipped policies have about 900.
MAX_NODES = 50_000
#: Deepest nesting of lists and mappings (the shipped policies nest 7 levels).
MAX_DEPTH = 64


class YamlRefused(ValueError):
    """The text is not YAML, or a YAML document over the limits; `where` is "line L, column C"
    (or empty) and the message says why, on one line."""

    def __init__(self, mark: Any, message: str) -> None:
        self.where = f"line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        super().__init__(message)


class _CountingComposer(Composer):
    """PyYAML's composer, counting expanded nodes and nesting as it goes."""

    def compose_document(self) -> yaml.Node:
        self._expanded = 0
        self._depth = 0
        self._sizes: dict[int, int] = {}  # id(anchored node) -> its expanded size, once composed
        return super().compose_document()

    def compose_node(self, parent: yaml.Node | None, index: Any) -> yaml.Node:
        event = self.peek_event()
        if self.check_event(AliasEvent):
            node = self.anchors.get(event.anchor)
            if node is not None:  # an undefined alias is PyYAML's error
                size = self._sizes.get(id(node))
                if size is None:
                    raise YamlRefused(event.start_mark, f"the alias *{event.anchor} refers to a node that "
                                                        "contains it (a recursive alias)")
                self._count(size, event)
            return super().compose_node(parent, index)
        self._depth += 1
        if self._depth > MAX_DEPTH:
            raise YamlRefused(event.start_mark, f"nested deeper than {MAX_DEPTH} levels (MAX_DEPTH)")
        before = self._expanded
        self._count(1, event)
        node = super().compose_node(parent, index)
        self._depth -= 1
        if event.anchor is not None:
            self._sizes[id(node)] = self._expanded - before
        return node

    def _count(self, nodes: int, event: Any) -> None:
        self._expanded += nodes
        if self._expanded > MAX_NODES:
            raise YamlRefused(event.start_mark, f"the document expands to more than {MAX_NODES:,} YAML nodes "
                                                "(MAX_NODES): too many aliases or entries")


if _Parser is not None:
    class _Loader(_CountingComposer, _Parser, SafeConstructor, Resolver):  # type: ignore[misc, valid-type]
        def __init__(self, stream: str) -> None:
            _Parser.__init__(self, stream)
            Composer.__init__(self)
            SafeConstructor.__init__(self)
            Resolver.__init__(self)
else:
    from yaml.parser import Parser
    from yaml.reader import Reader
    from yaml.scanner import Scanner

    class _Loader(Reader, Scanner, Parser, _CountingComposer, SafeConstructor, Resolver):  # type: ignore[no-redef]
        def __init__(self, stream: str) -> None:
            Reader.__init__(self, stream)
            Scanner.__init__(self)
            Parser.__init__(self)
            Composer.__init__(self)
            SafeConstructor.__init__(self)
            Resolver.__init__(self)


def read_yaml(text: str) -> Any:
    """The single YAML document of `text` as Python values (None when empty). Raises
    YamlRefused: invalid YAML, more than one document, a document over the limits, a tag that
    would build an object, or a value Python will not convert (an integer of thousands of digits)."""
    loader = None
    try:
        loader = _Loader(text)
        return loader.get_single_data()
    except yaml.MarkedYAMLError as exc:
        problem = exc.problem or str(exc)
        if exc.context and not exc.context.startswith("while "):  # "while parsing a ..." adds nothing
            problem = f"{exc.context}, {problem}"
        raise YamlRefused(exc.problem_mark, f"invalid YAML: {problem}") from None
    except yaml.YAMLError as exc:
        raise YamlRefused(None, f"invalid YAML: {exc}") from None
    except RecursionError:
        raise YamlRefused(None, f"invalid YAML: nested deeper than {MAX_DEPTH} levels (MAX_DEPTH)") from None
    except YamlRefused:
        raise
    except (ValueError, TypeError, OverflowError) as exc:  # e.g. an integer of more digits than Python converts
        reason = str(exc).split("; use sys.set_int_max_str_digits")[0]
        raise YamlRefused(None, f"invalid YAML: {reason}") from None
    finally:
        if loader is not None:
            loader.dispose()
