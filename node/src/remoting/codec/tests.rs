use proptest::prelude::*;

use super::*;

fn frame(kind: u8, header: &[u8], body: &[u8]) -> BytesMut {
    let mut b = BytesMut::new();
    b.put_u32((4 + header.len() + body.len()) as u32);
    b.put_u32((u32::from(kind) << 24) | header.len() as u32);
    b.put_slice(header);
    b.put_slice(body);
    b
}

fn decode_all(mut buf: BytesMut) -> Result<Vec<Command>, CodecError> {
    let mut out = Vec::new();
    while let Some(c) = RemotingCodec.decode(&mut buf)? {
        out.push(c);
    }
    Ok(out)
}

#[test]
fn a_java_request_decodes() {
    let header = br#"{"code":310,"extFields":{"a":"pg","b":"T","e":"3","k":"false"},"flag":0,"language":"JAVA","opaque":12,"serializeTypeCurrentRPC":"JSON","version":409}"#;
    let got = decode_all(frame(0, header, b"hello")).unwrap();
    assert_eq!(got.len(), 1);
    let c = &got[0];
    assert_eq!((c.code, c.opaque, c.flag, c.version), (310, 12, 0, 409));
    assert_eq!(c.language, "JAVA");
    assert_eq!(c.ext.get("b").map(String::as_str), Some("T"));
    assert_eq!(&c.body[..], b"hello");
    assert!(!c.is_response() && !c.is_oneway());
}

#[test]
fn numbers_and_booleans_in_ext_fields_are_accepted() {
    let header = br#"{"code":"14","extFields":{"queueId":3,"unitMode":false,"x":null,"f":1.5},"flag":2,"language":9,"opaque":7,"remark":null}"#;
    let c = decode_all(frame(0, header, b"")).unwrap().remove(0);
    assert_eq!(c.code, 14);
    assert_eq!(c.language, "GO");
    assert!(c.is_oneway());
    assert_eq!(c.ext.get("queueId").map(String::as_str), Some("3"));
    assert_eq!(c.ext.get("unitMode").map(String::as_str), Some("false"));
    assert!(!c.ext.contains_key("x"));
    assert_eq!(c.remark, None);
}

#[test]
fn responses_round_trip_in_both_serialize_types() {
    for serialize in [SerializeType::Json, SerializeType::RocketMq] {
        let mut req = Command::request(105, 41);
        req.serialize = serialize;
        let resp = req
            .response(17, Some("no route for topic \"x\"".into()))
            .with("offset", 12)
            .with_body(Bytes::from_static(b"{}"));
        let mut buf = BytesMut::new();
        RemotingCodec.encode(resp.clone(), &mut buf).unwrap();
        let back = decode_all(buf).unwrap().remove(0);
        assert_eq!(back, resp);
        assert!(back.is_response());
        assert_eq!(back.opaque, 41);
    }
}

#[test]
fn json_responses_carry_what_strict_clients_require() {
    let mut buf = BytesMut::new();
    RemotingCodec.encode(Command::request(34, 1).response(0, None), &mut buf).unwrap();
    let header_len = (u32::from_be_bytes([buf[4], buf[5], buf[6], buf[7]]) & 0xff_ffff) as usize;
    let v: serde_json::Value = serde_json::from_slice(&buf[8..8 + header_len]).unwrap();
    for field in ["code", "language", "version", "opaque", "flag", "serializeTypeCurrentRPC", "extFields"] {
        assert!(v.get(field).is_some(), "{field} missing from {v}");
    }
    assert_eq!(v["flag"], 1);
    assert_eq!(v["version"], VERSION);
}

#[test]
fn frames_split_anywhere_decode_the_same() {
    let mut whole = BytesMut::new();
    for i in 0..3 {
        RemotingCodec
            .encode(Command::request(34, i).with("k", i).with_body(vec![i as u8; 100]), &mut whole)
            .unwrap();
    }
    let want = decode_all(whole.clone()).unwrap();
    assert_eq!(want.len(), 3);
    for step in [1, 3, 17, 64] {
        let mut buf = BytesMut::new();
        let mut got = Vec::new();
        for chunk in whole.chunks(step) {
            buf.extend_from_slice(chunk);
            while let Some(c) = RemotingCodec.decode(&mut buf).unwrap() {
                got.push(c);
            }
        }
        assert_eq!(got, want, "fed {step} bytes at a time");
    }
}

#[test]
fn hostile_frames_are_errors() {
    // 2 GiB announced: refused before anything is buffered.
    let mut huge = BytesMut::new();
    huge.put_u32(0x8000_0000);
    assert!(decode_all(huge).is_err());
    let mut big = BytesMut::new();
    big.put_u32((FRAME_MAX + 1) as u32);
    assert!(decode_all(big).is_err());
    // A header longer than its frame, an unknown serialize type, a header that is not JSON.
    let mut long = BytesMut::new();
    long.put_u32(8);
    long.put_u32(100);
    long.put_u32(0);
    assert!(decode_all(long).is_err());
    assert!(decode_all(frame(7, b"{}", b"")).is_err());
    assert!(decode_all(frame(0, b"not json", b"")).is_err());
    assert!(decode_all(frame(0, br#"{"code":"x"}"#, b"")).is_err());
    assert!(decode_all(frame(1, &[0; 5], b"")).is_err());
    // A truncated frame waits for the rest.
    let mut part = frame(0, br#"{"code":1}"#, b"body");
    part.truncate(10);
    assert_eq!(decode_all(part).unwrap(), Vec::new());
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    /// Any bytes, fed in any chunks: commands or an error, never a panic.
    #[test]
    fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..512), step in 1usize..64) {
        let mut buf = BytesMut::new();
        for chunk in bytes.chunks(step) {
            buf.extend_from_slice(chunk);
            while let Ok(Some(_)) = RemotingCodec.decode(&mut buf) {}
        }
    }

    /// Well-framed garbage headers of either type: a command or an error, never a panic.
    #[test]
    fn garbage_headers_never_panic(kind in 0u8..3, header in prop::collection::vec(any::<u8>(), 0..200), body in prop::collection::vec(any::<u8>(), 0..50)) {
        let _ = decode_all(frame(kind, &header, &body));
    }

    /// Commands with arbitrary fields survive an encode and decode.
    #[test]
    fn commands_round_trip(code in any::<i16>(), opaque in any::<i32>(), flag in 0i32..4, ext in prop::collection::btree_map("[a-zA-Z]{1,8}", "\\PC{0,16}", 0..6), binary in any::<bool>(), body in prop::collection::vec(any::<u8>(), 0..64)) {
        let c = Command {
            code: i32::from(code),
            language: "JAVA".into(),
            version: VERSION,
            opaque,
            flag,
            remark: None,
            ext,
            serialize: if binary { SerializeType::RocketMq } else { SerializeType::Json },
            body: Bytes::from(body),
        };
        let mut buf = BytesMut::new();
        RemotingCodec.encode(c.clone(), &mut buf).unwrap();
        prop_assert_eq!(decode_all(buf).unwrap(), vec![c]);
    }
}
