//! Pushing a transaction's captured changes to Salesforce before it commits.
//!
//! The session takes the changes ([`sfpg_control::capture`]), and the [`Pusher`] plans
//! them ([`plan`]), sends them ([`send`]), journals the push ([`journal`]) and hands back
//! what to write into the mirror ([`write_back`]). A refusal becomes the PostgreSQL error
//! the client receives ([`refusal`]). On start, [`repair`] resolves pushes whose
//! transaction never committed.

pub mod catalog;
pub mod journal;
pub mod plan;
pub mod refusal;
pub mod repair;
pub mod send;
pub mod write_back;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;
use tokio_postgres::error::SqlState;

use serde_json::Value;
use sfpg_control::capture::PendingChange;

pub use catalog::Catalog;
pub use refusal::Refusal;
pub use write_back::{Created, WriteBack};

use self::journal::{Entry, Journal, JournalRecord, Outcome};
use self::plan::{Operation, Plan};

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

/// A push Salesforce accepted: what to write back, and the Ids of new records.
#[derive(Debug, Default)]
pub struct Pushed {
    pub write_backs: Vec<WriteBack>,
    pub created: Vec<Created>,
}

/// Pushes transactions to the orgs of the control schema.
#[derive(Debug)]
pub struct Pusher {
    catalog: Catalog,
    journal: Journal,
    #[cfg_attr(not(feature = "failpoints"), allow(dead_code))]
    failpoint: Option<Failpoint>,
    /// Wakes the repair for a push whose outcome is unknown.
    repair_wanted: tokio::sync::Notify,
}

impl Pusher {
    pub fn new(catalog: Catalog, failpoint: Option<Failpoint>) -> Self {
        let journal = Journal::new(catalog.control().clone());
        Pusher {
            catalog,
            journal,
            failpoint,
            repair_wanted: tokio::sync::Notify::new(),
        }
    }

    pub fn catalog(&self) -> &Catalog {
        &self.catalog
    }

    /// Pushes `changes`, captured in transaction `txid` of `session`. `Ok(None)`: nothing
    /// needed sending (only local columns changed).
    ///
    /// When `cancelled` resolves first (the session's CancelRequest), the push stops
    /// waiting and is refused with 57014. Once the request may have left, Salesforce may
    /// still carry it out: that is said in the refusal, and the push is journaled as
    /// abandoned with its records.
    pub async fn push(
        &self,
        session: &str,
        txid: Option<String>,
        changes: &[PendingChange],
        cancelled: impl Future<Output = ()>,
    ) -> Result<Option<Pushed>, Refusal> {
        tokio::pin!(cancelled);
        let planned = tokio::select! {
            planned = self.plan(changes) => planned?,
            () = &mut cancelled => return Err(canceled(
                "Nothing was sent to Salesforce; the transaction was rolled back.",
            )),
        };
        let Some(plan) = planned else {
            return Ok(None);
        };
        let started_at = chrono::Utc::now();
        let started = Instant::now();
        let sent = tokio::select! {
            sent = send::send(&plan) => Some(sent),
            () = &mut cancelled => None,
        };
        let mut entry = Entry {
            org: plan.org.name.clone(),
            session: session.to_owned(),
            txid,
            records: Vec::new(),
            response: Value::Null,
            outcome: Outcome::Pushed,
            started_at,
            salesforce_ms: 0,
        };
        let sent = match sent {
            None => {
                entry.records = journal_records(&plan, &[]);
                entry.outcome = Outcome::Abandoned;
                entry.salesforce_ms = millis(started);
                let journal = self.journal_uncertain(&entry).await;
                tracing::warn!(
                    records = plan.records.len(),
                    "a push was cancelled while under way; Salesforce may still carry it out"
                );
                return Err(canceled(&format!(
                    "The transaction was rolled back, but the request to Salesforce was under way: Salesforce may still carry it out. {journal}"
                )));
            }
            Some(Ok(sent)) => sent,
            Some(Err(failure)) => {
                entry.records = journal_records(&plan, &[]);
                entry.response = failure.response;
                entry.outcome = failure.outcome;
                entry.salesforce_ms = millis(started);
                if failure.outcome == Outcome::Unknown {
                    let journal = self.journal_uncertain(&entry).await;
                    tracing::warn!(
                        records = plan.records.len(),
                        refusal = %failure.refusal,
                        "a push's outcome is unknown; Salesforce may have carried it out"
                    );
                    let cause = failure.refusal.detail.clone().unwrap_or_default();
                    return Err(failure.refusal.detail(format!(
                        "{cause} Salesforce may have applied the transaction; the local transaction was rolled back. {journal}"
                    )));
                }
                if let Err(error) = self.journal.record(&entry).await {
                    tracing::warn!(%error, "cannot journal a refused push");
                }
                return Err(failure.refusal);
            }
        };
        entry.records = journal_records(&plan, &sent.created);
        entry.response = sent.response;
        entry.salesforce_ms = millis(started);
        // Journaled as soon as Salesforce has accepted, before anything else that can fail
        // (the read-back, the write-back, the commit): if the commit never happens, the
        // repair finds this entry. A journal that cannot be written must not undo what
        // Salesforce already holds, so the push goes on.
        match self.journal.record(&entry).await {
            Ok(id) => tracing::debug!(journal = id, records = plan.records.len(), "pushed"),
            Err(error) => tracing::error!(%error, "cannot journal a push Salesforce accepted"),
        }
        #[cfg(feature = "failpoints")]
        if self.failpoint == Some(Failpoint::PauseAfterPush) {
            tracing::warn!("failpoint pause-after-push reached: waiting forever");
            std::future::pending::<()>().await;
        }
        let (write_backs, created) = write_back::write_backs(&plan, &sent.created).await;
        Ok(Some(Pushed {
            write_backs,
            created,
        }))
    }

    /// Journals a push that Salesforce may or may not have carried out and wakes the
    /// repair, which reads the records again at once; returns what to tell the client.
    async fn journal_uncertain(&self, entry: &Entry) -> String {
        let said = match self.journal.record(entry).await {
            Ok(id) => format!(
                "The write journal's entry {id} reads the records from Salesforce again at once and until the request can no longer be running; the mirror then shows what Salesforce holds."
            ),
            Err(error) => {
                tracing::error!(%error, "cannot journal a push whose outcome is unknown");
                "The sync brings the mirror in line with what Salesforce holds.".to_owned()
            }
        };
        self.repair_wanted.notify_one();
        said
    }

    /// Resolves when a push has left the write journal something to repair at once.
    pub fn repair_wanted(&self) -> &tokio::sync::Notify {
        &self.repair_wanted
    }

    async fn plan(&self, changes: &[PendingChange]) -> Result<Option<Plan>, Refusal> {
        let mut objects = HashMap::new();
        let mut org = None;
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
        let Some(org) = org else {
            return Ok(None);
        };
        plan::plan(changes, &org, &objects)
    }
}

/// The refusal of a cancelled push, as PostgreSQL words a cancelled statement.
fn canceled(detail: &str) -> Refusal {
    Refusal::new(
        SqlState::QUERY_CANCELED,
        "canceling statement due to user request",
    )
    .detail(detail)
}

fn millis(since: Instant) -> i32 {
    i32::try_from(since.elapsed().as_millis()).unwrap_or(i32::MAX)
}

/// The journal's view of a plan: each record with its Id (a create's from `created`).
fn journal_records(plan: &Plan, created: &[String]) -> Vec<JournalRecord> {
    let mut creates = created.iter();
    plan.records
        .iter()
        .map(|p| JournalRecord {
            operation: p.operation,
            object: p.object.object.clone(),
            schema: p.object.schema.clone(),
            table: p.object.table.clone(),
            row_id: p.row_id,
            sfid: match p.operation {
                Operation::Create => creates.next().cloned(),
                _ => p.sfid.clone(),
            },
            provisional: p.provisional.clone(),
            fields: p.record.clone(),
        })
        .collect()
}
