"""The pieces a report is made of: a paragraph, a table or an image (``Block``), in
titled sections; the renderers (``render``) turn them into Markdown or HTML."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from initlab.numbers import fmt


@dataclass
class Block:
    kind: str  # "p", "table", "img"
    text: str = ""
    header: list[str] = field(default_factory=list)
    rows: list[list[str]] = field(default_factory=list)
    image: str = ""
    narrow: str = ""  # the same figure laid out for a narrow screen (HTML only), if any


Section = tuple[str, list[Block]]


def _cell(value: Any) -> str:
    return value if isinstance(value, str) else fmt(value, digits=3)


def table_block(header: list[str], rows: list[list[Any]]) -> Block:
    return Block("table", header=header, rows=[[_cell(c) for c in r] for r in rows])
