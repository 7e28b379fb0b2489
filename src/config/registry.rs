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
