//! The REST API's security as Patroni's `restapi` keys configure it, on a real agent: TLS with
//! client certificates, the allowlist answered (403) before the credentials (401), extra
//! headers, and certificates re-read on SIGHUP and on `POST /reload`, an encrypted key among them
//! (decrypted with `keyfile_password`). Ports 4901 (gRPC),
//! 8101 (PostgreSQL), 10701 (REST).

mod common;

use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use common::https::*;
use common::*;
use pgquorum::grpc::certs::{generate, NodeSpec};
use tokio_rustls::rustls;

const BASE_PORT: u16 = 4901;
const REST_PORT: u16 = BASE_PORT + 5800;
const ALLOWED: IpAddr = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 1));
const KEY_PASSWORD: &str = "key-s3cret";
const DENIED: IpAddr = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2));

/// `METHOD path` over TLS from `source` to this test's REST port (common::https).
async fn https(
    config: &Arc<rustls::ClientConfig>,
    source: IpAddr,
    method: &str,
    path: &str,
    auth: Option<(&str, &str)>,
) -> std::io::Result<Answer> {
    https_to(config, source, REST_PORT, method, path, auth).await
}

fn copy_identity(from: &Path, name: &str, to: &Path) {
    std::fs::copy(from.join(format!("{name}.pem")), to.join("rest.pem")).unwrap();
    std::fs::copy(from.join(format!("{name}-key.pem")), to.join("rest-key.pem")).unwrap();
}

fn served_by(answer: &Answer, certs: &Path) -> bool {
    answer.server_cert == pem_certs(&certs.join("node1.pem"))[0]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_client_certificates_allowlist_headers_and_reload() {
    let dir = TestDir::new();
    let first = dir.path().join("certs1");
    let second = dir.path().join("certs2");
    for out in [&first, &second] {
        generate(out, &[NodeSpec::parse("node1=127.0.0.1").unwrap()]).expect("generate certificates");
    }
    let served: PathBuf = dir.path().join("served");
    std::fs::create_dir_all(&served).unwrap();
    copy_identity(&first, "node1", &served);

    let opts = pg_options(dir.path(), BASE_PORT, 1, &[]);
    let rest_keys = format!(
        "restapi:\n  certfile: {cert}\n  keyfile: {key}\n  keyfile_password: {KEY_PASSWORD}\n  cafile: {ca}\n  verify_client: required\n  \
         allowlist: ['10.99.0.0/16']\n  allowlist_include_members: true\n  \
         http_extra_headers: {{X-Frame-Options: SAMEORIGIN}}\n  \
         https_extra_headers: {{Strict-Transport-Security: max-age=31536000}}\n",
        cert = served.join("rest.pem").display(),
        key = served.join("rest-key.pem").display(),
        ca = first.join("ca.pem").display(),
    );
    let yaml = solo_agent_yaml(dir.path(), &opts, "demo", 0, &[]).replacen("restapi:\n", &rest_keys, 1);
    let agent = SoloAgent::start(dir.path(), "node1", &format!("127.0.0.1:{BASE_PORT}"), &yaml);

    let both_cas = [first.join("ca.pem"), second.join("ca.pem")];
    let cas: Vec<&Path> = both_cas.iter().map(PathBuf::as_path).collect();
    let member = client(
        &cas,
        Some((&first.join("client.pem"), &first.join("client-key.pem"))),
    );
    let anonymous = client(&cas, None);
    let stranger = client(
        &cas,
        Some((&second.join("client.pem"), &second.join("client-key.pem"))),
    );

    // Up, over TLS only, with the extra headers (both kinds: this is HTTPS).
    let status = wait_for("the REST API over TLS", Duration::from_secs(90), || async {
        https(&member, ALLOWED, "GET", "/patroni", None).await.ok()
    })
    .await;
    assert_eq!(status.status, 200, "{}", status.head);
    assert!(served_by(&status, &first));
    let head = status.head.to_ascii_lowercase();
    assert!(head.contains("x-frame-options: sameorigin"), "{head}");
    assert!(
        head.contains("strict-transport-security: max-age=31536000"),
        "{head}"
    );

    // verify_client: required — no certificate, or one of another CA, gets no answer at all.
    assert!(https(&anonymous, ALLOWED, "GET", "/patroni", None).await.is_err());
    assert!(https(&stranger, ALLOWED, "GET", "/patroni", None).await.is_err());

    // The allowlist (a network plus the members' addresses, here 127.0.0.1) comes before the
    // credentials: from 127.0.0.2 even good credentials get 403; from a member's address bad
    // ones get 401. The members' addresses come from the keyspace: wait for the first view.
    let good = Some(("admin", "demo-admin"));
    let bad = Some(("admin", "wrong"));
    wait_for(
        "the members' addresses in the allowlist",
        Duration::from_secs(60),
        || async {
            let answer = https(&member, ALLOWED, "POST", "/restart", bad).await.ok()?;
            (answer.status == 401).then_some(())
        },
    )
    .await;
    for auth in [bad, good, None] {
        let answer = https(&member, DENIED, "POST", "/restart", auth).await.unwrap();
        assert_eq!(answer.status, 403, "{auth:?}: {}", answer.head);
    }
    let answer = https(&member, DENIED, "POST", "/reload", good).await.unwrap();
    assert_eq!(answer.status, 403, "{}", answer.head);
    // Read-only endpoints stay open to every address, as in Patroni.
    let answer = https(&member, DENIED, "GET", "/patroni", None).await.unwrap();
    assert_eq!(answer.status, 200, "{}", answer.head);

    // Rotation: new files in place, then SIGHUP: the next connection gets the new certificate.
    // The new key is encrypted: keyfile_password decrypts it (it was ignored for the plain one).
    copy_identity(&second, "node1", &served);
    std::fs::write(
        served.join("rest-key.pem"),
        encrypted_key_pem(&second.join("node1-key.pem"), KEY_PASSWORD),
    )
    .unwrap();
    let pid = agent.pid().expect("agent running") as i32;
    assert_eq!(unsafe { libc::kill(pid, libc::SIGHUP) }, 0);
    wait_for(
        "the new certificate after SIGHUP",
        Duration::from_secs(30),
        || async {
            let answer = https(&member, ALLOWED, "GET", "/patroni", None).await.ok()?;
            served_by(&answer, &second).then_some(())
        },
    )
    .await;

    // And back with POST /reload (allowed address, good credentials).
    copy_identity(&first, "node1", &served);
    let answer = https(&member, ALLOWED, "POST", "/reload", good).await.unwrap();
    assert_eq!(answer.status, 202, "{}", answer.head);
    let answer = https(&member, ALLOWED, "GET", "/patroni", None).await.unwrap();
    assert!(
        served_by(&answer, &first),
        "POST /reload did not re-read the certificate"
    );

    // A reload with a broken file keeps the certificate in force, and says so.
    std::fs::write(served.join("rest-key.pem"), "not a key").unwrap();
    let answer = https(&member, ALLOWED, "POST", "/reload", good).await.unwrap();
    assert_eq!(answer.status, 503, "{}", answer.head);
    let answer = https(&member, ALLOWED, "GET", "/patroni", None).await.unwrap();
    assert!(served_by(&answer, &first));

    // An encrypted key the password does not open: the same, with the reason logged.
    std::fs::write(
        served.join("rest-key.pem"),
        encrypted_key_pem(&first.join("node1-key.pem"), "another password"),
    )
    .unwrap();
    let answer = https(&member, ALLOWED, "POST", "/reload", good).await.unwrap();
    assert_eq!(answer.status, 503, "{}", answer.head);
    let answer = https(&member, ALLOWED, "GET", "/patroni", None).await.unwrap();
    assert!(served_by(&answer, &first));

    let log = agent.log_text();
    assert!(log.contains("wrong keyfile_password"), "{log}");
    assert!(
        log.contains("the private key is not encrypted: the password is ignored"),
        "{log}"
    );
    assert!(!log.contains(KEY_PASSWORD), "the password is never logged");
    assert!(
        log.contains("TLS handshake with"),
        "refused handshakes are logged"
    );
    agent.stop().await;
}
