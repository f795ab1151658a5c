//! TLS (README "Security"): the real server over https with a test certificate made
//! at test time (a CA, a server certificate for localhost, a client certificate);
//! mutual TLS refuses a client without a certificate; plain HTTP is refused on a
//! non-loopback address unless a proxy in front terminates TLS.

use std::path::Path;

use rcgen::{
    BasicConstraints, Certificate, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair,
};
use wor_hub::config::{DatabaseUrl, Settings};
use wor_hub::startup::{Application, StartupError};
use wor_hub::tls::TlsSettings;

struct Pki {
    dir: tempfile::TempDir,
    ca_pem: String,
    client_pem: String,
}

fn leaf(
    names: &[&str],
    usage: ExtendedKeyUsagePurpose,
    issuer: &(Certificate, KeyPair),
) -> (String, String) {
    let key = KeyPair::generate().unwrap();
    let mut params =
        CertificateParams::new(names.iter().map(|n| (*n).to_owned()).collect::<Vec<_>>()).unwrap();
    params.distinguished_name.push(DnType::CommonName, names[0]);
    params.extended_key_usages = vec![usage];
    let cert = params.signed_by(&key, &issuer.0, &issuer.1).unwrap();
    (cert.pem(), key.serialize_pem())
}

/// A CA, a server certificate for localhost and 127.0.0.1 and a client certificate,
/// as PEM files in a temp directory (`ca.pem`, `server.pem`, `server.key`).
fn pki() -> Pki {
    let ca_key = KeyPair::generate().unwrap();
    let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca.distinguished_name
        .push(DnType::CommonName, "wor-hub test CA");
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca_cert = ca.self_signed(&ca_key).unwrap();
    let ca_pem = ca_cert.pem();
    let issuer = (ca_cert, ca_key);
    let (server_pem, server_key) = leaf(
        &["localhost", "127.0.0.1"],
        ExtendedKeyUsagePurpose::ServerAuth,
        &issuer,
    );
    let (client_cert, client_key) = leaf(
        &["gp-his.example"],
        ExtendedKeyUsagePurpose::ClientAuth,
        &issuer,
    );
    let dir = tempfile::tempdir().unwrap();
    let write = |name: &str, text: &str| std::fs::write(dir.path().join(name), text).unwrap();
    write("ca.pem", &ca_pem);
    write("server.pem", &server_pem);
    write("server.key", &server_key);
    Pki {
        ca_pem,
        client_pem: format!("{client_cert}{client_key}"),
        dir,
    }
}

async fn serve(settings: Settings) -> u16 {
    let app = Application::build(&settings).await.expect("server starts");
    let port = app.port();
    tokio::spawn(app.run_until_stopped());
    port
}

fn settings(db: &Path, tls: Option<TlsSettings>) -> Settings {
    let mut s = Settings::for_database(DatabaseUrl::Sqlite(db.join("hub.db")));
    s.tls = tls;
    s
}

fn client(pki: &Pki, with_certificate: bool) -> reqwest::Client {
    let mut builder = reqwest::Client::builder()
        .use_rustls_tls()
        .tls_built_in_root_certs(false)
        .add_root_certificate(reqwest::Certificate::from_pem(pki.ca_pem.as_bytes()).unwrap());
    if with_certificate {
        builder = builder.identity(reqwest::Identity::from_pem(pki.client_pem.as_bytes()).unwrap());
    }
    builder.build().unwrap()
}

#[tokio::test]
async fn the_server_speaks_https_with_its_certificate() {
    let pki = pki();
    let db = tempfile::tempdir().unwrap();
    let tls = TlsSettings {
        cert: pki.dir.path().join("server.pem"),
        key: pki.dir.path().join("server.key"),
        client_ca: None,
    };
    let port = serve(settings(db.path(), Some(tls))).await;
    let res = client(&pki, false)
        .get(format!("https://localhost:{port}/fhir/metadata"))
        .send()
        .await
        .expect("https request");
    assert_eq!(res.status(), 200);
    let body: serde_json::Value = res.json().await.unwrap();
    assert_eq!(body["resourceType"], "CapabilityStatement");
    // Plain HTTP to the TLS port gets no FHIR answer.
    let plain = reqwest::Client::new()
        .get(format!("http://127.0.0.1:{port}/fhir/metadata"))
        .send()
        .await;
    assert!(plain.map(|r| r.status() != 200).unwrap_or(true));
}

#[tokio::test]
async fn mutual_tls_refuses_a_client_without_a_certificate() {
    let pki = pki();
    let db = tempfile::tempdir().unwrap();
    let tls = TlsSettings {
        cert: pki.dir.path().join("server.pem"),
        key: pki.dir.path().join("server.key"),
        client_ca: Some(pki.dir.path().join("ca.pem")),
    };
    let port = serve(settings(db.path(), Some(tls))).await;
    let url = format!("https://localhost:{port}/health/ready");
    let without = client(&pki, false).get(&url).send().await;
    assert!(
        without.is_err(),
        "a client without a certificate was served: {without:?}"
    );
    let with = client(&pki, true)
        .get(&url)
        .send()
        .await
        .expect("mutual TLS");
    assert_eq!(with.status(), 200);
}

#[tokio::test]
async fn plain_http_is_refused_off_loopback_unless_behind_a_proxy() {
    let db = tempfile::tempdir().unwrap();
    let mut s = settings(db.path(), None);
    s.listen = "0.0.0.0:0".parse().unwrap();
    match Application::build(&s).await {
        Err(StartupError::PlainHttp(message)) => {
            assert!(
                message.contains("--tls-cert") && message.contains("--behind-proxy"),
                "{message}"
            );
        }
        Err(other) => panic!("refused for another reason: {other}"),
        Ok(_) => panic!("served plain HTTP on 0.0.0.0"),
    }
    s.behind_proxy = true;
    // No client is registered: the open-mode rule needs its own permission too.
    s.allow_open_network = true;
    let port = serve(s).await;
    let res = reqwest::get(format!("http://127.0.0.1:{port}/health/ready"))
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
}

#[tokio::test]
async fn a_key_that_does_not_fit_the_certificate_is_refused_at_start() {
    let (first, other) = (pki(), pki());
    let db = tempfile::tempdir().unwrap();
    let tls = TlsSettings {
        cert: first.dir.path().join("server.pem"),
        key: other.dir.path().join("server.key"),
        client_ca: None,
    };
    match Application::build(&settings(db.path(), Some(tls))).await {
        Err(e) => assert!(e.to_string().contains("do not fit"), "{e}"),
        Ok(_) => panic!("started with a key of another certificate"),
    }
}
