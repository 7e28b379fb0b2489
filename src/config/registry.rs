//! What every component type declares once, next to its code: its key table and how its
//! typed configuration is built from those keys. A family's registry is a slice of
//! `Registration`s, one line per type, so a registered type cannot lack its builder.

use super::keys::{Keys, TypeInfo};
use super::ConfigError;
use std::any::Any;

/// A component type's typed configuration: its declared keys (names, aliases, Java class,
/// key table) and its construction from them, both checked when the agent's file loads.
pub trait Component: Sized {
    const TYPE: TypeInfo;
    fn from_keys(k: &mut Keys) -> Result<Self, ConfigError>;
}

/// One line of a family's registry: a type's declaration and the builder that turns its
/// keys into what the family runs (`K`: a boxed trait object or an enum).
pub struct Registration<K> {
    pub info: TypeInfo,
    pub build: fn(&mut Keys) -> Result<K, ConfigError>,
}

/// The declarations of a registry, for `describe` and the docs.
pub fn infos<K>(registry: &'static [Registration<K>]) -> Vec<&'static TypeInfo> {
    registry.iter().map(|r| &r.info).collect()
}

/// Lets a family's trait objects be looked at as their concrete config (tests, `describe`
/// of a loaded agent) without each type writing it. Only for components: a blanket impl
/// for every `Any` would also cover `Arc<dyn SourceType>`, and `kind.as_any()` would
/// then see the `Arc`, not the config inside.
pub trait AsAny: Any {
    fn as_any(&self) -> &dyn Any;
}

impl<T: Component + Any> AsAny for T {
    fn as_any(&self) -> &dyn Any {
        self
    }
}

/// What an unknown `type` value of a `kind` (`source`, `interceptor`, ...) gets: the
/// built-in types, and for a Java class name (a custom component or a plugin from
/// `plugins.d`) that flume-fast cannot load one, since it runs no JVM; for a short name,
/// the closest built-in one when it is a likely typo.
pub fn unknown_type(kind: &str, value: &str, known: &[&str]) -> String {
    let list = known.join(", ");
    if value.contains('.') {
        return format!(
            "unknown {kind} type '{value}': a Java class that is not one of flume-fast's built-in \
             {kind} types (custom components and plugins.d classes cannot be loaded: flume-fast \
             runs no JVM); built in: {list}, each also by its Flume class name"
        );
    }
    match super::keys::closest(value, known.iter().copied()) {
        Some(k) => {
            format!("unknown {kind} type '{value}' (did you mean '{k}'? flume-fast knows: {list})")
        }
        None => format!("unknown {kind} type '{value}' (flume-fast knows: {list})"),
    }
}
