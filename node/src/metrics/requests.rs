//! Requests served per protocol front end, by request code (Remoting) or method (gRPC): the
//! `raftmq_requests_total` family of `/metrics`.

use std::borrow::Borrow;
use std::collections::BTreeMap;
use std::sync::Mutex;
use std::sync::atomic::AtomicU64;
use std::sync::atomic::Ordering;

/// Keys counted at most; requests of later new keys are counted together (shown as [`OTHER`]),
/// so a client inventing codes or paths cannot grow the map without bound.
const KEYS_MAX: usize = 256;

/// The label of requests beyond [`KEYS_MAX`] distinct keys.
pub const OTHER: &str = "other";

/// Requests counted by key.
#[derive(Debug, Default)]
pub struct RequestCounts<K: Ord> {
    counts: Mutex<BTreeMap<K, u64>>,
    /// Requests whose key came after the map was full.
    other: AtomicU64,
}

impl<K: Ord + Clone> RequestCounts<K> {
    /// Counts one request of `key`. The key is only allocated the first time it is seen.
    pub fn count<Q>(&self, key: &Q)
    where
        K: Borrow<Q>,
        Q: Ord + ToOwned<Owned = K> + ?Sized,
    {
        let mut counts = self.counts.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(n) = counts.get_mut(key) {
            *n += 1;
            return;
        }
        if counts.len() < KEYS_MAX {
            counts.insert(key.to_owned(), 1);
        } else {
            self.other.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// The counts so far, by key, and the count of requests beyond the cap.
    pub fn snapshot(&self) -> (BTreeMap<K, u64>, u64) {
        let counts = self.counts.lock().unwrap_or_else(|e| e.into_inner()).clone();
        (counts, self.other.load(Ordering::Relaxed))
    }
}

/// The method of a gRPC request path (`/apache.rocketmq.v2.MessagingService/SendMessage` →
/// `SendMessage`); `None` for a path that is not `/<service>/<method>`.
pub fn grpc_method(path: &str) -> Option<&str> {
    let (service, method) = path.strip_prefix('/')?.split_once('/')?;
    (!service.is_empty() && !method.is_empty() && !method.contains('/')).then_some(method)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_by_key_and_caps_the_number_of_keys() {
        let c = RequestCounts::<String>::default();
        c.count("SendMessage");
        c.count("SendMessage");
        for i in 0..KEYS_MAX + 10 {
            c.count(format!("m{i}").as_str());
        }
        let (s, other) = c.snapshot();
        assert_eq!(s["SendMessage"], 2);
        assert_eq!(s.len(), KEYS_MAX, "the keys beyond the cap share one count");
        assert_eq!(other, 11);
    }

    #[test]
    fn a_grpc_method_is_the_last_segment_of_a_two_segment_path() {
        assert_eq!(grpc_method("/apache.rocketmq.v2.MessagingService/SendMessage"), Some("SendMessage"));
        assert_eq!(grpc_method("/metrics"), None);
        assert_eq!(grpc_method("/a/b/c"), None);
        assert_eq!(grpc_method("//x"), None);
    }
}
