"""The report as plain data (sections of paragraphs, tables, figures and code), rendered
twice: to one self-contained HTML page (``html.py``) and to Markdown with PNG files
beside it (``markdown.py``)."""

from __future__ import annotations

import re
from dataclasses import dataclass, field


@dataclass
class Cell:
    """A table cell: its text, and whether it is the best of its column (shown in bold)."""

    text: str
    bold: bool = False


@dataclass
class Table:
    """columns: header texts; rows: cells, one list per row, as many as columns; numeric:
    a table of numbers (right-aligned, one line per cell) rather than of facts (left, wrapped)."""

    columns: list[str]
    rows: list[list[Cell]]
    caption: str = ""
    notes: list[str] = field(default_factory=list)
    numeric: bool = True

    def __post_init__(self):
        for i, row in enumerate(self.rows):
            if len(row) != len(self.columns):
                raise ValueError(f"table {self.caption!r}: row {i} has {len(row)} cells but there are "
                                 f"{len(self.columns)} columns")


@dataclass
class Figure:
    """A PNG picture; ``name`` is its file name stem (letters, digits, '-', '_')."""

    name: str
    png: bytes
    caption: str


@dataclass
class Text:
    text: str


@dataclass
class Code:
    text: str
    language: str = ""


Block = Table | Figure | Text | Code


@dataclass
class Section:
    title: str
    blocks: list[Block] = field(default_factory=list)

    @property
    def anchor(self) -> str:
        return slug(self.title)


@dataclass
class Document:
    title: str
    subtitle: str
    sections: list[Section]

    def figures(self) -> list[Figure]:
        return [b for s in self.sections for b in s.blocks if isinstance(b, Figure)]


def slug(text: str) -> str:
    """A name safe in file names and URL fragments: ``Fig. 7: isic2016`` -> ``fig-7-isic2016``."""
    return re.sub(r"[^a-z0-9_]+", "-", text.lower()).strip("-") or "x"
