//! What an org's registration must get right before it is stored or used to log in: its
//! name, batch size, URLs, API version, CA certificate, credentials and object names. Each
//! setting is checked by the code that will use it (the Salesforce client's own parsers), so
//! a registration that passes here cannot fail later for a malformed setting.

use sfpg_salesforce::{ApiVersion, check_ca_certificates_pem, parse_org_url};

use crate::connect;
use crate::error::ControlError;
use crate::orgs::NewOrg;

/// The longest object API name accepted: a 15-character namespace, a 40-character name,
/// their separators and the longest suffix (`__ChangeEvent`) stay below it.
const MAX_OBJECT_NAME: usize = 80;

/// Whether `name` can name an org (it becomes part of a schema name and NOTIFY payloads).
pub fn valid_name(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some('a'..='z'))
        && name.len() <= 63
        && chars.all(|c| matches!(c, 'a'..='z' | '0'..='9' | '_'))
}

/// Whether `name` is written as a Salesforce object API name can be (`Account`,
/// `Invoice__c`, `ns__Thing__e`): ASCII letters, digits and underscores, starting with a
/// letter, not ending with an underscore and with no run of three. Whether the org has
/// such an object is for its describe to say.
pub fn valid_object_name(name: &str) -> bool {
    name.len() <= MAX_OBJECT_NAME
        && name.starts_with(|c: char| c.is_ascii_alphabetic())
        && !name.ends_with('_')
        && !name.contains("___")
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
}

impl NewOrg {
    /// Refuses a registration whose settings cannot work, naming the first bad one. Secrets
    /// never appear in the error, nor a password inside a URL.
    pub fn check(&self) -> Result<(), ControlError> {
        if !valid_name(&self.name) {
            return Err(ControlError::InvalidName(self.name.clone()));
        }
        // PostgreSQL reserves `pg_` schema names; any other name in an org name's spelling
        // needs no quoting in a client's SQL.
        if !valid_name(&self.schema_name) || self.schema_name.starts_with("pg_") {
            return Err(ControlError::InvalidSchemaName(self.schema_name.clone()));
        }
        if !(200..=2000).contains(&self.batch_size) {
            return Err(ControlError::BatchSize(self.batch_size));
        }
        if self
            .bulk_threshold
            .is_some_and(|t| t == 0 || i64::try_from(t).is_err())
        {
            return Err(ControlError::BadBulkThreshold);
        }
        let setting = |which: &'static str| move |source| ControlError::Setting { which, source };
        if let Some(instance_url) = &self.instance_url {
            parse_org_url(instance_url).map_err(setting("instance URL"))?;
        }
        parse_org_url(&self.login_url).map_err(setting("login URL"))?;
        self.api_version
            .parse::<ApiVersion>()
            .map_err(setting("API version"))?;
        if let Some(pem) = &self.ca_cert_pem {
            check_ca_certificates_pem(pem.as_bytes()).map_err(setting("CA certificate"))?;
        }
        connect::credentials(&self.to_org()).map_err(setting("credentials"))?;
        if let Some(bad) = self.objects.iter().find(|o| !valid_object_name(o)) {
            return Err(ControlError::InvalidObjectName(bad.clone()));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use secrecy::SecretString;

    use super::*;

    #[test]
    fn object_names() {
        for good in [
            "Account",
            "Invoice__c",
            "ns__Thing__e",
            "AccountHistory",
            "Invoice__ChangeEvent",
            "Product2",
        ] {
            assert!(valid_object_name(good), "{good}");
        }
        for bad in [
            "",
            " Account",
            "Lead; DROP TABLE x",
            "2Account",
            "_Account",
            "Account_",
            "Acc___ount",
            "Account.Name",
            "Accöunt",
            &"A".repeat(81),
        ] {
            assert!(!valid_object_name(bad), "{bad:?}");
        }
    }

    #[test]
    fn each_bad_setting_is_named_without_secrets() {
        let good = NewOrg::client_credentials(
            "acme",
            "https://acme.my.salesforce.com",
            "id",
            "client-secret-value",
            &["Account"],
        );
        good.check().unwrap();
        let cases: [(NewOrg, &str); 8] = [
            (
                NewOrg {
                    instance_url: Some("ftp://acme.example".to_owned()),
                    ..good.clone()
                },
                "invalid instance URL: \"ftp://acme.example\" is not an http(s) URL",
            ),
            (
                NewOrg {
                    login_url: "https://admin:hunter2@acme.my.salesforce.com".to_owned(),
                    ..good.clone()
                },
                "invalid login URL: \"https://***@acme.my.salesforce.com\" holds a user name or password",
            ),
            (
                NewOrg {
                    api_version: "abc".to_owned(),
                    ..good.clone()
                },
                "invalid API version: \"abc\" is not an API version",
            ),
            (
                NewOrg {
                    ca_cert_pem: Some("not a certificate".to_owned()),
                    ..good.clone()
                },
                "invalid CA certificate: the CA certificate file holds no PEM certificate",
            ),
            (
                NewOrg {
                    auth_flow: crate::AuthFlow::JwtBearer,
                    username: Some("u@acme.example".to_owned()),
                    secrets: crate::OrgSecrets {
                        private_key_pem: Some(SecretString::from("not a key")),
                        ..crate::OrgSecrets::default()
                    },
                    ..good.clone()
                },
                "invalid credentials: the JWT bearer private key is not an RSA private key",
            ),
            (
                NewOrg {
                    objects: vec!["Account".to_owned(), "Lead; DROP TABLE x".to_owned()],
                    ..good.clone()
                },
                "\"Lead; DROP TABLE x\" is not an object API name",
            ),
            (
                NewOrg {
                    name: "Acme".to_owned(),
                    ..good.clone()
                },
                "invalid org name",
            ),
            (
                NewOrg {
                    schema_name: "pg_acme".to_owned(),
                    ..good.clone()
                },
                "invalid schema name \"pg_acme\"",
            ),
        ];
        for (new, expected) in cases {
            let error = new.check().unwrap_err().to_string();
            assert!(error.starts_with(expected), "{error}");
            assert!(!error.contains("hunter2") && !error.contains("client-secret-value"));
        }
    }
}
