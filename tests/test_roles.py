"""Roles across a collection, checked on the seed gold."""
import csv
import json
from vnpol.cli import main
from vnpol.corpus import Document, Entity, Relation
from vnpol.roles import article_date, canonical, collect, parse_date


def row(table, person, position):
    return [(r.organisation, r.first_date, r.n_articles) for r in table.roles if r.person == person and r.position == position]


def test_roles_of_seed_people_with_article_dates(seed_docs):
    table = collect(seed_docs)
    # seed 001 opens "Chiều 11/10" and cites a directive of 9/3/2021: the meeting is 11/10/2021, not 9/3/2021
    assert row(table, "Trương Thị Mai", "Trưởng") == [("Ban Tổ chức Trung ương", "2021-10-11", 1)]
    assert row(table, "Phan Đình Trạc", "Ủy viên") == [("Bộ Chính trị", "2021-10-11", 1)]
    assert row(table, "Phạm Minh Chính", "Trưởng") == [("Ban Tổ chức Trung ương", "2017-03-04", 1)]
    assert row(table, "Mai Tiến Dũng", "Chủ nhiệm") == [("Văn phòng Chính phủ", "2019-09-06", 1)]
    # the short form "Đảng ủy Khối" resolves to the full name given in the same article
    assert row(table, "Đào Ngọc Dung", "Bí thư") == [("Đảng ủy Khối các cơ quan Trung ương", "2012-10-25", 1)]
    # seed 000 states no year: no date rather than a wrong one
    assert row(table, "Trần Đại Quang", "Bộ trưởng") == [("Bộ Công an", None, 1)]
    assert ("Nguyễn Tấn Dũng", "Liên hợp quốc") in {(m.head, m.tail) for m in table.meets}


def test_dates_from_metadata_or_first_full_date_in_text():
    assert parse_date("Thứ Năm, 21/6/2018") .isoformat() == "2018-06-21"
    assert parse_date("ngày 5 tháng 3 năm 2021").isoformat() == "2021-03-05"
    assert parse_date("Sáng 4/9") is None
    doc = Document("x", "Sáng 4/9. Hà Nội, 06/09/2019", [Entity("T1", 0, 8, "DATE", "Sáng 4/9"), Entity("T2", 18, 28, "DATE", "06/09/2019")])
    assert article_date(doc) == (parse_date("2020-09-04"), "text (year inferred)")  # 4/9 after 6/9/2019: the next year
    doc = Document("y", "Hà Nội, 06/09/2019. Sáng 4/9", [Entity("T1", 8, 18, "DATE", "06/09/2019"), Entity("T2", 20, 28, "DATE", "Sáng 4/9")])
    assert article_date(doc) == (parse_date("2019-09-06"), "text")
    doc.meta["date"] = "2020-01-02"
    assert article_date(doc)[1] == "metadata"


def test_names_merge_across_spelling_case_and_abbreviation():
    assert canonical("Thuỷ") == canonical("Thủy")
    assert canonical("Tổng Bí thư") == canonical("Tổng bí thư")
    assert canonical("UBND tỉnh Quảng Ninh") == canonical("Ủy ban nhân dân tỉnh Quảng Ninh")


def _doc(doc_id, date, person, position, org):
    text = f"{position} {org} {person} phát biểu."
    a, b = len(position) + 1, len(position) + 1 + len(org)
    ents = [Entity("T1", 0, len(position), "POS", position), Entity("T2", a, b, "ORG", org), Entity("T3", b + 1, b + 1 + len(person), "PER", person)]
    return Document(doc_id, text, ents, [Relation("T3", "T1", "HAS_POSITION", 0.9), Relation("T1", "T2", "POSITION_AT", 0.8)], {"date": date})


def test_same_name_is_one_person_only_when_positions_overlap():
    docs = [_doc("a", "2020-01-01", "Nguyễn Văn Hùng", "Chủ tịch", "UBND tỉnh Lạng Sơn"),
            _doc("b", "2021-05-01", "Nguyễn Văn Hùng", "Chủ tịch", "Ủy ban nhân dân tỉnh Lạng Sơn"),
            _doc("c", "2022-01-01", "Nguyễn Văn Hùng", "Giám đốc", "Sở Y tế Cà Mau")]
    table = collect(docs)
    merged = [r for r in table.roles if r.position == "Chủ tịch"]
    assert len(merged) == 1 and merged[0].articles == ["a", "b"]
    assert (merged[0].first_date, merged[0].last_date) == ("2020-01-01", "2021-05-01")
    assert merged[0].surface_forms["organisation"] == ["UBND tỉnh Lạng Sơn", "Ủy ban nhân dân tỉnh Lạng Sơn"]
    assert merged[0].best_score == 0.8
    other = [r for r in table.roles if r.position == "Giám đốc"]
    assert other[0].person == "Nguyễn Văn Hùng (2)"


def test_cli_roles_writes_csv_jsonl_and_html(tmp_path):
    out = tmp_path / "roles.csv"
    assert main(["roles", "seeds/gold.jsonl", "--csv", str(out), "--meets-csv", str(tmp_path / "m.csv"),
                 "--jsonl", str(tmp_path / "r.jsonl"), "--html", str(tmp_path / "r.html")]) == 0
    rows = list(csv.DictReader(open(out, encoding="utf-8")))
    assert any(r["person"] == "Trương Thị Mai" and r["organisation"] == "Bộ Chính trị" for r in rows)
    assert json.loads((tmp_path / "r.jsonl").read_text(encoding="utf-8").splitlines()[0])["table"] == "roles"
    page = (tmp_path / "r.html").read_text(encoding="utf-8")
    assert "Trương Thị Mai" in page and "sortable" in page and 'class="bar"' in page
