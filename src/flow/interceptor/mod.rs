//! Interceptors: per-source event transformations applied to a whole batch before the
//! channel selector, in the order the source's `interceptors` key lists them. One file per
//! type and one `register` line in `TYPES`; a type implements `Component` (its keys) and
//! `Interceptor` (one call per batch, never per event).

mod host;
pub mod java_regex;
mod joda;
mod regex_extractor;
mod regex_filter;
mod remove_header;
mod search_replace;
mod static_header;
mod timestamp;
mod uuid;

pub use host::Host;
pub use java_regex::JavaRegex;
pub use regex_extractor::RegexExtractor;
pub use regex_filter::RegexFilter;
pub use remove_header::RemoveHeader;
pub use search_replace::SearchReplace;
pub use static_header::Static;
pub use timestamp::Timestamp;
pub use uuid::Uuid;

use crate::config::keys::{Keys, Resolved};
use crate::config::{AsAny, Component, ConfigError, Loc, Prop, Registration};
use crate::event::Event;
use std::collections::BTreeMap;
use std::sync::Arc;

/// The interceptor types, one line each.
pub static TYPES: &[Registration<Arc<dyn Interceptor>>] = &[
    register::<Timestamp>(),
    register::<Host>(),
    register::<Static>(),
    register::<RemoveHeader>(),
    register::<RegexFilter>(),
    register::<RegexExtractor>(),
    register::<SearchReplace>(),
    register::<Uuid>(),
];

/// An interceptor type's typed configuration, which is also what runs.
pub trait Interceptor: AsAny + std::fmt::Debug + Send + Sync {
    /// Applies this interceptor to a whole batch; `now_ms` is read once per batch.
    fn apply(&self, events: &mut Vec<Event>, now_ms: u64);
}

/// The registry line of interceptor type `T`.
pub const fn register<T: Component + Interceptor>() -> Registration<Arc<dyn Interceptor>> {
    Registration {
        info: T::TYPE,
        build: build::<T>,
    }
}

fn build<T: Component + Interceptor>(k: &mut Keys) -> Result<Arc<dyn Interceptor>, ConfigError> {
    Ok(Arc::new(T::from_keys(k)?))
}

/// Sets `name: value` on every event (keeping a value already set when `preserve`). The
/// header strings are made once per batch and shared by the events.
fn set_header(events: &mut [Event], name: &str, value: &str, preserve: bool) {
    let name = bytestring::ByteString::from(name);
    let value = bytestring::ByteString::from(value);
    for e in events.iter_mut() {
        if preserve {
            e.headers.set_if_absent(name.clone(), value.clone());
        } else {
            e.headers.set(name.clone(), value.clone());
        }
    }
}

/// Builds the source's interceptor chain from `interceptors` and `interceptors.<name>.*`.
pub fn configure(
    source: &str,
    prefix: &str,
    props: &BTreeMap<String, Prop>,
    decl: Loc,
    warnings: &mut Vec<String>,
    resolved: &mut Vec<Resolved>,
) -> Result<Vec<Arc<dyn Interceptor>>, ConfigError> {
    let Some(list) = props.get("interceptors") else {
        return Ok(Vec::new());
    };
    let mut out = Vec::new();
    for name in list.value.split_whitespace() {
        let sub = crate::config::sub_props(props, &format!("interceptors.{name}"));
        let Some(ty) = sub.get("type") else {
            return Err(ConfigError::Key {
                loc: list.loc.clone(),
                key: list.key.clone(),
                msg: format!(
                    "interceptor '{name}' of source '{source}' has no interceptors.{name}.type"
                ),
            });
        };
        let reg = TYPES
            .iter()
            .find(|t| t.info.matches(ty.value.trim()))
            .ok_or_else(|| ConfigError::Key {
                loc: ty.loc.clone(),
                key: ty.key.clone(),
                msg: crate::config::registry::unknown_type(
                    "interceptor",
                    ty.value.trim(),
                    &TYPES.iter().map(|t| t.info.name()).collect::<Vec<_>>(),
                ),
            })?;
        let label = format!("interceptor '{name}' of source '{source}'");
        let mut k = Keys::new(
            &label,
            &format!("{prefix}.interceptors.{name}"),
            reg.info.keys,
            &sub,
            decl.clone(),
        );
        let cfg = (reg.build)(&mut k)?;
        warnings.extend(k.unknown_keys(&["type"]));
        resolved.extend(k.resolved.into_iter().map(|mut r| {
            r.key = format!("interceptors.{name}.{}", r.key);
            r
        }));
        out.push(cfg);
    }
    Ok(out)
}

/// Builds an interceptor of type `T` from `key = value` pairs, for the types' tests.
#[cfg(test)]
pub(crate) fn from_pairs<T: Component>(kv: &[(&str, &str)]) -> Result<T, ConfigError> {
    crate::config::keys::from_pairs("a1.sources.r1.interceptors.i1", kv)
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    #[test]
    fn chain_applies_in_order() {
        let mut evs = vec![
            Event::new(Bytes::from_static(b"keep me")),
            Event::new(Bytes::from_static(b"drop")),
        ];
        let chain: [Arc<dyn Interceptor>; 4] = [
            Arc::new(Static {
                key: "dc".into(),
                value: "eu".into(),
                preserve_existing: true,
            }),
            Arc::new(Timestamp {
                header: "timestamp".into(),
                preserve_existing: false,
            }),
            Arc::new(RegexFilter {
                regex: JavaRegex::new("^drop$").unwrap(),
                exclude: true,
            }),
            Arc::new(RemoveHeader {
                names: vec!["dc".into()],
                matching: None,
            }),
        ];
        for i in &chain {
            i.apply(&mut evs, 1234);
        }
        assert_eq!(evs.len(), 1);
        assert_eq!(evs[0].headers.to_string(), "{timestamp=1234}");
    }
}
