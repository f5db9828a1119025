//! Which entities are selected for Change Data Capture (`--cdc-entities all|none|A,B`).

use std::collections::BTreeSet;
use std::fmt;
use std::str::FromStr;

/// The entities whose changes are published.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Selection {
    /// Every object (the emulator's default).
    #[default]
    All,
    /// Only these objects (names compared without case); empty means none.
    Only(BTreeSet<String>),
}

impl Selection {
    pub fn none() -> Selection {
        Selection::Only(BTreeSet::new())
    }

    /// Whether changes to `entity` are published.
    pub fn includes(&self, entity: &str) -> bool {
        match self {
            Selection::All => true,
            Selection::Only(names) => names.contains(&entity.to_ascii_lowercase()),
        }
    }

    /// The selection from a list of names (`Account,Contact`).
    pub fn of<I: IntoIterator<Item = S>, S: AsRef<str>>(names: I) -> Selection {
        Selection::Only(
            names
                .into_iter()
                .map(|n| n.as_ref().trim().to_ascii_lowercase())
                .filter(|n| !n.is_empty())
                .collect(),
        )
    }
}

impl FromStr for Selection {
    type Err = std::convert::Infallible;

    /// `all`, `none`, or a comma-separated list of object names.
    fn from_str(text: &str) -> Result<Selection, Self::Err> {
        Ok(match text.trim() {
            t if t.eq_ignore_ascii_case("all") => Selection::All,
            t if t.eq_ignore_ascii_case("none") || t.is_empty() => Selection::none(),
            t => Selection::of(t.split(',')),
        })
    }
}

impl fmt::Display for Selection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Selection::All => f.write_str("all"),
            Selection::Only(names) if names.is_empty() => f.write_str("none"),
            Selection::Only(names) => {
                let list: Vec<&str> = names.iter().map(String::as_str).collect();
                f.write_str(&list.join(","))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_all_none_and_lists() {
        assert_eq!("all".parse::<Selection>().unwrap(), Selection::All);
        assert!(!"none".parse::<Selection>().unwrap().includes("Account"));
        let some: Selection = "Account, contact".parse().unwrap();
        assert!(some.includes("Contact") && some.includes("ACCOUNT") && !some.includes("Lead"));
        assert_eq!(some.to_string(), "account,contact");
    }
}
