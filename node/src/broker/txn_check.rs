//! The transaction check-back loop, one for every front end: on each broker group this node
//! leads, a half message whose transaction is still open after the check interval is shown to a
//! live producer through each front end's [`TxnChecker`] (gRPC: a Telemetry command to a producer
//! of the topic; Remoting: CHECK_TRANSACTION_STATE to a producer of the message's group), and the
//! check is recorded in the group's log; after the last allowed check the transaction is rolled
//! back.

use std::sync::Arc;
use std::time::Duration;

use raftmq_storage::broker::record::RecordView;
use tokio::sync::watch;

use super::location::Location;
use super::service::BrokerService;
use super::txn::PendingHalf;

/// Half messages checked per broker group per round.
const CHECKS_PER_ROUND: usize = 256;

/// Transaction settings (from the `[broker]` config section).
#[derive(Debug, Clone, Copy)]
pub struct TxnOptions {
    /// How long a transaction may stay open before (and between) check-backs.
    pub check_interval: Duration,
    /// Check-backs before an open transaction is rolled back.
    pub checks_max: u32,
}

/// An open transaction to ask a producer about.
pub struct CheckBack<'a> {
    /// Where the half message is.
    pub location: Location,
    /// The half message.
    pub half: &'a PendingHalf,
    /// The half message, parsed.
    pub view: &'a RecordView<'a>,
}

/// How one front end reaches producers.
pub trait TxnChecker: Send + Sync {
    /// Asks one live producer connected through this front end about `check`; whether one was
    /// asked.
    fn ask(&self, check: &CheckBack<'_>) -> bool;
}

/// Runs check-backs until shutdown, asking producers through `checkers` (the first that reaches
/// one).
pub async fn run(
    broker: Arc<BrokerService>,
    checkers: Vec<Arc<dyn TxnChecker>>,
    opts: TxnOptions,
    mut shutdown: watch::Receiver<bool>,
) {
    let tick = (opts.check_interval / 4).clamp(Duration::from_millis(100), Duration::from_secs(1));
    loop {
        tokio::select! {
            () = tokio::time::sleep(tick) => {}
            _ = shutdown.changed() => return,
        }
        round(&broker, &checkers, opts).await;
    }
}

/// One round on the broker groups this node leads.
async fn round(broker: &BrokerService, checkers: &[Arc<dyn TxnChecker>], opts: TxnOptions) {
    let interval_ms = opts.check_interval.as_millis() as i64;
    for b in broker.brokers.all().filter(|b| b.group.is_leader()) {
        let due = match b.halves_due(interval_ms, CHECKS_PER_ROUND).await {
            Ok(d) => d,
            Err(e) => {
                tracing::warn!(group = %b.group.id(), error = %e, "cannot list open transactions");
                continue;
            }
        };
        if due.is_empty() {
            continue;
        }
        for h in &due {
            let Ok(view) = RecordView::parse(&h.message.record) else { continue };
            let id = view.message_id.to_string();
            let step = if h.checks >= opts.checks_max {
                tracing::info!(message_id = %id, checks = h.checks, "transaction still open after its last check; rolling back");
                b.end_transaction(&id, false).await
            } else {
                let check = CheckBack { location: b.location(&h.message), half: h, view: &view };
                if checkers.iter().any(|c| c.ask(&check)) {
                    tracing::debug!(message_id = %id, "asked a producer about an open transaction");
                }
                b.record_check(&id).await
            };
            if let Err(e) = step {
                tracing::warn!(message_id = %id, error = %e, "transaction check failed; next round");
            }
        }
    }
}
