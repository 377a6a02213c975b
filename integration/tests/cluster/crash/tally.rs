//! What the crash rounds found, counted per (victim, operation), and the table the issue
//! asks for.

use std::collections::BTreeMap;
use std::time::Duration;

use super::Found;

/// What the rounds of one (victim, operation) pair found.
#[derive(Debug)]
pub(super) struct Tally {
    pub(super) what: String,
    window: Duration,
    runs: usize,
    clean: usize,
    half_added: usize,
    stale: usize,
    token_wrong: usize,
    record_wrong: usize,
    in_config: usize,
    recovered: usize,
    /// How many kills found the job at each stage.
    stages: BTreeMap<&'static str, usize>,
}

impl Tally {
    pub(super) fn new(what: String, window: Duration) -> Self {
        Self {
            what,
            window,
            runs: 0,
            clean: 0,
            half_added: 0,
            stale: 0,
            token_wrong: 0,
            record_wrong: 0,
            in_config: 0,
            recovered: 0,
            stages: BTreeMap::new(),
        }
    }

    pub(super) fn count(&mut self, found: &Found) {
        self.runs += 1;
        self.clean += usize::from(found.clean());
        self.half_added += usize::from(found.in_config != found.member);
        self.stale += usize::from(!found.stale.is_empty());
        self.token_wrong += usize::from(found.token_wrong);
        self.record_wrong += usize::from(found.record_wrong);
        self.in_config += usize::from(found.in_config);
        *self.stages.entry(found.stage).or_default() += 1;
        self.recovered += usize::from(
            found
                .job
                .as_ref()
                .is_some_and(|j| j["recovery"].as_str().is_some_and(|r| !r.is_empty())),
        );
    }
}

pub(super) fn table(tallies: &[Tally]) -> String {
    let mut text = String::from(
        "| what was killed | runs | clean | half-added | stale | token wrong | record wrong | node in config after | recovered by the master | delays in | the job at the kill |\n|---|---|---|---|---|---|---|---|---|---|---|\n",
    );
    for t in tallies {
        text.push_str(&format!(
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} | [0, {:.0?}] | {} |\n",
            t.what,
            t.runs,
            t.clean,
            t.half_added,
            t.stale,
            t.token_wrong,
            t.record_wrong,
            t.in_config,
            t.recovered,
            t.window,
            stages(&t.stages),
        ));
    }
    text
}

/// The stages in the order a job goes through them, each with its count.
fn stages(counts: &BTreeMap<&'static str, usize>) -> String {
    const ORDER: [&str; 11] = [
        "no job",
        "submitted",
        "checked",
        "joining",
        "joined",
        "version-checked",
        "leaving",
        "left",
        "committed",
        "distributed",
        "ended",
    ];
    ORDER
        .iter()
        .filter_map(|stage| counts.get(stage).map(|n| format!("{stage} {n}")))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Prints the table, then asserts every round was clean.
pub(super) fn report(tallies: &[Tally]) {
    let text = table(tallies);
    eprintln!("{text}");
    for t in tallies {
        assert_eq!(t.half_added, 0, "{text}");
        assert_eq!(t.stale, 0, "{text}");
        assert_eq!(t.token_wrong, 0, "{text}");
        assert_eq!(t.record_wrong, 0, "{text}");
        assert_eq!(t.clean, t.runs, "{text}");
    }
}
