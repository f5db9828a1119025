//! Events grouped by Salesforce transaction. The events of one transaction share a
//! `transactionKey` and arrive one after the other in replay order; a transaction is
//! complete when an event of another key arrives, or when the stream has nothing more
//! for now. Its events are then put in `sequenceNumber` order, to be applied in one
//! PostgreSQL transaction.

use super::change::Change;

/// One Salesforce transaction's events, in `sequenceNumber` order.
#[derive(Debug, Clone, PartialEq)]
pub struct Transaction {
    pub changes: Vec<Change>,
}

impl Transaction {
    /// The highest replay id among its events: the checkpoint once it is applied.
    pub fn last_replay_id(&self) -> i64 {
        self.changes.iter().map(|c| c.replay_id).max().unwrap_or(0)
    }
}

/// Events of the transaction being received.
#[derive(Debug, Default)]
pub struct TransactionBuffer {
    open: Vec<Change>,
}

impl TransactionBuffer {
    /// Takes `change`; when it starts another transaction, the one it ends is returned.
    pub fn push(&mut self, change: Change) -> Option<Transaction> {
        let ended = match self.open.first() {
            Some(first) if first.transaction_key != change.transaction_key => self.take(),
            _ => None,
        };
        self.open.push(change);
        ended
    }

    /// The transaction being received, as complete: the stream has nothing more for now.
    pub fn take(&mut self) -> Option<Transaction> {
        if self.open.is_empty() {
            return None;
        }
        let mut changes = std::mem::take(&mut self.open);
        // Stable: events with equal sequence numbers keep their replay order.
        changes.sort_by_key(|c| c.sequence_number);
        Some(Transaction { changes })
    }

    /// Whether no event is held.
    pub fn is_empty(&self) -> bool {
        self.open.is_empty()
    }

    /// Drops what is held (a subscription that ended: it will be delivered again).
    pub fn clear(&mut self) {
        self.open.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stream::change::ChangeKind;

    fn change(replay_id: i64, key: &str, sequence_number: i64) -> Change {
        Change {
            replay_id,
            entity: "Account".into(),
            record_ids: vec![format!("001{replay_id:015}")],
            kind: ChangeKind::Update,
            transaction_key: key.into(),
            sequence_number,
            commit_timestamp: 0,
            echo: false,
            fields: Default::default(),
            name_parts_changed: false,
        }
    }

    #[test]
    fn events_are_grouped_by_transaction_key_in_sequence_order() {
        let mut buffer = TransactionBuffer::default();
        assert_eq!(buffer.push(change(10, "a", 2)), None);
        assert_eq!(buffer.push(change(12, "a", 1)), None);
        let first = buffer.push(change(15, "b", 1)).unwrap();
        let order: Vec<i64> = first.changes.iter().map(|c| c.replay_id).collect();
        assert_eq!(order, [12, 10]);
        assert_eq!(first.last_replay_id(), 12);
        let second = buffer.take().unwrap();
        assert_eq!(second.changes.len(), 1);
        assert!(buffer.take().is_none());
        assert!(buffer.is_empty());
    }
}
