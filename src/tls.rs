//! TLS for the server (README "Security"): a rustls server configuration from a PEM
//! certificate chain and private key, TLS 1.2 and 1.3 only, optionally mutual TLS
//! against a CA bundle; and the rule that plain HTTP is served only on loopback unless
//! the operator says a proxy in front terminates TLS.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::server::WebPkiClientVerifier;
use rustls::{RootCertStore, ServerConfig};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

/// Where the server's certificate and key are, and the client CA for mutual TLS.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsSettings {
    /// PEM: the server certificate, then its intermediates.
    pub cert: PathBuf,
    /// PEM: the private key (PKCS#8, PKCS#1 or SEC1).
    pub key: PathBuf,
    /// PEM: the CAs client certificates must chain to; set, every client must present
    /// one (mutual TLS).
    pub client_ca: Option<PathBuf>,
}

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("cannot read {what} {path}: {message}")]
    Read {
        what: &'static str,
        path: PathBuf,
        message: String,
    },
    #[error("{0}")]
    Config(String),
}

fn read_err(what: &'static str, path: &Path, e: impl std::fmt::Display) -> TlsError {
    TlsError::Read {
        what,
        path: path.to_owned(),
        message: e.to_string(),
    }
}

fn certificates(what: &'static str, path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let certs: Vec<_> = CertificateDer::pem_file_iter(path)
        .map_err(|e| read_err(what, path, e))?
        .collect::<Result<_, _>>()
        .map_err(|e| read_err(what, path, e))?;
    if certs.is_empty() {
        return Err(read_err(what, path, "no PEM certificate in it"));
    }
    Ok(certs)
}

/// The rustls server configuration of `tls`.
pub fn server_config(tls: &TlsSettings) -> Result<ServerConfig, TlsError> {
    let chain = certificates("TLS certificate", &tls.cert)?;
    let key = PrivateKeyDer::from_pem_file(&tls.key)
        .map_err(|e| read_err("TLS private key", &tls.key, e))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = ServerConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .map_err(|e| TlsError::Config(e.to_string()))?;
    let builder = match &tls.client_ca {
        None => builder.with_no_client_auth(),
        Some(path) => {
            let mut roots = RootCertStore::empty();
            for cert in certificates("client CA bundle", path)? {
                roots
                    .add(cert)
                    .map_err(|e| read_err("client CA bundle", path, e))?;
            }
            let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
                .build()
                .map_err(|e| {
                    TlsError::Config(format!("client CA bundle {}: {e}", path.display()))
                })?;
            builder.with_client_cert_verifier(verifier)
        }
    };
    let mut config = builder
        .with_single_cert(chain, key)
        .map_err(|e| TlsError::Config(format!("TLS certificate and key do not fit: {e}")))?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(config)
}

/// Refuses plain HTTP on an address other hosts reach, unless a proxy in front
/// terminates TLS (`behind_proxy`). `None`: allowed.
pub fn plain_http_refusal(listen: SocketAddr, tls: bool, behind_proxy: bool) -> Option<String> {
    if tls || behind_proxy || listen.ip().is_loopback() {
        return None;
    }
    Some(format!(
        "refusing to serve plain HTTP on {listen}: patient data must not cross a network \
         unencrypted. Give --tls-cert and --tls-key, or --behind-proxy true when a proxy \
         in front terminates TLS"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_http_only_on_loopback_unless_behind_a_proxy() {
        let any: SocketAddr = "0.0.0.0:8080".parse().unwrap_or_else(|_| unreachable!());
        let lan: SocketAddr = "10.1.2.3:8080".parse().unwrap_or_else(|_| unreachable!());
        let local: SocketAddr = "127.0.0.1:8080".parse().unwrap_or_else(|_| unreachable!());
        let local6: SocketAddr = "[::1]:8080".parse().unwrap_or_else(|_| unreachable!());
        assert!(plain_http_refusal(any, false, false).is_some());
        assert!(plain_http_refusal(lan, false, false).is_some());
        assert!(plain_http_refusal(local, false, false).is_none());
        assert!(plain_http_refusal(local6, false, false).is_none());
        assert!(plain_http_refusal(any, true, false).is_none());
        assert!(plain_http_refusal(any, false, true).is_none());
    }

    #[test]
    fn unreadable_files_are_named() {
        let tls = TlsSettings {
            cert: PathBuf::from("/nonexistent/cert.pem"),
            key: PathBuf::from("/nonexistent/key.pem"),
            client_ca: None,
        };
        let err = server_config(&tls)
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(
            err.contains("TLS certificate /nonexistent/cert.pem"),
            "{err}"
        );
    }
}
