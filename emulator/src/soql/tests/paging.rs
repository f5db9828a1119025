//! Order, pages and counts: `ORDER BY` with nulls and several keys, pages as slices of the
//! whole, `LIMIT` and `OFFSET`, `COUNT()`, the recycle bin, Ids in either length, and the
//! store-facing Id scan.

use super::*;

#[test]
fn order_by_with_nulls_and_several_keys() {
    let org = TestOrg::new();
    // Ascending puts nulls first, descending last.
    assert_eq!(
        org.names("SELECT Name FROM Account ORDER BY Industry"),
        ["Gamma 100%", "beta corp", "Acme", "Älter"]
    );
    assert_eq!(
        org.names("SELECT Name FROM Account ORDER BY Industry DESC, Name DESC"),
        ["Älter", "Acme", "beta corp", "Gamma 100%"]
    );
    assert_eq!(
        org.names("SELECT Name FROM Account ORDER BY Industry ASC NULLS LAST, Name"),
        ["beta corp", "Acme", "Älter", "Gamma 100%"]
    );
    assert_eq!(
        org.names("SELECT Name FROM Account ORDER BY NumberOfEmployees DESC NULLS FIRST"),
        ["Gamma 100%", "beta corp", "Acme", "Älter"]
    );
    // Text sorts without regard to case.
    assert_eq!(
        org.names("SELECT LastName FROM Contact ORDER BY LastName"),
        ["Adams", "jones", "Orphan", "Smith"]
    );
    // By a parent's field; the orphan's null parent sorts first.
    assert_eq!(
        org.names("SELECT LastName FROM Contact ORDER BY Account.Name, LastName DESC"),
        ["Orphan", "Smith", "jones", "Adams"]
    );
    assert_eq!(
        org.names("SELECT LastName FROM Contact ORDER BY DoNotCall DESC, LastName"),
        ["Smith", "Adams", "jones", "Orphan"]
    );
}

#[test]
fn pages_of_an_ordered_query_are_slices_of_the_whole() {
    let org = TestOrg::new();
    for order in [
        "Industry",
        "Industry DESC",
        "NumberOfEmployees NULLS LAST",
        "Owner.Name, Name DESC",
    ] {
        let whole = org.names(&format!("SELECT Name FROM Account ORDER BY {order}"));
        for offset in 0..=4 {
            for limit in 0..=4 {
                let page = org.names(&format!(
                    "SELECT Name FROM Account ORDER BY {order} LIMIT {limit} OFFSET {offset}"
                ));
                let end = (offset + limit).min(whole.len());
                let expected = whole.get(offset.min(end)..end).unwrap_or_default();
                assert_eq!(page, expected, "{order} LIMIT {limit} OFFSET {offset}");
            }
        }
    }
    // Ties keep Id order: Acme and Älter share an industry and come in Id order.
    assert_eq!(
        org.names("SELECT Name FROM Account WHERE Industry = 'Energy' ORDER BY Industry LIMIT 1"),
        ["Acme"]
    );
}

#[test]
fn limit_and_offset() {
    let org = TestOrg::new();
    assert_eq!(
        org.names("SELECT Name FROM Account ORDER BY Name LIMIT 2"),
        ["Acme", "beta corp"]
    );
    assert_eq!(
        org.names("SELECT Name FROM Account ORDER BY Name LIMIT 2 OFFSET 1"),
        ["beta corp", "Gamma 100%"]
    );
    assert_eq!(
        org.names("SELECT Name FROM Account ORDER BY Name OFFSET 3"),
        ["Älter"]
    );
    assert!(org.names("SELECT Name FROM Account LIMIT 0").is_empty());
    assert!(org.names("SELECT Name FROM Account OFFSET 2000").is_empty());
    let e = org.error("SELECT Name FROM Account OFFSET 2001");
    assert_eq!(e.error_code, ErrorCode::NumberOutsideValidRange);
    assert_eq!(e.message, "Maximum SOQL offset allowed is 2000");
}

#[test]
fn count() {
    let org = TestOrg::new();
    let count = |text: &str| {
        let (plan, records) = org.query(text).unwrap();
        assert!(plan.is_count(), "{text}");
        records.len()
    };
    assert_eq!(count("SELECT COUNT() FROM Account"), 4);
    assert_eq!(
        count("SELECT COUNT() FROM Account WHERE Industry = 'Energy'"),
        2
    );
    assert_eq!(count("SELECT COUNT() FROM Contact"), 4);
    assert_eq!(count("SELECT COUNT() FROM Account LIMIT 3"), 3);
    assert!(!org.query("SELECT Id FROM Account").unwrap().0.is_count());
    // count() agrees with select() without ordering anything.
    for text in [
        "SELECT COUNT() FROM Account",
        "SELECT COUNT() FROM Account WHERE Name LIKE '%a%'",
        "SELECT COUNT() FROM Account LIMIT 2 OFFSET 1",
        "SELECT COUNT() FROM Account OFFSET 9",
    ] {
        let (plan, records) = org.query(text).unwrap();
        let account = org.def("Account");
        assert_eq!(
            plan.count(&org, account, org.all(account)),
            records.len(),
            "{text}"
        );
    }
}

#[test]
fn recycle_bin_is_visible_to_query_all_only() {
    let org = TestOrg::new();
    assert!(
        !org.names("SELECT LastName FROM Contact")
            .contains(&"Deleted".to_string())
    );
    assert!(
        org.names("SELECT LastName FROM Contact WHERE IsDeleted = true")
            .is_empty()
    );
    let (_, all) = org
        .run(
            "SELECT LastName, IsDeleted FROM Contact WHERE IsDeleted = true",
            true,
        )
        .unwrap();
    assert_eq!(all.len(), 1);
    assert_eq!(all[0]["IsDeleted"], true);
}

#[test]
fn ids_in_either_length_and_case() {
    let org = TestOrg::new();
    let acme = id("001", 1);
    let short = &acme[..15];
    for literal in [acme.clone(), short.to_string(), acme.to_lowercase()] {
        assert_eq!(
            org.names(&format!("SELECT Name FROM Account WHERE Id = '{literal}'")),
            ["Acme"],
            "{literal}"
        );
    }
    assert_eq!(
        org.names(&format!(
            "SELECT LastName FROM Contact WHERE AccountId = '{short}'"
        )),
        ["Smith", "jones"]
    );
    assert_eq!(
        org.names(&format!(
            "SELECT Name FROM Account WHERE Id > '{acme}' ORDER BY Id LIMIT 2"
        )),
        ["beta corp", "Gamma 100%"]
    );
}

#[test]
fn id_scan_reports_top_level_id_bounds() {
    let org = TestOrg::new();
    let (a, b, c) = (id("001", 1), id("001", 2), id("001", 3));
    let scan = |text: &str| org.query(text).unwrap().0.id_scan().clone();
    let s = scan(&format!(
        "SELECT Id FROM Account WHERE Id > '{a}' AND Name != null AND Id <= '{c}' ORDER BY Id LIMIT 200"
    ));
    assert_eq!(s.lower, Bound::Excluded(a.clone()));
    assert_eq!(s.upper, Bound::Included(c.clone()));
    assert_eq!(s.only, None);
    assert!(s.contains(&b) && !s.contains(&a));
    let s = scan(&format!(
        "SELECT Id FROM Account WHERE Id >= '{a}' AND Id > '{b}'"
    ));
    assert_eq!(s.lower, Bound::Excluded(b.clone()));
    let s = scan(&format!(
        "SELECT Id FROM Account WHERE Id IN ('{c}', '{a}', '{c}')"
    ));
    assert_eq!(s.only, Some(vec![a.clone(), c.clone()]));
    let s = scan(&format!(
        "SELECT Id FROM Account WHERE Id IN ('{c}', '{a}') AND Id = '{a}'"
    ));
    assert_eq!(s.only, Some(vec![a.clone()]));
    // Only conjuncts on the object's own Id bound the scan.
    let s = scan(&format!(
        "SELECT Id FROM Account WHERE Id > '{a}' OR Name = 'x'"
    ));
    assert_eq!(s, IdScan::default());
    let s = scan(&format!("SELECT Id FROM Contact WHERE AccountId > '{a}'"));
    assert_eq!(s, IdScan::default());
}

#[test]
fn id_ordered_scans_stop_at_the_limit() {
    let org = TestOrg::new();
    let plan = |text: &str| {
        compile(
            text,
            &org,
            &QueryOptions {
                now: now(),
                include_deleted: false,
            },
        )
        .unwrap()
    };
    assert!(plan("SELECT Id FROM Account ORDER BY Id LIMIT 2").id_ordered());
    assert!(plan("SELECT Id FROM Account ORDER BY id ASC").id_ordered());
    assert!(plan("SELECT Id FROM Account").id_ordered());
    assert!(!plan("SELECT Id FROM Account ORDER BY Id DESC").id_ordered());
    assert!(!plan("SELECT Id FROM Account ORDER BY Name").id_ordered());
    assert!(!plan("SELECT Id FROM Account ORDER BY Id, Name").id_ordered());

    let p = plan("SELECT Id FROM Account ORDER BY Id LIMIT 2 OFFSET 1");
    let account = org.def("Account");
    let mut read = 0;
    let got = p.select(&org, account, org.all(account).inspect(|_| read += 1));
    assert_eq!(got.len(), 2);
    assert_eq!(
        read, 3,
        "the scan stops once OFFSET + LIMIT records matched"
    );
}
