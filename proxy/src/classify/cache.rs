//! Classification is done once per statement text. (Prepared statements and portals keep
//! theirs by name, in the session, so that Bind and Execute cost a lookup.)

use std::collections::HashMap;
use std::sync::Arc;

use super::{Classified, classify, classify_lexically};

/// Beyond this many distinct texts the cache starts over. Applications repeat a small set
/// of statements; what does not repeat (literals inlined in SQL) would only grow it.
const TEXT_CACHE_CAPACITY: usize = 1024;

/// A session's classifications, by statement text.
#[derive(Debug, Default)]
pub struct TextCache {
    by_text: HashMap<Box<[u8]>, Arc<Classified>>,
    /// The text classified last, and its classification: a client that sends the same
    /// unnamed statement with every execution (pgbench `-M extended`, most drivers without
    /// statement caching) gets it back for one comparison, without scanning the text.
    last_text: Vec<u8>,
    last: Option<Arc<Classified>>,
}

impl TextCache {
    pub fn classify(&mut self, sql: &[u8]) -> Arc<Classified> {
        if let Some(last) = &self.last
            && self.last_text == sql
        {
            return Arc::clone(last);
        }
        let classified = self.classify_anew(sql);
        self.last_text.clear();
        self.last_text.extend_from_slice(sql);
        self.last = Some(Arc::clone(&classified));
        classified
    }

    fn classify_anew(&mut self, sql: &[u8]) -> Arc<Classified> {
        if let Some(decided) = classify_lexically(sql) {
            return Arc::new(decided);
        }
        if let Some(hit) = self.by_text.get(sql) {
            return Arc::clone(hit);
        }
        let classified = Arc::new(classify(sql));
        if self.by_text.len() >= TEXT_CACHE_CAPACITY {
            self.by_text.clear();
        }
        self.by_text.insert(sql.into(), Arc::clone(&classified));
        classified
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::classify::Kind;

    #[test]
    fn the_same_text_is_parsed_once() {
        let mut cache = TextCache::default();
        let first = cache.classify(b"WITH d AS (DELETE FROM t RETURNING *) SELECT * FROM d");
        let second = cache.classify(b"WITH d AS (DELETE FROM t RETURNING *) SELECT * FROM d");
        assert!(Arc::ptr_eq(&first, &second));
        assert_eq!(first.single_kind(), Kind::MayWrite);
    }

    #[test]
    fn a_repeated_lexical_text_is_not_scanned_again() {
        let mut cache = TextCache::default();
        let first = cache.classify(b"SELECT 1");
        let again = cache.classify(b"SELECT 1");
        assert!(Arc::ptr_eq(&first, &again));
        let other = cache.classify(b"DELETE FROM t");
        assert_eq!(other.single_kind(), Kind::MayWrite);
        let back = cache.classify(b"SELECT 1");
        assert_eq!(back.single_kind(), Kind::Read);
        // A prefix of the last text is a text of its own.
        assert_eq!(cache.classify(b"DELETE").single_kind(), Kind::MayWrite);
        assert_eq!(
            cache.classify(b"SELECT 1; DELETE FROM t").statements.len(),
            2
        );
    }
}
