//! One HTTP connection: reads requests (pipelined ones in order), has each handled and
//! delivered in one channel transaction, and answers it as Flume's servlet in Jetty does.
//! The bytes of unfinished requests count toward the shard's budget, and a client silent
//! (or stalled mid-request) for the idle timeout is closed, so no client holds a shard.

use super::handler::HandlerError;
use super::io::Io;
use super::request::{HttpError, Reader, Request};
use super::HttpSourceConfig;
use crate::runtime::budget::Hold;
use crate::source::SourceCtx;
use bytes::BytesMut;
use std::net::SocketAddr;
use std::time::{Duration, Instant};
use tokio_uring::net::TcpStream;

/// How long a closing connection keeps reading what its client still sends, so that the
/// final answer is not lost to a reset.
const LINGER: Duration = Duration::from_secs(2);

/// An answer: status, the message of an error answer, and whether the connection ends.
struct Answer {
    status: u16,
    message: Option<String>,
    close: bool,
}

impl Answer {
    fn ok() -> Self {
        Answer {
            status: 200,
            message: None,
            close: false,
        }
    }
    fn error(status: u16, message: impl Into<String>) -> Self {
        Answer {
            status,
            message: Some(message.into()),
            close: false,
        }
    }
}

/// Resolves at `deadline`, or never without one.
async fn until(deadline: Option<Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d.into()).await,
        None => std::future::pending().await,
    }
}

enum Ending {
    Eof,
    Stopped,
    Closed,
    Idle { held: usize, paused: bool },
    Failed(std::io::Error),
}

pub async fn serve(
    stream: TcpStream,
    peer: SocketAddr,
    cfg: &HttpSourceConfig,
    ctx: &SourceCtx,
    mut hold: Hold,
) {
    let mut io = match Io::new(stream, cfg.tls.as_ref()) {
        Ok(io) => io,
        Err(e) => {
            tracing::warn!(source = %ctx.name, %peer, "cannot start TLS: {e}");
            return;
        }
    };
    io.set_nodelay();
    let mut reader = Reader::new(cfg.max_request);
    let mut buf = BytesMut::with_capacity(16 * 1024);
    let mut out: Vec<u8> = Vec::new();
    let mut last_data = Instant::now();
    let ending = 'conn: loop {
        // Every whole request in the buffer, in order; their answers go out together.
        let mut close = false;
        loop {
            match reader.next(&mut buf) {
                Ok(Some(req)) => {
                    let version = req.head.version;
                    let head_only = req.head.method == "HEAD";
                    let keep = req.head.keep_alive;
                    let answer = handle(req, cfg, ctx, &peer).await;
                    write_answer(&mut out, version, &answer, keep && !answer.close, head_only);
                    last_data = Instant::now();
                    if !keep || answer.close {
                        close = true;
                        break;
                    }
                }
                Ok(None) => {
                    if reader.take_continue() {
                        out.extend_from_slice(b"HTTP/1.1 100 Continue\r\n\r\n");
                    }
                    break;
                }
                Err(e) => {
                    tracing::info!(source = %ctx.name, %peer, "closing the connection: {e}");
                    write_error(&mut out, &e);
                    close = true;
                    break;
                }
            }
        }
        if !out.is_empty() {
            match io.write_all(std::mem::take(&mut out)).await {
                Ok(mut spent) => {
                    spent.clear();
                    out = spent;
                }
                Err(e) => break 'conn Ending::Failed(e),
            }
        }
        if close {
            break Ending::Closed;
        }
        let deadline = cfg.idle_timeout.map(|d| last_data + d);
        hold.set(buf.len() + reader.held());
        if !hold.may_grow() {
            tokio::select! {
                _ = ctx.stop.wait() => break Ending::Stopped,
                _ = until(deadline) => break Ending::Idle { held: buf.len() + reader.held(), paused: true },
                _ = hold.room() => {}
            }
        }
        let held = buf.len() + reader.held();
        let (result, b) = tokio::select! {
            _ = ctx.stop.wait() => break Ending::Stopped,
            _ = until(deadline) => break Ending::Idle { held, paused: false },
            r = io.read(buf) => r,
        };
        buf = b;
        crate::runtime::spin::activity();
        match result {
            Ok(0) => break Ending::Eof,
            Ok(_) => last_data = Instant::now(),
            Err(e) => break Ending::Failed(e),
        }
    };
    hold.set(0);
    match ending {
        Ending::Closed => io.lingering_close(LINGER).await,
        Ending::Eof | Ending::Stopped => {}
        Ending::Failed(e) => tracing::debug!(source = %ctx.name, %peer, "connection failed: {e}"),
        Ending::Idle { held, paused } => {
            let idle = cfg.idle_timeout.unwrap_or_default();
            match (held, paused) {
                (0, _) => {
                    tracing::debug!(source = %ctx.name, %peer, "closing the connection: silent for {idle:?} (idle-timeout)")
                }
                (n, false) => {
                    tracing::warn!(source = %ctx.name, %peer, "closing the connection: stalled for {idle:?} in the middle of a request ({n} bytes of it received; idle-timeout)")
                }
                (n, true) => {
                    tracing::warn!(source = %ctx.name, %peer, "closing the connection: held {n} bytes of an unfinished request for {idle:?} while the shard's buffer budget was exhausted (idle-timeout)")
                }
            }
        }
    }
}

/// What Flume's servlet, behind Jetty, answers to one request.
async fn handle(
    req: Request,
    cfg: &HttpSourceConfig,
    ctx: &SourceCtx,
    peer: &SocketAddr,
) -> Answer {
    let Request { head, body } = req;
    match head.method.as_str() {
        // Flume's doGet calls doPost; HEAD is a GET without the answer's body.
        "POST" | "GET" | "HEAD" => {}
        // HttpServlet's defaults: 405 on HTTP/1.1, 400 on HTTP/1.0.
        "PUT" | "DELETE" => {
            let status = if head.version == 1 { 405 } else { 400 };
            return Answer::error(
                status,
                format!("HTTP method {} is not supported by this URL", head.method),
            );
        }
        // Flume's security handler forbids these two.
        "OPTIONS" | "TRACE" => return Answer::error(403, "Forbidden"),
        other => {
            return Answer::error(
                501,
                format!("Method {other} is not implemented by this servlet for this URI"),
            )
        }
    }
    let events = match cfg.handler.events(&head, body) {
        Ok(events) => events,
        Err(e) => {
            match &e {
                HandlerError::BadRequest(m) => {
                    tracing::warn!(source = %ctx.name, %peer, "Received bad request from client. {m}")
                }
                HandlerError::Failed(m) => {
                    tracing::warn!(source = %ctx.name, %peer, "Deserializer threw unexpected exception. {m}")
                }
            }
            return Answer::error(e.status(), e.message());
        }
    };
    if events.is_empty() {
        return Answer::ok();
    }
    match ctx.deliver(events).await {
        Ok(()) => Answer::ok(),
        Err(refused) => {
            tracing::warn!(source = %ctx.name, %peer, "Error appending event to channel. Channel might be full. Consider increasing the channel capacity or make sure the sinks perform faster. {}", refused.error);
            Answer::error(
                503,
                format!(
                    "Error appending event to channel. Channel might be full.{}",
                    refused.error
                ),
            )
        }
    }
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        400 => "Bad Request",
        403 => "Forbidden",
        405 => "Method Not Allowed",
        413 => "Payload Too Large",
        417 => "Expectation Failed",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        501 => "Not Implemented",
        503 => "Service Unavailable",
        505 => "HTTP Version Not Supported",
        _ => "Error",
    }
}

fn write_answer(out: &mut Vec<u8>, version: u8, a: &Answer, keep: bool, head_only: bool) {
    use std::io::Write;
    let body = a
        .message
        .as_ref()
        .map(|m| format!("{m}\n"))
        .unwrap_or_default();
    let _ = write!(
        out,
        "HTTP/1.{version} {} {}\r\n",
        a.status,
        reason(a.status)
    );
    if !body.is_empty() {
        out.extend_from_slice(b"Content-Type: text/plain;charset=utf-8\r\n");
    }
    let _ = write!(out, "Content-Length: {}\r\n", body.len());
    match (keep, version) {
        (false, _) => out.extend_from_slice(b"Connection: close\r\n"),
        (true, 0) => out.extend_from_slice(b"Connection: keep-alive\r\n"),
        (true, _) => {}
    }
    out.extend_from_slice(b"\r\n");
    if !head_only {
        out.extend_from_slice(body.as_bytes());
    }
}

fn write_error(out: &mut Vec<u8>, e: &HttpError) {
    let a = Answer {
        status: e.status,
        message: Some(e.reason.to_string()),
        close: true,
    };
    write_answer(out, 1, &a, false, false);
}
