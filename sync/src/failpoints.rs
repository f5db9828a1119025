//! Failpoints: hooks that make an org's sync fail for real, so that tests can show what the
//! supervisor does about it (a panic in an org's task above all, which no input provokes).
//! Compiled only with the `failpoints` feature, which only tests enable: a release build
//! has none of this.

use std::collections::HashMap;
use std::sync::{LazyLock, Mutex, PoisonError};

/// Per org, how many of its next turns panic.
static PANICKING_TURNS: LazyLock<Mutex<HashMap<String, u32>>> =
    LazyLock::new(|| Mutex::new(HashMap::new()));

/// Makes the next `turns` turns of `org`'s scheduler panic, in whichever process task
/// runs them.
pub fn panic_in_next_turns(org: &str, turns: u32) {
    PANICKING_TURNS
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .insert(org.to_owned(), turns);
}

/// Called at the start of each of `org`'s turns: panics if a failpoint says so.
pub(crate) fn before_turn(org: &str) {
    let armed = {
        let mut turns = PANICKING_TURNS
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        match turns.get_mut(org) {
            Some(left) if *left > 0 => {
                *left -= 1;
                true
            }
            _ => false,
        }
    };
    // The lock is released first, so the panic poisons nothing.
    if armed {
        panic!("failpoint: a turn of org {org} panics");
    }
}
