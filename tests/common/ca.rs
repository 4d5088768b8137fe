//! A certificate authority made by a test: a CA, a server certificate for 127.0.0.1/localhost and
//! client certificates, written as PEM files under the build's temporary folder. Self-contained so
//! that other test crates of the workspace (the load generator's) can include it by path.

use std::path::{Path, PathBuf};

use rustls::pki_types::{CertificateDer, PrivateKeyDer};

/// A certificate authority made for one test, with a server certificate for 127.0.0.1.
pub struct TestCa {
    pub dir: PathBuf,
    ca: rcgen::Issuer<'static, rcgen::KeyPair>,
    pub ca_der: CertificateDer<'static>,
}

impl TestCa {
    /// Makes a CA and writes `ca.crt`, `server.crt` and `server.key` into a fresh folder named
    /// `name` under the build's temporary folder.
    pub fn new(name: &str) -> TestCa {
        let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(name);
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, format!("{name} test CA"));
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = params.self_signed(&key).unwrap();
        std::fs::write(dir.join("ca.crt"), cert.pem()).unwrap();
        let ca_der = cert.der().clone();
        let ca = rcgen::Issuer::new(params, key);
        let t = TestCa { dir, ca, ca_der };
        t.write_server("server");
        t
    }

    /// Writes `<stem>.crt`/`<stem>.key`: a server certificate for localhost and 127.0.0.1.
    pub fn write_server(&self, stem: &str) {
        let params =
            rcgen::CertificateParams::new(vec!["localhost".into(), "127.0.0.1".into()]).unwrap();
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = params.signed_by(&key, &self.ca).unwrap();
        std::fs::write(self.dir.join(format!("{stem}.crt")), cert.pem()).unwrap();
        std::fs::write(self.dir.join(format!("{stem}.key")), key.serialize_pem()).unwrap();
    }

    /// A client certificate with subject CN `cn`, and its key (also written as `<cn>.crt/.key`).
    pub fn client(&self, cn: &str) -> (CertificateDer<'static>, PrivateKeyDer<'static>) {
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, cn);
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = params.signed_by(&key, &self.ca).unwrap();
        std::fs::write(self.dir.join(format!("{cn}.crt")), cert.pem()).unwrap();
        std::fs::write(self.dir.join(format!("{cn}.key")), key.serialize_pem()).unwrap();
        let der = PrivateKeyDer::try_from(key.serialize_der()).unwrap();
        (cert.der().clone(), der)
    }

    pub fn path(&self, file: &str) -> String {
        self.dir.join(file).display().to_string()
    }
}
