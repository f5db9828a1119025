//! SOQL errors as Salesforce reports them: an `errorCode` and a message that, when the
//! error has a place in the query, echoes the offending line with a caret under it and
//! `ERROR at Row:r:Column:c` before the reason.

use std::fmt;

/// Salesforce's `errorCode` for a query that cannot run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorCode {
    /// Syntax errors and malformed literals.
    MalformedQuery,
    /// Unknown fields and relationships, literals of the wrong type, non-filterable fields.
    InvalidField,
    /// Unknown or non-queryable objects in `FROM`.
    InvalidType,
    /// An operator the field's type does not allow, or an Id literal that is no Id.
    InvalidQueryFilterOperator,
    /// `OFFSET` above the maximum.
    NumberOutsideValidRange,
}

impl ErrorCode {
    /// The code as it appears in the JSON error body.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::MalformedQuery => "MALFORMED_QUERY",
            ErrorCode::InvalidField => "INVALID_FIELD",
            ErrorCode::InvalidType => "INVALID_TYPE",
            ErrorCode::InvalidQueryFilterOperator => "INVALID_QUERY_FILTER_OPERATOR",
            ErrorCode::NumberOutsideValidRange => "NUMBER_OUTSIDE_VALID_RANGE",
        }
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Where in the query an error points: 1-based row and column, as in the message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Position {
    pub row: usize,
    pub column: usize,
}

/// A query Salesforce would refuse, with the body it would send (HTTP 400,
/// `[{"message": ..., "errorCode": ...}]`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{error_code}: {message}")]
pub struct SoqlError {
    pub error_code: ErrorCode,
    /// The complete `message`, framing included.
    pub message: String,
    /// Where the caret points, when the message is framed.
    pub position: Option<Position>,
}

impl SoqlError {
    /// Every SOQL error is a 400 Bad Request.
    pub const STATUS: u16 = 400;

    /// An error with no place in the query (e.g. `duplicate field selected: Id`).
    pub fn plain(error_code: ErrorCode, reason: impl Into<String>) -> SoqlError {
        SoqlError {
            error_code,
            message: reason.into(),
            position: None,
        }
    }

    /// An error at byte `offset` of `query`, framed the way Salesforce frames it:
    ///
    /// ```text
    /// \nSELECT Id, FROM Account\n           ^\nERROR at Row:1:Column:12\nunexpected token: 'FROM'
    /// ```
    pub fn at(error_code: ErrorCode, query: &str, offset: usize, reason: &str) -> SoqlError {
        let position = position_of(query, offset);
        SoqlError::framed(error_code, query, position, reason)
    }

    /// Like [`SoqlError::at`], with the column given directly (lexer errors report a
    /// column one less than the parser's; see the module docs).
    pub(crate) fn framed(
        error_code: ErrorCode,
        query: &str,
        position: Position,
        reason: &str,
    ) -> SoqlError {
        let line = query
            .split('\n')
            .nth(position.row.saturating_sub(1))
            .unwrap_or("")
            .trim_end_matches('\r');
        let caret = " ".repeat(position.column.saturating_sub(1));
        let message = format!(
            "\n{line}\n{caret}^\nERROR at Row:{}:Column:{}\n{reason}",
            position.row, position.column
        );
        SoqlError {
            error_code,
            message,
            position: Some(position),
        }
    }

    /// The reason alone, without the echoed query and caret.
    pub fn reason(&self) -> &str {
        match self.position {
            Some(_) => self
                .message
                .splitn(5, '\n')
                .nth(4)
                .unwrap_or(self.message.as_str()),
            None => &self.message,
        }
    }
}

/// The 1-based row and column of byte `offset` in `query` (columns count characters).
pub fn position_of(query: &str, offset: usize) -> Position {
    let offset = floor_char_boundary(query, offset.min(query.len()));
    let before = &query[..offset];
    let row = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let column = before[line_start..].chars().count() + 1;
    Position { row, column }
}

fn floor_char_boundary(s: &str, mut i: usize) -> usize {
    while i > 0 && !s.is_char_boundary(i) {
        i -= 1;
    }
    i
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn framing_matches_salesforce() {
        let e = SoqlError::at(
            ErrorCode::MalformedQuery,
            "SELECT Id, FROM Bar__c",
            11,
            "unexpected token: 'FROM'",
        );
        assert_eq!(
            e.message,
            "\nSELECT Id, FROM Bar__c\n           ^\nERROR at Row:1:Column:12\nunexpected token: 'FROM'"
        );
        assert_eq!(e.reason(), "unexpected token: 'FROM'");
        assert_eq!(e.position, Some(Position { row: 1, column: 12 }));
    }

    #[test]
    fn multi_line_queries_echo_the_row_in_error() {
        let q = "SELECT Id\nFROM Bar__c\nWHERE Nope__c = 1";
        let e = SoqlError::at(ErrorCode::InvalidField, q, q.find("Nope").unwrap(), "x");
        assert_eq!(e.position, Some(Position { row: 3, column: 7 }));
        assert!(
            e.message
                .starts_with("\nWHERE Nope__c = 1\n      ^\nERROR at Row:3:Column:7\n")
        );
    }

    #[test]
    fn columns_count_characters_not_bytes() {
        assert_eq!(position_of("SELECT Name FROM Äccount x", 25).column, 25);
    }
}
