//! Messages from PostgreSQL that the proxy must understand: where a request's answer ends
//! (ReadyForQuery and the extended protocol's completions), what went wrong
//! (ErrorResponse), what a command did (CommandComplete), the session's cancel key
//! (BackendKeyData), and the columns and values of rows it may have to patch
//! (RowDescription, DataRow).

use super::Reader;

pub const AUTHENTICATION: u8 = b'R';
pub const BACKEND_KEY_DATA: u8 = b'K';
pub const BIND_COMPLETE: u8 = b'2';
pub const CLOSE_COMPLETE: u8 = b'3';
pub const COMMAND_COMPLETE: u8 = b'C';
pub const COPY_BOTH_RESPONSE: u8 = b'W';
pub const COPY_DATA: u8 = b'd';
pub const COPY_DONE: u8 = b'c';
pub const COPY_IN_RESPONSE: u8 = b'G';
pub const COPY_OUT_RESPONSE: u8 = b'H';
pub const DATA_ROW: u8 = b'D';
pub const EMPTY_QUERY_RESPONSE: u8 = b'I';
pub const ERROR_RESPONSE: u8 = b'E';
pub const FUNCTION_CALL_RESPONSE: u8 = b'V';
pub const NEGOTIATE_PROTOCOL_VERSION: u8 = b'v';
pub const NO_DATA: u8 = b'n';
pub const NOTICE_RESPONSE: u8 = b'N';
pub const NOTIFICATION_RESPONSE: u8 = b'A';
pub const PARAMETER_DESCRIPTION: u8 = b't';
pub const PARAMETER_STATUS: u8 = b'S';
pub const PARSE_COMPLETE: u8 = b'1';
pub const PORTAL_SUSPENDED: u8 = b's';
pub const READY_FOR_QUERY: u8 = b'Z';
pub const ROW_DESCRIPTION: u8 = b'T';

/// A malformed server message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("malformed {message} message from the server")]
pub struct Malformed {
    pub message: &'static str,
}

fn malformed(message: &'static str) -> Malformed {
    Malformed { message }
}

/// ReadyForQuery's transaction status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TransactionStatus {
    /// `I`: not in a transaction block.
    Idle,
    /// `T`: in a transaction block.
    InBlock,
    /// `E`: in a failed transaction block; commands are refused until it ends.
    Failed,
}

impl TransactionStatus {
    pub fn decode_ready_for_query(body: &[u8]) -> Result<Self, Malformed> {
        match body {
            [b'I'] => Ok(Self::Idle),
            [b'T'] => Ok(Self::InBlock),
            [b'E'] => Ok(Self::Failed),
            _ => Err(malformed("ReadyForQuery")),
        }
    }

    pub fn as_byte(self) -> u8 {
        match self {
            Self::Idle => b'I',
            Self::InBlock => b'T',
            Self::Failed => b'E',
        }
    }
}

/// The fields of an ErrorResponse or NoticeResponse, by their one-byte codes.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Fields {
    pub fields: Vec<(u8, String)>,
}

impl Fields {
    pub fn decode(body: &[u8], message: &'static str) -> Result<Self, Malformed> {
        let mut r = Reader::new(body);
        let mut fields = Vec::new();
        loop {
            match r.u8().ok_or(malformed(message))? {
                0 => return Ok(Fields { fields }),
                code => {
                    let value = r.cstr().ok_or(malformed(message))?;
                    fields.push((code, String::from_utf8_lossy(value).into_owned()));
                }
            }
        }
    }

    pub fn get(&self, code: u8) -> Option<&str> {
        self.fields
            .iter()
            .find(|(c, _)| *c == code)
            .map(|(_, v)| v.as_str())
    }

    /// The SQLSTATE (`C`).
    pub fn code(&self) -> &str {
        self.get(b'C').unwrap_or("")
    }

    /// The primary message (`M`).
    pub fn message(&self) -> &str {
        self.get(b'M').unwrap_or("")
    }

    /// Whether the server ends the session with it (severity FATAL or PANIC, `V`, or `S`
    /// from servers before 9.6).
    pub fn is_fatal(&self) -> bool {
        matches!(
            self.get(b'V').or_else(|| self.get(b'S')),
            Some("FATAL" | "PANIC")
        )
    }
}

/// An ErrorResponse the server sent, as an error: a statement of the proxy's own that the
/// server refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{} ({})", .0.message(), .0.code())]
pub struct ServerError(pub Fields);

/// CommandComplete's tag, such as `UPDATE 3` or `COMMIT`.
pub fn decode_command_tag(body: &[u8]) -> Result<&[u8], Malformed> {
    Reader::new(body).cstr().ok_or(malformed("CommandComplete"))
}

/// BackendKeyData: the server process id and its cancel secret (4 bytes in protocol 3.0,
/// up to 256 in 3.2).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackendKey {
    pub pid: i32,
    pub secret: Vec<u8>,
}

impl BackendKey {
    pub fn decode(body: &[u8]) -> Result<Self, Malformed> {
        let mut r = Reader::new(body);
        let pid = r.i32().ok_or(malformed("BackendKeyData"))?;
        let secret = r.remaining();
        if !(4..=256).contains(&secret.len()) {
            return Err(malformed("BackendKeyData"));
        }
        Ok(BackendKey {
            pid,
            secret: secret.to_vec(),
        })
    }
}

/// The authentication request code of an Authentication message.
pub fn decode_authentication_code(body: &[u8]) -> Result<i32, Malformed> {
    Reader::new(body).i32().ok_or(malformed("Authentication"))
}

/// One column of a RowDescription.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Column {
    pub name: String,
    /// The table the column comes from, or 0.
    pub table_oid: u32,
    /// The column's attribute number in that table, or 0.
    pub attnum: i16,
    pub type_oid: u32,
    /// 0 for text, 1 for binary.
    pub format: i16,
}

pub fn decode_row_description(body: &[u8]) -> Result<Vec<Column>, Malformed> {
    let mut r = Reader::new(body);
    let count = r.i16().ok_or(malformed("RowDescription"))?;
    let count = usize::try_from(count).map_err(|_| malformed("RowDescription"))?;
    let mut columns = Vec::with_capacity(count.min(1600));
    for _ in 0..count {
        let name = r.cstr().ok_or(malformed("RowDescription"))?;
        let table_oid = r.u32().ok_or(malformed("RowDescription"))?;
        let attnum = r.i16().ok_or(malformed("RowDescription"))?;
        let type_oid = r.u32().ok_or(malformed("RowDescription"))?;
        let _type_len = r.i16().ok_or(malformed("RowDescription"))?;
        let _type_modifier = r.i32().ok_or(malformed("RowDescription"))?;
        let format = r.i16().ok_or(malformed("RowDescription"))?;
        columns.push(Column {
            name: String::from_utf8_lossy(name).into_owned(),
            table_oid,
            attnum,
            type_oid,
            format,
        });
    }
    Ok(columns)
}

/// A DataRow's values, NULL as `None`.
pub fn decode_data_row(body: &[u8]) -> Result<Vec<Option<&[u8]>>, Malformed> {
    let mut r = Reader::new(body);
    let count = r.i16().ok_or(malformed("DataRow"))?;
    let count = usize::try_from(count).map_err(|_| malformed("DataRow"))?;
    let mut values = Vec::with_capacity(count.min(1600));
    for _ in 0..count {
        let len = r.i32().ok_or(malformed("DataRow"))?;
        if len < 0 {
            values.push(None);
        } else {
            let len = usize::try_from(len).map_err(|_| malformed("DataRow"))?;
            values.push(Some(r.take(len).ok_or(malformed("DataRow"))?));
        }
    }
    Ok(values)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_fatal_or_panic_error_ends_the_session_an_error_does_not() {
        let fatal = Fields::decode(b"SFATAL\0VFATAL\0C57P01\0Mterminating\0\0", "ErrorResponse");
        assert!(fatal.unwrap().is_fatal());
        // Before 9.6 there is no `V`; `S` is not localized there either.
        let panic = Fields::decode(b"SPANIC\0CXX000\0Mpanic\0\0", "ErrorResponse");
        assert!(panic.unwrap().is_fatal());
        // A localized `S` with the untranslated `V`.
        let error = Fields::decode(b"SFEHLER\0VERROR\0C23505\0Mdoppelt\0\0", "ErrorResponse");
        assert!(!error.unwrap().is_fatal());
    }

    #[test]
    fn decodes_error_fields() {
        let fields = Fields::decode(b"SERROR\0C23505\0Mduplicate\0\0", "ErrorResponse").unwrap();
        assert_eq!(fields.code(), "23505");
        assert_eq!(fields.message(), "duplicate");
        assert!(Fields::decode(b"SERROR\0C235", "ErrorResponse").is_err());
        assert!(Fields::decode(b"", "ErrorResponse").is_err());
    }

    #[test]
    fn decodes_rows_and_their_description() {
        let mut body = vec![0, 1];
        body.extend_from_slice(b"sfid\0");
        body.extend_from_slice(&16384u32.to_be_bytes());
        body.extend_from_slice(&2i16.to_be_bytes());
        body.extend_from_slice(&1043u32.to_be_bytes());
        body.extend_from_slice(&(-1i16).to_be_bytes());
        body.extend_from_slice(&22i32.to_be_bytes());
        body.extend_from_slice(&0i16.to_be_bytes());
        let columns = decode_row_description(&body).unwrap();
        assert_eq!(columns[0].name, "sfid");
        assert_eq!((columns[0].table_oid, columns[0].attnum), (16384, 2));
        assert!(decode_row_description(&body[..body.len() - 1]).is_err());

        let row = [0, 2, 0xff, 0xff, 0xff, 0xff, 0, 0, 0, 1, b'x'];
        assert_eq!(decode_data_row(&row).unwrap(), vec![None, Some(&b"x"[..])]);
        assert!(decode_data_row(&row[..10]).is_err());
    }

    #[test]
    fn decodes_cancel_keys_of_both_protocol_versions() {
        let key = BackendKey::decode(&[0, 0, 0, 7, 1, 2, 3, 4]).unwrap();
        assert_eq!((key.pid, key.secret.len()), (7, 4));
        let long = BackendKey::decode(&[[0, 0, 0, 7].as_slice(), &[9; 32]].concat()).unwrap();
        assert_eq!(long.secret.len(), 32);
        assert!(BackendKey::decode(&[0, 0, 0, 7, 1]).is_err());
    }
}
