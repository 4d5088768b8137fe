//! The network part of the config file: TLS listeners and the metrics endpoint.

use std::net::SocketAddr;
use std::path::Path;

use super::file::FileConfig;
use super::load::{Errors, KeyPath};
use super::{Config, TlsFiles, TlsListener};

/// Maps the `[[listen]]` entries that carry `tls` onto `config.tls_listen` and `[metrics]` onto
/// `config.metrics`. Relative paths are taken from `base_dir` (the config file's folder); a
/// certificate file that cannot be read is reported at its key now rather than at the first TLS
/// client. Plain TCP and Unix entries, and malformed addresses, are the general loader's.
pub fn apply(file: &FileConfig, base_dir: &Path, config: &mut Config, errors: &mut Errors<'_, '_>) {
    let listen = KeyPath::default().key("listen");
    for (i, l) in file.listen.iter().enumerate() {
        let (Some(tls), Some(address)) = (&l.tls, &l.address) else {
            continue;
        };
        let Ok(addr) = address.parse::<SocketAddr>() else {
            continue; // reported by the general loader
        };
        let path = listen.index(i).key("tls");
        let mut file_at = |name: &'static str, p: &Path| {
            let full = base_dir.join(p);
            if let Err(e) = std::fs::metadata(&full) {
                errors.at(&path.key(name), format!("{}: {e}", full.display()));
            }
            full
        };
        let files = TlsFiles {
            cert: file_at("cert", &tls.cert),
            key: file_at("key", &tls.key),
            client_ca: tls.client_ca.as_deref().map(|p| file_at("client_ca", p)),
        };
        config.tls_listen.push(TlsListener { addr, files });
    }
    if let Some(m) = &file.metrics {
        match m.listen.parse() {
            Ok(a) => config.metrics = Some(a),
            Err(_) => errors.at(
                &KeyPath::default().key("metrics").key("listen"),
                format!("{:?} is not an address (expected IP:PORT)", m.listen),
            ),
        }
    }
}
