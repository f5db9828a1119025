//! What `WHERE` matches: text without case, SOQL's nulls, numbers, `LIKE`, `INCLUDES` and
//! `EXCLUDES`, boolean logic, dates, datetimes and relative date literals.

use super::*;

#[test]
fn text_filters_ignore_case() {
    let org = TestOrg::new();
    assert_eq!(
        org.names("SELECT Name FROM Account WHERE Name = 'ACME'"),
        ["Acme"]
    );
    assert_eq!(
        org.names("SELECT Name FROM Account WHERE Name = 'älter'"),
        ["Älter"]
    );
    assert_eq!(
        org.names("SELECT Name FROM Account WHERE Name != 'acme'"),
        ["beta corp", "Gamma 100%", "Älter"]
    );
    assert_eq!(
        org.names("SELECT Name FROM Account WHERE Name < 'c' ORDER BY Name"),
        ["Acme", "beta corp"]
    );
    assert_eq!(
        org.names("SELECT Name FROM Account WHERE Name >= 'BETA CORP' AND Name <= 'gamma 100%'"),
        ["beta corp", "Gamma 100%"]
    );
}

#[test]
fn null_semantics_follow_soql() {
    let org = TestOrg::new();
    assert_eq!(
        org.names("SELECT Name FROM Account WHERE Industry = null"),
        ["Gamma 100%"]
    );
    assert_eq!(
        org.names("SELECT Name FROM Account WHERE Industry != null"),
        ["Acme", "beta corp", "Älter"]
    );
    // Unlike SQL, != and NOT IN keep the nulls.
    assert_eq!(
        org.names("SELECT Name FROM Account WHERE Industry != 'Energy'"),
        ["beta corp", "Gamma 100%"]
    );
    assert_eq!(
        org.names("SELECT Name FROM Account WHERE Industry NOT IN ('Banking')"),
        ["Acme", "Gamma 100%", "Älter"]
    );
    assert_eq!(
        org.names("SELECT Name FROM Account WHERE Industry IN ('Banking', null)"),
        ["beta corp", "Gamma 100%"]
    );
    assert_eq!(
        org.names("SELECT Name FROM Account WHERE AnnualRevenue < 100"),
        ["Älter"]
    );
    // A null checkbox is false.
    assert_eq!(
        org.names("SELECT LastName FROM Contact WHERE DoNotCall = false"),
        ["jones", "Adams", "Orphan"]
    );
    assert_eq!(
        org.names("SELECT LastName FROM Contact WHERE DoNotCall = true"),
        ["Smith"]
    );
    // A filter through an empty lookup sees null.
    assert_eq!(
        org.names("SELECT LastName FROM Contact WHERE Account.Name = null"),
        ["Orphan"]
    );
    assert_eq!(
        org.names("SELECT LastName FROM Contact WHERE Account.Name != 'Acme'"),
        ["Adams", "Orphan"]
    );
}

#[test]
fn numbers() {
    let org = TestOrg::new();
    assert_eq!(
        org.names("SELECT Name FROM Account WHERE NumberOfEmployees > 5"),
        ["Acme", "beta corp"]
    );
    assert_eq!(
        org.names("SELECT Name FROM Account WHERE NumberOfEmployees <= 3.5"),
        ["Älter"]
    );
    assert_eq!(
        org.names("SELECT Name FROM Account WHERE AnnualRevenue = 150.50"),
        ["Gamma 100%"]
    );
    assert_eq!(
        org.names("SELECT Name FROM Account WHERE AnnualRevenue > -1 AND AnnualRevenue <> 5000"),
        ["Gamma 100%", "Älter"]
    );
    assert_eq!(
        org.names("SELECT Name FROM Account WHERE NumberOfEmployees IN (3, 10)"),
        ["Acme", "Älter"]
    );
}

#[test]
fn like_patterns() {
    let org = TestOrg::new();
    assert_eq!(
        org.names("SELECT Name FROM Account WHERE Name LIKE 'a%'"),
        ["Acme"]
    );
    assert_eq!(
        org.names("SELECT Name FROM Account WHERE Name LIKE '%CORP'"),
        ["beta corp"]
    );
    assert_eq!(
        org.names("SELECT Name FROM Account WHERE Name LIKE '_cme'"),
        ["Acme"]
    );
    assert_eq!(
        org.names(r"SELECT Name FROM Account WHERE Name LIKE '%\%'"),
        ["Gamma 100%"]
    );
    assert_eq!(
        org.names("SELECT Name FROM Account WHERE Name LIKE 'äl%'"),
        ["Älter"]
    );
    assert_eq!(
        org.names("SELECT Name FROM Account WHERE Industry LIKE 'En%'"),
        ["Acme", "Älter"]
    );
    assert!(
        org.names("SELECT Name FROM Account WHERE Name LIKE 'cme'")
            .is_empty()
    );
}

#[test]
fn includes_and_excludes() {
    let org = TestOrg::new();
    assert_eq!(
        org.names("SELECT LastName FROM Contact WHERE Interests__c INCLUDES ('golf')"),
        ["Smith", "Orphan"]
    );
    // `;` inside one value means all of these; separate values mean any.
    assert_eq!(
        org.names(
            "SELECT LastName FROM Contact WHERE Interests__c INCLUDES ('Golf;Tennis', 'Chess')"
        ),
        ["Smith", "Orphan"]
    );
    assert_eq!(
        org.names("SELECT LastName FROM Contact WHERE Interests__c INCLUDES ('Tennis;Golf')"),
        ["Smith"]
    );
    assert_eq!(
        org.names("SELECT LastName FROM Contact WHERE Interests__c EXCLUDES ('Golf')"),
        ["jones", "Adams"]
    );
    assert_eq!(
        org.names("SELECT LastName FROM Contact WHERE Interests__c = 'tennis;golf'"),
        ["Smith"]
    );
}

#[test]
fn boolean_logic() {
    let org = TestOrg::new();
    assert_eq!(
        org.names("SELECT Name FROM Account WHERE Industry = 'Energy' AND (NumberOfEmployees < 5 OR Name = 'Gamma 100%')"),
        ["Älter"]
    );
    assert_eq!(
        org.names("SELECT Name FROM Account WHERE Name = 'Acme' OR Industry = 'Banking' OR Industry = null"),
        ["Acme", "beta corp", "Gamma 100%"]
    );
    assert_eq!(
        org.names("SELECT Name FROM Account WHERE NOT Industry = 'Energy'"),
        ["beta corp", "Gamma 100%"]
    );
    assert_eq!(
        org.names("SELECT Name FROM Account WHERE NOT (Industry = 'Energy' OR Industry = null) AND Name != null"),
        ["beta corp"]
    );
}

#[test]
fn dates_datetimes_and_relative_literals() {
    let org = TestOrg::new();
    // now() is 2024-03-15T12:00:00Z.
    assert_eq!(
        org.names("SELECT LastName FROM Contact WHERE Birthdate = TODAY"),
        ["Smith"]
    );
    assert_eq!(
        org.names("SELECT LastName FROM Contact WHERE Birthdate = YESTERDAY"),
        ["jones"]
    );
    assert_eq!(
        org.names("SELECT LastName FROM Contact WHERE Birthdate = LAST_N_DAYS:1"),
        ["Smith", "jones"]
    );
    assert_eq!(
        org.names("SELECT LastName FROM Contact WHERE Birthdate < YESTERDAY"),
        ["Adams"]
    );
    assert_eq!(
        org.names("SELECT LastName FROM Contact WHERE Birthdate >= 2024-03-14"),
        ["Smith", "jones"]
    );
    assert_eq!(
        org.names("SELECT LastName FROM Contact WHERE Birthdate > TODAY"),
        Vec::<String>::new()
    );
    // Contacts were created on the 13th, 14th, 15th and 16th at 08:00.
    assert_eq!(
        org.names("SELECT LastName FROM Contact WHERE CreatedDate = TODAY"),
        ["Adams"]
    );
    assert_eq!(
        org.names("SELECT LastName FROM Contact WHERE CreatedDate > TODAY"),
        ["Orphan"]
    );
    assert_eq!(
        org.names("SELECT LastName FROM Contact WHERE CreatedDate < TODAY"),
        ["Smith", "jones"]
    );
    assert_eq!(
        org.names("SELECT LastName FROM Contact WHERE CreatedDate = LAST_N_DAYS:2"),
        ["Smith", "jones", "Adams"]
    );
    assert_eq!(
        org.names("SELECT Name FROM Account WHERE SystemModstamp > 2024-03-02T10:00:00Z"),
        ["Gamma 100%", "Älter"]
    );
    assert_eq!(
        org.names("SELECT Name FROM Account WHERE SystemModstamp >= 2024-03-02T11:00:00+01:00"),
        ["beta corp", "Gamma 100%", "Älter"]
    );
    assert_eq!(
        org.names("SELECT Name FROM Account WHERE CreatedDate = 2024-03-01T09:00:00.000Z"),
        ["Acme"]
    );
    assert_eq!(
        org.names("SELECT Name FROM Account WHERE CreatedDate = THIS_MONTH"),
        ["Acme", "beta corp", "Gamma 100%", "Älter"]
    );
}
