use super::*;

#[test]
fn round_trip_every_kind() {
    let mut w = Writer::default();
    w.u8(7)
        .u32(0xDEAD_BEEF)
        .u64(u64::MAX - 1)
        .i64(-5)
        .bool(true)
        .str("topic-A")
        .bytes(b"")
        .opt_u64(None)
        .opt_u64(Some(9));
    let v = w.into_vec();
    let mut r = Reader::new(&v, "test");
    assert_eq!(r.u8().unwrap(), 7);
    assert_eq!(r.u32().unwrap(), 0xDEAD_BEEF);
    assert_eq!(r.u64().unwrap(), u64::MAX - 1);
    assert_eq!(r.i64().unwrap(), -5);
    assert!(r.bool().unwrap());
    assert_eq!(r.str().unwrap(), "topic-A");
    assert_eq!(r.bytes().unwrap(), b"");
    assert_eq!(r.opt_u64().unwrap(), None);
    assert_eq!(r.opt_u64().unwrap(), Some(9));
    r.finish().unwrap();
}

#[test]
fn fixture_bytes_are_stable() {
    let mut w = Writer::default();
    w.u32(1).str("ab").bool(false);
    assert_eq!(w.into_vec(), vec![0, 0, 0, 1, 0, 0, 0, 2, b'a', b'b', 0]);
}

#[test]
fn truncated_and_bad_input_is_an_error_not_a_panic() {
    let mut r = Reader::new(&[0, 0, 0, 9, 1], "test");
    let err = r.bytes().unwrap_err();
    assert!(err.to_string().contains("truncated"), "{err}");

    let mut r = Reader::new(&[3], "test");
    assert!(r.bool().is_err());

    let mut r = Reader::new(&[0, 0, 0, 1, 0xff], "test");
    assert!(r.str().unwrap_err().to_string().contains("utf-8"));

    let r = Reader::new(&[1, 2], "test");
    assert!(r.finish().is_err());
}
