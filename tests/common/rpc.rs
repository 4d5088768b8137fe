//! Helpers for the Advanced RPC tests: sessions placed on chosen shards that announce chosen
//! features, CALL/REGISTER/YIELD with options, and a decoded view of what a caller or callee got.

use std::borrow::Cow;
use std::time::Duration;

use wampd::protocol::{Message, Serializer, Val};

use super::{dict, list, Client};

/// Opens sessions so that each lands on a chosen shard (connections are spread round-robin).
pub struct Spots {
    addr: String,
    shards: usize,
    connections: usize,
    fillers: Vec<Client>,
}

impl Spots {
    pub fn new(addr: &str, shards: usize) -> Spots {
        Spots {
            addr: addr.to_string(),
            shards,
            connections: 0,
            fillers: Vec::new(),
        }
    }

    /// A RawSocket session on `shard` announcing `features` (role, feature) in HELLO.
    pub fn join(&mut self, shard: usize, ser: Serializer, features: &[(&str, &str)]) -> Client {
        while self.connections % self.shards != shard {
            self.fillers
                .push(Client::join(&self.addr, Serializer::Json));
            self.connections += 1;
        }
        self.connections += 1;
        let mut c = Client::rawsocket(&self.addr, ser);
        hello_with(&mut c, features);
        c
    }
}

/// Every RPC feature a caller and a callee can announce.
pub const ALL: &[(&str, &str)] = &[
    ("caller", "call_canceling"),
    ("caller", "progressive_call_results"),
    ("caller", "call_timeout"),
    ("caller", "caller_identification"),
    ("callee", "call_canceling"),
    ("callee", "progressive_call_results"),
    ("callee", "caller_identification"),
    ("caller", "progressive_call_invocations"),
    ("callee", "progressive_call_invocations"),
];

/// Sends HELLO for `realm1` announcing `features`, and expects WELCOME.
pub fn hello_with(c: &mut Client, features: &[(&str, &str)]) {
    let mut roles: Vec<(Cow<'_, str>, Val<'_>)> = Vec::new();
    for role in ["caller", "callee"] {
        let f: Vec<(Cow<'_, str>, Val<'_>)> = features
            .iter()
            .filter(|(r, _)| *r == role)
            .map(|(_, f)| (Cow::Owned(f.to_string()), Val::Bool(true)))
            .collect();
        roles.push((
            Cow::Borrowed(role),
            Val::Dict(vec![(Cow::Borrowed("features"), Val::Dict(f))]),
        ));
    }
    c.send(&Message::Hello {
        realm: Cow::Borrowed("realm1"),
        details: Val::Dict(vec![(Cow::Borrowed("roles"), Val::Dict(roles))]),
    });
    c.session = c.recv_with(|m| match m {
        Message::Welcome { session, .. } => session,
        other => panic!("expected WELCOME, got {other:?}"),
    });
}

/// REGISTER with options; returns the registration id.
pub fn register_opts(c: &mut Client, procedure: &str, options: Val<'_>) -> u64 {
    let request = c.req();
    c.send(&Message::Register {
        request,
        options,
        procedure: Cow::Borrowed(procedure),
    });
    match c.recv_rpc() {
        Rpc::Registered(id) => id,
        other => panic!("expected REGISTERED, got {other:?}"),
    }
}

/// CALL with options and one integer argument; returns the request id.
pub fn call_opts(c: &mut Client, procedure: &str, options: Val<'_>, arg: u64) -> u64 {
    let request = c.req();
    call_with_id(c, request, procedure, options, arg);
    request
}

/// CALL with a given request id (a chunk of a progressive call reuses the first one's).
pub fn call_with_id(c: &mut Client, request: u64, procedure: &str, options: Val<'_>, arg: u64) {
    c.send(&Message::Call {
        request,
        options,
        procedure: Cow::Borrowed(procedure),
        args: Some(list(vec![Val::UInt(arg)])),
        kwargs: None,
    });
}

/// YIELD (progressive when `progress`) with one integer argument.
pub fn yield_arg(c: &mut Client, request: u64, progress: bool, arg: u64) {
    let options = if progress {
        dict(&[("progress", Val::Bool(true))])
    } else {
        Val::empty_dict()
    };
    c.send(&Message::Yield {
        request,
        options,
        args: Some(list(vec![Val::UInt(arg)])),
        kwargs: None,
    });
}

/// ERROR for INVOCATION `request` with error URI `uri`.
pub fn invocation_error(c: &mut Client, request: u64, uri: &str) {
    c.send(&Message::Error {
        request_type: 68,
        request,
        details: Val::empty_dict(),
        error: Cow::Borrowed(uri),
        args: None,
        kwargs: None,
    });
}

/// CANCEL for call `request`, with `mode` (None: no mode option).
pub fn cancel(c: &mut Client, request: u64, mode: Option<&str>) {
    let options = match mode {
        Some(m) => dict(&[("mode", Val::Str(Cow::Borrowed(m)))]),
        None => Val::empty_dict(),
    };
    c.send(&Message::Cancel { request, options });
}

/// What a caller or callee got, with the details the RPC features act on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Rpc {
    Registered(u64),
    Invocation {
        request: u64,
        arg: u64,
        receive_progress: bool,
        /// A progressive call invocation: more chunks follow.
        progress: bool,
        caller: Option<u64>,
        caller_authid: Option<String>,
        caller_authrole: Option<String>,
    },
    Result {
        request: u64,
        arg: u64,
        progress: bool,
    },
    Error {
        request: u64,
        error: String,
    },
    Interrupt {
        request: u64,
        mode: Option<String>,
        reason: Option<String>,
    },
    Other(String),
}

fn first_arg(args: Option<Val<'_>>) -> u64 {
    match args.map(Val::into_owned) {
        Some(Val::List(items)) => items.first().and_then(|v| v.as_u64()).unwrap_or(u64::MAX),
        _ => u64::MAX,
    }
}

fn text(v: &Val<'_>, key: &str) -> Option<String> {
    v.get(key).and_then(|x| x.as_str()).map(|s| s.into_owned())
}

fn flag(v: &Val<'_>, key: &str) -> bool {
    v.get(key).and_then(|x| x.as_bool()) == Some(true)
}

/// Decodes one message the router sent.
pub fn rpc(ser: Serializer, frame: &[u8]) -> Rpc {
    let msg = match Message::parse(ser, frame) {
        Ok(m) => m,
        Err(e) => return Rpc::Other(format!("unparseable: {e}")),
    };
    match msg {
        Message::Registered { registration, .. } => Rpc::Registered(registration),
        Message::Invocation {
            request,
            details,
            args,
            ..
        } => Rpc::Invocation {
            request,
            arg: first_arg(args),
            receive_progress: flag(&details, "receive_progress"),
            progress: flag(&details, "progress"),
            caller: details.get("caller").and_then(|v| v.as_u64()),
            caller_authid: text(&details, "caller_authid"),
            caller_authrole: text(&details, "caller_authrole"),
        },
        Message::Result {
            request,
            details,
            args,
            ..
        } => Rpc::Result {
            request,
            arg: first_arg(args),
            progress: flag(&details, "progress"),
        },
        Message::Error { request, error, .. } => Rpc::Error {
            request,
            error: error.into_owned(),
        },
        Message::Interrupt { request, options } => Rpc::Interrupt {
            request,
            mode: text(&options, "mode"),
            reason: text(&options, "reason"),
        },
        other => Rpc::Other(format!("{other:?}")),
    }
}

impl Client {
    /// The next message, decoded; panics when nothing comes in time.
    pub fn recv_rpc(&mut self) -> Rpc {
        let frame = self.recv().expect("a message");
        rpc(self.ser, &frame)
    }

    /// The next message if one comes within `t`.
    pub fn try_recv_rpc(&mut self, t: Duration) -> Option<Rpc> {
        self.set_timeout(t);
        let got = self.recv().map(|f| rpc(self.ser, &f));
        self.set_timeout(super::TIMEOUT);
        got
    }

    /// Expects an INVOCATION; returns (request id, argument).
    pub fn expect_invocation(&mut self) -> (u64, u64) {
        match self.recv_rpc() {
            Rpc::Invocation { request, arg, .. } => (request, arg),
            other => panic!("expected INVOCATION, got {other:?}"),
        }
    }
}
