"""Drives the sfpg emulator with the unmodified simple-salesforce client.

simple-salesforce hard-wires Salesforce's login hosts and `https://`, so the test logs in
itself through the emulator's token endpoint, then hands simple-salesforce the session id
and instance URL, with a requests session that trusts the emulator's self-signed
certificate. `tests/conformance.rs` starts the emulator and sets the environment below.
"""

import json
import os
import uuid

import pytest
import requests
from simple_salesforce import Salesforce
from simple_salesforce.exceptions import (
    SalesforceExpiredSession,
    SalesforceMalformedRequest,
    SalesforceResourceNotFound,
)

API_VERSION = os.environ.get("SFPG_EMULATOR_API_VERSION", "62.0")


def env(name):
    value = os.environ.get(name)
    if not value:
        pytest.skip(f"{name} is not set; run through `cargo test --test conformance`")
    return value


@pytest.fixture(scope="module")
def http():
    session = requests.Session()
    # REQUESTS_CA_BUNDLE / CURL_CA_BUNDLE in the environment would override `verify`.
    session.trust_env = False
    session.verify = env("SFPG_EMULATOR_CA_FILE")
    return session


@pytest.fixture(scope="module")
def token(http):
    response = http.post(
        env("SFPG_EMULATOR_TOKEN_URL"),
        data={
            "grant_type": "password",
            "client_id": env("SFPG_EMULATOR_CLIENT_ID"),
            "client_secret": env("SFPG_EMULATOR_CLIENT_SECRET"),
            "username": env("SFPG_EMULATOR_USERNAME"),
            "password": env("SFPG_EMULATOR_PASSWORD"),
        },
        timeout=30,
    )
    assert response.status_code == 200, response.text
    return response.json()


@pytest.fixture(scope="module")
def sf(http, token):
    return Salesforce(
        instance_url=token["instance_url"],
        session_id=token["access_token"],
        version=API_VERSION,
        session=http,
    )


def unique(prefix):
    return f"{prefix} {uuid.uuid4().hex[:10]}"


def test_token_response_has_salesforce_shape(token):
    assert token["token_type"] == "Bearer"
    assert token["instance_url"].startswith("https://")
    assert "/id/00D" in token["id"]
    assert token["issued_at"].isdigit() and len(token["issued_at"]) == 13
    assert "signature" in token
    assert "refresh_token" not in token
    assert "expires_in" not in token


def test_describe_global_and_object(sf):
    names = {o["name"] for o in sf.describe()["sobjects"]}
    assert {"Account", "Contact", "Invoice__c"} <= names
    describe = sf.Invoice__c.describe()
    fields = {f["name"]: f for f in describe["fields"]}
    assert fields["Total__c"]["calculated"] is True
    assert fields["External_Id__c"]["externalId"] is True
    assert fields["Status__c"]["restrictedPicklist"] is True
    assert describe["keyPrefix"] == "a01"


def test_create_get_update_delete(sf):
    name = unique("Conformance")
    created = sf.Account.create({"Name": name, "Industry": "Energy"})
    assert created["success"] is True and created["errors"] == []
    account_id = created["id"]
    assert len(account_id) == 18 and account_id.startswith("001")

    record = sf.Account.get(account_id)
    assert record["Name"] == name
    assert record["attributes"]["type"] == "Account"
    assert record["CreatedDate"].endswith(".000+0000")

    assert sf.Account.update(account_id, {"Industry": "Banking"}) == 204
    assert sf.Account.get(account_id)["Industry"] == "Banking"

    assert sf.Account.delete(account_id) == 204
    with pytest.raises(SalesforceResourceNotFound):
        sf.Account.get(account_id)
    deleted = sf.query_all(
        f"SELECT Id, IsDeleted FROM Account WHERE Id = '{account_id}'", include_deleted=True
    )
    assert deleted["totalSize"] == 1 and deleted["records"][0]["IsDeleted"] is True
    assert sf.query(f"SELECT Id FROM Account WHERE Id = '{account_id}'")["totalSize"] == 0


def test_upsert_by_external_id(sf):
    external_id = uuid.uuid4().hex[:20]
    assert sf.Invoice__c.upsert(f"External_Id__c/{external_id}", {"Amount__c": 100, "Tax__c": 10}) == 201
    assert sf.Invoice__c.upsert(f"External_Id__c/{external_id}", {"Amount__c": 200}) in (200, 204)
    result = sf.query(
        f"SELECT Id, Amount__c, Total__c, Status__c FROM Invoice__c "
        f"WHERE External_Id__c = '{external_id}'"
    )
    assert result["totalSize"] == 1
    invoice = result["records"][0]
    assert invoice["Amount__c"] == 200
    assert invoice["Total__c"] == pytest.approx(220)
    assert invoice["Status__c"] == "Draft"


def test_query_and_query_all_page_with_next_records_url(sf):
    marker = uuid.uuid4().hex[:8]
    records = [
        {"attributes": {"type": "Account"}, "Name": f"Paging {marker} {i:03d}"}
        for i in range(450)
    ]
    for start in range(0, len(records), 200):
        results = sf.restful(
            "composite/sobjects",
            method="POST",
            data=json.dumps({"allOrNone": True, "records": records[start : start + 200]}),
        )
        assert all(r["success"] for r in results)

    soql = f"SELECT Id, Name FROM Account WHERE Name LIKE 'Paging {marker}%' ORDER BY Name"
    first = sf.query(soql, headers={"Sforce-Query-Options": "batchSize=200"})
    assert first["totalSize"] == 450
    assert first["done"] is False
    assert len(first["records"]) == 200
    assert first["nextRecordsUrl"].startswith(f"/services/data/v{API_VERSION}/query/0r8")
    second = sf.query_more(first["nextRecordsUrl"], identifier_is_url=True)
    assert second["totalSize"] == 450 and len(second["records"]) == 200

    everything = sf.query_all(soql, headers={"Sforce-Query-Options": "batchSize=200"})
    names = [r["Name"] for r in everything["records"]]
    assert len(names) == 450
    assert names == sorted(names)

    doomed = everything["records"][0]["Id"]
    sf.Account.delete(doomed)
    assert sf.query_all(soql)["totalSize"] == 449
    assert sf.query_all(soql, include_deleted=True)["totalSize"] == 450


def test_collections_all_or_none(sf):
    ok = {"attributes": {"type": "Invoice__c"}, "Amount__c": 5}
    bad = {"attributes": {"type": "Invoice__c"}, "Amount__c": 5, "Status__c": "Bogus"}
    results = sf.restful(
        "composite/sobjects",
        method="POST",
        data=json.dumps({"allOrNone": True, "records": [ok, bad]}),
    )
    assert [r["success"] for r in results] == [False, False]
    assert results[0]["errors"][0]["statusCode"] == "ALL_OR_NONE_OPERATION_ROLLED_BACK"
    assert results[1]["errors"][0]["statusCode"] == "INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST"

    results = sf.restful(
        "composite/sobjects",
        method="POST",
        data=json.dumps({"allOrNone": False, "records": [ok, bad]}),
    )
    assert [r["success"] for r in results] == [True, False]
    created = results[0]["id"]

    fetched = sf.restful(
        "composite/sobjects/Invoice__c",
        method="GET",
        params={"ids": created, "fields": "Id,Amount__c"},
    )
    assert fetched[0]["Amount__c"] == 5

    deleted = sf.restful(
        "composite/sobjects",
        method="DELETE",
        params={"ids": created, "allOrNone": "false"},
    )
    assert deleted == [{"id": created, "success": True, "errors": []}]


def test_salesforce_errors_reach_the_client(sf):
    with pytest.raises(SalesforceMalformedRequest) as malformed:
        sf.query("SELECT Id FROM Account WHERE")
    assert malformed.value.content[0]["errorCode"] == "MALFORMED_QUERY"
    with pytest.raises(SalesforceMalformedRequest) as invalid:
        sf.query("SELECT Bogus__c FROM Account")
    assert invalid.value.content[0]["errorCode"] == "INVALID_FIELD"
    with pytest.raises(SalesforceResourceNotFound):
        sf.Bogus__c.describe()


def test_limits_and_api_usage(sf):
    sf.query("SELECT Id FROM Account LIMIT 1")
    usage = sf.api_usage["api-usage"]
    assert 0 < usage.used <= usage.total
    limits = sf.limits()
    daily = limits["DailyApiRequests"]
    assert daily["Max"] == usage.total
    assert daily["Remaining"] <= usage.total - usage.used


def test_expired_session_is_reported(http, token):
    stale = Salesforce(
        instance_url=token["instance_url"],
        session_id="00D000000000000!not-a-session",
        version=API_VERSION,
        session=http,
    )
    with pytest.raises(SalesforceExpiredSession):
        stale.query("SELECT Id FROM Account LIMIT 1")
