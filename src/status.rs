//! `status`: the runs in the state dir and each step's outcome, read from the
//! journals, as text or JSON. Reads only.

use std::fmt::Write as _;
use std::path::Path;

use serde::Serialize;

use crate::engine::Failure;
use crate::journal::{Outcome, Phase};
use crate::runs::RunRecord;

#[derive(Debug, Serialize)]
struct RunStatus {
    run_id: String,
    playbook: String,
    environment: Option<String>,
    started_at: String,
    state: String,
    unfinished: bool,
    version: Option<String>,
    journal: String,
    steps: Vec<StepStatus>,
    left: Vec<String>,
}

#[derive(Debug, Serialize)]
struct StepStatus {
    step: String,
    /// The host it ran on, in a run over a fleet (`None` when everything ran here).
    host: Option<String>,
    phase: Phase,
    /// `ok`, `failed`, `skipped`, or `interrupted` (started, never finished).
    outcome: String,
    reason: Option<String>,
}

fn status_of(record: &RunRecord) -> RunStatus {
    let fleet = record.steps.values().any(|s| s.target != crate::playbook::LOCAL);
    let mut steps = Vec::new();
    for phase in [Phase::Step, Phase::Rollback, Phase::Finally] {
        for state in record.phase(phase) {
            let outcome = match state.outcome {
                Some(Outcome::Ok) => "ok",
                Some(Outcome::Failed) => "failed",
                Some(Outcome::Skipped) => "skipped",
                None => "interrupted",
            };
            steps.push(StepStatus {
                step: state.step.clone(),
                host: fleet.then(|| state.target.clone()),
                phase,
                outcome: outcome.to_owned(),
                reason: state.reason.clone(),
            });
        }
    }
    RunStatus {
        run_id: record.header.run_id.clone(),
        playbook: record.header.playbook.clone(),
        environment: record.header.environment.clone(),
        started_at: record.header.started_at.clone(),
        state: record.describe(),
        unfinished: record.unfinished(),
        version: record.header.selection.as_ref().map(|s| format!("{} → {}", s.current, s.target)),
        journal: record.path.display().to_string(),
        steps,
        left: record.end.as_ref().map(|(_, left)| left.clone()).unwrap_or_default(),
    }
}

/// The runs of one playbook (name and environment), or of every playbook.
pub(crate) fn render(state_dir: &Path, filter: Option<(&str, Option<&str>)>, json: bool) -> Result<String, Failure> {
    let (runs, unreadable) = crate::runs::list_runs(state_dir, filter);
    let statuses: Vec<RunStatus> = runs.iter().map(status_of).collect();
    if json {
        let damaged: Vec<serde_json::Value> = unreadable
            .iter()
            .map(|u| serde_json::json!({ "journal": u.path.display().to_string(), "run_id": u.run_id, "reason": u.reason }))
            .collect();
        let value = serde_json::json!({ "v": 1, "runs": statuses, "unreadable": damaged });
        return Ok(format!("{}\n", serde_json::to_string_pretty(&value).expect("json serializes")));
    }
    let mut out = String::new();
    if statuses.is_empty() && unreadable.is_empty() {
        out.push_str("no runs yet\n");
    }
    for run in &statuses {
        let env = run.environment.as_deref().map_or_else(String::new, |e| format!(" on `{e}`"));
        let version = run.version.as_deref().map_or_else(String::new, |v| format!(", {v}"));
        let _ = writeln!(out, "run {}: `{}`{env}{version}, started {}", run.run_id, run.playbook, run.started_at);
        let _ = writeln!(out, "  state    {}", run.state);
        for step in &run.steps {
            let phase = match step.phase {
                Phase::Step => "",
                Phase::Rollback => " (rollback)",
                Phase::Finally => " (finally)",
            };
            let reason = step.reason.as_deref().map_or_else(String::new, |r| format!(": {r}"));
            let host = step.host.as_deref().map_or_else(String::new, |h| format!(" on `{h}`"));
            let _ = writeln!(out, "  {:<11} {}{host}{phase}{reason}", step.outcome, step.step);
        }
        for left in &run.left {
            let _ = writeln!(out, "  left        {left}");
        }
        let _ = writeln!(out, "  journal  {}", run.journal);
    }
    for bad in &unreadable {
        let what = bad.run_id.as_deref().map_or_else(|| "not a journal".to_owned(), |id| format!("run {id}: damaged"));
        let _ = writeln!(out, "{what}: {}\n  journal  {}", bad.reason, bad.path.display());
    }
    Ok(out)
}
