//! Bulk query, org side: what job creation refuses, the snapshot a job takes (Id order,
//! later changes not in it), and the CSV its pages are written as.

use super::*;

fn csv(org: &Org, snapshot: &QuerySnapshot, format: CsvFormat) -> String {
    let mut out = Vec::new();
    org.write_csv_header(snapshot, format, &mut out);
    org.write_csv_rows(snapshot, 0..snapshot.len(), format, &mut out);
    String::from_utf8(out).unwrap()
}

#[test]
fn refusals_carry_bulk_codes_and_messages() {
    let f = fixture();
    let cases = [
        (
            "SELECT Id, BillingAddress FROM Account",
            "API_ERROR",
            "Selecting compound data not supported in Bulk Query",
        ),
        (
            "SELECT Id, (SELECT Id FROM Contacts) FROM Account",
            "API_ERROR",
            "Aggregate Relationships not supported in Bulk V2 Query with CSV content type",
        ),
        (
            "SELECT COUNT() FROM Account",
            "API_ERROR",
            "Aggregate queries are not supported in Bulk V2 Query",
        ),
        (
            "SELECT Id FROM Account LIMIT 5 OFFSET 5",
            "API_ERROR",
            "OFFSET is not supported in Bulk V2 Query",
        ),
        (
            "SELECT Nope__c FROM Account",
            "INVALID_FIELD",
            "No such column",
        ),
        ("SELECT Id FROM Nope", "INVALID_TYPE", "sObject type 'Nope'"),
        ("SELECT Id Account", "MALFORMED_QUERY", "unexpected token"),
    ];
    for (soql, code, message) in cases {
        let e = f.org.bulk_query_plan(soql, false).unwrap_err();
        assert_eq!(e.status, 400, "{soql}");
        assert_eq!(e.error_code, code, "{soql}");
        assert!(e.message.contains(message), "{soql}: {}", e.message);
    }
    assert!(
        f.org
            .bulk_query_plan("SELECT Id, Owner.Name FROM Account", false)
            .is_ok()
    );
}

#[test]
fn csv_keeps_select_order_quotes_everything_and_writes_salesforce_forms() {
    let mut f = fixture();
    let id = f
        .create(
            "Account",
            json!({"Name": "Acme \"Big\", Inc.", "NumberOfEmployees": 12,
                   "AnnualRevenue": 1500, "Active__c": "Yes"}),
        )
        .unwrap();
    let snapshot = f
        .org
        .bulk_snapshot(
            "SELECT Name, Id, Owner.Username, Parent.Name, NumberOfEmployees, \
             AnnualRevenue, CreatedDate, Description FROM Account",
            false,
        )
        .unwrap();
    let text = csv(&f.org, &snapshot, CsvFormat::default());
    assert_eq!(
        text,
        format!(
            "\"Name\",\"Id\",\"Owner.Username\",\"Parent.Name\",\"NumberOfEmployees\",\
             \"AnnualRevenue\",\"CreatedDate\",\"Description\"\n\
             \"Acme \"\"Big\"\", Inc.\",\"{id}\",\"admin@example.com\",\"\",\"12\",\"1500.0\",\
             \"2024-03-01T12:00:00.000Z\",\"\"\n"
        )
    );
    let tabs = CsvFormat {
        delimiter: b'\t',
        line_ending: b"\r\n",
    };
    let snapshot = f
        .org
        .bulk_snapshot("SELECT Id, Name FROM Account", false)
        .unwrap();
    assert_eq!(
        csv(&f.org, &snapshot, tabs),
        format!("\"Id\"\t\"Name\"\r\n\"{id}\"\t\"Acme \"\"Big\"\", Inc.\"\r\n")
    );
}

#[test]
fn snapshot_is_in_id_order_and_keeps_records_as_they_were() {
    let mut f = fixture();
    let ids: Vec<Id> = ["C", "A", "B"].iter().map(|n| f.account(n)).collect();
    let parent = f.account("Parent");
    let child = f
        .create(
            "Account",
            json!({"Name": "Child", "ParentId": parent.as_str()}),
        )
        .unwrap();
    let snapshot = f
        .org
        .bulk_snapshot("SELECT Id, Name, Parent.Name FROM Account", false)
        .unwrap();
    let ordered = f
        .org
        .bulk_snapshot("SELECT Id FROM Account ORDER BY Name DESC", false)
        .unwrap();

    // Changes after the snapshot: an update, a delete, a new record, a renamed parent.
    let admin = f.admin;
    f.org
        .update(
            "Account",
            ids[0].as_str(),
            &body(json!({"Name": "C2"})),
            &admin,
        )
        .unwrap();
    f.org.delete("Account", ids[1].as_str(), &admin).unwrap();
    f.account("D");
    f.org
        .update(
            "Account",
            parent.as_str(),
            &body(json!({"Name": "P2"})),
            &admin,
        )
        .unwrap();

    let text = csv(&f.org, &snapshot, CsvFormat::default());
    let mut expected = String::from("\"Id\",\"Name\",\"Parent.Name\"\n");
    for (id, name, parent_name) in [
        (ids[0], "C", ""),
        (ids[1], "A", ""),
        (ids[2], "B", ""),
        (parent, "Parent", ""),
        (child, "Child", "Parent"),
    ] {
        expected.push_str(&format!("\"{id}\",\"{name}\",\"{parent_name}\"\n"));
    }
    assert_eq!(text, expected);

    let text = csv(&f.org, &ordered, CsvFormat::default());
    let names: Vec<&str> = text.lines().skip(1).collect();
    assert_eq!(
        names,
        [parent, child, ids[0], ids[2], ids[1]]
            .iter()
            .map(|id| format!("\"{id}\""))
            .collect::<Vec<_>>()
    );

    // Pages are ranges of the snapshot.
    let mut page = Vec::new();
    f.org
        .write_csv_rows(&snapshot, 3..10, CsvFormat::default(), &mut page);
    assert_eq!(String::from_utf8(page).unwrap().lines().count(), 2);
}
