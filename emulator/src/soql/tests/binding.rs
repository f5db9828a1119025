//! Names and the errors of binding: alias and object prefixes, unknown objects, fields and
//! relationships, literals of the wrong type, fields that cannot be filtered or sorted,
//! duplicates, and names in any case.

use super::*;

#[test]
fn alias_and_object_name_prefixes() {
    let org = TestOrg::new();
    assert_eq!(
        org.names("SELECT a.Name FROM Account a WHERE a.Industry = 'Banking'"),
        ["beta corp"]
    );
    assert_eq!(
        org.names("SELECT Account.Name FROM Account WHERE Account.Name = 'Acme'"),
        ["Acme"]
    );
    let (_, records) = org
        .query("SELECT c.Account.Name FROM Contact c WHERE c.LastName = 'Smith'")
        .unwrap();
    assert_eq!(records[0]["Account"]["Name"], "Acme");
}

#[test]
fn unknown_object_is_invalid_type() {
    let org = TestOrg::new();
    let e = org.error("SELECT Id FROM Bogus");
    assert_eq!(e.error_code, ErrorCode::InvalidType);
    assert_eq!(
        e.message,
        "\nSELECT Id FROM Bogus\n               ^\nERROR at Row:1:Column:16\nsObject type 'Bogus' is not supported. If you are attempting to use a custom object, be sure to append the '__c' after the entity name. Please reference your WSDL or the describe call for the appropriate names."
    );
}

#[test]
fn unknown_fields_and_relationships_are_invalid_field() {
    let org = TestOrg::new();
    let e = org.error("SELECT Id, Bogus FROM Account");
    assert_eq!(e.error_code, ErrorCode::InvalidField);
    assert_eq!(
        e.message,
        "\nSELECT Id, Bogus FROM Account\n           ^\nERROR at Row:1:Column:12\nNo such column 'Bogus' on entity 'Account'. If you are attempting to use a custom field, be sure to append the '__c' after the custom field name. Please reference your WSDL or the describe call for the appropriate names."
    );
    let cases: &[(&str, &str, usize)] = &[
        (
            "SELECT Id FROM Account WHERE Missing__c = 'x'",
            "No such column 'Missing__c' on entity 'Account'.",
            30,
        ),
        (
            "SELECT Id FROM Account ORDER BY Missing__c",
            "No such column 'Missing__c' on entity 'Account'.",
            33,
        ),
        (
            "SELECT Account.Bogus FROM Contact",
            "No such column 'Bogus' on entity 'Account'.",
            8,
        ),
        (
            "SELECT Owner__r.Name FROM Account",
            "Didn't understand relationship 'Owner__r' in field path.",
            8,
        ),
        (
            "SELECT AccountId.Name FROM Contact",
            "Didn't understand relationship 'AccountId' in field path.",
            8,
        ),
        (
            "SELECT Account FROM Contact",
            "No such column 'Account' on entity 'Contact'.",
            8,
        ),
        (
            "SELECT Account__c.Name FROM Invoice__c",
            "Didn't understand relationship 'Account__c' in field path.",
            8,
        ),
    ];
    for (query, reason, column) in cases {
        let e = org.error(query);
        assert_eq!(e.error_code, ErrorCode::InvalidField, "{query}");
        assert!(e.reason().starts_with(reason), "{query}: {}", e.message);
        assert_eq!(e.position.map(|p| p.column), Some(*column), "{query}");
    }
}

/// Filters whose literal does not fit the field, with Salesforce's error code and reason.
const LITERALS_OF_THE_WRONG_TYPE: &[(&str, ErrorCode, &str)] = &[
    (
        "SELECT Id FROM Account WHERE CreatedDate > '2024-01-01'",
        ErrorCode::InvalidField,
        "value of filter criterion for field 'CreatedDate' must be of type dateTime and should not be enclosed in quotes",
    ),
    (
        "SELECT Id FROM Account WHERE CreatedDate > 2024-01-01",
        ErrorCode::InvalidField,
        "value of filter criterion for field 'CreatedDate' must be of type dateTime and should not be enclosed in quotes",
    ),
    (
        "SELECT Id FROM Contact WHERE Birthdate = 2024-01-01T00:00:00Z",
        ErrorCode::InvalidField,
        "value of filter criterion for field 'Birthdate' must be of type date and should not be enclosed in quotes",
    ),
    (
        "SELECT Id FROM Account WHERE AnnualRevenue = '5'",
        ErrorCode::InvalidField,
        "value of filter criterion for field 'AnnualRevenue' must be of type double and should not be enclosed in quotes",
    ),
    (
        "SELECT Id FROM Account WHERE NumberOfEmployees = true",
        ErrorCode::InvalidField,
        "value of filter criterion for field 'NumberOfEmployees' must be of type int and should not be enclosed in quotes",
    ),
    (
        "SELECT Id FROM Contact WHERE DoNotCall = 'true'",
        ErrorCode::InvalidField,
        "value of filter criterion for field 'DoNotCall' must be of type boolean and should not be enclosed in quotes",
    ),
    (
        "SELECT Id FROM Account WHERE Name = 5",
        ErrorCode::InvalidField,
        "value of filter criterion for field 'Name' must be of type string and should be enclosed in quotes",
    ),
    (
        "SELECT Id FROM Account WHERE Name = TODAY",
        ErrorCode::InvalidField,
        "value of filter criterion for field 'Name' must be of type string and should be enclosed in quotes",
    ),
    (
        "SELECT Id FROM Account WHERE Id = 'abc'",
        ErrorCode::InvalidQueryFilterOperator,
        "invalid ID field: abc",
    ),
    (
        "SELECT Id FROM Contact WHERE AccountId IN ('Edge Communications')",
        ErrorCode::InvalidQueryFilterOperator,
        "invalid ID field: Edge Communications",
    ),
    (
        "SELECT Id FROM Account WHERE Id LIKE '001%'",
        ErrorCode::InvalidQueryFilterOperator,
        "invalid operator on id field",
    ),
    (
        "SELECT Id FROM Account WHERE Name INCLUDES ('a')",
        ErrorCode::InvalidQueryFilterOperator,
        "includes/excludes operator only valid on multipicklist field",
    ),
    (
        "SELECT Id FROM Account WHERE SystemModstamp > 2020-12-12T12:12:00-25:00",
        ErrorCode::MalformedQuery,
        "Invalid datetime: 2020-12-12T12:12:00-25:00",
    ),
    (
        "SELECT Id FROM Contact WHERE Birthdate > 2023-02-29",
        ErrorCode::MalformedQuery,
        "Invalid date: 2023-02-29",
    ),
    (
        r"SELECT Id FROM Account WHERE Name = 'a\qb'",
        ErrorCode::MalformedQuery,
        r"Invalid string literal: illegal escape sequence '\q'",
    ),
    (
        "SELECT Id FROM Account WHERE Name LIKE null",
        ErrorCode::MalformedQuery,
        "unexpected token: 'null'",
    ),
];

#[test]
fn literals_of_the_wrong_type() {
    let org = TestOrg::new();
    let cases = LITERALS_OF_THE_WRONG_TYPE;
    for (query, code, reason) in cases {
        let e = org.error(query);
        assert_eq!((e.error_code, e.reason()), (*code, *reason), "{query}");
    }
    // The caret points at the literal.
    let e = org.error("SELECT Id FROM Account WHERE Id = 'abc'");
    assert_eq!(e.position, Some(Position { row: 1, column: 35 }));
}

#[test]
fn fields_that_cannot_be_filtered_or_sorted() {
    let org = TestOrg::new();
    let e = org.error("SELECT Id FROM Account WHERE Description = 'x'");
    assert_eq!(e.error_code, ErrorCode::InvalidField);
    assert_eq!(
        e.message,
        "\nSELECT Id FROM Account WHERE Description = 'x'\n                             ^\nERROR at Row:1:Column:30\nfield 'Description' can not be filtered in a query call"
    );
    let e = org.error("SELECT Id FROM Account WHERE BillingAddress != null");
    assert_eq!(
        e.reason(),
        "field 'BillingAddress' can not be filtered in a query call"
    );
    let e = org.error("SELECT Id FROM Contact ORDER BY Interests__c");
    assert_eq!(
        e.reason(),
        "field 'Interests__c' can not be sorted in a query call"
    );
}

#[test]
fn duplicate_fields() {
    let org = TestOrg::new();
    let e = org.error("SELECT Id, Name, id FROM Account");
    assert_eq!(e.error_code, ErrorCode::InvalidField);
    assert_eq!(e.message, "duplicate field selected: id");
    let e = org.error("SELECT Account.Name, account.name FROM Contact");
    assert_eq!(e.message, "duplicate field selected: account.name");
    // The same name through different paths is no duplicate.
    assert!(org.query("SELECT Name, Owner.Name FROM Account").is_ok());
}

#[test]
fn queries_are_case_insensitive_in_names() {
    let org = TestOrg::new();
    let (plan, records) = org
        .query("SELECT ACCOUNT.NAME, lastname FROM contact WHERE lastname = 'SMITH'")
        .unwrap();
    assert_eq!(plan.object(), "Contact");
    assert_eq!(records[0]["Account"]["Name"], "Acme");
    assert_eq!(records[0]["LastName"], "Smith");
}
