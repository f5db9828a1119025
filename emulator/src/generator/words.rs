//! The words the generator draws names, places and picklist values from: data, kept in
//! `words.json` beside this file rather than in code, embedded in the binary and parsed
//! once. The order of each list is part of the generator's output: an org generated from a
//! seed picks by position, so reordering a list changes every org generated from then on.

use std::sync::LazyLock;

use serde::Deserialize;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct Words {
    pub cities: Vec<City>,
    pub streets: Vec<String>,
    pub first_names: Vec<String>,
    pub last_names: Vec<String>,
    /// Company names are two of these (or one, when both draws agree) and a suffix.
    pub company_words: Vec<String>,
    pub company_suffixes: Vec<String>,
    pub industries: Vec<String>,
    pub account_types: Vec<String>,
    pub sources: Vec<String>,
    pub titles: Vec<String>,
    pub departments: Vec<String>,
    /// Opportunity stages; a stage listed twice is drawn twice as often.
    pub stages: Vec<Stage>,
    pub opportunity_types: Vec<String>,
    pub next_steps: Vec<String>,
    pub products: Vec<Product>,
}

/// A city, and what its addresses and phone numbers look like.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct City {
    pub name: String,
    pub state: String,
    pub postal_code: String,
    pub country: String,
    pub latitude: f64,
    pub longitude: f64,
    pub phone_prefix: String,
}

/// An opportunity stage and the probability Salesforce's standard stage carries.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct Stage {
    pub name: String,
    pub probability: f64,
}

/// A product line: its family, base name and about what it costs.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct Product {
    pub family: String,
    pub name: String,
    pub list_price: u32,
}

static WORDS: LazyLock<Result<Words, serde_json::Error>> =
    LazyLock::new(|| serde_json::from_str(include_str!("words.json")));

/// The word lists, parsed on first use.
pub(super) fn words() -> Result<&'static Words, &'static serde_json::Error> {
    WORDS.as_ref()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_word_lists_parse_and_none_is_empty() {
        let words = words().unwrap();
        let lists = [
            &words.streets,
            &words.first_names,
            &words.last_names,
            &words.company_words,
            &words.company_suffixes,
            &words.industries,
            &words.account_types,
            &words.sources,
            &words.titles,
            &words.departments,
            &words.opportunity_types,
            &words.next_steps,
        ];
        assert!(lists.iter().all(|list| !list.is_empty()));
        assert!(!words.cities.is_empty() && !words.stages.is_empty());
        // The SKU is the family's first three letters.
        assert!(words.products.iter().all(|p| p.family.len() >= 3));
    }
}
