//! `initial_directory`: what an empty database gets on first start.

use std::path::PathBuf;

use super::ConfigError;

/// What to load into an empty database on first start.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InitialDirectory {
    /// `deploy/directory.sample.json`, built into the binary.
    Sample,
    None,
    File(PathBuf),
}

impl InitialDirectory {
    pub(super) fn parse(raw: &str) -> Result<Self, ConfigError> {
        match raw.trim() {
            "sample" => Ok(Self::Sample),
            "none" => Ok(Self::None),
            "" => Err(ConfigError::invalid(
                "initial_directory",
                "use sample, none or a file path",
            )),
            path => Ok(Self::File(PathBuf::from(path))),
        }
    }
}
