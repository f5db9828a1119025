//! Splits a SOQL query into tokens, each with its byte span so errors can point at it.
//!
//! The lexer knows SOQL's literal shapes: single-quoted strings with backslash escapes
//! (kept raw here: `LIKE` reads `\%` and `\_` differently from other contexts), signed
//! integers and decimals, and unquoted date (`2024-01-31`) and datetime
//! (`2024-01-31T10:00:00Z`, `+01:00`, `.000Z`) literals. Keywords are identifiers; the
//! parser recognises them case-insensitively.

use super::error::{ErrorCode, Position, SoqlError, position_of};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenKind {
    /// A name or keyword: `SELECT`, `Account__r`, `LAST_N_DAYS`.
    Ident,
    /// A quoted string; the span includes the quotes.
    String,
    /// `42`, `-3.5`, `+7`.
    Number,
    /// `2024-01-31`.
    Date,
    /// `2024-01-31T10:00:00Z` and its variants.
    DateTime,
    Comma,
    Dot,
    Colon,
    LParen,
    RParen,
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
    Eof,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Token {
    pub kind: TokenKind,
    pub start: usize,
    pub end: usize,
}

impl Token {
    pub fn text<'q>(&self, query: &'q str) -> &'q str {
        &query[self.start..self.end]
    }

    /// Whether this is the keyword `word` (case-insensitive).
    pub fn is_keyword(&self, query: &str, word: &str) -> bool {
        self.kind == TokenKind::Ident && self.text(query).eq_ignore_ascii_case(word)
    }
}

/// Tokenizes the whole query; the last token is always `Eof`.
pub fn tokenize(query: &str) -> Result<Vec<Token>, SoqlError> {
    let bytes = query.as_bytes();
    let mut tokens = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        let c = bytes[i];
        if c.is_ascii_whitespace() {
            i += 1;
            continue;
        }
        let start = i;
        let kind = match c {
            b',' => single(&mut i, TokenKind::Comma),
            b'.' => single(&mut i, TokenKind::Dot),
            b':' => single(&mut i, TokenKind::Colon),
            b'(' => single(&mut i, TokenKind::LParen),
            b')' => single(&mut i, TokenKind::RParen),
            b'=' => single(&mut i, TokenKind::Eq),
            b'!' if bytes.get(i + 1) == Some(&b'=') => {
                i += 2;
                TokenKind::Ne
            }
            b'<' => match bytes.get(i + 1) {
                Some(b'=') => {
                    i += 2;
                    TokenKind::Le
                }
                Some(b'>') => {
                    i += 2;
                    TokenKind::Ne
                }
                _ => single(&mut i, TokenKind::Lt),
            },
            b'>' => match bytes.get(i + 1) {
                Some(b'=') => {
                    i += 2;
                    TokenKind::Ge
                }
                _ => single(&mut i, TokenKind::Gt),
            },
            b'\'' => {
                i = string_end(query, i)?;
                TokenKind::String
            }
            b'+' | b'-' if bytes.get(i + 1).is_some_and(u8::is_ascii_digit) => {
                i = number_end(bytes, i + 1);
                TokenKind::Number
            }
            b'0'..=b'9' => {
                let (end, kind) = numeric_end(bytes, i);
                i = end;
                kind
            }
            c if c.is_ascii_alphabetic() || c == b'_' => {
                while i < bytes.len() && (bytes[i].is_ascii_alphanumeric() || bytes[i] == b'_') {
                    i += 1;
                }
                TokenKind::Ident
            }
            _ => return Err(bad_character(query, i)),
        };
        tokens.push(Token {
            kind,
            start,
            end: i,
        });
    }
    tokens.push(Token {
        kind: TokenKind::Eof,
        start: query.len(),
        end: query.len(),
    });
    Ok(tokens)
}

fn single(i: &mut usize, kind: TokenKind) -> TokenKind {
    *i += 1;
    kind
}

/// The end of a quoted string starting at `start`, skipping escaped characters.
fn string_end(query: &str, start: usize) -> Result<usize, SoqlError> {
    let bytes = query.as_bytes();
    let mut i = start + 1;
    while i < bytes.len() {
        match bytes[i] {
            b'\\' => i += 2,
            b'\'' => return Ok(i + 1),
            _ => i += 1,
        }
    }
    // Salesforce's lexer reports an unterminated string at its opening quote.
    Err(bad_character(query, start))
}

/// The end of the digits and optional fraction starting at `i`.
fn number_end(bytes: &[u8], mut i: usize) -> usize {
    while i < bytes.len() && bytes[i].is_ascii_digit() {
        i += 1;
    }
    if i + 1 < bytes.len() && bytes[i] == b'.' && bytes[i + 1].is_ascii_digit() {
        i += 1;
        while i < bytes.len() && bytes[i].is_ascii_digit() {
            i += 1;
        }
    }
    i
}

/// A number, or a date/datetime literal when the digits have the `YYYY-MM-DD` shape.
fn numeric_end(bytes: &[u8], start: usize) -> (usize, TokenKind) {
    let is_date = bytes.len() >= start + 10
        && bytes[start..start + 4].iter().all(u8::is_ascii_digit)
        && bytes[start + 4] == b'-'
        && bytes[start + 5..start + 7].iter().all(u8::is_ascii_digit)
        && bytes[start + 7] == b'-'
        && bytes[start + 8..start + 10].iter().all(u8::is_ascii_digit);
    if !is_date {
        return (number_end(bytes, start), TokenKind::Number);
    }
    let mut i = start + 10;
    if !matches!(bytes.get(i), Some(b'T' | b't')) {
        return (i, TokenKind::Date);
    }
    // The time part runs over digits, colons, a fraction and the zone (`Z`, `+hh:mm`);
    // whether it is well formed is the literal parser's business.
    i += 1;
    while i < bytes.len() {
        match bytes[i] {
            b'0'..=b'9' | b':' | b'.' | b'+' | b'-' => i += 1,
            b'Z' | b'z' => {
                i += 1;
                break;
            }
            _ => break,
        }
    }
    (i, TokenKind::DateTime)
}

/// A character no SOQL token starts with. Salesforce's lexer reports these as
/// `line 1:N unexpected token: 'c'` with `N` (and the framed column) 0-based.
fn bad_character(query: &str, offset: usize) -> SoqlError {
    let at = position_of(query, offset);
    let column = at.column - 1;
    let c = query[offset..].chars().next().unwrap_or(' ');
    SoqlError::framed(
        ErrorCode::MalformedQuery,
        query,
        Position {
            row: at.row,
            column,
        },
        &format!("line {}:{column} unexpected token: '{c}'", at.row),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use TokenKind::*;

    fn kinds(q: &str) -> Vec<(TokenKind, &str)> {
        tokenize(q)
            .unwrap()
            .into_iter()
            .map(|t| (t.kind, t.text(q)))
            .collect()
    }

    #[test]
    fn splits_a_query() {
        assert_eq!(
            kinds("SELECT Id, Account.Name FROM Contact WHERE Name != 'x' AND Age__c>=-2.5"),
            vec![
                (Ident, "SELECT"),
                (Ident, "Id"),
                (Comma, ","),
                (Ident, "Account"),
                (Dot, "."),
                (Ident, "Name"),
                (Ident, "FROM"),
                (Ident, "Contact"),
                (Ident, "WHERE"),
                (Ident, "Name"),
                (Ne, "!="),
                (String, "'x'"),
                (Ident, "AND"),
                (Ident, "Age__c"),
                (Ge, ">="),
                (Number, "-2.5"),
                (Eof, ""),
            ]
        );
    }

    #[test]
    fn operators() {
        let got: Vec<TokenKind> = kinds("= != <> < <= > >=")
            .into_iter()
            .map(|t| t.0)
            .collect();
        assert_eq!(got, vec![Eq, Ne, Ne, Lt, Le, Gt, Ge, Eof]);
    }

    #[test]
    fn dates_and_datetimes() {
        assert_eq!(
            kinds(
                "2024-01-31 2024-01-31T10:00:00Z 2024-01-31T10:00:00.000+01:00 2024-01-31T10:00:00-0800)"
            ),
            vec![
                (Date, "2024-01-31"),
                (DateTime, "2024-01-31T10:00:00Z"),
                (DateTime, "2024-01-31T10:00:00.000+01:00"),
                (DateTime, "2024-01-31T10:00:00-0800"),
                (RParen, ")"),
                (Eof, ""),
            ]
        );
    }

    #[test]
    fn strings_keep_escapes_raw() {
        assert_eq!(
            kinds(r"'Bob\'s' 'a\\' 'x'"),
            vec![
                (String, r"'Bob\'s'"),
                (String, r"'a\\'"),
                (String, "'x'"),
                (Eof, "")
            ]
        );
    }

    #[test]
    fn date_literal_with_parameter() {
        assert_eq!(
            kinds("LAST_N_DAYS:30"),
            vec![
                (Ident, "LAST_N_DAYS"),
                (Colon, ":"),
                (Number, "30"),
                (Eof, "")
            ]
        );
    }

    #[test]
    fn bad_character_uses_zero_based_column() {
        let q = "select Id from Account where id = $sfid";
        let e = tokenize(q).unwrap_err();
        assert_eq!(e.error_code, ErrorCode::MalformedQuery);
        assert_eq!(
            e.message,
            "\nselect Id from Account where id = $sfid\n                                 ^\nERROR at Row:1:Column:34\nline 1:34 unexpected token: '$'"
        );
    }

    #[test]
    fn unterminated_string_is_malformed() {
        let e = tokenize("SELECT Id FROM Account WHERE Name = 'abc").unwrap_err();
        assert_eq!(e.error_code, ErrorCode::MalformedQuery);
        assert!(
            e.reason().contains("unexpected token: '''"),
            "{}",
            e.message
        );
    }
}
