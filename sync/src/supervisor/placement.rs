//! Which orgs a worker should run: a pure function of the live workers and the enabled orgs'
//! leases, which every worker computes alike, so they agree without talking.
//!
//! Each (org, worker) pair gets a rendezvous weight (a fixed 64-bit hash of both names).
//! Pairs are served heaviest first: an org goes to the heaviest worker that still has room,
//! room being the fair share (the orgs over the workers, rounded up) within the worker's
//! `--max-orgs`; orgs left over (workers with a small `--max-orgs`) then go, heaviest first,
//! to any worker below its `--max-orgs`. A worker joining or leaving moves only the orgs
//! whose heaviest pairs involve it, plus what the shares' rounding shifts.
//!
//! A worker then takes the free orgs placed on it and lets go of the ones placed elsewhere,
//! at most `moves` of each per heartbeat, so that a restart does not stampede; the orgs of a
//! worker that died (leases expired, not handed back) are taken at once, beyond `moves`.

use std::collections::{BTreeSet, HashMap};
use std::time::Duration;

use sfpg_control::leases::{Lease, Worker};

/// What a worker does at a heartbeat.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Moves {
    /// Free orgs (no holder, or an expired lease) placed on this worker.
    pub take: Vec<String>,
    /// Orgs this worker holds that are placed on another live worker, or no longer enabled.
    pub release: Vec<String>,
    /// Orgs placed on this worker that another still holds (it hands them back once it
    /// sees this worker) or that are beyond this heartbeat's moves.
    pub waiting: usize,
    /// How long until the first lease held by another worker expires: this worker looks
    /// again then if that comes before its next heartbeat, so the orgs of a worker that
    /// died move when its leases run out. (A holder that renews keeps its leases at least
    /// a TTL less a heartbeat ahead, which is past the next heartbeat.)
    pub expiring: Option<Duration>,
}

/// The rendezvous weight of `org` on `worker`: FNV-1a over both names (a separator between
/// them), finished with SplitMix64's mixer so that close names spread. Fixed, so workers of
/// different builds agree.
pub fn weight(org: &str, worker: &str) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in org.bytes().chain([0xff]).chain(worker.bytes()) {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
    }
    hash ^= hash >> 30;
    hash = hash.wrapping_mul(0xbf58_476d_1ce4_e5b9);
    hash ^= hash >> 27;
    hash = hash.wrapping_mul(0x94d0_49bb_1331_11eb);
    hash ^ (hash >> 31)
}

/// Where each org goes: org name → worker name. Orgs no worker has room for are left out.
pub fn assign<'a>(orgs: &[&'a str], workers: &'a [Worker]) -> HashMap<&'a str, &'a str> {
    let mut placed: HashMap<&str, &str> = HashMap::new();
    if workers.is_empty() {
        return placed;
    }
    let fair = orgs.len().div_ceil(workers.len());
    let mut pairs: Vec<(u64, &str, usize)> = orgs
        .iter()
        .flat_map(|org| {
            workers
                .iter()
                .enumerate()
                .map(move |(w, worker)| (weight(org, &worker.name), *org, w))
        })
        .collect();
    // Heaviest first; ties (never in practice) by names, so every worker sorts alike.
    pairs.sort_unstable_by(|a, b| {
        b.0.cmp(&a.0)
            .then_with(|| a.1.cmp(b.1))
            .then_with(|| workers[a.2].name.cmp(&workers[b.2].name))
    });
    let mut load = vec![0usize; workers.len()];
    let capacity = |w: usize| usize::try_from(workers[w].max_orgs).unwrap_or(usize::MAX);
    // First every worker up to its fair share, then the rest up to `--max-orgs`.
    for fair_pass in [true, false] {
        for (_, org, w) in &pairs {
            let room = if fair_pass {
                fair.min(capacity(*w))
            } else {
                capacity(*w)
            };
            if !placed.contains_key(org) && load[*w] < room {
                placed.insert(org, &workers[*w].name);
                load[*w] += 1;
            }
        }
    }
    placed
}

/// What worker `me`, holding `holding`, does at this heartbeat: at most `moves` takes and
/// `moves` releases. An org it holds that is no longer enabled is always let go, and an
/// expired lease placed on it is always taken.
pub fn decide(
    me: &str,
    workers: &[Worker],
    leases: &[Lease],
    holding: &BTreeSet<String>,
    moves: usize,
) -> Moves {
    let orgs: Vec<&str> = leases.iter().map(|l| l.org.as_str()).collect();
    let placed = assign(&orgs, workers);
    let mine = |org: &str| placed.get(org).is_some_and(|w| *w == me);
    // Placed here and not held here yet: free ones are taken, the others waited for.
    let due: Vec<&Lease> = leases
        .iter()
        .filter(|l| !holding.contains(&l.org) && mine(&l.org))
        .collect();
    // An org whose holder let its lease expire (killed, cut off) runs nowhere: it is taken
    // at once, however many. The cap paces only the moves a restart or a rebalance makes,
    // orgs handed back or never taken, so those do not stampede.
    let (orphaned, free): (Vec<&&Lease>, Vec<&&Lease>) = due
        .iter()
        .filter(|l| l.owner.is_none())
        .partition(|l| l.expired);
    let take: Vec<String> = orphaned
        .into_iter()
        .map(|l| l.org.clone())
        .chain(free.into_iter().map(|l| l.org.clone()).take(moves))
        .collect();
    let waiting = due.len() - take.len();
    let expiring = leases
        .iter()
        .filter(|l| l.owner.as_deref().is_some_and(|owner| owner != me))
        .filter_map(|l| l.expires_in)
        .min();
    let enabled: BTreeSet<&str> = orgs.iter().copied().collect();
    let (gone, elsewhere): (Vec<&String>, Vec<&String>) = holding
        .iter()
        .filter(|org| !mine(org))
        .partition(|org| !enabled.contains(org.as_str()));
    // An org placed on nobody (no room anywhere) stays where it is.
    let release = gone
        .into_iter()
        .cloned()
        .chain(
            elsewhere
                .into_iter()
                .filter(|org| placed.contains_key(org.as_str()))
                .take(moves)
                .cloned(),
        )
        .collect();
    Moves {
        take,
        release,
        waiting,
        expiring,
    }
}

#[cfg(test)]
mod tests;
