//! Users. The OAuth users the HTTP layer is configured with exist as `User` records, so
//! `CreatedById`, `OwnerId` and the identity URL name real records.

use serde_json::{Map, Value as Json, json};

use super::input::decode;
use super::save::Journal;
use super::{ApiError, Org};
use crate::ids::Id;
use crate::model::Value;

/// A user to add to the org.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewUser {
    pub username: String,
    pub first_name: Option<String>,
    pub last_name: String,
    pub email: String,
}

impl NewUser {
    /// A user whose names and email derive from the username (`ada@example.com` →
    /// Ada, Example User).
    pub fn from_username(username: &str) -> NewUser {
        let local = username.split('@').next().unwrap_or(username);
        let mut first = local.chars();
        let first_name = first
            .next()
            .map(|c| c.to_uppercase().chain(first).collect::<String>());
        NewUser {
            username: username.to_owned(),
            first_name,
            last_name: "User".to_owned(),
            email: if username.contains('@') {
                username.to_owned()
            } else {
                format!("{username}@example.com")
            },
        }
    }
}

impl Org {
    /// Adds an active user and returns its Id. The first user of an org creates itself;
    /// later ones are created by the first.
    pub fn add_user(&mut self, user: &NewUser) -> Result<Id, ApiError> {
        let store = self.store_index_or_404("User")?;
        let local = user.username.split('@').next().unwrap_or(&user.username);
        let alias: String = local
            .chars()
            .filter(char::is_ascii_alphanumeric)
            .take(8)
            .collect();
        let mut nickname: String = local.chars().take(32).collect();
        let mut n = 1;
        while self.user_by_field("CommunityNickname", &nickname).is_some() {
            n += 1;
            nickname = format!("{}{n}", local.chars().take(30).collect::<String>());
        }
        let mut body = Map::new();
        body.insert("Username".into(), json!(user.username));
        body.insert("FirstName".into(), json!(user.first_name));
        body.insert("LastName".into(), json!(user.last_name));
        body.insert("Email".into(), json!(user.email));
        body.insert(
            "Alias".into(),
            json!(if alias.is_empty() { "user" } else { &alias }),
        );
        body.insert("CommunityNickname".into(), json!(nickname));
        body.insert("TimeZoneSidKey".into(), json!("America/Los_Angeles"));
        body.insert("LocaleSidKey".into(), json!("en_US"));
        body.insert("EmailEncodingKey".into(), json!("UTF-8"));
        body.insert("LanguageLocaleKey".into(), json!("en_US"));
        let input = decode(&self.stores[store].def, &body)?;
        let first = self.stores[store].records.keys().next().copied();
        // Until a first user exists, the new user acts for itself: mint under a stand-in
        // and point the audit fields at the new record afterwards.
        let acting = first.unwrap_or(self.org_id);
        let id = self.create_record(store, &input, acting, &mut Journal::default())?;
        if first.is_none() {
            let s = &mut self.stores[store];
            let system = s.def.system;
            if let Some(mut record) = s.get(&id).cloned() {
                record.values[system.created_by_id] = Value::text(id.as_str());
                record.values[system.last_modified_by_id] = Value::text(id.as_str());
                s.put(id, Some(std::sync::Arc::new(record)));
            }
        }
        Ok(id)
    }

    /// The Id of the user with this username (usernames ignore case).
    pub fn user_id_by_username(&self, username: &str) -> Option<Id> {
        self.user_by_field("Username", username)
    }

    /// Every user's Id, oldest first.
    pub fn user_ids(&self) -> Vec<Id> {
        self.store("User")
            .map(|s| s.records.keys().copied().collect())
            .unwrap_or_default()
    }

    fn user_by_field(&self, field: &str, value: &str) -> Option<Id> {
        let store = self.store("User")?;
        let (index, def) = store.def.field(field)?;
        store
            .find_by_value(index, value, def.case_sensitive)
            .first()
            .copied()
    }

    /// One user's record as JSON (for the identity URL), by Id.
    pub fn user_json(&self, id: &Id, api_version: &str) -> Option<Json> {
        let store = self.store("User")?;
        let record = store.get(id)?;
        Some(self.record_json(&store.def, record, None, api_version))
    }
}
