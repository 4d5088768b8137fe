//! Hand-drawn SVG charts: latency percentile curves and sweep results.

use std::fmt::Write;

use crate::stats::Lat;

const W: f64 = 720.0;
const H: f64 = 420.0;
const ML: f64 = 80.0;
const MR: f64 = 30.0;
const MT: f64 = 40.0;
const MB: f64 = 60.0;

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// A "nice" axis maximum and tick step for values up to `max`.
fn nice(max: f64) -> (f64, f64) {
    let max = if max <= 0.0 { 1.0 } else { max };
    let raw = max / 5.0;
    let mag = 10f64.powf(raw.log10().floor());
    let step = [1.0, 2.0, 2.5, 5.0, 10.0]
        .iter()
        .map(|m| m * mag)
        .find(|s| *s >= raw)
        .unwrap_or(10.0 * mag);
    ((max / step).ceil() * step, step)
}

fn fmt_num(v: f64) -> String {
    if v >= 1e6 {
        format!("{}M", trim(v / 1e6))
    } else if v >= 1e3 {
        format!("{}k", trim(v / 1e3))
    } else {
        trim(v)
    }
}

fn trim(v: f64) -> String {
    let s = format!("{v:.2}");
    s.trim_end_matches('0').trim_end_matches('.').to_string()
}

struct Panel {
    x0: f64,
    y0: f64,
    w: f64,
    h: f64,
}

impl Panel {
    fn frame(&self, svg: &mut String, title: &str, xlabel: &str, ylabel: &str) {
        let _ = write!(
            svg,
            r##"<rect x="{}" y="{}" width="{}" height="{}" fill="none" stroke="#333"/>"##,
            self.x0, self.y0, self.w, self.h
        );
        let _ = write!(
            svg,
            r##"<text x="{}" y="{}" text-anchor="middle" font-size="15">{}</text>"##,
            self.x0 + self.w / 2.0,
            self.y0 - 14.0,
            esc(title)
        );
        let _ = write!(
            svg,
            r##"<text x="{}" y="{}" text-anchor="middle" font-size="12">{}</text>"##,
            self.x0 + self.w / 2.0,
            self.y0 + self.h + 40.0,
            esc(xlabel)
        );
        let _ = write!(
            svg,
            r##"<text transform="translate({},{}) rotate(-90)" text-anchor="middle" font-size="12">{}</text>"##,
            self.x0 - 60.0,
            self.y0 + self.h / 2.0,
            esc(ylabel)
        );
    }
    fn xtick(&self, svg: &mut String, frac: f64, label: &str) {
        let x = self.x0 + frac * self.w;
        let _ = write!(
            svg,
            r##"<line x1="{x:.1}" y1="{}" x2="{x:.1}" y2="{}" stroke="#ddd"/><text x="{x:.1}" y="{}" text-anchor="middle" font-size="11">{}</text>"##,
            self.y0,
            self.y0 + self.h,
            self.y0 + self.h + 16.0,
            esc(label)
        );
    }
    fn ytick(&self, svg: &mut String, frac: f64, label: &str) {
        let y = self.y0 + self.h - frac * self.h;
        let _ = write!(
            svg,
            r##"<line x1="{}" y1="{y:.1}" x2="{}" y2="{y:.1}" stroke="#ddd"/><text x="{}" y="{:.1}" text-anchor="end" font-size="11">{}</text>"##,
            self.x0,
            self.x0 + self.w,
            self.x0 - 6.0,
            y + 4.0,
            esc(label)
        );
    }
    fn polyline(&self, svg: &mut String, pts: &[(f64, f64)], color: &str, dashed: bool) {
        let mut p = String::new();
        for (fx, fy) in pts {
            let _ = write!(
                p,
                "{:.1},{:.1} ",
                self.x0 + fx.clamp(0.0, 1.0) * self.w,
                self.y0 + self.h - fy.clamp(0.0, 1.0) * self.h
            );
        }
        let dash = if dashed {
            r#" stroke-dasharray="6,4""#
        } else {
            ""
        };
        let _ = write!(
            svg,
            r##"<polyline points="{p}" fill="none" stroke="{color}" stroke-width="2"{dash}/>"##
        );
        for (fx, fy) in pts {
            if !dashed && pts.len() < 60 {
                let _ = write!(
                    svg,
                    r##"<circle cx="{:.1}" cy="{:.1}" r="3" fill="{color}"/>"##,
                    self.x0 + fx.clamp(0.0, 1.0) * self.w,
                    self.y0 + self.h - fy.clamp(0.0, 1.0) * self.h
                );
            }
        }
    }
}

fn header(w: f64, h: f64) -> String {
    format!(
        r##"<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" viewBox="0 0 {w} {h}" font-family="sans-serif"><rect width="100%" height="100%" fill="white"/>"##
    )
}

fn save(path: &str, svg: String) {
    if let Err(e) = std::fs::write(path, svg) {
        eprintln!("wampload: cannot write {path}: {e}");
    }
}

/// Latency by percentile; x is -log10(1 - q) so 0, 90, 99, 99.9, 99.99 are evenly spaced.
pub fn latency_svg(path: &str, title: &str, lat: &Lat) {
    let mut svg = header(W, H);
    let p = Panel {
        x0: ML,
        y0: MT,
        w: W - ML - MR,
        h: H - MT - MB,
    };
    const NINES: f64 = 4.0;
    let mut pts = Vec::new();
    let mut ymax: f64 = 1.0;
    let steps = 160;
    for i in 0..=steps {
        let x = NINES * i as f64 / steps as f64;
        let q = 1.0 - 10f64.powf(-x);
        let v = lat.q(q) as f64;
        ymax = ymax.max(v);
        pts.push((x, v));
    }
    let (top, step) = nice(ymax);
    p.frame(&mut svg, title, "percentile", "latency (µs)");
    for (i, l) in ["0", "90", "99", "99.9", "99.99"].iter().enumerate() {
        p.xtick(&mut svg, i as f64 / NINES, l);
    }
    let mut t = 0.0;
    while t <= top + step / 2.0 {
        p.ytick(&mut svg, t / top, &fmt_num(t));
        t += step;
    }
    let pts: Vec<(f64, f64)> = pts.into_iter().map(|(x, v)| (x / NINES, v / top)).collect();
    p.polyline(&mut svg, &pts, "#1f77b4", false);
    svg.push_str("</svg>\n");
    save(path, svg);
}

/// One sweep step for plotting.
pub struct SweepPoint {
    pub offered: f64,
    pub achieved: f64,
    pub p99_us: f64,
    pub ok: bool,
}

/// Two panels: achieved vs offered throughput, and p99 vs offered throughput with the bound.
pub fn sweep_svg(path: &str, title: &str, unit: &str, pts: &[SweepPoint], bound_us: f64) {
    let w = 1100.0;
    let mut svg = header(w, H);
    let pw = (w - 2.0 * ML - 2.0 * MR) / 2.0;
    let a = Panel {
        x0: ML,
        y0: MT,
        w: pw,
        h: H - MT - MB,
    };
    let b = Panel {
        x0: ML * 2.0 + MR + pw,
        y0: MT,
        w: pw,
        h: H - MT - MB,
    };
    let xmax = pts
        .iter()
        .map(|p| p.offered.max(p.achieved))
        .fold(1.0, f64::max);
    let (xtop, xstep) = nice(xmax);
    a.frame(
        &mut svg,
        &format!("{title}: achieved vs offered"),
        &format!("offered ({unit})"),
        &format!("achieved ({unit})"),
    );
    b.frame(
        &mut svg,
        &format!("{title}: p99 vs offered"),
        &format!("offered ({unit})"),
        "p99 latency (µs)",
    );
    let mut t = 0.0;
    while t <= xtop + xstep / 2.0 {
        a.xtick(&mut svg, t / xtop, &fmt_num(t));
        a.ytick(&mut svg, t / xtop, &fmt_num(t));
        b.xtick(&mut svg, t / xtop, &fmt_num(t));
        t += xstep;
    }
    a.polyline(&mut svg, &[(0.0, 0.0), (1.0, 1.0)], "#999", true);
    let ach: Vec<(f64, f64)> = pts
        .iter()
        .map(|p| (p.offered / xtop, p.achieved / xtop))
        .collect();
    a.polyline(&mut svg, &ach, "#1f77b4", false);
    // p99 on a log scale: values span orders of magnitude once the router saturates.
    let ymax = pts
        .iter()
        .map(|p| p.p99_us)
        .fold(bound_us, f64::max)
        .max(10.0);
    let ymin = pts
        .iter()
        .map(|p| p.p99_us)
        .fold(bound_us, f64::min)
        .max(1.0);
    let (lo, hi) = (
        ymin.log10().floor(),
        ymax.log10().ceil().max(ymin.log10().floor() + 1.0),
    );
    let fy = |v: f64| (v.max(1.0).log10() - lo) / (hi - lo);
    let mut e = lo;
    while e <= hi + 0.01 {
        b.ytick(&mut svg, (e - lo) / (hi - lo), &fmt_num(10f64.powf(e)));
        e += 1.0;
    }
    b.polyline(
        &mut svg,
        &[(0.0, fy(bound_us)), (1.0, fy(bound_us))],
        "#d62728",
        true,
    );
    let lat: Vec<(f64, f64)> = pts
        .iter()
        .map(|p| (p.offered / xtop, fy(p.p99_us)))
        .collect();
    b.polyline(&mut svg, &lat, "#ff7f0e", false);
    for p in pts.iter().filter(|p| !p.ok) {
        let _ = write!(
            svg,
            r##"<circle cx="{:.1}" cy="{:.1}" r="6" fill="none" stroke="#d62728"/>"##,
            b.x0 + (p.offered / xtop).clamp(0.0, 1.0) * b.w,
            b.y0 + b.h - fy(p.p99_us).clamp(0.0, 1.0) * b.h
        );
    }
    svg.push_str("</svg>\n");
    save(path, svg);
}

/// One router configuration of a scaling run.
pub struct ScalePoint {
    pub shards: u64,
    /// Fanout deliveries/s and rpc calls/s (`None`: not run).
    pub fanout: Option<f64>,
    pub rpc: Option<f64>,
}

/// Two panels: fanout deliveries/s and rpc calls/s by number of router shards (evenly spaced).
pub fn scale_svg(path: &str, title: &str, pts: &[ScalePoint]) {
    let w = 1100.0;
    let mut svg = header(w, H);
    let pw = (w - 2.0 * ML - 2.0 * MR) / 2.0;
    let panels = [
        (ML, "fanout", "deliveries/s", "#1f77b4"),
        (ML * 2.0 + MR + pw, "rpc", "calls/s", "#ff7f0e"),
    ];
    for (k, (x0, name, unit, color)) in panels.into_iter().enumerate() {
        let p = Panel {
            x0,
            y0: MT,
            w: pw,
            h: H - MT - MB,
        };
        let val = |s: &ScalePoint| if k == 0 { s.fanout } else { s.rpc };
        p.frame(&mut svg, &format!("{title}: {name}"), "router shards", unit);
        let fx = |i: usize| {
            if pts.len() > 1 {
                0.05 + 0.9 * i as f64 / (pts.len() - 1) as f64
            } else {
                0.5
            }
        };
        for (i, s) in pts.iter().enumerate() {
            p.xtick(&mut svg, fx(i), &s.shards.to_string());
        }
        let ymax = pts.iter().filter_map(val).fold(1.0, f64::max);
        let (top, step) = nice(ymax);
        let mut t = 0.0;
        while t <= top + step / 2.0 {
            p.ytick(&mut svg, t / top, &fmt_num(t));
            t += step;
        }
        let line: Vec<(f64, f64)> = pts
            .iter()
            .enumerate()
            .filter_map(|(i, s)| val(s).map(|v| (fx(i), v / top)))
            .collect();
        p.polyline(&mut svg, &line, color, false);
    }
    svg.push_str("</svg>\n");
    save(path, svg);
}
