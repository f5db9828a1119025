//! Salesforce record Ids: 15 case-sensitive characters (3-character key prefix, 2-character
//! pod, 1 reserved character, 9-character base-62 counter) plus the 3-character
//! case-insensitivity suffix of reference §7.
//!
//! Counters are fixed-width base 62 in ASCII order (`0-9A-Z a-z`), so within one object a
//! later Id is always greater as a string: `WHERE Id > x ORDER BY Id` pages in creation
//! order.

use std::fmt;

const BASE62: &[u8; 62] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
const SUFFIX: &[u8; 32] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ012345";
const COUNTER_WIDTH: usize = 9;

/// The pod and reserved characters of every Id this emulated org mints.
pub const DEFAULT_POD: &str = "8d0";

/// Why a string is not a record Id.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdError {
    #[error("an Id has 15 or 18 characters, not {0}")]
    Length(usize),
    #[error("an Id holds only letters and digits")]
    Character,
    #[error("the last three characters are not this Id's checksum")]
    Checksum,
}

/// A normalised 18-character record Id. Cheap to copy and compare; orders as its text.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Id([u8; 18]);

impl Id {
    /// Parses a 15-character Id, or an 18-character Id in any letter case (the suffix
    /// restores the case of the first 15 characters, as Salesforce does).
    pub fn parse(text: &str) -> Result<Id, IdError> {
        let bytes = text.as_bytes();
        if !bytes.iter().all(u8::is_ascii_alphanumeric) {
            return Err(IdError::Character);
        }
        match bytes.len() {
            15 => {
                let mut id = [0u8; 18];
                id[..15].copy_from_slice(bytes);
                let check = suffix(&id[..15]);
                id[15..].copy_from_slice(&check);
                Ok(Id(id))
            }
            18 => {
                let mut id = [0u8; 18];
                id.copy_from_slice(bytes);
                restore_case(&mut id)?;
                Ok(Id(id))
            }
            n => Err(IdError::Length(n)),
        }
    }

    /// Takes an Id the org itself wrote (18 characters, case and suffix already right)
    /// without recomputing its checksum; `None` for anything else. For hot paths that
    /// read Ids back out of records.
    pub fn from_canonical(text: &str) -> Option<Id> {
        let bytes: [u8; 18] = text.as_bytes().try_into().ok()?;
        bytes
            .iter()
            .all(u8::is_ascii_alphanumeric)
            .then_some(Id(bytes))
    }

    pub fn as_str(&self) -> &str {
        // Only ASCII letters and digits are ever stored.
        std::str::from_utf8(&self.0).unwrap_or_default()
    }

    /// The first three characters, which name the object (`001` = Account).
    pub fn key_prefix(&self) -> &str {
        &self.as_str()[..3]
    }

    /// The case-sensitive 15-character form.
    pub fn short(&self) -> &str {
        &self.as_str()[..15]
    }
}

impl fmt::Display for Id {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Debug for Id {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Id({})", self.as_str())
    }
}

/// The 3-character suffix of a 15-character Id: for each 5-character chunk, a bit per
/// upper-case letter (first character = lowest bit), as an index into `A-Z0-5`.
fn suffix(id15: &[u8]) -> [u8; 3] {
    let mut out = [0u8; 3];
    for (chunk, slot) in id15.chunks(5).zip(out.iter_mut()) {
        let bits = chunk
            .iter()
            .enumerate()
            .filter(|(_, c)| c.is_ascii_uppercase())
            .fold(0usize, |n, (i, _)| n | (1 << i));
        *slot = SUFFIX[bits];
    }
    out
}

/// Sets the case of the first 15 characters from the suffix, then checks the suffix.
fn restore_case(id: &mut [u8; 18]) -> Result<(), IdError> {
    for k in 0..3 {
        let bits = SUFFIX
            .iter()
            .position(|c| *c == id[15 + k].to_ascii_uppercase())
            .ok_or(IdError::Checksum)?;
        for i in 0..5 {
            let c = &mut id[k * 5 + i];
            *c = if bits & (1 << i) != 0 {
                c.to_ascii_uppercase()
            } else {
                c.to_ascii_lowercase()
            };
        }
        id[15 + k] = id[15 + k].to_ascii_uppercase();
    }
    if suffix(&id[..15]) == id[15..] {
        Ok(())
    } else {
        Err(IdError::Checksum)
    }
}

/// Mints the Ids of one object in creation order.
#[derive(Debug, Clone)]
pub struct IdGenerator {
    head: [u8; 6],
    next: u64,
}

impl IdGenerator {
    /// `key_prefix` is three characters (`001`); `pod` the three pod-and-reserved
    /// characters that follow it ([`DEFAULT_POD`]).
    pub fn new(key_prefix: &str, pod: &str) -> Result<IdGenerator, IdError> {
        let text = format!("{key_prefix}{pod}");
        if text.len() != 6 {
            return Err(IdError::Length(text.len() + COUNTER_WIDTH));
        }
        if !text.bytes().all(|b| b.is_ascii_alphanumeric()) {
            return Err(IdError::Character);
        }
        let mut head = [0u8; 6];
        head.copy_from_slice(text.as_bytes());
        Ok(IdGenerator { head, next: 1 })
    }

    /// Skips to the `n`-th Id (1 is the first), e.g. the `n`-th org's `00D…` Id when one
    /// emulator serves several orgs.
    pub fn starting_at(mut self, n: u64) -> IdGenerator {
        self.next = n.max(1);
        self
    }

    /// The next Id, greater than every Id this generator minted before.
    pub fn next_id(&mut self) -> Id {
        let mut id = [0u8; 18];
        id[..6].copy_from_slice(&self.head);
        let mut n = self.next;
        for slot in id[6..15].iter_mut().rev() {
            *slot = BASE62[(n % 62) as usize];
            n /= 62;
        }
        let check = suffix(&id[..15]);
        id[15..].copy_from_slice(&check);
        self.next += 1;
        Id(id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn published_vectors() {
        for (short, long) in [
            ("001M000000qfPyS", "001M000000qfPySIAU"),
            ("a0FE000000D6r3F", "a0FE000000D6r3FMAR"),
            ("AbCdEfGhIjKlMnO", "AbCdEfGhIjKlMnOVKV"),
            ("aBcDEfgHIJKLMNO", "aBcDEfgHIJKLMNO025"),
            ("001D000000IqhSL", "001D000000IqhSLIAZ"),
        ] {
            let id = Id::parse(short).unwrap();
            assert_eq!(id.as_str(), long);
            assert_eq!(id.short(), short);
            assert_eq!(Id::parse(long).unwrap(), id);
        }
    }

    #[test]
    fn eighteen_characters_are_case_insensitive() {
        let id = Id::parse("001m000000QFpYsiau").unwrap();
        assert_eq!(id.as_str(), "001M000000qfPySIAU");
    }

    #[test]
    fn rejects_what_is_not_an_id() {
        assert_eq!(Id::parse("001M000000qfPy"), Err(IdError::Length(14)));
        assert_eq!(Id::parse("001M000000qfPy!"), Err(IdError::Character));
        assert_eq!(Id::parse("001M000000qfPySIA9"), Err(IdError::Checksum));
        assert_eq!(Id::parse(""), Err(IdError::Length(0)));
    }

    #[test]
    fn minted_ids_sort_in_creation_order() {
        let mut ids = IdGenerator::new("001", DEFAULT_POD).unwrap();
        let minted: Vec<Id> = (0..5000).map(|_| ids.next_id()).collect();
        assert!(minted.windows(2).all(|w| w[0] < w[1]));
        assert!(minted.windows(2).all(|w| w[0].as_str() < w[1].as_str()));
        assert_eq!(minted[0].key_prefix(), "001");
        assert_eq!(minted[0].as_str().len(), 18);
        for id in &minted[..100] {
            assert_eq!(Id::parse(id.short()).unwrap(), *id);
            assert_eq!(Id::from_canonical(id.as_str()), Some(*id));
        }
        assert_eq!(Id::from_canonical(minted[0].short()), None);
    }
}
