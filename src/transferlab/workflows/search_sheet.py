"""Contact sheets of search results: the query beside its neighbours, to judge a search by eye.

HTML embeds every thumbnail (base64 JPEG), so the one file can be mailed or opened anywhere; PNG draws the same grid
with matplotlib. A text index gets an HTML table of the texts (a PNG of texts would be unreadable).
"""

from __future__ import annotations

import html
import os
from pathlib import Path
from typing import Any

from transferlab.data.images import thumbnail_data_uri

THUMB = 160



def _cell(title: str, uri: str | None, caption: str) -> str:
    image = f'<img src="{uri}" alt="{html.escape(title)}">' if uri else '<div class="missing">unreadable</div>'
    return (f'<figure title="{html.escape(title)}">{image}<figcaption>{html.escape(caption)}</figcaption>'
            "</figure>")


STYLE = """body{font-family:sans-serif;margin:1.5em}figure{display:inline-block;margin:6px;width:170px;
vertical-align:top;text-align:center}figure img{max-width:160px;max-height:160px}figcaption{font-size:12px;
word-break:break-all}.query{border:3px solid #c33;padding:4px}.missing{width:160px;height:120px;background:#eee}
table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:4px 8px;text-align:left;vertical-align:top}"""


def sheet_html(index: Any, query: str, neighbours: list[dict[str, Any]]) -> str:
    """The page: the query, then each neighbour with its rank, score and label."""
    head = (f"<!doctype html><meta charset='utf-8'><title>transferlab search</title><style>{STYLE}</style>"
            f"<h1>Nearest neighbours</h1><p>{html.escape(index.describe())}</p>")
    if index.modality == "text":
        rows = "".join(f"<tr><td>{n['rank']}</td><td>{n['score']:.4f}</td><td>{html.escape(str(n.get('label') or ''))}"
                       f"</td><td>{html.escape(n.get('text', ''))}</td><td>{html.escape(n['path'])}</td></tr>"
                       for n in neighbours)
        return (head + f"<p><b>query:</b> {html.escape(query)}</p><table><tr><th>rank</th><th>score</th>"
                f"<th>label</th><th>text</th><th>where</th></tr>{rows}</table>")
    cells = [f'<div class="query">{_cell(query, thumbnail_data_uri(query), "query: " + Path(query).name)}</div>']
    for n in neighbours:
        label = f" {n['label']}" if n.get("label") else ""
        cells.append(_cell(n["path"], thumbnail_data_uri(n["path"]),
                           f"#{n['rank']} {n['score']:.3f}{label} {Path(n['path']).name}"))
    return head + f"<div style='display:flex;flex-wrap:wrap;align-items:flex-start'>{''.join(cells)}</div>"


def sheet_png(path: str | os.PathLike[str], query: str, neighbours: list[dict[str, Any]]) -> None:
    """The grid as a PNG: the query first (red frame), then the neighbours in rank order."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from transferlab.data.images import thumbnail

    panels = [(query, "query", True)] + [
        (n["path"], f"#{n['rank']} {n['score']:.3f}" + (f"\n{n['label']}" if n.get("label") else ""), False)
        for n in neighbours]
    cols = min(6, len(panels))
    rows = (len(panels) + cols - 1) // cols
    fig, axes = plt.subplots(rows, cols, figsize=(2.2 * cols, 2.5 * rows), squeeze=False)
    for ax in axes.ravel():
        ax.axis("off")
    for ax, (source, title, is_query) in zip(axes.ravel(), panels, strict=False):
        img = thumbnail(source, THUMB * 2)
        if img is not None:
            ax.imshow(img)
        else:
            ax.text(0.5, 0.5, "unreadable", ha="center", va="center")
        ax.set_title(title, fontsize=8, color="#c33" if is_query else "black")
        if is_query:
            ax.axis("on")
            ax.set_xticks([])
            ax.set_yticks([])
            for spine in ax.spines.values():
                spine.set_edgecolor("#c33")
                spine.set_linewidth(3)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def write_sheet(path: str | os.PathLike[str], index: Any, query: str, neighbours: list[dict[str, Any]]) -> Path:
    """Write the contact sheet: ``.html`` (images or texts) or ``.png`` (images)."""
    from transferlab.errors import UserError

    out = Path(path)
    suffix = out.suffix.lower()
    if suffix not in (".html", ".htm", ".png"):
        raise UserError(f"--sheet {out}: give a .html or .png file name")
    if suffix == ".png" and index.modality != "image":
        raise UserError("--sheet: a PNG contact sheet is for image indexes; use .html for texts")
    out.parent.mkdir(parents=True, exist_ok=True)
    if suffix == ".png":
        sheet_png(out, query, neighbours)
    else:
        out.write_text(sheet_html(index, query, neighbours), encoding="utf-8")
    return out
