//! Query locators: the server-side cursors behind `nextRecordsUrl`. A locator names a
//! query's result; `<locator>-<offset>` names a page of it. Locators expire after a
//! configurable idle time, after which they answer `INVALID_QUERY_LOCATOR`.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::ids::{DEFAULT_POD, Id};

/// The key prefix of query locators (`0r8`), as modern orgs mint them.
const LOCATOR_PREFIX: &str = "0r8";
const BASE62: &[u8; 62] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

/// Open cursors by locator, generic over the cursor so the bookkeeping is testable alone.
#[derive(Debug)]
pub struct Locators<C> {
    lifetime: Duration,
    minted: u64,
    entries: HashMap<String, Entry<C>>,
}

#[derive(Debug)]
struct Entry<C> {
    cursor: Arc<C>,
    last_used: Instant,
}

impl<C> Locators<C> {
    pub fn new(lifetime: Duration) -> Locators<C> {
        Locators {
            lifetime,
            minted: 0,
            entries: HashMap::new(),
        }
    }

    /// Keeps a cursor and returns its new 18-character locator.
    pub fn open(&mut self, cursor: Arc<C>) -> String {
        let now = Instant::now();
        let lifetime = self.lifetime;
        self.entries
            .retain(|_, e| now.duration_since(e.last_used) < lifetime);
        self.minted += 1;
        let locator = mint(self.minted);
        self.entries.insert(
            locator.clone(),
            Entry {
                cursor,
                last_used: now,
            },
        );
        locator
    }

    /// The cursor behind a live locator; using it keeps it alive.
    pub fn get(&mut self, locator: &str) -> Option<Arc<C>> {
        let now = Instant::now();
        let entry = self.entries.get_mut(locator)?;
        if now.duration_since(entry.last_used) >= self.lifetime {
            self.entries.remove(locator);
            return None;
        }
        entry.last_used = now;
        Some(entry.cursor.clone())
    }

    /// Ends every open cursor (admin API), as a server restart or purge would.
    pub fn expire_all(&mut self) -> usize {
        let n = self.entries.len();
        self.entries.clear();
        n
    }

    /// Changes how long idle locators live, for those open already too.
    pub fn set_lifetime(&mut self, lifetime: Duration) {
        self.lifetime = lifetime;
    }
}

/// `0r8` + pod + a 9-character base-62 counter, with the Id checksum suffix.
fn mint(n: u64) -> String {
    let mut counter = [b'0'; 9];
    let mut rest = n;
    for slot in counter.iter_mut().rev() {
        *slot = BASE62[(rest % 62) as usize];
        rest /= 62;
    }
    let id15 = format!(
        "{LOCATOR_PREFIX}{DEFAULT_POD}{}",
        String::from_utf8_lossy(&counter)
    );
    Id::parse(&id15).map_or(id15, |id| id.to_string())
}

/// Splits `<locator>-<offset>` (the last path segment of a `nextRecordsUrl`).
pub fn split_page(segment: &str) -> Option<(&str, usize)> {
    let (locator, offset) = segment.rsplit_once('-')?;
    let offset = offset.parse().ok()?;
    (!locator.is_empty()).then_some((locator, offset))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locators_are_eighteen_character_ids() {
        let mut locators = Locators::new(Duration::from_secs(60));
        let a = locators.open(Arc::new(1));
        let b = locators.open(Arc::new(2));
        assert_eq!(a.len(), 18);
        assert!(a.starts_with("0r8"));
        assert_ne!(a, b);
        assert_eq!(Id::parse(&a).unwrap().to_string(), a);
        assert_eq!(*locators.get(&b).unwrap(), 2);
    }

    #[test]
    fn idle_locators_expire() {
        let mut locators = Locators::new(Duration::from_millis(20));
        let a = locators.open(Arc::new("cursor"));
        assert!(locators.get(&a).is_some());
        std::thread::sleep(Duration::from_millis(30));
        assert!(locators.get(&a).is_none());
        let b = locators.open(Arc::new("cursor"));
        assert_eq!(locators.expire_all(), 1);
        assert!(locators.get(&b).is_none());
    }

    #[test]
    fn splits_page_segments() {
        assert_eq!(
            split_page("0r8xx0000000001AAA-2000"),
            Some(("0r8xx0000000001AAA", 2000))
        );
        assert_eq!(split_page("0r8xx0000000001AAA"), None);
        assert_eq!(split_page("-200"), None);
        assert_eq!(split_page("abc-x"), None);
    }
}
