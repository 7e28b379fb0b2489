//! The client side of one connection, sans-IO: batches in, request frames out; reply
//! frames in, statuses out. Shared by the avro sink, `avro-client` and `loadgen`.
//!
//! As Avro's `Requestor` on the stateful Netty transport: requests carry a
//! `HandshakeRequest` until a reply says the handshake matched (BOTH or CLIENT). First we
//! send only our hash, guessing the server's is the same; if the server answers NONE we
//! resend the same call with our protocol text.

use super::binary::{DecodeError, Reader};
use super::codec::{self, Message};
use super::frame::{begin_frame, finish_frame, Frame};
use super::protocol::{
    check_compatible, HandshakeRequest, HandshakeResponse, Match, Status, PROTOCOL_JSON,
    PROTOCOL_MD5,
};
use crate::event::Event;
use bytes::BytesMut;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ClientError {
    #[error("malformed reply: {0}")]
    Decode(#[from] DecodeError),
    #[error("server protocol is not Flume's AvroSourceProtocol: {0}")]
    IncompatibleProtocol(String),
    #[error("server answered with an error: {0}")]
    Remote(String),
    #[error("server refused the handshake twice (NONE after we sent our protocol)")]
    HandshakeRefused,
    #[error("reply has serial {got}, expected {expected}")]
    Serial { got: i32, expected: i32 },
}

#[derive(Debug, PartialEq, Eq)]
pub enum ClientReply {
    Status {
        serial: i32,
        status: Status,
    },
    /// The server does not know our protocol: encode the same call again and send it.
    Resend,
}

#[derive(Debug)]
pub struct ClientConn {
    established: bool,
    /// The last request carried a handshake (so its reply starts with one).
    handshake_sent: bool,
    send_text: bool,
    /// The server's hash once it told us (CLIENT/NONE), else our guess (ours).
    server_hash: [u8; 16],
    next_serial: i32,
    in_flight: Option<i32>,
    /// `append` instead of `appendBatch` for single events (as Flume's `append`).
    single_as_append: bool,
}

impl ClientConn {
    pub fn new(single_as_append: bool) -> Self {
        ClientConn {
            established: false,
            handshake_sent: false,
            send_text: false,
            server_hash: PROTOCOL_MD5,
            next_serial: 0,
            in_flight: None,
            single_as_append,
        }
    }

    pub fn established(&self) -> bool {
        self.established
    }

    /// Appends the request frame for `events` to `out`; returns its serial.
    pub fn encode_batch(&mut self, events: &[Event], out: &mut BytesMut) -> i32 {
        let serial = self.next_serial;
        self.next_serial = self.next_serial.wrapping_add(1);
        out.reserve(64 + events.iter().map(codec::encoded_len_hint).sum::<usize>());
        let start = begin_frame(out, serial);
        self.handshake_sent = !self.established;
        if self.handshake_sent {
            HandshakeRequest {
                client_hash: PROTOCOL_MD5,
                client_protocol: self.send_text.then(|| PROTOCOL_JSON.to_string()),
                server_hash: self.server_hash,
            }
            .encode(out);
        }
        let message = if events.len() == 1 && self.single_as_append {
            Message::Append
        } else {
            Message::AppendBatch
        };
        codec::encode_call(out, message, events);
        finish_frame(out, start);
        self.in_flight = Some(serial);
        serial
    }

    /// Makes `frame`, a request this connection encoded after the handshake completed,
    /// the next request again (a new serial): lets a load generator resend one batch
    /// without encoding it again. Returns the serial.
    pub fn reuse_frame(&mut self, frame: &mut BytesMut) -> i32 {
        debug_assert!(self.established, "a reused frame must carry no handshake");
        let serial = self.next_serial;
        self.next_serial = self.next_serial.wrapping_add(1);
        frame[0..4].copy_from_slice(&serial.to_be_bytes());
        self.handshake_sent = false;
        self.in_flight = Some(serial);
        serial
    }

    pub fn on_frame(&mut self, frame: &Frame) -> Result<ClientReply, ClientError> {
        if let Some(expected) = self.in_flight {
            if frame.serial != expected {
                return Err(ClientError::Serial {
                    got: frame.serial,
                    expected,
                });
            }
        }
        self.in_flight = None;
        let mut r = Reader::new(&frame.buffers);
        if self.handshake_sent {
            let h = HandshakeResponse::decode(&mut r)?;
            if let Some(text) = &h.server_protocol {
                check_compatible(text).map_err(ClientError::IncompatibleProtocol)?;
            }
            if let Some(hash) = h.server_hash {
                self.server_hash = hash;
            }
            match h.matched {
                Match::Both | Match::Client => self.established = true,
                Match::None if self.send_text => return Err(ClientError::HandshakeRefused),
                Match::None => {
                    self.send_text = true;
                    return Ok(ClientReply::Resend);
                }
            }
        }
        r.skip_bytes_map()?;
        if r.read_bool()? {
            r.read_index("error union", 1)?;
            let msg = r.read_string()?;
            return Err(ClientError::Remote(msg.to_string()));
        }
        let status = Status::from_index(r.read_index("Status", 3)?);
        Ok(ClientReply::Status {
            serial: frame.serial,
            status,
        })
    }
}
