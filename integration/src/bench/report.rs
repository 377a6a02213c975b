//! The results: a table row per figure (value, same-run baseline, ratio, target and whether
//! it was met) for people, and the whole result tree as JSON for machines.

use std::fmt::Write as _;

use serde::Serialize;

/// A target a figure is held to.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Target {
    /// The target, as text (`≤ 100 ms`).
    pub text: String,
    /// Whether this run met it.
    pub met: bool,
}

impl Target {
    /// `value` must be at most `limit`.
    pub fn at_most(value: f64, limit: f64, unit: &str) -> Self {
        Self {
            text: format!("≤ {} {unit}", trim(limit)),
            met: value <= limit,
        }
    }

    /// `value` must be at least `limit`.
    pub fn at_least(value: f64, limit: f64, unit: &str) -> Self {
        Self {
            text: format!("≥ {} {unit}", trim(limit)),
            met: value >= limit,
        }
    }
}

fn trim(value: f64) -> String {
    if value.fract() == 0.0 {
        format!("{value:.0}")
    } else {
        format!("{value}")
    }
}

/// One figure.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Row {
    /// The scenario.
    pub scenario: &'static str,
    /// What was measured.
    pub metric: String,
    /// The figure, with its unit.
    pub value: String,
    /// The same-run baseline, with its unit.
    pub baseline: Option<String>,
    /// Value over baseline.
    pub ratio: Option<f64>,
    /// The target, if there is one.
    pub target: Option<Target>,
}

impl Row {
    /// A figure without baseline or target.
    pub fn new(
        scenario: &'static str,
        metric: impl Into<String>,
        value: impl Into<String>,
    ) -> Self {
        Self {
            scenario,
            metric: metric.into(),
            value: value.into(),
            baseline: None,
            ratio: None,
            target: None,
        }
    }

    /// With a baseline and the ratio of value to it.
    pub fn baseline(mut self, baseline: impl Into<String>, ratio: f64) -> Self {
        self.baseline = Some(baseline.into());
        self.ratio = Some(ratio);
        self
    }

    /// With a target.
    pub fn target(mut self, target: Target) -> Self {
        self.target = Some(target);
        self
    }
}

/// The machine a run was made on.
#[derive(Debug, Clone, Serialize)]
pub struct Machine {
    /// CPU model.
    pub cpu: String,
    /// CPUs this process may use.
    pub cpus: usize,
    /// Memory, GiB.
    pub memory_gib: f64,
    /// Kernel release.
    pub kernel: String,
    /// When the run started, UTC.
    pub date: String,
    /// gnt-rpc's version.
    pub gnt_version: &'static str,
    /// Whether this harness was built with optimisations.
    pub optimized: bool,
}

impl Machine {
    /// This machine, now.
    pub fn current() -> Self {
        let read = |path: &str| std::fs::read_to_string(path).unwrap_or_default();
        let cpu = read("/proc/cpuinfo")
            .lines()
            .find_map(|l| l.strip_prefix("model name"))
            .map(|rest| rest.trim_start_matches([' ', '\t', ':']).trim().to_owned())
            .unwrap_or_else(|| "unknown".to_owned());
        let memory_kib = read("/proc/meminfo")
            .lines()
            .find_map(|l| l.strip_prefix("MemTotal:"))
            .and_then(|rest| {
                rest.trim()
                    .trim_end_matches("kB")
                    .trim()
                    .parse::<f64>()
                    .ok()
            })
            .unwrap_or(0.0);
        let date = time::OffsetDateTime::now_utc()
            .format(&time::format_description::well_known::Rfc3339)
            .unwrap_or_default();
        Self {
            cpu,
            cpus: std::thread::available_parallelism().map_or(1, usize::from),
            memory_gib: (memory_kib / 1024.0 / 1024.0 * 10.0).round() / 10.0,
            kernel: read("/proc/sys/kernel/osrelease").trim().to_owned(),
            date,
            gnt_version: env!("CARGO_PKG_VERSION"),
            optimized: !cfg!(debug_assertions),
        }
    }
}

/// Everything a run found.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// Where it ran.
    pub machine: Machine,
    /// How it was asked to run.
    pub settings: serde_json::Value,
    /// Each scenario's full results, by name.
    pub scenarios: serde_json::Map<String, serde_json::Value>,
    /// The figures of the table.
    pub rows: Vec<Row>,
}

impl Report {
    /// An empty report of a run with `settings`.
    pub fn new(settings: serde_json::Value) -> Self {
        Self {
            machine: Machine::current(),
            settings,
            scenarios: serde_json::Map::new(),
            rows: Vec::new(),
        }
    }

    /// Adds a scenario's results and its figures.
    pub fn add<T: Serialize>(&mut self, scenario: &'static str, results: &T, rows: Vec<Row>) {
        let value = serde_json::to_value(results).unwrap_or_else(|e| {
            serde_json::Value::String(format!("results cannot be serialised: {e}"))
        });
        self.scenarios.insert(scenario.to_owned(), value);
        self.rows.extend(rows);
    }

    /// Targets this run missed.
    pub fn missed(&self) -> Vec<&Row> {
        self.rows
            .iter()
            .filter(|r| r.target.as_ref().is_some_and(|t| !t.met))
            .collect()
    }

    /// The table, aligned, one figure a line.
    pub fn table(&self) -> String {
        let header = [
            "scenario", "metric", "value", "baseline", "ratio", "target", "",
        ];
        let lines: Vec<[String; 7]> = self
            .rows
            .iter()
            .map(|r| {
                [
                    r.scenario.to_owned(),
                    r.metric.clone(),
                    r.value.clone(),
                    r.baseline.clone().unwrap_or_default(),
                    r.ratio.map(|x| format!("{x:.3}")).unwrap_or_default(),
                    r.target
                        .as_ref()
                        .map(|t| t.text.clone())
                        .unwrap_or_default(),
                    match &r.target {
                        Some(t) if t.met => "met".to_owned(),
                        Some(_) => "MISSED".to_owned(),
                        None => String::new(),
                    },
                ]
            })
            .collect();
        let mut widths = header.map(|h| h.chars().count());
        for line in &lines {
            for (width, cell) in widths.iter_mut().zip(line) {
                *width = (*width).max(cell.chars().count());
            }
        }
        let mut out = String::new();
        let mut write_line = |cells: &[String]| {
            let mut line = String::new();
            for (i, (cell, width)) in cells.iter().zip(widths).enumerate() {
                let pad = width.saturating_sub(cell.chars().count());
                // Text columns to the left, figures to the right.
                if !(2..5).contains(&i) {
                    let _ = write!(line, "{cell}{}  ", " ".repeat(pad));
                } else {
                    let _ = write!(line, "{}{cell}  ", " ".repeat(pad));
                }
            }
            out.push_str(line.trim_end());
            out.push('\n');
        };
        write_line(&header.map(str::to_owned));
        for line in &lines {
            write_line(line);
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_compare_in_the_right_direction() {
        assert!(Target::at_most(99.0, 100.0, "ms").met);
        assert!(!Target::at_most(101.0, 100.0, "ms").met);
        assert!(Target::at_least(1.2, 1.0, "GB/s").met);
        assert!(!Target::at_least(0.9, 1.0, "GB/s").met);
        assert_eq!(Target::at_most(1.0, 1.5, "s").text, "≤ 1.5 s");
        assert_eq!(Target::at_least(1.0, 8.0, "MiB").text, "≥ 8 MiB");
    }

    #[test]
    fn the_table_aligns_columns_and_flags_missed_targets() {
        let mut report = Report::new(serde_json::json!({}));
        report.add(
            "unary",
            &serde_json::json!({"rps": 1}),
            vec![
                Row::new("unary", "C=16 requests/s", "41000")
                    .baseline("42000", 41.0 / 42.0)
                    .target(Target::at_least(41.0 / 42.0, 0.95, "")),
                Row::new("memory", "gnt-noded idle RSS", "9.5 MiB")
                    .target(Target::at_most(9.5, 8.0, "MiB")),
            ],
        );
        let table = report.table();
        let lines: Vec<&str> = table.lines().collect();
        assert_eq!(lines.len(), 3, "{table}");
        assert!(
            lines[1].contains("0.976") && lines[1].ends_with("met"),
            "{table}"
        );
        assert!(lines[2].ends_with("MISSED"), "{table}");
        assert_eq!(
            lines[1].find("41000"),
            lines[2].find("9.5 MiB").map(|i| i + 2)
        );
        assert_eq!(report.missed().len(), 1);
        assert!(report.scenarios.contains_key("unary"));
    }
}
