"""Drives the emulator's Bulk API 2.0 query jobs with simple-salesforce's unmodified
`bulk2` client: `query` and `query_all` page by `Sforce-Locator` until the literal
`null`, and `download` streams the pages into files.

The fixtures (`sf`, a logged-in client over the emulator's certificate) come from
`test_simple_salesforce.py`; `tests/conformance.rs` starts the emulator.
"""

import csv
import io
import math

from test_simple_salesforce import http, sf, token, unique  # noqa: F401 (fixtures)

# The emulator's jobs take half a second by default; simple-salesforce waits this long
# before its first poll.
WAIT = 0.2


def rows(pages):
    """The records of every page (each page repeats the header row)."""
    out = []
    for page in pages:
        reader = csv.reader(io.StringIO(page))
        assert next(reader) == ["Id", "Name"]
        out.extend(reader)
    return out


def test_bulk2_query_pages_by_locator(sf):
    total = sf.query("SELECT COUNT() FROM Account")["totalSize"]
    pages = list(
        sf.bulk2.Account.query("SELECT Id, Name FROM Account", max_records=40, wait=WAIT)
    )
    assert len(pages) == math.ceil(total / 40)
    records = rows(pages)
    assert len(records) == total
    ids = [r[0] for r in records]
    # Without ORDER BY, records come in Id order.
    assert ids == sorted(ids) and len(set(ids)) == total
    # Every value is quoted in the CSV itself.
    assert pages[0].splitlines()[1].startswith('"001')


def test_bulk2_query_all_sees_the_recycle_bin(sf):
    name = unique("Bulk deleted")
    account_id = sf.Account.create({"Name": name})["id"]
    sf.Account.delete(account_id)
    soql = f"SELECT Id, Name FROM Account WHERE Name = '{name}'"
    assert rows(sf.bulk2.Account.query(soql, wait=WAIT)) == []
    assert rows(sf.bulk2.Account.query_all(soql, wait=WAIT)) == [[account_id, name]]


def test_bulk2_download_writes_every_page(sf, tmp_path):
    total = sf.query("SELECT COUNT() FROM Account")["totalSize"]
    results = sf.bulk2.Account.download(
        "SELECT Id, Name FROM Account", path=str(tmp_path), max_records=100, wait=WAIT
    )
    assert sum(r["number_of_records"] for r in results) == total
    assert results[-1]["locator"] == ""
    written = 0
    for result in results:
        with open(result["file"], newline="", encoding="utf-8") as f:
            written += len(list(csv.reader(f))) - 1
    assert written == total
