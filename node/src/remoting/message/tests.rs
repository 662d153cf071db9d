use proptest::prelude::*;

use super::*;

#[test]
fn properties_round_trip_and_skip_empty_entries() {
    let s = write_properties([("UNIQ_KEY", "AB"), ("TAGS", "TagA"), ("KEYS", "k1 k2")]);
    assert_eq!(s, "UNIQ_KEY\u{1}AB\u{2}TAGS\u{1}TagA\u{2}KEYS\u{1}k1 k2");
    assert_eq!(
        parse_properties(&s),
        vec![
            ("UNIQ_KEY".into(), "AB".into()),
            ("TAGS".into(), "TagA".into()),
            ("KEYS".into(), "k1 k2".into())
        ]
    );
    assert_eq!(parse_properties("a\u{1}\u{2}\u{1}b\u{2}c\u{1}d\u{2}"), vec![("c".into(), "d".into())]);
    assert_eq!(parse_properties(""), Vec::new());
    assert_eq!(parse_properties("k\u{1}v\u{1}w"), vec![("k".into(), "v\u{1}w".into())]);
}

#[test]
fn batches_round_trip_and_truncations_are_errors() {
    let items = vec![
        BatchItem { flag: 0, body: Bytes::from_static(b"one"), properties: "UNIQ_KEY\u{1}1".into() },
        BatchItem { flag: 7, body: Bytes::from_static(b"two!"), properties: String::new() },
    ];
    let b = encode_batch(&items);
    assert_eq!(decode_batch(b.clone()).unwrap(), items);
    let first = 20 + 3 + 2 + items[0].properties.len();
    for cut in (1..b.len()).filter(|c| *c != first) {
        assert!(decode_batch(b.slice(..cut)).is_err(), "cut at {cut}");
    }
    assert_eq!(
        decode_batch(b.slice(..first)).unwrap(),
        items[..1],
        "a cut between messages is a shorter batch"
    );
    let mut bad = BytesMut::from(&b[..]);
    bad[0] = 0x7f;
    assert!(decode_batch(bad.freeze()).is_err(), "a size that does not match is refused");
}

#[test]
fn offset_message_ids_round_trip() {
    let host = SocketAddrV4::new(Ipv4Addr::new(10, 0, 0, 17), 10911);
    let id = offset_msg_id(host, 0x0123_4567_89AB);
    assert_eq!(id.len(), 32);
    assert_eq!(id, "0A000011 00002A9F 0000012345678 9AB".replace(' ', ""));
    assert_eq!(parse_offset_msg_id(&id), Some((host, 0x0123_4567_89AB)));
    assert_eq!(parse_offset_msg_id("xyz"), None);
    assert_eq!(parse_offset_msg_id(&"Z".repeat(32)), None);
}

/// A stored message as the 4.x client reads it.
#[derive(Debug, PartialEq)]
struct Decoded {
    queue: i32,
    flag: i32,
    queue_offset: i64,
    physical_offset: i64,
    sys_flag: i32,
    born_ms: i64,
    born_host: SocketAddrV4,
    store_ms: i64,
    store_host: SocketAddrV4,
    reconsume_times: i32,
    body: Vec<u8>,
    topic: String,
    properties: String,
}

/// Reads a stored message the way the 4.x client's `MessageDecoder` does.
fn decode_stored(mut b: &[u8]) -> Decoded {
    let total = b.get_i32();
    assert_eq!(total as usize, b.len() + 4);
    assert_eq!(b.get_i32(), MAGIC_V1);
    let _crc = b.get_i32();
    let queue = b.get_i32();
    let flag = b.get_i32();
    let qoff = b.get_i64();
    let phys = b.get_i64();
    let sys = b.get_i32();
    let born = b.get_i64();
    let mut ip = [0u8; 4];
    b.copy_to_slice(&mut ip);
    let born_host = SocketAddrV4::new(ip.into(), b.get_i32() as u16);
    let store = b.get_i64();
    b.copy_to_slice(&mut ip);
    let store_host = SocketAddrV4::new(ip.into(), b.get_i32() as u16);
    let reconsume = b.get_i32();
    let _prepared = b.get_i64();
    let n = b.get_i32() as usize;
    let body = b[..n].to_vec();
    b.advance(n);
    let n = b.get_i8() as usize;
    let topic = String::from_utf8(b[..n].to_vec()).unwrap();
    b.advance(n);
    let n = b.get_i16() as usize;
    let props = String::from_utf8(b[..n].to_vec()).unwrap();
    b.advance(n);
    assert!(b.is_empty());
    Decoded {
        queue,
        flag,
        queue_offset: qoff,
        physical_offset: phys,
        sys_flag: sys,
        born_ms: born,
        born_host,
        store_ms: store,
        store_host,
        reconsume_times: reconsume,
        body,
        topic,
        properties: props,
    }
}

#[test]
fn stored_messages_decode_as_the_4x_client_reads_them() {
    let m = Stored {
        queue_id: 3,
        flag: 9,
        queue_offset: 42,
        physical_offset: 1 << 40,
        sys_flag: 0,
        born_ms: 1_700_000_000_000,
        born_host: socket_v4("192.168.1.2:5555"),
        store_ms: 1_700_000_000_123,
        store_host: socket_v4("127.0.0.1:9876"),
        reconsume_times: 2,
        body: b"hello",
        topic: "orders",
        properties: "UNIQ_KEY\u{1}X",
    };
    let mut out = BytesMut::new();
    m.encode(&mut out);
    m.encode(&mut out);
    let len = i32::from_be_bytes([out[0], out[1], out[2], out[3]]) as usize;
    assert_eq!(out.len(), 2 * len);
    assert_eq!(
        decode_stored(&out[..len]),
        Decoded {
            queue: 3,
            flag: 9,
            queue_offset: 42,
            physical_offset: 1 << 40,
            sys_flag: 0,
            born_ms: 1_700_000_000_000,
            born_host: socket_v4("192.168.1.2:5555"),
            store_ms: 1_700_000_000_123,
            store_host: socket_v4("127.0.0.1:9876"),
            reconsume_times: 2,
            body: b"hello".to_vec(),
            topic: "orders".into(),
            properties: "UNIQ_KEY\u{1}X".into(),
        }
    );
}

#[test]
fn addresses_that_are_not_ipv4_become_zeros() {
    assert_eq!(socket_v4("node1:9876"), SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 9876));
    assert_eq!(socket_v4("10.1.2.3"), SocketAddrV4::new(Ipv4Addr::new(10, 1, 2, 3), 0));
    assert_eq!(socket_v4(""), SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 0));
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1000))]

    /// Any batch body: messages or an error, never a panic.
    #[test]
    fn hostile_batches_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..300)) {
        let _ = decode_batch(Bytes::from(bytes));
    }

    /// Any properties string parses, and what parses writes back to the same entries.
    #[test]
    fn properties_parse_anything(s in "\\PC{0,40}") {
        let p = parse_properties(&s);
        let back = write_properties(p.iter().map(|(k, v)| (k.as_str(), v.as_str())));
        prop_assert_eq!(parse_properties(&back), p);
    }
}
