"""The report as one self-contained HTML page: CSS inline, pictures as base64 PNG data URIs,
no JavaScript, nothing fetched from anywhere (a Content-Security-Policy says so, so a browser
refuses, and reports, anything else)."""

from __future__ import annotations

import base64
from html import escape

from dragsaw.platform.report.document import Code, Document, Figure, Table, Text

CSP = "default-src 'none'; img-src data:; style-src 'unsafe-inline'"

STYLE = """
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; color: #1d2329;
       margin: 0 auto; max-width: 1180px; padding: 24px 32px 64px; background: #fff; }
h1 { font-size: 26px; margin: 0 0 4px; }
h2 { font-size: 20px; margin: 36px 0 10px; padding-bottom: 4px; border-bottom: 1px solid #d5dbe1; }
.subtitle { color: #56606b; margin: 0 0 18px; }
nav ol { columns: 2; margin: 4px 0 0; }
.table-wrap { overflow-x: auto; margin: 12px 0 4px; }
table { border-collapse: collapse; font-variant-numeric: tabular-nums; }
caption { caption-side: top; text-align: left; font-weight: 600; padding: 4px 0 6px; }
th, td { border: 1px solid #d5dbe1; padding: 4px 8px; text-align: right; white-space: nowrap; }
th { background: #eef2f5; }
td:first-child, th:first-child { text-align: left; }
tbody tr:nth-child(even) { background: #f8fafb; }
.note { color: #56606b; font-size: 12.5px; margin: 2px 0; }
figure { margin: 16px 0; }
figure img { max-width: 100%; height: auto; border: 1px solid #e3e7eb; }
figcaption { color: #404a54; font-size: 13px; margin-top: 4px; max-width: 900px; }
table.facts td { text-align: left; white-space: normal; word-break: break-word; }
pre { background: #f5f7f9; border: 1px solid #e3e7eb; padding: 10px; overflow-x: auto; font-size: 12px; }
"""


def render(doc: Document) -> str:
    """The whole page as a string."""
    out = ["<!DOCTYPE html>", '<html lang="en">', "<head>", '<meta charset="utf-8">',
           f'<meta http-equiv="Content-Security-Policy" content="{CSP}">',
           '<meta name="viewport" content="width=device-width, initial-scale=1">',
           f"<title>{escape(doc.title)}</title>", f"<style>{STYLE}</style>", "</head>", "<body>",
           f"<header><h1>{escape(doc.title)}</h1><p class=\"subtitle\">{escape(doc.subtitle)}</p></header>",
           '<nav><strong>Contents</strong><ol>']
    out += [f'<li><a href="#{s.anchor}">{escape(s.title)}</a></li>' for s in doc.sections]
    out.append("</ol></nav>")
    for section in doc.sections:
        out.append(f'<section id="{section.anchor}"><h2>{escape(section.title)}</h2>')
        out += [_block(b) for b in section.blocks]
        out.append("</section>")
    out += ["</body>", "</html>", ""]
    return "\n".join(out)


def _block(block) -> str:
    if isinstance(block, Table):
        return _table(block)
    if isinstance(block, Figure):
        data = base64.b64encode(block.png).decode("ascii")
        return (f'<figure id="{escape(block.name)}"><img src="data:image/png;base64,{data}" '
                f'alt="{escape(block.caption)}"><figcaption>{escape(block.caption)}</figcaption></figure>')
    if isinstance(block, Code):
        return f"<pre><code>{escape(block.text)}</code></pre>"
    if isinstance(block, Text):
        return f"<p>{escape(block.text)}</p>"
    raise TypeError(f"unknown report block {type(block).__name__}")


def _table(table: Table) -> str:
    head = "".join(f"<th>{escape(c)}</th>" for c in table.columns)
    body = []
    for row in table.rows:
        cells = "".join(f"<td><strong>{escape(c.text)}</strong></td>" if c.bold else f"<td>{escape(c.text)}</td>"
                        for c in row)
        body.append(f"<tr>{cells}</tr>")
    notes = "".join(f'<p class="note">{escape(n)}</p>' for n in table.notes)
    caption = f"<caption>{escape(table.caption)}</caption>" if table.caption else ""
    kind = "" if table.numeric else ' class="facts"'
    return (f'<div class="table-wrap"><table{kind}>{caption}<thead><tr>{head}</tr></thead>'
            f"<tbody>{''.join(body)}</tbody></table></div>{notes}")


__all__ = ["CSP", "render"]
