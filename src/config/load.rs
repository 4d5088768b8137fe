//! Loading and checking the TOML configuration file.
//!
//! An operator who runs `wampd check` wants every mistake at once, each with the line to fix, not
//! one per run. So the file is first parsed into a tree that keeps source spans, then each piece
//! (one listener, one role, one permission, one principal ...) is deserialized on its own so that a
//! bad key in one does not hide the errors in the others, and finally the cross-references (roles
//! named by principals, realms named by authenticators ...) are checked. Every error carries the
//! line and the key path where it was found.

use std::fmt;
use std::net::SocketAddr;
use std::ops::Range;
use std::path::{Path, PathBuf};

use serde::de::DeserializeOwned;
use toml::de::{DeTable, DeValue, ValueDeserializer};
use toml::Spanned;

use super::file::{
    FileConfig, HistoryTableSpec, ListenSpec, MatchKind, MetricsSpec, PermissionSpec,
    PrincipalSpec, ProcedureRef, RealmSpec, RoleSpec, RouterSpec, MAX_ANSWER_TIMEOUT_MS,
};
use super::{Config, SlowConsumerPolicy};
use crate::protocol::uri::{self, MatchPolicy};

/// One problem in the file: where it is and what is wrong.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfigError {
    /// 1-based line number (0 when the error is about the file as a whole).
    pub line: usize,
    /// The key path, e.g. `realm[0].principal[1].role`.
    pub key: String,
    pub message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}: {}", self.line, self.key, self.message)
    }
}

/// One step of a key path.
#[derive(Clone, Debug)]
pub enum Seg {
    Key(&'static str),
    Index(usize),
}

/// A key path inside the file.
#[derive(Clone, Debug, Default)]
pub struct KeyPath(Vec<Seg>);

impl KeyPath {
    /// The path one key deeper.
    pub fn key(&self, k: &'static str) -> KeyPath {
        let mut p = self.clone();
        p.0.push(Seg::Key(k));
        p
    }

    /// The path of element `i` of the array at this path.
    pub fn index(&self, i: usize) -> KeyPath {
        let mut p = self.clone();
        p.0.push(Seg::Index(i));
        p
    }
}

impl fmt::Display for KeyPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (n, seg) in self.0.iter().enumerate() {
            match seg {
                Seg::Key(k) if n == 0 => write!(f, "{k}")?,
                Seg::Key(k) => write!(f, ".{k}")?,
                Seg::Index(i) => write!(f, "[{i}]")?,
            }
        }
        Ok(())
    }
}

/// Collects errors, mapping key paths and byte offsets to lines of the source.
pub struct Errors<'a, 'i> {
    text: &'a str,
    root: &'a Spanned<DeTable<'i>>,
    pub list: Vec<ConfigError>,
}

impl<'a, 'i> Errors<'a, 'i> {
    fn new(text: &'a str, root: &'a Spanned<DeTable<'i>>) -> Self {
        Errors {
            text,
            root,
            list: Vec::new(),
        }
    }

    /// Records an error about the value at `path` (its line is that of the deepest part of the path
    /// present in the file).
    pub fn at(&mut self, path: &KeyPath, message: impl Into<String>) {
        let span = locate(self.root, path);
        self.list.push(ConfigError {
            line: line_of(self.text, span.start),
            key: path.to_string(),
            message: message.into(),
        });
    }

    /// Records a deserialization error of the value at `path`, pointing at the key inside it that the
    /// error's span falls in.
    fn record_toml(&mut self, path: &KeyPath, value: &Spanned<DeValue<'_>>, e: &toml::de::Error) {
        let span = e.span().unwrap_or_else(|| value.span());
        let mut key = path.to_string();
        deepest_key(value, span.start, &mut key);
        self.list.push(ConfigError {
            line: line_of(self.text, span.start),
            key,
            message: e.message().trim().to_string(),
        });
    }
}

/// 1-based line of byte offset `at`.
fn line_of(text: &str, at: usize) -> usize {
    text.as_bytes()[..at.min(text.len())]
        .iter()
        .filter(|&&b| b == b'\n')
        .count()
        + 1
}

fn key_is(k: &Spanned<toml::de::DeString<'_>>, name: &str) -> bool {
    k.get_ref().as_ref() == name
}

/// The span of the deepest part of `path` present under `root`.
fn locate(root: &Spanned<DeTable<'_>>, path: &KeyPath) -> Range<usize> {
    let mut span = root.span();
    let mut table = Some(root.get_ref());
    let mut array: Option<&toml::de::DeArray<'_>> = None;
    for seg in &path.0 {
        let next = match (seg, table, array) {
            (Seg::Key(k), Some(t), _) => {
                t.iter().find(|(key, _)| key_is(key, k)).map(|(key, v)| {
                    // A table's own span may be its header only; the key's span always points at it.
                    let s = if v.get_ref().is_table() || v.get_ref().is_array() {
                        key.span()
                    } else {
                        v.span()
                    };
                    (s, v)
                })
            }
            (Seg::Index(i), _, Some(a)) => a.get(*i).map(|v| (v.span(), v)),
            _ => None,
        };
        let Some((s, v)) = next else { break };
        span = s;
        table = v.get_ref().as_table();
        array = v.get_ref().as_array();
    }
    span
}

/// Extends `key` with the path of the deepest key under `value` whose key or value contains `at`.
fn deepest_key(value: &Spanned<DeValue<'_>>, at: usize, key: &mut String) {
    let contains = |s: Range<usize>| s.start <= at && at < s.end.max(s.start + 1);
    match value.get_ref() {
        DeValue::Table(t) => {
            for (k, v) in t.iter() {
                if contains(k.span()) || contains(v.span()) {
                    key.push('.');
                    key.push_str(k.get_ref());
                    deepest_key(v, at, key);
                    return;
                }
            }
        }
        DeValue::Array(a) => {
            for (i, v) in a.iter().enumerate() {
                if contains(v.span()) {
                    key.push_str(&format!("[{i}]"));
                    deepest_key(v, at, key);
                    return;
                }
            }
        }
        _ => {}
    }
}

/// Deserializes one value as `T`, recording an error (and returning None) if it does not fit.
fn typed<T: DeserializeOwned>(
    value: &Spanned<DeValue<'_>>,
    path: &KeyPath,
    errors: &mut Errors<'_, '_>,
) -> Option<T> {
    match T::deserialize(ValueDeserializer::from(value.clone())) {
        Ok(v) => Some(v),
        Err(e) => {
            errors.record_toml(path, value, &e);
            None
        }
    }
}

/// The elements of the array at `key` of `table` (an absent key is an empty array; a value that is
/// not an array is an error).
fn elements<'v, 'i>(
    table: &'v DeTable<'i>,
    key: &'static str,
    path: &KeyPath,
    errors: &mut Errors<'_, '_>,
) -> Vec<&'v Spanned<DeValue<'i>>> {
    match table.iter().find(|(k, _)| key_is(k, key)) {
        None => Vec::new(),
        Some((_, v)) => match v.get_ref().as_array() {
            Some(a) => a.iter().collect(),
            None => {
                errors.at(&path.key(key), "expected an array of tables");
                Vec::new()
            }
        },
    }
}

/// Deserializes a table as `T` after removing the keys in `split` (which the caller deserializes
/// element by element, so that each element reports its own errors).
fn typed_without<T: DeserializeOwned>(
    value: &Spanned<DeValue<'_>>,
    split: &[&str],
    path: &KeyPath,
    errors: &mut Errors<'_, '_>,
) -> Option<T> {
    let Some(table) = value.get_ref().as_table() else {
        errors.at(path, "expected a table");
        return None;
    };
    let mut rest = DeTable::new();
    for (k, v) in table.iter() {
        if !split.contains(&k.get_ref().as_ref()) {
            rest.insert(k.clone(), v.clone());
        }
    }
    typed(
        &Spanned::new(value.span(), DeValue::Table(rest)),
        path,
        errors,
    )
}

/// A configuration file, read and checked.
#[derive(Clone, Debug)]
pub struct Loaded {
    pub file: FileConfig,
    /// The directory relative paths in the file are relative to.
    pub base_dir: PathBuf,
}

/// Reads, parses and checks `path`; applies it over `config`. Returns every error found.
pub fn load(path: &Path, config: &mut Config) -> Result<Loaded, Vec<ConfigError>> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        vec![ConfigError {
            line: 0,
            key: String::new(),
            message: format!("cannot read the file: {e}"),
        }]
    })?;
    let base_dir = path
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("."));
    let base_dir = if base_dir.as_os_str().is_empty() {
        PathBuf::from(".")
    } else {
        base_dir
    };
    load_str(&text, &base_dir, config)
}

/// Parses and checks `text` (a file in directory `base_dir`) and applies it over `config`.
pub fn load_str(
    text: &str,
    base_dir: &Path,
    config: &mut Config,
) -> Result<Loaded, Vec<ConfigError>> {
    let (root, syntax) = DeTable::parse_recoverable(text);
    let mut errors = Errors::new(text, &root);
    for e in &syntax {
        let at = e.span().map_or(0, |s| s.start);
        errors.list.push(ConfigError {
            line: line_of(text, at),
            key: String::new(),
            message: e.message().trim().to_string(),
        });
    }
    let file = parse_tree(&root, &mut errors);
    check(&file, &mut errors);
    apply(&file, base_dir, config, &mut errors);
    if errors.list.is_empty() {
        Ok(Loaded {
            file,
            base_dir: base_dir.to_path_buf(),
        })
    } else {
        errors.list.sort_by_key(|e| e.line);
        Err(errors.list)
    }
}

/// The typed file, from as much of the tree as deserializes.
fn parse_tree(root: &Spanned<DeTable<'_>>, errors: &mut Errors<'_, '_>) -> FileConfig {
    let mut file = FileConfig::default();
    let top = KeyPath::default();
    for (key, value) in root.get_ref().iter() {
        match key.get_ref().as_ref() {
            "listen" | "realm" => {}
            "metrics" => file.metrics = typed::<MetricsSpec>(value, &top.key("metrics"), errors),
            "router" => file.router = typed::<RouterSpec>(value, &top.key("router"), errors),
            other => {
                let line = line_of(errors.text, key.span().start);
                errors.list.push(ConfigError {
                    line,
                    key: other.to_string(),
                    message: "unknown key (expected listen, metrics, realm, router)".into(),
                });
            }
        }
    }
    let listen = top.key("listen");
    for (i, v) in elements(root.get_ref(), "listen", &top, errors)
        .into_iter()
        .enumerate()
    {
        file.listen
            .extend(typed::<ListenSpec>(v, &listen.index(i), errors));
    }
    let realm = top.key("realm");
    for (i, v) in elements(root.get_ref(), "realm", &top, errors)
        .into_iter()
        .enumerate()
    {
        file.realm.extend(parse_realm(v, &realm.index(i), errors));
    }
    file
}

/// One `[[realm]]`, each role, permission, principal and history entry deserialized on its own.
fn parse_realm(
    value: &Spanned<DeValue<'_>>,
    path: &KeyPath,
    errors: &mut Errors<'_, '_>,
) -> Option<RealmSpec> {
    let split = ["role", "principal", "history"];
    let mut spec: RealmSpec = typed_without(value, &split, path, errors)?;
    let table = value.get_ref().as_table()?;
    for (i, v) in elements(table, "role", path, errors)
        .into_iter()
        .enumerate()
    {
        spec.role
            .push(parse_role(v, &path.key("role").index(i), errors));
    }
    for (i, v) in elements(table, "principal", path, errors)
        .into_iter()
        .enumerate()
    {
        let ppath = path.key("principal").index(i);
        spec.principal
            .extend(typed::<PrincipalSpec>(v, &ppath, errors));
    }
    for (i, v) in elements(table, "history", path, errors)
        .into_iter()
        .enumerate()
    {
        let hpath = path.key("history").index(i);
        if let Some(h) = typed::<HistoryTableSpec>(v, &hpath, errors) {
            // Checked here, where the entry's index in the file is known.
            check_history(&h, &spec.history, &hpath, errors);
            spec.history.push(h);
        }
    }
    Some(spec)
}

/// One `[[realm.role]]`. A role whose own keys are wrong still counts as defined under its name, so
/// that its mistakes are not repeated as "role not defined" wherever it is named.
fn parse_role(
    value: &Spanned<DeValue<'_>>,
    path: &KeyPath,
    errors: &mut Errors<'_, '_>,
) -> RoleSpec {
    let mut role =
        typed_without::<RoleSpec>(value, &["permission"], path, errors).unwrap_or_else(|| {
            let name = value
                .get_ref()
                .get("name")
                .and_then(|n| n.get_ref().as_str());
            RoleSpec {
                name: name.unwrap_or_default().to_string(),
                permission: Vec::new(),
            }
        });
    if let Some(table) = value.get_ref().as_table() {
        for (j, p) in elements(table, "permission", path, errors)
            .into_iter()
            .enumerate()
        {
            let ppath = path.key("permission").index(j);
            role.permission
                .extend(typed::<PermissionSpec>(p, &ppath, errors));
        }
    }
    role
}

/// Cross-references and values that the schema alone cannot check.
fn check(file: &FileConfig, errors: &mut Errors<'_, '_>) {
    let names: Vec<&str> = file.realm.iter().map(|r| r.name.as_str()).collect();
    let realm = KeyPath::default().key("realm");
    for (i, r) in file.realm.iter().enumerate() {
        let path = realm.index(i);
        if !uri::is_valid_uri(&r.name, false) {
            errors.at(
                &path.key("name"),
                format!("{:?} is not a valid realm name", r.name),
            );
        }
        if names[..i].contains(&r.name.as_str()) {
            errors.at(
                &path.key("name"),
                format!("realm {:?} is defined twice", r.name),
            );
        }
        check_realm(r, &names, &path, errors);
    }
}

fn check_realm(r: &RealmSpec, realms: &[&str], path: &KeyPath, errors: &mut Errors<'_, '_>) {
    let roles: Vec<&str> = r.role.iter().map(|x| x.name.as_str()).collect();
    if let Some(anon) = &r.anonymous_role {
        if !roles.contains(&anon.as_str()) {
            errors.at(
                &path.key("anonymous_role"),
                format!("role {anon:?} is not defined in this realm"),
            );
        }
    }
    for (i, role) in r.role.iter().enumerate() {
        let rpath = path.key("role").index(i);
        if role.name.is_empty() {
            errors.at(&rpath.key("name"), "a role name must not be empty");
        }
        if roles[..i].contains(&role.name.as_str()) {
            errors.at(
                &rpath.key("name"),
                format!("role {:?} is defined twice", role.name),
            );
        }
        check_permissions(&role.permission, &rpath, errors);
    }
    let mut authids: Vec<&str> = Vec::new();
    for (i, p) in r.principal.iter().enumerate() {
        let ppath = path.key("principal").index(i);
        if p.authid.is_empty() {
            errors.at(&ppath.key("authid"), "an authid must not be empty");
        }
        if authids.contains(&p.authid.as_str()) {
            errors.at(
                &ppath.key("authid"),
                format!("principal {:?} is defined twice", p.authid),
            );
        }
        authids.push(&p.authid);
        if !roles.contains(&p.role.as_str()) {
            errors.at(
                &ppath.key("role"),
                format!("role {:?} is not defined in this realm", p.role),
            );
        }
        check_credentials(p, &ppath, errors);
    }
    for (key, proc_ref) in [
        ("authenticator", &r.authenticator),
        ("authorizer", &r.authorizer),
    ] {
        if let Some(p) = proc_ref {
            check_procedure(p, realms, &path.key(key), errors);
        }
    }
}

fn check_permissions(perms: &[PermissionSpec], path: &KeyPath, errors: &mut Errors<'_, '_>) {
    for (j, p) in perms.iter().enumerate() {
        let ppath = path.key("permission").index(j);
        let policy = match_policy(p.match_);
        let everything = p.uri.is_empty() && policy == MatchPolicy::Prefix;
        if !everything && !uri::is_valid_pattern(&p.uri, policy, false) {
            errors.at(
                &ppath.key("uri"),
                format!("{:?} is not a valid {} pattern", p.uri, policy.as_str()),
            );
        }
        if perms[..j]
            .iter()
            .any(|q| q.uri == p.uri && q.match_ == p.match_)
        {
            errors.at(
                &ppath.key("uri"),
                format!(
                    "a permission for {:?} ({}) is already given in this role",
                    p.uri,
                    policy.as_str()
                ),
            );
        }
    }
}

/// One `[[realm.history]]`: the same rules as the `--event-history` flag (a valid pattern for its
/// policy, a limit of 1..=MAX_HISTORY_LIMIT), and a pattern not in `earlier` entries.
fn check_history(
    h: &HistoryTableSpec,
    earlier: &[HistoryTableSpec],
    path: &KeyPath,
    errors: &mut Errors<'_, '_>,
) {
    let policy = match_policy(h.match_);
    if !uri::is_valid_pattern(&h.uri, policy, false) {
        errors.at(
            &path.key("uri"),
            format!("{:?} is not a valid {} pattern", h.uri, policy.as_str()),
        );
    }
    if h.limit == 0 || h.limit > super::MAX_HISTORY_LIMIT {
        errors.at(
            &path.key("limit"),
            format!("must be 1..={}", super::MAX_HISTORY_LIMIT),
        );
    }
    if earlier
        .iter()
        .any(|o| o.uri == h.uri && o.match_ == h.match_)
    {
        errors.at(
            &path.key("uri"),
            format!(
                "history for {:?} ({}) is already configured in this realm",
                h.uri,
                policy.as_str()
            ),
        );
    }
}

/// The trie's match policy for a permission's `match`.
pub fn match_policy(m: MatchKind) -> MatchPolicy {
    match m {
        MatchKind::Exact => MatchPolicy::Exact,
        MatchKind::Prefix => MatchPolicy::Prefix,
        MatchKind::Wildcard => MatchPolicy::Wildcard,
    }
}

fn is_hex_of_len(s: &str, len: usize) -> bool {
    s.len() == len && s.bytes().all(|b| b.is_ascii_hexdigit())
}

fn check_credentials(p: &PrincipalSpec, path: &KeyPath, errors: &mut Errors<'_, '_>) {
    if p.ticket.is_none()
        && p.wampcra.is_none()
        && p.scram.is_none()
        && p.cryptosign.is_none()
        && p.tls.is_none()
    {
        errors.at(
            path,
            "a principal needs at least one of ticket, wampcra, scram, cryptosign, tls",
        );
    }
    for (k, key) in p.cryptosign.iter().flatten().enumerate() {
        if !is_hex_of_len(key, 64) {
            errors.at(
                &path.key("cryptosign").index(k),
                "expected an Ed25519 public key as 64 hex digits",
            );
        }
    }
    if let Some(fp) = p.tls.as_ref().and_then(|t| t.fingerprint.as_deref()) {
        if !is_hex_of_len(&fp.replace(':', ""), 64) {
            errors.at(
                &path.key("tls").key("fingerprint"),
                "expected a SHA-256 fingerprint as 64 hex digits (colons allowed)",
            );
        }
    }
    if let Some(cra) = &p.wampcra {
        for (k, v) in [("iterations", cra.iterations), ("keylen", cra.keylen)] {
            if v == Some(0) {
                errors.at(&path.key("wampcra").key(k), "must be at least 1");
            }
        }
    }
}

fn check_procedure(p: &ProcedureRef, realms: &[&str], path: &KeyPath, errors: &mut Errors<'_, '_>) {
    if !uri::is_valid_uri(&p.procedure, false) {
        errors.at(
            &path.key("procedure"),
            format!("{:?} is not a valid procedure URI", p.procedure),
        );
    }
    if !realms.contains(&p.realm.as_str()) {
        errors.at(
            &path.key("realm"),
            format!("realm {:?} is not defined in this file", p.realm),
        );
    }
    if p.timeout
        .is_some_and(|t| t == 0 || t > MAX_ANSWER_TIMEOUT_MS)
    {
        errors.at(
            &path.key("timeout"),
            format!("must be 1 to {MAX_ANSWER_TIMEOUT_MS} milliseconds"),
        );
    }
}

/// Applies the checked file over `config`: listeners without TLS, realms and their specs, `[router]`.
fn apply(file: &FileConfig, base_dir: &Path, config: &mut Config, errors: &mut Errors<'_, '_>) {
    apply_listeners(file, base_dir, config, errors);
    // TLS listeners and `[metrics]` are configured here.
    super::net::apply(file, base_dir, config, errors);
    if !file.realm.is_empty() {
        config.realms = file.realm.iter().map(|r| r.name.clone()).collect();
        config.realm_specs = file.realm.clone();
    }
    if let Some(r) = &file.router {
        apply_router(r, config, errors);
    }
}

fn apply_listeners(
    file: &FileConfig,
    base_dir: &Path,
    config: &mut Config,
    errors: &mut Errors<'_, '_>,
) {
    let mut tcp = Vec::new();
    let mut unix = Vec::new();
    let listen = KeyPath::default().key("listen");
    for (i, l) in file.listen.iter().enumerate() {
        let path = listen.index(i);
        match (&l.address, &l.unix) {
            (Some(_), Some(_)) | (None, None) => {
                errors.at(&path, "give exactly one of address and unix")
            }
            (Some(a), None) => match a.parse::<SocketAddr>() {
                Ok(addr) if l.tls.is_none() => tcp.push(addr),
                Ok(_) => {}
                Err(_) => errors.at(
                    &path.key("address"),
                    format!("{a:?} is not an address (expected IP:PORT)"),
                ),
            },
            (None, Some(p)) => {
                if l.tls.is_some() {
                    errors.at(&path.key("tls"), "TLS applies to TCP listeners only");
                }
                unix.push(base_dir.join(p));
            }
        }
    }
    if !file.listen.is_empty() {
        config.listen = tcp;
        config.unix = unix;
    }
}

fn apply_router(r: &RouterSpec, config: &mut Config, errors: &mut Errors<'_, '_>) {
    let path = KeyPath::default().key("router");
    let secs = std::time::Duration::from_secs;
    if let Some(n) = r.shards {
        if n == 0 || n > 64 {
            errors.at(&path.key("shards"), "must be between 1 and 64");
        }
        config.shards = n;
    }
    let positive = [
        ("max_message_size", r.max_message_size),
        ("max_queue_bytes", r.max_queue_bytes),
        ("max_queue_messages", r.max_queue_messages),
        ("max_sessions", r.max_sessions),
        ("max_uri_length", r.max_uri_length),
        ("ring_capacity", r.ring_capacity),
    ];
    for (k, v) in positive {
        if v == Some(0) {
            errors.at(&path.key(k), "must be at least 1");
        }
    }
    set(&mut config.max_message_size, r.max_message_size);
    set(&mut config.max_queue_bytes, r.max_queue_bytes);
    set(&mut config.max_queue_messages, r.max_queue_messages);
    set(&mut config.max_sessions, r.max_sessions);
    set(&mut config.max_uri_length, r.max_uri_length);
    set(&mut config.ring_capacity, r.ring_capacity);
    set(&mut config.lenient_request_ids, r.lenient_request_ids);
    set(&mut config.pin_cores, r.pin);
    set(
        &mut config.max_subscriptions_per_session,
        r.max_subscriptions_per_session,
    );
    set(
        &mut config.max_registrations_per_session,
        r.max_registrations_per_session,
    );
    set(
        &mut config.max_pending_invocations,
        r.max_pending_invocations,
    );
    set(&mut config.handshake_timeout, r.handshake_timeout.map(secs));
    set(&mut config.hello_timeout, r.hello_timeout.map(secs));
    if let Some(s) = r.idle_timeout {
        config.idle_timeout = (s > 0).then(|| secs(s));
    }
    if let Some(p) = &r.slow_consumer {
        match p.parse::<SlowConsumerPolicy>() {
            Ok(p) => config.slow_consumer = p,
            Err(e) => errors.at(&path.key("slow_consumer"), e),
        }
    }
    set(&mut config.max_calls_per_caller, r.max_calls_per_caller);
    for (i, h) in r.event_history.iter().flatten().enumerate() {
        match h.parse::<super::HistorySpec>() {
            Ok(spec) => config.event_history.push(spec),
            Err(e) => errors.at(&path.key("event_history").index(i), e),
        }
    }
}

fn set<T>(slot: &mut T, v: Option<T>) {
    if let Some(v) = v {
        *slot = v;
    }
}

#[cfg(test)]
mod tests;
