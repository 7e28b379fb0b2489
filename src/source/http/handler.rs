//! The request handlers Flume's HTTP source is configured with (`handler`), and how a
//! handler's failure is answered: `HTTPBadRequestException` is a 400, anything else a 500,
//! each with Flume's message.

use super::json;
use super::request::Head;
use crate::event::{Body, Event, Headers};
use bytes::Bytes;
use std::rc::Rc;

pub const JSON_CLASS: &str = "org.apache.flume.source.http.JSONHandler";
pub const BLOB_CLASS: &str = "org.apache.flume.source.http.BLOBHandler";
pub const MORPHLINE_BLOB_CLASS: &str = "org.apache.flume.sink.solr.morphline.BlobHandler";

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Handler {
    Json,
    /// Flume's `BLOBHandler`: the parameters that must be present.
    Blob {
        mandatory: Vec<String>,
    },
    /// The morphline sink's `BlobHandler`: bodies cut at this many bytes.
    MorphlineBlob {
        max_blob_length: usize,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HandlerError {
    /// 400, `Bad request from client. <msg>`.
    BadRequest(String),
    /// 500, `Deserializer threw unexpected exception. <msg>`.
    Failed(String),
}

impl HandlerError {
    pub fn status(&self) -> u16 {
        match self {
            HandlerError::BadRequest(_) => 400,
            HandlerError::Failed(_) => 500,
        }
    }

    pub fn message(&self) -> String {
        match self {
            HandlerError::BadRequest(m) => format!("Bad request from client. {m}"),
            HandlerError::Failed(m) => format!("Deserializer threw unexpected exception. {m}"),
        }
    }
}

impl Handler {
    /// The events of one request.
    pub fn events(&self, head: &Head, body: Bytes) -> Result<Vec<Event>, HandlerError> {
        match self {
            Handler::Json => json::events(&body, head.content_type.as_deref()),
            Handler::Blob { mandatory } => {
                let (params, body) = parameters(head, body);
                let mut headers = Headers::new();
                for (k, v) in &params {
                    headers.set_if_absent(k.as_str(), v.as_str());
                }
                for m in mandatory {
                    if headers.get(m).is_none() {
                        return Err(HandlerError::Failed(format!(
                            "Please specify {m} parameter in the request."
                        )));
                    }
                }
                Ok(vec![Event::with_headers(headers, whole(body))])
            }
            Handler::MorphlineBlob { max_blob_length } => {
                let mut headers = Headers::new();
                if let Some(ct) = &head.content_type {
                    headers.set("Content-Type", ct.as_str());
                }
                let (params, mut body) = parameters(head, body);
                for (k, v) in &params {
                    headers.set_if_absent(k.as_str(), v.as_str());
                }
                if body.len() > *max_blob_length {
                    tracing::warn!(
                        "Request length exceeds maxBlobLength ({max_blob_length}), truncating BLOB event!"
                    );
                    body.truncate(*max_blob_length);
                }
                Ok(vec![Event::with_headers(headers, whole(body))])
            }
        }
    }
}

fn whole(body: Bytes) -> Body {
    let len = body.len();
    if len == 0 {
        return Body::new();
    }
    Body::shared(Rc::new(body), 0..len)
}

/// The servlet's request parameters, the query's (a form body stays the body: Java
/// Flume 1.11 behind Jetty 9.4 gives no form parameters to its handlers, which
/// tests/http_java.rs checks), and the body. The first value of a name is the one kept.
fn parameters(head: &Head, body: Bytes) -> (Vec<(String, String)>, Bytes) {
    let mut params = Vec::new();
    if let Some((_, query)) = head.target.split_once('?') {
        decode_form(query.as_bytes(), &mut params);
    }
    (params, body)
}

/// `a=1&b=x+y%21` pairs, percent-decoded as UTF-8 (malformed escapes kept as written).
pub fn decode_form(text: &[u8], out: &mut Vec<(String, String)>) {
    for pair in text.split(|&b| b == b'&') {
        if pair.is_empty() {
            continue;
        }
        let (k, v) = match pair.iter().position(|&b| b == b'=') {
            Some(p) => (&pair[..p], &pair[p + 1..]),
            None => (pair, &b""[..]),
        };
        out.push((unescape(k), unescape(v)));
    }
}

fn unescape(s: &[u8]) -> String {
    let mut out = Vec::with_capacity(s.len());
    let mut i = 0;
    while i < s.len() {
        match s[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < s.len() && hex(s[i + 1]).is_some() && hex(s[i + 2]).is_some() => {
                out.push(hex(s[i + 1]).unwrap() * 16 + hex(s[i + 2]).unwrap());
                i += 2;
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn hex(b: u8) -> Option<u8> {
    (b as char).to_digit(16).map(|d| d as u8)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn head(method: &str, target: &str, ct: Option<&str>) -> Head {
        let wire = format!(
            "{method} {target} HTTP/1.1\r\nHost: h\r\n{}\r\n",
            ct.map(|c| format!("Content-Type: {c}\r\n"))
                .unwrap_or_default()
        );
        let mut buf = bytes::BytesMut::from(wire.as_bytes());
        super::super::request::Reader::new(10)
            .next(&mut buf)
            .unwrap()
            .unwrap()
            .head
    }

    #[test]
    fn blob_takes_the_body_whole_and_the_parameters_as_headers() {
        let h = Handler::Blob {
            mandatory: vec!["a".into()],
        };
        let evs = h
            .events(
                &head("POST", "/x?a=1&b=x+y%21&a=2", None),
                Bytes::from_static(b"\x00raw"),
            )
            .unwrap();
        assert_eq!(&evs[0].body[..], b"\x00raw");
        assert_eq!(evs[0].headers.get("a"), Some("1"));
        assert_eq!(evs[0].headers.get("b"), Some("x y!"));
        let missing = h
            .events(&head("POST", "/", None), Bytes::new())
            .unwrap_err();
        assert_eq!(missing.status(), 500);
    }

    #[test]
    fn a_form_body_stays_the_body_and_morphline_cuts_it() {
        let h = Handler::MorphlineBlob { max_blob_length: 3 };
        let ct = "application/x-www-form-urlencoded";
        let evs = h
            .events(&head("POST", "/?q=1", Some(ct)), Bytes::from_static(b"k=v"))
            .unwrap();
        assert_eq!(&evs[0].body[..], b"k=v");
        assert_eq!(evs[0].headers.get("k"), None);
        assert_eq!(evs[0].headers.get("q"), Some("1"));
        assert_eq!(evs[0].headers.get("Content-Type"), Some(ct));
        let evs = h
            .events(&head("POST", "/", None), Bytes::from_static(b"abcdef"))
            .unwrap();
        assert_eq!(&evs[0].body[..], b"abc");
    }
}
