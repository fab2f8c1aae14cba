//! The Kafka listener over TLS with SASL: PLAIN (kcat), SCRAM-SHA-256 and SCRAM-SHA-512
//! (confluent-kafka) with the admin credentials (user `admin`, the admin token as password);
//! a wrong password is an authentication error; admin requests need the admin session while
//! data requests do not (unless `kafka.sasl_required`, where an unauthenticated Metadata
//! request closes the connection).

use super::abuse::{Wire, metadata_all};
use super::{Broker, start};
use crate::certs::Pki;
use anyhow::{Context, Result, ensure};
use kafka_protocol::messages::{
    ApiVersionsRequest, ApiVersionsResponse, MetadataResponse, SaslAuthenticateRequest,
    SaslAuthenticateResponse, SaslHandshakeRequest, SaslHandshakeResponse,
};
use kafka_protocol::protocol::StrBytes;
use serde_json::{Value, json};

const TOKEN: &str = "kafka-admin-t0ken";

fn path(p: &std::path::Path) -> Result<&str> {
    p.to_str().context("a non-UTF-8 path")
}

/// kcat `-X` flags for TLS to `pki`'s CA, and SASL `mechanism` as `user`/`password`.
fn kcat_auth(ca: &str, sasl: Option<(&str, &str, &str)>) -> Vec<String> {
    let mut x = vec![format!("ssl.ca.location={ca}")];
    match sasl {
        Some((mechanism, user, password)) => x.extend([
            "security.protocol=SASL_SSL".into(),
            format!("sasl.mechanisms={mechanism}"),
            format!("sasl.username={user}"),
            format!("sasl.password={password}"),
        ]),
        None => x.push("security.protocol=SSL".into()),
    }
    x.into_iter().flat_map(|p| ["-X".into(), p]).collect()
}

fn with(args: &[&str], auth: &[String]) -> Vec<String> {
    auth.iter()
        .cloned()
        .chain(args.iter().map(|&a| a.to_owned()))
        .collect()
}

fn kcat(b: &Broker, args: &[&str], auth: &[String], stdin: &[u8]) -> Result<std::process::Output> {
    let all = with(args, auth);
    let refs: Vec<&str> = all.iter().map(String::as_str).collect();
    b.kcat(&refs, stdin)
}

fn kcat_ok(b: &Broker, args: &[&str], auth: &[String], stdin: &[u8]) -> Result<String> {
    let all = with(args, auth);
    let refs: Vec<&str> = all.iter().map(String::as_str).collect();
    b.kcat_ok(&refs, stdin)
}

/// confluent-kafka settings for TLS to `ca` and SASL `mechanism` with `password`.
fn py_conf(ca: &str, sasl: Option<(&str, &str)>) -> Value {
    let mut conf = json!({ "ssl.ca.location": ca, "security.protocol": "SSL" });
    if let Some((mechanism, password)) = sasl {
        conf["security.protocol"] = "SASL_SSL".into();
        conf["sasl.mechanisms"] = mechanism.into();
        conf["sasl.username"] = "admin".into();
        conf["sasl.password"] = password.into();
    }
    conf
}

fn create_topic_via_kafka(b: &Broker, conf: Value, name: &str) -> Result<Value> {
    let out = b.python(
        "admin",
        json!({
            "conf": conf,
            "timeout": 10,
            "steps": [{ "op": "create_topics", "topics": [{ "name": name, "partitions": 1 }] }],
        }),
    )?;
    Ok(out["results"][0].clone())
}

fn listed(b: &Broker, auth: &[String], topic: &str) -> Result<bool> {
    let md: Value = serde_json::from_str(&kcat_ok(b, &["-J", "-L"], auth, b"")?)?;
    Ok(md["topics"]
        .as_array()
        .context("topics")?
        .iter()
        .any(|t| t["topic"] == topic))
}

#[test]
fn sasl_ssl_plain_and_scram_with_the_admin_credentials() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let pki = Pki::generate(dir.path(), "kafka")?;
    let (ca, cert, key) = (
        path(&pki.ca)?,
        path(&pki.server_cert)?,
        path(&pki.server_key)?,
    );
    let b = start(
        &dir.path().join("data"),
        &[
            "--admin-token",
            TOKEN,
            "--tls-cert",
            cert,
            "--tls-key",
            key,
            "--set",
            "kafka.tls=true",
            "--set",
            "kafka.sasl_mechanisms=PLAIN,SCRAM-SHA-256,SCRAM-SHA-512",
        ],
    )?;
    b.create_topic("secure", 1, &[], &["--tls-ca", ca, "--token", TOKEN])?;

    // PLAIN as admin over SASL_SSL: metadata, produce, consume.
    let plain = kcat_auth(ca, Some(("PLAIN", "admin", TOKEN)));
    ensure!(listed(&b, &plain, "secure")?);
    kcat_ok(&b, &["-P", "-t", "secure", "-K:"], &plain, b"a:1\nb:2\n")?;
    let read = kcat_ok(
        &b,
        &[
            "-C",
            "-t",
            "secure",
            "-o",
            "beginning",
            "-e",
            "-q",
            "-f",
            "%o %k=%s\\n",
        ][..],
        &plain,
        b"",
    )
    .map_err(|e| e.context("consuming over SASL_SSL PLAIN"))?;
    ensure!(read == "0 a=1\n1 b=2\n", "{read:?}");

    // A wrong password: an authentication error, nothing served.
    let wrong = kcat_auth(ca, Some(("PLAIN", "admin", "not-the-token")));
    let out = kcat(&b, &["-L", "-m", "5"], &wrong, b"")?;
    let stderr = String::from_utf8_lossy(&out.stderr);
    ensure!(!out.status.success(), "wrong password listed topics");
    ensure!(stderr.contains("Authentication failed"), "stderr: {stderr}");
    let stranger = kcat_auth(ca, Some(("PLAIN", "someone", TOKEN)));
    let out = kcat(&b, &["-L", "-m", "5"], &stranger, b"")?;
    ensure!(!out.status.success(), "an unknown user listed topics");

    // Plaintext against the TLS listener: no answer.
    let out = b.kcat(&["-L", "-m", "3"], b"")?;
    ensure!(!out.status.success(), "plaintext listed topics over TLS");

    // TLS without SASL: data requests are served, admin requests are refused.
    let anonymous = kcat_auth(ca, None);
    kcat_ok(&b, &["-P", "-t", "secure"], &anonymous, b"anon\n")?;
    let read = kcat_ok(
        &b,
        &["-C", "-t", "secure", "-o", "-1", "-e", "-q"],
        &anonymous,
        b"",
    )?;
    ensure!(read == "anon\n", "{read:?}");
    let refused = create_topic_via_kafka(&b, py_conf(ca, None), "not-made")?;
    let name = refused["ok"]["not-made"]["name"]
        .as_str()
        .unwrap_or_default();
    ensure!(
        matches!(
            name,
            "TOPIC_AUTHORIZATION_FAILED" | "CLUSTER_AUTHORIZATION_FAILED"
        ),
        "create_topics without SASL: {refused}"
    );
    ensure!(!listed(&b, &plain, "not-made")?);

    // The admin session may.
    let made = create_topic_via_kafka(&b, py_conf(ca, Some(("PLAIN", TOKEN))), "made-plain")?;
    ensure!(made["ok"] == json!({ "made-plain": null }), "{made}");
    ensure!(listed(&b, &plain, "made-plain")?);

    // SCRAM-SHA-256 and -512 through confluent-kafka: produce, consume, administer; a wrong
    // password is an authentication error.
    for mechanism in ["SCRAM-SHA-256", "SCRAM-SHA-512"] {
        let conf = py_conf(ca, Some((mechanism, TOKEN)));
        let topic = format!("made-{}", mechanism.to_lowercase());
        let made = create_topic_via_kafka(&b, conf.clone(), &topic)?;
        ensure!(
            made["ok"][&topic].is_null() && made.get("error").is_none(),
            "{mechanism}: {made}"
        );
        let mut produce_conf = conf.clone();
        produce_conf["message.timeout.ms"] = 10_000.into();
        let produced = b.python(
            "produce",
            json!({ "conf": produce_conf, "topic": topic, "timeout": 15, "records": [
                { "key": "6b", "value": "7363726d", "partition": 0 },
            ]}),
        )?;
        ensure!(
            produced["deliveries"][0]["error"].is_null()
                && produced["deliveries"][0]["offset"] == 0,
            "{mechanism}: {produced}"
        );
        let consumed = b.python(
            "consume",
            json!({ "conf": conf, "max": 1,
                    "assign": [{ "topic": topic, "partition": 0, "offset": "earliest" }] }),
        )?;
        ensure!(
            consumed["messages"][0]["value"] == "7363726d",
            "{mechanism}: {consumed}"
        );

        let bad = py_conf(ca, Some((mechanism, "not-the-token")));
        let refused = b.python(
            "admin",
            json!({ "conf": bad, "timeout": 5, "steps": [{ "op": "describe_cluster" }] }),
        )?;
        ensure!(
            refused["results"][0].get("error").is_some(),
            "{mechanism}: {refused}"
        );
        // (librdkafka reports the broker's SASL error in its log, not always through the
        // error callback before the operation times out; kcat's log is checked below.)
        let wrong = kcat_auth(ca, Some((mechanism, "admin", "not-the-token")));
        let out = kcat(&b, &["-L", "-m", "5"], &wrong, b"")?;
        let stderr = String::from_utf8_lossy(&out.stderr);
        ensure!(
            !out.status.success(),
            "{mechanism}: a wrong password listed topics"
        );
        ensure!(
            stderr.contains("Authentication failed"),
            "{mechanism}: {stderr}"
        );
    }
    Ok(())
}

#[test]
fn sasl_required_closes_unauthenticated_requests() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let b = start(
        dir.path(),
        &[
            "--admin-token",
            TOKEN,
            "--set",
            "kafka.sasl_mechanisms=PLAIN",
            "--set",
            "kafka.sasl_required=true",
        ],
    )?;
    b.create_topic("guarded", 1, &[], &["--token", TOKEN])?;

    // ApiVersions is answered before authentication; Metadata closes the connection.
    let mut w = Wire::connect(b.kafka)?;
    let versions: ApiVersionsResponse = w.call(3, &ApiVersionsRequest::default())?;
    ensure!(versions.error_code == 0, "{versions:?}");
    let frame = w.frame(12, &metadata_all())?;
    w.write(&frame)?;
    w.expect_closed()?;

    // SaslHandshake v1 and SaslAuthenticate with PLAIN, then Metadata is answered.
    let mut w = Wire::connect(b.kafka)?;
    let hs: SaslHandshakeResponse = w.call(
        1,
        &SaslHandshakeRequest::default().with_mechanism(StrBytes::from_static_str("PLAIN")),
    )?;
    ensure!(hs.error_code == 0, "{hs:?}");
    ensure!(
        hs.mechanisms.iter().any(|m| m.as_str() == "PLAIN"),
        "{hs:?}"
    );
    let token = format!("\0admin\0{TOKEN}");
    let auth: SaslAuthenticateResponse = w.call(
        2,
        &SaslAuthenticateRequest::default().with_auth_bytes(token.into_bytes().into()),
    )?;
    ensure!(auth.error_code == 0, "{auth:?}");
    let md: MetadataResponse = w.call(12, &metadata_all())?;
    ensure!(md.topics.len() == 1, "{md:?}");

    // SaslHandshake v0: the SASL token then travels as a bare size-prefixed frame, and so
    // does the (empty) answer; after it the connection is authenticated.
    let mut w = Wire::connect(b.kafka)?;
    let hs: SaslHandshakeResponse = w.call(
        0,
        &SaslHandshakeRequest::default().with_mechanism(StrBytes::from_static_str("PLAIN")),
    )?;
    ensure!(hs.error_code == 0, "{hs:?}");
    let token = format!("\0admin\0{TOKEN}");
    let mut bare = (u32::try_from(token.len())?).to_be_bytes().to_vec();
    bare.extend_from_slice(token.as_bytes());
    w.write(&bare)?;
    let reply = w.read_frame()?.context("no answer to a bare SASL token")?;
    ensure!(reply.is_empty(), "PLAIN's answer is empty: {reply:?}");
    let md: MetadataResponse = w.call(12, &metadata_all())?;
    ensure!(md.topics.len() == 1, "{md:?}");
    // A wrong password after v0 closes the connection (v0 has no error field).
    let mut w = Wire::connect(b.kafka)?;
    let _: SaslHandshakeResponse = w.call(
        0,
        &SaslHandshakeRequest::default().with_mechanism(StrBytes::from_static_str("PLAIN")),
    )?;
    let wrong = b"\0admin\0nope";
    let mut bare = (u32::try_from(wrong.len())?).to_be_bytes().to_vec();
    bare.extend_from_slice(wrong);
    w.write(&bare)?;
    w.expect_closed()?;

    // A wrong password on the raw wire: SASL_AUTHENTICATION_FAILED (58) with a message.
    let mut w = Wire::connect(b.kafka)?;
    let _: SaslHandshakeResponse = w.call(
        1,
        &SaslHandshakeRequest::default().with_mechanism(StrBytes::from_static_str("PLAIN")),
    )?;
    let bad: SaslAuthenticateResponse = w.call(
        2,
        &SaslAuthenticateRequest::default().with_auth_bytes(b"\0admin\0nope".to_vec().into()),
    )?;
    ensure!(
        bad.error_code == 58 && bad.error_message.is_some(),
        "{bad:?}"
    );

    // kcat: SASL_PLAINTEXT PLAIN lists and produces; without SASL it gets nothing.
    let sasl: Vec<String> = [
        "security.protocol=SASL_PLAINTEXT",
        "sasl.mechanisms=PLAIN",
        "sasl.username=admin",
    ]
    .iter()
    .map(|s| (*s).to_owned())
    .chain([format!("sasl.password={TOKEN}")])
    .flat_map(|p| ["-X".to_owned(), p])
    .collect();
    ensure!(listed(&b, &sasl, "guarded")?);
    kcat_ok(&b, &["-P", "-t", "guarded"], &sasl, b"in\n")?;
    let out = b.kcat(&["-L", "-m", "3"], b"")?;
    ensure!(!out.status.success(), "kcat without SASL listed topics");
    Ok(())
}
