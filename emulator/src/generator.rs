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

use crate::ids::Id;
use crate::model::Value;
use crate::org::{ApiError, NewUser, Org, SaveError};

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

    fn city(&mut self) -> &'static City {
        &CITIES[self.rng.random_range(0..CITIES.len())]
    }

    fn phone(&mut self, city: &City) -> Value {
        let n: u32 = self.rng.random_range(1_000_000..9_999_999);
        Value::text(format!("{} {}", city.phone_prefix, n))
    }

    fn user(&mut self, out: &mut Generated) -> Result<(), GenerateError> {
        let n = out.users + 1;
        let first = self.pick(FIRST_NAMES);
        let last = self.pick(LAST_NAMES);
        let username = format!(
            "{}.{}{n}@sfpg-demo.example",
            first.to_lowercase(),
            last.to_lowercase()
        );
        let id = self.org.add_user(&NewUser {
            username: username.clone(),
            first_name: Some(first.to_owned()),
            last_name: last.to_owned(),
            email: username,
        })?;
        self.users.push(id);
        out.users += 1;
        Ok(())
    }

    fn product(&mut self) -> Result<Id, GenerateError> {
        let (family, base, price_hint) = self.pick(PRODUCTS);
        let tier = self.pick(&["Standard", "Professional", "Enterprise", "Lite", "Plus"]);
        let code: u32 = self.rng.random_range(1000..9999);
        let created = self.past();
        let owner = self.owner();
        let sku = format!("{}-{code}", &family[..3].to_uppercase());
        let values = vec![
            ("Name", Value::text(format!("{base} {tier}"))),
            ("ProductCode", Value::text(sku.clone())),
            ("Family", Value::text(family)),
            ("IsActive", Value::Bool(self.rng.random_bool(0.9))),
            (
                "Description",
                Value::text(format!(
                    "{base} ({tier} edition), list price about {price_hint} USD."
                )),
            ),
            ("ExternalId", Value::text(format!("EXT-{sku}"))),
            ("StockKeepingUnit", Value::text(sku)),
            ("QuantityUnitOfMeasure", Value::text("Each")),
        ];
        self.insert("Product2", values, owner, created)
    }

    fn lead(&mut self) -> Result<Id, GenerateError> {
        let city = self.city();
        let first = self.pick(FIRST_NAMES);
        let last = self.pick(LAST_NAMES);
        let company = self.company_name();
        let created = self.past();
        let owner = self.owner();
        let status = self.pick(&[
            "Open - Not Contacted",
            "Open - Not Contacted",
            "Working - Contacted",
            "Working - Contacted",
            "Closed - Not Converted",
        ]);
        let mut values = vec![
            ("FirstName", Value::text(first)),
            ("LastName", Value::text(last)),
            (
                "Salutation",
                Value::text(self.pick(&["Mr.", "Ms.", "Mrs.", "Dr."])),
            ),
            ("Company", Value::text(company.clone())),
            ("Title", Value::text(self.pick(TITLES))),
            ("Email", Value::text(email(first, last, &company))),
            ("Phone", self.phone(city)),
            ("Status", Value::text(status)),
            ("LeadSource", Value::text(self.pick(SOURCES))),
            ("Industry", Value::text(self.pick(INDUSTRIES))),
            ("Rating", Value::text(self.pick(&["Hot", "Warm", "Cold"]))),
            (
                "NumberOfEmployees",
                Value::Int(self.rng.random_range(5..20_000)),
            ),
        ];
        values.extend(address("", city, &mut self.rng));
        self.insert("Lead", values, owner, created)
    }

    fn company_name(&mut self) -> String {
        let first = self.pick(COMPANY_WORDS);
        let second = self.pick(COMPANY_WORDS);
        let suffix = self.pick(COMPANY_SUFFIXES);
        if first == second {
            format!("{first} {suffix}")
        } else {
            format!("{first} {second} {suffix}")
        }
    }

    fn account(&mut self) -> Result<Parent, GenerateError> {
        let city = self.city();
        let name = self.company_name();
        let created = self.past();
        let owner = self.owner();
        let employees: i64 = (10f64.powf(self.rng.random_range(1.0..5.0))) as i64;
        let revenue = (employees as f64 * self.rng.random_range(80_000.0..250_000.0)).round();
        let domain: String = name
            .split_whitespace()
            .next()
            .unwrap_or("example")
            .to_lowercase();
        let regions = ["AMER", "EMEA", "APAC", "LATAM"];
        let chosen: Vec<&str> = regions
            .iter()
            .filter(|_| self.rng.random_bool(0.35))
            .copied()
            .collect();
        let mut values = vec![
            ("Name", Value::text(name.clone())),
            ("Type", Value::text(self.pick(ACCOUNT_TYPES))),
            ("Industry", Value::text(self.pick(INDUSTRIES))),
            ("Rating", Value::text(self.pick(&["Hot", "Warm", "Cold"]))),
            ("Phone", self.phone(city)),
            (
                "Website",
                Value::text(format!("https://www.{domain}.example")),
            ),
            ("NumberOfEmployees", Value::Int(employees)),
            ("AnnualRevenue", Value::Double(revenue)),
            (
                "Ownership",
                Value::text(self.pick(&["Public", "Private", "Subsidiary"])),
            ),
            ("AccountSource", Value::text(self.pick(SOURCES))),
            (
                "AccountNumber",
                Value::text(format!("CD{:06}", self.rng.random_range(0..999_999))),
            ),
            (
                "CustomerPriority__c",
                Value::text(self.pick(&["High", "Medium", "Low"])),
            ),
            (
                "SLA__c",
                Value::text(self.pick(&["Gold", "Silver", "Platinum", "Bronze"])),
            ),
            ("Active__c", Value::text(self.pick(&["Yes", "Yes", "No"]))),
        ];
        if !chosen.is_empty() {
            values.push(("Regions__c", Value::text(chosen.join(";"))));
        }
        if self.rng.random_bool(0.5) {
            let expires =
                (self.anchor + Duration::days(self.rng.random_range(-200..700))).date_naive();
            values.push(("SLAExpirationDate__c", Value::Date(expires)));
        }
        values.extend(address("Billing", city, &mut self.rng));
        if self.rng.random_bool(0.6) {
            values.extend(address("Shipping", city, &mut self.rng));
        }
        let id = self.insert("Account", values, owner, created)?;
        Ok(Parent {
            id,
            created,
            city,
            name,
        })
    }

    fn contact(&mut self, account: &Parent, reports_to: Option<Id>) -> Result<Id, GenerateError> {
        let first = self.pick(FIRST_NAMES);
        let last = self.pick(LAST_NAMES);
        let created = self.after(account.created);
        let owner = self.owner();
        let birth = NaiveDate::from_ymd_opt(
            self.rng.random_range(1955..2002),
            self.rng.random_range(1..=12),
            self.rng.random_range(1..=28),
        );
        let mut values = vec![
            ("AccountId", Value::text(account.id.as_str())),
            ("FirstName", Value::text(first)),
            ("LastName", Value::text(last)),
            (
                "Salutation",
                Value::text(self.pick(&["Mr.", "Ms.", "Mrs.", "Dr.", "Prof."])),
            ),
            ("Title", Value::text(self.pick(TITLES))),
            ("Department", Value::text(self.pick(DEPARTMENTS))),
            ("Email", Value::text(email(first, last, &account.name))),
            ("Phone", self.phone(account.city)),
            ("MobilePhone", self.phone(account.city)),
            ("LeadSource", Value::text(self.pick(SOURCES))),
            ("HasOptedOutOfEmail", Value::Bool(self.rng.random_bool(0.1))),
            ("DoNotCall", Value::Bool(self.rng.random_bool(0.05))),
            (
                "Level__c",
                Value::text(self.pick(&["Primary", "Secondary", "Tertiary"])),
            ),
        ];
        if let Some(b) = birth {
            values.push(("Birthdate", Value::Date(b)));
        }
        if let Some(manager) = reports_to {
            values.push(("ReportsToId", Value::text(manager.as_str())));
        }
        values.extend(address("Mailing", account.city, &mut self.rng));
        self.insert("Contact", values, owner, created)
    }

    fn opportunity(&mut self, account: &Parent) -> Result<Id, GenerateError> {
        let (stage, probability) = self.pick(STAGES);
        let created = self.after(account.created);
        let owner = self.owner();
        let close = (created + Duration::days(self.rng.random_range(14..240))).date_naive();
        let amount = (10f64.powf(self.rng.random_range(3.0..6.3)) / 100.0).round() * 100.0;
        let (_, product, _) = self.pick(PRODUCTS);
        let values = vec![
            ("AccountId", Value::text(account.id.as_str())),
            ("Name", Value::text(format!("{} - {product}", account.name))),
            ("StageName", Value::text(stage)),
            ("Probability", Value::Double(probability)),
            ("Amount", Value::Double(amount)),
            ("CloseDate", Value::Date(close)),
            ("Type", Value::text(self.pick(OPPORTUNITY_TYPES))),
            ("LeadSource", Value::text(self.pick(SOURCES))),
            ("ForecastCategoryName", Value::text(forecast(stage))),
            ("NextStep", Value::text(self.pick(NEXT_STEPS))),
            (
                "TotalOpportunityQuantity",
                Value::Double(f64::from(self.rng.random_range(1..500))),
            ),
        ];
        self.insert("Opportunity", values, owner, created)
    }

    fn invoice(&mut self, account: &Parent) -> Result<Id, GenerateError> {
        self.invoice_number += 1;
        let created = self.after(account.created);
        let owner = self.owner();
        let status = self.pick(&["Draft", "Sent", "Sent", "Paid", "Paid", "Paid", "Void"]);
        let amount = (self.rng.random_range(100.0..50_000.0_f64) * 100.0).round() / 100.0;
        let tax = self.pick(&[0.0, 5.0, 7.5, 10.0, 20.0]);
        let due = (created + Duration::days(30)).date_naive();
        let mut values = vec![
            ("Account__c", Value::text(account.id.as_str())),
            ("Amount__c", Value::Double(amount)),
            ("Tax__c", Value::Double(tax)),
            ("Status__c", Value::text(status)),
            (
                "External_Id__c",
                Value::text(format!("ERP-{:09}", self.invoice_number)),
            ),
            ("Due_Date__c", Value::Date(due)),
        ];
        if status == "Paid" {
            let paid = due - Duration::days(self.rng.random_range(-20..25));
            values.push(("Paid_Date__c", Value::Date(paid)));
        }
        self.insert("Invoice__c", values, owner, created)
    }
}

fn email(first: &str, last: &str, company: &str) -> String {
    let domain: String = company
        .split_whitespace()
        .next()
        .unwrap_or("example")
        .chars()
        .filter(char::is_ascii_alphanumeric)
        .collect::<String>()
        .to_lowercase();
    format!(
        "{}.{}@{domain}.example",
        first.to_lowercase(),
        last.to_lowercase().replace(['\'', ' '], "")
    )
}

fn forecast(stage: &str) -> &'static str {
    match stage {
        "Closed Won" => "Closed",
        "Closed Lost" => "Omitted",
        "Negotiation/Review" | "Proposal/Price Quote" => "Commit",
        "Id. Decision Makers" | "Perception Analysis" | "Value Proposition" => "Best Case",
        _ => "Pipeline",
    }
}

/// The components of an address in `city`, under `prefix` (`Billing`, `Mailing`, ``).
fn address(prefix: &'static str, city: &City, rng: &mut ChaCha8Rng) -> Vec<(&'static str, Value)> {
    let number = rng.random_range(1..2500);
    let street = STREETS[rng.random_range(0..STREETS.len())];
    let jitter = |rng: &mut ChaCha8Rng| rng.random_range(-0.05..0.05);
    let lat = ((city.latitude + jitter(rng)) * 1e6).round() / 1e6;
    let lon = ((city.longitude + jitter(rng)) * 1e6).round() / 1e6;
    let field = |suffix: &'static str| -> &'static str {
        match (prefix, suffix) {
            ("Billing", "Street") => "BillingStreet",
            ("Billing", "City") => "BillingCity",
            ("Billing", "State") => "BillingState",
            ("Billing", "PostalCode") => "BillingPostalCode",
            ("Billing", "Country") => "BillingCountry",
            ("Billing", "Latitude") => "BillingLatitude",
            ("Billing", "Longitude") => "BillingLongitude",
            ("Shipping", "Street") => "ShippingStreet",
            ("Shipping", "City") => "ShippingCity",
            ("Shipping", "State") => "ShippingState",
            ("Shipping", "PostalCode") => "ShippingPostalCode",
            ("Shipping", "Country") => "ShippingCountry",
            ("Shipping", "Latitude") => "ShippingLatitude",
            ("Shipping", "Longitude") => "ShippingLongitude",
            ("Mailing", "Street") => "MailingStreet",
            ("Mailing", "City") => "MailingCity",
            ("Mailing", "State") => "MailingState",
            ("Mailing", "PostalCode") => "MailingPostalCode",
            ("Mailing", "Country") => "MailingCountry",
            ("Mailing", "Latitude") => "MailingLatitude",
            ("Mailing", "Longitude") => "MailingLongitude",
            (_, other) => other,
        }
    };
    vec![
        (field("Street"), Value::text(format!("{number} {street}"))),
        (field("City"), Value::text(city.name)),
        (field("State"), Value::text(city.state)),
        (field("PostalCode"), Value::text(city.postal_code)),
        (field("Country"), Value::text(city.country)),
        (field("Latitude"), Value::Double(lat)),
        (field("Longitude"), Value::Double(lon)),
    ]
}

struct City {
    name: &'static str,
    state: &'static str,
    postal_code: &'static str,
    country: &'static str,
    latitude: f64,
    longitude: f64,
    phone_prefix: &'static str,
}

const fn city(
    name: &'static str,
    state: &'static str,
    postal_code: &'static str,
    country: &'static str,
    latitude: f64,
    longitude: f64,
    phone_prefix: &'static str,
) -> City {
    City {
        name,
        state,
        postal_code,
        country,
        latitude,
        longitude,
        phone_prefix,
    }
}

const CITIES: &[City] = &[
    city(
        "San Francisco",
        "CA",
        "94105",
        "United States",
        37.7749,
        -122.4194,
        "(415)",
    ),
    city(
        "New York",
        "NY",
        "10001",
        "United States",
        40.7128,
        -74.0060,
        "(212)",
    ),
    city(
        "Chicago",
        "IL",
        "60601",
        "United States",
        41.8781,
        -87.6298,
        "(312)",
    ),
    city(
        "Austin",
        "TX",
        "78701",
        "United States",
        30.2672,
        -97.7431,
        "(512)",
    ),
    city(
        "Seattle",
        "WA",
        "98101",
        "United States",
        47.6062,
        -122.3321,
        "(206)",
    ),
    city(
        "Boston",
        "MA",
        "02108",
        "United States",
        42.3601,
        -71.0589,
        "(617)",
    ),
    city(
        "Atlanta",
        "GA",
        "30303",
        "United States",
        33.7490,
        -84.3880,
        "(404)",
    ),
    city(
        "Denver",
        "CO",
        "80202",
        "United States",
        39.7392,
        -104.9903,
        "(303)",
    ),
    city(
        "Toronto", "ON", "M5H 2N2", "Canada", 43.6532, -79.3832, "+1 416",
    ),
    city(
        "London",
        "England",
        "EC2V 7HH",
        "United Kingdom",
        51.5074,
        -0.1278,
        "+44 20",
    ),
    city(
        "Manchester",
        "England",
        "M1 1AE",
        "United Kingdom",
        53.4808,
        -2.2426,
        "+44 161",
    ),
    city(
        "Paris",
        "Île-de-France",
        "75002",
        "France",
        48.8566,
        2.3522,
        "+33 1",
    ),
    city(
        "Lyon",
        "Auvergne-Rhône-Alpes",
        "69002",
        "France",
        45.7640,
        4.8357,
        "+33 4",
    ),
    city(
        "Berlin", "Berlin", "10117", "Germany", 52.5200, 13.4050, "+49 30",
    ),
    city(
        "Munich", "Bavaria", "80331", "Germany", 48.1351, 11.5820, "+49 89",
    ),
    city(
        "Amsterdam",
        "North Holland",
        "1012 JS",
        "Netherlands",
        52.3676,
        4.9041,
        "+31 20",
    ),
    city(
        "Madrid", "Madrid", "28013", "Spain", 40.4168, -3.7038, "+34 91",
    ),
    city(
        "Milan", "Lombardy", "20121", "Italy", 45.4642, 9.1900, "+39 02",
    ),
    city(
        "Stockholm",
        "Stockholm",
        "111 52",
        "Sweden",
        59.3293,
        18.0686,
        "+46 8",
    ),
    city(
        "Dublin", "Leinster", "D02 X285", "Ireland", 53.3498, -6.2603, "+353 1",
    ),
    city(
        "Tokyo", "Tokyo", "100-0005", "Japan", 35.6762, 139.6503, "+81 3",
    ),
    city(
        "Singapore",
        "Singapore",
        "049712",
        "Singapore",
        1.2830,
        103.8513,
        "+65",
    ),
    city(
        "Sydney",
        "NSW",
        "2000",
        "Australia",
        -33.8688,
        151.2093,
        "+61 2",
    ),
    city(
        "São Paulo",
        "SP",
        "01310-100",
        "Brazil",
        -23.5505,
        -46.6333,
        "+55 11",
    ),
    city(
        "Mexico City",
        "CDMX",
        "06000",
        "Mexico",
        19.4326,
        -99.1332,
        "+52 55",
    ),
];

const STREETS: &[&str] = &[
    "Market Street",
    "Main Street",
    "Oak Avenue",
    "Maple Drive",
    "Park Lane",
    "Mission Street",
    "Broadway",
    "High Street",
    "Church Road",
    "Station Road",
    "King Street",
    "Queen Street",
    "Harbour Way",
    "Innovation Drive",
    "Commerce Boulevard",
    "Elm Street",
    "Cedar Court",
    "River Road",
    "Hillside Avenue",
    "Industrial Parkway",
];

const FIRST_NAMES: &[&str] = &[
    "James",
    "Mary",
    "Robert",
    "Patricia",
    "John",
    "Jennifer",
    "Michael",
    "Linda",
    "David",
    "Elizabeth",
    "William",
    "Barbara",
    "Richard",
    "Susan",
    "Joseph",
    "Jessica",
    "Thomas",
    "Sarah",
    "Charles",
    "Karen",
    "Daniel",
    "Lisa",
    "Matthew",
    "Nancy",
    "Anthony",
    "Sandra",
    "Mark",
    "Ashley",
    "Wei",
    "Yuki",
    "Priya",
    "Arjun",
    "Sofia",
    "Lucas",
    "Emma",
    "Noah",
    "Olivia",
    "Liam",
    "Amara",
    "Kwame",
    "Fatima",
    "Omar",
    "Ingrid",
    "Lars",
    "Chloé",
    "Mateo",
    "Ana",
    "Hiroshi",
    "Mei",
    "Aisha",
];

const LAST_NAMES: &[&str] = &[
    "Smith",
    "Johnson",
    "Williams",
    "Brown",
    "Jones",
    "Garcia",
    "Miller",
    "Davis",
    "Rodriguez",
    "Martinez",
    "Hernandez",
    "Lopez",
    "Gonzalez",
    "Wilson",
    "Anderson",
    "Thomas",
    "Taylor",
    "Moore",
    "Jackson",
    "Martin",
    "Lee",
    "Perez",
    "Thompson",
    "White",
    "Harris",
    "Clark",
    "Lewis",
    "Robinson",
    "Walker",
    "Young",
    "Nakamura",
    "Chen",
    "Patel",
    "Kumar",
    "Müller",
    "Schmidt",
    "Dubois",
    "Rossi",
    "Andersson",
    "O'Brien",
    "Okafor",
    "Haddad",
    "Kowalski",
    "Novak",
    "Silva",
    "Santos",
    "Kim",
    "Park",
    "Nguyen",
    "Ivanova",
];

const COMPANY_WORDS: &[&str] = &[
    "Acme",
    "Global",
    "United",
    "Pinnacle",
    "Summit",
    "Northwind",
    "Blue",
    "Red",
    "Green",
    "Silver",
    "Golden",
    "Vertex",
    "Apex",
    "Quantum",
    "Stellar",
    "Horizon",
    "Pacific",
    "Atlantic",
    "Metro",
    "Prime",
    "Evergreen",
    "Ironwood",
    "Brightline",
    "Cascade",
    "Granite",
    "Harbor",
    "Lakeside",
    "Redwood",
    "Sterling",
    "Titan",
    "Union",
    "Vanguard",
    "Beacon",
    "Crescent",
    "Delta",
    "Echo",
    "Falcon",
    "Orbit",
    "Nimbus",
    "Aurora",
];

const COMPANY_SUFFIXES: &[&str] = &[
    "Inc.",
    "Corp.",
    "LLC",
    "Ltd.",
    "Group",
    "Holdings",
    "Systems",
    "Technologies",
    "Industries",
    "Partners",
    "Solutions",
    "Logistics",
    "Energy",
    "Health",
    "Foods",
    "Media",
    "Labs",
    "Manufacturing",
    "Capital",
    "GmbH",
    "SA",
    "BV",
];

const INDUSTRIES: &[&str] = &[
    "Agriculture",
    "Apparel",
    "Banking",
    "Biotechnology",
    "Chemicals",
    "Communications",
    "Construction",
    "Consulting",
    "Education",
    "Electronics",
    "Energy",
    "Engineering",
    "Entertainment",
    "Environmental",
    "Finance",
    "Food & Beverage",
    "Government",
    "Healthcare",
    "Hospitality",
    "Insurance",
    "Machinery",
    "Manufacturing",
    "Media",
    "Not For Profit",
    "Recreation",
    "Retail",
    "Shipping",
    "Technology",
    "Telecommunications",
    "Transportation",
    "Utilities",
    "Other",
];

const ACCOUNT_TYPES: &[&str] = &[
    "Prospect",
    "Customer - Direct",
    "Customer - Direct",
    "Customer - Channel",
    "Channel Partner / Reseller",
    "Installation Partner",
    "Technology Partner",
    "Other",
];

const SOURCES: &[&str] = &[
    "Web",
    "Phone Inquiry",
    "Partner Referral",
    "Purchased List",
    "Other",
];

const TITLES: &[&str] = &[
    "CEO",
    "CFO",
    "CTO",
    "VP Sales",
    "VP Marketing",
    "VP Engineering",
    "Director of IT",
    "Head of Procurement",
    "Operations Manager",
    "Sales Manager",
    "Account Manager",
    "Software Engineer",
    "Data Analyst",
    "Office Manager",
    "Buyer",
    "Controller",
];

const DEPARTMENTS: &[&str] = &[
    "Sales",
    "Marketing",
    "Finance",
    "Engineering",
    "Operations",
    "IT",
    "Procurement",
    "Human Resources",
    "Legal",
    "Customer Success",
];

const STAGES: &[(&str, f64)] = &[
    ("Prospecting", 10.0),
    ("Qualification", 10.0),
    ("Needs Analysis", 20.0),
    ("Value Proposition", 50.0),
    ("Id. Decision Makers", 60.0),
    ("Perception Analysis", 70.0),
    ("Proposal/Price Quote", 75.0),
    ("Negotiation/Review", 90.0),
    ("Closed Won", 100.0),
    ("Closed Won", 100.0),
    ("Closed Lost", 0.0),
    ("Closed Lost", 0.0),
];

const OPPORTUNITY_TYPES: &[&str] = &[
    "New Customer",
    "Existing Customer - Upgrade",
    "Existing Customer - Replacement",
    "Existing Customer - Downgrade",
];

const NEXT_STEPS: &[&str] = &[
    "Send proposal",
    "Schedule demo",
    "Follow up call",
    "Legal review",
    "Security review",
    "Negotiate terms",
    "Executive sponsor meeting",
    "Sign contract",
];

const PRODUCTS: &[(&str, &str, u32)] = &[
    ("Hardware", "GenWatt Diesel 200kW", 25_000),
    ("Hardware", "GenWatt Propane 500kW", 60_000),
    ("Hardware", "Edge Gateway", 1_200),
    ("Hardware", "Rack Server R740", 9_000),
    ("Software", "Analytics Cloud", 15_000),
    ("Software", "Security Suite", 8_000),
    ("Software", "Integration Platform", 20_000),
    ("Services", "Installation", 3_000),
    ("Services", "Onsite Training", 2_500),
    ("Support", "Premier Support", 5_000),
    ("Support", "SLA Gold Plan", 7_500),
];

#[cfg(test)]
mod tests {
    use super::*;
    use crate::org::ManualClock;
    use chrono::TimeZone;
    use std::sync::Arc;

    fn org() -> Org {
        let clock = ManualClock::new(Utc.with_ymd_and_hms(2024, 6, 1, 9, 30, 0).unwrap());
        Org::with_clock(Arc::new(clock)).unwrap()
    }

    fn dump(org: &Org) -> Vec<serde_json::Value> {
        let mut out = Vec::new();
        for object in [
            "User",
            "Product2",
            "Lead",
            "Account",
            "Contact",
            "Opportunity",
            "Invoice__c",
        ] {
            let cursor = org
                .query(
                    &format!("SELECT Id, Name, CreatedDate, SystemModstamp FROM {object}"),
                    true,
                )
                .unwrap();
            out.extend(org.page(&cursor, 0, cursor.len(), "62.0"));
        }
        out
    }

    #[test]
    fn creates_exactly_the_records_asked_for() {
        let mut org = org();
        let generated = generate(&mut org, 1000, 7).unwrap();
        assert_eq!(generated.total(), 1000);
        assert_eq!(org.total_records(), 1000);
        assert!(generated.accounts > 50 && generated.contacts > generated.accounts);
        assert!(generated.opportunities > 0 && generated.invoices > 0 && generated.leads == 99);
        let small = generate(
            &mut Org::with_clock(Arc::new(ManualClock::new(Utc::now()))).unwrap(),
            3,
            1,
        )
        .unwrap();
        assert_eq!(small.total(), 3);
    }

    #[test]
    fn the_same_seed_gives_the_same_org() {
        let (mut a, mut b, mut c) = (org(), org(), org());
        generate(&mut a, 600, 42).unwrap();
        generate(&mut b, 600, 42).unwrap();
        generate(&mut c, 600, 43).unwrap();
        assert_eq!(dump(&a), dump(&b));
        assert_ne!(dump(&a), dump(&c));
    }

    #[test]
    fn records_are_related_and_dated_in_the_past() {
        let mut org = org();
        generate(&mut org, 800, 3).unwrap();
        let cursor = org
            .query(
                "SELECT Id, Account__r.Name, Account_Name__c, Total__c, Amount__c, CreatedDate \
                 FROM Invoice__c",
                false,
            )
            .unwrap();
        let invoices = org.page(&cursor, 0, cursor.len(), "62.0");
        assert!(!invoices.is_empty());
        for invoice in &invoices {
            assert_eq!(invoice["Account__r"]["Name"], invoice["Account_Name__c"]);
            assert!(
                invoice["Total__c"].as_f64().unwrap() >= invoice["Amount__c"].as_f64().unwrap()
            );
            assert!(invoice["CreatedDate"].as_str().unwrap() < "2024-06-01");
        }
        let cursor = org
            .query("SELECT COUNT() FROM Contact WHERE AccountId = null", false)
            .unwrap();
        assert_eq!(cursor.total_size(), 0);
        let cursor = org
            .query("SELECT Id FROM Opportunity WHERE IsWon = true", false)
            .unwrap();
        assert!(cursor.total_size() > 0);
    }
}
