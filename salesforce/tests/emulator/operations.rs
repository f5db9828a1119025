//! Operations on real data: query paging through the org, records round-tripped, sObject
//! Collections all or none, describe and versions, and retrieves of more than 200 Ids.

use super::*;

#[tokio::test]
async fn query_pages_through_the_org() {
    let emulator = start(0).await;
    let client = client(&emulator);
    let parent = client
        .sobject("Account")
        .create(&record(json!({"Name": "Parent"})))
        .await
        .unwrap();
    for batch in 0..3 {
        let contacts: Vec<Record> = (0..150)
            .map(|i| {
                record(json!({
                    "attributes": {"type": "Contact"},
                    "LastName": format!("Contact {batch}-{i}"),
                    "AccountId": parent.as_str(),
                }))
            })
            .collect();
        let results = client
            .collections()
            .all_or_none(true)
            .create(&contacts)
            .await
            .unwrap();
        assert!(results.iter().all(|r| r.success));
    }
    emulator.clear_requests();

    let pages: Vec<_> = client
        .query("SELECT Id, LastName, Account.Name FROM Contact")
        .batch_size(200)
        .pages()
        .try_collect()
        .await
        .unwrap();

    assert_eq!(pages[0].total_size, 450);
    assert!(pages.len() >= 2, "{} pages", pages.len());
    assert_eq!(pages.iter().map(|p| p.records.len()).sum::<usize>(), 450);
    assert!(pages.last().unwrap().done);
    let first = &pages[0].records[0];
    assert_eq!(first["attributes"]["type"], "Contact");
    assert_eq!(first["Account"]["Name"], "Parent");
    let requests = api_requests(&emulator);
    assert_eq!(requests.len(), pages.len());
    assert!(
        requests[1..]
            .iter()
            .all(|r| r.path.starts_with("/services/data/v62.0/query/") && r.query.is_none())
    );
    let (used, _) = emulator.api_usage();
    assert_eq!(client.api_usage().unwrap().api.used, used);
}

#[tokio::test]
async fn records_round_trip() {
    let emulator = start(0).await;
    let client = client(&emulator);
    let started = Utc::now() - chrono::Duration::minutes(1);
    let account = client.sobject("Account");

    let id = account
        .create(&record(json!({"Name": "Acme"})))
        .await
        .unwrap();
    assert_eq!(id.key_prefix(), "001");
    assert_eq!(account.get(&id, &[]).await.unwrap()["Name"], "Acme");
    account
        .update(&id, &record(json!({"Name": "Acme Corp"})))
        .await
        .unwrap();

    let invoices = client.sobject("Invoice__c");
    let fields = record(json!({"Account__c": id.as_str(), "Amount__c": 10}));
    let created = invoices
        .upsert("External_Id__c", "INV-1", &fields)
        .await
        .unwrap();
    assert!(created.created);
    let updated = invoices
        .upsert("External_Id__c", "INV-1", &fields)
        .await
        .unwrap();
    assert!(!updated.created);
    assert_eq!(updated.id, created.id);

    let window_end = Utc::now() + chrono::Duration::minutes(1);
    let updated = account.updated(started, window_end).await.unwrap();
    assert!(updated.ids.contains(&id), "{updated:?}");

    let invoice_id = created.id.unwrap();
    invoices.delete(&invoice_id).await.unwrap();
    let error = invoices.get(&invoice_id, &[]).await.unwrap_err();
    assert_eq!(error.error_code(), Some("ENTITY_IS_DELETED"), "{error}");
    let deleted = invoices.deleted(started, window_end).await.unwrap();
    assert!(
        deleted.deleted_records.iter().any(|d| d.id == invoice_id),
        "{deleted:?}"
    );
    let deleted = client
        .query_all(format!(
            "SELECT Id, IsDeleted FROM Invoice__c WHERE Id = '{invoice_id}'"
        ))
        .collect_records()
        .await
        .unwrap();
    assert_eq!(deleted[0]["IsDeleted"], true);
    let live = client
        .query(format!(
            "SELECT Id FROM Invoice__c WHERE Id = '{invoice_id}'"
        ))
        .collect_records()
        .await
        .unwrap();
    assert!(live.is_empty());
}

#[tokio::test]
async fn collections_all_or_none() {
    let emulator = start(0).await;
    let client = client(&emulator);
    let atomic = client.collections().all_or_none(true);

    let valid = record(json!({"attributes": {"type": "Account"}, "Name": "Acme"}));
    let missing_last_name = record(json!({"attributes": {"type": "Contact"}, "FirstName": "Ann"}));
    let results = atomic
        .create(&[valid.clone(), missing_last_name])
        .await
        .unwrap();
    assert!(results.iter().all(|r| !r.success && r.id.is_none()));
    assert_eq!(
        results[0].errors[0].status_code,
        "ALL_OR_NONE_OPERATION_ROLLED_BACK"
    );
    assert_eq!(results[1].errors[0].status_code, "REQUIRED_FIELD_MISSING");
    assert!(results[1].errors[0].fields.iter().any(|f| f == "LastName"));
    let none = client
        .query("SELECT Id FROM Account")
        .collect_records()
        .await
        .unwrap();
    assert!(none.is_empty(), "rolled back records stay unwritten");

    let contact = record(json!({"attributes": {"type": "Contact"}, "LastName": "Ng"}));
    let results = atomic.create(&[valid, contact]).await.unwrap();
    assert!(results.iter().all(|r| r.success));
    let ids: Vec<SalesforceId> = results.into_iter().map(|r| r.id.unwrap()).collect();

    let read = client
        .collections()
        .retrieve("Account", &ids[..1], &["Id", "Name"])
        .await
        .unwrap();
    assert_eq!(read[0].as_ref().unwrap()["Name"], "Acme");

    let renamed = record(
        json!({"attributes": {"type": "Account"}, "id": ids[0].as_str(), "Name": "Acme Corp"}),
    );
    assert!(atomic.update(&[renamed]).await.unwrap()[0].success);

    let deleted = atomic.delete(&ids).await.unwrap();
    assert!(deleted.iter().all(|r| r.success));
}

#[tokio::test]
async fn describe_and_versions() {
    let emulator = start(0).await;
    let client = client(&emulator);
    let versions = client.versions().await.unwrap();
    assert!(versions.iter().any(|v| v.version == "62.0"));

    let global = client.describe_global().await.unwrap();
    assert!(
        global
            .sobjects
            .iter()
            .any(|o| o.name == "Invoice__c" && o.custom)
    );

    let invoice = client.sobject("Invoice__c").describe().await.unwrap();
    let external = invoice.field("External_Id__c").unwrap();
    assert!(external.external_id && external.unique);
    assert!(invoice.field("Total__c").unwrap().calculated);

    let later = Utc::now() + chrono::Duration::minutes(1);
    let answer = client
        .sobject("Invoice__c")
        .describe_if_modified_since(later)
        .await
        .unwrap();
    assert_eq!(answer, Conditional::NotModified);
    let earlier = Utc::now() - chrono::Duration::days(3650);
    let answer = client
        .sobject("Invoice__c")
        .describe_if_modified_since(earlier)
        .await
        .unwrap();
    assert!(matches!(answer, Conditional::Modified(_)));
}

#[tokio::test]
async fn a_retrieve_of_more_than_200_ids_takes_calls_of_at_most_200_in_order() {
    let emulator = start(3000).await;
    let client = client(&emulator);
    let mut ids: Vec<SalesforceId> = client
        .query("SELECT Id FROM Contact ORDER BY Id DESC LIMIT 450")
        .collect_records()
        .await
        .unwrap()
        .iter()
        .map(|r| SalesforceId::parse(r["Id"].as_str().unwrap()).unwrap())
        .collect();
    assert_eq!(ids.len(), 450);
    // An Id that names no record keeps its place, as `None`.
    ids.insert(300, SalesforceId::parse("003000000000000AAA").unwrap());
    let before = api_requests(&emulator).len();

    let records = client
        .collections()
        .retrieve("Contact", &ids, &["Id", "LastName"])
        .await
        .unwrap();

    assert_eq!(records.len(), ids.len());
    for (id, record) in ids.iter().zip(&records) {
        match record {
            Some(record) => assert_eq!(record["Id"], id.as_str()),
            None => assert_eq!(id.as_str(), "003000000000000AAA"),
        }
    }
    assert!(records[300].is_none());
    let calls: Vec<usize> = api_requests(&emulator)[before..]
        .iter()
        .map(|r| {
            assert!(
                r.path.ends_with("/composite/sobjects/Contact"),
                "{}",
                r.path
            );
            let query = r.query.as_deref().unwrap_or_default();
            url::form_urlencoded::parse(query.as_bytes())
                .find(|(k, _)| k == "ids")
                .map_or(0, |(_, v)| v.split(',').count())
        })
        .collect();
    assert_eq!(calls, [200, 200, 51]);
}
