r"""Roles across a collection: who held which position at which body, and when it was reported.

>>> from vnpol.markup import parse_markup
>>> doc = parse_markup("Ngày [[4/9/2019|DATE|d]], [[Bộ trưởng|POS|p]] [[Bộ Công an|ORG|o]] [[Tô Lâm|PER|x]] phát biểu.\n"
...                    "=== relations\nx HAS_POSITION p\np POSITION_AT o\n", "a1")
>>> table = collect([doc])
>>> r = table.roles[0]
>>> r.person, r.position, r.organisation, r.first_date
('Tô Lâm', 'Bộ trưởng', 'Bộ Công an', '2019-09-04')

Merging, each step kept explainable (every row lists the surface forms it merged):

* names are compared after NFC, one tone-mark style, case folding and
  white-space folding (``Thủy``/``Thuỷ``, ``Tổng Bí thư``/``Tổng bí thư``);
* an abbreviation in brackets right after a body's name (``Văn phòng Chính
  phủ (VPCP)``) stands for that body everywhere in the same article, and a
  shorter ORG mention that starts one longer ORG of the same article (``Đảng
  ủy Khối`` … ``Đảng ủy Khối các cơ quan Trung ương``) is resolved to it;
* one name in different articles is one person only when the articles link
  it to a common position or body; otherwise the rows stay apart and the
  person is shown as ``Name (2)``.
"""
from __future__ import annotations

import bisect
import csv
import datetime as dt
import html
import json
import re
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Iterable

from .corpus import Document, Entity
from .text import normalize


#: Standard abbreviations inside names, expanded for comparison (``Đảng ủy Khối các cơ quan TW``).
EXPANSIONS = {
    "tw": "trung ương", "tư": "trung ương", "ubnd": "ủy ban nhân dân", "hđnd": "hội đồng nhân dân",
    "mttq": "mặt trận tổ quốc", "bch": "ban chấp hành", "qđnd": "quân đội nhân dân", "cand": "công an nhân dân",
    "tp": "thành phố", "tp.": "thành phố",
}


_OPTIONAL = frozenset({"các", "những"})


@lru_cache(maxsize=200_000)
def canonical(surface: str) -> str:
    """The comparison key of a name: normalised, case-folded, single-spaced, standard abbreviations expanded.

    >>> canonical("Đảng uỷ Khối các cơ quan TW") == canonical("Đảng ủy khối các cơ quan Trung ương")
    True
    """
    words = normalize(surface).text.casefold().split()
    if len(words) < 2:
        return " ".join(words)
    # the plural markers are optional inside names ("Đảng ủy Khối (các) cơ quan Trung ương")
    return " ".join(EXPANSIONS.get(w, w) for w in words if w not in _OPTIONAL)


# --------------------------------------------------------------------------- dates

_DMY = re.compile(r"(?<!\d)(\d{1,2})\s*[/.-]\s*(\d{1,2})\s*[/.-]\s*((?:19|20)\d{2})(?!\d)")
_WORDS = re.compile(r"ngày\s+(\d{1,2})\s+tháng\s+(\d{1,2})\s+năm\s+((?:19|20)\d{2})", re.I)
_ISO = re.compile(r"(?<!\d)((?:19|20)\d{2})-(\d{2})-(\d{2})(?!\d)")


def parse_date(text: str) -> dt.date | None:
    """A full calendar date in Vietnamese style (4/9/2019, 04-09-2019, ngày 4 tháng 9 năm 2019) or ISO."""
    text = normalize(text).text
    for rx, order in ((_ISO, "ymd"), (_WORDS, "dmy"), (_DMY, "dmy")):
        m = rx.search(text)
        if m:
            a, b, c = (int(x) for x in m.groups())
            y, mo, d = (a, b, c) if order == "ymd" else (c, b, a)
            try:
                return dt.date(y, mo, d)
            except ValueError:
                continue
    return None


_DAY_MONTH = re.compile(r"(?<![\d/])(\d{1,2})/(\d{1,2})(?![\d/])")


def article_date(doc: Document) -> tuple[dt.date | None, str]:
    """(date, where it came from): the ``date`` field; else the article's lead date.

    A lead such as "Chiều 11/10" names day and month only: the year is that of the latest
    full date in the text (an article reports after the dates it cites), one year later if
    that would put the lead before it. Seed 001 opens "Chiều 11/10" and cites a directive of
    9/3/2021: 2021-10-11. With no day/month lead, the first full date is used.
    """
    if doc.meta.get("date"):
        d = parse_date(str(doc.meta["date"]))
        if d:
            return d, "metadata"
    dates = [e.text for e in sorted(doc.entities, key=lambda e: e.start) if e.type == "DATE"]
    full = [d for d in (parse_date(t) for t in dates) if d]
    lead = _DAY_MONTH.search(normalize(dates[0]).text) if dates and not parse_date(dates[0]) else None
    if lead and full:
        latest = max(full)
        for year in (latest.year, latest.year + 1):
            try:
                d = dt.date(year, int(lead.group(2)), int(lead.group(1)))
            except ValueError:
                break
            if d >= latest:
                return d, "text (year inferred)"
    return (full[0], "text") if full else (None, "none")


# --------------------------------------------------------------------------- within-article resolution


def _org_aliases(doc: Document) -> tuple[dict[str, str], dict[str, str]]:
    """(entity id → canonical key of the body it stands for, key → its longest name) within one article."""
    orgs = sorted((e for e in doc.entities if e.type == "ORG"), key=lambda e: e.start)
    key = {e.id: canonical(e.text) for e in orgs}
    # "Văn phòng Chính phủ (VPCP)": the abbreviation stands for the full name in this article
    abbrev: dict[str, str] = {}
    for a, b in zip(orgs, orgs[1:]):
        between = doc.text[a.end:b.start]
        if between.strip() == "(" and doc.text[b.end:b.end + 1] == ")" and len(b.text) < len(a.text):
            abbrev[canonical(b.text)] = key[a.id]
    keys = sorted(set(key.values()))
    resolved: dict[str, str] = {}
    for k in {abbrev.get(k, k) for k in key.values()}:
        # a short form that begins exactly one longer name of the article resolves to it
        lo, hi = bisect.bisect_left(keys, k + " "), bisect.bisect_left(keys, k + " \uffff")
        resolved[k] = keys[lo] if hi - lo == 1 else k
    for e in orgs:
        key[e.id] = resolved[abbrev.get(key[e.id], key[e.id])]
    names: dict[str, str] = {}
    for e in orgs:
        if len(e.text) > len(names.get(key[e.id], "")):
            names[key[e.id]] = e.text
    return key, names


# --------------------------------------------------------------------------- the table


@dataclass
class RoleRow:
    person: str
    position: str
    organisation: str
    first_date: str | None = None
    last_date: str | None = None
    articles: list[str] = field(default_factory=list)
    best_score: float | None = None
    surface_forms: dict[str, list[str]] = field(default_factory=lambda: {"person": [], "position": [], "organisation": []})
    date_sources: list[str] = field(default_factory=list)

    @property
    def n_articles(self) -> int:
        return len(self.articles)

    def to_dict(self) -> dict:
        return {"person": self.person, "position": self.position, "organisation": self.organisation,
                "first_date": self.first_date, "last_date": self.last_date, "n_articles": self.n_articles,
                "articles": self.articles, "best_score": self.best_score, "surface_forms": self.surface_forms,
                "date_sources": self.date_sources}


@dataclass
class MeetRow:
    head: str
    tail: str
    dates: list[str] = field(default_factory=list)
    articles: list[str] = field(default_factory=list)
    surface_forms: dict[str, list[str]] = field(default_factory=lambda: {"head": [], "tail": []})

    def to_dict(self) -> dict:
        return {"head": self.head, "tail": self.tail, "dates": self.dates, "n_articles": len(self.articles),
                "articles": self.articles, "surface_forms": self.surface_forms}


@dataclass
class RolesTable:
    roles: list[RoleRow]
    meets: list[MeetRow]

    def write_csv(self, path: str | Path, meets_path: str | Path | None = None) -> None:
        with open(path, "w", encoding="utf-8", newline="") as fh:
            w = csv.writer(fh)
            w.writerow(["person", "position", "organisation", "first_date", "last_date", "n_articles", "articles",
                        "best_score", "person_forms", "position_forms", "organisation_forms", "date_sources"])
            for r in self.roles:
                w.writerow([r.person, r.position, r.organisation, r.first_date or "", r.last_date or "", r.n_articles,
                            " ".join(r.articles), "" if r.best_score is None else f"{r.best_score:.4f}",
                            " | ".join(r.surface_forms["person"]), " | ".join(r.surface_forms["position"]),
                            " | ".join(r.surface_forms["organisation"]), " ".join(sorted(set(r.date_sources)))])
        if meets_path:
            with open(meets_path, "w", encoding="utf-8", newline="") as fh:
                w = csv.writer(fh)
                w.writerow(["head", "tail", "dates", "n_articles", "articles"])
                for m in self.meets:
                    w.writerow([m.head, m.tail, " ".join(m.dates), len(m.articles), " ".join(m.articles)])

    def write_jsonl(self, path: str | Path) -> None:
        with open(path, "w", encoding="utf-8") as fh:
            for r in self.roles:
                fh.write(json.dumps({"table": "roles", **r.to_dict()}, ensure_ascii=False) + "\n")
            for m in self.meets:
                fh.write(json.dumps({"table": "meets", **m.to_dict()}, ensure_ascii=False) + "\n")

    def write_html(self, path: str | Path) -> None:
        Path(path).write_text(roles_html(self), encoding="utf-8")


def _add_form(forms: list[str], surface: str) -> None:
    if surface not in forms:
        forms.append(surface)


def collect(documents: Iterable[Document]) -> RolesTable:
    """Build the roles and MEETS tables from documents with entities and relations (gold or predicted)."""
    facts, meets = _article_facts(documents)
    rows = _role_rows(facts, _person_clusters(facts))
    ordered = sorted(rows, key=lambda r: (r.person.casefold(), r.first_date or "", r.position.casefold()))
    return RolesTable(ordered, sorted(_meet_rows(meets), key=lambda m: (m.head.casefold(), m.tail.casefold())))


def _article_facts(documents: Iterable[Document]) -> tuple[list[tuple], list[tuple]]:
    """Pass 1: per-article role facts and MEETS pairs with canonical keys."""
    facts = []  # (doc id, date, date source, person key, pos key, org key, surfaces, score)
    meets = []
    for doc in documents:
        date, source = article_date(doc)
        day = date.isoformat() if date else None
        org_key, org_name = _org_aliases(doc)
        by_id: dict[str, Entity] = {e.id: e for e in doc.entities}
        rel_score = {(r.head, r.tail, r.type): r.score for r in doc.relations}
        for role in doc.roles:
            p, pos, org = role.person, role.position, role.organisation
            scores = [rel_score.get((p.id, pos.id, "HAS_POSITION"))]
            if org is not None:
                scores.append(rel_score.get((pos.id, org.id, "POSITION_AT")))
            known = [s for s in scores if s is not None]
            facts.append((doc.id, day, source, canonical(p.text), canonical(pos.text),
                          org_key.get(org.id, canonical(org.text)) if org else "",
                          (p.text, pos.text, org.text if org else "", org_name.get(org_key.get(org.id, ""), org.text) if org else ""),
                          min(known) if known else None))
        for r in doc.relations:
            if r.type == "MEETS" and r.head in by_id and r.tail in by_id:
                h, t = by_id[r.head], by_id[r.tail]
                hk = org_key.get(h.id, canonical(h.text))
                tk = org_key.get(t.id, canonical(t.text))
                meets.append((doc.id, day, hk, tk, org_name.get(hk, h.text), org_name.get(tk, t.text)))
    return facts, meets


def _person_clusters(facts: list[tuple]) -> dict[tuple[str, str], int]:
    """Pass 2: which person each (name, article) is: one name in several articles is one person only if
    the articles share a position or body."""
    parent: dict[tuple[str, str], tuple[str, str]] = {}

    def find(x):
        while parent.setdefault(x, x) != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    seen_link: dict[tuple[str, str], tuple[str, str]] = {}
    for doc_id, _, _, pk, posk, ok, _, _ in facts:
        node = (pk, doc_id)
        find(node)
        for link in ((pk, "pos:" + posk + "@" + ok), (pk, "org:" + ok) if ok else (pk, "pos:" + posk)):
            if link in seen_link:
                parent[find(node)] = find(seen_link[link])
            else:
                seen_link[link] = node
    clusters: dict[tuple[str, str], int] = {}
    count_per_name: dict[str, int] = {}
    for doc_id, _, _, pk, *_ in facts:
        root = find((pk, doc_id))
        if root not in clusters:
            count_per_name[pk] = count_per_name.get(pk, 0) + 1
            clusters[root] = count_per_name[pk]
    return {node: clusters[find(node)] for node in {(f[3], f[0]) for f in facts}}


def _role_rows(facts: list[tuple], person_of: dict[tuple[str, str], int]) -> list[RoleRow]:
    """Pass 3: one row per person, position and body, with its articles and dates."""
    rows: dict[tuple, RoleRow] = {}
    for doc_id, day, source, pk, posk, ok, (ps, poss, orgs, org_full), score in facts:
        n = person_of[(pk, doc_id)]
        key = (pk, n, posk, ok)
        row = rows.get(key)
        if row is None:
            row = rows[key] = RoleRow(ps if n == 1 else f"{ps} ({n})", poss, org_full)
        elif len(org_full) > len(row.organisation):
            row.organisation = org_full
        _add_form(row.surface_forms["person"], ps)
        _add_form(row.surface_forms["position"], poss)
        if orgs:
            _add_form(row.surface_forms["organisation"], orgs)
        if doc_id not in row.articles:
            row.articles.append(doc_id)
            row.date_sources.append(source)
        if day:
            row.first_date = min(filter(None, [row.first_date, day]))
            row.last_date = max(filter(None, [row.last_date, day]))
        if score is not None:
            row.best_score = max(score, row.best_score or 0.0)
    return list(rows.values())


def _meet_rows(meets: list[tuple]) -> list[MeetRow]:
    meet_rows: dict[tuple[str, str], MeetRow] = {}
    for doc_id, day, hk, tk, hs, ts in meets:
        m = meet_rows.setdefault((hk, tk), MeetRow(hs, ts))
        _add_form(m.surface_forms["head"], hs)
        _add_form(m.surface_forms["tail"], ts)
        if doc_id not in m.articles:
            m.articles.append(doc_id)
            if day:
                m.dates.append(day)
    return list(meet_rows.values())


# --------------------------------------------------------------------------- HTML


def roles_html(table: RolesTable, title: str = "vnpol — who held what, when") -> str:
    """A self-contained page: a sortable roles table, the MEETS table, and a timeline per person."""
    esc = html.escape
    dates = [d for r in table.roles for d in (r.first_date, r.last_date) if d]
    lo = dt.date.fromisoformat(min(dates)) if dates else None
    hi = dt.date.fromisoformat(max(dates)) if dates else None
    span = max(1, (hi - lo).days) if lo and hi else 1

    def bar(r: RoleRow) -> str:
        if not (lo and r.first_date):
            return '<span class="nodate">no date</span>'
        a = (dt.date.fromisoformat(r.first_date) - lo).days / span * 100
        b = (dt.date.fromisoformat(r.last_date or r.first_date) - lo).days / span * 100
        return f'<div class="track"><div class="bar" style="left:{a:.1f}%;width:{max(b - a, 0.8):.1f}%" title="{esc(r.first_date)} – {esc(r.last_date or "")}"></div></div>'

    rows = "\n".join(
        f"<tr><td>{esc(r.person)}</td><td>{esc(r.position)}</td><td>{esc(r.organisation)}</td><td>{esc(r.first_date or '')}</td>"
        f"<td>{esc(r.last_date or '')}</td><td>{r.n_articles}</td><td>{'' if r.best_score is None else f'{r.best_score:.2f}'}</td>"
        f"<td class=forms>{esc(' | '.join(r.surface_forms['person'] + r.surface_forms['position'] + r.surface_forms['organisation']))}</td></tr>"
        for r in table.roles)
    meets = "\n".join(f"<tr><td>{esc(m.head)}</td><td>{esc(m.tail)}</td><td>{esc(' '.join(m.dates))}</td><td>{len(m.articles)}</td></tr>"
                      for m in table.meets)
    people: dict[str, list[RoleRow]] = {}
    for r in table.roles:
        people.setdefault(r.person, []).append(r)
    timelines = "\n".join(
        f"<section class=person><h3>{esc(name)}</h3>" + "".join(
            f"<div class=line><span class=label>{esc(r.position)}{(' — ' + esc(r.organisation)) if r.organisation else ''}</span>{bar(r)}</div>"
            for r in sorted(rs, key=lambda r: r.first_date or "")) + "</section>"
        for name, rs in people.items())
    return f"""<!doctype html>
<html lang="vi"><head><meta charset="utf-8"><title>{esc(title)}</title>
<style>
body{{font-family:system-ui,sans-serif;margin:2em;color:#222}} table{{border-collapse:collapse;margin-bottom:2em}}
th,td{{border:1px solid #ccc;padding:4px 8px;font-size:14px}} th{{background:#f0f0f0;cursor:pointer}} td.forms{{color:#777;font-size:12px}}
.line{{display:flex;align-items:center;gap:1em;margin:2px 0}} .label{{width:28em;font-size:13px}}
.track{{position:relative;flex:1;height:10px;background:#eee}} .bar{{position:absolute;top:0;height:10px;background:#3b7dd8}}
.nodate{{color:#999;font-size:12px}}
</style></head><body>
<h1>{esc(title)}</h1>
<p>{len(table.roles)} roles, {len(table.meets)} meeting pairs{f', reported {lo} – {hi}' if lo else ''}. Click a column to sort.</p>
<h2>Roles</h2>
<table class="sortable" id="roles"><thead><tr><th>person</th><th>position</th><th>organisation</th><th>first</th><th>last</th><th>articles</th><th>score</th><th>merged forms</th></tr></thead>
<tbody>{rows}</tbody></table>
<h2>Meetings (MEETS)</h2>
<table class="sortable" id="meets"><thead><tr><th>who</th><th>met</th><th>dates</th><th>articles</th></tr></thead><tbody>{meets}</tbody></table>
<h2>Timelines</h2>
{timelines}
<script>
document.querySelectorAll("table.sortable th").forEach(function (th, i) {{
  th.addEventListener("click", function () {{
    var table = th.closest("table"), body = table.tBodies[0], idx = Array.prototype.indexOf.call(th.parentNode.children, th);
    var asc = th.dataset.dir !== "asc"; th.dataset.dir = asc ? "asc" : "desc";
    Array.from(body.rows).sort(function (a, b) {{
      var x = a.cells[idx].textContent, y = b.cells[idx].textContent, nx = parseFloat(x), ny = parseFloat(y);
      var c = (!isNaN(nx) && !isNaN(ny)) ? nx - ny : x.localeCompare(y, "vi");
      return asc ? c : -c;
    }}).forEach(function (r) {{ body.appendChild(r); }});
  }});
}});
</script>
</body></html>
"""
