//! The server side of one connection, sans-IO: frames in, calls out, replies encoded.
//!
//! It follows Avro's `Responder` over the stateful Netty transport: the first request of a
//! connection starts with a `HandshakeRequest`; once the handshake matched (BOTH or
//! CLIENT) the connection is established and later requests carry no handshake. A client
//! whose protocol we do not know is answered NONE with our protocol, and resends with its
//! own text, which we accept when it is compatible. An empty message name is a handshake
//! ping, answered with the handshake alone.

use super::binary::{DecodeError, Reader};
use super::codec::{self, Message};
use super::frame::{begin_frame, finish_frame, Frame};
use super::protocol::{
    check_compatible, HandshakeRequest, HandshakeResponse, Match, Status, PROTOCOL_JSON,
    PROTOCOL_MD5,
};
use crate::event::Event;
use bytes::{Bytes, BytesMut};

#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    #[error("malformed request: {0}")]
    Decode(#[from] DecodeError),
    #[error("client protocol is not Flume's AvroSourceProtocol: {0}")]
    IncompatibleProtocol(String),
    #[error("unknown message '{0}' (AvroSourceProtocol has append and appendBatch)")]
    UnknownMessage(String),
}

/// What a request frame asks for.
pub enum Request {
    /// Events to deliver; answer with `reply_status`.
    Events {
        message: Message,
        events: Vec<Event>,
    },
    /// Nothing to do but send `reply` as it is (handshake NONE, or a ping).
    Reply(Bytes),
}

/// A decoded request with what its reply needs.
pub struct Call {
    pub serial: i32,
    /// The handshake response that must precede this call's reply.
    handshake: Option<HandshakeResponse>,
    pub request: Request,
}

/// A request that cannot be served; `reply` is what to tell the client before closing.
pub struct Rejected {
    pub error: ServerError,
    pub reply: Bytes,
}

/// One connection's handshake state.
#[derive(Debug, Default)]
pub struct ServerConn {
    established: bool,
}

impl ServerConn {
    pub fn new() -> Self {
        ServerConn::default()
    }

    pub fn on_frame(&mut self, frame: &Frame) -> Result<Call, Box<Rejected>> {
        let mut r = Reader::new(&frame.buffers);
        let mut handshake = None;
        let reject = |error: ServerError, handshake: &Option<HandshakeResponse>| {
            let mut out = BytesMut::new();
            let start = begin_frame(&mut out, frame.serial);
            if let Some(h) = handshake {
                h.encode(&mut out);
            }
            codec::encode_error_response(&mut out, &error.to_string());
            finish_frame(&mut out, start);
            Box::new(Rejected {
                error,
                reply: out.freeze(),
            })
        };
        if !self.established {
            let req = HandshakeRequest::decode(&mut r).map_err(|e| reject(e.into(), &None))?;
            let resp = self.handshake(&req).map_err(|e| reject(e, &None))?;
            if resp.matched == Match::None {
                // As Avro: answer the handshake alone; the client resends with its text.
                let mut out = BytesMut::new();
                let start = begin_frame(&mut out, frame.serial);
                resp.encode(&mut out);
                finish_frame(&mut out, start);
                return Ok(Call {
                    serial: frame.serial,
                    handshake: None,
                    request: Request::Reply(out.freeze()),
                });
            }
            self.established = true;
            handshake = Some(resp);
        }
        let call = (|| {
            r.skip_bytes_map()?;
            let name = r.read_bytes()?;
            let message = match &name[..] {
                b"appendBatch" => Message::AppendBatch,
                b"append" => Message::Append,
                b"" => return Ok(None),
                other => {
                    return Err(ServerError::UnknownMessage(
                        String::from_utf8_lossy(other).into_owned(),
                    ))
                }
            };
            let events = match message {
                Message::AppendBatch => codec::decode_batch(&mut r)?,
                Message::Append => vec![codec::decode_event(&mut r)?],
            };
            r.expect_end()?;
            Ok(Some((message, events)))
        })();
        match call {
            Ok(Some((message, events))) => Ok(Call {
                serial: frame.serial,
                handshake,
                request: Request::Events { message, events },
            }),
            Ok(None) => {
                let mut out = BytesMut::new();
                let start = begin_frame(&mut out, frame.serial);
                if let Some(h) = &handshake {
                    h.encode(&mut out);
                }
                finish_frame(&mut out, start);
                Ok(Call {
                    serial: frame.serial,
                    handshake: None,
                    request: Request::Reply(out.freeze()),
                })
            }
            Err(e) => Err(reject(e, &handshake)),
        }
    }

    fn handshake(&self, req: &HandshakeRequest) -> Result<HandshakeResponse, ServerError> {
        let known = if req.client_hash == PROTOCOL_MD5 {
            true
        } else if let Some(text) = &req.client_protocol {
            check_compatible(text).map_err(ServerError::IncompatibleProtocol)?;
            true
        } else {
            false
        };
        let matched = match (known, req.server_hash == PROTOCOL_MD5) {
            (false, _) => Match::None,
            (true, true) => Match::Both,
            (true, false) => Match::Client,
        };
        let ours = matched != Match::Both;
        Ok(HandshakeResponse {
            matched,
            server_protocol: ours.then(|| PROTOCOL_JSON.to_string()),
            server_hash: ours.then_some(PROTOCOL_MD5),
        })
    }
}

impl Call {
    /// Encodes the reply frame for a served call into `out`.
    pub fn reply_status(&self, status: Status, out: &mut BytesMut) {
        let start = begin_frame(out, self.serial);
        if let Some(h) = &self.handshake {
            h.encode(out);
        }
        codec::encode_status_response(out, status);
        finish_frame(out, start);
    }
}

#[cfg(test)]
mod tests {
    use super::super::client::{ClientConn, ClientReply};
    use super::super::frame::FrameDecoder;
    use super::*;

    fn frames(bytes: &mut BytesMut) -> Vec<Frame> {
        let mut dec = FrameDecoder::new(1 << 20);
        let mut out = Vec::new();
        while let Some(f) = dec.decode(bytes).unwrap() {
            out.push(f);
        }
        out
    }

    fn events(n: usize) -> Vec<Event> {
        (0..n)
            .map(|i| {
                Event::with_headers(
                    [("i", i.to_string())].into_iter().collect(),
                    Bytes::from(format!("body {i}")),
                )
            })
            .collect()
    }

    #[test]
    fn client_and_server_agree_and_handshake_once() {
        let mut client = ClientConn::new(false);
        let mut server = ServerConn::new();
        for round in 0..3 {
            let mut wire = BytesMut::new();
            let serial = client.encode_batch(&events(3), &mut wire);
            let f = frames(&mut wire).pop().unwrap();
            // Only the first request carries a handshake (16-byte hash first).
            assert_eq!(f.buffers[0][..16] == PROTOCOL_MD5, round == 0);
            let call = server.on_frame(&f).ok().unwrap();
            let Request::Events {
                message,
                events: got,
            } = &call.request
            else {
                panic!("expected events")
            };
            assert_eq!(*message, Message::AppendBatch);
            assert_eq!(got, &events(3));
            let mut reply = BytesMut::new();
            call.reply_status(Status::Ok, &mut reply);
            let f = frames(&mut reply).pop().unwrap();
            assert_eq!(
                client.on_frame(&f).unwrap(),
                ClientReply::Status {
                    serial,
                    status: Status::Ok
                }
            );
        }
    }

    #[test]
    fn an_unknown_client_hash_gets_none_then_the_resend_with_text_is_served() {
        let mut server = ServerConn::new();
        let mut client = ClientConn::new(false);
        // The client's first request is sent; the server reads a variant of it whose
        // protocol text (so hash) differs from ours.
        client.encode_batch(&events(1), &mut BytesMut::new());
        let mut wire = BytesMut::new();
        let req = HandshakeRequest {
            client_hash: [9; 16],
            client_protocol: None,
            server_hash: [9; 16],
        };
        let start = begin_frame(&mut wire, 0);
        req.encode(&mut wire);
        codec::encode_call(&mut wire, Message::Append, &events(1));
        finish_frame(&mut wire, start);
        let call = server.on_frame(&frames(&mut wire)[0]).ok().unwrap();
        let Request::Reply(reply) = call.request else {
            panic!("expected a handshake-only reply")
        };
        let f = frames(&mut BytesMut::from(&reply[..])).pop().unwrap();
        assert_eq!(client.on_frame(&f).unwrap(), ClientReply::Resend);
        let mut wire = BytesMut::new();
        let pretty = {
            let v: serde_json::Value = serde_json::from_str(PROTOCOL_JSON).unwrap();
            serde_json::to_string_pretty(&v).unwrap()
        };
        let req = HandshakeRequest {
            client_hash: [9; 16],
            client_protocol: Some(pretty),
            server_hash: PROTOCOL_MD5,
        };
        let start = begin_frame(&mut wire, 2);
        req.encode(&mut wire);
        codec::encode_call(&mut wire, Message::Append, &events(1));
        finish_frame(&mut wire, start);
        let call = server.on_frame(&frames(&mut wire)[0]).ok().unwrap();
        assert!(matches!(call.request, Request::Events { .. }));
        assert_eq!(call.handshake.as_ref().unwrap().matched, Match::Both);
    }

    #[test]
    fn unknown_messages_and_garbage_are_rejected_with_an_error_reply() {
        let mut client = ClientConn::new(false);
        client.encode_batch(&events(1), &mut BytesMut::new());
        let mut wire = BytesMut::new();
        let start = begin_frame(&mut wire, 0);
        HandshakeRequest {
            client_hash: PROTOCOL_MD5,
            client_protocol: None,
            server_hash: PROTOCOL_MD5,
        }
        .encode(&mut wire);
        super::super::binary::put_long(&mut wire, 0);
        super::super::binary::put_bytes(&mut wire, b"drop");
        finish_frame(&mut wire, start);
        let Err(rej) = ServerConn::new().on_frame(&frames(&mut wire)[0]) else {
            panic!("accepted an unknown message")
        };
        assert!(matches!(rej.error, ServerError::UnknownMessage(ref m) if m == "drop"));
        let f = frames(&mut BytesMut::from(&rej.reply[..])).pop().unwrap();
        let err = client.on_frame(&f).unwrap_err();
        assert!(err.to_string().contains("unknown message 'drop'"), "{err}");

        let garbage = Frame {
            serial: 1,
            buffers: vec![Bytes::from_static(b"\x01\x02garbage")],
        };
        assert!(ServerConn::new().on_frame(&garbage).is_err());
    }
}
