//! Fuzzes the Avro RPC receive path: frame decoding (fed in uneven chunks), the handshake
//! and call decoding of the server, the client's reply decoding and the inflater. Any input
//! must give frames, requests or errors, never a panic; every batch decoded must
//! re-encode to something that decodes to the same events; and headers kept as received
//! must read as they do once converted to owned headers.
#![no_main]

use bytes::BytesMut;
use flume_fast::avro_rpc::binary::Reader;
use flume_fast::avro_rpc::client::ClientConn;
use flume_fast::avro_rpc::codec;
use flume_fast::avro_rpc::deflate::Inflater;
use flume_fast::avro_rpc::frame::FrameDecoder;
use flume_fast::avro_rpc::protocol::Status;
use flume_fast::avro_rpc::server::{Request, ServerConn};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&chunk, data)) = data.split_first() else {
        return;
    };
    let chunk = usize::from(chunk).max(1);
    let mut dec = FrameDecoder::new(1 << 16);
    let mut server = ServerConn::new();
    let mut buf = BytesMut::new();
    'feed: for piece in data.chunks(chunk) {
        buf.extend_from_slice(piece);
        loop {
            let frame = match dec.decode(&mut buf) {
                Ok(Some(f)) => f,
                Ok(None) => break,
                Err(_) => break 'feed,
            };
            // The same frame read as a reply by a client that sent a request.
            let mut client = ClientConn::new(false);
            client.encode_batch(&[], &mut BytesMut::new());
            let _ = client.on_frame(&frame);
            match server.on_frame(&frame) {
                Ok(call) => {
                    if let Request::Events { events, .. } = &call.request {
                        let mut again = BytesMut::new();
                        codec::encode_batch(&mut again, events);
                        let segs = [again.freeze()];
                        let back = codec::decode_batch(&mut Reader::new(&segs)).unwrap();
                        assert_eq!(&back, events);
                        // Headers kept as received read as they do once owned.
                        for e in events {
                            let mut owned = e.headers.clone();
                            owned.retain(|_, _| true);
                            assert!(owned.as_avro().is_none());
                            assert_eq!(owned, e.headers);
                            assert_eq!(owned.len(), e.headers.len());
                            assert_eq!(owned.byte_len(), e.headers.byte_len());
                            for (k, v) in owned.iter() {
                                assert_eq!(e.headers.get(k), Some(v));
                            }
                        }
                    }
                    call.reply_status(Status::Ok, &mut BytesMut::new());
                }
                Err(_) => break 'feed,
            }
        }
    }
    let mut inflater = Inflater::new();
    inflater.input().extend_from_slice(data);
    let mut out = BytesMut::new();
    while inflater.has_pending() {
        match inflater.inflate(&mut out, 4096) {
            Ok(0) | Err(_) => break,
            Ok(_) => out.clear(),
        }
    }
});
