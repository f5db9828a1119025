//! The field bitmaps of a Pub/Sub change event header (`changedFields`, `nulledFields`,
//! `diffFields`; reference streaming §2.3).
//!
//! Each is a list of strings. The first, `"0x…"`, is a bitmap over the top-level field
//! positions of the event's Avro schema, read as one big-endian number: bit *i* set names
//! field *i*. Any further `"<pos>-0x…"` is a bitmap over the fields of the nested record
//! (a compound field such as `BillingAddress`) at top-level position `pos`. Bits past the
//! schema's fields are ignored, as Salesforce's own samples do: a schema may be older than
//! the event's bitmap.

/// The names of a record's fields in schema order, and for each the names of its own
/// fields when it is a nested record (a compound field).
pub(crate) trait FieldPositions {
    /// The name of the top-level field at `position`.
    fn field_name(&self, position: usize) -> Option<&str>;
    /// The name of the field at `child` inside the nested record at `position`.
    fn nested_field_name(&self, position: usize, child: usize) -> Option<&str>;
}

/// A malformed bitmap entry.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the field bitmap {entry:?} is not \"0x<hex>\" or \"<position>-0x<hex>\"")]
pub(crate) struct BitmapError {
    entry: String,
}

/// The field names a bitmap list sets, in schema order: top-level names first
/// (`BillingAddress`), then nested ones as `Parent.Child` (`BillingAddress.City`).
pub(crate) fn decode(
    bitmaps: &[String],
    schema: &impl FieldPositions,
) -> Result<Vec<String>, BitmapError> {
    let mut names = Vec::new();
    for (index, entry) in bitmaps.iter().enumerate() {
        let malformed = || BitmapError {
            entry: entry.clone(),
        };
        match entry.split_once('-') {
            None if index == 0 => {
                for position in set_bits(entry).ok_or_else(malformed)? {
                    if let Some(name) = schema.field_name(position) {
                        names.push(name.to_owned());
                    }
                }
            }
            Some((parent, bits)) => {
                let parent: usize = parent.parse().map_err(|_| malformed())?;
                let Some(parent_name) = schema.field_name(parent) else {
                    set_bits(bits).ok_or_else(malformed)?;
                    continue;
                };
                for child in set_bits(bits).ok_or_else(malformed)? {
                    if let Some(name) = schema.nested_field_name(parent, child) {
                        names.push(format!("{parent_name}.{name}"));
                    }
                }
            }
            None => return Err(malformed()),
        }
    }
    Ok(names)
}

/// The set bit positions of `"0x…"`, lowest first; `None` when it is not hex.
fn set_bits(bitmap: &str) -> Option<Vec<usize>> {
    let hex = bitmap
        .strip_prefix("0x")
        .or_else(|| bitmap.strip_prefix("0X"))?;
    if hex.is_empty() {
        return None;
    }
    let mut positions = Vec::new();
    // The last hex digit holds bits 0–3, the one before it bits 4–7, and so on.
    for (digit_index, digit) in hex.bytes().rev().enumerate() {
        let value = char::from(digit).to_digit(16)?;
        for bit in 0..4 {
            if value & (1 << bit) != 0 {
                positions.push(digit_index * 4 + bit);
            }
        }
    }
    Some(positions)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The reference schema: `[ChangeEventHeader, Name, Type, BillingAddress{Street,City,State}, Phone]`.
    struct Reference;

    impl FieldPositions for Reference {
        fn field_name(&self, position: usize) -> Option<&str> {
            [
                "ChangeEventHeader",
                "Name",
                "Type",
                "BillingAddress",
                "Phone",
            ]
            .get(position)
            .copied()
        }

        fn nested_field_name(&self, position: usize, child: usize) -> Option<&str> {
            match position {
                3 => ["Street", "City", "State"].get(child).copied(),
                _ => None,
            }
        }
    }

    fn names(bitmaps: &[&str]) -> Vec<String> {
        let bitmaps: Vec<String> = bitmaps.iter().map(|b| (*b).to_owned()).collect();
        decode(&bitmaps, &Reference).unwrap()
    }

    #[test]
    fn the_reference_vectors() {
        assert_eq!(names(&["0x02"]), ["Name"]);
        assert_eq!(names(&["0x16"]), ["Name", "Type", "Phone"]);
        assert_eq!(
            names(&["0x08", "3-0x06"]),
            [
                "BillingAddress",
                "BillingAddress.City",
                "BillingAddress.State"
            ]
        );
    }

    #[test]
    fn bits_past_the_schema_are_ignored() {
        // Bit 5 and bit 31 name no field; bit 3 of the address names no component.
        assert_eq!(names(&["0x80000022"]), ["Name"]);
        assert_eq!(
            names(&["0x08", "3-0x0A"]),
            ["BillingAddress", "BillingAddress.City"]
        );
        // A nested bitmap under a position the schema does not have.
        assert_eq!(names(&["0x02", "9-0x01"]), ["Name"]);
        // A nested bitmap under a field that is not a record.
        assert_eq!(names(&["0x02", "1-0x01"]), ["Name"]);
    }

    #[test]
    fn long_bitmaps_are_big_endian_numbers() {
        // The last digit but one sets bit 4 (Phone); the first sets bit 80, past the schema.
        assert_eq!(names(&["0x0100000000000000000010"]), ["Phone"]);
        assert!(names(&["0x0", "3-0x0"]).is_empty());
        assert!(names(&[]).is_empty());
    }

    #[test]
    fn malformed_entries_are_errors() {
        for bad in [
            &["0xZZ"][..],
            &["12"],
            &["0x"],
            &["0x02", "x-0x01"],
            &["0x02", "3-ff"],
        ] {
            let bitmaps: Vec<String> = bad.iter().map(|b| (*b).to_owned()).collect();
            assert!(decode(&bitmaps, &Reference).is_err(), "{bad:?}");
        }
    }
}
