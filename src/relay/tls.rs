//! RFC 5425 TLS listeners (as updated by RFC 9662): TLS 1.2 and 1.3 with rustls, whose
//! suites are all forward secret (ECDHE or TLS 1.3; it has no static-RSA or static-DH
//! key exchange). After the handshake a connection is the same byte stream as on the
//! plain port: the same detection and framing.

use super::Config;
use super::auth::{AllowList, Auth, Refusal};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::server::{ServerConfig, WebPkiClientVerifier};
use rustls::{CertificateError, DigitallySignedStruct, DistinguishedName, SignatureScheme};
use std::io;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpStream;
use tokio_rustls::server::TlsStream;

/// A client gets this long to finish its handshake.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Settings that only make sense together, checked before anything starts.
pub fn check_settings(c: &Config) -> Result<(), String> {
    let set = |p: &Path| !p.as_os_str().is_empty();
    let have_pair = set(&c.tls_cert) && set(&c.tls_key);
    if !c.listen_tls.is_empty() && !have_pair {
        return Err("listen-tls needs tls-cert and tls-key (PEM files)".into());
    }
    if c.listen_tls.is_empty() && (set(&c.tls_client_ca) || !c.tls_allow.is_empty()) {
        return Err("tls-client-ca and tls-allow need a listen-tls address".into());
    }
    let allow = AllowList::parse(&c.tls_allow)?;
    if allow.has_names() && !set(&c.tls_client_ca) {
        return Err(
            "tls-allow names need tls-client-ca (a name means nothing without a CA \
                    vouching for it; without one, allow by sha256: fingerprint)"
                .into(),
        );
    }
    if c.auth_required && c.udp {
        return Err("auth-required needs udp = false (datagrams cannot authenticate)".into());
    }
    if c.auth_required && !c.listen_relp.is_empty() {
        return Err(
            "auth-required cannot be met by listen-relp (RELP has no tokens and \
                    no TLS here): drop one of them"
                .into(),
        );
    }
    if c.auth_required && !set(&c.auth_tokens_file) && !set(&c.tls_client_ca) && allow.is_empty() {
        return Err(
            "auth-required needs auth-tokens-file or client certificates (tls-client-ca or \
             tls-allow fingerprints)"
                .into(),
        );
    }
    Ok(())
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::aws_lc_rs::default_provider())
}

fn read_certs(path: &Path, what: &str) -> Result<Vec<CertificateDer<'static>>, String> {
    let certs = CertificateDer::pem_file_iter(path)
        .and_then(|it| it.collect::<Result<Vec<_>, _>>())
        .map_err(|e| format!("cannot read {what} {}: {e}", path.display()))?;
    if certs.is_empty() {
        return Err(format!(
            "{what} {} holds no PEM certificate",
            path.display()
        ));
    }
    Ok(certs)
}

/// The server side from the configured files: certificate chain and key, and the
/// client verifier (a CA, or any certificate when only fingerprints decide).
pub fn server_config(c: &Config, allow: &AllowList) -> Result<ServerConfig, String> {
    let certs = read_certs(&c.tls_cert, "tls-cert")?;
    let key = PrivateKeyDer::from_pem_file(&c.tls_key)
        .map_err(|e| format!("cannot read tls-key {}: {e}", c.tls_key.display()))?;
    let provider = provider();
    let builder = ServerConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .map_err(|e| format!("TLS setup: {e}"))?;
    let builder = if !c.tls_client_ca.as_os_str().is_empty() {
        let mut roots = rustls::RootCertStore::empty();
        for ca in read_certs(&c.tls_client_ca, "tls-client-ca")? {
            roots
                .add(ca)
                .map_err(|e| format!("bad CA in {}: {e}", c.tls_client_ca.display()))?;
        }
        let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
            .build()
            .map_err(|e| format!("tls-client-ca {}: {e}", c.tls_client_ca.display()))?;
        builder.with_client_cert_verifier(verifier)
    } else if !allow.is_empty() {
        builder.with_client_cert_verifier(Arc::new(AnyClientCert(provider)))
    } else {
        builder.with_no_client_auth()
    };
    let mut config = builder.with_single_cert(certs, key).map_err(|e| {
        format!(
            "tls-cert {} and tls-key {} do not make a usable pair: {e}",
            c.tls_cert.display(),
            c.tls_key.display()
        )
    })?;
    // Nothing to resume across restarts; tickets would only add state.
    config.send_tls13_tickets = 0;
    Ok(config)
}

/// RFC 5425 fingerprint authorisation: any (often self-signed) client certificate is
/// taken at the handshake, the allow-list decides after it. The handshake signatures are
/// still checked, so the client holds the certificate's key.
#[derive(Debug)]
struct AnyClientCert(Arc<rustls::crypto::CryptoProvider>);

impl ClientCertVerifier for AnyClientCert {
    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        &[]
    }

    fn verify_client_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        Ok(ClientCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// Why a handshake failed, from the error rustls gave.
fn classify(e: &io::Error) -> Refusal {
    let Some(err) = e.get_ref().and_then(|i| i.downcast_ref::<rustls::Error>()) else {
        return Refusal::Handshake;
    };
    match err {
        rustls::Error::NoCertificatesPresented => Refusal::NoCertificate,
        rustls::Error::InvalidCertificate(ce) => match ce {
            CertificateError::Expired | CertificateError::ExpiredContext { .. } => Refusal::Expired,
            CertificateError::NotValidYet | CertificateError::NotValidYetContext { .. } => {
                Refusal::NotYetValid
            }
            _ => Refusal::UnknownCa,
        },
        _ => Refusal::Handshake,
    }
}

/// The handshake and the allow-list. `Ok((stream, authenticated))`, where authenticated
/// means a client certificate was verified and allowed; `Err` why it was refused.
pub async fn accept(
    stream: TcpStream,
    auth: &Auth,
) -> Result<(TlsStream<TcpStream>, bool), (Refusal, String)> {
    let Some(config) = auth.tls() else {
        return Err((Refusal::Handshake, "no TLS configuration".into()));
    };
    let acceptor = tokio_rustls::TlsAcceptor::from(config);
    let tls = match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
        Ok(Ok(s)) => s,
        Ok(Err(e)) => return Err((classify(&e), e.to_string())),
        Err(_) => {
            return Err((
                Refusal::Handshake,
                format!("no handshake within {HANDSHAKE_TIMEOUT:?}"),
            ));
        }
    };
    let cert = tls
        .get_ref()
        .1
        .peer_certificates()
        .and_then(|c| c.first())
        .map(|c| c.as_ref().to_vec());
    match cert {
        Some(der) if auth.allow.permits(&der) => Ok((tls, true)),
        Some(_) => Err((
            Refusal::NotAllowed,
            "client certificate not on tls-allow".into(),
        )),
        None => Ok((tls, false)),
    }
}
