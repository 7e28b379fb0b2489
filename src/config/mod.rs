//! Flume configuration: the `.properties` reader, the declared key tables, and the agent
//! model (sources → channels → sinks) built and validated from them. `load` is the one
//! entry point; everything it returns is typed, defaulted and checked.

mod agent;
pub(crate) use agent::sub_props;
pub mod file;
pub mod keys;
pub mod properties;
pub mod registry;
pub mod render;

pub use agent::{
    AgentConfig, ChannelConfig, ComponentKind, SinkConfig, SinkGroupConfig, SourceConfig,
};
pub use keys::{KeyKind, KeySpec, Keys, Resolved, TypeInfo};
pub use properties::{Prop, Substitutions};
pub use registry::{AsAny, Component, Registration};

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// A place in a config file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Loc {
    pub file: Arc<Path>,
    pub line: u32,
}

impl fmt::Display for Loc {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.file.display(), self.line)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{path}: cannot read configuration: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{loc}: syntax error: {msg}")]
    Syntax { loc: Loc, msg: String },
    #[error("{loc}: {key}: {msg}")]
    Key { loc: Loc, key: String, msg: String },
    #[error("{file}: {msg}")]
    Agent { file: PathBuf, msg: String },
}

/// Reads `path`, substitutes `${...}`, and builds the named agent (or the only one).
pub fn load(
    path: &Path,
    agent: Option<&str>,
    subs: &Substitutions,
) -> Result<AgentConfig, ConfigError> {
    let read_err = |source| ConfigError::Read {
        path: path.to_path_buf(),
        source,
    };
    let bytes = file::read_regular(path, file::MAX_CONFIG_BYTES).map_err(read_err)?;
    let text = String::from_utf8(bytes).map_err(|e| {
        read_err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("not UTF-8 text (byte {})", e.utf8_error().valid_up_to()),
        ))
    })?;
    load_str(path, &text, agent, subs)
}

/// As `load`, from text already read (tests and fuzzing use this).
pub fn load_str(
    path: &Path,
    text: &str,
    agent: Option<&str>,
    subs: &Substitutions,
) -> Result<AgentConfig, ConfigError> {
    let mut props = properties::parse(path, text)?;
    properties::substitute(&mut props, subs)?;
    agent::build(path, &props, agent)
}

#[cfg(test)]
mod tests;
