//! The tower layer that authenticates every call and checks its method against the role table before any handler
//! runs, and hands the handler an [`Access`] in the request's extensions.
//!
//! A bearer token (`authorization: Bearer TOKEN`) is used when present; otherwise the leaf of a client certificate
//! that TLS verified against `server.tls.client_ca_path`. Health checks are public; reflection needs any caller.
//! Without configured callers every call gets [`Access::open`].

use super::callers::{Callers, Unidentified};
use super::permissions::{Role, Rule, rule};
use super::status::auth_status;
use super::{Access, AuthRefusal};
use crate::call_layer::{AroundCall, CallFuture, CallLayer, Next};
use std::sync::Arc;
use tonic::body::Body;
use tonic::transport::server::{TcpConnectInfo, TlsConnectInfo};

/// Authenticates every call against the configured callers; clones share one registry. A [`CallLayer`] of it
/// goes around the router.
#[derive(Clone)]
pub struct Auth {
    callers: Arc<Callers>,
}

impl Auth {
    /// Authenticates against `callers`.
    #[must_use]
    pub fn new(callers: Arc<Callers>) -> Auth {
        Auth { callers }
    }

    /// The tower layer.
    #[must_use]
    pub fn layer(callers: Arc<Callers>) -> CallLayer<Auth> {
        CallLayer(Auth::new(callers))
    }
}

/// The access a request gets, or why it is refused.
pub fn authorize<B>(callers: &Callers, request: &http::Request<B>) -> Result<Access, AuthRefusal> {
    if callers.is_open() {
        return Ok(Access::open());
    }
    let allowed = match rule(request.uri().path()) {
        Rule::Public => return Ok(Access::none()),
        Rule::Authenticated => &Role::ALL[..],
        Rule::Roles(roles) => roles,
    };
    let caller = identify(callers, request).map_err(|unidentified| match unidentified {
        Unidentified::MissingCredentials => AuthRefusal::MissingCredentials,
        Unidentified::InvalidToken => AuthRefusal::InvalidToken,
        Unidentified::UnknownCertificate => AuthRefusal::UnknownCertificate,
    })?;
    if !allowed.iter().any(|role| caller.roles.contains(role)) {
        tracing::warn!(caller = %caller.name, method = request.uri().path(), "call refused: role not allowed");
        return Err(AuthRefusal::Role);
    }
    Ok(Access::for_roles(&caller, allowed))
}

fn identify<B>(callers: &Callers, request: &http::Request<B>) -> Result<Arc<super::Caller>, Unidentified> {
    if let Some(value) = request.headers().get(http::header::AUTHORIZATION) {
        let bytes = value.as_bytes();
        let token = bytes
            .get(..7)
            .filter(|scheme| scheme.eq_ignore_ascii_case(b"bearer "))
            .and_then(|_| bytes.get(7..))
            .ok_or(Unidentified::InvalidToken)?;
        return callers.by_token(token);
    }
    let certificates =
        request.extensions().get::<TlsConnectInfo<TcpConnectInfo>>().and_then(TlsConnectInfo::peer_certs);
    match certificates.as_ref().and_then(|chain| chain.first()) {
        Some(leaf) => callers.by_certificate(leaf.as_ref()),
        None => Err(Unidentified::MissingCredentials),
    }
}

impl AroundCall for Auth {
    fn call<S: Next>(&self, mut request: http::Request<Body>, mut next: S) -> CallFuture<S::Error> {
        match authorize(&self.callers, &request) {
            Ok(access) => {
                request.extensions_mut().insert(access);
                Box::pin(async move { next.call(request).await })
            }
            Err(refusal) => {
                refusal.count();
                tracing::debug!(reason = refusal.label(), method = request.uri().path(), "call refused");
                Box::pin(std::future::ready(Ok(auth_status(refusal).into_http())))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::callers::CallerConfig;
    use crate::auth::token::hash_token;

    fn callers() -> Callers {
        let caller = |name: &str, roles: &[&str], offices: &[&str]| CallerConfig {
            name: name.into(),
            token_sha256: Some(hash_token(format!("token-{name}").as_bytes()).to_hex()),
            cert_name: None,
            roles: roles.iter().map(|role| (*role).to_owned()).collect(),
            offices: offices.iter().map(|office| (*office).to_owned()).collect(),
        };
        Callers::new(&[
            caller("app", &["booking"], &[]),
            caller("bank", &["payment"], &[]),
            caller("counter", &["office"], &["kanim-batam"]),
            caller("both", &["booking", "office"], &["kanim-batam"]),
        ])
    }

    fn request(path: &str, authorization: Option<&str>) -> http::Request<()> {
        let mut builder = http::Request::builder().uri(format!("http://localhost{path}"));
        if let Some(value) = authorization {
            builder = builder.header("authorization", value);
        }
        builder.body(()).expect("request")
    }

    #[test]
    fn tokens_and_roles_decide() {
        let callers = callers();
        let hold = "/antrean.v1.BookingService/Hold";
        let check = |path: &str, auth: Option<&str>| authorize(&callers, &request(path, auth)).map(|_| ());
        assert_eq!(check(hold, None), Err(AuthRefusal::MissingCredentials));
        assert_eq!(check(hold, Some("Bearer nope")), Err(AuthRefusal::InvalidToken));
        assert_eq!(check(hold, Some("Basic dG9rZW4tYXBw")), Err(AuthRefusal::InvalidToken));
        assert_eq!(check(hold, Some("Bearer")), Err(AuthRefusal::InvalidToken));
        assert_eq!(check(hold, Some("Bearer token-app")), Ok(()));
        assert_eq!(check(hold, Some("bearer token-app")), Ok(()));
        assert_eq!(check(hold, Some("Bearer token-bank")), Err(AuthRefusal::Role));
        assert_eq!(check("/antrean.v1.BookingService/Nope", Some("Bearer token-app")), Err(AuthRefusal::Role));
        assert_eq!(check("/grpc.health.v1.Health/Check", None), Ok(()));
        assert_eq!(
            check("/grpc.reflection.v1.ServerReflection/ServerReflectionInfo", None),
            Err(AuthRefusal::MissingCredentials)
        );
    }

    #[test]
    fn office_scope_and_masking_follow_the_roles_that_allow_the_method() {
        let callers = callers();
        let access = |path: &str, token: &str| {
            authorize(&callers, &request(path, Some(&format!("Bearer token-{token}")))).expect("allowed")
        };
        let batam = crate::domain::OfficeId::parse("kanim-batam").expect("id");
        let jakarta = crate::domain::OfficeId::parse("kanim-jakarta").expect("id");
        let counter = access("/antrean.v1.BookingService/GetBooking", "counter");
        assert!(counter.reveal_nik && counter.may_touch(&batam) && !counter.may_touch(&jakarta));
        let both = access("/antrean.v1.BookingService/GetBooking", "both");
        assert!(both.may_touch(&jakarta), "the booking role reaches every office");
        let both = access("/antrean.v1.BookingService/CheckIn", "both");
        assert!(!both.may_touch(&jakarta), "check-in is allowed through the office role only");
        let bank = access("/antrean.v1.BookingService/ConfirmPayment", "bank");
        assert!(!bank.reveal_nik);
        let open = authorize(&Callers::default(), &request("/antrean.v1.BookingService/Hold", None)).expect("open");
        assert!(open.reveal_nik && open.may_touch(&jakarta));
    }
}
