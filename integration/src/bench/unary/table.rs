//! The unary scenario's rows in the report table, with the targets.

use super::UnaryResult;
use crate::bench::report::{Row, Target};

/// The overhead allowed over bare tonic at 16 callers on one connection, as a ratio of
/// requests per second.
const RATIO_TARGET: f64 = 1.0;
/// The median latency allowed at C=1.
const P50_TARGET_US: f64 = 100.0;
/// At 64 callers over 4 connections: the server's CPU per call, as a ratio to bare tonic's.
const CPU_RATIO_TARGET: f64 = 0.7;
/// At 64 callers over 4 connections: write system calls per call.
const WRITES_TARGET: f64 = 0.2;

/// The table's figures.
pub fn rows(result: &UnaryResult) -> Vec<Row> {
    let mut rows = Vec::new();
    for c in &result.comparisons {
        let (n, k) = (c.concurrency, c.connections);
        let shape = if k == 1 {
            format!("C={n}")
        } else {
            format!("C={n} over {k} connections")
        };
        let target_shape = |callers, connections| n == callers && k == connections;
        let mut rps = Row::new(
            "unary",
            format!("{shape} requests/s"),
            format!("{:.0}", c.target.requests_per_second),
        );
        if let (Some(baseline), Some(ratio)) = (&c.baseline, c.ratio) {
            rps = rps.baseline(format!("{:.0}", baseline.requests_per_second), ratio);
            if target_shape(16, 1) {
                rps = rps.target(Target::at_least(ratio, RATIO_TARGET, "× bare"));
            }
        }
        rows.push(rps);
        if let (Some(ratio), Some(error)) = (c.ratio, c.ratio_standard_error) {
            rows.push(Row::new(
                "unary",
                format!("{shape} ratio, mean of {} round pairs", c.pair_ratios.len()),
                format!("{ratio:.3} ± {error:.3}"),
            ));
        }
        if let Some(latency) = c.target.latency {
            let mut p50 = Row::new("unary", format!("{shape} p50 latency"), us(latency.p50_us));
            if let Some(base) = c.baseline.as_ref().and_then(|b| b.latency) {
                p50 = p50.baseline(us(base.p50_us), latency.p50_us / base.p50_us);
                if target_shape(1, 1) {
                    p50 = p50.target(Target::at_most(latency.p50_us / base.p50_us, 1.0, "× bare"));
                }
            } else if target_shape(1, 1) {
                p50 = p50.target(Target::at_most(latency.p50_us, P50_TARGET_US, "µs"));
            }
            rows.push(p50);
            if let (true, Some(wire)) = (target_shape(1, 1), result.wire_round_trip) {
                rows.push(Row::new(
                    "unary",
                    "C=1 p50, plain TCP round trip",
                    us(wire.p50_us),
                ));
            }
            let mut p99 = Row::new("unary", format!("{shape} p99 latency"), us(latency.p99_us));
            if let Some(base) = c.baseline.as_ref().and_then(|b| b.latency) {
                p99 = p99.baseline(us(base.p99_us), latency.p99_us / base.p99_us);
            }
            rows.push(p99);
        }
        if let Some(cpu) = c.target.server_cpu_us_per_call {
            let mut row = Row::new("unary", format!("{shape} server CPU per call"), us(cpu));
            if let Some(base) = c.baseline.as_ref().and_then(|b| b.server_cpu_us_per_call) {
                row = row.baseline(us(base), cpu / base);
                if target_shape(64, 4) {
                    row = row.target(Target::at_most(cpu / base, CPU_RATIO_TARGET, "× bare"));
                }
            }
            rows.push(row);
        }
        if let Some(per_call) = c.target.server_writes_per_call {
            let mut row = Row::new(
                "unary",
                format!("{shape} server write system calls per call"),
                format!("{per_call:.3}"),
            );
            let baseline = c.baseline.as_ref().and_then(|b| b.server_writes_per_call);
            if let Some(base) = baseline.filter(|b| *b > 0.0) {
                row = row.baseline(format!("{base:.3}"), per_call / base);
            }
            if target_shape(64, 4) {
                row = row.target(Target::at_most(per_call, WRITES_TARGET, "per call"));
            }
            rows.push(row);
        }
    }
    rows
}

fn us(value: f64) -> String {
    if value < 100.0 {
        format!("{value:.1} µs")
    } else {
        format!("{value:.0} µs")
    }
}
