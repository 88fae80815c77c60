"""The report as Markdown (GitHub-flavoured tables); pictures are the PNG files written
beside it, linked by relative name."""

from __future__ import annotations

from dragsaw.platform.report.document import Code, Document, Figure, Table, Text


def render(doc: Document) -> str:
    """The whole report as a string; figure ``f`` is linked as ``{f.name}.png``."""
    out = [f"# {doc.title}", "", doc.subtitle, "", "## Contents", ""]
    out += [f"- [{s.title}](#{s.anchor})" for s in doc.sections]
    for section in doc.sections:
        out += ["", f'<a id="{section.anchor}"></a>', "", f"## {section.title}", ""]
        for block in section.blocks:
            out += _block(block) + [""]
    return "\n".join(out).rstrip() + "\n"


def _block(block) -> list[str]:
    if isinstance(block, Table):
        return _table(block)
    if isinstance(block, Figure):
        return [f"![{_inline(block.caption)}]({block.name}.png)", "", f"*{_inline(block.caption)}*"]
    if isinstance(block, Code):
        return [f"```{block.language}", block.text.rstrip("\n"), "```"]
    if isinstance(block, Text):
        return [_inline(block.text)]
    raise TypeError(f"unknown report block {type(block).__name__}")


def _table(table: Table) -> list[str]:
    out = [f"**{_inline(table.caption)}**", ""] if table.caption else []
    out.append("| " + " | ".join(_cell(c) for c in table.columns) + " |")
    out.append("|" + "|".join("---" for _ in table.columns) + "|")
    for row in table.rows:
        out.append("| " + " | ".join(f"**{_cell(c.text)}**" if c.bold else _cell(c.text) for c in row) + " |")
    if table.notes:
        out.append("")
        out += [f"> {_inline(n)}  " for n in table.notes]
    return out


def _cell(text: str) -> str:
    return _inline(text).replace("|", "\\|") or " "


def _inline(text: str) -> str:
    """One line, with Markdown's emphasis and HTML characters made literal."""
    text = " ".join(str(text).split())
    for ch in ("\\", "*", "_", "`", "<", ">", "[", "]"):
        text = text.replace(ch, "\\" + ch)
    return text


__all__ = ["render"]
