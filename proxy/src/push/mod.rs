//! Pushing a transaction's captured changes to Salesforce before it commits.
//!
//! [`commit`] runs the whole protocol: it takes the changes ([`sfpg_control::capture`]) on
//! the client's connection, has them planned ([`plan`]), sent ([`send`]) and journaled
//! ([`journal`]), then writes back what Salesforce set ([`write_back`]) and commits. The
//! [`Pusher`] is what it reaches beyond the client's connection: the control schema
//! ([`catalog`]) and the orgs. A refusal becomes the PostgreSQL error the client receives
//! ([`refusal`]). On start, [`repair`] resolves pushes whose transaction never committed.

pub mod bulk;
pub mod catalog;
pub mod commit;
pub mod journal;
pub mod plan;
pub mod refusal;
pub mod repair;
pub mod send;
pub mod taken;
pub mod write_back;

use std::collections::HashMap;
use std::sync::Arc;

use secrecy::SecretString;
use sfpg_control::capture::PendingChange;
use tokio_postgres::error::SqlState;

pub use catalog::Catalog;
pub use commit::PushOutcome;
pub use refusal::Refusal;
pub use write_back::{Created, MirrorGone, MirrorWrite, RowsForm, ToMirror, WriteBack};

use self::catalog::{ObjectHandle, OrgHandle};
use self::commit::{JournalError, Remote};
use self::journal::{Entry, Journal};
use self::plan::{Plan, Planner};
use self::send::{Failure, Sent};

/// Where a push can be made to stop, for crash tests. The points exist only in builds
/// with the `failpoints` feature, which the tests enable: a release build has none, so no
/// setting can make its pushes hang.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failpoint {
    /// After Salesforce accepted the push and the journal recorded it, before the mirror
    /// is written and the transaction commits: the session waits there forever, so a test
    /// can kill the process at exactly that point.
    #[cfg(feature = "failpoints")]
    PauseAfterPush,
}

impl std::str::FromStr for Failpoint {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            #[cfg(feature = "failpoints")]
            "pause-after-push" => Ok(Failpoint::PauseAfterPush),
            #[cfg(feature = "failpoints")]
            other => Err(format!(
                "unknown failpoint {other:?} (known: pause-after-push)"
            )),
            #[cfg(not(feature = "failpoints"))]
            other => Err(format!(
                "no failpoint {other:?} in this build: failpoints are compiled in only for tests (feature `failpoints`)"
            )),
        }
    }
}

/// A push Salesforce accepted (what it wrote into the mirror went to its [`ToMirror`] as
/// it went): the Ids of new records; for a bulk push that refused some, the COMMIT's
/// WARNING.
#[derive(Debug, Default)]
pub struct Pushed {
    pub created: Vec<Created>,
    pub warning: Option<Vec<(u8, String)>>,
}

/// Pushes transactions to the orgs of the control schema: the [`Remote`] of every
/// session's commit protocol.
#[derive(Debug)]
pub struct Pusher {
    catalog: Catalog,
    journal: Journal,
    #[cfg_attr(not(feature = "failpoints"), allow(dead_code))]
    failpoint: Option<Failpoint>,
    /// Wakes the repair for a push whose outcome is unknown.
    repair_wanted: tokio::sync::Notify,
    /// How long `sfpg.write_failures` keeps a refusal.
    failures_retention: std::time::Duration,
}

impl Pusher {
    pub fn new(catalog: Catalog, failpoint: Option<Failpoint>) -> Self {
        let journal = Journal::new(catalog.control().clone());
        Pusher {
            catalog,
            journal,
            failpoint,
            repair_wanted: tokio::sync::Notify::new(),
            failures_retention: crate::config::DEFAULT_FAILURES_RETENTION,
        }
    }

    /// Keeps the refusals of bulk pushes for `retention` (`--failures-retention`).
    pub fn keeping_failures_for(mut self, retention: std::time::Duration) -> Self {
        self.failures_retention = retention;
        self
    }

    /// Drops the refusals older than the retention; run with each repair pass.
    pub async fn purge_failures(&self) {
        match self.journal.purge_failures(self.failures_retention).await {
            Ok(0) => {}
            Ok(purged) => tracing::debug!(purged, "old bulk write failures dropped"),
            Err(error) => tracing::warn!(%error, "cannot drop old bulk write failures"),
        }
    }

    pub fn catalog(&self) -> &Catalog {
        &self.catalog
    }

    /// Resolves when a push has left the write journal something to repair at once.
    pub fn repair_wanted(&self) -> &tokio::sync::Notify {
        &self.repair_wanted
    }

    /// The org and objects of the tables `changes` are in: one org per transaction, the
    /// org of the pages planned before (`planned`) when there were any.
    async fn objects(
        &self,
        changes: &[PendingChange],
        planned: Option<&Arc<OrgHandle>>,
    ) -> Result<Option<(Arc<OrgHandle>, Objects)>, Refusal> {
        let mut objects = HashMap::new();
        let mut org = planned.cloned();
        for change in changes {
            let key = (change.schema.clone(), change.table.clone());
            if objects.contains_key(&key) {
                continue;
            }
            let (object_org, object) = self.catalog.object(&change.schema, &change.table).await?;
            match &org {
                None => org = Some(object_org),
                Some(first)
                    if !Arc::ptr_eq(first, &object_org) && first.name != object_org.name =>
                {
                    return Err(Refusal::new(
                        SqlState::FEATURE_NOT_SUPPORTED,
                        format!(
                            "a transaction can write only one Salesforce org; this one writes {} and {}",
                            first.name, object_org.name
                        ),
                    )
                    .hint("Commit the changes to each org in transactions of their own."));
                }
                Some(_) => {}
            }
            objects.insert(key, object);
        }
        Ok(org.map(|org| (org, objects)))
    }
}

/// Mirrored objects by schema and table.
type Objects = HashMap<(String, String), Arc<ObjectHandle>>;

impl Remote for Pusher {
    async fn push_ticket(&self, txid: &str) -> Result<SecretString, Refusal> {
        self.catalog.push_ticket(txid).await
    }

    async fn plan_page(
        &self,
        page: &[PendingChange],
        planner: &mut Planner,
    ) -> Result<(), Refusal> {
        match self.objects(page, planner.org()).await? {
            Some((org, objects)) => planner.add(page, &org, &objects),
            None => Ok(()),
        }
    }

    async fn send(&self, plan: &Plan) -> Result<Sent, Failure> {
        send::send(plan).await
    }

    async fn send_bulk<C: std::future::Future<Output = ()> + Send>(
        &self,
        plan: &Plan,
        entry: Entry,
        progress: tokio::sync::mpsc::UnboundedSender<bulk::Progress>,
        cancelled: C,
    ) -> Result<bulk::BulkSent, Failure> {
        bulk::send::send(plan, &self.journal, entry, progress, cancelled).await
    }

    async fn record_failures(&self, failures: &[journal::WriteFailure]) {
        if let Err(error) = self.journal.record_failures(failures).await {
            tracing::error!(%error, "cannot keep a bulk push's refused records in sfpg.write_failures");
        }
    }

    async fn journal(&self, entry: &Entry) -> Result<i64, JournalError> {
        Ok(self.journal.record(entry).await?)
    }

    async fn rejournal(&self, id: i64, entry: &Entry) -> Result<(), JournalError> {
        Ok(self.journal.update(id, entry).await?)
    }

    fn repair_soon(&self) {
        self.repair_wanted.notify_one();
    }

    async fn read_back(
        &self,
        plan: &Plan,
        created: &[String],
        event_uuids: &[Option<String>],
        bulk_since: Option<chrono::DateTime<chrono::Utc>>,
        mirror: &ToMirror,
    ) -> Vec<Created> {
        #[cfg(feature = "failpoints")]
        if self.failpoint == Some(Failpoint::PauseAfterPush) {
            tracing::warn!("failpoint pause-after-push reached: waiting forever");
            std::future::pending::<()>().await;
        }
        write_back::write_backs(plan, created, event_uuids, bulk_since, mirror).await
    }
}
