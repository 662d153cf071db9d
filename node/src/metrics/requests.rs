//! Requests served per protocol front end, by request code (Remoting) or method (gRPC): the
//! `raftmq_requests_total` family of `/metrics`.

use std::borrow::Borrow;
use std::collections::BTreeMap;
use std::sync::Mutex;

/// Keys counted at most; later new keys fall into [`OTHER`], so a client inventing codes or
/// paths cannot grow the map without bound.
const KEYS_MAX: usize = 256;

/// The key of requests beyond [`KEYS_MAX`] distinct keys.
pub const OTHER: &str = "other";

/// Requests counted by key.
#[derive(Debug, Default)]
pub struct RequestCounts<K: Ord> {
    counts: Mutex<BTreeMap<K, u64>>,
}

impl<K: Ord + Clone> RequestCounts<K> {
    /// Counts one request of `key`; `overflow` names it when the map is full. The key is only
    /// allocated the first time it is seen.
    pub fn count<Q>(&self, key: &Q, overflow: impl FnOnce() -> K)
    where
        K: Borrow<Q>,
        Q: Ord + ToOwned<Owned = K> + ?Sized,
    {
        let mut counts = self.counts.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(n) = counts.get_mut(key) {
            *n += 1;
            return;
        }
        let key = if counts.len() < KEYS_MAX { key.to_owned() } else { overflow() };
        *counts.entry(key).or_default() += 1;
    }

    /// The counts so far.
    pub fn snapshot(&self) -> BTreeMap<K, u64> {
        self.counts.lock().unwrap_or_else(|e| e.into_inner()).clone()
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
        c.count("SendMessage", || OTHER.to_string());
        c.count("SendMessage", || OTHER.to_string());
        for i in 0..KEYS_MAX + 10 {
            c.count(format!("m{i}").as_str(), || OTHER.to_string());
        }
        let s = c.snapshot();
        assert_eq!(s["SendMessage"], 2);
        assert_eq!(s.len(), KEYS_MAX + 1, "the keys beyond the cap share one");
        assert_eq!(s[OTHER], 11);
    }

    #[test]
    fn a_grpc_method_is_the_last_segment_of_a_two_segment_path() {
        assert_eq!(grpc_method("/apache.rocketmq.v2.MessagingService/SendMessage"), Some("SendMessage"));
        assert_eq!(grpc_method("/metrics"), None);
        assert_eq!(grpc_method("/a/b/c"), None);
        assert_eq!(grpc_method("//x"), None);
    }
}
