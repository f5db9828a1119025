//! The end of a bulk push in the commit protocol: the ingest jobs' outcome settled, the
//! refused rows restored and kept, the accepted ones read back.

use std::future::Future;

use super::{How, Remote};
use crate::push::bulk::outcome::{self, Settled};
use crate::push::journal::Entry;
use crate::push::plan::Plan;
use crate::push::taken::RowsBefore;
use crate::push::{MirrorWrite, Pushed, Refusal, refusal};

/// Pushes `plan` through Bulk API ingest jobs: the refused records are restored (from
/// their images `before` the transaction) and kept in `sfpg.write_failures`, the accepted
/// ones read back, and the COMMIT warns of the refused. A push some of whose records may
/// or may not have been saved is refused with 08007, as an atomic push of unknown outcome
/// is, and left to the repair; so is one whose refused rows cannot be put back (their
/// images' spool file failed): the accepted records are then read again by the repair.
pub(super) async fn push_bulk<R: Remote>(
    remote: &R,
    plan: Plan,
    entry: Entry,
    before: &RowsBefore,
    how: How<'_>,
    cancelled: impl Future<Output = ()> + Send,
) -> Result<Option<Pushed>, Refusal> {
    let txid = entry.txid.clone().unwrap_or_default();
    let sent = remote
        .send_bulk(&plan, entry, how.progress, cancelled)
        .await
        .map_err(|failure| failure.refusal)?;
    if sent.uncertain() {
        remote.repair_soon();
        return Err(refusal::unfollowed(sent.journal_id));
    }
    let who = outcome::Pusher {
        role: how.role,
        txid: &txid,
    };
    let since = sent.jobs.iter().map(|job| job.created_date).min();
    let journal_id = sent.journal_id;
    let Settled {
        accepted,
        created,
        restores,
        failures,
        warning,
    } = outcome::settle(plan, sent, before, &who);
    if !failures.is_empty() {
        remote.record_failures(&failures).await;
    }
    drop(failures);
    // The refused rows go back as they were before the transaction. The commit has stopped
    // if the connection takes no more.
    for restore in restores.statements() {
        let restore = match restore {
            Ok(restore) => restore,
            Err(error) => {
                remote.repair_soon();
                return Err(refusal::unrestored(&error, journal_id));
            }
        };
        if how
            .mirror
            .send(MirrorWrite::Restore(restore))
            .await
            .is_err()
        {
            return Ok(None);
        }
    }
    drop(restores);
    let created = match &accepted {
        // Platform events never go through ingest jobs (see `push`): no EventUuids.
        Some(accepted) => {
            remote
                .read_back(accepted, &created, &[], since, &how.mirror)
                .await
        }
        None => Vec::new(),
    };
    Ok(Some(Pushed { created, warning }))
}
