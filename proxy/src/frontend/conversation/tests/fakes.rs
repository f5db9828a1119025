//! The two sides the commit protocol drives, scripted: an upstream connection that answers
//! the proxy's own statements as PostgreSQL would for the scripted transaction, and a
//! remote whose org takes, refuses or never answers a push. Both record what was asked of
//! them, in order.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use secrecy::SecretString;
use serde_json::{Value, json};
use sfpg_control::capture::PendingChange;
use tokio::sync::Notify;

use crate::backend::statements::{Attnums, PushContext, Upstream, UpstreamError};
use crate::error::SessionError;
use crate::net::messages::backend::{Fields, ServerError};
use crate::push::bulk::{BulkSent, Fate, Progress};
use crate::push::catalog::{ObjectHandle, OrgHandle, fixtures};
use crate::push::commit::{JournalError, Remote};
use crate::push::journal::{Entry, Outcome, WriteFailure};
use crate::push::plan::{Plan, Planner};
use crate::push::send::{Failure, Sent};
use crate::push::{Created, MirrorWrite, Refusal, ToMirror, WriteBack};

/// An ErrorResponse's fields with SQLSTATE `code`.
pub fn server_error(code: &str, message: &str) -> ServerError {
    ServerError(Fields {
        fields: vec![
            (b'S', "ERROR".into()),
            (b'C', code.into()),
            (b'M', message.into()),
        ],
    })
}

/// The client's upstream connection, answering from a script.
#[derive(Debug)]
pub struct FakeUpstream {
    /// What the proxy ran, in order.
    pub calls: Vec<String>,
    pub capture_installed: bool,
    /// The transaction's id; none: it wrote nothing.
    pub txid: Option<String>,
    /// `sfpg.bulk_writes` as the session holds it.
    pub bulk_writes: Option<String>,
    /// A `WITH HOLD` cursor the transaction declared.
    pub held_cursor: Option<String>,
    /// `sfpg.first_pending_change()`'s answer.
    pub first_pending: Option<String>,
    /// `sfpg.take_pending_changes(ticket)`'s answer, a JSON array.
    pub pending: String,
    /// The answers to successive ROLLBACKs, then success.
    pub rollback_errors: VecDeque<ServerError>,
    pub commit_error: Option<ServerError>,
    pub attnums: HashMap<u32, Attnums>,
    /// How many write-backs the remote has made so far (its [`FakeRemote::produced`]).
    pub produced: Arc<AtomicUsize>,
    /// At each write-back, how many more the remote had made than were written.
    pub ahead: Vec<usize>,
}

impl Default for FakeUpstream {
    fn default() -> Self {
        FakeUpstream {
            calls: Vec::new(),
            capture_installed: true,
            txid: None,
            bulk_writes: None,
            held_cursor: None,
            first_pending: None,
            pending: "[]".into(),
            rollback_errors: VecDeque::new(),
            commit_error: None,
            attnums: HashMap::new(),
            produced: Arc::new(AtomicUsize::new(0)),
            ahead: Vec::new(),
        }
    }
}

impl FakeUpstream {
    /// A transaction that wrote `changes` (captured changes as the trigger records them).
    pub fn wrote(changes: Value) -> Self {
        FakeUpstream {
            txid: Some("745".into()),
            pending: changes.to_string(),
            ..FakeUpstream::default()
        }
    }

    fn call(&mut self, what: impl Into<String>) {
        self.calls.push(what.into());
    }
}

impl Upstream for FakeUpstream {
    async fn capture_installed(&mut self) -> Result<bool, SessionError> {
        self.call("capture_installed");
        Ok(self.capture_installed)
    }

    async fn push_context(&mut self) -> Result<PushContext, UpstreamError> {
        self.call("push_context");
        Ok(PushContext {
            txid: self.txid.clone(),
            bulk_writes: self.bulk_writes.clone(),
            role: "app".into(),
            held_cursor: self.held_cursor.clone(),
        })
    }

    async fn first_pending_change(&mut self) -> Result<Option<String>, UpstreamError> {
        self.call("first_pending_change");
        Ok(self.first_pending.clone())
    }

    /// Every change in one page: the fake's transactions are small.
    async fn take_pending_changes(
        &mut self,
        ticket: &str,
        _rows: u32,
        _after: Option<(u32, i64)>,
    ) -> Result<Option<String>, UpstreamError> {
        self.call(format!("take_pending_changes {ticket}"));
        Ok(Some(std::mem::replace(&mut self.pending, "[]".into())))
    }

    async fn set_constraints_immediate(&mut self) -> Result<(), UpstreamError> {
        self.call("set_constraints_immediate");
        Ok(())
    }

    async fn write_back(
        &mut self,
        ticket: &str,
        write_back: &WriteBack,
    ) -> Result<(), UpstreamError> {
        self.call(format!(
            "write_back {ticket} {}.{} {}",
            write_back.schema, write_back.table, write_back.rows
        ));
        let written = self.ahead.len() + 1;
        let produced = self.produced.load(Ordering::SeqCst);
        self.ahead.push(produced.saturating_sub(written));
        Ok(())
    }

    async fn restore_refused(
        &mut self,
        ticket: &str,
        restore: &WriteBack,
    ) -> Result<(), UpstreamError> {
        self.call(format!(
            "restore_refused {ticket} {}.{} {}",
            restore.schema, restore.table, restore.rows
        ));
        Ok(())
    }

    async fn notice(&mut self, fields: Vec<(u8, String)>) -> Result<(), SessionError> {
        let field = |code: u8| {
            fields
                .iter()
                .find(|(c, _)| *c == code)
                .map(|(_, v)| v.clone())
                .unwrap_or_default()
        };
        self.call(format!("notice {}: {}", field(b'S'), field(b'M')));
        Ok(())
    }

    async fn commit(&mut self) -> Result<(), UpstreamError> {
        self.call("commit");
        match self.commit_error.take() {
            Some(error) => Err(error.into()),
            None => Ok(()),
        }
    }

    async fn rollback(&mut self) -> Result<(), UpstreamError> {
        self.call("rollback");
        match self.rollback_errors.pop_front() {
            Some(error) => Err(error.into()),
            None => Ok(()),
        }
    }

    async fn attnums(&mut self, tables: &[u32]) -> Result<HashMap<u32, Attnums>, SessionError> {
        self.call(format!("attnums {tables:?}"));
        Ok(self.attnums.clone())
    }

    async fn close_statements(&mut self, names: &[Box<[u8]>]) -> Result<(), SessionError> {
        let names: Vec<_> = names.iter().map(|n| String::from_utf8_lossy(n)).collect();
        self.call(format!("close_statements {}", names.join(",")));
        Ok(())
    }
}

/// What the scripted org does with a push.
#[derive(Debug, Clone)]
pub enum Org {
    /// Takes it, creating records with these Ids in plan order.
    Takes(Vec<String>),
    /// Refuses it.
    Refuses(Refusal),
    /// Never answers the request (its wait is what a cancel stops).
    NeverAnswers,
}

/// The control schema and the org, scripted.
#[derive(Debug)]
pub struct FakeRemote {
    org: Arc<OrgHandle>,
    objects: HashMap<(String, String), Arc<ObjectHandle>>,
    pub answer: Org,
    /// Planning never ends (a describe that does not come back).
    pub plan_hangs: bool,
    /// Notified when the push reaches the org, or starts planning if that hangs.
    pub reached: Arc<Notify>,
    /// What was asked, in order.
    pub calls: Mutex<Vec<String>>,
    /// The outcomes journaled, in order.
    pub journaled: Arc<Mutex<Vec<Outcome>>>,
    /// What the read-back finds.
    pub read_back: (Vec<WriteBack>, Vec<Created>),
    /// What a bulk push's jobs do with each record; none: every record is accepted.
    pub bulk_fates: Option<Vec<Fate>>,
    /// How many write-backs the read-back has made so far.
    pub produced: Arc<AtomicUsize>,
}

impl FakeRemote {
    /// An org `acme` mirrored in schema `salesforce`, with `account` (Name and BillingCity).
    pub fn new(answer: Org) -> Self {
        let org = fixtures::acme();
        let column = |column: &str, field: &str, writable: bool| {
            fixtures::text_column(column, field, writable, writable)
        };
        let account = ObjectHandle {
            object: "Account".into(),
            schema: "salesforce".into(),
            table: "account".into(),
            columns: vec![
                column("sfid", "Id", false),
                column("name", "Name", true),
                column("billingcity", "BillingCity", true),
            ],
        };
        FakeRemote {
            org,
            objects: HashMap::from([(
                ("salesforce".to_owned(), "account".to_owned()),
                Arc::new(account),
            )]),
            answer,
            plan_hangs: false,
            reached: Arc::new(Notify::new()),
            calls: Mutex::new(Vec::new()),
            journaled: Arc::new(Mutex::new(Vec::new())),
            read_back: (Vec::new(), Vec::new()),
            bulk_fates: None,
            produced: Arc::new(AtomicUsize::new(0)),
        }
    }

    pub fn calls(&self) -> Vec<String> {
        lock(&self.calls).clone()
    }

    pub fn journaled(&self) -> Vec<Outcome> {
        lock(&self.journaled).clone()
    }

    fn call(&self, what: impl Into<String>) {
        lock(&self.calls).push(what.into());
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Remote for FakeRemote {
    async fn push_ticket(&self, txid: &str) -> Result<SecretString, Refusal> {
        self.call(format!("push_ticket {txid}"));
        Ok(SecretString::from(format!("ticket-{txid}")))
    }

    async fn plan_page(
        &self,
        page: &[PendingChange],
        planner: &mut Planner,
    ) -> Result<(), Refusal> {
        self.call(format!("plan {}", page.len()));
        if self.plan_hangs {
            self.reached.notify_one();
            std::future::pending::<()>().await;
        }
        planner.add(page, &self.org, &self.objects)
    }

    async fn send(&self, plan: &Plan) -> Result<Sent, Failure> {
        self.call(format!("send {}", plan.records.len()));
        self.reached.notify_one();
        match &self.answer {
            Org::Takes(ids) => Ok(Sent {
                created: ids.clone(),
                event_uuids: vec![None; ids.len()],
                response: json!({"compositeResponse": []}),
            }),
            Org::Refuses(refusal) => Err(Failure {
                refusal: refusal.clone(),
                response: json!({"error": "refused"}),
                outcome: Outcome::Refused,
            }),
            Org::NeverAnswers => std::future::pending().await,
        }
    }

    async fn send_bulk<C: std::future::Future<Output = ()> + Send>(
        &self,
        plan: &Plan,
        _entry: Entry,
        _progress: tokio::sync::mpsc::UnboundedSender<Progress>,
        _cancelled: C,
    ) -> Result<BulkSent, Failure> {
        self.call(format!("send_bulk {}", plan.records.len()));
        let fates = match &self.bulk_fates {
            Some(fates) => fates.clone(),
            None => (0..plan.records.len())
                .map(|i| Fate::Accepted {
                    id: format!("001{i:015}"),
                })
                .collect(),
        };
        Ok(BulkSent {
            fates,
            jobs: Vec::new(),
            journal_id: Some(1),
        })
    }

    async fn record_failures(&self, failures: &[WriteFailure]) {
        self.call(format!("record_failures {}", failures.len()));
    }

    async fn journal(&self, entry: &Entry) -> Result<i64, JournalError> {
        let mut journaled = lock(&self.journaled);
        journaled.push(entry.outcome);
        Ok(i64::try_from(journaled.len())?)
    }

    /// The entry's outcome becomes the one rewritten: `journaled` keeps each entry's last.
    async fn rejournal(&self, id: i64, entry: &Entry) -> Result<(), JournalError> {
        let mut journaled = lock(&self.journaled);
        let at = usize::try_from(id - 1)?;
        journaled[at] = entry.outcome;
        Ok(())
    }

    fn repair_soon(&self) {
        self.call("repair_soon");
    }

    async fn read_back(
        &self,
        _plan: &Plan,
        created: &[String],
        _event_uuids: &[Option<String>],
        _bulk_since: Option<chrono::DateTime<chrono::Utc>>,
        mirror: &ToMirror,
    ) -> Vec<Created> {
        self.call(format!("read_back {}", created.join(",")));
        for write_back in &self.read_back.0 {
            self.produced.fetch_add(1, Ordering::SeqCst);
            if mirror
                .send(MirrorWrite::WriteBack(write_back.clone()))
                .await
                .is_err()
            {
                break;
            }
        }
        self.read_back.1.clone()
    }
}
