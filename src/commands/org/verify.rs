//! Checking what the user gave against the org itself: logging in, the API version, and the
//! objects to mirror. A refusal that the user can fix (credentials, a version the org does
//! not serve, an object it does not have) exits with code 2; an org that cannot be reached
//! does not.

use std::sync::Arc;

use anyhow::Context;
use sfpg_control::events::is_platform_event;
use sfpg_control::orgs::valid_object_name;
use sfpg_control::{MasterKey, Org, connect};
use sfpg_salesforce::{
    ApiVersion, Client, DescribeGlobal, ErrorClass, Priority, RateLimiter, Token, redact_url,
};

use crate::errors::UserError;

/// How many near names a refusal of an unknown object suggests.
const SUGGESTIONS: usize = 3;

/// Logs in to `org` once; refused credentials are the user's to fix (exit 2), an
/// unreachable Salesforce is not. A stored org (`stored`: its control database and key)
/// saves a refresh token that Salesforce rotates. Errors show the login URL without any
/// user name and password an org stored before they were refused may carry.
pub async fn log_in(
    org: &Org,
    stored: Option<(&tokio_postgres::Config, &MasterKey)>,
) -> anyhow::Result<(Client, Arc<Token>)> {
    let limiter = RateLimiter::new(connect::rate(org)?);
    let client = match stored {
        Some((database, key)) => connect::stored_client(org, limiter, database, key)?,
        None => connect::client(org, limiter)?,
    }
    .with_priority(Priority::Interactive);
    let login_url = redact_url(&org.login_url);
    match client.token().await {
        Ok(token) => Ok((client, token)),
        Err(error) if error.class() == ErrorClass::Auth => Err(UserError::new(format!(
            "Salesforce refused the credentials of org {} at {login_url}: {error}",
            org.name
        ))
        .into()),
        Err(error) => Err(anyhow::Error::new(error)
            .context(format!("cannot log in to org {} at {login_url}", org.name))),
    }
}

/// Refuses an API version the org does not serve, naming the ones it does. Asks
/// `GET /services/data/`, which is not counted against the org's allocation.
pub async fn check_api_version(client: &Client, org: &Org) -> anyhow::Result<()> {
    let wanted: ApiVersion = org.api_version.parse()?;
    let served = client
        .versions()
        .await
        .with_context(|| format!("cannot list the API versions org {} serves", org.name))?;
    if served.iter().any(|v| v.version == wanted.as_str()) {
        return Ok(());
    }
    let range = match (served.first(), served.last()) {
        (Some(oldest), Some(newest)) => {
            format!("it serves {} to {}", oldest.version, newest.version)
        }
        _ => "it lists no version".to_owned(),
    };
    Err(UserError::new(format!(
        "org {} does not serve API version {wanted}: {range}",
        org.name
    ))
    .into())
}

/// A Pub/Sub API endpoint as typed (`flag` names where): `host:port` (TLS), or an `https://`
/// or `http://` URL with a host.
pub fn pubsub_endpoint(endpoint: &str, flag: &str) -> anyhow::Result<String> {
    let endpoint = endpoint.trim();
    let url = sfpg_salesforce::streaming::pubsub_endpoint_url(endpoint);
    match url::Url::parse(&url) {
        Ok(parsed)
            if matches!(parsed.scheme(), "https" | "http")
                && parsed.host_str().is_some_and(|h| !h.is_empty())
                && parsed.path().trim_matches('/').is_empty() =>
        {
            Ok(endpoint.to_owned())
        }
        _ => Err(UserError::new(format!(
            "{flag}: {endpoint:?} is not a Pub/Sub endpoint: give host:port \
             (api.pubsub.salesforce.com:7443) or an https:// or http:// URL"
        ))
        .into()),
    }
}

/// Object names as the user listed them (`flag` names where), trimmed: an empty one (as in
/// `--objects ",,,"`) or one that cannot be an API name is refused.
pub fn object_names(listed: &[String], flag: &str) -> anyhow::Result<Vec<String>> {
    listed
        .iter()
        .map(|name| {
            let name = name.trim();
            if name.is_empty() {
                return Err(UserError::new(format!(
                    "{flag} has an empty object name: list API names like Account,Contact"
                ))
                .into());
            }
            if !valid_object_name(name) {
                return Err(UserError::new(format!(
                    "{flag}: {name:?} is not an object API name: use letters, digits and \
                     underscores, starting with a letter (Account, Invoice__c)"
                ))
                .into());
            }
            Ok(name.to_owned())
        })
        .collect()
}

/// The org's own spelling of each of `names` (matched as Salesforce does, whatever the
/// case), after its describe (one counted request). An object the org does not have, or
/// that sfpg cannot mirror, is refused with the closest ones it can.
pub async fn check_objects(
    client: &Client,
    org: &str,
    names: &[String],
) -> anyhow::Result<Vec<String>> {
    let global = client
        .describe_global()
        .await
        .with_context(|| format!("cannot list the objects of org {org}"))?;
    names
        .iter()
        .map(|name| resolve_object(&global, org, name))
        .collect()
}

fn resolve_object(global: &DescribeGlobal, org: &str, name: &str) -> anyhow::Result<String> {
    let found = global
        .sobjects
        .iter()
        .find(|o| o.name.eq_ignore_ascii_case(name));
    let refusal = match found {
        Some(o) if o.queryable && o.replicateable => return Ok(o.name.clone()),
        // A platform event is never queried: it is streamed into its own table.
        Some(o) if is_platform_event(&o.name) && o.createable => return Ok(o.name.clone()),
        Some(o) if !o.queryable => format!(
            "{} cannot be mirrored: org {org} says it is not queryable",
            o.name
        ),
        Some(o) => format!(
            "{} cannot be mirrored: org {org} says it is not replicateable, so its changes \
             and deletes cannot be followed",
            o.name
        ),
        None => {
            let mirrorable = global
                .sobjects
                .iter()
                .filter(|o| o.queryable && o.replicateable)
                .map(|o| o.name.as_str());
            let closest = closest(name, mirrorable);
            format!(
                "{name} is not an object of org {org} (or this user cannot see it); closest: {}",
                if closest.is_empty() {
                    "none".to_owned()
                } else {
                    closest.join(", ")
                }
            )
        }
    };
    Err(UserError::new(refusal).into())
}

/// The [`SUGGESTIONS`] names most like `name`, by edit distance ignoring case; ties in
/// name order.
fn closest<'a>(name: &str, candidates: impl Iterator<Item = &'a str>) -> Vec<&'a str> {
    let wanted = name.to_ascii_lowercase();
    let mut scored: Vec<(f64, &str)> = candidates
        .map(|c| {
            let similarity =
                strsim::normalized_damerau_levenshtein(&wanted, &c.to_ascii_lowercase());
            (similarity, c)
        })
        .collect();
    scored.sort_by(|a, b| b.0.total_cmp(&a.0).then_with(|| a.1.cmp(b.1)));
    scored
        .into_iter()
        .take(SUGGESTIONS)
        .map(|(_, c)| c)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_closest_names_come_first() {
        let names = ["Account", "Contact", "Invoice__c", "Opportunity", "Lead"];
        assert_eq!(closest("Invoce__c", names.into_iter())[0], "Invoice__c");
        assert_eq!(closest("opportunty", names.into_iter())[0], "Opportunity");
        assert_eq!(closest("Contacts", names.into_iter())[0], "Contact");
        assert_eq!(closest("x", names.into_iter()).len(), SUGGESTIONS);
        assert!(closest("x", std::iter::empty()).is_empty());
    }

    #[test]
    fn listed_names_are_trimmed_and_refused_when_empty_or_malformed() {
        let listed = |names: &[&str]| names.iter().map(|n| (*n).to_owned()).collect::<Vec<_>>();
        assert_eq!(
            object_names(&listed(&[" Account", "Invoice__c "]), "--objects").unwrap(),
            ["Account", "Invoice__c"]
        );
        for bad in [
            &["", "", ""][..],
            &["Account", " "],
            &["Lead; DROP TABLE x"],
        ] {
            let error = object_names(&listed(bad), "--objects").unwrap_err();
            assert!(error.is::<UserError>(), "{bad:?}");
            assert!(error.to_string().starts_with("--objects"), "{error}");
        }
    }
}
