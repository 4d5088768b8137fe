//! sweep: open-loop steps of rising offered rate; the max sustainable throughput is the
//! highest step whose p99 stays within the bound, that achieves what was offered (within 5 %),
//! with nothing lost and no errors.

use serde_json::{json, Value};

use crate::plot::{sweep_svg, SweepPoint};
use crate::stats::{fmt_rate, write_json};
use crate::{fanout, rpc, SweepWhich};

struct Step {
    rate: f64,
    offered: f64,
    achieved: f64,
    p99: u64,
    lost: u64,
    errors: u64,
    json: Value,
}

/// Achieved throughput must be at least this share of the offered one: a router that falls
/// behind the offered rate has not sustained it, even if the latency of what it did deliver is fine.
const MIN_ACHIEVED: f64 = 0.95;

impl Step {
    fn ok(&self, bound: u64) -> bool {
        self.failure(bound).is_none()
    }

    /// Why the step does not pass, if it does not.
    fn failure(&self, bound: u64) -> Option<String> {
        if self.errors > 0 || self.lost > 0 {
            Some(format!("lost {}, errors {}", self.lost, self.errors))
        } else if self.p99 > bound {
            Some(format!("p99 {} µs > {bound} µs", self.p99))
        } else if self.achieved < MIN_ACHIEVED * self.offered {
            Some(format!(
                "achieved {:.1} % of offered",
                100.0 * self.achieved / self.offered.max(1.0)
            ))
        } else {
            None
        }
    }
}

pub fn main(which: SweepWhich) -> i32 {
    let (opts, json_path, plot_path) = match &which {
        SweepWhich::Fanout { args, sweep } => {
            (sweep.clone(), args.common.json.clone(), args.plot.clone())
        }
        SweepWhich::Rpc { args, sweep } => {
            (sweep.clone(), args.common.json.clone(), args.plot.clone())
        }
    };
    let valid = crate::util::positive(opts.start)
        && opts.factor.is_finite()
        && opts.factor > 1.0
        && crate::util::positive(opts.step_secs)
        && opts.max_steps > 0;
    if !valid {
        eprintln!(
            "wampload: sweep needs --start > 0, --factor > 1, --step-secs > 0, --max-steps > 0"
        );
        return 2;
    }
    let (name, unit) = match &which {
        SweepWhich::Fanout { .. } => ("fanout", "deliveries/s"),
        SweepWhich::Rpc { .. } => ("rpc", "calls/s"),
    };
    // One open-loop run at `rate` for `secs`.
    let run_step = |rate: f64, secs: f64| -> Result<Step, String> {
        match &which {
            SweepWhich::Fanout { args, .. } => {
                let mut a = args.clone();
                a.rate = Some(rate);
                a.duration = secs;
                let mut cfg = fanout::Cfg::from_args(&a)?;
                cfg.progress = false;
                let o = fanout::run(cfg);
                Ok(Step {
                    rate,
                    offered: o.offered_deliveries_per_sec.unwrap_or(0.0),
                    achieved: o.deliveries_per_sec,
                    p99: o.p99,
                    lost: o.lost,
                    errors: o.errors,
                    json: o.json,
                })
            }
            SweepWhich::Rpc { args, .. } => {
                let mut a = args.clone();
                a.rate = Some(rate);
                a.duration = secs;
                let mut cfg = rpc::Cfg::from_args(&a)?;
                cfg.progress = false;
                let o = rpc::run(cfg);
                Ok(Step {
                    rate,
                    offered: rate,
                    achieved: o.calls_per_sec,
                    p99: o.p99,
                    lost: o.lost,
                    errors: o.errors,
                    json: o.json,
                })
            }
        }
    };
    println!(
        "sweep {name}: p99 bound {} µs, start {} /s, ×{} per step, {} s per step",
        opts.p99_us,
        fmt_rate(opts.start),
        opts.factor,
        opts.step_secs
    );
    let mut steps: Vec<Step> = Vec::new();
    let mut rate = opts.start;
    for _ in 0..opts.max_steps {
        let s = match run_step(rate, opts.step_secs) {
            Ok(s) => s,
            Err(e) => {
                eprintln!("wampload: {e}");
                return 2;
            }
        };
        let failure = s.failure(opts.p99_us);
        let ok = failure.is_none();
        println!(
            "  rate {:>10} /s  offered {:>12} {unit}  achieved {:>12}  p99 {:>8} µs  lost {}  errors {}  {}",
            fmt_rate(s.rate),
            fmt_rate(s.offered),
            fmt_rate(s.achieved),
            s.p99,
            s.lost,
            s.errors,
            failure.map_or("ok".to_string(), |f| format!("FAIL ({f})"))
        );
        steps.push(s);
        if !ok {
            break;
        }
        rate *= opts.factor;
    }
    let best = steps.iter().rev().find(|s| s.ok(opts.p99_us));
    // Latency at half the max sustainable rate: a fair point to compare routers at.
    let half = best
        .map(|b| b.rate / 2.0)
        .and_then(|r| run_step(r, opts.step_secs).ok());
    match best {
        Some(b) => println!(
            "  max sustainable: {} /s ({} {unit}, p99 {} µs)",
            fmt_rate(b.rate),
            fmt_rate(b.achieved),
            b.p99
        ),
        None => println!("  max sustainable: none (the first step already failed)"),
    }
    if let Some(h) = &half {
        println!(
            "  at half that rate ({} /s): p99 {} µs, lost {}, errors {}",
            fmt_rate(h.rate),
            h.p99,
            h.lost,
            h.errors
        );
    }
    let step_json: Vec<Value> = steps
        .iter()
        .map(|s| {
            json!({
                "rate": s.rate,
                "offered_per_sec": s.offered.round(),
                "achieved_per_sec": s.achieved.round(),
                "p99_us": s.p99,
                "lost": s.lost,
                "errors": s.errors,
                "ok": s.ok(opts.p99_us),
                "failure": s.failure(opts.p99_us),
                "result": s.json,
            })
        })
        .collect();
    let doc = json!({
        "scenario": format!("sweep-{name}"),
        "unit": unit,
        "p99_us_bound": opts.p99_us,
        "min_achieved_share": MIN_ACHIEVED,
        "start": opts.start,
        "factor": opts.factor,
        "step_secs": opts.step_secs,
        "max_steps": opts.max_steps,
        "max_sustainable_rate": best.map(|b| b.rate),
        "max_sustainable_per_sec": best.map(|b| b.achieved.round()),
        "p99_us_at_max": best.map(|b| b.p99),
        "half_max": half.as_ref().map(|h| json!({"rate": h.rate, "p99_us": h.p99, "lost": h.lost, "errors": h.errors, "result": h.json})),
        "steps": step_json,
    });
    if let Some(p) = &json_path {
        write_json(p, &doc);
    }
    if let Some(p) = &plot_path {
        let pts: Vec<SweepPoint> = steps
            .iter()
            .map(|s| SweepPoint {
                offered: s.offered,
                achieved: s.achieved,
                p99_us: s.p99 as f64,
                ok: s.ok(opts.p99_us),
            })
            .collect();
        sweep_svg(p, &format!("sweep {name}"), unit, &pts, opts.p99_us as f64);
    }
    0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn step(offered: f64, achieved: f64, p99: u64, lost: u64) -> Step {
        Step {
            rate: 1.0,
            offered,
            achieved,
            p99,
            lost,
            errors: 0,
            json: Value::Null,
        }
    }

    #[test]
    fn a_step_passes_only_when_it_keeps_up() {
        assert!(step(1000.0, 990.0, 500, 0).ok(1000));
        assert!(step(1000.0, 950.0, 500, 0).ok(1000));
        let behind = step(1000.0, 940.0, 500, 0);
        assert!(behind.failure(1000).unwrap().contains("achieved"));
        assert!(step(1000.0, 1000.0, 1001, 0)
            .failure(1000)
            .unwrap()
            .contains("p99"));
        assert!(step(1000.0, 1000.0, 10, 1)
            .failure(1000)
            .unwrap()
            .contains("lost"));
    }
}
