//! The http sink (`http`, `org.apache.flume.sink.http.HttpSink`): POSTs each event's body
//! to `endpoint`, one event per request and per take, as Flume's HttpSink does. What
//! becomes of the take — commit or roll back, back off or go on, count as drained or not —
//! follows the answer's status through `rollback.CODE`, `backoff.CODE` and
//! `incrementMetrics.CODE` (an exact code before its class, `5XX`), else the `default*`
//! keys; a 2XX without a key of its own commits. No answer (refused, broken, timed out,
//! malformed) rolls back and backs off.

pub mod client;
pub mod endpoint;
pub mod response;

use super::{LocalBoxFuture, ShardSink, SinkError, SinkType, Verdict};
use crate::config::keys::{KeyKind, KeySpec, Keys, TypeInfo};
use crate::config::{Component, ConfigError};
use crate::event::Event;
use client::Client;
use endpoint::Endpoint;
use std::collections::HashMap;
use std::time::Duration;
use tokio::time::Instant;

const KEYS: &[KeySpec] = &[
    KeySpec::required("endpoint", KeyKind::Str, "The http:// URL to POST each event's body to"),
    KeySpec::new("connectTimeout", KeyKind::POSITIVE, Some("5000"), "Milliseconds to wait for the connection"),
    KeySpec::new(
        "requestTimeout",
        KeyKind::POSITIVE,
        Some("5000"),
        "Milliseconds to wait for the answer's status, from the request's first byte",
    ),
    KeySpec::new("contentTypeHeader", KeyKind::Str, Some("text/plain"), "The Content-Type header of each request"),
    KeySpec::new("acceptHeader", KeyKind::Str, Some("text/plain"), "The Accept header of each request"),
    KeySpec::new(
        "defaultBackoff",
        KeyKind::Bool,
        Some("true"),
        "Back off after a status without a backoff.CODE key (a 2XX without one never backs off)",
    ),
    KeySpec::new(
        "defaultRollback",
        KeyKind::Bool,
        Some("true"),
        "Roll the event back (send it again) after a status without a rollback.CODE key (a 2XX without one commits)",
    ),
    KeySpec::new(
        "defaultIncrementMetrics",
        KeyKind::Bool,
        Some("false"),
        "Count the event as drained after a status without an incrementMetrics.CODE key (a 2XX without one counts)",
    ),
    KeySpec::new("backoff.*", KeyKind::Prefix, None, "backoff.CODE = true|false for a status (503) or a class (5XX)"),
    KeySpec::new("rollback.*", KeyKind::Prefix, None, "rollback.CODE = true|false for a status (503) or a class (5XX)"),
    KeySpec::new(
        "incrementMetrics.*",
        KeyKind::Prefix,
        None,
        "incrementMetrics.CODE = true|false for a status (503) or a class (5XX)",
    ),
];

pub const TYPE: TypeInfo = TypeInfo {
    aliases: &["http"],
    class: "org.apache.flume.sink.http.HttpSink",
    doc: "POSTs each event's body to an HTTP endpoint, one event per request; the status decides commit, rollback and back-off.",
    keys: KEYS,
};

/// One of the three per-status settings: overrides by code ("503") or class ("5XX").
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ByStatus {
    codes: HashMap<String, bool>,
}

impl ByStatus {
    fn from_keys(k: &mut Keys, family: &str) -> Result<Self, ConfigError> {
        let mut codes = HashMap::new();
        for (code, p) in k.prefixed(family) {
            let bad = |msg: String| ConfigError::Key {
                loc: p.loc.clone(),
                key: p.key.clone(),
                msg,
            };
            let b = code.as_bytes();
            let valid = b.len() == 3
                && (b'1'..=b'9').contains(&b[0])
                && (b[1..].iter().all(u8::is_ascii_digit) || &b[1..] == b"XX");
            if !valid {
                return Err(bad(format!(
                    "'{code}' is not a status code (like 503) or class (like 5XX, upper case as Flume matches it)"
                )));
            }
            let v = match p.value.trim().to_ascii_lowercase().as_str() {
                "true" => true,
                "false" => false,
                _ => {
                    return Err(bad(format!(
                        "expected true or false, found '{}'",
                        p.value.trim()
                    )))
                }
            };
            codes.insert(code, v);
        }
        Ok(ByStatus { codes })
    }

    /// The setting for `status`: its code's, else its class's, as Flume's
    /// `findOverrideValue`; `None` when neither is set.
    pub fn get(&self, status: u16) -> Option<bool> {
        let code = status.to_string();
        self.codes
            .get(&code)
            .or_else(|| self.codes.get(&format!("{}XX", &code[..1])))
            .copied()
    }
}

#[derive(Debug, Clone)]
pub struct HttpSinkConfig {
    pub endpoint: Endpoint,
    pub connect_timeout: Duration,
    pub request_timeout: Duration,
    pub content_type: String,
    pub accept: String,
    pub default_backoff: bool,
    pub default_rollback: bool,
    pub default_increment_metrics: bool,
    pub backoff: ByStatus,
    pub rollback: ByStatus,
    pub increment_metrics: ByStatus,
}

/// What a status makes of the take.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Decision {
    pub rollback: bool,
    pub backoff: bool,
    pub count: bool,
}

impl HttpSinkConfig {
    /// The decision for a status the server answered, as Flume's `HttpSink.process`, except
    /// that a 2XX without a key of its own (code or class) commits, goes on and counts: with
    /// Flume's defaults every 2XX is rolled back and sent again for ever.
    pub fn decide(&self, status: u16) -> Decision {
        let ok = (200..300).contains(&status);
        Decision {
            rollback: self
                .rollback
                .get(status)
                .unwrap_or(!ok && self.default_rollback),
            backoff: self
                .backoff
                .get(status)
                .unwrap_or(!ok && self.default_backoff),
            count: self
                .increment_metrics
                .get(status)
                .unwrap_or(ok || self.default_increment_metrics),
        }
    }
}

impl Component for HttpSinkConfig {
    const TYPE: TypeInfo = TYPE;

    fn from_keys(k: &mut Keys) -> Result<Self, ConfigError> {
        let url = k.str("endpoint")?;
        let endpoint = Endpoint::parse(&url).map_err(|e| k.invalid("endpoint", e))?;
        let connect_timeout = k.millis("connectTimeout")?;
        let request_timeout = k.millis("requestTimeout")?;
        let header = |k: &mut Keys, key: &str| -> Result<String, ConfigError> {
            let v = k.str(key)?;
            if v.chars().any(|c| c.is_control()) {
                return Err(k.invalid(key, "a header value cannot hold control characters"));
            }
            Ok(v)
        };
        let content_type = header(k, "contentTypeHeader")?;
        let accept = header(k, "acceptHeader")?;
        Ok(HttpSinkConfig {
            endpoint,
            connect_timeout,
            request_timeout,
            content_type,
            accept,
            default_backoff: k.bool("defaultBackoff")?,
            default_rollback: k.bool("defaultRollback")?,
            default_increment_metrics: k.bool("defaultIncrementMetrics")?,
            backoff: ByStatus::from_keys(k, "backoff")?,
            rollback: ByStatus::from_keys(k, "rollback")?,
            increment_metrics: ByStatus::from_keys(k, "incrementMetrics")?,
        })
    }
}

impl SinkType for HttpSinkConfig {
    /// One event per take, as Flume: the status decides about exactly that event.
    fn batch_size(&self) -> usize {
        1
    }

    /// Connects on the first event, so an endpoint that is down does not stop the agent.
    fn open(&self, _: &str, _: usize, _: usize) -> Result<Box<dyn ShardSink>, SinkError> {
        let head = self.endpoint.request_head(&self.content_type, &self.accept);
        Ok(Box::new(HttpSink {
            client: Client::new(
                self.endpoint.clone(),
                head,
                self.connect_timeout,
                self.request_timeout,
            ),
            cfg: self.clone(),
        }))
    }
}

pub struct HttpSink {
    cfg: HttpSinkConfig,
    client: Client,
}

impl HttpSink {
    async fn send(&mut self, events: &[Event]) -> Result<(), SinkError> {
        // The runner takes one event (batch_size 1); Flume commits an empty body unsent.
        let Some(event) = events.first().filter(|e| !e.body.is_empty()) else {
            return Err(SinkError::Verdict(Verdict {
                commit: true,
                backoff: false,
                count: false,
                reason: "an event with an empty body is dropped unsent, as Flume does".into(),
            }));
        };
        let status = self
            .client
            .post(&event.body)
            .await
            .map_err(SinkError::other)?;
        let d = self.cfg.decide(status);
        if !d.rollback && !d.backoff && d.count {
            return Ok(());
        }
        let what = if d.rollback {
            "rolled back to be sent again"
        } else {
            "committed"
        };
        Err(SinkError::Verdict(Verdict {
            commit: !d.rollback,
            backoff: d.backoff,
            count: d.count,
            reason: format!(
                "{} answered status {status}: the event was {what}",
                self.cfg.endpoint.authority()
            ),
        }))
    }
}

impl ShardSink for HttpSink {
    fn process<'a>(&'a mut self, events: &'a [Event]) -> LocalBoxFuture<'a, Result<(), SinkError>> {
        Box::pin(self.send(events))
    }

    /// Nothing is time-driven: the connection is reused or replaced when an event comes.
    fn next_tick(&self) -> Option<Instant> {
        None
    }

    fn tick(&mut self) -> LocalBoxFuture<'_, ()> {
        Box::pin(std::future::ready(()))
    }

    fn close(&mut self) -> LocalBoxFuture<'_, ()> {
        if self.client.opened > 0 {
            tracing::debug!(
                "http sink to {}: {} connection(s) opened",
                self.cfg.endpoint.authority(),
                self.client.opened
            );
        }
        self.client.close();
        Box::pin(std::future::ready(()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::keys::from_pairs;

    fn cfg(pairs: &[(&str, &str)]) -> Result<HttpSinkConfig, ConfigError> {
        let mut all = vec![("endpoint", "http://localhost:8080/x")];
        all.extend_from_slice(pairs);
        from_pairs::<HttpSinkConfig>("a.sinks.k", &all)
    }

    fn d(rollback: bool, backoff: bool, count: bool) -> Decision {
        Decision {
            rollback,
            backoff,
            count,
        }
    }

    #[test]
    fn defaults_are_flumes_and_a_2xx_without_keys_commits() {
        let c = cfg(&[]).unwrap();
        assert_eq!(c.connect_timeout, Duration::from_millis(5000));
        assert_eq!(c.request_timeout, Duration::from_millis(5000));
        assert_eq!(
            (c.content_type.as_str(), c.accept.as_str()),
            ("text/plain", "text/plain")
        );
        assert_eq!(c.decide(200), d(false, false, true));
        assert_eq!(c.decide(204), d(false, false, true));
        assert_eq!(c.decide(503), d(true, true, false));
        assert_eq!(c.decide(404), d(true, true, false));
        assert_eq!(c.decide(302), d(true, true, false));
    }

    #[test]
    fn an_exact_code_wins_over_its_class_and_the_class_over_the_default() {
        let c = cfg(&[
            ("rollback.5XX", "false"),
            ("rollback.503", "true"),
            ("backoff.4XX", "false"),
            ("incrementMetrics.4XX", "true"),
            ("rollback.2XX", "true"),
            ("backoff.200", "false"),
            ("defaultRollback", "false"),
        ])
        .unwrap();
        assert_eq!(c.decide(503), d(true, true, false));
        assert_eq!(c.decide(500), d(false, true, false));
        assert_eq!(c.decide(404), d(false, false, true));
        assert_eq!(c.decide(200), d(true, false, true));
        assert_eq!(c.decide(201), d(true, false, true));
        assert_eq!(c.decide(302), d(false, true, false));
    }

    #[test]
    fn bad_codes_values_and_urls_name_their_line_and_key() {
        for (pairs, line, key, why) in [
            (
                vec![("rollback.5xx", "false")],
                11,
                "a.sinks.k.rollback.5xx",
                "upper case",
            ),
            (
                vec![("backoff.50", "false")],
                11,
                "a.sinks.k.backoff.50",
                "not a status",
            ),
            (
                vec![("incrementMetrics.503", "yes")],
                11,
                "a.sinks.k.incrementMetrics.503",
                "true or false",
            ),
            (
                vec![("requestTimeout", "0")],
                11,
                "a.sinks.k.requestTimeout",
                "at least 1",
            ),
            (
                vec![("acceptHeader", "a\u{1}b")],
                11,
                "a.sinks.k.acceptHeader",
                "control",
            ),
        ] {
            let e = cfg(&pairs).unwrap_err().to_string();
            assert!(e.contains(&format!("a.conf:{line}: {key}")), "{e}");
            assert!(e.contains(why), "{e}");
        }
        let e = from_pairs::<HttpSinkConfig>("a.sinks.k", &[("endpoint", "https://h/")])
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("a.conf:10: a.sinks.k.endpoint") && e.contains("https is not supported yet"),
            "{e}"
        );
    }
}
