//! How records come out: attributes, canonical names, parent fields nested under their
//! relationship, custom relationships and formulas.

use super::*;

#[test]
fn renders_records_with_attributes_and_canonical_names() {
    let org = TestOrg::new();
    let (_, records) = org
        .query("select name, ID, annualrevenue, numberofemployees, createddate, billingaddress from account where name = 'acme'")
        .unwrap();
    let acme = id("001", 1);
    assert_eq!(
        records,
        vec![json!({
            "attributes": {"type": "Account", "url": format!("/services/data/v62.0/sobjects/Account/{acme}")},
            "Name": "Acme",
            "Id": acme,
            "AnnualRevenue": 5000.0,
            "NumberOfEmployees": 10,
            "CreatedDate": "2024-03-01T09:00:00.000+0000",
            "BillingAddress": {"city": "Paris"},
        })]
    );
    // Keys keep the order Salesforce writes them in: attributes, then SELECT order.
    let keys: Vec<&String> = records[0].as_object().unwrap().keys().collect();
    assert_eq!(
        keys,
        [
            "attributes",
            "Name",
            "Id",
            "AnnualRevenue",
            "NumberOfEmployees",
            "CreatedDate",
            "BillingAddress"
        ]
    );
}

#[test]
fn parent_fields_nest_under_the_relationship() {
    let org = TestOrg::new();
    let (_, records) = org
        .query("SELECT Account.Name, LastName, account.industry, Account.Owner.Name FROM Contact ORDER BY LastName")
        .unwrap();
    let acme = id("001", 1);
    assert_eq!(
        records[0],
        json!({
            "attributes": {"type": "Contact", "url": format!("/services/data/v62.0/sobjects/Contact/{}", id("003", 3))},
            "Account": {
                "attributes": {"type": "Account", "url": format!("/services/data/v62.0/sobjects/Account/{}", id("001", 2))},
                "Name": "beta corp",
                "Industry": "Banking",
                "Owner": {
                    "attributes": {"type": "User", "url": format!("/services/data/v62.0/sobjects/User/{}", id("005", 2))},
                    "Name": "Bob",
                },
            },
            "LastName": "Adams",
        })
    );
    assert_eq!(
        records[1]["Account"]["attributes"]["url"],
        format!("/services/data/v62.0/sobjects/Account/{acme}")
    );
    // An empty lookup renders as null.
    let orphan = records.iter().find(|r| r["LastName"] == "Orphan").unwrap();
    assert_eq!(orphan["Account"], serde_json::Value::Null);
}

#[test]
fn custom_relationships_and_formulas() {
    let org = TestOrg::new();
    let (_, records) = org
        .query("SELECT Name, Account__r.Name, Account_Name__c FROM Invoice__c WHERE Account_Name__c != null ORDER BY Account_Name__c DESC")
        .unwrap();
    assert_eq!(records.len(), 2);
    assert_eq!(records[0]["Account__r"]["Name"], "beta corp");
    assert_eq!(records[0]["Account_Name__c"], "beta corp");
    assert_eq!(records[1]["Account_Name__c"], "Acme");
    assert_eq!(
        org.names("SELECT Name FROM Invoice__c WHERE Account__r.Name LIKE 'ac%'"),
        ["INV-0"]
    );
}
