//! The configured callers: who they are, how each proves it (a bearer token, or the name in its client certificate),
//! and what each may do.
//!
//! Configuration (`[[callers]]`, see config/antrean.toml):
//!
//! ```toml
//! [[callers]]
//! name = "counter-batam"                 # a label for logs, metrics never carry it
//! token_sha256 = "9f86d0…"               # `echo -n TOKEN | antrean hash-token`
//! cert_name = "counter-batam.internal"   # or/and: a DNS name in the client certificate (mutual TLS)
//! roles = ["office"]
//! offices = ["kanim-batam"]              # required with the office role, refused without it
//! ```

use super::permissions::Role;
use super::token::{TOKEN_BYTES_MAX, TokenHash, find_token};
use crate::domain::OfficeId;
use serde::Deserialize;
use std::collections::BTreeSet;
use std::sync::Arc;

/// Most callers in a configuration.
pub const CALLERS_MAX: usize = 1_000;

/// Longest caller name or certificate name, in characters.
pub const CALLER_NAME_CHARS_MAX: usize = 128;

/// One `[[callers]]` table.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CallerConfig {
    /// A unique label, used in logs.
    pub name: String,
    /// SHA-256 of the caller's bearer token, 64 hexadecimal digits.
    #[serde(default)]
    pub token_sha256: Option<String>,
    /// A DNS name (subjectAltName) of the caller's client certificate, for mutual TLS.
    #[serde(default)]
    pub cert_name: Option<String>,
    /// `booking`, `payment`, `office`, `admin`.
    pub roles: Vec<String>,
    /// The offices an `office` caller serves.
    #[serde(default)]
    pub offices: Vec<String>,
}

/// A caller, authenticated.
#[derive(Debug)]
pub struct Caller {
    /// Its configured name.
    pub name: String,
    /// Its roles.
    pub roles: BTreeSet<Role>,
    /// The offices an office-role caller may act on.
    pub offices: BTreeSet<OfficeId>,
    cert_name: Option<String>,
}

/// Every configured caller, ready to authenticate requests.
#[derive(Debug, Default)]
pub struct Callers {
    callers: Vec<Arc<Caller>>,
    /// Token hashes, and the index of their caller.
    tokens: Vec<TokenHash>,
    token_owners: Vec<usize>,
}

/// Why a caller could not be identified.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Unidentified {
    /// No token and no client certificate a caller is configured with.
    MissingCredentials,
    /// A token that matches no caller, or is malformed.
    InvalidToken,
    /// A client certificate that names no configured caller, more than one, or a wildcard.
    UnknownCertificate,
}

impl Callers {
    /// Builds the registry from validated configuration.
    ///
    /// # Panics
    /// If the configuration was not validated with [`validate_callers`] first.
    #[must_use]
    pub fn new(configs: &[CallerConfig]) -> Callers {
        let mut callers = Callers::default();
        for config in configs {
            let caller = Caller {
                name: config.name.clone(),
                roles: config.roles.iter().map(|role| Role::parse(role).expect("validated role")).collect(),
                offices: config.offices.iter().map(|office| OfficeId::parse(office).expect("validated id")).collect(),
                cert_name: config.cert_name.as_ref().map(|name| name.to_ascii_lowercase()),
            };
            if let Some(hash) = &config.token_sha256 {
                callers.tokens.push(TokenHash::parse_hex(hash).expect("validated hash"));
                callers.token_owners.push(callers.callers.len());
            }
            callers.callers.push(Arc::new(caller));
        }
        callers
    }

    /// Whether no caller is configured: the local demo, where every call is allowed.
    #[must_use]
    pub fn is_open(&self) -> bool {
        self.callers.is_empty()
    }

    /// The caller whose token is `token` (constant time over every configured hash).
    pub fn by_token(&self, token: &[u8]) -> Result<Arc<Caller>, Unidentified> {
        if token.is_empty() || token.len() > TOKEN_BYTES_MAX {
            return Err(Unidentified::InvalidToken);
        }
        let index = find_token(&self.tokens, token).ok_or(Unidentified::InvalidToken)?;
        Ok(Arc::clone(&self.callers[self.token_owners[index]]))
    }

    /// The caller named by the leaf of a client certificate chain that TLS already verified against the client CA.
    ///
    /// Names are matched exactly (ignoring ASCII case). A certificate with a wildcard DNS name identifies nobody,
    /// whatever else it names: `*.callers.example` would otherwise match every caller under that domain. A certificate
    /// whose names match more than one caller identifies nobody either, rather than the first one configured.
    pub fn by_certificate(&self, leaf: &[u8]) -> Result<Arc<Caller>, Unidentified> {
        let der = rustls_pki_types::CertificateDer::from(leaf);
        let Ok(certificate) = webpki::EndEntityCert::try_from(&der) else {
            return Err(Unidentified::UnknownCertificate);
        };
        if certificate.valid_dns_names().any(|name| name.contains('*')) {
            tracing::warn!("client certificate refused: a wildcard name identifies no caller");
            return Err(Unidentified::UnknownCertificate);
        }
        // The presented names are not wildcards, so webpki's match against each configured name is an exact one.
        let mut matching = self.callers.iter().filter(|caller| {
            caller.cert_name.as_deref().is_some_and(|name| {
                rustls_pki_types::ServerName::try_from(name)
                    .is_ok_and(|name| certificate.verify_is_valid_for_subject_name(&name).is_ok())
            })
        });
        match (matching.next(), matching.next()) {
            (Some(caller), None) => Ok(Arc::clone(caller)),
            (Some(first), Some(second)) => {
                tracing::warn!(first = %first.name, second = %second.name,
                    "client certificate refused: its names match more than one caller");
                Err(Unidentified::UnknownCertificate)
            }
            (None, _) => Err(Unidentified::UnknownCertificate),
        }
    }
}

/// Checks `[[callers]]`: the error names the field (`callers[2].roles`) and the reason.
pub fn validate_callers(callers: &[CallerConfig]) -> Result<(), (String, String)> {
    if callers.len() > CALLERS_MAX {
        return Err(("callers".into(), format!("at most {CALLERS_MAX} callers")));
    }
    let mut names = BTreeSet::new();
    let mut hashes = BTreeSet::new();
    let mut cert_names = BTreeSet::new();
    for (index, caller) in callers.iter().enumerate() {
        let field = |name: &str| format!("callers[{index}].{name}");
        let name_ok = !caller.name.is_empty()
            && caller.name.chars().count() <= CALLER_NAME_CHARS_MAX
            && crate::domain::is_plain_text(&caller.name);
        if !name_ok {
            return Err((field("name"), format!("must be 1 to {CALLER_NAME_CHARS_MAX} printable characters")));
        }
        if !names.insert(caller.name.as_str()) {
            return Err((field("name"), "duplicate caller name".into()));
        }
        if caller.token_sha256.is_none() && caller.cert_name.is_none() {
            return Err((field("token_sha256"), "a caller needs token_sha256 or cert_name (or both)".into()));
        }
        if let Some(hash) = &caller.token_sha256 {
            let parsed = TokenHash::parse_hex(hash)
                .ok_or_else(|| (field("token_sha256"), "must be 64 hexadecimal digits (antrean hash-token)".into()))?;
            if !hashes.insert(parsed.0) {
                return Err((field("token_sha256"), "two callers share one token".into()));
            }
        }
        if let Some(name) = &caller.cert_name
            && (name.len() > CALLER_NAME_CHARS_MAX || rustls_pki_types::DnsName::try_from(name.as_str()).is_err())
        {
            return Err((
                field("cert_name"),
                "must be a DNS name without wildcards, as in the certificate's subjectAltName".into(),
            ));
        }
        if let Some(name) = &caller.cert_name
            && !cert_names.insert(name.to_ascii_lowercase())
        {
            return Err((field("cert_name"), "two callers share one certificate name".into()));
        }
        validate_roles(caller, &field)?;
    }
    Ok(())
}

fn validate_roles(caller: &CallerConfig, field: &dyn Fn(&str) -> String) -> Result<(), (String, String)> {
    if caller.roles.is_empty() {
        return Err((field("roles"), "list at least one of booking, payment, office, admin".into()));
    }
    for role in &caller.roles {
        if Role::parse(role).is_none() {
            return Err((field("roles"), format!("unknown role {role:?} (booking, payment, office, admin)")));
        }
    }
    let office_role = caller.roles.iter().any(|role| role == Role::Office.name());
    if office_role && caller.offices.is_empty() {
        return Err((field("offices"), "the office role needs the offices it serves".into()));
    }
    if !office_role && !caller.offices.is_empty() {
        return Err((field("offices"), "only callers with the office role list offices".into()));
    }
    for office in &caller.offices {
        if OfficeId::parse(office).is_none() {
            return Err((field("offices"), format!("{office:?} must be {}", OfficeId::RULE)));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::token::hash_token;

    fn caller(name: &str, token: &str, roles: &[&str], offices: &[&str]) -> CallerConfig {
        CallerConfig {
            name: name.into(),
            token_sha256: Some(hash_token(token.as_bytes()).to_hex()),
            cert_name: None,
            roles: roles.iter().map(|role| (*role).to_owned()).collect(),
            offices: offices.iter().map(|office| (*office).to_owned()).collect(),
        }
    }

    #[test]
    fn tokens_identify_their_caller() {
        let configs = [caller("app", "token-app", &["booking"], &[]), caller("bank", "token-bank", &["payment"], &[])];
        validate_callers(&configs).expect("valid");
        let callers = Callers::new(&configs);
        assert_eq!(callers.by_token(b"token-bank").expect("bank").name, "bank");
        assert_eq!(callers.by_token(b"token-app").expect("app").name, "app");
        assert_eq!(callers.by_token(b"token-ap").expect_err("wrong"), Unidentified::InvalidToken);
        assert_eq!(callers.by_token(b"").expect_err("empty"), Unidentified::InvalidToken);
        assert_eq!(callers.by_token(&[b'x'; 600]).expect_err("long"), Unidentified::InvalidToken);
        assert_eq!(callers.by_certificate(b"not a certificate").expect_err("junk"), Unidentified::UnknownCertificate);
    }

    #[test]
    fn validation_names_the_field() {
        let check = |configs: &[CallerConfig]| validate_callers(configs).expect_err("invalid").0;
        assert_eq!(check(&[caller("a", "t", &["root"], &[])]), "callers[0].roles");
        assert_eq!(check(&[caller("a", "t", &[], &[])]), "callers[0].roles");
        assert_eq!(check(&[caller("a", "t", &["office"], &[])]), "callers[0].offices");
        assert_eq!(check(&[caller("a", "t", &["booking"], &["kanim-batam"])]), "callers[0].offices");
        assert_eq!(check(&[caller("a", "t", &["office"], &["Kanim Batam!"])]), "callers[0].offices");
        assert_eq!(check(&[caller("a", "t", &["admin"], &[]), caller("a", "u", &["admin"], &[])]), "callers[1].name");
        assert_eq!(
            check(&[caller("a", "t", &["admin"], &[]), caller("b", "t", &["admin"], &[])]),
            "callers[1].token_sha256"
        );
        let mut bad_hash = caller("a", "t", &["admin"], &[]);
        bad_hash.token_sha256 = Some("abc".into());
        assert_eq!(check(&[bad_hash.clone()]), "callers[0].token_sha256");
        bad_hash.token_sha256 = None;
        assert_eq!(check(&[bad_hash.clone()]), "callers[0].token_sha256");
        bad_hash.cert_name = Some("not a name".into());
        assert_eq!(check(&[bad_hash.clone()]), "callers[0].cert_name");
        bad_hash.cert_name = Some("*.callers.example".into());
        assert_eq!(check(&[bad_hash.clone()]), "callers[0].cert_name");
        bad_hash.cert_name = Some("app.callers.example".into());
        let mut twin = bad_hash.clone();
        twin.name = "b".into();
        twin.cert_name = Some("APP.callers.example".into());
        assert_eq!(check(&[bad_hash, twin]), "callers[1].cert_name");
    }
}
