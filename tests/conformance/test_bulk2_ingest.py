"""simple-salesforce's Bulk API 2.0 ingest (`sf.bulk2.X.insert/update/upsert/delete/
hard_delete` and the three result files), unmodified, against the emulator.

The session fixtures are `test_simple_salesforce`'s.
"""

import csv
import io
import uuid

from test_simple_salesforce import http, sf, token, unique  # noqa: F401 (fixtures)

# simple-salesforce sleeps this long before its first poll (5 s by default).
WAIT = 0.1


def rows(text):
    return list(csv.DictReader(io.StringIO(text)))


def test_bulk2_insert_reports_successes_and_failures(sf):
    name = unique("Bulk2")
    jobs = sf.bulk2.Account.insert(
        records=[{"Name": name, "Industry": "Energy"}, {"Name": "", "Industry": "Energy"}],
        wait=WAIT,
    )
    assert len(jobs) == 1
    job = jobs[0]
    assert job["numberRecordsTotal"] == 2
    assert job["numberRecordsProcessed"] == 2
    assert job["numberRecordsFailed"] == 1

    ok = rows(sf.bulk2.Account.get_successful_records(job["job_id"]))
    assert len(ok) == 1
    assert ok[0]["sf__Created"] == "true" and ok[0]["Name"] == name
    assert sf.Account.get(ok[0]["sf__Id"])["Industry"] == "Energy"
    failed = rows(sf.bulk2.Account.get_failed_records(job["job_id"]))
    assert failed == [
        {
            "sf__Id": "",
            "sf__Error": "REQUIRED_FIELD_MISSING:Required fields are missing: [Name]:Name --",
            "Name": "",
            "Industry": "Energy",
        }
    ]
    assert rows(sf.bulk2.Account.get_unprocessed_records(job["job_id"])) == []


def test_bulk2_update_upsert_delete_and_hard_delete(sf):
    account = sf.Account.create({"Name": unique("Bulk2"), "Phone": "555", "Industry": "Energy"})["id"]
    [job] = sf.bulk2.Account.update(records=[{"Id": account, "Phone": "#N/A", "Industry": ""}], wait=WAIT)
    assert job["numberRecordsFailed"] == 0
    record = sf.Account.get(account)
    assert record["Phone"] is None and record["Industry"] == "Energy"

    key = uuid.uuid4().hex[:20]
    [job] = sf.bulk2.Invoice__c.upsert(
        records=[{"External_Id__c": key, "Amount__c": "10"}],
        external_id_field="External_Id__c",
        wait=WAIT,
    )
    [created] = rows(sf.bulk2.Invoice__c.get_successful_records(job["job_id"]))
    assert created["sf__Created"] == "true"
    [job] = sf.bulk2.Invoice__c.upsert(
        records=[{"External_Id__c": key, "Amount__c": "20"}],
        external_id_field="External_Id__c",
        wait=WAIT,
    )
    [updated] = rows(sf.bulk2.Invoice__c.get_successful_records(job["job_id"]))
    assert updated["sf__Created"] == "false" and updated["sf__Id"] == created["sf__Id"]
    assert sf.Invoice__c.get(created["sf__Id"])["Amount__c"] == 20

    [job] = sf.bulk2.Account.delete(records=[{"Id": account}], wait=WAIT)
    assert job["numberRecordsFailed"] == 0
    in_bin = sf.query_all(f"SELECT Id, IsDeleted FROM Account WHERE Id = '{account}'", include_deleted=True)
    assert in_bin["records"][0]["IsDeleted"] is True

    [job] = sf.bulk2.Invoice__c.hard_delete(records=[{"Id": created["sf__Id"]}], wait=WAIT)
    assert job["numberRecordsFailed"] == 0
    gone = sf.query_all(
        f"SELECT Id FROM Invoice__c WHERE Id = '{created['sf__Id']}'", include_deleted=True
    )
    assert gone["totalSize"] == 0
