//! wampload: a thread-per-core load generator for WAMP routers.

use clap::{Args, Parser, Subcommand, ValueEnum};

mod check;
mod connect;
mod fanout;
mod plot;
mod rpc;
mod scale;
mod scan;
mod seq;
mod session;
mod stats;
mod sweep;
mod tls;
mod url;
mod util;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(
    name = "wampload",
    version,
    about = "Load generator for WAMP routers (fanout, rpc, connect, sweep)"
)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// P publishers → T topics → S subscribers; counts deliveries, loss, latency.
    Fanout(FanoutArgs),
    /// C callers × K calls in flight → E callees echoing; counts calls/s and latency.
    Rpc(RpcArgs),
    /// Opens N idle sessions at a given rate, holds them, measures router memory.
    Connect(ConnectArgs),
    /// Raises the offered rate step by step to find the max sustainable throughput.
    Sweep {
        #[command(subcommand)]
        which: SweepWhich,
    },
    /// Markdown table and SVG chart of a scaling run (loadtest/scale.sh) from its JSON results.
    ScaleReport(ScaleReportArgs),
}

#[derive(Subcommand)]
pub enum SweepWhich {
    Fanout {
        #[command(flatten)]
        args: FanoutArgs,
        #[command(flatten)]
        sweep: SweepOpts,
    },
    Rpc {
        #[command(flatten)]
        args: RpcArgs,
        #[command(flatten)]
        sweep: SweepOpts,
    },
}

/// Subscription match policy.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum MatchArg {
    Exact,
    Prefix,
    Wildcard,
}

impl MatchArg {
    pub fn name(self) -> &'static str {
        match self {
            MatchArg::Exact => "exact",
            MatchArg::Prefix => "prefix",
            MatchArg::Wildcard => "wildcard",
        }
    }
}

#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum SerArg {
    Json,
    Msgpack,
    Cbor,
}

impl SerArg {
    pub fn ser(self) -> wampd::protocol::Serializer {
        use wampd::protocol::Serializer;
        match self {
            SerArg::Json => Serializer::Json,
            SerArg::Msgpack => Serializer::MsgPack,
            SerArg::Cbor => Serializer::Cbor,
        }
    }
}

#[derive(Args, Clone, Debug)]
pub struct Common {
    /// Router address: ws://host:port/path, rs://host:port, unix:///path, or over TLS
    /// wss://host:port/path, rss://host:port (also rs+tls://).
    #[arg(long)]
    pub url: String,
    /// TLS: trust the certificates in this PEM file (the CA that signed the router's).
    #[arg(long)]
    pub ca: Option<String>,
    /// TLS: accept any server certificate. For benchmarks against a throwaway certificate only:
    /// the connection is encrypted but the server is not authenticated.
    #[arg(long, conflicts_with = "ca")]
    pub insecure: bool,
    /// WAMP serializer.
    #[arg(long, value_enum, default_value = "json")]
    pub serializer: SerArg,
    /// Realm to join.
    #[arg(long, default_value = "realm1")]
    pub realm: String,
    /// Runtime threads (each pinned to one allowed core); default: allowed cores.
    #[arg(long)]
    pub threads: Option<usize>,
    /// Write the result as JSON to this file.
    #[arg(long)]
    pub json: Option<String>,
    /// Router process (same machine): its CPU time over the measured phase is reported per
    /// delivery or call, a figure less disturbed by a busy machine than a rate; connect also reads
    /// its VmRSS before and after opening the sessions.
    #[arg(long)]
    pub router_pid: Option<u32>,
}

impl Common {
    /// The router to load, with its TLS settings when the URL asks for TLS.
    pub fn target(&self) -> Result<url::Target, String> {
        let trust = match (&self.ca, self.insecure) {
            (Some(ca), _) => tls::Trust::Ca(ca.clone()),
            (None, true) => tls::Trust::Insecure,
            (None, false) => tls::Trust::Unset,
        };
        url::Target::parse_with(&self.url, &trust)
    }

    pub fn threads(&self) -> usize {
        self.threads
            .unwrap_or_else(|| {
                core_affinity::get_core_ids()
                    .map(|c| c.len())
                    .filter(|n| *n > 0)
                    .unwrap_or_else(|| {
                        std::thread::available_parallelism()
                            .map(|n| n.get())
                            .unwrap_or(1)
                    })
            })
            .max(1)
    }
}

#[derive(Args, Clone, Debug)]
pub struct FanoutArgs {
    #[command(flatten)]
    pub common: Common,
    /// Publisher sessions.
    #[arg(long, default_value_t = 1)]
    pub publishers: usize,
    /// Subscriber sessions (subscriber i subscribes topic i % topics).
    #[arg(long, default_value_t = 100)]
    pub subscribers: usize,
    /// Topics `wampload.fanout.<k>`; publishers publish round-robin over them.
    #[arg(long, default_value_t = 1)]
    pub topics: usize,
    /// Approximate size in bytes of one encoded EVENT message (without transport framing).
    #[arg(long, default_value_t = 64)]
    pub payload: usize,
    /// Publications per second over all publishers (open loop); default: closed loop, as fast as acknowledged.
    #[arg(long)]
    pub rate: Option<f64>,
    /// Seconds of publishing.
    #[arg(long, default_value_t = 10.0)]
    pub duration: f64,
    /// Latency percentile chart (SVG).
    #[arg(long)]
    pub plot: Option<String>,
    /// Closed loop: ask for an acknowledgement every N-th publication.
    #[arg(long, default_value_t = 64)]
    pub ack_every: u64,
    /// Closed loop: at most this many acknowledgement windows outstanding per publisher.
    #[arg(long, default_value_t = 4)]
    pub windows: u64,
    /// How subscribers read events: `check` (light scan + checks), `full` (validated parse +
    /// checks) or `count` (count frames only: the ceiling reference, nothing is checked).
    #[arg(long, value_enum, default_value = "check")]
    pub reader: check::Reader,
    /// Subscription match policy; with prefix/wildcard, events must name the concrete topic.
    #[arg(long = "match", value_enum, default_value = "exact")]
    pub match_policy: MatchArg,
    /// Add `exclude` with N session ids to every publication. The ids are drawn at random and
    /// belong to no subscriber, so every event is still expected everywhere: the run measures what
    /// the router pays for checking the list.
    #[arg(long, default_value_t = 0)]
    pub exclude: usize,
    /// Add `eligible_authrole: [ROLE]` to every publication (use the subscribers' role, e.g.
    /// `anonymous`, so that all of them stay eligible and the run measures the identity check).
    #[arg(long)]
    pub eligible_authrole: Option<String>,
    /// Add `disclose_me: true` to every publication.
    #[arg(long)]
    pub disclose: bool,
}

#[derive(Args, Clone, Debug)]
pub struct RpcArgs {
    #[command(flatten)]
    pub common: Common,
    /// Caller sessions.
    #[arg(long, default_value_t = 10)]
    pub callers: usize,
    /// Calls in flight per caller (closed loop), or the cap on them with --rate.
    #[arg(long, default_value_t = 32)]
    pub inflight: usize,
    /// Callee sessions, all registering `wampload.rpc.echo` (shared registration) when the
    /// router allows it, else one procedure `wampload.rpc.echo.<e>` each.
    #[arg(long, default_value_t = 1)]
    pub callees: usize,
    /// Approximate size in bytes of one encoded CALL message.
    #[arg(long, default_value_t = 64)]
    pub payload: usize,
    /// Calls per second over all callers (open loop); default: closed loop.
    #[arg(long)]
    pub rate: Option<f64>,
    /// Seconds of calling.
    #[arg(long, default_value_t = 10.0)]
    pub duration: f64,
    /// Latency percentile chart (SVG).
    #[arg(long)]
    pub plot: Option<String>,
    /// How callers read results: `check` (light scan) or `full` (validated parse); both check
    /// that each RESULT echoes its own call.
    #[arg(long, value_enum, default_value = "check")]
    pub reader: check::Reader,
    /// Progressive call results: every CALL asks for them (`receive_progress`) and the callee
    /// sends this many progressive YIELDs before the final one; 0 = plain calls.
    #[arg(long, default_value_t = 0)]
    pub progressive: u64,
    /// Invocation policy of the shared registration when --callees > 1: roundrobin, random,
    /// first, last or least_loaded.
    #[arg(long, default_value = "roundrobin", value_parser = ["roundrobin", "random", "first", "last", "least_loaded"])]
    pub invoke: String,
    /// Sharded registration: every CALL carries `rkey` "k<n>", n cycling over this many keys
    /// (the call's sequence number modulo N); 0 = no rkey.
    #[arg(long, default_value_t = 0)]
    pub rkeys: u64,
}

#[derive(Args, Clone, Debug)]
pub struct ConnectArgs {
    #[command(flatten)]
    pub common: Common,
    /// Sessions to open.
    #[arg(long, default_value_t = 1000)]
    pub sessions: usize,
    /// Session openings per second (over all threads).
    #[arg(long, default_value_t = 1000.0)]
    pub rate: f64,
    /// Seconds to hold the sessions idle once all are open.
    #[arg(long, default_value_t = 5.0)]
    pub hold: f64,
}

#[derive(Args, Clone, Debug)]
pub struct SweepOpts {
    /// p99 latency bound in µs a step must stay within (with zero loss) to pass.
    #[arg(long = "p99-us")]
    pub p99_us: u64,
    /// First offered rate (publications/s for fanout, calls/s for rpc).
    #[arg(long, default_value_t = 1000.0)]
    pub start: f64,
    /// Rate multiplier between steps.
    #[arg(long, default_value_t = 1.5)]
    pub factor: f64,
    /// Seconds per step.
    #[arg(long, default_value_t = 5.0)]
    pub step_secs: f64,
    /// Most steps to run.
    #[arg(long, default_value_t = 20)]
    pub max_steps: usize,
}

#[derive(Args, Clone, Debug)]
pub struct ScaleReportArgs {
    /// Directory holding fanout-<N>.json and rpc-<N>.json, N = router shards.
    #[arg(long)]
    pub dir: String,
    /// Write the markdown table here (it is printed either way).
    #[arg(long)]
    pub md: Option<String>,
    /// Write the chart here.
    #[arg(long)]
    pub svg: Option<String>,
    /// A paragraph added under the table (how the run was set up, what was skipped); repeatable.
    #[arg(long)]
    pub note: Vec<String>,
}

fn main() {
    util::init_clock();
    util::raise_nofile_limit();
    let cli = Cli::parse();
    let code = match cli.cmd {
        Cmd::Fanout(a) => fanout::main(a),
        Cmd::Rpc(a) => rpc::main(a),
        Cmd::Connect(a) => connect::main(a),
        Cmd::Sweep { which } => sweep::main(which),
        Cmd::ScaleReport(a) => scale::main(a),
    };
    std::process::exit(code);
}
