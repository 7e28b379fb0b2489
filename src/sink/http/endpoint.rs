//! The `endpoint` URL, taken apart as Java's `URL` and `HttpURLConnection` use it: where
//! to connect, the request target (path and query, `/` when empty; the fragment is never
//! sent) and the `Host` header (the port only when it is not the scheme's default), and
//! the fixed part of every request's head, built once.

/// A parsed `http://` endpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    /// The name or address to connect to (an IPv6 literal without its brackets).
    pub host: String,
    pub port: u16,
    /// Path and query as written.
    pub target: String,
    /// The `Host` header's value.
    pub host_header: String,
}

impl Endpoint {
    /// Parses `url`; the error says what is wrong in words for a `file:line: key` message.
    pub fn parse(url: &str) -> Result<Endpoint, String> {
        if let Some(c) = url.chars().find(|c| c.is_whitespace() || c.is_control()) {
            return Err(format!("'{url}' holds {c:?}, which a URL cannot"));
        }
        let Some((scheme, rest)) = url.split_once("://") else {
            return Err(format!(
                "'{url}' is not a URL (expected http://host[:port]/path)"
            ));
        };
        match scheme.to_ascii_lowercase().as_str() {
            "http" => {}
            "https" => {
                return Err(format!(
                    "'{url}': https is not supported yet by flume-fast's http sink (use http://)"
                ))
            }
            _ => return Err(format!("'{url}': the scheme must be http")),
        }
        let rest = rest.split('#').next().unwrap_or_default();
        let split = rest.find(['/', '?']).unwrap_or(rest.len());
        let (authority, target) = rest.split_at(split);
        let target = match target {
            "" => "/".to_string(),
            t if t.starts_with('?') => format!("/{t}"),
            t => t.to_string(),
        };
        // User information is never sent by HttpURLConnection: drop it as it does.
        let authority = authority.rsplit('@').next().unwrap_or_default();
        let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
            let Some((addr, after)) = v6.split_once(']') else {
                return Err(format!("'{url}': unclosed '[' in the host"));
            };
            match after {
                "" => (format!("[{addr}]"), None),
                p => match p.strip_prefix(':') {
                    Some(p) => (format!("[{addr}]"), Some(p)),
                    None => return Err(format!("'{url}': unexpected text after ']'")),
                },
            }
        } else {
            match authority.rsplit_once(':') {
                Some((h, p)) => (h.to_string(), Some(p)),
                None => (authority.to_string(), None),
            }
        };
        if host.is_empty() || host == "[]" {
            return Err(format!("'{url}' has no host"));
        }
        let port = match port {
            None | Some("") => None,
            Some(p) => Some(
                p.parse::<u16>()
                    .ok()
                    .filter(|&p| p != 0)
                    .ok_or_else(|| format!("'{url}': '{p}' is not a port"))?,
            ),
        };
        let host_header = match port {
            Some(p) if p != 80 => format!("{host}:{p}"),
            _ => host.clone(),
        };
        Ok(Endpoint {
            host: host
                .trim_start_matches('[')
                .trim_end_matches(']')
                .to_string(),
            port: port.unwrap_or(80),
            target,
            host_header,
        })
    }

    /// The head of every request up to (not including) `Content-Length`, in the order and
    /// spelling Java's `HttpURLConnection` writes for HttpSink's POST, with flume-fast as
    /// the agent.
    pub fn request_head(&self, content_type: &str, accept: &str) -> Vec<u8> {
        format!(
            "POST {} HTTP/1.1\r\nContent-Type: {content_type}\r\nAccept: {accept}\r\n\
             User-Agent: flume-fast/{}\r\nHost: {}\r\nConnection: keep-alive\r\n",
            self.target,
            env!("CARGO_PKG_VERSION"),
            self.host_header,
        )
        .into_bytes()
    }

    /// `host:port` for messages.
    pub fn authority(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ep(url: &str) -> Endpoint {
        Endpoint::parse(url).unwrap()
    }

    #[test]
    fn urls_come_apart_as_java_sends_them() {
        let e = ep("http://localhost:8080/some/uri?a=1#frag");
        assert_eq!(
            (
                e.host.as_str(),
                e.port,
                e.target.as_str(),
                e.host_header.as_str()
            ),
            ("localhost", 8080, "/some/uri?a=1", "localhost:8080")
        );
        let e = ep("HTTP://user:pw@example.com");
        assert_eq!((e.port, e.target.as_str()), (80, "/"));
        assert_eq!(e.host_header, "example.com");
        assert_eq!(ep("http://h:80/x").host_header, "h");
        assert_eq!(ep("http://h?q").target, "/?q");
        let e = ep("http://[::1]:9/");
        assert_eq!(
            (e.host.as_str(), e.host_header.as_str()),
            ("::1", "[::1]:9")
        );
        assert_eq!(e.authority(), "[::1]:9");
    }

    #[test]
    fn bad_urls_are_refused_with_the_reason() {
        for (url, why) in [
            ("localhost:8080/x", "not a URL"),
            ("https://h/", "https is not supported yet"),
            ("ftp://h/", "must be http"),
            ("http:///x", "no host"),
            ("http://h:99999/", "not a port"),
            ("http://h/a b", "cannot"),
            ("http://[::1/", "unclosed"),
        ] {
            let e = Endpoint::parse(url).unwrap_err();
            assert!(e.contains(why), "{url}: {e}");
        }
    }
}
