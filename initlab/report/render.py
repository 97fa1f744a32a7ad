"""The document as Markdown (figures linked) and as one self-contained HTML page."""

from __future__ import annotations

import base64
import html
import re
from pathlib import Path

from initlab.report.blocks import Section

CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:0 auto;
max-width:1100px;padding:12px;line-height:1.45;color:#222}
h1{font-size:1.4em}h2{font-size:1.15em;border-bottom:1px solid #ddd;padding-bottom:2px}
.scroll{overflow-x:auto;margin:8px 0;max-width:100%;
background:linear-gradient(to right,#fff 30%,#fff0) left/24px 100% no-repeat local,
linear-gradient(to left,#fff 30%,#fff0) right/24px 100% no-repeat local,
linear-gradient(to right,#0003,#0000) left/10px 100% no-repeat scroll,
linear-gradient(to left,#0003,#0000) right/10px 100% no-repeat scroll}
table{border-collapse:collapse;font-size:.85em}
th,td{border:1px solid #ccc;padding:3px 6px;text-align:left;white-space:nowrap}
th{background:#f3f3f3}figure{margin:10px 0}
img{max-width:100%;height:auto;display:block}
figcaption{font-size:.85em;color:#555}
@media (max-width:640px){th,td{white-space:normal;padding:3px 4px}table{font-size:.8em}}
.nw{white-space:nowrap}td.pass{color:#106b10}td.fail{color:#a00000;font-weight:bold}
"""


def markdown(title: str, sections: list[Section]) -> str:
    out = [f"# {title}", ""]
    for heading, blocks in sections:
        if heading:
            out += [f"## {heading}", ""]
        for b in blocks:
            if b.kind == "p":
                out += [b.text, ""]
            elif b.kind == "img":
                out += [f"![{b.text}]({b.image})", "", f"*{b.text}*", ""]
            else:
                out.append("| " + " | ".join(b.header) + " |")
                out.append("|" + "---|" * len(b.header))
                out += ["| " + " | ".join(c.replace("|", "\\|") for c in r) + " |"
                        for r in b.rows]
                out.append("")
    return "\n".join(out)


def _inline(text: str) -> str:
    return re.sub(r"\*\*(.+?)\*\*", r"<b>\1</b>", html.escape(text))


def _base64(path: Path) -> str:
    return base64.b64encode(path.read_bytes()).decode("ascii")


def page(title: str, sections: list[Section], folder: Path) -> str:
    """HTML with every figure embedded (read from ``folder``): one file to mail or open."""
    out = ["<!doctype html>", '<html lang="en"><head><meta charset="utf-8">',
           '<meta name="viewport" content="width=device-width, initial-scale=1">',
           f"<title>{html.escape(title)}</title><style>{CSS}</style></head><body>",
           f"<h1>{html.escape(title)}</h1>"]
    for heading, blocks in sections:
        if heading:
            out.append(f"<h2>{html.escape(heading)}</h2>")
        for b in blocks:
            if b.kind == "p":
                out.append(f"<p>{_inline(b.text)}</p>")
            elif b.kind == "img":
                img = (f'<img alt="{html.escape(b.text)}" '
                       f'src="data:image/png;base64,{_base64(folder / b.image)}">')
                if b.narrow:  # a phone gets the stacked layout, a wider screen the wide one
                    img = ('<picture><source media="(max-width: 640px)" srcset="data:image/png;'
                           f'base64,{_base64(folder / b.narrow)}">{img}</picture>')
                out.append(f"<figure>{img}<figcaption>{html.escape(b.text)} "
                           f"({html.escape(b.image)})</figcaption></figure>")
            else:
                out.append('<div class="scroll"><table><tr>'
                           + "".join(f"<th>{html.escape(h)}</th>" for h in b.header) + "</tr>")
                for r in b.rows:
                    cells = []
                    for c in r:
                        cls = ' class="pass"' if c.startswith("✓") else (
                            ' class="fail"' if c.startswith("✗") else "")
                        text = re.sub(r"(\w+ @\d+)", r'<span class="nw">\1</span>',
                                      html.escape(c))  # "vanished @1" stays whole
                        cells.append(f"<td{cls}>{text}</td>")
                    out.append("<tr>" + "".join(cells) + "</tr>")
                out.append("</table></div>")
    out.append("</body></html>")
    return "\n".join(out) + "\n"
