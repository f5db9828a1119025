//! Placement without PostgreSQL: balance, capacity, stability, and gradual moves.

use std::time::Duration;

use super::*;

fn workers(names: &[&str], max: u32) -> Vec<Worker> {
    names
        .iter()
        .map(|n| Worker {
            name: (*n).to_owned(),
            max_orgs: max,
        })
        .collect()
}

fn orgs(n: usize) -> Vec<String> {
    (0..n).map(|i| format!("org_{i:04}")).collect()
}

fn counts(placed: &HashMap<&str, &str>) -> HashMap<String, usize> {
    let mut counts = HashMap::new();
    for worker in placed.values() {
        *counts.entry((*worker).to_owned()).or_default() += 1;
    }
    counts
}

fn free(orgs: &[String]) -> Vec<Lease> {
    orgs.iter()
        .map(|o| Lease {
            org: o.clone(),
            owner: None,
            epoch: 0,
            expired: false,
            expires_in: None,
        })
        .collect()
}

#[test]
fn every_worker_gets_its_fair_share() {
    for (n, w) in [(3, 3), (7, 3), (1000, 3), (1000, 5), (10, 4)] {
        let orgs = orgs(n);
        let refs: Vec<&str> = orgs.iter().map(String::as_str).collect();
        let names: Vec<String> = (0..w).map(|i| format!("host-{i}:1")).collect();
        let name_refs: Vec<&str> = names.iter().map(String::as_str).collect();
        let workers = workers(&name_refs, 10_000);
        let placed = assign(&refs, &workers);
        assert_eq!(placed.len(), n);
        let fair = n.div_ceil(w);
        for (worker, count) in counts(&placed) {
            assert!(
                count <= fair && count + w > fair,
                "{n} orgs on {w}: {worker} has {count}"
            );
        }
    }
}

#[test]
fn max_orgs_caps_a_worker_and_the_rest_go_elsewhere() {
    let orgs = orgs(10);
    let refs: Vec<&str> = orgs.iter().map(String::as_str).collect();
    let mut workers = workers(&["a:1", "b:1"], 100);
    workers[0].max_orgs = 2;
    let placed = assign(&refs, &workers);
    let counts = counts(&placed);
    assert_eq!((counts["a:1"], counts["b:1"]), (2, 8));
    // Not enough room at all: the orgs left over are placed on nobody.
    workers[1].max_orgs = 3;
    assert_eq!(assign(&refs, &workers).len(), 5);
}

#[test]
fn a_joining_worker_takes_orgs_from_the_others_only() {
    let orgs = orgs(300);
    let refs: Vec<&str> = orgs.iter().map(String::as_str).collect();
    let three = workers(&["a:1", "b:1", "c:1"], 10_000);
    let four = workers(&["a:1", "b:1", "c:1", "d:1"], 10_000);
    let before = assign(&refs, &three);
    let after = assign(&refs, &four);
    let moved = refs.iter().filter(|o| before[*o] != after[*o]).count();
    let to_d = refs.iter().filter(|o| after[*o] == "d:1").count();
    assert_eq!(to_d, 75);
    // Bounded loads move a little more than the minimum (the newcomer's 75).
    assert!(moved < 75 + 30, "{moved} of 300 moved");
}

#[test]
fn every_worker_computes_the_same_placement() {
    let orgs = orgs(50);
    let refs: Vec<&str> = orgs.iter().map(String::as_str).collect();
    let mut shuffled = workers(&["c:1", "a:1", "b:1"], 100);
    let one: HashMap<String, String> = assign(&refs, &shuffled)
        .into_iter()
        .map(|(o, w)| (o.to_owned(), w.to_owned()))
        .collect();
    shuffled.reverse();
    let reversed: Vec<&str> = refs.iter().rev().copied().collect();
    let other: HashMap<String, String> = assign(&reversed, &shuffled)
        .into_iter()
        .map(|(o, w)| (o.to_owned(), w.to_owned()))
        .collect();
    assert_eq!(one, other);
}

#[test]
fn moves_are_gradual_and_free_orgs_only_are_taken() {
    let orgs = orgs(30);
    let workers = workers(&["a:1", "b:1"], 100);
    let leases = free(&orgs);
    let start = decide("a:1", &workers, &leases, &BTreeSet::new(), 4);
    assert_eq!(start.take.len(), 4);
    assert!(start.release.is_empty());
    // Everything held by a: it lets go of b's share, four at a time, and takes nothing.
    let held: BTreeSet<String> = orgs.iter().cloned().collect();
    let leases: Vec<Lease> = orgs
        .iter()
        .map(|o| Lease {
            org: o.clone(),
            owner: Some("a:1".into()),
            epoch: 1,
            expired: false,
            expires_in: Some(Duration::from_secs(30)),
        })
        .collect();
    let handing = decide("a:1", &workers, &leases, &held, 4);
    assert_eq!(handing.release.len(), 4);
    assert!(handing.take.is_empty());
    // b waits for them: held by a live worker, not free.
    assert!(
        decide("b:1", &workers, &leases, &BTreeSet::new(), 4)
            .take
            .is_empty()
    );
}

#[test]
fn the_orgs_of_a_worker_that_died_are_taken_at_once_beyond_the_moves() {
    let orgs = orgs(30);
    // b was killed: its 20 leases expired, and a is the only live worker.
    let workers = workers(&["a:1"], 100);
    let mut leases = free(&orgs);
    for lease in &mut leases[..20] {
        lease.expired = true;
    }
    let moves = decide("a:1", &workers, &leases, &BTreeSet::new(), 4);
    // They run nowhere: all 20 at once, and 4 of those never taken (a cold start's pace).
    assert_eq!(moves.take.len(), 24, "{:?}", moves.take);
    assert!(orgs[..20].iter().all(|o| moves.take.contains(o)));
    assert_eq!(moves.waiting, 6);
}

#[test]
fn a_worker_looks_again_when_a_lease_it_waits_for_runs_out() {
    let orgs = orgs(2);
    let workers = workers(&["a:1"], 100);
    // Held by b, which is gone from the live workers: one renewed, one running down.
    let leases: Vec<Lease> = [30, 3]
        .into_iter()
        .zip(&orgs)
        .map(|(secs, o)| Lease {
            org: o.clone(),
            owner: Some("b:1".into()),
            epoch: 1,
            expired: false,
            expires_in: Some(Duration::from_secs(secs)),
        })
        .collect();
    let moves = decide("a:1", &workers, &leases, &BTreeSet::new(), 4);
    assert!(moves.take.is_empty());
    assert_eq!(moves.expiring, Some(Duration::from_secs(3)));
}

#[test]
fn a_disabled_org_is_let_go_at_once() {
    let orgs = orgs(10);
    let workers = workers(&["a:1"], 100);
    let leases = free(&orgs[..5]);
    let held: BTreeSet<String> = orgs.iter().cloned().collect();
    let moves = decide("a:1", &workers, &leases, &held, 1);
    assert_eq!(moves.release, orgs[5..].to_vec());
}

#[test]
fn weights_are_fixed() {
    // Workers of different builds must agree: the hash is ours, not the standard library's.
    assert_eq!(weight("acme", "host:1"), weight("acme", "host:1"));
    assert_ne!(weight("acme", "host:1"), weight("acme", "host:2"));
    assert_ne!(weight("ab", "c"), weight("a", "bc"));
}
