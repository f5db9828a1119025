//! One topic's reader: owns the subscription (a CometD connect is never cancelled
//! halfway), forwards its items tagged with the topic, and tells the subscription what was
//! applied so that a reconnect resumes after it.

use sfpg_salesforce::streaming::{ReplayId, StreamItem, Subscription};
use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;

/// An item of the topic named `.0`.
pub type TopicItem = (String, sfpg_salesforce::Result<StreamItem>);

/// Forwards `subscription`'s items until it fails, `stop`, or the receiver goes.
pub async fn read(
    topic: String,
    mut subscription: Box<dyn Subscription>,
    items: mpsc::Sender<TopicItem>,
    mut applied: watch::Receiver<Option<i64>>,
    stop: CancellationToken,
) {
    loop {
        if let Some(id) = *applied.borrow_and_update() {
            subscription.resume_after(ReplayId(id));
        }
        let item = tokio::select! {
            () = stop.cancelled() => break,
            item = subscription.next() => item,
        };
        let last = item.is_err();
        if items.send((topic.clone(), item)).await.is_err() || last {
            break;
        }
    }
    subscription.close().await;
}
