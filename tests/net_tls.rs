//! TLS listeners: wss and RawSocket over TLS on one port beside plain clients, across shards;
//! client certificates reaching the session's log lines; certificate reload; the metrics endpoint.

mod common;

use std::time::Duration;

use common::ca::TestCa;
use common::net::{http_get, tls_connect, LoggedRouter, RsSession};
use tungstenite::client::IntoClientRequest;
use tungstenite::Message as WsMessage;
use wampd::protocol::{Message, Serializer, Val};

/// Sends one JSON WAMP message over a WebSocket.
fn ws_send<S: std::io::Read + std::io::Write>(ws: &mut tungstenite::WebSocket<S>, m: &Message) {
    let mut v = Vec::new();
    m.encode(Serializer::Json, &mut v).unwrap();
    ws.send(WsMessage::Text(String::from_utf8(v).unwrap()))
        .unwrap();
}

/// The next WAMP message's type code on a WebSocket.
fn ws_recv_code<S: std::io::Read + std::io::Write>(ws: &mut tungstenite::WebSocket<S>) -> u64 {
    loop {
        if let WsMessage::Text(t) = ws.read().unwrap() {
            return Message::parse(Serializer::Json, t.as_bytes())
                .unwrap()
                .code();
        }
    }
}

#[test]
fn wss_rawsocket_tls_and_plain_share_a_port_and_the_client_certificate_reaches_the_logs() {
    let ca = TestCa::new("net_tls_share");
    let router = LoggedRouter::start(&[
        "--shards",
        "2",
        "--tls-listen",
        "127.0.0.1:0",
        "--tls-cert",
        &ca.path("server.crt"),
        "--tls-key",
        &ca.path("server.key"),
        "--tls-client-ca",
        &ca.path("ca.crt"),
        "--metrics",
        "127.0.0.1:0",
        "--log-format",
        "json",
        "--log-level",
        "wampd=debug",
    ]);
    let addr = router.addr("tls");

    // Subscriber: RawSocket over TLS with a client certificate (shard 0).
    let tls = tls_connect(&addr, &ca.ca_der, Some(ca.client("joe"))).unwrap();
    let mut sub = RsSession::join(tls, "realm1");
    sub.subscribe("net.t");

    // Publisher: wss without a client certificate (shard 1).
    let tls = tls_connect(&addr, &ca.ca_der, None).unwrap();
    let mut req = format!("wss://localhost:{}/ws", addr.split(':').nth(1).unwrap())
        .into_client_request()
        .unwrap();
    req.headers_mut()
        .insert("Sec-WebSocket-Protocol", "wamp.2.json".parse().unwrap());
    let (mut ws, _) = tungstenite::client(req, tls).expect("wss upgrade");
    ws_send(
        &mut ws,
        &Message::Hello {
            realm: "realm1".into(),
            details: Val::Dict(vec![(
                "roles".into(),
                Val::Dict(vec![("publisher".into(), Val::empty_dict())]),
            )]),
        },
    );
    assert_eq!(ws_recv_code(&mut ws), 2, "WELCOME over wss");
    ws_send(
        &mut ws,
        &Message::Publish {
            request: 1,
            options: Val::Dict(vec![("acknowledge".into(), Val::Bool(true))]),
            topic: "net.t".into(),
            args: Some(Val::List(vec![Val::UInt(7)])),
            kwargs: None,
        },
    );
    assert_eq!(ws_recv_code(&mut ws), 17, "PUBLISHED over wss");
    assert_eq!(sub.event_arg(), 7);

    // A plain RawSocket client on the TLS port is still served.
    let plain = std::net::TcpStream::connect(&addr).unwrap();
    plain
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut plain = RsSession::join(plain, "realm1");
    plain.publish_ack("net.t", 8);
    assert_eq!(sub.event_arg(), 8);

    // The session's log line carries its id, realm and authid, and the certificate's CN.
    let line = router
        .wait_line(Duration::from_secs(5), |l| {
            l.contains("session joined") && l.contains("\"tls_client_cn\":\"joe\"")
        })
        .expect("a JSON log line for the certificate's session");
    let v: serde_json::Value = serde_json::from_str(&line).expect("JSON log line");
    assert_eq!(v["span"]["session"], serde_json::json!(sub.session));
    assert_eq!(v["span"]["realm"], "realm1");
    assert_eq!(
        v["span"]["authid"].as_str().map(|s| !s.is_empty()),
        Some(true)
    );
    assert_eq!(v["fields"]["tls"], true);

    // Metrics: three sessions over two shards, two publications, two events delivered.
    let (status, body) = http_get(&router.addr("http"), "/metrics");
    assert_eq!(status, 200);
    let value = |prefix: &str| -> f64 {
        body.lines()
            .filter(|l| l.starts_with(prefix))
            .map(|l| l.rsplit(' ').next().unwrap().parse::<f64>().unwrap())
            .sum()
    };
    assert_eq!(value("wampd_sessions{realm=\"realm1\""), 3.0, "{body}");
    assert_eq!(value("wampd_sessions{realm=\"realm1\",shard=\"1\"}"), 1.0);
    assert_eq!(
        value("wampd_messages_received_total{type=\"PUBLISH\"}"),
        2.0
    );
    assert_eq!(value("wampd_events_delivered_total"), 2.0);
    assert_eq!(value("wampd_messages_sent_total{type=\"WELCOME\"}"), 3.0);
    assert!(value("wampd_bytes_sent_total") > 100.0);
    assert_eq!(http_get(&router.addr("http"), "/other").0, 404);
}

#[test]
fn reload_serves_new_connections_with_the_new_certificate_and_keeps_live_ones() {
    let ca1 = TestCa::new("net_tls_reload1");
    let ca2 = TestCa::new("net_tls_reload2");
    let files = wampd::config::TlsFiles {
        cert: ca1.dir.join("server.crt"),
        key: ca1.dir.join("server.key"),
        client_ca: None,
    };
    let config = wampd::config::Config {
        listen: vec![],
        tls_listen: vec![wampd::config::TlsListener {
            addr: "127.0.0.1:0".parse().unwrap(),
            files,
        }],
        shards: 2,
        pin_cores: false,
        ..Default::default()
    };
    let server = wampd::server::Server::start(config).expect("router starts");
    let addr = server.tls_addrs()[0].to_string();

    let mut live = RsSession::join(tls_connect(&addr, &ca1.ca_der, None).unwrap(), "realm1");
    live.subscribe("net.r");

    for f in ["server.crt", "server.key"] {
        std::fs::copy(ca2.dir.join(f), ca1.dir.join(f)).unwrap();
    }
    server.reload_tls().expect("reload");
    assert!(
        tls_connect(&addr, &ca1.ca_der, None).is_err(),
        "a new connection still got the old certificate"
    );
    let tls = tls_connect(&addr, &ca2.ca_der, None).expect("the new certificate");
    let mut publisher = RsSession::join(tls, "realm1");
    publisher.publish_ack("net.r", 1);
    assert_eq!(
        live.event_arg(),
        1,
        "the session from before the reload lives on"
    );

    // Unusable files: the error names them and the listener keeps the last good settings.
    std::fs::write(ca1.dir.join("server.crt"), "not a certificate").unwrap();
    let err = server
        .reload_tls()
        .expect_err("a broken certificate is refused");
    assert!(err.contains("server.crt"), "{err}");
    assert!(tls_connect(&addr, &ca2.ca_der, None).is_ok());
    server.stop();
}

#[test]
fn tls_works_on_the_epoll_fallback_too() {
    let ca = TestCa::new("net_tls_epoll");
    let config = wampd::config::Config {
        listen: vec![],
        tls_listen: vec![wampd::config::TlsListener {
            addr: "127.0.0.1:0".parse().unwrap(),
            files: wampd::config::TlsFiles {
                cert: ca.dir.join("server.crt"),
                key: ca.dir.join("server.key"),
                client_ca: None,
            },
        }],
        shards: 2,
        pin_cores: false,
        force_epoll: true,
        ..Default::default()
    };
    let server = wampd::server::Server::start(config).expect("router starts");
    assert!(matches!(server.driver, wampd::server::Driver::Epoll(_)));
    let addr = server.tls_addrs()[0].to_string();
    let mut sub = RsSession::join(tls_connect(&addr, &ca.ca_der, None).unwrap(), "realm1");
    sub.subscribe("net.e");
    let mut publisher = RsSession::join(tls_connect(&addr, &ca.ca_der, None).unwrap(), "realm1");
    // A payload larger than one TLS record crosses several records each way.
    for n in [1, 2, 3] {
        publisher.publish_ack_padded("net.e", n, 100_000);
        assert_eq!(sub.event_arg(), n);
    }
    server.stop();
}

#[test]
fn a_tls_principal_logs_in_with_its_client_certificate() {
    let ca = TestCa::new("net_tls_principal");
    let config = common::authz::write_config(
        "tls_principal.toml",
        r#"
[[realm]]
name = "realm1"
  [[realm.role]]
  name = "device"
    [[realm.role.permission]]
    uri = "dev."
    match = "prefix"
    allow = ["subscribe"]
  [[realm.principal]]
  authid = "joe"
  role = "device"
  tls = {}
  [[realm.principal]]
  authid = "pinned"
  role = "device"
  tls = { fingerprint = "00:11:22:33:44:55:66:77:88:99:aa:bb:cc:dd:ee:ff:00:11:22:33:44:55:66:77:88:99:aa:bb:cc:dd:ee:ff" }
"#,
    );
    let router = LoggedRouter::start(&[
        "--shards",
        "2",
        "--config",
        config.to_str().unwrap(),
        "--listen",
        "127.0.0.1:0",
        "--tls-listen",
        "127.0.0.1:0",
        "--tls-cert",
        &ca.path("server.crt"),
        "--tls-key",
        &ca.path("server.key"),
        "--tls-client-ca",
        &ca.path("ca.crt"),
    ]);
    let tls_addr = router.addr("tls");
    let connect =
        |cn: Option<&str>| tls_connect(&tls_addr, &ca.ca_der, cn.map(|c| ca.client(c))).unwrap();

    let (mut joe, details) = RsSession::login(connect(Some("joe")), "realm1", &["tls"])
        .expect("the certificate's CN is a tls principal");
    let field = |k: &str| {
        details
            .get(k)
            .and_then(|v| v.as_str())
            .map(|s| s.into_owned())
    };
    assert_eq!(field("authid").as_deref(), Some("joe"));
    assert_eq!(field("authrole").as_deref(), Some("device"));
    assert_eq!(field("authmethod").as_deref(), Some("tls"));
    joe.subscribe("dev.t");

    const FAILED: &str = "wamp.error.authentication_failed";
    let pinned = RsSession::login(connect(Some("pinned")), "realm1", &["tls"]).err();
    assert_eq!(
        pinned.as_deref(),
        Some(FAILED),
        "a certificate that misses the pin"
    );
    let stranger = RsSession::login(connect(Some("stranger")), "realm1", &["tls"]).err();
    assert!(stranger.is_some(), "a CN that is no principal");
    let bare = RsSession::login(connect(None), "realm1", &["tls"]).err();
    assert!(bare.is_some(), "TLS without a client certificate");
    let plain = std::net::TcpStream::connect(router.addr("tcp")).unwrap();
    plain
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    assert!(
        RsSession::login(plain, "realm1", &["tls"]).is_err(),
        "plain TCP"
    );
}
