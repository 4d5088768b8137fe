//! The network part of the config file: TLS listeners and the metrics endpoint.

use std::path::Path;

use super::file::FileConfig;
use super::{Config, TlsFiles, TlsListener};

/// Maps the `[[listen]]` entries that carry `tls` onto `config.tls_listen` and `[metrics]` onto
/// `config.metrics`. Relative paths are taken from `base_dir` (the config file's folder). Each
/// problem is pushed onto `errors` naming its key, so that one pass reports all of them. Plain
/// TCP and Unix entries are left to the general loader.
pub fn apply(file: &FileConfig, base_dir: &Path, config: &mut Config, errors: &mut Vec<String>) {
    for (i, listen) in file.listen.iter().enumerate() {
        let Some(tls) = &listen.tls else { continue };
        let key = format!("listen[{i}]");
        let Some(address) = &listen.address else {
            errors.push(format!("{key}.tls: TLS needs a TCP `address`"));
            continue;
        };
        let addr = match address.parse() {
            Ok(a) => a,
            Err(e) => {
                errors.push(format!("{key}.address: {address:?} is not host:port ({e})"));
                continue;
            }
        };
        let mut file_at = |name: &str, p: &Path| {
            let path = base_dir.join(p);
            if let Err(e) = std::fs::metadata(&path) {
                errors.push(format!("{key}.tls.{name}: {}: {e}", path.display()));
            }
            path
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
            Err(e) => errors.push(format!(
                "metrics.listen: {:?} is not host:port ({e})",
                m.listen
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> FileConfig {
        toml::from_str(text).expect("valid toml")
    }

    #[test]
    fn tls_listeners_and_metrics_are_mapped_relative_to_the_file() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR"));
        let file = parse(
            r#"
            [[listen]]
            address = "127.0.0.1:18443"
            tls = { cert = "Cargo.toml", key = "Cargo.lock", client_ca = "README.md" }
            [[listen]]
            address = "127.0.0.1:18080"
            [metrics]
            listen = "127.0.0.1:19100"
            "#,
        );
        let (mut config, mut errors) = (Config::default(), Vec::new());
        apply(&file, dir, &mut config, &mut errors);
        assert!(errors.is_empty(), "{errors:?}");
        assert_eq!(config.tls_listen.len(), 1);
        let t = &config.tls_listen[0];
        assert_eq!(t.addr, "127.0.0.1:18443".parse().unwrap());
        assert_eq!(t.files.cert, dir.join("Cargo.toml"));
        assert_eq!(t.files.client_ca, Some(dir.join("README.md")));
        assert_eq!(config.metrics, Some("127.0.0.1:19100".parse().unwrap()));
    }

    #[test]
    fn each_problem_names_its_key() {
        let file = parse(
            r#"
            [[listen]]
            unix = "/nowhere.sock"
            tls = { cert = "a.crt", key = "a.key" }
            [[listen]]
            address = "localhost"
            tls = { cert = "a.crt", key = "a.key" }
            [[listen]]
            address = "127.0.0.1:18443"
            tls = { cert = "missing.crt", key = "Cargo.toml" }
            [metrics]
            listen = "nine"
            "#,
        );
        let dir = Path::new(env!("CARGO_MANIFEST_DIR"));
        let (mut config, mut errors) = (Config::default(), Vec::new());
        apply(&file, dir, &mut config, &mut errors);
        let joined = errors.join("\n");
        assert_eq!(errors.len(), 4, "{joined}");
        for key in [
            "listen[0].tls",
            "listen[1].address",
            "listen[2].tls.cert",
            "metrics.listen",
        ] {
            assert!(joined.contains(key), "{key} missing from {joined}");
        }
        assert!(config.metrics.is_none());
    }
}
