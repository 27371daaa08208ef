"""YAML to data for suite files that may hold 100 000 cases, without holding their nodes.

libyaml parses (PyYAML's pure-Python scanner takes minutes on a large file); PyYAML's
composer builds the nodes, except under the top-level `cases:` list, where each case is
composed, checked and turned into data at once; when `settle` accepts that data (the
loader validates it as a Case), the case's nodes are dropped, and only its line and the
lines of its keys are kept (`CaseLines`): all that later, suite-wide errors need from it.
A case `settle` refuses keeps its nodes, so its error can name the exact line.

Aliases are checked as the nodes arrive: a file may not expand (through aliases) to more
than `MAX_EXPANSION` times the values it really holds (or `MAX_NODES`, for a small file),
so a "billion laughs" file is refused after reading a few lines, before anything is built.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import yaml
from yaml.composer import Composer, ComposerError
from yaml.constructor import ConstructorError, SafeConstructor
from yaml.events import (
    AliasEvent,
    MappingEndEvent,
    SequenceEndEvent,
    SequenceStartEvent,
    StreamEndEvent,
)
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode
from yaml.resolver import Resolver

from workbench.suites.validation import Loc

if TYPE_CHECKING:
    from yaml._yaml import CParser
else:
    try:
        from yaml._yaml import CParser
    except ImportError:  # PyYAML built without libyaml: the same events, only slower
        from yaml.parser import Parser
        from yaml.reader import Reader
        from yaml.scanner import Scanner

        class CParser(Reader, Scanner, Parser):
            def __init__(self, stream):
                Reader.__init__(self, stream)
                Scanner.__init__(self)
                Parser.__init__(self)


MAX_NODES = 100_000
"""Values any file may expand to through aliases."""
MAX_EXPANSION = 4
"""A larger file may expand to this many times the values it holds."""


class GraphError(Exception):
    """A duplicate key or an alias problem, at `node`, `loc`."""

    def __init__(self, node: Node | None, loc: Loc, message: str) -> None:
        super().__init__(message)
        self.node, self.loc, self.message = node, loc, message


@dataclass(frozen=True, slots=True)
class CaseLines:
    """What is left of a case's nodes once it is data: where it and its keys start."""

    line: int
    keys: tuple[tuple[str, int], ...]

    @classmethod
    def of(cls, node: Node) -> CaseLines:
        keys: tuple[tuple[str, int], ...] = ()
        if isinstance(node, MappingNode):
            keys = tuple(
                (sys.intern(str(k.value)), k.start_mark.line + 1)
                for k, _ in node.value
                if isinstance(k, ScalarNode)
            )
        return cls(node.start_mark.line + 1, keys)

    def key_line(self, key: str) -> int | None:
        return next((line for name, line in self.keys if name == key), None)


class _Graph:
    """Counts values as composed and as expanded through aliases; finds duplicate keys."""

    def __init__(self) -> None:
        self.composed = 0
        self.expanded = 0
        self.sizes: dict[Node, int] = {}
        """Expanded sizes of anchored nodes (keyed by node, which keeps them alive)."""

    def check(self, node: Node, loc: Loc, anchored: set[Node]) -> int:
        """Adds `node` (composed just now) to the totals; its expanded size."""
        local: dict[Node, int] = {}
        active: set[Node] = set()

        def size(node: Node, loc: Loc) -> int:
            known = local.get(node, self.sizes.get(node))
            if known is not None:
                return known
            if node in active:
                raise GraphError(node, loc, "an alias refers to itself")
            active.add(node)
            total = 1
            if isinstance(node, SequenceNode):
                total += sum(size(item, (*loc, i)) for i, item in enumerate(node.value))
            elif isinstance(node, MappingNode):
                seen: dict[str, int] = {}
                for key, value in node.value:
                    name = key.value if isinstance(key, ScalarNode) else None
                    if name is not None and name != "<<" and name in seen:
                        message = f"duplicate key {name!r} (first on line {seen[name]})"
                        raise GraphError(key, (*loc, name), message)
                    if name is not None:
                        seen[name] = key.start_mark.line + 1
                    total += size(key, loc) + size(value, (*loc, name if name else "?"))
            active.discard(node)
            self._limit(node, loc, self.expanded + total)
            (self.sizes if node in anchored else local)[node] = total
            return total

        total = size(node, loc)
        self.expanded += total
        return total

    def _limit(self, node: Node, loc: Loc, expanded: int) -> None:
        limit = max(MAX_NODES, MAX_EXPANSION * self.composed)
        if expanded > limit:
            message = f"aliases expand to more than {limit} values (a 'billion laughs' file?)"
            raise GraphError(node, loc, message)


_COMPOSER: Any = Composer
"""PyYAML's composer, its methods borrowed (its stubs would have `self` be a Composer)."""


def _anchor(event: Any) -> str | None:
    return getattr(event, "anchor", None)


def _end(event: Any) -> Any:
    return event.end_mark


class SuiteLoader(CParser, SafeConstructor, Resolver):
    """libyaml events, PyYAML's composer and safe constructor, cases streamed."""

    def __init__(self, text: str, settle: Callable[[Any], Any | None] | None = None) -> None:
        CParser.__init__(self, text)
        SafeConstructor.__init__(self)
        Resolver.__init__(self)
        self.anchors: dict[str, Node] = {}
        self.anchored: set[Node] = set()
        self.graph = _Graph()
        self.settle = settle
        """Turns a case's data into what to keep instead, or None to keep data and nodes."""
        self.depth = 0
        self.cases: tuple[SequenceNode, list[Any], int] | None = None
        """The `cases` node (items pruned), their data, and their expanded size."""

    # Composer's methods, over libyaml's events (CParser composes in C, all at once).
    compose_document = _COMPOSER.compose_document
    compose_scalar_node = _COMPOSER.compose_scalar_node
    compose_sequence_node = _COMPOSER.compose_sequence_node

    def compose_node(self, parent: Node | None, index: object) -> Node:
        event: Any = self.peek_event()
        alias = isinstance(event, AliasEvent)
        self.graph.composed += not alias
        self.depth += 1
        try:
            node: Node = _COMPOSER.compose_node(self, parent, index)
        finally:
            self.depth -= 1
        if not alias and getattr(event, "anchor", None) is not None:
            self.anchored.add(node)
        return node

    def compose_mapping_node(self, anchor: str | None) -> MappingNode:
        if self.depth != 1:
            node: MappingNode = _COMPOSER.compose_mapping_node(self, anchor)
            return node
        start: Any = self.get_event()
        tag = start.tag
        if tag is None or tag == "!":
            tag = self.resolve(  # type: ignore[no-untyped-call]
                MappingNode, None, start.implicit
            )
        node = MappingNode(tag, [], start.start_mark, None, flow_style=start.flow_style)
        if anchor is not None:
            self.anchors[anchor] = node
        while not self.check_event(MappingEndEvent):
            key = self.compose_node(node, None)
            if (
                self.cases is None
                and isinstance(key, ScalarNode)
                and key.value == "cases"
                and self.check_event(SequenceStartEvent)
                and _anchor(self.peek_event()) is None
            ):
                value: Node = self._compose_cases()
            else:
                value = self.compose_node(node, key)
            node.value.append((key, value))
        node.end_mark = _end(self.get_event())
        return node

    def _compose_cases(self) -> SequenceNode:
        self.graph.composed += 1
        start: Any = self.get_event()
        tag = start.tag
        if tag is None or tag == "!":
            tag = self.resolve(  # type: ignore[no-untyped-call]
                SequenceNode, None, start.implicit
            )
        node = SequenceNode(tag, [], start.start_mark, None, flow_style=start.flow_style)
        data: list[Any] = []
        expanded = 1
        self.depth += 1
        while not self.check_event(SequenceEndEvent):
            index = len(node.value)
            item = self.compose_node(node, index)
            expanded += self.graph.check(item, ("cases", index), self.anchored)
            value = self.construct_document(item)
            settled = self.settle(value) if self.settle is not None else None
            if settled is None:
                data.append(value)
                node.value.append(item)
            else:
                data.append(settled)
                node.value.append(CaseLines.of(item))
        self.depth -= 1
        node.end_mark = _end(self.get_event())
        self.cases = (node, data, expanded)
        return node

    def construct_object(self, node: Node, deep: bool = False) -> Any:
        try:
            return SafeConstructor.construct_object(self, node, deep)
        except (ValueError, OverflowError) as exc:  # a 5 000-digit int, a 30th of February
            raise ConstructorError(
                None, None, f"cannot read this value: {exc}", node.start_mark
            ) from None

    def read(self) -> tuple[Node | None, Any]:
        """The single document's node tree (cases pruned) and its data."""
        self.get_event()  # stream start
        root: Node | None = None
        if not self.check_event(StreamEndEvent):
            root = self.compose_document()
        if not self.check_event(StreamEndEvent):
            event: Any = self.get_event()
            raise ComposerError(
                "expected a single document in the stream",
                root.start_mark if root is not None else None,
                "but found another document",
                event.start_mark,
            )
        if root is None:
            return None, None
        if self.cases is not None:
            cases, data, expanded = self.cases
            self.graph.sizes[cases] = expanded  # counted already, as each case arrived
            self.graph.expanded -= expanded
            self.constructed_objects[cases] = data
        self.graph.check(root, (), self.anchored)
        return root, self.construct_document(root)


__all__ = ["CaseLines", "GraphError", "SuiteLoader", "yaml"]
