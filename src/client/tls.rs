//! TLS for the client side (feature `client-tls`): the relay's certificate checked
//! against a CA file, an optional client certificate for mutual TLS. Synchronous
//! rustls over a `std` socket, so the `Logger` still needs no async runtime.

use super::{ClientAuth, ClientError};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use rustls::{ClientConfig, ClientConnection, RootCertStore};
use std::io;
use std::net::TcpStream;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

/// What every connection to one relay shares: the rustls configuration and the name
/// the relay's certificate must carry.
#[derive(Debug)]
pub struct TlsClient {
    config: Arc<ClientConfig>,
    name: ServerName<'static>,
}

fn read_certs(path: &Path, what: &str) -> Result<Vec<CertificateDer<'static>>, ClientError> {
    let certs = CertificateDer::pem_file_iter(path)
        .and_then(|it| it.collect::<Result<Vec<_>, _>>())
        .map_err(|e| ClientError::Tls(format!("cannot read {what} {}: {e}", path.display())))?;
    if certs.is_empty() {
        return Err(ClientError::Tls(format!(
            "{what} {} holds no PEM certificate",
            path.display()
        )));
    }
    Ok(certs)
}

/// The host part of `HOST:PORT` (`[v6]:PORT` too): the name checked by default.
fn host_of(server: &str) -> &str {
    let host = server.rsplit_once(':').map_or(server, |(h, _)| h);
    host.trim_start_matches('[').trim_end_matches(']')
}

impl TlsClient {
    /// Reads the CA (and the client pair, if given) now, so a bad file is an error at
    /// start rather than a connection that never succeeds.
    pub fn new(auth: &ClientAuth, ca: &Path, server: &str) -> Result<TlsClient, ClientError> {
        let mut roots = RootCertStore::empty();
        for cert in read_certs(ca, "the CA file")? {
            roots
                .add(cert)
                .map_err(|e| ClientError::Tls(format!("the CA file {}: {e}", ca.display())))?;
        }
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let builder = ClientConfig::builder_with_provider(provider)
            .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
            .map_err(|e| ClientError::Tls(e.to_string()))?
            .with_root_certificates(roots);
        let config = match (&auth.tls_cert, &auth.tls_key) {
            (Some(cert), Some(key)) => {
                let chain = read_certs(cert, "the client certificate")?;
                let key = PrivateKeyDer::from_pem_file(key).map_err(|e| {
                    ClientError::Tls(format!("cannot read the client key {}: {e}", key.display()))
                })?;
                builder.with_client_auth_cert(chain, key).map_err(|e| {
                    ClientError::Tls(format!(
                        "the client certificate {} and key do not go together: {e}",
                        cert.display()
                    ))
                })?
            }
            (None, None) => builder.with_no_client_auth(),
            _ => {
                return Err(ClientError::Tls(
                    "a client certificate needs its key, and a key its certificate".into(),
                ));
            }
        };
        let name = auth
            .server_name
            .as_deref()
            .unwrap_or_else(|| host_of(server));
        let name = ServerName::try_from(name.to_string())
            .map_err(|e| ClientError::Tls(format!("bad TLS server name '{name}': {e}")))?;
        Ok(TlsClient {
            config: Arc::new(config),
            name,
        })
    }

    /// The handshake on a connected socket (within `timeout`); the relay's certificate
    /// is checked here (a refused client certificate shows on the first read).
    pub fn handshake(
        &self,
        mut sock: TcpStream,
        timeout: Duration,
    ) -> io::Result<rustls::StreamOwned<ClientConnection, TcpStream>> {
        let mut conn = ClientConnection::new(self.config.clone(), self.name.clone())
            .map_err(io::Error::other)?;
        sock.set_read_timeout(Some(timeout))?;
        while conn.is_handshaking() {
            conn.complete_io(&mut sock)?;
        }
        Ok(rustls::StreamOwned::new(conn, sock))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_name_is_the_host() {
        assert_eq!(host_of("relay.example:6514"), "relay.example");
        assert_eq!(host_of("127.0.0.1:6514"), "127.0.0.1");
        assert_eq!(host_of("[::1]:6514"), "::1");
    }

    #[test]
    fn unreadable_files_are_clear_errors() {
        let auth = ClientAuth::default();
        let e = TlsClient::new(&auth, Path::new("/nonexistent/ca.pem"), "h:1").unwrap_err();
        assert!(
            e.to_string()
                .contains("cannot read the CA file /nonexistent/ca.pem"),
            "{e}"
        );
        let dir = tempfile::tempdir().unwrap();
        let empty = dir.path().join("empty.pem");
        std::fs::write(&empty, "not a certificate\n").unwrap();
        let e = TlsClient::new(&auth, &empty, "h:1").unwrap_err();
        assert!(e.to_string().contains("holds no PEM certificate"), "{e}");
    }
}
