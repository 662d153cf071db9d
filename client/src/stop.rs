//! [`Stop`]: a stop signal shared by a consumer's tasks.

use std::sync::Arc;

use tokio::sync::watch;

/// Tells every holder to stop; cheap to clone.
#[derive(Clone)]
pub(crate) struct Stop {
    tx: Arc<watch::Sender<bool>>,
    rx: watch::Receiver<bool>,
}

impl Default for Stop {
    fn default() -> Self {
        let (tx, rx) = watch::channel(false);
        Self { tx: Arc::new(tx), rx }
    }
}

impl Stop {
    /// Signals every holder.
    pub(crate) fn stop(&self) {
        let _ = self.tx.send(true);
    }

    /// Resolves once stopped.
    pub(crate) async fn stopped(&self) {
        let mut rx = self.rx.clone();
        let _ = rx.wait_for(|s| *s).await;
    }
}
