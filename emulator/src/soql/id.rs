//! Id literals: SOQL accepts 15- and 18-character Ids, and an 18-character Id in any
//! letter case (its last three characters encode the case of the first fifteen). Both
//! are turned into the one canonical 18-character form the org stores.

const SUFFIX_ALPHABET: &[u8; 32] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ012345";

/// The canonical 18-character form of an Id literal, or `None` if it is not an Id.
pub fn canonical(text: &str) -> Option<String> {
    let bytes = text.as_bytes();
    if !bytes.iter().all(u8::is_ascii_alphanumeric) {
        return None;
    }
    match bytes.len() {
        15 => Some(with_suffix(bytes)),
        18 => {
            let mut head = [0u8; 15];
            head.copy_from_slice(&bytes[..15]);
            for (chunk, suffix) in bytes[15..].iter().enumerate() {
                let bits = SUFFIX_ALPHABET
                    .iter()
                    .position(|c| *c == suffix.to_ascii_uppercase())?;
                for bit in 0..5 {
                    let c = &mut head[chunk * 5 + bit];
                    *c = if bits & (1 << bit) != 0 {
                        c.to_ascii_uppercase()
                    } else {
                        c.to_ascii_lowercase()
                    };
                }
            }
            Some(with_suffix(&head))
        }
        _ => None,
    }
}

/// The 15 characters followed by their case-encoding suffix.
fn with_suffix(head: &[u8]) -> String {
    let mut id = String::with_capacity(18);
    id.extend(head.iter().map(|b| char::from(*b)));
    for chunk in head.chunks(5) {
        let bits = chunk
            .iter()
            .enumerate()
            .filter(|(_, c)| c.is_ascii_uppercase())
            .fold(0usize, |acc, (i, _)| acc | (1 << i));
        id.push(char::from(SUFFIX_ALPHABET[bits]));
    }
    id
}

#[cfg(test)]
mod tests {
    use super::canonical;

    #[test]
    fn fifteen_characters_gain_their_suffix() {
        // The published example: 001A0000006Vm9r -> 001A0000006Vm9rIAC.
        assert_eq!(
            canonical("001A0000006Vm9r").as_deref(),
            Some("001A0000006Vm9rIAC")
        );
    }

    #[test]
    fn eighteen_characters_recover_their_case() {
        assert_eq!(
            canonical("001a0000006vm9riac").as_deref(),
            Some("001A0000006Vm9rIAC")
        );
        assert_eq!(
            canonical("001A0000006Vm9rIAC").as_deref(),
            Some("001A0000006Vm9rIAC")
        );
    }

    #[test]
    fn other_text_is_not_an_id() {
        assert_eq!(canonical("abc"), None);
        assert_eq!(canonical("001A0000006Vm9r!AC"), None);
        assert_eq!(canonical("Edge Communicatio"), None);
    }
}
