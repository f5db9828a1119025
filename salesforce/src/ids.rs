//! Salesforce record Ids: the case-sensitive 15-character form, the case-insensitive
//! 18-character form that the APIs return, and the checksum that links the two.
//!
//! The three suffix characters encode, five letters at a time, which of the first 15
//! characters are upper case. That makes an 18-character Id survive systems that fold
//! case, and it is why [`SalesforceId::parse`] can restore the exact 15-character Id from
//! an 18-character one written in any case.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// The alphabet the checksum characters are drawn from, indexed by a 5-bit case mask.
const CHECKSUM_ALPHABET: &[u8; 32] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ012345";

/// A record Id, always held in its canonical 18-character form.
///
/// Two Ids compare equal when they name the same record, whichever form they were parsed from.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SalesforceId(String);

/// Why a string is not a Salesforce Id.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{value:?} is not a Salesforce Id: {reason}")]
pub struct InvalidId {
    /// The rejected input.
    pub value: String,
    /// What is wrong with it.
    pub reason: &'static str,
}

impl SalesforceId {
    /// Parses a 15- or 18-character Id.
    ///
    /// A 15-character Id is case-sensitive and gets its checksum appended. An 18-character Id
    /// may arrive in any case: its checksum says which letters are upper case, so the case is
    /// restored; a checksum that marks a digit as upper case is rejected.
    pub fn parse(value: &str) -> Result<Self, InvalidId> {
        let invalid = |reason| InvalidId {
            value: value.to_owned(),
            reason,
        };
        if !value.bytes().all(|b| b.is_ascii_alphanumeric()) {
            return Err(invalid("only ASCII letters and digits are allowed"));
        }
        match value.len() {
            15 => {
                let mut id = String::with_capacity(18);
                id.push_str(value);
                id.extend(checksum(value.as_bytes()).iter().map(|&b| char::from(b)));
                Ok(Self(id))
            }
            18 => {
                let (body, suffix) = value.as_bytes().split_at(15);
                let mut canonical = Vec::with_capacity(18);
                for (chunk, check) in body.chunks(5).zip(suffix) {
                    let mask = CHECKSUM_ALPHABET
                        .iter()
                        .position(|a| a.eq_ignore_ascii_case(check))
                        .ok_or_else(|| invalid("the checksum uses a character outside A-Z, 0-5"))?;
                    for (i, &b) in chunk.iter().enumerate() {
                        let upper = mask & (1 << i) != 0;
                        match (upper, b.is_ascii_alphabetic()) {
                            (true, true) => canonical.push(b.to_ascii_uppercase()),
                            (false, true) => canonical.push(b.to_ascii_lowercase()),
                            (false, false) => canonical.push(b),
                            (true, false) => {
                                return Err(invalid("the checksum does not match the Id"));
                            }
                        }
                    }
                }
                canonical.extend(suffix.iter().map(u8::to_ascii_uppercase));
                Ok(Self(canonical.into_iter().map(char::from).collect()))
            }
            _ => Err(invalid("an Id has 15 or 18 characters")),
        }
    }

    /// The 18-character form, as the APIs return it.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The case-sensitive 15-character form.
    pub fn to_15(&self) -> &str {
        &self.0[..15]
    }

    /// The three-character key prefix that names the object (`001` is Account, `003` Contact).
    pub fn key_prefix(&self) -> &str {
        &self.0[..3]
    }
}

/// The three checksum characters of a 15-character Id.
fn checksum(id15: &[u8]) -> [u8; 3] {
    let mut suffix = [0u8; 3];
    for (slot, chunk) in suffix.iter_mut().zip(id15.chunks(5)) {
        let mask = chunk
            .iter()
            .enumerate()
            .filter(|(_, b)| b.is_ascii_uppercase())
            .fold(0usize, |mask, (i, _)| mask | (1 << i));
        *slot = CHECKSUM_ALPHABET[mask];
    }
    suffix
}

impl FromStr for SalesforceId {
    type Err = InvalidId;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

impl TryFrom<&str> for SalesforceId {
    type Error = InvalidId;

    fn try_from(value: &str) -> Result<Self, Self::Error> {
        Self::parse(value)
    }
}

impl AsRef<str> for SalesforceId {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for SalesforceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for SalesforceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SalesforceId({})", self.0)
    }
}

impl Serialize for SalesforceId {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for SalesforceId {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let value = <std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
        Self::parse(&value).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Published 15 -> 18 vectors (reference §7: code-golf thread, hynek's gist, REST guide).
    const VECTORS: &[(&str, &str)] = &[
        ("001M000000qfPyS", "001M000000qfPySIAU"),
        ("a0FE000000D6r3F", "a0FE000000D6r3FMAR"),
        ("AbCdEfGhIjKlMnO", "AbCdEfGhIjKlMnOVKV"),
        ("aBcDEfgHIJKLMNO", "aBcDEfgHIJKLMNO025"),
        ("001D000000IqhSL", "001D000000IqhSLIAZ"),
    ];

    #[test]
    fn fifteen_to_eighteen_matches_published_vectors() {
        for (short, long) in VECTORS {
            let id = SalesforceId::parse(short).unwrap();
            assert_eq!(id.as_str(), *long, "for {short}");
            assert_eq!(id.to_15(), *short);
        }
    }

    #[test]
    fn eighteen_round_trips_and_equals_its_fifteen() {
        for (short, long) in VECTORS {
            let from_long = SalesforceId::parse(long).unwrap();
            assert_eq!(from_long.as_str(), *long);
            assert_eq!(from_long, SalesforceId::parse(short).unwrap());
        }
    }

    #[test]
    fn eighteen_in_folded_case_restores_the_original_case() {
        for (short, long) in VECTORS {
            let lower = SalesforceId::parse(&long.to_ascii_lowercase()).unwrap();
            let upper = SalesforceId::parse(&long.to_ascii_uppercase()).unwrap();
            assert_eq!(lower.to_15(), *short);
            assert_eq!(upper.as_str(), *long);
        }
    }

    #[test]
    fn fifteen_in_a_different_case_is_a_different_record() {
        let a = SalesforceId::parse("001M000000qfPyS").unwrap();
        let b = SalesforceId::parse("001M000000QFPYS").unwrap();
        assert_ne!(a, b);
        assert_eq!(b.as_str(), "001M000000QFPYSIA5");
    }

    #[test]
    fn rejects_bad_lengths_characters_and_checksums() {
        for bad in [
            "",
            "001",
            "001M000000qfPyS1",
            "001M000000qfPyS-IAU",
            "001M000000qfPyS!",
        ] {
            assert!(SalesforceId::parse(bad).is_err(), "{bad:?} accepted");
        }
        // '9' is not a checksum character.
        assert!(SalesforceId::parse("001M000000qfPyS9AU").is_err());
        // 'Z' marks all five characters of the first chunk upper case, but "001M0" has digits.
        assert!(SalesforceId::parse("001M000000qfPySZAU").is_err());
    }

    #[test]
    fn key_prefix_and_serde() {
        let id: SalesforceId = "001D000000IqhSL".parse().unwrap();
        assert_eq!(id.key_prefix(), "001");
        let json = serde_json::to_string(&id).unwrap();
        assert_eq!(json, "\"001D000000IqhSLIAZ\"");
        let back: SalesforceId = serde_json::from_str(&json).unwrap();
        assert_eq!(back, id);
        assert!(serde_json::from_str::<SalesforceId>("\"nope\"").is_err());
    }
}
