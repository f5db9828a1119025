//! The field bitmaps of a change event's header over the Pub/Sub API (`changedFields`,
//! `nulledFields`, `diffFields`): where CometD lists names (`Name`, `BillingAddress.City`),
//! Pub/Sub sends an array of hex strings. The first, `"0x…"`, is a big-endian bitmap over the
//! schema's top-level field positions (bit *i* = field *i*, the header being field 0); each
//! further `"<pos>-0x…"` is a bitmap over the components of the compound field at `pos`,
//! whose own bit is set in the first element too. Salesforce's documented example:
//! `['0x650004E0','4-0x10','7-0x06']` — whole bytes, upper-case hex.

use std::collections::{BTreeMap, BTreeSet};

use super::schema::{Layout, Slot};

/// The bitmap strings for the field `names` (top-level names, or `Compound.Component`).
/// Names the layout does not have are left out; no names give an empty array.
pub fn encode(layout: &Layout, names: &[String]) -> Vec<String> {
    let mut top = BTreeSet::new();
    let mut nested: BTreeMap<usize, BTreeSet<usize>> = BTreeMap::new();
    for name in names {
        match name.split_once('.') {
            Some((parent, child)) => {
                let Some(position) = layout.position(parent) else {
                    continue;
                };
                let Some(Slot::Compound { components, .. }) = layout.slots.get(position) else {
                    continue;
                };
                let Some(index) = components.iter().position(|(key, _)| key == child) else {
                    continue;
                };
                top.insert(position);
                nested.entry(position).or_default().insert(index);
            }
            None => {
                if let Some(position) = layout.position(name) {
                    top.insert(position);
                }
            }
        }
    }
    if top.is_empty() {
        return Vec::new();
    }
    let mut out = vec![hex(&top)];
    out.extend(
        nested
            .iter()
            .map(|(position, bits)| format!("{position}-{}", hex(bits))),
    );
    out
}

/// `0x…`: the bits as a big-endian number, in whole bytes of upper-case hex.
fn hex(bits: &BTreeSet<usize>) -> String {
    let highest = bits.iter().next_back().copied().unwrap_or(0);
    let len = highest / 8 + 1;
    let mut bytes = vec![0u8; len];
    for bit in bits {
        bytes[len - 1 - bit / 8] |= 1 << (bit % 8);
    }
    let digits: String = bytes.iter().map(|b| format!("{b:02X}")).collect();
    format!("0x{digits}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::FieldType;

    /// The reference's schema: `[ChangeEventHeader, Name, Type, BillingAddress{Street,
    /// City, State}, Phone]`.
    fn layout() -> Layout {
        let field = |name: &str| Slot::Field {
            name: name.to_owned(),
            field_type: FieldType::String,
        };
        Layout {
            slots: vec![
                Slot::Header,
                field("Name"),
                field("Type"),
                Slot::Compound {
                    name: "BillingAddress".to_owned(),
                    components: ["Street", "City", "State"]
                        .iter()
                        .map(|c| (c.to_string(), FieldType::String))
                        .collect(),
                },
                field("Phone"),
            ],
        }
    }

    fn names(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn encodes_the_reference_vectors() {
        assert_eq!(encode(&layout(), &names(&["Name"])), ["0x02"]);
        assert_eq!(
            encode(&layout(), &names(&["Name", "Type", "Phone"])),
            ["0x16"]
        );
        assert_eq!(
            encode(
                &layout(),
                &names(&["BillingAddress.City", "BillingAddress.State"])
            ),
            ["0x08", "3-0x06"]
        );
    }

    #[test]
    fn wide_bitmaps_are_whole_big_endian_bytes_and_unknown_names_are_left_out() {
        let mut slots = vec![Slot::Header];
        for i in 1..12 {
            slots.push(Slot::Field {
                name: format!("F{i}"),
                field_type: FieldType::Int,
            });
        }
        let layout = Layout { slots };
        assert_eq!(
            encode(&layout, &names(&["F1", "F9", "Nope", "X.Y"])),
            ["0x0202"]
        );
        assert!(encode(&layout, &[]).is_empty());
    }
}
