//! Property tests of the request parser and reply encoder against the
//! `redis-protocol` crate: every frame it encodes our parser accepts (split
//! at every byte boundary), every reply we encode it decodes, and garbage
//! never panics the parser.

use bytes::{Bytes, BytesMut};
use proptest::prelude::*;
use redis_protocol::resp2::decode::decode as decode2;
use redis_protocol::resp2::encode::encode as encode2;
use redis_protocol::resp2::types::OwnedFrame as Frame2;
use strata::protocol::{parse_request, ParseOutcome, Reply, ReplyEncoder, RequestLimits, RequestParser};

fn encode_frame(frame: &Frame2) -> Vec<u8> {
    let mut buf = vec![0u8; 1 << 20];
    let len = encode2(&mut buf, frame, false).expect("encode");
    buf.truncate(len);
    buf
}

fn args_strategy() -> impl Strategy<Value = Vec<Vec<u8>>> {
    prop::collection::vec(prop::collection::vec(any::<u8>(), 0..40), 1..8)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    #[test]
    fn parses_what_redis_protocol_encodes_at_every_split(args in args_strategy()) {
        let frame = Frame2::Array(args.iter().cloned().map(Frame2::BulkString).collect());
        let wire = encode_frame(&frame);
        for split in 0..wire.len() {
            let mut buf = BytesMut::from(&wire[..split]);
            let outcome = parse_request(&mut buf, &RequestLimits::default()).unwrap();
            let is_incomplete = matches!(outcome, ParseOutcome::Incomplete { .. });
            prop_assert!(is_incomplete, "split {split}");
            prop_assert_eq!(buf.len(), split, "an incomplete request consumes nothing");
        }
        let mut buf = BytesMut::from(&wire[..]);
        buf.extend_from_slice(b"*1\r\n$4\r\nPING\r\n");
        let expected: Vec<Bytes> = args.iter().map(|a| Bytes::from(a.clone())).collect();
        prop_assert_eq!(parse_request(&mut buf, &RequestLimits::default()).unwrap(), ParseOutcome::Request(expected));
        // The next pipelined request is untouched.
        prop_assert_eq!(&buf[..], b"*1\r\n$4\r\nPING\r\n");
    }

    #[test]
    fn one_parser_fed_in_pieces_reads_what_arrives_whole(
        requests in prop::collection::vec(args_strategy(), 1..6),
        inline_after in 0usize..6,
        pieces in prop::collection::vec(1usize..40, 1..20),
    ) {
        let mut wire = Vec::new();
        let mut expected: Vec<Vec<Bytes>> = Vec::new();
        for (i, args) in requests.iter().enumerate() {
            if i == inline_after {
                wire.extend_from_slice(b"PING 'a b' c\r\n");
                expected.push(vec![Bytes::from_static(b"PING"), Bytes::from_static(b"a b"), Bytes::from_static(b"c")]);
            }
            wire.extend(encode_frame(&Frame2::Array(args.iter().cloned().map(Frame2::BulkString).collect())));
            expected.push(args.iter().map(|a| Bytes::from(a.clone())).collect());
        }
        // The parser keeps its progress between pieces, as between reads.
        let mut parser = RequestParser::default();
        let mut buf = BytesMut::new();
        let mut parsed = Vec::new();
        let mut rest = &wire[..];
        for piece in pieces.iter().cycle() {
            if rest.is_empty() {
                break;
            }
            let (now, later) = rest.split_at((*piece).min(rest.len()));
            buf.extend_from_slice(now);
            rest = later;
            while let ParseOutcome::Request(args) = parser.parse(&mut buf, &RequestLimits::default()).unwrap() {
                parsed.push(args);
            }
        }
        prop_assert_eq!(parsed, expected);
        prop_assert!(buf.is_empty());
    }

    #[test]
    fn garbage_never_panics(data in prop::collection::vec(any::<u8>(), 0..300)) {
        let mut buf = BytesMut::from(&data[..]);
        // Parse until the buffer is exhausted, an error, or incomplete.
        for _ in 0..400 {
            match parse_request(&mut buf, &RequestLimits::default()) {
                Ok(ParseOutcome::Request(_)) if !buf.is_empty() => continue,
                _ => break,
            }
        }
    }

    #[test]
    fn redis_protocol_decodes_our_replies(reply in reply_strategy()) {
        let mut out = BytesMut::new();
        ReplyEncoder { resp3: false }.encode(&reply, &mut out);
        let (frame, used) = decode2(&out).unwrap().expect("a whole frame");
        prop_assert_eq!(used, out.len());
        prop_assert_eq!(frame, expected_frame(&reply));
    }
}

fn reply_strategy() -> impl Strategy<Value = Reply> {
    let leaf = prop_oneof![
        Just(Reply::Status("OK")),
        "[a-zA-Z ]{0,20}".prop_map(|e| Reply::Error(format!("ERR {e}"))),
        any::<i64>().prop_map(Reply::Integer),
        prop::collection::vec(any::<u8>(), 0..50).prop_map(|b| Reply::Bulk(b.into())),
        Just(Reply::Nil),
        any::<bool>().prop_map(Reply::Bool),
        any::<f64>().prop_map(Reply::Double),
    ];
    leaf.prop_recursive(3, 30, 5, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..5).prop_map(Reply::Array),
            prop::collection::vec((inner.clone(), inner), 0..3).prop_map(Reply::Map),
        ]
    })
}

/// What a RESP2 client should see for a reply.
fn expected_frame(reply: &Reply) -> Frame2 {
    match reply {
        Reply::Status(s) => Frame2::SimpleString(s.as_bytes().to_vec()),
        Reply::Error(e) => Frame2::Error(e.clone()),
        Reply::Integer(n) => Frame2::Integer(*n),
        Reply::Bulk(b) => Frame2::BulkString(b.to_vec()),
        Reply::Nil => Frame2::Null,
        Reply::Bool(b) => Frame2::Integer(*b as i64),
        Reply::Double(d) => Frame2::BulkString(strata::protocol::encode_double(*d).into_bytes()),
        Reply::Array(items) => Frame2::Array(items.iter().map(expected_frame).collect()),
        Reply::Map(pairs) => {
            Frame2::Array(pairs.iter().flat_map(|(k, v)| [expected_frame(k), expected_frame(v)]).collect())
        }
        other => panic!("not generated: {other:?}"),
    }
}
