"""The pieces both HTML reports (quality and automation audit) are made of: one stylesheet,
escaping, tables, figures, notes and the page around them.

Every page is self-contained: inline CSS and SVG, no scripts, no network. Cells and captions
passed here are already escaped HTML; user strings go through ``esc`` first.
"""

from __future__ import annotations

import html
from collections.abc import Iterable, Sequence

from .formatting import HTML

__all__ = [
    "CSS",
    "domain_cell",
    "esc",
    "figure",
    "hint",
    "kv",
    "notes",
    "num",
    "page",
    "pct",
    "prob",
    "table",
]

CSS = """
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; color: #222;
       margin: 0; background: #fafafa; }
main { max-width: 1080px; margin: 0 auto; padding: 1.5em 1.5em 4em; background: #fff; }
h1 { font-size: 1.6em; margin: 0 0 .2em; }
h2 { font-size: 1.2em; margin: 2em 0 .5em; padding-bottom: .2em; border-bottom: 1px solid #ddd; }
p.meta, p.hint, figcaption { color: #666; font-size: .9em; }
nav a { margin-right: 1em; color: #2a5db0; text-decoration: none; font-size: .9em; }
table { border-collapse: collapse; margin: .5em 0 1em; font-size: .9em; }
th, td { padding: .25em .7em; border-bottom: 1px solid #eee; text-align: left;
         vertical-align: top; }
th { background: #f3f3f3; font-weight: 600; }
td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; }
table.kv th { background: none; font-weight: 600; }
.wrap { overflow-x: auto; }
.bad { color: #b22222; }
.note { background: #fff6d9; border-left: 3px solid #e0b000; padding: .3em .7em; margin: .5em 0; }
figure { margin: .5em 0 1em; }
svg { max-width: 100%; height: auto; }
.id { word-break: break-all; }
"""

num, prob, domain_cell, pct = HTML.num, HTML.prob, HTML.domain_cell, HTML.pct


def esc(value: object) -> str:
    """``value`` as text safe inside an element or a quoted attribute."""
    return html.escape(str(value), quote=True)


def table(head: Sequence[tuple[str, bool]], rows: Iterable[Sequence[str]]) -> str:
    """A table from already escaped cells; ``head`` is (escaped title, numeric?) per column."""
    attrs = [' class="num"' if numeric else "" for _, numeric in head]
    out = ['<div class="wrap"><table><thead><tr>']
    out += [f"<th{attr}>{title}</th>" for attr, (title, _) in zip(attrs, head, strict=True)]
    out.append("</tr></thead><tbody>")
    for row in rows:
        cells = "".join(f"<td{attr}>{cell}</td>" for attr, cell in zip(attrs, row, strict=True))
        out.append(f"<tr>{cells}</tr>")
    out.append("</tbody></table></div>")
    return "".join(out)


def kv(rows: Iterable[tuple[str, str]]) -> str:
    """A two-column table of (escaped name, escaped value) rows."""
    body = "".join(f"<tr><th>{k}</th><td>{v}</td></tr>" for k, v in rows)
    return f'<table class="kv"><tbody>{body}</tbody></table>'


def figure(svg: str | None, caption: str) -> str:
    """An inline SVG with its caption; empty when there is nothing to draw."""
    if not svg:
        return ""
    return f"<figure>{svg}<figcaption>{caption}</figcaption></figure>"


def hint(text: str) -> str:
    """A grey explanatory paragraph (``text`` already escaped)."""
    return f'<p class="hint">{text}</p>'


def notes(texts: Iterable[str]) -> str:
    """Highlighted notes, one paragraph each (plain text, escaped here)."""
    return "".join(f'<p class="note">{esc(n)}</p>' for n in texts)


def page(title: str, meta: str, links: Sequence[tuple[str, str]], sections: Iterable[str]) -> str:
    """The whole page: ``title`` (plain text), ``meta`` (escaped HTML) under it, a navigation
    bar of (anchor, name) ``links``, then the non-empty ``sections``."""
    nav = "".join(f'<a href="#{anchor}">{name}</a>' for anchor, name in links)
    return (
        "<!DOCTYPE html>\n"
        '<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{esc(title)}</title><style>{CSS}</style></head>\n"
        f'<body><main><h1>{esc(title)}</h1><p class="meta">{meta}</p><nav>{nav}</nav>\n'
        + "\n".join(x for x in sections if x)
        + "\n</main></body></html>\n"
    )
