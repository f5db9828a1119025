//! The generator's promises: the records asked for, the same org for the same seed, and
//! records related and dated as a sales org's are.

use super::*;
use crate::org::ManualClock;
use chrono::TimeZone;
use std::sync::Arc;

fn org() -> Org {
    let clock = ManualClock::new(Utc.with_ymd_and_hms(2024, 6, 1, 9, 30, 0).unwrap());
    Org::with_clock(Arc::new(clock)).unwrap()
}

fn dump(org: &Org) -> Vec<serde_json::Value> {
    let mut out = Vec::new();
    for object in [
        "User",
        "Product2",
        "Lead",
        "Account",
        "Contact",
        "Opportunity",
        "Invoice__c",
    ] {
        let cursor = org
            .query(
                &format!("SELECT Id, Name, CreatedDate, SystemModstamp FROM {object}"),
                true,
            )
            .unwrap();
        out.extend(org.page(&cursor, 0, cursor.len(), "62.0"));
    }
    out
}

#[test]
fn creates_exactly_the_records_asked_for() {
    let mut org = org();
    let generated = generate(&mut org, 1000, 7).unwrap();
    assert_eq!(generated.total(), 1000);
    assert_eq!(org.total_records(), 1000);
    assert!(generated.accounts > 50 && generated.contacts > generated.accounts);
    assert!(generated.opportunities > 0 && generated.invoices > 0 && generated.leads == 99);
    let small = generate(
        &mut Org::with_clock(Arc::new(ManualClock::new(Utc::now()))).unwrap(),
        3,
        1,
    )
    .unwrap();
    assert_eq!(small.total(), 3);
}

#[test]
fn the_same_seed_gives_the_same_org() {
    let (mut a, mut b, mut c) = (org(), org(), org());
    generate(&mut a, 600, 42).unwrap();
    generate(&mut b, 600, 42).unwrap();
    generate(&mut c, 600, 43).unwrap();
    assert_eq!(dump(&a), dump(&b));
    assert_ne!(dump(&a), dump(&c));
}

#[test]
fn records_are_related_and_dated_in_the_past() {
    let mut org = org();
    generate(&mut org, 800, 3).unwrap();
    let cursor = org
        .query(
            "SELECT Id, Account__r.Name, Account_Name__c, Total__c, Amount__c, CreatedDate \
             FROM Invoice__c",
            false,
        )
        .unwrap();
    let invoices = org.page(&cursor, 0, cursor.len(), "62.0");
    assert!(!invoices.is_empty());
    for invoice in &invoices {
        assert_eq!(invoice["Account__r"]["Name"], invoice["Account_Name__c"]);
        assert!(invoice["Total__c"].as_f64().unwrap() >= invoice["Amount__c"].as_f64().unwrap());
        assert!(invoice["CreatedDate"].as_str().unwrap() < "2024-06-01");
    }
    let cursor = org
        .query("SELECT COUNT() FROM Contact WHERE AccountId = null", false)
        .unwrap();
    assert_eq!(cursor.total_size(), 0);
    let cursor = org
        .query("SELECT Id FROM Opportunity WHERE IsWon = true", false)
        .unwrap();
    assert!(cursor.total_size() > 0);
}

#[test]
fn accounts_only_for_one_large_object() {
    let mut org = org();
    let users_before = org.record_count("User");
    let generated = generate_accounts(&mut org, 250, 3).unwrap();
    assert_eq!(generated.accounts, 250);
    assert_eq!(org.record_count("Account"), 250);
    assert_eq!(org.record_count("Contact"), 0);
    assert_eq!(org.record_count("User") - users_before, generated.users);
    let mut again = self::org();
    generate_accounts(&mut again, 250, 3).unwrap();
    assert_eq!(dump(&org), dump(&again), "the same seed, the same org");
}
