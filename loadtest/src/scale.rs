//! scale-report: the markdown table and the chart of a scaling run (`loadtest/scale.sh`), from
//! one fanout and one rpc result per router shard count: `DIR/fanout-<N>.json`, `DIR/rpc-<N>.json`.

use std::collections::BTreeMap;

use serde_json::Value;

use crate::plot::{scale_svg, ScalePoint};
use crate::ScaleReportArgs;

/// The results of one shard count.
#[derive(Default)]
struct Row {
    fanout: Option<Value>,
    rpc: Option<Value>,
}

pub fn main(a: ScaleReportArgs) -> i32 {
    let rows = match read_dir(&a.dir) {
        Ok(r) if !r.is_empty() => r,
        Ok(_) => {
            eprintln!("wampload: no fanout-<N>.json or rpc-<N>.json in {}", a.dir);
            return 2;
        }
        Err(e) => {
            eprintln!("wampload: cannot read {}: {e}", a.dir);
            return 2;
        }
    };
    let mut md = table(&rows);
    for n in &a.note {
        md += &format!("\n{n}\n");
    }
    print!("{md}");
    if let Some(p) = &a.md {
        if let Err(e) = std::fs::write(p, &md) {
            eprintln!("wampload: cannot write {p}: {e}");
            return 1;
        }
    }
    if let Some(p) = &a.svg {
        scale_svg(p, "wampd by shards", &points(&rows));
    }
    0
}

/// `fanout-8.json` → ("fanout", 8).
fn parse_name(name: &str) -> Option<(&str, u64)> {
    let stem = name.strip_suffix(".json")?;
    let (kind, n) = stem.rsplit_once('-')?;
    matches!(kind, "fanout" | "rpc").then_some(())?;
    Some((kind, n.parse().ok()?))
}

fn read_dir(dir: &str) -> std::io::Result<BTreeMap<u64, Row>> {
    let mut rows: BTreeMap<u64, Row> = BTreeMap::new();
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some((kind, n)) = parse_name(&name) else {
            continue;
        };
        let text = std::fs::read_to_string(entry.path())?;
        let Ok(v) = serde_json::from_str::<Value>(&text) else {
            eprintln!("wampload: {name}: not JSON, left out");
            continue;
        };
        let row = rows.entry(n).or_default();
        match kind {
            "fanout" => row.fanout = Some(v),
            _ => row.rpc = Some(v),
        }
    }
    Ok(rows)
}

fn num(v: &Option<Value>, key: &str) -> Option<f64> {
    v.as_ref()?.get(key)?.as_f64()
}

fn p99(v: &Option<Value>) -> Option<f64> {
    v.as_ref()?.get("latency_us")?.get("p99")?.as_f64()
}

/// A number with thin groups of three digits, or "–".
fn cell(x: Option<f64>) -> String {
    match x {
        Some(x) => crate::stats::fmt_rate(x).replace('_', " "),
        None => "–".into(),
    }
}

/// "lost 0, errors 0, cpu 97 %" for one result.
fn sanity(v: &Option<Value>) -> String {
    match v {
        None => "–".into(),
        Some(_) => format!(
            "lost {}, errors {}, cpu {} % × {} thr",
            cell(num(v, "lost")),
            cell(num(v, "errors")),
            cell(num(v, "wampload_cpu_percent")),
            cell(num(v, "threads")),
        ),
    }
}

fn table(rows: &BTreeMap<u64, Row>) -> String {
    let mut s = String::from(
        "| shards | fanout deliveries/s | fanout p99 µs | fanout: lost, errors, wampload CPU | rpc calls/s | rpc p99 µs | rpc: lost, errors, wampload CPU |\n\
         |---:|---:|---:|---|---:|---:|---|\n",
    );
    for (n, r) in rows {
        s += &format!(
            "| {n} | {} | {} | {} | {} | {} | {} |\n",
            cell(num(&r.fanout, "deliveries_per_sec")),
            cell(p99(&r.fanout)),
            sanity(&r.fanout),
            cell(num(&r.rpc, "calls_per_sec")),
            cell(p99(&r.rpc)),
            sanity(&r.rpc),
        );
    }
    s
}

fn points(rows: &BTreeMap<u64, Row>) -> Vec<ScalePoint> {
    rows.iter()
        .map(|(n, r)| ScalePoint {
            shards: *n,
            fanout: num(&r.fanout, "deliveries_per_sec"),
            rpc: num(&r.rpc, "calls_per_sec"),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn names() {
        assert_eq!(parse_name("fanout-16.json"), Some(("fanout", 16)));
        assert_eq!(parse_name("rpc-1.json"), Some(("rpc", 1)));
        assert_eq!(parse_name("connect-1.json"), None);
        assert_eq!(parse_name("rpc-x.json"), None);
        assert_eq!(parse_name("rpc-2.svg"), None);
    }

    #[test]
    fn table_rows_in_shard_order() {
        let mut rows = BTreeMap::new();
        rows.insert(
            2,
            Row {
                fanout: Some(
                    json!({"deliveries_per_sec": 4_000_000.0, "latency_us": {"p99": 900},
                    "lost": 0, "errors": 0, "wampload_cpu_percent": 150.5, "threads": 2}),
                ),
                rpc: None,
            },
        );
        rows.insert(
            1,
            Row {
                fanout: None,
                rpc: Some(
                    json!({"calls_per_sec": 500_000, "latency_us": {"p99": 1000},
                    "lost": 0, "errors": 1, "wampload_cpu_percent": 90, "threads": 1}),
                ),
            },
        );
        let t = table(&rows);
        let lines: Vec<&str> = t.lines().collect();
        assert_eq!(lines.len(), 4);
        assert!(lines[2].starts_with("| 1 | – | – | – | 500 000 | 1 000 | lost 0, errors 1"));
        assert!(lines[3].starts_with("| 2 | 4 000 000 | 900 | lost 0, errors 0, cpu 151 %"));
        let p = points(&rows);
        assert_eq!((p[0].shards, p[0].fanout, p[1].rpc), (1, None, None));
    }
}
