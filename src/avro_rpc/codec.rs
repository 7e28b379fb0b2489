//! The per-event hot path: a hand-written codec of the one fixed schema Flume sends,
//! `record AvroFlumeEvent { map<string> headers; bytes body; }`, alone (`append`) or in an
//! array (`appendBatch`), plus the call and response envelopes around them.
//!
//! Decoding makes no generic Avro value: bodies and header strings are `Bytes` slices of
//! the frame (see `binary::Reader` for the one exception), and the only allocation per
//! batch is the event vector. Encoding writes Avro's canonical form (one block per map or
//! array, then the 0 terminator), which is what Java's encoder and apache-avro produce.

use super::binary::{put_bytes, put_long, DecodeError, Reader};
use crate::event::Event;
use bytes::{BufMut, BytesMut};

/// The two messages of `AvroSourceProtocol`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Message {
    Append,
    AppendBatch,
}

impl Message {
    pub fn name(self) -> &'static str {
        match self {
            Message::Append => "append",
            Message::AppendBatch => "appendBatch",
        }
    }
}

pub fn decode_event(r: &mut Reader) -> Result<Event, DecodeError> {
    let mut event = Event::default();
    decode_event_into(r, &mut event)?;
    Ok(event)
}

/// Decodes into an event already in place.
fn decode_event_into(r: &mut Reader, event: &mut Event) -> Result<(), DecodeError> {
    let mark = r.mark();
    let n = r.read_block_count()?;
    if n != 0 {
        match r.received_headers(mark, n) {
            Some(h) => event.headers = h,
            None => decode_headers(r, n, event)?,
        }
    }
    event.body = r.read_body()?;
    Ok(())
}

/// The header map whose first block count, `n`, has been read.
fn decode_headers(r: &mut Reader, mut n: usize, event: &mut Event) -> Result<(), DecodeError> {
    while n != 0 {
        for _ in 0..n {
            let k = r.read_key()?;
            let v = r.read_string()?;
            event.headers.set(k, v);
        }
        n = r.read_block_count()?;
    }
    Ok(())
}

/// Decodes an `array<AvroFlumeEvent>`.
pub fn decode_batch(r: &mut Reader) -> Result<Vec<Event>, DecodeError> {
    let mut events = Vec::new();
    loop {
        let n = r.read_block_count()?;
        if n == 0 {
            return Ok(events);
        }
        // An event takes at least 2 bytes (empty map, empty body), which bounds the
        // reservation whatever count the peer declared.
        events.reserve(n.min(r.remaining() / 2 + 1));
        let mut left = n;
        loop {
            left -= r.read_events_in_place(left, &mut events);
            if left == 0 {
                break;
            }
            // One event the general way: it straddles two buffers, has headers that cannot
            // stay as received (or are in blocks), or is malformed.
            left -= 1;
            let before = r.remaining();
            let mark = r.mark();
            let headers = r.read_block_count()?;
            if headers == 0 {
                // No headers: the event straddles two buffers (or its body's length is
                // wrong, which `read_body` reports).
                let body = r.read_body()?;
                Event::push_bodied(&mut events, body);
            } else if let Some(h) = r.received_headers(mark, headers) {
                let body = r.read_body()?;
                Event::push_with(&mut events, || h, || body);
            } else {
                Event::push_bodied(&mut events, crate::event::Body::new());
                let e = events.last_mut().expect("just pushed");
                decode_headers(r, headers, e)?;
                e.body = r.read_body()?;
            }
            // A big batch was received into memory the kernel's copy left out of the
            // cache, and each event's first byte is a miss the decode waits for. Events
            // of a batch tend to be alike in size: start loading where the event four
            // ahead probably begins.
            r.prefetch(4 * (before - r.remaining()));
        }
    }
}

/// An `AvroFlumeEvent` (`map<string>` headers, `bytes` body): the record of Flume's RPC
/// and of its Avro container files alike.
pub fn encode_event(out: &mut impl BufMut, e: &Event) {
    if let Some(map) = e.headers.as_avro() {
        // Headers as received: already a checked Avro map, closing 0 included.
        out.put_slice(map);
        put_bytes(out, &e.body);
        return;
    }
    if !e.headers.is_empty() {
        put_long(out, e.headers.len() as i64);
        for (k, v) in e.headers.iter() {
            put_bytes(out, k.as_bytes());
            put_bytes(out, v.as_bytes());
        }
    }
    put_long(out, 0);
    put_bytes(out, &e.body);
}

pub fn encode_batch(out: &mut BytesMut, events: &[Event]) {
    if !events.is_empty() {
        put_long(out, events.len() as i64);
        for e in events {
            encode_event(out, e);
        }
    }
    put_long(out, 0);
}

/// Bytes `encode_event` will write, for sizing the output buffer once per batch.
pub fn encoded_len_hint(e: &Event) -> usize {
    match e.headers.as_avro() {
        Some(map) => e.body.len() + map.len() + 10,
        None => e.body.len() + e.headers.byte_len() + 10 + 10 * e.headers.len() + 2,
    }
}

/// A call: empty request metadata, the message name, then its parameters.
pub fn encode_call(out: &mut BytesMut, message: Message, events: &[Event]) {
    put_long(out, 0);
    put_bytes(out, message.name().as_bytes());
    match message {
        Message::Append => encode_event(out, &events[0]),
        Message::AppendBatch => encode_batch(out, events),
    }
}

/// A response carrying a `Status`: empty metadata, no error, the enum index.
pub fn encode_status_response(out: &mut BytesMut, status: super::protocol::Status) {
    put_long(out, 0);
    out.put_u8(0);
    put_long(out, status.index());
}

/// A response carrying a system error (Avro's `["string"]` error union), as Java's
/// `Responder` sends when a call cannot be served.
pub fn encode_error_response(out: &mut BytesMut, message: &str) {
    put_long(out, 0);
    out.put_u8(1);
    put_long(out, 0);
    put_bytes(out, message.as_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::Headers;
    use apache_avro::types::Value;
    use apache_avro::Schema;
    use bytes::Bytes;
    use proptest::prelude::*;
    use std::collections::HashMap;

    const EVENT_SCHEMA: &str = r#"{"type":"record","name":"AvroFlumeEvent","namespace":"org.apache.flume.source.avro","fields":[{"name":"headers","type":{"type":"map","values":"string"}},{"name":"body","type":"bytes"}]}"#;

    fn avro_value(e: &(Vec<(String, String)>, Vec<u8>)) -> Value {
        Value::Record(vec![
            (
                "headers".into(),
                Value::Map(
                    e.0.iter()
                        .map(|(k, v)| (k.clone(), Value::String(v.clone())))
                        .collect::<HashMap<_, _>>(),
                ),
            ),
            ("body".into(), Value::Bytes(e.1.clone())),
        ])
    }

    /// Events with distinct header keys (a map has no duplicates); header order follows
    /// apache-avro's HashMap iteration so the bytes can be compared.
    fn event_strategy() -> impl Strategy<Value = (Vec<(String, String)>, Vec<u8>)> {
        (
            proptest::collection::hash_map(".{0,12}", ".{0,20}", 0..6),
            proptest::collection::vec(any::<u8>(), 0..300),
        )
            .prop_map(|(h, b)| (h.into_iter().collect(), b))
    }

    fn ours(e: &(Vec<(String, String)>, Vec<u8>), order: &[String]) -> Event {
        let mut headers = Headers::new();
        for k in order {
            let v = &e.0.iter().find(|(kk, _)| kk == k).unwrap().1;
            headers.set(k.as_str(), v.as_str());
        }
        Event::with_headers(headers, Bytes::from(e.1.clone()))
    }

    /// The key order apache-avro wrote, read back from its own encoding.
    fn key_order(encoded: &[u8]) -> Vec<String> {
        let segs = [Bytes::copy_from_slice(encoded)];
        let mut r = Reader::new(&segs);
        let mut keys = Vec::new();
        loop {
            let n = r.read_block_count().unwrap();
            if n == 0 {
                return keys;
            }
            for _ in 0..n {
                keys.push(r.read_string().unwrap().to_string());
                r.read_string().unwrap();
            }
        }
    }

    proptest! {
        #[test]
        fn event_bytes_match_apache_avro(e in event_strategy()) {
            let schema = Schema::parse_str(EVENT_SCHEMA).unwrap();
            let theirs = apache_avro::to_avro_datum(&schema, avro_value(&e)).unwrap();
            let ev = ours(&e, &key_order(&theirs));
            let mut mine = BytesMut::new();
            encode_event(&mut mine, &ev);
            prop_assert_eq!(&mine[..], &theirs[..]);
            let segs = [Bytes::from(theirs)];
            let mut r = Reader::new(&segs);
            let back = decode_event(&mut r).unwrap();
            r.expect_end().unwrap();
            prop_assert_eq!(back, ev);
        }

        #[test]
        fn batch_bytes_match_apache_avro_and_decode_from_any_split(
            batch in proptest::collection::vec(event_strategy(), 0..20),
            cuts in proptest::collection::vec(any::<prop::sample::Index>(), 0..6),
        ) {
            let schema = Schema::parse_str(&format!(r#"{{"type":"array","items":{EVENT_SCHEMA}}}"#)).unwrap();
            let theirs = apache_avro::to_avro_datum(
                &schema,
                Value::Array(batch.iter().map(avro_value).collect()),
            ).unwrap();
            // Recover each event's header order from apache-avro's bytes.
            let segs = [Bytes::from(theirs.clone())];
            let mut r = Reader::new(&segs);
            let decoded = decode_batch(&mut r).unwrap();
            r.expect_end().unwrap();
            let evs: Vec<Event> = batch
                .iter()
                .zip(&decoded)
                .map(|(e, d)| ours(e, &d.headers.iter().map(|(k, _)| k.to_string()).collect::<Vec<_>>()))
                .collect();
            prop_assert_eq!(&decoded, &evs);
            let mut mine = BytesMut::new();
            encode_batch(&mut mine, &evs);
            prop_assert_eq!(&mine[..], &theirs[..]);
            // Decoded events (headers as received) are sent on byte for byte.
            let mut again = BytesMut::new();
            encode_batch(&mut again, &decoded);
            prop_assert_eq!(&again[..], &theirs[..]);
            // Java cuts messages into buffers anywhere; decoding must not care.
            let mut points: Vec<usize> = cuts.iter().map(|i| i.index(theirs.len() + 1)).collect();
            points.sort_unstable();
            let whole = Bytes::from(theirs);
            let mut segs = Vec::new();
            let mut at = 0;
            for p in points.into_iter().chain([whole.len()]) {
                segs.push(whole.slice(at..p));
                at = p;
            }
            let mut r = Reader::new(&segs);
            prop_assert_eq!(decode_batch(&mut r).unwrap(), evs);
            r.expect_end().unwrap();
        }

        #[test]
        fn headers_kept_as_received_read_as_headers_decoded_pair_by_pair(
            batch in proptest::collection::vec(raw_event_strategy(), 0..8),
        ) {
            let whole = raw_batch(&batch);
            // One buffer: maps are kept as received where they can be. One buffer per
            // byte: no map lies in one buffer, so every one is decoded pair by pair.
            let one = [whole.clone()];
            let bytewise: Vec<Bytes> = (0..whole.len()).map(|i| whole.slice(i..i + 1)).collect();
            let kept = decode_batch(&mut Reader::new(&one));
            let decoded = decode_batch(&mut Reader::new(&bytewise));
            prop_assert_eq!(&kept, &decoded);
            for (k, d) in kept.iter().flatten().zip(decoded.iter().flatten()) {
                prop_assert!(d.headers.as_avro().is_none());
                prop_assert_eq!(k.headers.len(), d.headers.len());
                prop_assert_eq!(k.headers.byte_len(), d.headers.byte_len());
                prop_assert_eq!(k.headers.to_string(), d.headers.to_string());
                for (name, value) in d.headers.iter() {
                    prop_assert_eq!(k.headers.get(name), Some(value));
                }
            }
        }

        #[test]
        fn garbage_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
            let segs = [Bytes::from(bytes)];
            let _ = decode_batch(&mut Reader::new(&segs));
        }

        /// In one buffer, most events go through `read_events_in_place`; one byte
        /// per buffer, none can, so every event goes the general way. Both must decode the
        /// same events, or both refuse, whatever the bytes: plain events mixed with headed
        /// ones, bodies cut short, lengths that lie.
        #[test]
        fn events_in_place_decode_as_the_general_path_does(
            plain in proptest::collection::vec(
                (proptest::collection::vec(any::<u8>(), 0..300), any::<bool>()),
                0..12,
            ),
            noise in proptest::collection::vec(any::<u8>(), 0..8),
            cut in any::<prop::sample::Index>(),
        ) {
            let mut wire = BytesMut::new();
            put_long(&mut wire, plain.len() as i64);
            for (body, headed) in &plain {
                if *headed {
                    put_long(&mut wire, 1);
                    put_bytes(&mut wire, b"k");
                    put_bytes(&mut wire, b"v");
                }
                put_long(&mut wire, 0);
                put_bytes(&mut wire, body);
            }
            put_long(&mut wire, 0);
            // Garbage after the batch, or the batch cut short anywhere.
            wire.extend_from_slice(&noise);
            let full = wire.len();
            let end = if noise.is_empty() { cut.index(full + 1) } else { full };
            let whole = wire.freeze().slice(..end);
            let one = [whole.clone()];
            let bytewise: Vec<Bytes> = (0..whole.len()).map(|i| whole.slice(i..i + 1)).collect();
            let fast = decode_batch(&mut Reader::new(&one));
            let general = decode_batch(&mut Reader::new(&bytewise));
            prop_assert_eq!(fast.is_ok(), general.is_ok(), "{:?} / {:?}", fast, general);
            if let (Ok(f), Ok(g)) = (&fast, &general) {
                prop_assert_eq!(f, g);
            }
            if end == full && noise.is_empty() {
                let evs = fast.unwrap();
                prop_assert_eq!(evs.len(), plain.len());
                for (e, (body, _)) in evs.iter().zip(&plain) {
                    prop_assert_eq!(&e.body[..], &body[..]);
                }
            }
        }
    }

    /// An event as a peer may encode it: header blocks (each with or without its byte
    /// size, names possibly repeated, text possibly not UTF-8) and a body.
    type RawEvent = (Vec<(bool, Vec<(Vec<u8>, Vec<u8>)>)>, Vec<u8>);

    fn raw_event_strategy() -> impl Strategy<Value = RawEvent> {
        let text = prop_oneof![
            proptest::collection::vec(prop::sample::select(b"ab\xff".to_vec()), 0..3),
            "[a-z\u{e9}]{0,4}".prop_map(String::into_bytes),
        ];
        let block = (
            any::<bool>(),
            proptest::collection::vec((text.clone(), text), 1..5),
        );
        (
            proptest::collection::vec(block, 0..4),
            proptest::collection::vec(any::<u8>(), 0..20),
        )
    }

    fn raw_batch(batch: &[RawEvent]) -> Bytes {
        let mut out = BytesMut::new();
        if !batch.is_empty() {
            put_long(&mut out, batch.len() as i64);
        }
        for (blocks, body) in batch {
            for (sized, pairs) in blocks {
                let mut b = BytesMut::new();
                for (k, v) in pairs {
                    put_bytes(&mut b, k);
                    put_bytes(&mut b, v);
                }
                if *sized {
                    put_long(&mut out, -(pairs.len() as i64));
                    put_long(&mut out, b.len() as i64);
                } else {
                    put_long(&mut out, pairs.len() as i64);
                }
                out.extend_from_slice(&b);
            }
            put_long(&mut out, 0);
            put_bytes(&mut out, body);
        }
        put_long(&mut out, 0);
        out.freeze()
    }

    #[test]
    fn headers_in_one_buffer_are_kept_as_received_and_sent_on_unchanged() {
        let ev = Event::with_headers(
            [("timestamp", "1700000000000"), ("host", "h1")]
                .into_iter()
                .collect(),
            Bytes::from_static(b"body"),
        );
        let mut wire = BytesMut::new();
        encode_batch(&mut wire, &[ev.clone(), ev.clone()]);
        let wire = wire.freeze();
        let evs = decode_batch(&mut Reader::new(std::slice::from_ref(&wire))).unwrap();
        assert_eq!(evs, [ev.clone(), ev.clone()]);
        for e in &evs {
            let map = e.headers.as_avro().expect("kept as received");
            assert_eq!(map.last(), Some(&0), "the map's closing 0 is part of it");
            assert!(
                wire.as_ptr_range().contains(&map.as_ptr()),
                "a slice of the frame"
            );
        }
        let mut again = BytesMut::new();
        encode_batch(&mut again, &evs);
        assert_eq!(again, wire);

        // A repeated name: the last value wins, as in Java's HashMap, in owned headers.
        let dup = raw_batch(&[(
            vec![(
                false,
                vec![
                    (b"a".to_vec(), b"1".to_vec()),
                    (b"a".to_vec(), b"2".to_vec()),
                ],
            )],
            b"x".to_vec(),
        )]);
        let evs = decode_batch(&mut Reader::new(&[dup])).unwrap();
        assert!(evs[0].headers.as_avro().is_none());
        assert_eq!(evs[0].headers.to_string(), "{a=2}");
        // Text that is not UTF-8 is replaced, in owned headers.
        let bad = raw_batch(&[(
            vec![(true, vec![(b"k".to_vec(), b"\xff".to_vec())])],
            vec![],
        )]);
        let evs = decode_batch(&mut Reader::new(&[bad])).unwrap();
        assert!(evs[0].headers.as_avro().is_none());
        assert_eq!(evs[0].headers.get("k"), Some("\u{fffd}"));
        // More pairs than RECEIVED_HEADERS: owned.
        let many: Vec<_> = (0..=super::super::binary::RECEIVED_HEADERS)
            .map(|i| (i.to_string().into_bytes(), b"v".to_vec()))
            .collect();
        let evs = decode_batch(&mut Reader::new(&[raw_batch(&[(
            vec![(false, many)],
            vec![],
        )])]))
        .unwrap();
        assert!(evs[0].headers.as_avro().is_none());
        assert_eq!(
            evs[0].headers.len(),
            super::super::binary::RECEIVED_HEADERS + 1
        );
    }

    #[test]
    fn bodies_are_slices_of_the_frame() {
        let mut out = BytesMut::new();
        let ev = Event::with_headers(
            [("host", "h1")].into_iter().collect(),
            Bytes::from_static(b"the body"),
        );
        encode_batch(&mut out, &[ev.clone(), ev]);
        let frame = out.freeze();
        let segs = [frame.clone()];
        let evs = decode_batch(&mut Reader::new(&segs)).unwrap();
        let range = frame.as_ptr() as usize..frame.as_ptr() as usize + frame.len();
        for e in &evs {
            assert!(range.contains(&(e.body.as_ptr() as usize)));
            assert_eq!(e.headers.get("host"), Some("h1"));
        }
    }
}
