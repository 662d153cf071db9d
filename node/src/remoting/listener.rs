//! The Remoting port: accepts TCP connections, reads frames with [`RemotingCodec`], runs each
//! request on its own task (a long-polling pull must not hold up the requests behind it) and
//! writes responses — and the server's own oneway requests, such as NOTIFY_CONSUMER_IDS_CHANGED
//! — through one writer task per connection.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::sync::atomic::Ordering;

use futures::SinkExt;
use futures::StreamExt;
use tokio::net::TcpListener;
use tokio::net::TcpStream;
use tokio::sync::Semaphore;
use tokio::sync::mpsc;
use tokio::sync::watch;
use tokio_util::codec::Framed;

use super::codec::Command;
use super::codec::RemotingCodec;
use super::codes::response as rc;
use super::context::Remoting;

/// Requests one connection may have in progress; beyond, SYSTEM_BUSY.
const IN_PROGRESS_MAX: usize = 4096;
/// Frames waiting to be written on one connection.
const OUTBOX: usize = 4096;

static NEXT_CONN: AtomicU64 = AtomicU64::new(1);

/// One client connection, as handlers and the client registry see it.
#[derive(Debug)]
pub struct Conn {
    /// Unique in this process.
    pub id: u64,
    /// The client's address.
    pub peer: SocketAddr,
    tx: mpsc::Sender<Command>,
}

impl Conn {
    /// Queues `cmd` for writing; false if the connection is gone or its outbox is full.
    pub fn send(&self, cmd: Command) -> bool {
        self.tx.try_send(cmd).is_ok()
    }

    /// Whether the connection is still open.
    pub fn is_open(&self) -> bool {
        !self.tx.is_closed()
    }
}

/// Serves the Remoting port until `shutdown` turns true.
pub async fn serve(listener: TcpListener, rem: Arc<Remoting>, mut shutdown: watch::Receiver<bool>) {
    let for_connections = shutdown.clone();
    let stop = async move {
        let _ = shutdown.wait_for(|s| *s).await;
    };
    tokio::pin!(stop);
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => {
                    let _ = stream.set_nodelay(true);
                    tokio::spawn(connection(stream, peer, rem.clone(), for_connections.clone()));
                }
                Err(e) => {
                    tracing::warn!(error = %e, "remoting accept failed");
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                }
            },
            () = &mut stop => return,
        }
    }
}

async fn connection(
    stream: TcpStream,
    peer: SocketAddr,
    rem: Arc<Remoting>,
    mut shutdown: watch::Receiver<bool>,
) {
    let (mut sink, mut frames) = Framed::new(stream, RemotingCodec).split();
    let (tx, mut rx) = mpsc::channel::<Command>(OUTBOX);
    let conn = Arc::new(Conn { id: NEXT_CONN.fetch_add(1, Ordering::Relaxed), peer, tx });
    let writer = tokio::spawn(async move {
        while let Some(c) = rx.recv().await {
            if let Err(e) = sink.send(c).await {
                tracing::debug!(peer = %peer, error = %e, "remoting write failed");
                break;
            }
        }
    });
    let permits = Arc::new(Semaphore::new(IN_PROGRESS_MAX));
    let stop = async move {
        let _ = shutdown.wait_for(|s| *s).await;
    };
    tokio::pin!(stop);
    loop {
        let next = tokio::select! {
            next = frames.next() => next,
            () = &mut stop => break,
        };
        let cmd = match next {
            Some(Ok(cmd)) => cmd,
            Some(Err(e)) => {
                // A frame that cannot be delimited or parsed: nothing after it can be trusted.
                tracing::info!(peer = %peer, error = %e, "closing remoting connection on a bad frame");
                break;
            }
            None => break,
        };
        if cmd.is_response() {
            // Answers to the server's own requests: every one it sends is oneway.
            continue;
        }
        let Ok(permit) = permits.clone().try_acquire_owned() else {
            if !cmd.is_oneway() {
                conn.send(cmd.response(
                    rc::SYSTEM_BUSY,
                    Some("too many requests in progress on this connection".into()),
                ));
            }
            continue;
        };
        let (rem, conn) = (rem.clone(), conn.clone());
        tokio::spawn(async move {
            let oneway = cmd.is_oneway();
            let resp = rem.handle(&conn, cmd).await;
            if let Some(r) = resp.filter(|_| !oneway) {
                conn.send(r);
            }
            drop(permit);
        });
    }
    rem.clients.disconnected(&rem, conn.id);
    writer.abort();
}
