//! TLS and mutual TLS against the real server, with a certificate authority generated in the test (rcgen): a
//! trusted client certificate identifies its caller; no certificate, a certificate from another CA, or plain text
//! fail the handshake; a certificate from the right CA naming no caller is UNAUTHENTICATED. Also the rule that a
//! non-loopback plain-text listener needs --insecure.

#[path = "common/calls.rs"]
mod calls;
mod common;

use antrean::proto::booking_service_client::BookingServiceClient;
use antrean::proto::{self, admin_service_client::AdminServiceClient};
use calls::{clients_with_token, token_hash};
use common::{Options, Server, reason, request_id, test_office};
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, KeyUsagePurpose};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use tonic::Code;
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Identity};

const TOKEN: &str = "tls-booking-token-0123456789abcdef0123456789";

/// A certificate authority and what it signs.
struct Authority {
    certificate_pem: String,
    issuer: Issuer<'static, KeyPair>,
}

impl Authority {
    fn new(name: &str) -> Authority {
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("params");
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.distinguished_name.push(DnType::CommonName, name);
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let key = KeyPair::generate().expect("key");
        let certificate = params.self_signed(&key).expect("self-signed");
        Authority { certificate_pem: certificate.pem(), issuer: Issuer::new(params, key) }
    }

    /// A leaf certificate for `names` and its key, as PEM.
    fn sign(&self, names: &[&str]) -> (String, String) {
        let names: Vec<String> = names.iter().map(|name| (*name).to_owned()).collect();
        let params = CertificateParams::new(names).expect("params");
        let key = KeyPair::generate().expect("key");
        let certificate = params.signed_by(&key, &self.issuer).expect("signed");
        (certificate.pem(), key.serialize_pem())
    }
}

struct Fixture {
    server: Server,
    server_ca: Authority,
    client_ca: Authority,
    _files: tempfile::TempDir,
}

fn write(dir: &Path, name: &str, text: &str) -> String {
    let path = dir.join(name);
    std::fs::write(&path, text).expect("write pem");
    path.display().to_string()
}

fn start(mutual: bool) -> Fixture {
    let files = tempfile::tempdir().expect("dir");
    let server_ca = Authority::new("antrean test server CA");
    let client_ca = Authority::new("antrean test callers CA");
    let (certificate, key) = server_ca.sign(&["localhost"]);
    let cert_path = write(files.path(), "server.crt", &certificate);
    let key_path = write(files.path(), "server.key", &key);
    let client_ca_line = if mutual {
        format!("client_ca_path = \"{}\"\n", write(files.path(), "callers-ca.crt", &client_ca.certificate_pem))
    } else {
        String::new()
    };
    let config = format!(
        r#"
[server.tls]
cert_path = "{cert_path}"
key_path = "{key_path}"
{client_ca_line}

[[callers]]
name = "operator"
cert_name = "operator.callers.test"
roles = ["admin"]

[[callers]]
name = "app-backend"
token_sha256 = "{token}"
roles = ["booking"]

[[callers]]
name = "kiosk"
cert_name = "kiosk.callers.test"
roles = ["booking"]
"#,
        token = token_hash(TOKEN),
    );
    let server = Server::start_with(Options { config: Some(config), ..Options::default() });
    Fixture { server, server_ca, client_ca, _files: files }
}

impl Fixture {
    fn tls(&self, identity: Option<(String, String)>) -> ClientTlsConfig {
        let tls = ClientTlsConfig::new()
            .ca_certificate(Certificate::from_pem(&self.server_ca.certificate_pem))
            .domain_name("localhost");
        match identity {
            Some((certificate, key)) => tls.identity(Identity::from_pem(certificate, key)),
            None => tls,
        }
    }

    async fn connect(&self, tls: ClientTlsConfig) -> Result<Channel, tonic::transport::Error> {
        Channel::from_shared(format!("https://{}", self.server.address))
            .expect("uri")
            .tls_config(tls)
            .expect("tls config")
            .connect_timeout(Duration::from_secs(5))
            .connect()
            .await
    }

    /// A channel once the server answers health checks over TLS (recovery may still be running).
    async fn ready(&self, tls: ClientTlsConfig) -> Channel {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Ok(channel) = self.connect(tls.clone()).await {
                let mut health = tonic_health::pb::health_client::HealthClient::new(channel.clone());
                let request = tonic_health::pb::HealthCheckRequest { service: String::new() };
                if let Ok(response) = health.check(request).await
                    && response.into_inner().status
                        == tonic_health::pb::health_check_response::ServingStatus::Serving as i32
                {
                    return channel;
                }
            }
            assert!(Instant::now() < deadline, "TLS server did not become ready");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

/// Whether a call over `channel` fails at the transport (no gRPC status from the server).
async fn refused_at_handshake(fixture: &Fixture, tls: ClientTlsConfig) -> bool {
    let Ok(channel) = fixture.connect(tls).await else { return true };
    let mut client = BookingServiceClient::new(channel);
    match client.list_offices(proto::ListOfficesRequest {}).await {
        Ok(_) => false,
        Err(status) => {
            assert!(
                !matches!(status.code(), Code::Unauthenticated | Code::PermissionDenied),
                "expected a transport failure, got an answer from the server: {status:?}"
            );
            true
        }
    }
}

#[tokio::test]
async fn mutual_tls_identifies_the_caller_by_its_certificate() {
    let fixture = start(true);
    let operator = fixture.client_ca.sign(&["operator.callers.test"]);
    let channel = fixture.ready(fixture.tls(Some(operator))).await;

    let mut admin = AdminServiceClient::new(channel.clone());
    let office = test_office("kanim-tls", 5, 3600);
    admin
        .upsert_office(proto::UpsertOfficeRequest { request_id: request_id("office"), office: Some(office) })
        .await
        .expect("the certificate's caller has the admin role");
    let status = BookingServiceClient::new(channel.clone())
        .hold(common::hold_request("kanim-tls", 1, common::applicant(1)))
        .await
        .expect_err("admin cannot hold");
    assert_eq!(status.code(), Code::PermissionDenied);

    // A token still works over mutual TLS and takes precedence over the certificate.
    let (mut booking, _) = clients_with_token(&channel, TOKEN);
    booking.hold(common::hold_request("kanim-tls", 1, common::applicant(1))).await.expect("token caller holds");

    // The right CA, but a name no caller has.
    let stranger = fixture.client_ca.sign(&["stranger.callers.test"]);
    let channel = fixture.connect(fixture.tls(Some(stranger))).await.expect("handshake succeeds");
    let status = BookingServiceClient::new(channel)
        .list_offices(proto::ListOfficesRequest {})
        .await
        .expect_err("unknown certificate");
    assert_eq!(status.code(), Code::Unauthenticated);
    assert_eq!(reason(&status).as_deref(), Some("CERTIFICATE_UNKNOWN"));
}

#[tokio::test]
async fn mutual_tls_refuses_missing_and_foreign_certificates_and_plain_text() {
    let fixture = start(true);
    let operator = fixture.client_ca.sign(&["operator.callers.test"]);
    let channel = fixture.ready(fixture.tls(Some(operator))).await;

    assert!(refused_at_handshake(&fixture, fixture.tls(None)).await, "no client certificate");
    let foreign = Authority::new("someone else's CA").sign(&["operator.callers.test"]);
    assert!(refused_at_handshake(&fixture, fixture.tls(Some(foreign))).await, "certificate from another CA");
    let plain = Channel::from_shared(format!("http://{}", fixture.server.address)).expect("uri").connect().await;
    if let Ok(plain) = plain {
        let result = BookingServiceClient::new(plain).list_offices(proto::ListOfficesRequest {}).await;
        let status = result.expect_err("plain text to a TLS server");
        assert!(!matches!(status.code(), Code::Ok | Code::Unauthenticated | Code::PermissionDenied), "{status:?}");
    }
    let wrong_server_ca = ClientTlsConfig::new()
        .ca_certificate(Certificate::from_pem(&fixture.client_ca.certificate_pem))
        .domain_name("localhost");
    assert!(refused_at_handshake(&fixture, wrong_server_ca).await, "the client must not trust an unknown server");

    // The server is still serving after all that.
    AdminServiceClient::new(channel)
        .get_office_stats(proto::GetOfficeStatsRequest { office_id: "kanim-none".into() })
        .await
        .expect_err("not found, but answered");
}

#[tokio::test]
async fn server_tls_with_bearer_tokens() {
    let fixture = start(false);
    let channel = fixture.ready(fixture.tls(None)).await;
    let (mut booking, _) = clients_with_token(&channel, TOKEN);
    booking.list_offices(proto::ListOfficesRequest {}).await.expect("token over TLS");
    let status = BookingServiceClient::new(channel)
        .list_offices(proto::ListOfficesRequest {})
        .await
        .expect_err("no token, no client certificate");
    assert_eq!(status.code(), Code::Unauthenticated);
}

fn run_with_listen(dir: &Path, args: &[&str]) -> std::process::Child {
    Command::new(env!("CARGO_BIN_EXE_antrean"))
        .args(["--metrics-listen", "", "--data-dir"])
        .arg(dir.join("data"))
        .args(args)
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start")
}

#[test]
fn plain_text_on_a_public_address_needs_insecure() {
    let dir = tempfile::tempdir().expect("dir");
    let output = run_with_listen(dir.path(), &["--listen", "0.0.0.0:0"]).wait_with_output().expect("exit");
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("--insecure") && stderr.contains("server.listen"), "{stderr}");

    let mut child = run_with_listen(dir.path(), &["--listen", "0.0.0.0:0", "--insecure", "--allow-anonymous"]);
    let mut line = String::new();
    std::io::BufRead::read_line(&mut std::io::BufReader::new(child.stdout.take().expect("stdout")), &mut line)
        .expect("listening line");
    assert!(line.contains("listening on 0.0.0.0:"), "{line}");
    let _ = child.kill();
    let output = child.wait_with_output().expect("reap");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("--insecure: serving plain text"), "the warning is logged: {stderr}");
}

/// Issue 13, item 9: callers are identified by exact certificate names. A wildcard certificate from the right CA
/// identifies nobody, even though it would match a caller's name, and so does one naming two callers.
#[tokio::test]
async fn wildcard_and_ambiguous_certificates_identify_no_caller() {
    let fixture = start(true);
    let operator = fixture.client_ca.sign(&["operator.callers.test"]);
    fixture.ready(fixture.tls(Some(operator))).await;

    for names in [&["*.callers.test"][..], &["operator.callers.test", "kiosk.callers.test"][..]] {
        let certificate = fixture.client_ca.sign(names);
        let channel = fixture.connect(fixture.tls(Some(certificate))).await.expect("the CA signed it");
        let status = AdminServiceClient::new(channel)
            .get_office_stats(proto::GetOfficeStatsRequest { office_id: "kanim-none".into() })
            .await
            .expect_err("no caller");
        assert_eq!(status.code(), Code::Unauthenticated, "{names:?}: {status:?}");
        assert_eq!(reason(&status).as_deref(), Some("CERTIFICATE_UNKNOWN"), "{names:?}");
    }
}

/// The exit code and standard error of the binary started with `args` that must refuse to start, or `None` (and the
/// process stopped) when it started serving instead.
fn refused_to_start(dir: &Path, args: &[&str]) -> Option<(Option<i32>, String)> {
    let mut child = Command::new(env!("CARGO_BIN_EXE_antrean"))
        .arg("--data-dir")
        .arg(dir.join("data"))
        .args(args)
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start");
    let mut line = String::new();
    std::io::BufRead::read_line(&mut std::io::BufReader::new(child.stdout.take().expect("stdout")), &mut line)
        .expect("read");
    if line.contains("listening") {
        let _ = child.kill();
        let _ = child.wait();
        return None;
    }
    let output = child.wait_with_output().expect("exit");
    Some((output.status.code(), String::from_utf8_lossy(&output.stderr).into_owned()))
}

/// Issue 13, item 10: a metrics listener other hosts can reach is plain HTTP, so it needs --insecure like a plain-text
/// gRPC listener; and --insecure with no callers configured (everything open to anyone) needs a second flag.
#[test]
fn public_metrics_and_open_access_need_the_operator_to_say_so() {
    let dir = tempfile::tempdir().expect("dir");
    let metrics = ["--listen", "127.0.0.1:0", "--metrics-listen", "0.0.0.0:0"];
    let (code, stderr) = refused_to_start(dir.path(), &metrics).expect("a public metrics address is refused");
    assert_eq!(code, Some(2));
    assert!(stderr.contains("server.metrics_listen") && stderr.contains("--insecure"), "{stderr}");
    let mut with_insecure = metrics.to_vec();
    with_insecure.push("--insecure");
    assert!(refused_to_start(dir.path(), &with_insecure).is_none(), "--insecure allows it");

    let open = ["--listen", "0.0.0.0:0", "--metrics-listen", "", "--insecure"];
    let (code, stderr) = refused_to_start(dir.path(), &open).expect("no callers on a public address is refused");
    assert_eq!(code, Some(2));
    assert!(stderr.contains("--allow-anonymous") && stderr.contains("[[callers]]"), "{stderr}");
    let mut twice = open.to_vec();
    twice.push("--allow-anonymous");
    assert!(refused_to_start(dir.path(), &twice).is_none(), "said twice, it starts");
}
