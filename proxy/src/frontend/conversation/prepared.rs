//! The client's prepared statements and portals, by name: what each may do, and what the
//! proxy knows of a statement's result columns.
//!
//! Most clients use the unnamed statement and the unnamed portal, replacing them with every
//! Parse and Bind (pgbench `-M extended`, drivers without statement caching). The protocol
//! treats them apart, and so does [`ByName`]: they live in a slot of their own, so the
//! messages of each execution cost no hashing. Named ones are hashed with FxHash, which is
//! fast for short names; a client choosing colliding names slows only its own session.

use std::sync::Arc;

use bytes::Bytes;
use rustc_hash::FxHashMap;

use crate::classify::Classified;

/// A prepared statement.
#[derive(Debug, Clone)]
pub struct Statement {
    pub classified: Arc<Classified>,
    /// Its RowDescription, once a Describe of it has been answered.
    pub description: Option<Bytes>,
}

/// A portal: what its statement may do, and which statement it was bound from (whose
/// description gives the columns of the rows it returns).
#[derive(Debug, Clone)]
pub struct Portal {
    pub classified: Arc<Classified>,
    pub statement: Box<[u8]>,
}

/// Entries by name; the empty name is the unnamed one.
#[derive(Debug)]
pub struct ByName<T> {
    unnamed: Option<T>,
    named: FxHashMap<Box<[u8]>, T>,
}

impl<T> Default for ByName<T> {
    fn default() -> Self {
        ByName {
            unnamed: None,
            named: FxHashMap::default(),
        }
    }
}

impl<T> ByName<T> {
    pub fn get(&self, name: &[u8]) -> Option<&T> {
        if name.is_empty() {
            self.unnamed.as_ref()
        } else {
            self.named.get(name)
        }
    }

    pub fn get_mut(&mut self, name: &[u8]) -> Option<&mut T> {
        if name.is_empty() {
            self.unnamed.as_mut()
        } else {
            self.named.get_mut(name)
        }
    }

    pub fn insert(&mut self, name: &[u8], value: T) {
        if name.is_empty() {
            self.unnamed = Some(value);
        } else if let Some(slot) = self.named.get_mut(name) {
            // A name defined again keeps its key: no allocation.
            *slot = value;
        } else {
            self.named.insert(name.into(), value);
        }
    }

    pub fn remove(&mut self, name: &[u8]) {
        if name.is_empty() {
            self.unnamed = None;
        } else {
            self.named.remove(name);
        }
    }
}

impl ByName<Portal> {
    /// Binds portal `name` to `statement`. Clients bind the same portal (usually the
    /// unnamed one) to the same statement over and over: only a change costs an allocation.
    pub fn bind(&mut self, name: &[u8], statement: &[u8], classified: Arc<Classified>) {
        match self.get_mut(name) {
            Some(portal) => {
                portal.classified = classified;
                if *portal.statement != *statement {
                    portal.statement = statement.into();
                }
            }
            None => self.insert(
                name,
                Portal {
                    classified,
                    statement: statement.into(),
                },
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::classify::{Kind, classify};

    fn kind(portals: &ByName<Portal>, name: &[u8]) -> Option<Kind> {
        portals.get(name).map(|p| p.classified.single_kind())
    }

    #[test]
    fn unnamed_and_named_are_apart() {
        let mut statements = ByName::default();
        let read = Arc::new(classify(b"SELECT 1"));
        let write = Arc::new(classify(b"DELETE FROM t"));
        statements.insert(
            b"",
            Statement {
                classified: Arc::clone(&read),
                description: None,
            },
        );
        statements.insert(
            b"s1",
            Statement {
                classified: Arc::clone(&write),
                description: Some(Bytes::from_static(b"T")),
            },
        );
        assert!(Arc::ptr_eq(&statements.get(b"").unwrap().classified, &read));
        assert!(Arc::ptr_eq(
            &statements.get(b"s1").unwrap().classified,
            &write
        ));
        assert!(statements.get(b"s2").is_none());
        statements.remove(b"");
        assert!(statements.get(b"").is_none());
        assert!(statements.get(b"s1").is_some());
        statements.remove(b"s1");
        assert!(statements.get(b"s1").is_none());
    }

    #[test]
    fn a_portal_bound_again_follows_its_new_statement() {
        let mut portals = ByName::default();
        portals.bind(b"", b"", Arc::new(classify(b"SELECT 1")));
        assert_eq!(kind(&portals, b""), Some(Kind::Read));
        portals.bind(b"", b"s1", Arc::new(classify(b"UPDATE t SET x = 1")));
        assert_eq!(kind(&portals, b""), Some(Kind::MayWrite));
        assert_eq!(&*portals.get(b"").unwrap().statement, b"s1");
        portals.bind(b"p", b"", Arc::new(classify(b"COMMIT")));
        assert_eq!(kind(&portals, b"p"), Some(Kind::Commit));
        assert_eq!(&*portals.get(b"p").unwrap().statement, b"");
    }
}
