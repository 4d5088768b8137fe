//! TLS on a connection: rustls over monoio's owned-buffer IO. The router accepts with it; the
//! load generator connects with the same halves, so both ends of a TLS benchmark run one code path.
//!
//! A connection is a reader task and a writer task (see [`crate::link`]), so the TLS state is shared
//! by a read half and a write half on one thread. Neither half holds the state across an await: the
//! reader decrypts what it has and only then waits for the socket, the writer encrypts into its own
//! buffer and only then writes. The handshake runs before the split, fed with the bytes that were
//! already read to tell TLS from plain traffic, so nothing read for sniffing is lost.

use std::cell::RefCell;
use std::io::{self, Read, Write};
use std::path::Path;
use std::rc::Rc;
use std::sync::{Arc, RwLock};

use bytes::{Buf, BytesMut};
use monoio::buf::{IoBuf, IoBufMut, IoVecBuf, IoVecBufMut};
use monoio::io::{AsyncReadRent, AsyncWriteRent, AsyncWriteRentExt};
use monoio::BufResult;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;
use rustls::{ClientConnection, Connection, ServerConfig, ServerConnection};

use crate::config::TlsFiles;
use crate::transport::TlsInfo;

/// First byte of a TLS record carrying a handshake message (the ClientHello).
pub const HANDSHAKE_RECORD: u8 = 0x16;

/// Largest ciphertext read from the socket at once (one TLS record plus header is ~16.7 KiB).
const CIPHER_READ: usize = 32 * 1024;

/// Label of the `tls-exporter` channel binding (RFC 9266).
const EXPORTER_LABEL: &[u8] = b"EXPORTER-Channel-Binding";

/// A listener's TLS settings, swappable while it serves: each accept reads the current one, so
/// a reload changes what new connections get and leaves established ones alone.
pub struct TlsContext {
    files: TlsFiles,
    current: RwLock<Arc<ServerConfig>>,
}

impl TlsContext {
    /// Loads the files; an error names the file that could not be used.
    pub fn load(files: TlsFiles) -> Result<TlsContext, String> {
        let config = server_config(&files)?;
        Ok(TlsContext {
            files,
            current: RwLock::new(config),
        })
    }

    /// Reads the files again and serves new connections with them; on error the old settings
    /// stay in force.
    pub fn reload(&self) -> Result<(), String> {
        let config = server_config(&self.files)?;
        *self.current.write().unwrap_or_else(|e| e.into_inner()) = config;
        Ok(())
    }

    /// The settings for a connection accepted now.
    pub fn current(&self) -> Arc<ServerConfig> {
        self.current
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }
}

fn read_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, String> {
    let certs = CertificateDer::pem_file_iter(path)
        .and_then(|it| it.collect::<Result<Vec<_>, _>>())
        .map_err(|e| format!("{}: {e}", path.display()))?;
    if certs.is_empty() {
        return Err(format!("{}: no certificate in it", path.display()));
    }
    Ok(certs)
}

/// Builds rustls server settings from PEM files (ring as the crypto provider: no C toolchain
/// beyond what ring needs, and the same provider in every build).
pub fn server_config(files: &TlsFiles) -> Result<Arc<ServerConfig>, String> {
    let certs = read_certs(&files.cert)?;
    let key = PrivateKeyDer::from_pem_file(&files.key)
        .map_err(|e| format!("{}: {e}", files.key.display()))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?;
    let builder = match &files.client_ca {
        None => builder.with_no_client_auth(),
        Some(ca) => {
            let mut roots = rustls::RootCertStore::empty();
            for c in read_certs(ca)? {
                roots.add(c).map_err(|e| format!("{}: {e}", ca.display()))?;
            }
            let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
                .allow_unauthenticated()
                .build()
                .map_err(|e| format!("{}: {e}", ca.display()))?;
            builder.with_client_cert_verifier(verifier)
        }
    };
    let config = builder
        .with_single_cert(certs, key)
        .map_err(|e| format!("{} / {}: {e}", files.cert.display(), files.key.display()))?;
    Ok(Arc::new(config))
}

type Session = Rc<RefCell<Connection>>;

/// The reading half of a TLS connection: yields plaintext.
pub struct TlsRead<R> {
    io: R,
    conn: Session,
    /// Ciphertext read from the socket and not yet handed to rustls.
    pending: BytesMut,
}

/// The writing half of a TLS connection: takes plaintext.
pub struct TlsWrite<W> {
    io: W,
    conn: Session,
    out: Vec<u8>,
}

fn tls_error(e: rustls::Error) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, e)
}

impl<R: AsyncReadRent> TlsRead<R> {
    /// Reads ciphertext into `pending`; false at end of stream.
    async fn fill(&mut self) -> io::Result<bool> {
        let mut buf = std::mem::take(&mut self.pending);
        buf.reserve(CIPHER_READ);
        let (len, cap) = (buf.len(), buf.capacity());
        let (res, slice) = self.io.read(buf.slice_mut(len..cap)).await;
        self.pending = slice.into_inner();
        Ok(res? > 0)
    }

    /// Hands buffered ciphertext to rustls; false if there was none.
    fn feed(&mut self) -> io::Result<bool> {
        if self.pending.is_empty() {
            return Ok(false);
        }
        let mut conn = self.conn.borrow_mut();
        let n = conn.read_tls(&mut &self.pending[..])?;
        if n == 0 {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "TLS buffer full",
            ));
        }
        self.pending.advance(n);
        conn.process_new_packets().map_err(tls_error)?;
        Ok(true)
    }

    /// Decrypted bytes into `dst`; 0 at the end of the stream.
    async fn read_plain(&mut self, dst: &mut [u8]) -> io::Result<usize> {
        loop {
            match self.conn.borrow_mut().reader().read(dst) {
                Ok(n) => return Ok(n),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(e) => return Err(e),
            }
            if !self.feed()? && !self.fill().await? {
                return Ok(0);
            }
        }
    }
}

impl<R: AsyncReadRent> AsyncReadRent for TlsRead<R> {
    async fn read<T: IoBufMut>(&mut self, mut buf: T) -> BufResult<usize, T> {
        // SAFETY: the buffer is owned by this future for the whole call; its spare room starts at
        // write_ptr and is bytes_total long.
        let dst = unsafe { std::slice::from_raw_parts_mut(buf.write_ptr(), buf.bytes_total()) };
        let res = self.read_plain(dst).await;
        if let Ok(n) = res {
            unsafe { buf.set_init(n) };
        }
        (res, buf)
    }

    async fn readv<T: IoVecBufMut>(&mut self, mut buf: T) -> BufResult<usize, T> {
        // SAFETY: as in `read`; the iovecs describe memory owned by `buf`.
        let iovs =
            unsafe { std::slice::from_raw_parts(buf.write_iovec_ptr(), buf.write_iovec_len()) };
        let Some(iov) = iovs.iter().find(|v| v.iov_len > 0) else {
            return (Ok(0), buf);
        };
        let dst = unsafe { std::slice::from_raw_parts_mut(iov.iov_base as *mut u8, iov.iov_len) };
        let res = self.read_plain(dst).await;
        if let Ok(n) = res {
            unsafe { buf.set_init(n) };
        }
        (res, buf)
    }
}

impl<W: AsyncWriteRent> TlsWrite<W> {
    /// Sends every record rustls has queued.
    async fn drain(&mut self) -> io::Result<()> {
        loop {
            self.out.clear();
            if !self.conn.borrow().wants_write() {
                return Ok(());
            }
            self.conn.borrow_mut().write_tls(&mut self.out)?;
            let (res, out) = self.io.write_all(std::mem::take(&mut self.out)).await;
            self.out = out;
            res?;
        }
    }

    async fn write_plain(&mut self, src: &[u8]) -> io::Result<usize> {
        let n = self.conn.borrow_mut().writer().write(src)?;
        self.drain().await?;
        Ok(n)
    }
}

impl<W: AsyncWriteRent> AsyncWriteRent for TlsWrite<W> {
    async fn write<T: IoBuf>(&mut self, buf: T) -> BufResult<usize, T> {
        // SAFETY: the buffer is owned by this future; its first bytes_init bytes are initialised.
        let src = unsafe { std::slice::from_raw_parts(buf.read_ptr(), buf.bytes_init()) };
        let res = self.write_plain(src).await;
        (res, buf)
    }

    async fn writev<T: IoVecBuf>(&mut self, buf: T) -> BufResult<usize, T> {
        // SAFETY: the iovecs describe initialised memory owned by `buf`.
        let iovs =
            unsafe { std::slice::from_raw_parts(buf.read_iovec_ptr(), buf.read_iovec_len()) };
        let mut total = 0;
        for iov in iovs {
            let src = unsafe { std::slice::from_raw_parts(iov.iov_base as *const u8, iov.iov_len) };
            if let Err(e) = self.conn.borrow_mut().writer().write_all(src) {
                return (Err(e), buf);
            }
            total += iov.iov_len;
        }
        let res = self.drain().await.map(|()| total);
        (res, buf)
    }

    async fn flush(&mut self) -> io::Result<()> {
        self.drain().await?;
        self.io.flush().await
    }

    async fn shutdown(&mut self) -> io::Result<()> {
        self.conn.borrow_mut().send_close_notify();
        let _ = self.drain().await;
        self.io.shutdown().await
    }
}

/// Runs the server handshake over `rd`/`wr`, starting with the bytes already read (`first`).
/// Returns the two halves, the plaintext read so far, and what the handshake established.
pub async fn accept<R: AsyncReadRent, W: AsyncWriteRent>(
    rd: R,
    wr: W,
    first: BytesMut,
    config: Arc<ServerConfig>,
) -> io::Result<(TlsRead<R>, TlsWrite<W>, TlsInfo)> {
    let conn = ServerConnection::new(config).map_err(tls_error)?;
    let (rd, wr) = handshake(rd, wr, first, conn.into()).await?;
    let info = established(&rd.conn.borrow());
    Ok((rd, wr, info))
}

/// Runs the client handshake of `conn` over `rd`/`wr` (nothing read yet).
pub async fn connect<R: AsyncReadRent, W: AsyncWriteRent>(
    rd: R,
    wr: W,
    conn: ClientConnection,
) -> io::Result<(TlsRead<R>, TlsWrite<W>)> {
    handshake(rd, wr, BytesMut::new(), conn.into()).await
}

/// Drives either side's handshake to its end; the halves then share the connection.
async fn handshake<R: AsyncReadRent, W: AsyncWriteRent>(
    rd: R,
    wr: W,
    first: BytesMut,
    conn: Connection,
) -> io::Result<(TlsRead<R>, TlsWrite<W>)> {
    let conn = Rc::new(RefCell::new(conn));
    let mut rd = TlsRead {
        io: rd,
        conn: conn.clone(),
        pending: first,
    };
    let mut wr = TlsWrite {
        io: wr,
        conn: conn.clone(),
        out: Vec::new(),
    };
    while conn.borrow().is_handshaking() {
        wr.drain().await?;
        if !conn.borrow().wants_read() {
            // Neither side has anything to say mid-handshake: never expected; don't spin on it.
            return Err(io::Error::other("TLS handshake stalled"));
        }
        let fed = match rd.feed() {
            Ok(fed) => fed,
            Err(e) => {
                let _ = wr.drain().await; // the alert that says why
                return Err(e);
            }
        };
        if !fed && !rd.fill().await? {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
    }
    wr.drain().await?;
    Ok((rd, wr))
}

/// What a finished handshake tells about the client.
fn established(conn: &Connection) -> TlsInfo {
    let cert = conn.peer_certificates().and_then(|c| c.first());
    TlsInfo {
        client_cn: cert.and_then(|c| common_name(c)),
        client_sha256: cert.map(|c| {
            let d = ring::digest::digest(&ring::digest::SHA256, c);
            let mut out = [0u8; 32];
            out.copy_from_slice(d.as_ref());
            out
        }),
        channel_binding: conn
            .export_keying_material([0u8; 32], EXPORTER_LABEL, None)
            .ok()
            .map(|k| k.to_vec()),
    }
}

/// One DER element: (tag, contents, rest).
fn der(input: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let (&tag, rest) = input.split_first()?;
    let (&first, rest) = rest.split_first()?;
    let (len, rest) = if first < 0x80 {
        (first as usize, rest)
    } else {
        let n = (first & 0x7f) as usize;
        if n == 0 || n > 4 || rest.len() < n {
            return None;
        }
        let len = rest[..n].iter().fold(0usize, |a, &b| (a << 8) | b as usize);
        (len, &rest[n..])
    };
    (rest.len() >= len).then(|| (tag, &rest[..len], &rest[len..]))
}

/// DER of the attribute type commonName (2.5.4.3).
const OID_CN: &[u8] = &[0x55, 0x04, 0x03];

/// The subject common name of a certificate (the last one if several), read straight from the DER
/// so that no X.509 library is needed for one field of an already verified certificate.
pub fn common_name(cert: &[u8]) -> Option<String> {
    let (_, cert, _) = der(cert)?;
    let (_, mut tbs, _) = der(cert)?;
    // version [0] is optional; then serial, signature, issuer, validity, subject.
    if tbs.first() == Some(&0xa0) {
        tbs = der(tbs)?.2;
    }
    for _ in 0..4 {
        tbs = der(tbs)?.2;
    }
    let (_, mut subject, _) = der(tbs)?;
    let mut cn = None;
    while let Some((_, set, rest)) = der(subject) {
        subject = rest;
        let Some((_, atv, _)) = der(set) else {
            continue;
        };
        let Some((0x06, oid, value)) = der(atv) else {
            continue;
        };
        if oid == OID_CN {
            let (_, text, _) = der(value)?;
            cn = Some(String::from_utf8_lossy(text).into_owned());
        }
    }
    cn
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn common_name_is_read_from_the_subject() {
        let mut params = rcgen::CertificateParams::new(vec!["localhost".into()]).unwrap();
        params
            .distinguished_name
            .push(rcgen::DnType::OrganizationName, "Example");
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "joe");
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = params.self_signed(&key).unwrap();
        assert_eq!(common_name(cert.der()).as_deref(), Some("joe"));
    }

    #[test]
    fn no_common_name_and_garbage_give_none() {
        let params = rcgen::CertificateParams::new(vec!["localhost".into()]).unwrap();
        let key = rcgen::KeyPair::generate().unwrap();
        let mut params = params;
        params.distinguished_name = rcgen::DistinguishedName::new();
        let cert = params.self_signed(&key).unwrap();
        assert_eq!(common_name(cert.der()), None);
        assert_eq!(common_name(&[0x30, 0x82, 0xff]), None);
        assert_eq!(common_name(&[]), None);
    }
}
