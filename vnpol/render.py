"""A self-contained HTML view of predictions: highlighted entities, relations and roles (in the spirit of displaCy)."""
from __future__ import annotations

import html
from typing import Sequence

from .corpus import Document
from .schema import POLITICAL, Scheme

_CSS = """
body{font-family:system-ui,sans-serif;margin:2em;max-width:70em;color:#222;line-height:1.9}
mark{padding:.1em .3em;border-radius:.3em;margin:0 .1em;box-decoration-break:clone}
mark .t{font-size:.65em;font-weight:bold;margin-left:.4em;vertical-align:middle;color:#333}
mark:target{outline:2px solid #333}
.legend span{display:inline-block;padding:.1em .6em;margin:.2em;border-radius:.3em;font-size:.85em}
.doc{white-space:pre-wrap;border:1px solid #ddd;padding:1em;border-radius:.4em}
table{border-collapse:collapse;margin:1em 0;line-height:1.4}td,th{border:1px solid #ccc;padding:3px 8px;font-size:.9em}
th{background:#f3f3f3}.rel a{text-decoration:none;color:inherit}.arrow{color:#888;padding:0 .4em}
"""


def _entity_label(doc: Document, eid: str, scheme: Scheme) -> str:
    e = doc.entity(eid)
    return f'<a href="#{html.escape(doc.id)}-{html.escape(e.id)}"><mark style="background:{scheme.color(e.type)}">{html.escape(e.text)}</mark></a>'


def render_document(doc: Document, scheme: Scheme = POLITICAL) -> str:
    """One article as an HTML fragment, coloured by the scheme's entity colours."""
    esc = html.escape
    parts, cursor = [], 0
    for e in sorted(doc.entities, key=lambda e: e.start):
        parts.append(esc(doc.text[cursor:e.start]))
        score = f" ({e.score:.2f})" if e.score is not None else ""
        parts.append(f'<mark id="{esc(doc.id)}-{esc(e.id)}" class="ent ent-{e.type}" style="background:{scheme.color(e.type)}" '
                     f'title="{e.type}{score}">{esc(e.text)}<span class="t">{e.type}</span></mark>')
        cursor = e.end
    parts.append(esc(doc.text[cursor:]))
    rels = "".join(
        f'<tr class="rel"><td>{_entity_label(doc, r.head, scheme)}</td><td><span class="arrow">—{esc(r.type)}→</span></td>'
        f'<td>{_entity_label(doc, r.tail, scheme)}</td><td>{"" if r.score is None else f"{r.score:.2f}"}</td></tr>'
        for r in doc.relations)
    roles = "".join(f"<tr><td>{esc(a)}</td><td>{esc(b)}</td><td>{esc(c)}</td></tr>" for a, b, c in (r.as_tuple() for r in doc.roles))
    return (f'<article><h2>{esc(doc.id)}</h2><div class="doc">{"".join(parts)}</div>'
            f"<h3>Relations ({len(doc.relations)})</h3><table><tr><th>head</th><th></th><th>tail</th><th>score</th></tr>{rels}</table>"
            f"<h3>Roles ({len(doc.roles)})</h3><table><tr><th>person</th><th>position</th><th>organisation</th></tr>{roles}</table></article>")


def render_html(docs: Sequence[Document], title: str = "vnpol", scheme: Scheme = POLITICAL) -> str:
    """A complete page for one or more documents, with a legend of the scheme's entity types."""
    legend = "".join(f'<span style="background:{scheme.color(t)}">{t}</span>' for t in scheme.entity_types)
    body = "\n".join(render_document(d, scheme) for d in docs)
    return (f'<!doctype html><html lang="vi"><head><meta charset="utf-8"><title>{html.escape(title)}</title><style>{_CSS}</style></head>'
            f'<body><h1>{html.escape(title)}</h1><div class="legend">{legend}</div>{body}</body></html>')
