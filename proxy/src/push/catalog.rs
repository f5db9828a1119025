//! Which org and object a mirrored table belongs to, read from the control schema
//! (`sfpg.orgs`, `sfpg.objects`), with a Salesforce client per org and each object's
//! describe, cached for a while so that a push does not describe what it pushes. Each org's
//! rate limiter comes from a registry the proxy may share with a sync in the same process.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use deadpool_postgres::Pool;
use secrecy::SecretString;
use sfpg_control::mapping::ColumnType;
use sfpg_control::plan::{MirroredField, ObjectPlan};
use sfpg_control::{ControlError, MasterKey, capture, connect, objects, orgs};
use sfpg_salesforce::{Client, FieldType, Priority};
use tokio_postgres::error::SqlState;

use super::Refusal;

#[cfg(test)]
pub(crate) mod fixtures;

/// How long what was read about an object is trusted: a field added to the mirror, or a
/// describe change, is seen within this time.
const FRESH_FOR: Duration = Duration::from_secs(60);

/// An org as the proxy pushes to it.
#[derive(Debug)]
pub struct OrgHandle {
    pub name: String,
    pub schema: String,
    /// Requests go ahead of the sync's background polling in the org's limiter.
    pub client: Client,
}

/// A mirrored column and what Salesforce allows on its field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MirroredColumn {
    pub column: String,
    /// The field's API name.
    pub field: String,
    pub field_type: FieldType,
    pub createable: bool,
    pub updateable: bool,
    /// The column's type, as the mirror was created with it.
    pub column_type: ColumnType,
}

/// A mirrored object: its table and columns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectHandle {
    /// The object's API name (`Account`).
    pub object: String,
    pub schema: String,
    pub table: String,
    /// The mirrored columns, `sfid` (the Id field) first.
    pub columns: Vec<MirroredColumn>,
}

impl ObjectHandle {
    pub fn column(&self, name: &str) -> Option<&MirroredColumn> {
        self.columns.iter().find(|c| c.column == name)
    }

    /// The API names of every mirrored field.
    pub fn fields(&self) -> Vec<&str> {
        self.columns.iter().map(|c| c.field.as_str()).collect()
    }

    /// The object's mirror as the writer takes it: its table and the columns the proxy
    /// knows, `sfid` first.
    pub fn plan(&self) -> ObjectPlan {
        ObjectPlan {
            object: self.object.clone(),
            schema: self.schema.clone(),
            table: self.table.clone(),
            fields: self
                .columns
                .iter()
                .map(|c| MirroredField {
                    field: c.field.clone(),
                    column: c.column.clone(),
                    column_type: c.column_type,
                    calculated: false,
                })
                .collect(),
        }
    }
}

struct Cached<T> {
    value: Arc<T>,
    read_at: Instant,
}

/// The control schema's orgs and objects, as the proxy needs them.
pub struct Catalog {
    control: Pool,
    /// The control database's address, for the refresh-token store of each org's client.
    database: tokio_postgres::Config,
    key: MasterKey,
    /// By schema name.
    orgs: Mutex<HashMap<String, Cached<OrgHandle>>>,
    /// By (schema, table).
    objects: Mutex<HashMap<(String, String), Cached<ObjectHandle>>>,
    /// One per org, kept across reloads so that a reload never resets the org's bucket
    /// (a reload moves it to the org's current rate).
    limiters: connect::Limiters,
}

impl std::fmt::Debug for Catalog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Catalog").finish_non_exhaustive()
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // Every critical section is a lookup or an insert: the map is whole after a panic.
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Catalog {
    /// A catalog reading the control schema through `control` (a pool of connections to
    /// `database`), opening org credentials with `key`, taking each org's rate limiter from
    /// `limiters` (shared with a sync in the same process, if there is one).
    pub fn new(
        control: Pool,
        database: tokio_postgres::Config,
        key: MasterKey,
        limiters: connect::Limiters,
    ) -> Self {
        Catalog {
            control,
            database,
            key,
            orgs: Mutex::new(HashMap::new()),
            objects: Mutex::new(HashMap::new()),
            limiters,
        }
    }

    /// A catalog on the control database at `database`, through a small pool of the
    /// proxy's own connections.
    pub fn connect(
        database: tokio_postgres::Config,
        key: MasterKey,
        limiters: connect::Limiters,
    ) -> Result<Self, deadpool_postgres::BuildError> {
        let manager = deadpool_postgres::Manager::new(database.clone(), tokio_postgres::NoTls);
        let pool = Pool::builder(manager).max_size(4).build()?;
        Ok(Catalog::new(pool, database, key, limiters))
    }

    pub fn control(&self) -> &Pool {
        &self.control
    }

    /// The org and object mirrored in `schema.table`.
    pub async fn object(
        &self,
        schema: &str,
        table: &str,
    ) -> Result<(Arc<OrgHandle>, Arc<ObjectHandle>), Refusal> {
        let org = self.org(schema).await?;
        let key = (schema.to_owned(), table.to_owned());
        if let Some(cached) = lock(&self.objects).get(&key)
            && cached.read_at.elapsed() < FRESH_FOR
        {
            return Ok((org, Arc::clone(&cached.value)));
        }
        let object = Arc::new(self.load_object(&org, schema, table).await?);
        lock(&self.objects).insert(
            key,
            Cached {
                value: Arc::clone(&object),
                read_at: Instant::now(),
            },
        );
        Ok((org, object))
    }

    /// The org whose mirror is `schema`.
    pub async fn org(&self, schema: &str) -> Result<Arc<OrgHandle>, Refusal> {
        if let Some(cached) = lock(&self.orgs).get(schema)
            && cached.read_at.elapsed() < FRESH_FOR
        {
            return Ok(Arc::clone(&cached.value));
        }
        let org = Arc::new(self.load_org(schema).await?);
        lock(&self.orgs).insert(
            schema.to_owned(),
            Cached {
                value: Arc::clone(&org),
                read_at: Instant::now(),
            },
        );
        Ok(org)
    }

    /// The org named `name` (for repairs, which know orgs by name).
    pub async fn org_by_name(&self, name: &str) -> Result<Arc<OrgHandle>, Refusal> {
        let client = self.control_client().await?;
        let schema = orgs::schema_of(&**client, name)
            .await
            .map_err(control_error)?
            .ok_or_else(|| {
                Refusal::new(
                    SqlState::OBJECT_NOT_IN_PREREQUISITE_STATE,
                    format!("sfpg proxy: no org named {name}"),
                )
            })?;
        self.org(&schema).await
    }

    /// The push ticket of client transaction `txid`: what lets the push take that
    /// transaction's captured changes and write back into it (migration V8). It is minted
    /// here, on the proxy's own connection as the control schema's owner; the key it is
    /// made from never goes near a client's connection.
    pub async fn push_ticket(&self, txid: &str) -> Result<SecretString, Refusal> {
        let client = self.control_client().await?;
        capture::push_ticket(&**client, txid)
            .await
            .map_err(control_error)
    }

    async fn control_client(&self) -> Result<deadpool_postgres::Object, Refusal> {
        self.control.get().await.map_err(|e| {
            Refusal::new(
                SqlState::CONNECTION_FAILURE,
                format!("sfpg proxy: cannot reach the control database: {e}"),
            )
        })
    }

    async fn load_org(&self, schema: &str) -> Result<OrgHandle, Refusal> {
        let client = self.control_client().await?;
        let name = orgs::mirroring(&**client, schema)
            .await
            .map_err(control_error)?
            .ok_or_else(|| not_configured(schema))?;
        let org = orgs::load(&**client, &name, &self.key).await.map_err(|e| {
            Refusal::new(
                SqlState::OBJECT_NOT_IN_PREREQUISITE_STATE,
                format!("sfpg proxy: cannot load org {name}: {e}"),
            )
        })?;
        let limiter = self.limiters.for_org(&org).map_err(|e| {
            Refusal::new(
                SqlState::OBJECT_NOT_IN_PREREQUISITE_STATE,
                format!("sfpg proxy: org {name}: {e}"),
            )
        })?;
        let client = connect::stored_client(&org, limiter, &self.database, &self.key)
            .map_err(|e| {
                Refusal::new(
                    SqlState::OBJECT_NOT_IN_PREREQUISITE_STATE,
                    format!("sfpg proxy: cannot set up the Salesforce client of org {name}: {e}"),
                )
            })?
            .with_priority(Priority::Interactive);
        Ok(OrgHandle {
            name: org.name,
            schema: org.schema_name,
            client,
        })
    }

    async fn load_object(
        &self,
        org: &OrgHandle,
        schema: &str,
        table: &str,
    ) -> Result<ObjectHandle, Refusal> {
        let client = self.control_client().await?;
        let (object, mirrored) = objects::mirrored_in(&**client, &org.name, table)
            .await
            .map_err(control_error)?
            .ok_or_else(|| {
                Refusal::new(
                    SqlState::OBJECT_NOT_IN_PREREQUISITE_STATE,
                    format!(
                        "sfpg proxy: table {schema}.{table} is not a mirrored object of org {}",
                        org.name
                    ),
                )
                .table(schema, table)
            })?;
        drop(client);
        let describe = org
            .client
            .sobject(object.clone())
            .describe()
            .await
            .map_err(|e| {
                super::refusal::from_salesforce_error(&e, &format!("describe {object}"))
            })?;
        let columns = mirrored
            .into_iter()
            .filter_map(|f| {
                // A field that left describe keeps its column but is no longer written.
                let described = describe.field(&f.field)?;
                Some(MirroredColumn {
                    column: f.column,
                    field: described.name.clone(),
                    field_type: described.field_type.clone(),
                    createable: described.createable,
                    updateable: described.updateable,
                    column_type: f.column_type,
                })
            })
            .collect();
        Ok(ObjectHandle {
            object: describe.summary.name.clone(),
            schema: schema.to_owned(),
            table: table.to_owned(),
            columns,
        })
    }
}

fn not_configured(schema: &str) -> Refusal {
    Refusal::new(
        SqlState::OBJECT_NOT_IN_PREREQUISITE_STATE,
        format!("sfpg proxy: no Salesforce org is configured for schema \"{schema}\""),
    )
    .hint("Add the org with sfpg org add, or write to a schema that mirrors one.")
}

fn control_error(error: ControlError) -> Refusal {
    Refusal::new(
        SqlState::CONNECTION_FAILURE,
        format!("sfpg proxy: cannot read the control schema: {error}"),
    )
}
