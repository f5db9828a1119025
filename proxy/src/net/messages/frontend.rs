//! Messages from the client that the proxy must understand: the SQL it sends (Query,
//! Parse) and which statement or portal each extended-protocol step names (Bind, Execute,
//! Describe, Close). Everything else is forwarded by its tag alone.

use super::Reader;

pub const QUERY: u8 = b'Q';
pub const PARSE: u8 = b'P';
pub const BIND: u8 = b'B';
pub const DESCRIBE: u8 = b'D';
pub const EXECUTE: u8 = b'E';
pub const CLOSE: u8 = b'C';
pub const SYNC: u8 = b'S';
pub const FLUSH: u8 = b'H';
pub const TERMINATE: u8 = b'X';
pub const FUNCTION_CALL: u8 = b'F';
pub const COPY_DATA: u8 = b'd';
pub const COPY_DONE: u8 = b'c';
pub const COPY_FAIL: u8 = b'f';
/// PasswordMessage, SASLInitialResponse, SASLResponse and GSSResponse share this tag.
pub const PASSWORD: u8 = b'p';

/// A malformed client message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("malformed {message} message from the client")]
pub struct Malformed {
    pub message: &'static str,
}

fn malformed(message: &'static str) -> Malformed {
    Malformed { message }
}

/// Query: one string that may hold several statements.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Query<'a> {
    pub sql: &'a [u8],
}

impl<'a> Query<'a> {
    pub fn decode(body: &'a [u8]) -> Result<Self, Malformed> {
        let sql = Reader::new(body).cstr().ok_or(malformed("Query"))?;
        Ok(Query { sql })
    }
}

/// Parse: a statement name (empty for the unnamed statement) and its SQL.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Parse<'a> {
    pub statement: &'a [u8],
    pub sql: &'a [u8],
}

impl<'a> Parse<'a> {
    pub fn decode(body: &'a [u8]) -> Result<Self, Malformed> {
        let mut r = Reader::new(body);
        let statement = r.cstr().ok_or(malformed("Parse"))?;
        let sql = r.cstr().ok_or(malformed("Parse"))?;
        Ok(Parse { statement, sql })
    }
}

/// Bind: which portal is created from which statement. Parameters are not looked at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Bind<'a> {
    pub portal: &'a [u8],
    pub statement: &'a [u8],
}

impl<'a> Bind<'a> {
    pub fn decode(body: &'a [u8]) -> Result<Self, Malformed> {
        let mut r = Reader::new(body);
        let portal = r.cstr().ok_or(malformed("Bind"))?;
        let statement = r.cstr().ok_or(malformed("Bind"))?;
        Ok(Bind { portal, statement })
    }
}

/// Execute: a portal and a row limit (0 for all rows).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Execute<'a> {
    pub portal: &'a [u8],
    pub max_rows: i32,
}

impl<'a> Execute<'a> {
    pub fn decode(body: &'a [u8]) -> Result<Self, Malformed> {
        let mut r = Reader::new(body);
        let portal = r.cstr().ok_or(malformed("Execute"))?;
        let max_rows = r.i32().ok_or(malformed("Execute"))?;
        Ok(Execute { portal, max_rows })
    }
}

/// What a Describe or Close names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target<'a> {
    Statement(&'a [u8]),
    Portal(&'a [u8]),
}

impl<'a> Target<'a> {
    /// Decodes the body of a Describe or Close message.
    pub fn decode(body: &'a [u8], message: &'static str) -> Result<Self, Malformed> {
        let mut r = Reader::new(body);
        let kind = r.u8().ok_or(malformed(message))?;
        let name = r.cstr().ok_or(malformed(message))?;
        match kind {
            b'S' => Ok(Target::Statement(name)),
            b'P' => Ok(Target::Portal(name)),
            _ => Err(malformed(message)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_the_names_and_sql() {
        assert_eq!(Query::decode(b"SELECT 1\0").unwrap().sql, b"SELECT 1");
        let parse = Parse::decode(b"s1\0UPDATE t SET x = $1\0\0\x01\0\0\0\x17").unwrap();
        assert_eq!(parse.statement, b"s1");
        assert_eq!(parse.sql, b"UPDATE t SET x = $1");
        let bind = Bind::decode(b"\0s1\0\0\0\0\0\0\0").unwrap();
        assert_eq!((bind.portal, bind.statement), (&b""[..], &b"s1"[..]));
        let execute = Execute::decode(b"p\0\0\0\0\x0a").unwrap();
        assert_eq!((execute.portal, execute.max_rows), (&b"p"[..], 10));
        assert_eq!(
            Target::decode(b"Ss1\0", "Close").unwrap(),
            Target::Statement(b"s1")
        );
    }

    #[test]
    fn truncated_messages_are_errors_not_panics() {
        assert!(Query::decode(b"SELECT").is_err());
        assert!(Parse::decode(b"s1\0").is_err());
        assert!(Bind::decode(b"").is_err());
        assert!(Execute::decode(b"p\0\0\0").is_err());
        assert!(Target::decode(b"X\0", "Describe").is_err());
        assert!(Target::decode(b"", "Describe").is_err());
    }
}
