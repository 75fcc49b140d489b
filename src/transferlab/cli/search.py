"""``transferlab search``: the nearest neighbours of an image (or a text) in a saved similarity index."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from transferlab.cli._common import positive_int, print_json

HELP = "nearest neighbours of an image (or --text) in an index made by `index`"


def add_parser(subparsers: Any) -> None:
    """Register ``search``."""
    p = subparsers.add_parser("search", help=HELP, formatter_class=argparse.RawDescriptionHelpFormatter, epilog="""
The query is embedded exactly as the index's items were (the index records its backbone and layer).
Scores are cosine similarities (1 = same direction). Examples:
  transferlab search photos.idx query.jpg -k 8 --sheet neighbours.html
  transferlab search reviews.idx --text "the battery died after a week" --json
""")
    p.add_argument("index", metavar="INDEX", help="a directory written by `transferlab index`")
    p.add_argument("query", metavar="QUERY", nargs="?", default=None, help="an image file (image index)")
    p.add_argument("--text", default=None, help="the query text (text index)")
    p.add_argument("-k", "--top-k", dest="k", type=positive_int, default=10, help="neighbours to return (default 10)")
    p.add_argument("--exact", action="store_true", help="scan every vector even when the index has an HNSW graph")
    p.add_argument("--sheet", default=None, metavar="FILE",
                   help="also write a contact sheet: .html (thumbnails embedded; texts for a text index) or .png")
    p.add_argument("--json", action="store_true",
                   help='print {"query", "neighbours": [{"rank", "path", "score", "label"}, ...]} as JSON on stdout')


def neighbours_table(neighbours: list[dict[str, Any]]) -> str:
    """The neighbours as a terminal table (texts shortened to one line)."""
    lines = [f"{'rank':<6}{'score':>8}  {'label':<16}path"]
    for n in neighbours:
        label = str(n.get("label") or "-")
        where = n["path"]
        if "text" in n:
            text = " ".join(n["text"].split())
            where = f"{text[:70] + '...' if len(text) > 73 else text}  ({n['path']})"
        lines.append(f"{n['rank']:<6}{n['score']:>8.4f}  {label[:15]:<16}{where}")
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    """Search, then print a table (or JSON) and write the contact sheet when asked."""
    from transferlab.errors import UserError
    from transferlab.workflows.search import load_index
    from transferlab.workflows.search_sheet import write_sheet

    index = load_index(args.index)
    if args.text is not None and args.query is not None:
        raise UserError("give one query: an image file as QUERY, or --text")
    if args.text is not None:
        index.check_query("text")
        query: str = args.text
        if not query.strip():
            raise UserError("--text: the query is empty")
    elif args.query is not None:
        index.check_query("image")
        query = args.query
        if not Path(query).is_file():
            raise UserError(f"{query}: no such image file")
    else:
        kind = "an image file as QUERY" if index.modality == "image" else '--text "..."'
        raise UserError(f"no query: give {kind}")
    neighbours = index.search([query], k=args.k, exact=args.exact)[0]
    if args.sheet:
        write_sheet(args.sheet, index, query, neighbours)
    if args.json:
        doc: dict[str, Any] = {"index": str(index.directory), "backbone": index.backbone, "query": query,
                               "neighbours": neighbours}
        if args.sheet:
            doc["sheet"] = args.sheet
        print_json(doc)
        return 0
    print(f"{index.directory}: {index.describe()}")
    print(neighbours_table(neighbours))
    if args.sheet:
        print(f"contact sheet: {args.sheet}")
    return 0
