"""The report as a list of blocks (headings, paragraphs, notes, tables, images), rendered to Markdown or HTML.

HTML embeds every image as a base64 ``data:`` URI (one file, nothing to fetch) and escapes every text;
Markdown names the image files it expects beside it.
"""

from __future__ import annotations

import base64
import html
import re
from dataclasses import dataclass, field
from typing import Literal

__all__ = ["Block", "render_html", "render_markdown"]


@dataclass
class Block:
    """One piece of the report; ``text`` is the heading, paragraph or note (``**bold**`` and ``code``
    marks allowed), or an image's alt text."""

    kind: Literal["h1", "h2", "h3", "p", "table", "img", "note"]
    text: str = ""
    headers: list[str] = field(default_factory=list)
    rows: list[list[str]] = field(default_factory=list)
    name: str = ""  # an image's name (its file is <stem>-<name>.png beside a Markdown report)
    png: bytes = b""


def _md_cell(text: str) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def render_markdown(blocks: list[Block], stem: str) -> tuple[str, dict[str, bytes]]:
    """The Markdown text and the image files it links (file name -> PNG bytes)."""
    lines: list[str] = []
    files: dict[str, bytes] = {}
    for b in blocks:
        if b.kind in ("h1", "h2", "h3"):
            lines += ["#" * int(b.kind[1]) + " " + b.text, ""]
        elif b.kind == "p":
            lines += [b.text, ""]
        elif b.kind == "note":
            lines += [f"*{b.text}*", ""]
        elif b.kind == "table":
            lines.append("| " + " | ".join(_md_cell(h) for h in b.headers) + " |")
            lines.append("|" + "|".join("---" for _ in b.headers) + "|")
            lines += ["| " + " | ".join(_md_cell(c) for c in row) + " |" for row in b.rows]
            lines.append("")
        elif b.kind == "img":
            name = f"{stem}-{b.name}.png"
            files[name] = b.png
            lines += [f"![{b.text}]({name})", ""]
    return "\n".join(lines), files


_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;max-width:1100px;margin:2rem auto;padding:0 1rem;color:#222;line-height:1.45}
h1{font-size:1.6rem}h2{margin-top:2rem;border-bottom:1px solid #ddd;padding-bottom:.2rem}
table{border-collapse:collapse;margin:.6rem 0 1rem;font-size:.9rem}
th,td{border:1px solid #ddd;padding:.3rem .5rem;text-align:left;vertical-align:top}
th{background:#f4f4f4}tr:nth-child(even) td{background:#fafafa}
img{max-width:100%;display:block;margin:1rem 0}.note{color:#666;font-size:.85rem}
code{background:#f4f4f4;padding:0 .2rem}
"""


def _inline(text: str) -> str:
    out = html.escape(text)
    out = re.sub(r"\*\*(.+?)\*\*", r"<strong>\1</strong>", out)
    return re.sub(r"`(.+?)`", r"<code>\1</code>", out)


def render_html(blocks: list[Block]) -> str:
    """One self-contained HTML page (styles inline, images as data: URIs, no scripts)."""
    title = next((b.text for b in blocks if b.kind == "h1"), "bakeoff report")
    parts = [
        "<!doctype html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f"<title>{html.escape(title)}</title>",
        f"<style>{_CSS}</style></head><body>",
    ]
    for b in blocks:
        if b.kind in ("h1", "h2", "h3"):
            parts.append(f"<{b.kind}>{html.escape(b.text)}</{b.kind}>")
        elif b.kind == "p":
            parts.append(f"<p>{_inline(b.text)}</p>")
        elif b.kind == "note":
            parts.append(f'<p class="note">{_inline(b.text)}</p>')
        elif b.kind == "table":
            head = "".join(f"<th>{html.escape(h)}</th>" for h in b.headers)
            body = "".join(
                "<tr>" + "".join(f"<td>{_inline(c)}</td>" for c in row) + "</tr>" for row in b.rows
            )
            parts.append(f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>")
        elif b.kind == "img":
            data = base64.b64encode(b.png).decode("ascii")
            parts.append(f'<img alt="{html.escape(b.text)}" src="data:image/png;base64,{data}">')
    parts.append("</body></html>")
    return "\n".join(parts)
