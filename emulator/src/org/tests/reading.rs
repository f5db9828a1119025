//! Reading the org: the replication windows, objects tests define, describe, Id-range
//! queries in creation order, and pages written in place.

use super::*;

#[test]
fn replication_windows() {
    let mut f = fixture();
    let a = f.account("A");
    f.clock.advance(Duration::minutes(10));
    let b = f.account("B");
    let t0 = start();
    let updated = f
        .org
        .updated("Account", t0, t0 + Duration::minutes(5))
        .unwrap();
    assert_eq!(updated["ids"], json!([a.as_str()]));
    assert_eq!(
        updated["latestDateCovered"],
        json!("2024-03-01T12:05:00.000+0000")
    );
    let updated = f
        .org
        .updated(
            "Account",
            t0 + Duration::seconds(30),
            t0 + Duration::hours(2),
        )
        .unwrap();
    assert_eq!(
        updated["ids"],
        json!([a.as_str(), b.as_str()]),
        "seconds are ignored"
    );
    assert_eq!(
        updated["latestDateCovered"],
        json!("2024-03-01T12:10:00.000+0000")
    );
    let e = f
        .org
        .updated("Account", t0, t0 + Duration::seconds(40))
        .unwrap_err();
    assert_eq!(e.error_code, "INVALID_REPLICATION_DATE");
    let e = f
        .org
        .updated("Account", t0 - Duration::days(31), t0)
        .unwrap_err();
    assert_eq!(e.error_code, "INVALID_REPLICATION_DATE");
    assert!(
        f.org
            .deleted("Account", t0 - Duration::days(14), t0)
            .is_ok()
    );
    let e = f
        .org
        .deleted("Account", t0 - Duration::days(16), t0)
        .unwrap_err();
    assert_eq!(e.error_code, "INVALID_REPLICATION_DATE");
    let deleted = f
        .org
        .deleted("Account", t0, t0 + Duration::hours(1))
        .unwrap();
    assert_eq!(
        deleted["earliestDateAvailable"],
        json!("2024-03-01T12:00:00.000+0000")
    );
    let e = f
        .org
        .updated("Nope", t0, t0 + Duration::hours(1))
        .unwrap_err();
    assert_eq!(e.status, 404);
    let mut def = ObjectDef::from_json(
        r#"{"name": "Log__c", "label": "Log", "labelPlural": "Logs", "keyPrefix": "a0L",
            "replicateable": false, "fields": []}"#,
    )
    .unwrap();
    def.custom = true;
    f.org.define_object(def).unwrap();
    let e = f
        .org
        .updated("Log__c", t0, t0 + Duration::hours(1))
        .unwrap_err();
    assert_eq!(e.error_code, "INVALID_TYPE");
}

#[test]
fn tests_can_define_their_own_objects() {
    let mut f = fixture();
    let def = ObjectDef::from_json(
        r#"{"name": "Ticket__c", "label": "Ticket", "labelPlural": "Tickets", "keyPrefix": "a0T",
            "custom": true,
            "fields": [
              {"name": "Name", "label": "Ticket Name", "type": "string", "length": 80,
               "nameField": true, "nillable": false},
              {"name": "Invoice__c", "label": "Invoice", "type": "reference", "custom": true,
               "referenceTo": ["Invoice__c"], "relationshipName": "Invoice__r"},
              {"name": "Invoice_Total__c", "label": "Invoice Total", "type": "currency",
               "precision": 18, "scale": 2, "custom": true, "calculated": true,
               "calculatedFormula": "Invoice__r.Total__c"}
            ]}"#,
    )
    .unwrap();
    f.org.define_object(def.clone()).unwrap();
    assert!(f.org.define_object(def).is_err(), "names are unique");
    let invoice = f
        .create("Invoice__c", json!({"Amount__c": 10, "Tax__c": 20}))
        .unwrap();
    let ticket = f
        .create(
            "Ticket__c",
            json!({"Name": "T", "Invoice__c": invoice.as_str()}),
        )
        .unwrap();
    assert_eq!(ticket.key_prefix(), "a0T");
    assert_eq!(f.get("Ticket__c", &ticket)["Invoice_Total__c"], json!(12.0));
    let describe = f.org.describe("Invoice__c", V).unwrap();
    let children = describe["childRelationships"].as_array().unwrap();
    assert!(
        children
            .iter()
            .any(|c| c["childSObject"] == "Ticket__c" && c["relationshipName"] == "Tickets__r")
    );
}

#[test]
fn describe_reports_definitions() {
    let f = fixture();
    let global = f.org.describe_global(V);
    assert_eq!(global["encoding"], "UTF-8");
    assert_eq!(global["maxBatchSize"], 200);
    let account = global["sobjects"]
        .as_array()
        .unwrap()
        .iter()
        .find(|o| o["name"] == "Account")
        .unwrap();
    assert_eq!(account["keyPrefix"], "001");
    assert_eq!(
        account["urls"]["sobject"],
        "/services/data/v62.0/sobjects/Account"
    );
    let describe = f.org.describe("invoice__c", "v62.0").unwrap();
    assert_eq!(describe["name"], "Invoice__c");
    let fields = describe["fields"].as_array().unwrap();
    let field = |name: &str| fields.iter().find(|x| x["name"] == name).unwrap();
    assert_eq!(field("Total__c")["calculated"], true);
    assert_eq!(
        field("Total__c")["calculatedFormula"],
        "Amount__c * (1 + Tax__c / 100)"
    );
    assert_eq!(field("Total__c")["createable"], false);
    assert_eq!(field("Total__c")["type"], "currency");
    assert_eq!(field("Total__c")["soapType"], "xsd:double");
    assert_eq!(field("Status__c")["restrictedPicklist"], true);
    assert_eq!(
        field("Status__c")["picklistValues"][0],
        json!({"active": true, "defaultValue": true, "label": "Draft", "validFor": null, "value": "Draft"})
    );
    assert_eq!(field("External_Id__c")["externalId"], true);
    assert_eq!(field("Account__c")["relationshipName"], "Account__r");
    assert_eq!(field("Id")["type"], "id");
    let account = f.org.describe("Account", V).unwrap();
    let fields = account["fields"].as_array().unwrap();
    let city = fields.iter().find(|x| x["name"] == "BillingCity").unwrap();
    assert_eq!(city["compoundFieldName"], "BillingAddress");
    assert_eq!(city["length"], 40);
    assert_eq!(city["byteLength"], 120);
    let children = account["childRelationships"].as_array().unwrap();
    assert!(children.iter().any(|c| c["childSObject"] == "Contact"
        && c["field"] == "AccountId"
        && c["relationshipName"] == "Contacts"));
    assert!(f.org.describe("Nope", V).is_err());
    assert_eq!(
        f.org.describe_last_modified("Account"),
        Some(Utc.with_ymd_and_hms(2024, 3, 1, 12, 0, 0).unwrap())
    );
    let info = f.org.basic_info("User", V).unwrap();
    assert_eq!(info["objectDescribe"]["name"], "User");
    assert_eq!(info["recentItems"].as_array().unwrap().len(), 2);
}

#[test]
fn id_range_queries_page_in_creation_order() {
    let mut f = fixture();
    let admin = f.admin;
    let records: Vec<Json> = (0..150)
        .map(|i| record("Account", json!({"Name": format!("A{i:03}")})))
        .collect();
    let results = f.org.collection_create(&records, true, &admin).unwrap();
    let ids: Vec<String> = results.iter().map(|r| r.id.clone().unwrap()).collect();
    let page = f.ids(
        &format!(
            "SELECT Id FROM Account WHERE Id > '{}' ORDER BY Id LIMIT 20",
            ids[99]
        ),
        false,
    );
    assert_eq!(page, ids[100..120]);
    let short = &ids[10][..15];
    let page = f.ids(
        &format!(
            "SELECT Id FROM Account WHERE Id >= '{short}' AND Id < '{}'",
            ids[13]
        ),
        false,
    );
    assert_eq!(page, ids[10..13]);
    let page = f.ids(
        &format!(
            "SELECT Id FROM Account WHERE Id IN ('{}', '{}')",
            ids[5], ids[2]
        ),
        false,
    );
    assert_eq!(page, [ids[2].clone(), ids[5].clone()]);
    let cursor = f.org.query("SELECT COUNT() FROM Account", false).unwrap();
    assert!(cursor.is_count());
    assert_eq!(cursor.total_size(), 150);
    assert!(cursor.is_empty());
    let cursor = f
        .org
        .query("SELECT Name FROM Account ORDER BY Name DESC", false)
        .unwrap();
    assert_eq!(cursor.total_size(), 150);
    let page = f.org.page(&cursor, 140, 50, V);
    assert_eq!(page.len(), 10);
    assert_eq!(page[9]["Name"], "A000");
    let e = f.org.query("SELECT Nope FROM Account", false).unwrap_err();
    assert_eq!((e.status, e.error_code.as_str()), (400, "INVALID_FIELD"));
}

#[test]
fn pages_written_in_place_match_the_rendered_records() {
    let mut f = fixture();
    let account = f
        .create(
            "Account",
            json!({"Name": "Acme", "BillingCity": "Paris", "AnnualRevenue": 1500.5,
                   "NumberOfEmployees": 12}),
        )
        .unwrap();
    f.create(
        "Contact",
        json!({"LastName": "Curie", "AccountId": account.as_str()}),
    )
    .unwrap();
    f.create("Contact", json!({"LastName": "Orphan"})).unwrap();
    let cursor = f
        .org
        .query(
            "SELECT Id, LastName, Account.Name, Account.BillingAddress, Account.AnnualRevenue, \
             Account.NumberOfEmployees, CreatedDate, Birthdate FROM Contact ORDER BY LastName",
            false,
        )
        .unwrap();
    let built = f.org.page(&cursor, 0, 10, V);
    let written: Json = serde_json::from_slice(
        &serde_json::to_vec(&f.org.page_records(&cursor, 0, 10, V)).unwrap(),
    )
    .unwrap();
    assert_eq!(written, Json::Array(built.clone()));
    assert_eq!(
        built[0]["Account"]["BillingAddress"]["city"],
        json!("Paris")
    );
    // Currency(18, 0): rounded to its scale when saved, a JSON number with a fraction.
    assert_eq!(built[0]["Account"]["AnnualRevenue"], json!(1501.0));
    assert_eq!(built[1]["Account"], Json::Null);
    // Audit stamps keep whole seconds; the query API writes milliseconds all the same.
    assert_eq!(
        built[0]["CreatedDate"],
        json!("2024-03-01T12:00:00.000+0000")
    );
}
