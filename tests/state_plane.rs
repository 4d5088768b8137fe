//! The cross-shard state plane: after any sequence of subscribe, unsubscribe, register, unregister
//! and disconnects, the realm authority, every shard's replica and the sessions agree. The router
//! runs in the test process so that its state can be inspected directly.

mod common;

use std::time::Duration;

use common::{list, s, Client, InProcess};
use wampd::protocol::Serializer;

const JSON: Serializer = Serializer::Json;

#[test]
fn replicas_agree_with_the_authority_after_churn() {
    let r = InProcess::start(4);
    let mut clients: Vec<Client> = (0..12).map(|_| Client::join(&r.addr, JSON)).collect();
    for (i, c) in clients.iter_mut().enumerate() {
        c.subscribe("shared.topic");
        c.subscribe(&format!("own.topic.{i}"));
        c.register(&format!("proc.{i}"));
    }
    let report = r.report();
    assert_eq!(report.authorities[0].subscriptions.len(), 13);
    assert_eq!(report.authorities[0].registrations.len(), 12);
    assert!(r.settle(Duration::from_secs(5)).is_empty());
    for shard in &report.shards {
        assert_eq!(
            shard.realms[0].subscriptions.len(),
            13,
            "shard {}",
            shard.shard
        );
        assert_eq!(
            shard.realms[0].registrations.len(),
            12,
            "shard {}",
            shard.shard
        );
    }

    // Half leave abruptly, a quarter unsubscribe, and every procedure of a leaver is taken over.
    let leavers: Vec<Client> = clients.drain(..6).collect();
    drop(leavers);
    for c in clients.iter_mut().take(3) {
        let report = r.report();
        let id = report.authorities[0]
            .subscriptions
            .iter()
            .find(|s| s.uri == "shared.topic")
            .unwrap()
            .grant
            .id;
        let request = c.req();
        c.send(&wampd::protocol::Message::Unsubscribe {
            request,
            subscription: id,
        });
        c.recv_with(|m| assert!(matches!(m, wampd::protocol::Message::Unsubscribed { .. })));
    }
    std::thread::sleep(Duration::from_millis(100));
    let mut takers: Vec<Client> = (0..6).map(|_| Client::join(&r.addr, JSON)).collect();
    for (i, c) in takers.iter_mut().enumerate() {
        c.register(&format!("proc.{i}"));
    }
    assert_eq!(r.settle(Duration::from_secs(5)), Vec::<String>::new());
    let report = r.report();
    assert_eq!(report.authorities[0].registrations.len(), 12);
    let shared = report.authorities[0]
        .subscriptions
        .iter()
        .find(|s| s.uri == "shared.topic")
        .expect("three subscribers remain");
    assert_ne!(shared.shards, 0);

    // Every procedure answers from every shard.
    for (i, callee) in takers.iter_mut().enumerate() {
        let mut callers: Vec<Client> = (0..4).map(|_| Client::join(&r.addr, JSON)).collect();
        for caller in callers.iter_mut() {
            let req = caller.send_call(&format!("proc.{i}"), list(vec![s("ping")]));
            let (inv, _) = callee.invocation();
            callee.send_yield(inv, list(vec![s("pong")]));
            assert!(caller
                .result(req)
                .unwrap()
                .semantic_eq(&list(vec![s("pong")])));
        }
    }

    drop(clients);
    drop(takers);
    assert_eq!(r.settle(Duration::from_secs(5)), Vec::<String>::new());
    let report = r.report();
    assert!(report.authorities[0].subscriptions.is_empty());
    assert!(report.authorities[0].registrations.is_empty());
    for shard in &report.shards {
        assert!(shard.realms[0].subscriptions.is_empty());
        assert!(shard.realms[0].registrations.is_empty());
    }
}
