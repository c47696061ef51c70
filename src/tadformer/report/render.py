"""Report rendering: sections of paragraphs, tables and images, as self-contained HTML or Markdown.

The HTML embeds every PNG as a base64 data URI and uses inline CSS; its only script records on load
how many images decoded, in ``<body data-images-ok="loaded/total">`` (checked by the browser test).
"""

from __future__ import annotations

import base64
import html
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

_CSS = """body{font-family:system-ui,sans-serif;max-width:1150px;margin:2em auto;padding:0 1em;color:#222}
h1{border-bottom:2px solid #444}h2{border-bottom:1px solid #bbb;margin-top:2em}
table{border-collapse:collapse;margin:.8em 0;font-size:.9em}th,td{border:1px solid #ccc;padding:3px 8px}
th{background:#f0f0f0}td{text-align:right}td:first-child{text-align:left}
figure{margin:1em 0}img{max-width:100%;height:auto}figcaption{color:#555;font-size:.85em}
p.note{color:#555}"""
_SCRIPT = """window.addEventListener("load",function(){var im=document.images,ok=0;
for(var i=0;i<im.length;i++){if(im[i].complete&&im[i].naturalWidth>0){ok++;}}
document.body.setAttribute("data-images-ok",ok+"/"+im.length);});"""


@dataclass
class Table:
    """A table block: header cells and rows of cell strings."""

    header: list[str]
    rows: list[list[str]]


@dataclass
class Image:
    """A figure block: a PNG in the report folder and its caption."""

    path: Path
    caption: str


@dataclass
class Section:
    """A report section: a heading and blocks (paragraph strings, tables, images)."""

    title: str
    blocks: list[str | Table | Image] = field(default_factory=list)


def render_html(title: str, sections: Sequence[Section]) -> str:
    """The self-contained HTML page (images as base64 data URIs)."""
    esc = html.escape
    parts = [f"<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>{esc(title)}</title>",
             f"<style>{_CSS}</style><script>{_SCRIPT}</script></head><body>", f"<h1>{esc(title)}</h1>"]
    for sec in sections:
        parts.append(f"<section><h2>{esc(sec.title)}</h2>")
        for b in sec.blocks:
            if isinstance(b, Table):
                head = "".join(f"<th>{esc(h)}</th>" for h in b.header)
                body = "".join("<tr>" + "".join(f"<td>{esc(c)}</td>" for c in r) + "</tr>" for r in b.rows)
                parts.append(f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>")
            elif isinstance(b, Image):
                uri = "data:image/png;base64," + base64.b64encode(b.path.read_bytes()).decode("ascii")
                parts.append(f"<figure><img src=\"{uri}\" alt=\"{esc(b.caption)}\">"
                             f"<figcaption>{esc(b.caption)}</figcaption></figure>")
            else:
                parts.append(f"<p class=\"note\">{esc(b)}</p>")
        parts.append("</section>")
    parts.append("</body></html>\n")
    return "\n".join(parts)


def render_markdown(title: str, sections: Sequence[Section], out_dir: Path) -> str:
    """The Markdown twin; images are linked relative to ``out_dir``."""
    def cell(text: str) -> str:
        return text.replace("|", "\\|")

    lines = [f"# {title}", ""]
    for sec in sections:
        lines += [f"## {sec.title}", ""]
        for b in sec.blocks:
            if isinstance(b, Table):
                lines.append("| " + " | ".join(map(cell, b.header)) + " |")
                lines.append("|" + "---|" * len(b.header))
                lines += ["| " + " | ".join(map(cell, r)) + " |" for r in b.rows]
            elif isinstance(b, Image):
                lines.append(f"![{b.caption}]({b.path.relative_to(out_dir).as_posix()})")
            else:
                lines.append(b)
            lines.append("")
    return "\n".join(lines)
