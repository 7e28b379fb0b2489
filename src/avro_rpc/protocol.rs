//! Flume's `AvroSourceProtocol` as Java sees it, and the Avro IPC handshake records.
//!
//! Avro identifies a protocol by the MD5 of its JSON text as Java's `Protocol.toString()`
//! renders it. `AvroSourceProtocol.json` is that exact text, taken from flume-ng-sdk 1.11.0
//! (`AvroSourceProtocol.PROTOCOL.toString()`), so Java peers see a known hash and the
//! handshake completes in one round trip. A peer whose text differs (another Avro version
//! renders it differently) is handled the way Avro does: the protocols are exchanged and
//! checked for compatibility (`check_compatible`).

use super::binary::{put_bytes, put_long, DecodeError, Reader};
use bytes::{BufMut, BytesMut};

/// The protocol text Java Flume 1.11 hashes.
pub const PROTOCOL_JSON: &str = include_str!("AvroSourceProtocol.json");

/// MD5 of `PROTOCOL_JSON` (a test recomputes it).
pub const PROTOCOL_MD5: [u8; 16] = [
    0x86, 0xaa, 0xda, 0xe2, 0xc4, 0x54, 0x74, 0xc0, 0xfe, 0x93, 0xff, 0xd0, 0xf2, 0x35, 0x0a, 0x65,
];

/// Flume's reply to append and appendBatch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    Ok,
    Failed,
    Unknown,
}

impl Status {
    pub fn index(self) -> i64 {
        match self {
            Status::Ok => 0,
            Status::Failed => 1,
            Status::Unknown => 2,
        }
    }

    pub fn from_index(i: i64) -> Status {
        match i {
            0 => Status::Ok,
            1 => Status::Failed,
            _ => Status::Unknown,
        }
    }
}

/// `HandshakeMatch`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Match {
    Both,
    Client,
    None,
}

/// `org.apache.avro.ipc.HandshakeRequest` (metadata is read and dropped: Flume sets none).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HandshakeRequest {
    pub client_hash: [u8; 16],
    pub client_protocol: Option<String>,
    pub server_hash: [u8; 16],
}

impl HandshakeRequest {
    pub fn decode(r: &mut Reader) -> Result<Self, DecodeError> {
        let client_hash = r.read_fixed16()?;
        let client_protocol = match r.read_index("clientProtocol union", 2)? {
            0 => None,
            _ => Some(r.read_string()?.to_string()),
        };
        let server_hash = r.read_fixed16()?;
        if r.read_index("meta union", 2)? == 1 {
            r.skip_bytes_map()?;
        }
        Ok(HandshakeRequest {
            client_hash,
            client_protocol,
            server_hash,
        })
    }

    pub fn encode(&self, out: &mut BytesMut) {
        out.put_slice(&self.client_hash);
        match &self.client_protocol {
            None => put_long(out, 0),
            Some(p) => {
                put_long(out, 1);
                put_bytes(out, p.as_bytes());
            }
        }
        out.put_slice(&self.server_hash);
        put_long(out, 0);
    }
}

/// `org.apache.avro.ipc.HandshakeResponse`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HandshakeResponse {
    pub matched: Match,
    pub server_protocol: Option<String>,
    pub server_hash: Option<[u8; 16]>,
}

impl HandshakeResponse {
    pub fn decode(r: &mut Reader) -> Result<Self, DecodeError> {
        let matched = match r.read_index("HandshakeMatch", 3)? {
            0 => Match::Both,
            1 => Match::Client,
            _ => Match::None,
        };
        let server_protocol = match r.read_index("serverProtocol union", 2)? {
            0 => None,
            _ => Some(r.read_string()?.to_string()),
        };
        let server_hash = match r.read_index("serverHash union", 2)? {
            0 => None,
            _ => Some(r.read_fixed16()?),
        };
        if r.read_index("meta union", 2)? == 1 {
            r.skip_bytes_map()?;
        }
        Ok(HandshakeResponse {
            matched,
            server_protocol,
            server_hash,
        })
    }

    pub fn encode(&self, out: &mut BytesMut) {
        put_long(
            out,
            match self.matched {
                Match::Both => 0,
                Match::Client => 1,
                Match::None => 2,
            },
        );
        match &self.server_protocol {
            None => put_long(out, 0),
            Some(p) => {
                put_long(out, 1);
                put_bytes(out, p.as_bytes());
            }
        }
        match &self.server_hash {
            None => put_long(out, 0),
            Some(h) => {
                put_long(out, 1);
                out.put_slice(h);
            }
        }
        put_long(out, 0);
    }
}

/// Checks that a peer's protocol text is Flume's `AvroSourceProtocol` in substance: the
/// same messages with the same request and response types, whatever its formatting,
/// documentation or Java-specific properties. Both sides then read each other's data
/// with our fixed schema, which is only right when this holds.
pub fn check_compatible(text: &str) -> Result<(), String> {
    let v: serde_json::Value =
        serde_json::from_str(text).map_err(|e| format!("protocol is not valid JSON: {e}"))?;
    let name = v.get("protocol").and_then(|n| n.as_str()).unwrap_or("");
    if name != "AvroSourceProtocol" {
        return Err(format!("protocol is '{name}', not AvroSourceProtocol"));
    }
    let types = v.get("types").and_then(|t| t.as_array());
    let find = |n: &str| {
        types.and_then(|ts| {
            ts.iter()
                .find(|t| t.get("name").and_then(|x| x.as_str()) == Some(n))
        })
    };
    let status = find("Status").ok_or("protocol has no Status type")?;
    let symbols: Vec<&str> = status
        .get("symbols")
        .and_then(|s| s.as_array())
        .map(|a| a.iter().filter_map(|s| s.as_str()).collect())
        .unwrap_or_default();
    if symbols.len() < 2 || symbols[0] != "OK" || symbols[1] != "FAILED" {
        return Err(format!(
            "Status symbols are {symbols:?}, expected OK, FAILED, UNKNOWN"
        ));
    }
    let event = find("AvroFlumeEvent").ok_or("protocol has no AvroFlumeEvent type")?;
    let fields: Vec<(String, String)> = event
        .get("fields")
        .and_then(|f| f.as_array())
        .map(|a| {
            a.iter()
                .map(|f| {
                    (
                        f.get("name")
                            .and_then(|n| n.as_str())
                            .unwrap_or("")
                            .to_string(),
                        type_shape(f.get("type")),
                    )
                })
                .collect()
        })
        .unwrap_or_default();
    let want = [
        ("headers".to_string(), "map<string>".to_string()),
        ("body".to_string(), "bytes".to_string()),
    ];
    if fields != want {
        return Err(format!(
            "AvroFlumeEvent fields are {fields:?}, expected headers: map<string>, body: bytes"
        ));
    }
    let messages = v
        .get("messages")
        .and_then(|m| m.as_object())
        .ok_or("protocol has no messages")?;
    for (msg, param) in [
        ("append", "AvroFlumeEvent"),
        ("appendBatch", "array<AvroFlumeEvent>"),
    ] {
        let Some(m) = messages.get(msg) else {
            return Err(format!("protocol has no message '{msg}'"));
        };
        let params: Vec<String> = m
            .get("request")
            .and_then(|r| r.as_array())
            .map(|a| a.iter().map(|p| type_shape(p.get("type"))).collect())
            .unwrap_or_default();
        let response = type_shape(m.get("response"));
        if params != [param] || !response.ends_with("Status") {
            return Err(format!(
                "message '{msg}' takes {params:?} and answers {response}, expected ({param}) -> Status"
            ));
        }
    }
    Ok(())
}

/// A compact spelling of a JSON schema type: `bytes`, `map<string>`, `array<X>`, or the
/// short name of a named type.
fn type_shape(t: Option<&serde_json::Value>) -> String {
    match t {
        Some(serde_json::Value::String(s)) => s.rsplit('.').next().unwrap_or(s).to_string(),
        Some(serde_json::Value::Object(o)) => match o.get("type").and_then(|t| t.as_str()) {
            Some("map") => format!("map<{}>", type_shape(o.get("values"))),
            Some("array") => format!("array<{}>", type_shape(o.get("items"))),
            Some("record" | "enum" | "fixed") => type_shape(o.get("name")),
            Some(other) => other.to_string(),
            None => "?".to_string(),
        },
        _ => "?".to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use md5::{Digest, Md5};

    #[test]
    fn the_hash_is_the_md5_of_the_text_java_hashes() {
        let digest: [u8; 16] = Md5::digest(PROTOCOL_JSON.as_bytes()).into();
        assert_eq!(digest, PROTOCOL_MD5);
    }

    #[test]
    fn our_protocol_is_compatible_and_others_are_not() {
        check_compatible(PROTOCOL_JSON).unwrap();
        // The same protocol rendered without the doc and with spaces is compatible.
        let mut v: serde_json::Value = serde_json::from_str(PROTOCOL_JSON).unwrap();
        v.as_object_mut().unwrap().remove("doc");
        check_compatible(&serde_json::to_string_pretty(&v).unwrap()).unwrap();
        let swapped = PROTOCOL_JSON.replace(r#"["OK","FAILED","UNKNOWN"]"#, r#"["FAILED","OK"]"#);
        assert!(check_compatible(&swapped).is_err());
        let other = PROTOCOL_JSON.replace(r#""type":"bytes""#, r#""type":"string""#);
        assert!(check_compatible(&other).unwrap_err().contains("fields"));
        assert!(check_compatible("{}").is_err());
    }

    #[test]
    fn handshake_records_round_trip() {
        let req = HandshakeRequest {
            client_hash: PROTOCOL_MD5,
            client_protocol: Some(PROTOCOL_JSON.to_string()),
            server_hash: [7; 16],
        };
        let mut out = BytesMut::new();
        req.encode(&mut out);
        let segs = [out.freeze()];
        let mut r = Reader::new(&segs);
        assert_eq!(HandshakeRequest::decode(&mut r).unwrap(), req);
        r.expect_end().unwrap();
        let resp = HandshakeResponse {
            matched: Match::Client,
            server_protocol: Some("x".into()),
            server_hash: Some([1; 16]),
        };
        let mut out = BytesMut::new();
        resp.encode(&mut out);
        let segs = [out.freeze()];
        let mut r = Reader::new(&segs);
        assert_eq!(HandshakeResponse::decode(&mut r).unwrap(), resp);
        r.expect_end().unwrap();
    }
}
