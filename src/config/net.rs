//! TLS listeners and the metrics endpoint from the configuration file.
//!
//! Placeholder until TLS and metrics exist: a file that asks for either is refused with an error at
//! the key, rather than silently serving plain TCP or no metrics.

use std::path::Path;

use super::file::FileConfig;
use super::load::{Errors, KeyPath};
use super::Config;

/// Applies `[[listen]] tls` entries and `[metrics]` to `config`, recording what cannot be served.
pub fn apply(
    file: &FileConfig,
    _base_dir: &Path,
    _config: &mut Config,
    errors: &mut Errors<'_, '_>,
) {
    let listen = KeyPath::default().key("listen");
    for (i, l) in file.listen.iter().enumerate() {
        if l.tls.is_some() && l.address.is_some() {
            errors.at(
                &listen.index(i).key("tls"),
                "TLS listeners are not supported yet",
            );
        }
    }
    if file.metrics.is_some() {
        errors.at(
            &KeyPath::default().key("metrics"),
            "the metrics endpoint is not supported yet",
        );
    }
}
