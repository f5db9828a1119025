//! The commit protocol, in one place: what the proxy does between a client's transaction
//! and its COMMIT (docs/architecture.md, "The push").
//!
//! 1. On the client's upstream connection: the transaction's id (none: nothing was
//!    captured), its changes taken with the push ticket minted on the proxy's own
//!    connection, then `SET CONSTRAINTS ALL IMMEDIATE`, so that no deferred constraint can
//!    fail after Salesforce has accepted.
//! 2. Beyond it: the plan, one Composite request to the org, the write journal, and the
//!    read-back of what Salesforce set. A CancelRequest stops the wait at once.
//! 3. On the client's connection again: `sfpg.write_back` of what Salesforce set (and a
//!    bulk push's `sfpg.restore_refused`), each statement run as the read-back sends it
//!    ([`ToMirror`]), then COMMIT; a refusal at any step rolls back instead.
//!
//! Both sides are traits, so that the rules can be tested without sockets, PostgreSQL or
//! Salesforce: [`Upstream`] runs the proxy's own statements on the client's connection
//! ([`crate::backend::statements::Statements`] for real), and [`Remote`] reaches the
//! control schema and the org ([`super::Pusher`] for real).
//!
//! Every statement run on the client's connection names only `sfpg` functions and
//! qualified catalog objects, and neither the origin key nor the sync origin ever reaches
//! that connection: the push ticket, good for this transaction only, is minted on the
//! proxy's own connection, and `sfpg.write_back` sets the origin for its own statement only
//! (migration V8; docs/architecture.md, "The trust boundary").

mod bulk;

use std::error::Error;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Instant;

use secrecy::{ExposeSecret, SecretString};
use serde_json::Value;
use sfpg_control::capture::PendingChange;
use tokio_postgres::error::SqlState;

use tokio::sync::mpsc::{self, UnboundedSender};

use super::bulk::{BulkSent, BulkWrites, Progress};
use super::journal::{Entry, JournalRecord, Outcome, WriteFailure};
use super::plan::{Operation, Plan, Planner};
use super::send::{Failure, Sent};
use super::taken::{self, RowsBefore, Taken};
use super::{Created, MirrorWrite, Pushed, Refusal, ToMirror, refusal};
use crate::backend::statements::{Upstream, UpstreamError};
use crate::error::SessionError;
use crate::frontend::cancel::CancelSignal;
use crate::telemetry;

use self::bulk::push_bulk;

/// Why the write journal could not record an entry.
pub type JournalError = Box<dyn Error + Send + Sync>;

/// What a push reaches beyond the client's connection: push tickets and the write journal
/// in the control schema, and the org.
pub trait Remote {
    /// The push ticket of client transaction `txid`, minted on the proxy's own connection.
    fn push_ticket(&self, txid: &str)
    -> impl Future<Output = Result<SecretString, Refusal>> + Send;

    /// Plans `page`, the net changes of a page of rows ([`taken`]), into `planner`: the
    /// mirrored objects of its tables, in the org of the pages before it.
    fn plan_page(
        &self,
        page: &[PendingChange],
        planner: &mut Planner,
    ) -> impl Future<Output = Result<(), Refusal>> + Send;

    /// Sends the plan to its org.
    fn send(&self, plan: &Plan) -> impl Future<Output = Result<Sent, Failure>> + Send;

    /// Sends the plan through Bulk API ingest jobs, journaled in `entry` (each job's id
    /// before its upload), telling `progress` of the running jobs; `cancelled` aborts
    /// the unfinished ones (docs/architecture.md, "Large writes").
    fn send_bulk<C: Future<Output = ()> + Send>(
        &self,
        plan: &Plan,
        entry: Entry,
        progress: UnboundedSender<Progress>,
        cancelled: C,
    ) -> impl Future<Output = Result<BulkSent, Failure>> + Send;

    /// Keeps the records a bulk push's Salesforce refused in `sfpg.write_failures`.
    fn record_failures(&self, failures: &[WriteFailure]) -> impl Future<Output = ()> + Send;

    /// Records a push in the write journal; returns the entry's id.
    fn journal(&self, entry: &Entry) -> impl Future<Output = Result<i64, JournalError>> + Send;

    /// Rewrites journal entry `id` with what `entry` holds now.
    fn rejournal(
        &self,
        id: i64,
        entry: &Entry,
    ) -> impl Future<Output = Result<(), JournalError>> + Send;

    /// Wakes the repair: a push left an entry whose outcome is unknown.
    fn repair_soon(&self);

    /// Reads back what Salesforce set on the records of an accepted push (`created`: the
    /// Id of each create, in plan order; `event_uuids`: the EventUuid of each create that
    /// published a platform event) and sends what to write into the mirror to `mirror`,
    /// one statement at a time as it is read; returns the creates. `bulk_since`: the push
    /// went through ingest jobs, the first created then (many records are read back by a
    /// Bulk query).
    fn read_back(
        &self,
        plan: &Plan,
        created: &[String],
        event_uuids: &[Option<String>],
        bulk_since: Option<chrono::DateTime<chrono::Utc>>,
        mirror: &ToMirror,
    ) -> impl Future<Output = Vec<Created>> + Send;
}

/// What came of a push.
#[derive(Debug)]
pub enum PushOutcome {
    /// Nothing needed pushing, or Salesforce took it all. `created`: the records the push
    /// created, whose Ids go into held `RETURNING sfid` rows.
    Pushed { created: Vec<Created> },
    /// The proxy, the server or Salesforce refused: the client gets this error.
    Refused(Refusal),
}

/// Why a push stopped before its end.
pub(super) enum Stop {
    Refused(Refusal),
    /// The client's connection failed: the session ends.
    Lost(SessionError),
}

impl From<Refusal> for Stop {
    fn from(refusal: Refusal) -> Self {
        Stop::Refused(refusal)
    }
}

impl From<SessionError> for Stop {
    fn from(error: SessionError) -> Self {
        Stop::Lost(error)
    }
}

impl From<UpstreamError> for Stop {
    fn from(error: UpstreamError) -> Self {
        match error {
            // The server's own error goes to the client as it was.
            UpstreamError::Refused(error) => Stop::Refused(Refusal::from_server(&error.0)),
            UpstreamError::Session(error) => Stop::Lost(error),
        }
    }
}

/// One session's pushes: who pushes (for the journal) and how its client cancels one.
#[derive(Debug)]
pub struct Committer {
    /// The client's address, for the journal.
    peer: SocketAddr,
    /// The process id the client was told, for the journal.
    pid: i32,
    /// Raised by the client's CancelRequest.
    signal: Option<Arc<CancelSignal>>,
    /// Whether this database has the capture functions (migration V3); checked until found.
    capture_installed: bool,
    /// Whether the transaction being pushed reached the org (for its outcome's count).
    reached_org: bool,
}

impl Committer {
    pub fn new(peer: SocketAddr) -> Self {
        Committer {
            peer,
            pid: 0,
            signal: None,
            capture_installed: false,
            reached_org: false,
        }
    }

    /// The client's cancel key is known: `pid`, and the signal its CancelRequest raises.
    pub fn cancelled_by(&mut self, pid: i32, signal: Arc<CancelSignal>) {
        self.pid = pid;
        self.signal = Some(signal);
    }

    /// Whether the last push reached Salesforce.
    pub fn reached_org(&self) -> bool {
        self.reached_org
    }

    /// Pushes the transaction's captured changes before the client's COMMIT goes to the
    /// server. With nothing captured there is nothing to do.
    pub async fn push<U: Upstream, R: Remote>(
        &mut self,
        upstream: &mut U,
        remote: Option<&R>,
    ) -> Result<PushOutcome, SessionError> {
        self.reached_org = false;
        match self.take_and_push(upstream, remote).await {
            Ok(created) => {
                if self.reached_org {
                    telemetry::committed();
                }
                Ok(PushOutcome::Pushed { created })
            }
            Err(Stop::Refused(refusal)) => {
                telemetry::refused(&refusal);
                Ok(PushOutcome::Refused(refusal))
            }
            Err(Stop::Lost(error)) => Err(error),
        }
    }

    /// Pushes, then commits a transaction the proxy opened; a refused push rolls back
    /// instead. A COMMIT that fails (a deferred constraint) is refused too.
    pub async fn push_and_commit<U: Upstream, R: Remote>(
        &mut self,
        upstream: &mut U,
        remote: Option<&R>,
    ) -> Result<PushOutcome, SessionError> {
        match self.push(upstream, remote).await? {
            PushOutcome::Refused(refusal) => {
                let refusal = rollback_refused(upstream, refusal).await?;
                Ok(PushOutcome::Refused(refusal))
            }
            PushOutcome::Pushed { created } => match upstream.commit().await {
                Ok(()) => Ok(PushOutcome::Pushed { created }),
                Err(UpstreamError::Refused(error)) if self.reached_org => Ok(PushOutcome::Refused(
                    refusal::commit_failed_after_push(&error.0),
                )),
                Err(UpstreamError::Refused(error)) => {
                    Ok(PushOutcome::Refused(Refusal::from_server(&error.0)))
                }
                Err(UpstreamError::Session(error)) => Err(error),
            },
        }
    }

    /// Takes the captured changes, pushes them and writes back what Salesforce set.
    /// Returns the records the push created.
    async fn take_and_push<U: Upstream, R: Remote>(
        &mut self,
        upstream: &mut U,
        remote: Option<&R>,
    ) -> Result<Vec<Created>, Stop> {
        if !self.capture_installed {
            self.capture_installed = upstream.capture_installed().await?;
        }
        if !self.capture_installed {
            return Ok(Vec::new());
        }
        let Some(remote) = remote else {
            return refuse_unpushable(upstream).await;
        };
        // A transaction without an id wrote nothing, so it captured nothing.
        let context = upstream.push_context().await?;
        let Some(txid) = context.txid else {
            return Ok(Vec::new());
        };
        let mode = BulkWrites::parse(context.bulk_writes.as_deref())?;
        if let Some(cursor) = &context.held_cursor {
            return Err(refusal::held_cursor(cursor).into());
        }
        let ticket = remote.push_ticket(&txid).await?;
        let ticket = ticket.expose_secret();
        // From here until the push is over the server runs only the proxy's statements: a
        // cancel is the proxy's, and stops the push where it still can.
        let working = self.signal.as_ref().map(|signal| signal.proxy_working());
        let cancelled = self.cancelled();
        tokio::pin!(cancelled);
        let taken = taken::take(upstream, ticket, remote, &mut cancelled)
            .await
            .map_err(|stop| server_lost(stop, false))?;
        if !taken.captured {
            return Ok(Vec::new());
        }
        // Constraints deferred to COMMIT are checked now, so that no commit-time failure
        // can come after Salesforce has accepted the changes.
        upstream
            .set_constraints_immediate()
            .await
            .map_err(|error| server_lost(error.into(), false))?;
        let Taken { plan, before, .. } = taken;
        let Some(plan) = plan else {
            return Ok(Vec::new());
        };
        let (progress, mut told) = mpsc::unbounded_channel::<Progress>();
        let (mirror, mut to_write) = ToMirror::channel();
        let how = How {
            mode,
            role: &context.role,
            progress,
            mirror,
        };
        let pushing = self.push_to_org(remote, txid, plan, before, how, cancelled);
        tokio::pin!(pushing);
        // A bulk push's progress reaches the client while its jobs run, and what the push
        // writes into the mirror is written as it comes (the push waits meanwhile).
        // The server connection ending from here on (the push is dropped with it: the
        // journal has what it sent) leaves Salesforce holding what it may hold.
        let pushed = loop {
            tokio::select! {
                pushed = &mut pushing => break pushed?,
                Some(progress) = told.recv() => upstream.notice(progress.notice()).await?,
                Some(write) = to_write.recv() => write_into_mirror(upstream, ticket, write)
                    .await
                    .map_err(|stop| server_lost(stop, true))?,
            }
        };
        drop(working);
        // What the push sent last.
        while let Ok(write) = to_write.try_recv() {
            write_into_mirror(upstream, ticket, write)
                .await
                .map_err(|stop| server_lost(stop, true))?;
        }
        let Some(pushed) = pushed else {
            return Ok(Vec::new());
        };
        if let Some(warning) = pushed.warning {
            upstream.notice(warning).await?;
        }
        Ok(pushed.created)
    }

    /// Resolves at the client's first CancelRequest from now on (one sent before was meant
    /// for the statement the server was running).
    fn cancelled(&self) -> impl Future<Output = ()> + Send + use<> {
        let signal = self.signal.clone();
        let since = signal.as_ref().map(|signal| signal.generation());
        async move {
            match (signal, since) {
                (Some(signal), Some(since)) => signal.cancelled_since(since).await,
                _ => std::future::pending().await,
            }
        }
    }

    /// Pushes `plan` to the org while listening for the client's cancel.
    async fn push_to_org<R: Remote>(
        &mut self,
        remote: &R,
        txid: String,
        plan: Plan,
        before: RowsBefore,
        how: How<'_>,
        cancelled: Pin<&mut (impl Future<Output = ()> + Send)>,
    ) -> Result<Option<Pushed>, Refusal> {
        let session = format!("{} pid {}", self.peer, self.pid);
        let started = Instant::now();
        let pushed = push(remote, &session, txid, plan, before, how, cancelled).await;
        if !matches!(pushed, Ok(None)) {
            self.reached_org = true;
            telemetry::push_took(started.elapsed());
        }
        pushed
    }
}

/// A push stopped because its server connection ended (the session lost, not the client's
/// side) becomes the client's FATAL error saying what became of the transaction: nothing
/// sent, or, once the push may have reached Salesforce (`sent`), an outcome the write
/// journal settles ([`refusal::server_lost`]). Other stops are left as they are.
fn server_lost(stop: Stop, sent: bool) -> Stop {
    match stop {
        Stop::Lost(SessionError::ClientClosed) => stop,
        Stop::Lost(error) => Stop::Lost(SessionError::PushServerLost(refusal::server_lost(
            sent,
            &error.to_string(),
        ))),
        refused @ Stop::Refused(_) => refused,
    }
}

/// Runs one statement of what a push writes into the mirror: a bulk push's refused rows
/// back as they were before the transaction, or what Salesforce set, as the sync would
/// write it; neither is captured again.
async fn write_into_mirror<U: Upstream>(
    upstream: &mut U,
    ticket: &str,
    write: MirrorWrite,
) -> Result<(), Stop> {
    let write_back = match write {
        MirrorWrite::Restore(restore) => {
            upstream.restore_refused(ticket, &restore).await?;
            return Ok(());
        }
        MirrorWrite::WriteBack(write_back) => write_back,
    };
    match upstream.write_back(ticket, &write_back).await {
        // Salesforce holds the change; the journal's repair brings the mirror in line once
        // this transaction is over.
        Err(UpstreamError::Refused(error)) => Err(Refusal::from_server(&error.0)
            .detail(
                "Salesforce accepted the change, but writing it into the mirror failed; the proxy will read it back from Salesforce.",
            )
            .into()),
        written => Ok(written?),
    }
}

/// Without the control database the proxy has no org to push to, and no key to take
/// captured changes with: a transaction that captured any cannot commit, and is refused
/// naming the first table it wrote.
async fn refuse_unpushable<U: Upstream>(upstream: &mut U) -> Result<Vec<Created>, Stop> {
    let Some(first) = upstream.first_pending_change().await? else {
        return Ok(Vec::new());
    };
    let first: Value = serde_json::from_str(&first).unwrap_or_default();
    let name = |key: &str| first[key].as_str().unwrap_or_default().to_owned();
    let (schema, table) = (name("schema"), name("table"));
    Err(Refusal::new(
        SqlState::OBJECT_NOT_IN_PREREQUISITE_STATE,
        format!("sfpg proxy: no Salesforce org is configured for schema \"{schema}\""),
    )
    .table(&schema, &table)
    .hint("Start the proxy with the mirror's control database so it can reach the org.")
    .into())
}

/// Rolls the transaction of a refused push back. Should the server connection have ended
/// meanwhile, the client still hears the refusal, as the FATAL error that ends its
/// session, rather than a closed connection.
pub async fn rollback_refused<U: Upstream>(
    upstream: &mut U,
    refusal: Refusal,
) -> Result<Refusal, SessionError> {
    match rollback(upstream).await {
        Ok(()) => Ok(refusal),
        Err(error) if error.is_disconnect() => Err(SessionError::PushServerLost(refusal)),
        Err(error) => Err(error),
    }
}

/// Ends the transaction on the server. A client's cancel forwarded just before a push (a
/// cancel during one is the proxy's alone) reaches the server milliseconds later and can
/// land on this very ROLLBACK: the server then answers 57014 and leaves the transaction
/// aborted. It acts on a cancel once, so the ROLLBACK is sent again.
pub async fn rollback<U: Upstream>(upstream: &mut U) -> Result<(), SessionError> {
    /// Each cancel the client sent can fail one ROLLBACK.
    const ATTEMPTS: usize = 4;
    let mut attempts = 0;
    loop {
        attempts += 1;
        match upstream.rollback().await {
            Ok(()) => return Ok(()),
            Err(UpstreamError::Refused(error))
                if attempts < ATTEMPTS && error.0.code() == SqlState::QUERY_CANCELED.code() => {}
            Err(UpstreamError::Refused(error)) => return Err(SessionError::Rollback(error)),
            Err(UpstreamError::Session(error)) => return Err(error),
        }
    }
}

/// Sends and journals the push of `plan`, made of the changes captured in transaction
/// `txid` of `session`, then reads back what Salesforce set and sends it to `how.mirror`.
/// `before`: the images a bulk push restores its refused rows to. `Ok(None)`: the client's
/// connection stopped taking what the push writes into the mirror.
///
/// When `cancelled` resolves first (the session's CancelRequest), the push stops waiting
/// and is refused with 57014. Once the request may have left, Salesforce may still carry
/// it out: that is said in the refusal, and the push is journaled as abandoned with its
/// records.
async fn push<R: Remote>(
    remote: &R,
    session: &str,
    txid: String,
    plan: Plan,
    before: RowsBefore,
    how: How<'_>,
    cancelled: impl Future<Output = ()> + Send,
) -> Result<Option<Pushed>, Refusal> {
    tokio::pin!(cancelled);
    let mut entry = Entry {
        org: plan.org.name.clone(),
        session: session.to_owned(),
        txid: Some(txid),
        records: Vec::new(),
        response: Value::Null,
        outcome: Outcome::Pushed,
        started_at: chrono::Utc::now(),
        salesforce_ms: 0,
    };
    // Platform events are published by the atomic request only, where an event is
    // published exactly when the transaction's records are saved.
    let events = plan
        .records
        .iter()
        .any(|p| sfpg_control::events::is_platform_event(&p.object.object));
    if how.mode.uses_bulk(plan.fits_one_request()) && !events {
        return push_bulk(remote, plan, entry, &before, how, cancelled).await;
    }
    drop(before);
    if !plan.fits_one_request() {
        return Err(plan.too_large(events && how.mode.uses_bulk(false)));
    }
    // Journaled before the request leaves, its outcome unknown: a proxy killed while
    // Salesforce carries the request out leaves the repair an entry, which reads the
    // records again once the transaction is over. Without it nothing is sent, as for a
    // bulk push.
    entry.records = journal_records(&plan, &[]);
    entry.outcome = Outcome::Unknown;
    let id = match remote.journal(&entry).await {
        Ok(id) => id,
        Err(error) => {
            tracing::error!(%error, "cannot journal a push before its request; nothing was sent");
            return Err(refusal::unjournaled(&*error, "push"));
        }
    };
    let started = Instant::now();
    let sent = tokio::select! {
        sent = remote.send(&plan) => Some(sent),
        () = &mut cancelled => None,
    };
    entry.salesforce_ms = millis(started);
    telemetry::salesforce_took(started.elapsed());
    let sent = match sent {
        Some(Ok(sent)) => sent,
        Some(Err(failure)) => return Err(failed(remote, &plan, id, entry, failure).await),
        None => return Err(abandoned(remote, &plan, id, entry).await),
    };
    entry.records = journal_records(&plan, &sent.created);
    entry.response = sent.response;
    entry.outcome = Outcome::Pushed;
    // Rewritten with what Salesforce accepted, alongside the read-back and before the
    // commit: if the commit never happens, the repair reads the records by their Ids (a
    // crash before the rewrite leaves the entry unknown, which is read again all the
    // same). Side by side, the rewrite costs a push no round trip of its own. A journal
    // that cannot be written must not undo what Salesforce already holds, so the push
    // goes on.
    let (journaled, created) = tokio::join!(
        remote.rejournal(id, &entry),
        remote.read_back(&plan, &sent.created, &sent.event_uuids, None, &how.mirror),
    );
    match journaled {
        Ok(()) => tracing::debug!(journal = id, records = plan.records.len(), "pushed"),
        Err(error) => {
            tracing::error!(%error, journal = id, "cannot journal a push Salesforce accepted");
        }
    }
    let mirrored = plan
        .records
        .iter()
        .filter(|p| !sfpg_control::events::is_platform_event(&p.object.object))
        .count();
    telemetry::written_back(&plan.org.name, u64::try_from(mirrored).unwrap_or(0));
    Ok(Some(Pushed {
        created,
        warning: None,
    }))
}

/// How a session pushes: its `sfpg.bulk_writes`, its role (whose failures a bulk push
/// keeps), where a bulk push's progress goes, and where what the push writes into the
/// mirror goes.
pub struct How<'a> {
    pub mode: BulkWrites,
    pub role: &'a str,
    pub progress: UnboundedSender<Progress>,
    pub mirror: ToMirror,
}

/// A push the client cancelled while its request was under way: journaled (entry `id`) as
/// abandoned, since Salesforce may still carry it out.
async fn abandoned<R: Remote>(remote: &R, plan: &Plan, id: i64, mut entry: Entry) -> Refusal {
    entry.records = journal_records(plan, &[]);
    entry.outcome = Outcome::Abandoned;
    let journal = journal_uncertain(remote, id, &entry).await;
    tracing::warn!(
        records = plan.records.len(),
        "a push was cancelled while under way; Salesforce may still carry it out"
    );
    canceled(&format!(
        "The transaction was rolled back, but the request to Salesforce was under way: Salesforce may still carry it out. {journal}"
    ))
    .outcome_unknown()
}

/// A push Salesforce refused, that never reached it, or whose outcome is unknown: its
/// entry `id` rewritten with what became of it.
async fn failed<R: Remote>(
    remote: &R,
    plan: &Plan,
    id: i64,
    mut entry: Entry,
    failure: Failure,
) -> Refusal {
    entry.records = journal_records(plan, &[]);
    entry.response = failure.response;
    entry.outcome = failure.outcome;
    if failure.outcome == Outcome::Unknown {
        let journal = journal_uncertain(remote, id, &entry).await;
        tracing::warn!(
            records = plan.records.len(),
            refusal = %failure.refusal,
            "a push's outcome is unknown; Salesforce may have carried it out"
        );
        let cause = failure.refusal.detail.clone().unwrap_or_default();
        return failure
            .refusal
            .detail(format!(
                "{cause} Salesforce may have applied the transaction; the local transaction was rolled back. {journal}"
            ))
            .outcome_unknown();
    }
    // Refused or never sent: the entry is no longer one to repair. Left unknown should it
    // not be rewritten, it is read again harmlessly.
    if let Err(error) = remote.rejournal(id, &entry).await {
        tracing::warn!(%error, journal = id, "cannot journal a refused push");
    }
    failure.refusal
}

/// Rewrites entry `id` of a push that Salesforce may or may not have carried out and
/// wakes the repair, which reads the records again at once; returns what to tell the
/// client. The entry is there whether or not the rewrite succeeds (it was written, as
/// unknown, before the request left).
async fn journal_uncertain<R: Remote>(remote: &R, id: i64, entry: &Entry) -> String {
    if let Err(error) = remote.rejournal(id, entry).await {
        tracing::error!(%error, journal = id, "cannot journal what became of a push whose outcome is unknown");
    }
    remote.repair_soon();
    format!(
        "The write journal's entry {id} reads the records from Salesforce again at once and until the request can no longer be running; the mirror then shows what Salesforce holds."
    )
}

/// The refusal of a cancelled push, as PostgreSQL words a cancelled statement.
pub(super) fn canceled(detail: &str) -> Refusal {
    Refusal::new(
        SqlState::QUERY_CANCELED,
        "canceling statement due to user request",
    )
    .detail(detail)
}

fn millis(since: Instant) -> i32 {
    i32::try_from(since.elapsed().as_millis()).unwrap_or(i32::MAX)
}

/// The journal's view of a plan: each record with its Id (a create's from `created`) and
/// its fields as sent. An atomic plan holds its values in memory; should a spool fail to
/// read, the record is journaled without them (a repair reads records back from
/// Salesforce, never these).
pub(crate) fn journal_records(plan: &Plan, created: &[String]) -> Vec<JournalRecord> {
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
            fields: plan.record(p).unwrap_or_else(|error| {
                tracing::warn!(%error, "a journaled record's fields are left out");
                sfpg_salesforce::Record::new()
            }),
        })
        .collect()
}
