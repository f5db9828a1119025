//! A deterministic generator of realistic org data: users, products, leads, and accounts
//! with their contacts, opportunities and invoices, related by real lookups, with names,
//! cities, industries, amounts and dates that look like a sales org's.
//!
//! Everything is drawn from one ChaCha8 stream seeded by `seed`, and dates are offsets
//! back from an anchor day, so the same `(records, seed, anchor)` always yields the same
//! org, Ids included. [`generate`] anchors on the org clock's current day.
//!
//! Every record goes through the org's create rules (lengths, picklists, lookups,
//! validation rules), so generated data is data the API itself would accept.

use std::collections::HashMap;
use std::time::Instant;

use chrono::{DateTime, Duration, NaiveDate, Utc};
use rand::seq::IndexedRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

mod records;
#[cfg(test)]
mod tests;
mod words;

use self::words::{City, Words};
use crate::ids::Id;
use crate::model::Value;
use crate::org::{ApiError, Org, SaveError};

/// What [`generate`] created.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Generated {
    pub users: usize,
    pub products: usize,
    pub leads: usize,
    pub accounts: usize,
    pub contacts: usize,
    pub opportunities: usize,
    pub invoices: usize,
    pub elapsed_ms: u128,
}

impl Generated {
    /// Records created in all.
    pub fn total(&self) -> usize {
        self.users
            + self.products
            + self.leads
            + self.accounts
            + self.contacts
            + self.opportunities
            + self.invoices
    }
}

/// Why generation stopped.
#[derive(Debug, thiserror::Error)]
pub enum GenerateError {
    #[error("the org lacks the {0} object the generator fills")]
    MissingObject(&'static str),
    #[error("the org lacks the field {0}")]
    MissingField(String),
    #[error("a generated {object} record was refused: {error}")]
    Refused {
        object: &'static str,
        error: SaveError,
    },
    #[error(transparent)]
    Api(#[from] ApiError),
    #[error("the generator's word lists (generator/words.json) do not parse")]
    Words(#[source] &'static serde_json::Error),
}

/// Fills `org` with about `records` related records (exactly `records` when it is at
/// least 10), deterministic for `seed`, dated back from the org clock's current day.
pub fn generate(org: &mut Org, records: usize, seed: u64) -> Result<Generated, GenerateError> {
    let anchor = org.now().date_naive();
    generate_at(org, records, seed, anchor)
}

/// [`generate`] with an explicit anchor day: records are created within the two years
/// before it.
pub fn generate_at(
    org: &mut Org,
    records: usize,
    seed: u64,
    anchor: NaiveDate,
) -> Result<Generated, GenerateError> {
    let started = Instant::now();
    let mut g = Generator::new(org, seed, anchor)?;
    let mut out = Generated::default();
    let users = (records / 50_000 + 3).min(25).min(records);
    for _ in 0..users {
        g.user(&mut out)?;
    }
    let products = ((records - users) / 5_000 + 5)
        .min(200)
        .min(records - users);
    for _ in 0..products {
        g.product()?;
        out.products += 1;
    }
    let mut remaining = records - users - products;
    let leads = remaining / 10;
    for _ in 0..leads {
        g.lead()?;
        out.leads += 1;
    }
    remaining -= leads;
    while remaining > 0 {
        let account = g.account()?;
        out.accounts += 1;
        remaining -= 1;
        let contacts = g.rng.random_range(1..=5).min(remaining);
        let mut first_contact = None;
        for _ in 0..contacts {
            let id = g.contact(&account, first_contact)?;
            first_contact.get_or_insert(id);
            out.contacts += 1;
        }
        remaining -= contacts;
        let opportunities = g.rng.random_range(0..=3).min(remaining);
        for _ in 0..opportunities {
            g.opportunity(&account)?;
            out.opportunities += 1;
        }
        remaining -= opportunities;
        let invoices = g.rng.random_range(0..=3).min(remaining);
        for _ in 0..invoices {
            g.invoice(&account)?;
            out.invoices += 1;
        }
        remaining -= invoices;
    }
    out.elapsed_ms = started.elapsed().as_millis();
    Ok(out)
}

/// Fills `org` with `accounts` Account records and nothing else but the few users who
/// own them: one large object, as a Bulk backfill benchmark wants. Deterministic for
/// `seed`, dated back from the org clock's current day.
pub fn generate_accounts(
    org: &mut Org,
    accounts: usize,
    seed: u64,
) -> Result<Generated, GenerateError> {
    let started = Instant::now();
    let anchor = org.now().date_naive();
    let mut g = Generator::new(org, seed, anchor)?;
    let mut out = Generated::default();
    for _ in 0..(accounts / 50_000 + 3).min(25) {
        g.user(&mut out)?;
    }
    for _ in 0..accounts {
        g.account()?;
        out.accounts += 1;
    }
    out.elapsed_ms = started.elapsed().as_millis();
    Ok(out)
}

/// Fills `org` with `each` Accounts, `each` Contacts and `each` Opportunities (one
/// Contact and one Opportunity on every Account), and the few users who own them: three
/// objects of one size each, as a many-orgs benchmark wants. Deterministic for `seed`,
/// dated back from the org clock's current day.
pub fn generate_each(org: &mut Org, each: usize, seed: u64) -> Result<Generated, GenerateError> {
    let started = Instant::now();
    let anchor = org.now().date_naive();
    let mut g = Generator::new(org, seed, anchor)?;
    let mut out = Generated::default();
    for _ in 0..3 {
        g.user(&mut out)?;
    }
    for _ in 0..each {
        let account = g.account()?;
        out.accounts += 1;
        g.contact(&account, None)?;
        out.contacts += 1;
        g.opportunity(&account)?;
        out.opportunities += 1;
    }
    out.elapsed_ms = started.elapsed().as_millis();
    Ok(out)
}

/// A record of one object being generated, keyed by field name.
struct Object {
    name: &'static str,
    store: usize,
    fields: HashMap<String, usize>,
}

/// A parent record as its children need it.
struct Parent {
    id: Id,
    created: DateTime<Utc>,
    city: &'static City,
    name: String,
}

struct Generator<'o> {
    org: &'o mut Org,
    rng: ChaCha8Rng,
    anchor: DateTime<Utc>,
    objects: HashMap<&'static str, Object>,
    users: Vec<Id>,
    invoice_number: u64,
    words: &'static Words,
}

impl<'o> Generator<'o> {
    fn new(org: &'o mut Org, seed: u64, anchor: NaiveDate) -> Result<Generator<'o>, GenerateError> {
        let mut objects = HashMap::new();
        for name in [
            "User",
            "Product2",
            "Lead",
            "Account",
            "Contact",
            "Opportunity",
            "Invoice__c",
        ] {
            let store = org
                .store_index(name)
                .ok_or(GenerateError::MissingObject(name))?;
            let fields = org
                .def_at(store)
                .fields
                .iter()
                .enumerate()
                .map(|(i, f)| (f.name.clone(), i))
                .collect();
            objects.insert(
                name,
                Object {
                    name,
                    store,
                    fields,
                },
            );
        }
        let anchor = anchor.and_hms_opt(0, 0, 0).unwrap_or_default().and_utc();
        let users = org.user_ids();
        Ok(Generator {
            org,
            rng: ChaCha8Rng::seed_from_u64(seed),
            anchor,
            objects,
            users,
            invoice_number: 0,
            words: words::words().map_err(GenerateError::Words)?,
        })
    }

    /// Inserts one record of `object` with `values`, created at `created` by `owner`.
    fn insert(
        &mut self,
        object: &'static str,
        values: Vec<(&str, Value)>,
        owner: Id,
        created: DateTime<Utc>,
    ) -> Result<Id, GenerateError> {
        let o = self
            .objects
            .get(object)
            .ok_or(GenerateError::MissingObject(object))?;
        let mut resolved = Vec::with_capacity(values.len());
        for (name, value) in values {
            let index = *o
                .fields
                .get(name)
                .ok_or_else(|| GenerateError::MissingField(format!("{}.{name}", o.name)))?;
            resolved.push((index, value));
        }
        let latest = self.anchor.max(created);
        let modified = if self.rng.random_bool(0.3) {
            let span = (latest - created).num_seconds().max(1);
            created + Duration::seconds(self.rng.random_range(0..span))
        } else {
            created
        };
        self.org
            .insert_backdated(o.store, resolved, owner, created, modified)
            .map_err(|error| GenerateError::Refused { object, error })
    }

    /// A moment within the two years before the anchor, during office hours.
    fn past(&mut self) -> DateTime<Utc> {
        let days = self.rng.random_range(1..730);
        let seconds = self.rng.random_range(8 * 3600..18 * 3600);
        self.anchor - Duration::days(days) + Duration::seconds(seconds)
    }

    /// A moment between `after` and the anchor.
    fn after(&mut self, after: DateTime<Utc>) -> DateTime<Utc> {
        let span = (self.anchor - after).num_seconds().max(1);
        after + Duration::seconds(self.rng.random_range(0..span))
    }

    fn owner(&mut self) -> Id {
        match self.users.choose(&mut self.rng) {
            Some(id) => *id,
            None => self.org.org_id(),
        }
    }

    fn pick<T: Copy>(&mut self, items: &[T]) -> T {
        items[self.rng.random_range(0..items.len())]
    }

    /// One of the words of a list of [`Words`], chosen by `list`.
    fn word(&mut self, list: fn(&'static Words) -> &'static [String]) -> &'static str {
        let words = list(self.words);
        words[self.rng.random_range(0..words.len())].as_str()
    }

    fn city(&mut self) -> &'static City {
        let cities = &self.words.cities;
        &cities[self.rng.random_range(0..cities.len())]
    }

    fn phone(&mut self, city: &City) -> Value {
        let n: u32 = self.rng.random_range(1_000_000..9_999_999);
        Value::text(format!("{} {}", city.phone_prefix, n))
    }
}
