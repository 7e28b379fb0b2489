//! `flume-fast avro-client`: the `flume-ng avro-client` equivalent. Sends a file (or
//! stdin) to an avro source, one event per line (a line ends at `\n`, `\r\n` or `\r`, as
//! Java's `readLine`), every event carrying the headers of the `-R` properties file, in
//! `appendBatch` calls of `--batch-size` events. Exits non-zero when a batch is not
//! answered OK.

use super::ToolError;
use crate::avro_rpc::client::{ClientConn, ClientReply};
use crate::avro_rpc::conn::{self, Compression, Tls};
use crate::avro_rpc::protocol::Status;
use crate::event::{Event, Headers};
use bytes::{Bytes, BytesMut};
use std::io::{BufRead, BufReader, Read};
use std::path::PathBuf;
use std::time::Duration;

#[derive(Debug, Clone)]
pub struct AvroClientOptions {
    pub host: String,
    pub port: u16,
    pub file: Option<PathBuf>,
    pub header_file: Option<PathBuf>,
    pub batch_size: usize,
    pub compression: Compression,
    pub tls: Tls,
    pub timeout: Duration,
}

/// Reads the `-R` file: Java properties, every pair a header.
pub fn read_headers(path: &std::path::Path) -> Result<Headers, ToolError> {
    let f = std::fs::File::open(path)
        .map_err(|e| ToolError::Input(format!("{}: {e}", path.display())))?;
    let map = java_properties::read(BufReader::new(f))
        .map_err(|e| ToolError::Input(format!("{}: {e}", path.display())))?;
    let mut pairs: Vec<_> = map.into_iter().collect();
    pairs.sort();
    Ok(pairs.into_iter().collect())
}

/// Splits lines as `BufferedReader.readLine` does; `pending_cr` carries a `\r` seen at the
/// end of the previous chunk so a `\r\n` split across reads counts once.
struct Lines<R> {
    input: R,
    pending_cr: bool,
    done: bool,
}

impl<R: BufRead> Lines<R> {
    fn next_batch(&mut self, n: usize, headers: &Headers) -> Result<Vec<Event>, ToolError> {
        let mut out = Vec::with_capacity(n);
        let mut line = Vec::new();
        while out.len() < n && !self.done {
            line.clear();
            let read = self
                .input
                .read_until(b'\n', &mut line)
                .map_err(|e| ToolError::Input(e.to_string()))?;
            if read == 0 {
                self.done = true;
                break;
            }
            let mut body: &[u8] = &line;
            if self.pending_cr && body.first() == Some(&b'\n') {
                body = &body[1..];
                if body.is_empty() {
                    self.pending_cr = false;
                    continue;
                }
            }
            self.pending_cr = false;
            let ends_nl = body.last() == Some(&b'\n');
            if ends_nl {
                body = &body[..body.len() - 1];
            }
            // Every '\r' ends a line too; a trailing one may be the first half of "\r\n".
            let mut parts: Vec<&[u8]> = body.split(|&b| b == b'\r').collect();
            if !ends_nl && body.last() == Some(&b'\r') {
                self.pending_cr = true;
                parts.pop();
            } else if ends_nl && body.last() == Some(&b'\r') {
                // "\r\n": one terminator, not an empty line between.
                parts.pop();
            }
            for p in parts {
                out.push(Event::with_headers(
                    headers.clone(),
                    Bytes::copy_from_slice(p),
                ));
            }
        }
        Ok(out)
    }
}

pub fn run(opts: &AvroClientOptions) -> Result<u64, ToolError> {
    let headers = match &opts.header_file {
        Some(p) => read_headers(p)?,
        None => Headers::new(),
    };
    let input: Box<dyn Read> = match &opts.file {
        Some(p) => Box::new(
            std::fs::File::open(p)
                .map_err(|e| ToolError::Input(format!("{}: {e}", p.display())))?,
        ),
        None => Box::new(std::io::stdin()),
    };
    let mut lines = Lines {
        input: BufReader::with_capacity(1 << 16, input),
        pending_cr: false,
        done: false,
    };
    tokio_uring::start(async {
        let mut conn = conn::open(
            &opts.host,
            opts.port,
            opts.timeout,
            1 << 20,
            opts.compression,
            &opts.tls,
        )
        .await
        .map_err(|e| ToolError::Connect(format!("{}:{}: {e}", opts.host, opts.port)))?;
        let mut client = ClientConn::new(false);
        let mut buf = BytesMut::new();
        let mut sent = 0u64;
        loop {
            let batch = lines.next_batch(opts.batch_size, &headers)?;
            if batch.is_empty() {
                break;
            }
            let status = loop {
                client.encode_batch(&batch, &mut buf);
                buf = conn
                    .send(buf)
                    .await
                    .map_err(|e| ToolError::Rpc(e.to_string()))?;
                let reply = tokio::time::timeout(opts.timeout, conn.next())
                    .await
                    .map_err(|_| ToolError::Rpc(format!("no answer within {:?}", opts.timeout)))?
                    .map_err(|e| ToolError::Rpc(e.to_string()))?
                    .ok_or_else(|| ToolError::Rpc("the server closed the connection".into()))?;
                match client
                    .on_frame(&reply)
                    .map_err(|e| ToolError::Rpc(e.to_string()))?
                {
                    ClientReply::Status { status, .. } => break status,
                    ClientReply::Resend => continue,
                }
            };
            if status != Status::Ok {
                return Err(ToolError::Rpc(format!(
                    "the server answered {status:?} after {sent} events were delivered"
                )));
            }
            sent += batch.len() as u64;
        }
        Ok(sent)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bodies(input: &[u8], chunk: usize) -> Vec<String> {
        let mut l = Lines {
            input: BufReader::with_capacity(chunk.max(1), input),
            pending_cr: false,
            done: false,
        };
        let mut out = Vec::new();
        loop {
            let b = l.next_batch(3, &Headers::new()).unwrap();
            if b.is_empty() {
                return out;
            }
            out.extend(
                b.iter()
                    .map(|e| String::from_utf8_lossy(&e.body).into_owned()),
            );
        }
    }

    #[test]
    fn lines_end_like_java_readline() {
        for chunk in [1, 2, 3, 64] {
            assert_eq!(
                bodies(b"a\nb\r\nc\rd\n\ne", chunk),
                ["a", "b", "c", "d", "", "e"],
                "chunk {chunk}"
            );
            assert_eq!(bodies(b"x\r\n", chunk), ["x"]);
            assert_eq!(bodies(b"x\r", chunk), ["x"]);
        }
    }
}
