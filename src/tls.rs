//! Transport security: TLS with rustls through tonic, optionally requiring client certificates (mutual TLS), and the
//! rules for listeners reachable from other hosts: the gRPC listener is encrypted or explicitly marked insecure, the
//! plain-HTTP metrics listener is explicitly marked insecure, and serving without callers (everything open to
//! anyone) is explicitly allowed with a second flag.
//!
//! Architecture invariant: private key material is read once at start and never logged.

use serde::Deserialize;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;
use tonic::transport::{Certificate, Identity, ServerTlsConfig};

/// How long a TLS handshake may take before the connection is dropped, so idle half-open connections cannot pile up.
pub const TLS_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// `[server.tls]`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsConfig {
    /// PEM certificate chain of the server, leaf first.
    pub cert_path: PathBuf,
    /// PEM private key of the server.
    pub key_path: PathBuf,
    /// PEM CA certificate(s) that sign client certificates; set to require mutual TLS.
    #[serde(default)]
    pub client_ca_path: Option<PathBuf>,
}

/// Why TLS could not be set up.
#[derive(Debug, thiserror::Error)]
#[error("{field}: cannot read {path}: {source}")]
pub struct TlsError {
    /// The configuration field.
    pub field: &'static str,
    /// The file.
    pub path: PathBuf,
    /// Why.
    pub source: std::io::Error,
}

fn read(field: &'static str, path: &Path) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|source| TlsError { field, path: path.to_owned(), source })
}

impl TlsConfig {
    /// Checks the paths are set; the error names the field and the reason.
    pub fn validate(&self) -> Result<(), (String, String)> {
        let empty = |path: &Path| path.as_os_str().is_empty();
        if empty(&self.cert_path) {
            return Err(("server.tls.cert_path".into(), "must name a PEM certificate file".into()));
        }
        if empty(&self.key_path) {
            return Err(("server.tls.key_path".into(), "must name a PEM private key file".into()));
        }
        if self.client_ca_path.as_deref().is_some_and(empty) {
            return Err(("server.tls.client_ca_path".into(), "must name a PEM CA file, or be left out".into()));
        }
        Ok(())
    }

    /// Reads the files into tonic's server TLS configuration. With a client CA, every client must present a
    /// certificate it signed (mutual TLS); a bad certificate fails the handshake.
    pub fn server_config(&self) -> Result<ServerTlsConfig, TlsError> {
        let identity = Identity::from_pem(
            read("server.tls.cert_path", &self.cert_path)?,
            read("server.tls.key_path", &self.key_path)?,
        );
        let mut config = ServerTlsConfig::new().identity(identity).timeout(TLS_HANDSHAKE_TIMEOUT);
        if let Some(path) = &self.client_ca_path {
            config = config.client_ca_root(Certificate::from_pem(read("server.tls.client_ca_path", path)?));
        }
        Ok(config)
    }
}

/// Whether serving on `listen` is allowed: TLS, or a loopback address, or the operator's explicit `--insecure`.
/// Returns whether to warn that traffic (tokens, NIKs) crosses the network in plain text.
pub fn check_listen(listen: SocketAddr, tls: Option<&TlsConfig>, insecure: bool) -> Result<bool, String> {
    if tls.is_some() || listen.ip().is_loopback() {
        return Ok(false);
    }
    if insecure {
        return Ok(true);
    }
    Err(format!(
        "server.listen {listen} is reachable from other hosts without TLS: set [server.tls], listen on loopback, or \
         pass --insecure to accept plain-text traffic"
    ))
}

/// Whether serving Prometheus metrics on `metrics_listen` is allowed. The exporter speaks plain HTTP only, so an
/// address other hosts can reach needs the operator's explicit `--insecure`, as a plain-text gRPC listener does.
/// Returns whether to warn.
pub fn check_metrics_listen(metrics_listen: SocketAddr, insecure: bool) -> Result<bool, String> {
    if metrics_listen.ip().is_loopback() {
        return Ok(false);
    }
    if insecure {
        return Ok(true);
    }
    Err(format!(
        "server.metrics_listen {metrics_listen} is reachable from other hosts and /metrics is plain HTTP: listen on \
         loopback (and scrape through a proxy), or pass --insecure to accept it"
    ))
}

/// Whether serving with no `[[callers]]` configured on `listen` is allowed. Without callers every call is allowed to
/// anyone (admin calls, full NIKs): on an address other hosts can reach, that needs a second, explicit flag,
/// `--allow-anonymous`, on top of whatever allowed the listener itself (TLS, or `--insecure`). Returns whether to
/// warn.
pub fn check_open_access(listen: SocketAddr, callers_configured: bool, allow_anonymous: bool) -> Result<bool, String> {
    if callers_configured || listen.ip().is_loopback() {
        return Ok(false);
    }
    if allow_anonymous {
        return Ok(true);
    }
    Err(format!(
        "server.listen {listen} is reachable from other hosts and no [[callers]] are configured, so anyone could call \
         everything: configure [[callers]], listen on loopback, or pass --allow-anonymous as well"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn non_loopback_plain_text_needs_insecure() {
        let public: SocketAddr = "0.0.0.0:50051".parse().expect("address");
        let loopback: SocketAddr = "127.0.0.1:50051".parse().expect("address");
        let tls = TlsConfig { cert_path: "c".into(), key_path: "k".into(), client_ca_path: None };
        assert_eq!(check_listen(loopback, None, false), Ok(false));
        assert_eq!(check_listen("[::1]:1".parse().expect("address"), None, false), Ok(false));
        assert_eq!(check_listen(public, Some(&tls), false), Ok(false));
        assert_eq!(check_listen(public, None, true), Ok(true));
        assert!(check_listen(public, None, false).expect_err("refused").contains("--insecure"));
    }

    #[test]
    fn public_metrics_need_insecure_and_public_open_access_needs_allow_anonymous() {
        let public: SocketAddr = "0.0.0.0:9090".parse().expect("address");
        let loopback: SocketAddr = "127.0.0.1:9090".parse().expect("address");
        assert_eq!(check_metrics_listen(loopback, false), Ok(false));
        assert_eq!(check_metrics_listen(public, true), Ok(true));
        assert!(check_metrics_listen(public, false).expect_err("refused").contains("server.metrics_listen"));
        assert_eq!(check_open_access(loopback, false, false), Ok(false));
        assert_eq!(check_open_access(public, true, false), Ok(false));
        assert_eq!(check_open_access(public, false, true), Ok(true));
        assert!(check_open_access(public, false, false).expect_err("refused").contains("--allow-anonymous"));
    }
}
