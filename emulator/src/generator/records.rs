//! What each generated record looks like: a user, a product, a lead, an account with its
//! contacts, opportunities and invoices; their names, addresses, phones and amounts, drawn
//! from the generator's one random stream in a fixed order.

use chrono::{Duration, NaiveDate};
use rand::Rng;
use rand_chacha::ChaCha8Rng;

use super::words::{City, Product, Stage};
use super::{GenerateError, Generated, Generator, Parent};
use crate::ids::Id;
use crate::model::Value;
use crate::org::NewUser;

impl Generator<'_> {
    pub(super) fn user(&mut self, out: &mut Generated) -> Result<(), GenerateError> {
        let n = out.users + 1;
        let first = self.word(|w| &w.first_names);
        let last = self.word(|w| &w.last_names);
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

    pub(super) fn product(&mut self) -> Result<Id, GenerateError> {
        let products = &self.words.products;
        let Product {
            family,
            name: base,
            list_price: price_hint,
        } = &products[self.rng.random_range(0..products.len())];
        let tier = self.pick(&["Standard", "Professional", "Enterprise", "Lite", "Plus"]);
        let code: u32 = self.rng.random_range(1000..9999);
        let created = self.past();
        let owner = self.owner();
        let sku = format!("{}-{code}", &family[..3].to_uppercase());
        let values = vec![
            ("Name", Value::text(format!("{base} {tier}"))),
            ("ProductCode", Value::text(sku.clone())),
            ("Family", Value::text(family.as_str())),
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

    pub(super) fn lead(&mut self) -> Result<Id, GenerateError> {
        let city = self.city();
        let first = self.word(|w| &w.first_names);
        let last = self.word(|w| &w.last_names);
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
            ("Title", Value::text(self.word(|w| &w.titles))),
            ("Email", Value::text(email(first, last, &company))),
            ("Phone", self.phone(city)),
            ("Status", Value::text(status)),
            ("LeadSource", Value::text(self.word(|w| &w.sources))),
            ("Industry", Value::text(self.word(|w| &w.industries))),
            ("Rating", Value::text(self.pick(&["Hot", "Warm", "Cold"]))),
            (
                "NumberOfEmployees",
                Value::Int(self.rng.random_range(5..20_000)),
            ),
        ];
        values.extend(address("", city, &self.words.streets, &mut self.rng));
        self.insert("Lead", values, owner, created)
    }

    fn company_name(&mut self) -> String {
        let first = self.word(|w| &w.company_words);
        let second = self.word(|w| &w.company_words);
        let suffix = self.word(|w| &w.company_suffixes);
        if first == second {
            format!("{first} {suffix}")
        } else {
            format!("{first} {second} {suffix}")
        }
    }

    pub(super) fn account(&mut self) -> Result<Parent, GenerateError> {
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
            ("Type", Value::text(self.word(|w| &w.account_types))),
            ("Industry", Value::text(self.word(|w| &w.industries))),
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
            ("AccountSource", Value::text(self.word(|w| &w.sources))),
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
        values.extend(address("Billing", city, &self.words.streets, &mut self.rng));
        if self.rng.random_bool(0.6) {
            values.extend(address(
                "Shipping",
                city,
                &self.words.streets,
                &mut self.rng,
            ));
        }
        let id = self.insert("Account", values, owner, created)?;
        Ok(Parent {
            id,
            created,
            city,
            name,
        })
    }

    pub(super) fn contact(
        &mut self,
        account: &Parent,
        reports_to: Option<Id>,
    ) -> Result<Id, GenerateError> {
        let first = self.word(|w| &w.first_names);
        let last = self.word(|w| &w.last_names);
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
            ("Title", Value::text(self.word(|w| &w.titles))),
            ("Department", Value::text(self.word(|w| &w.departments))),
            ("Email", Value::text(email(first, last, &account.name))),
            ("Phone", self.phone(account.city)),
            ("MobilePhone", self.phone(account.city)),
            ("LeadSource", Value::text(self.word(|w| &w.sources))),
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
        values.extend(address(
            "Mailing",
            account.city,
            &self.words.streets,
            &mut self.rng,
        ));
        self.insert("Contact", values, owner, created)
    }

    pub(super) fn opportunity(&mut self, account: &Parent) -> Result<Id, GenerateError> {
        let stages = &self.words.stages;
        let Stage {
            name: stage,
            probability,
        } = &stages[self.rng.random_range(0..stages.len())];
        let created = self.after(account.created);
        let owner = self.owner();
        let close = (created + Duration::days(self.rng.random_range(14..240))).date_naive();
        let amount = (10f64.powf(self.rng.random_range(3.0..6.3)) / 100.0).round() * 100.0;
        let products = &self.words.products;
        let product = &products[self.rng.random_range(0..products.len())].name;
        let values = vec![
            ("AccountId", Value::text(account.id.as_str())),
            ("Name", Value::text(format!("{} - {product}", account.name))),
            ("StageName", Value::text(stage.as_str())),
            ("Probability", Value::Double(*probability)),
            ("Amount", Value::Double(amount)),
            ("CloseDate", Value::Date(close)),
            ("Type", Value::text(self.word(|w| &w.opportunity_types))),
            ("LeadSource", Value::text(self.word(|w| &w.sources))),
            ("ForecastCategoryName", Value::text(forecast(stage))),
            ("NextStep", Value::text(self.word(|w| &w.next_steps))),
            (
                "TotalOpportunityQuantity",
                Value::Double(f64::from(self.rng.random_range(1..500))),
            ),
        ];
        self.insert("Opportunity", values, owner, created)
    }

    pub(super) fn invoice(&mut self, account: &Parent) -> Result<Id, GenerateError> {
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
fn address(
    prefix: &'static str,
    city: &City,
    streets: &[String],
    rng: &mut ChaCha8Rng,
) -> Vec<(&'static str, Value)> {
    let number = rng.random_range(1..2500);
    let street = &streets[rng.random_range(0..streets.len())];
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
        (field("City"), Value::text(city.name.as_str())),
        (field("State"), Value::text(city.state.as_str())),
        (field("PostalCode"), Value::text(city.postal_code.as_str())),
        (field("Country"), Value::text(city.country.as_str())),
        (field("Latitude"), Value::Double(lat)),
        (field("Longitude"), Value::Double(lon)),
    ]
}
