//! `status`: the runs in the state dir, newest first, and each step's outcome,
//! read from the journals, as text or JSON; one run in full (`status RUN_ID`,
//! `--last`); and a run's whole masked output from its log (`--log`). Reads only.

use std::fmt::Write as _;
use std::path::Path;

use serde::Serialize;

use crate::Exit;
use crate::engine::Failure;
use crate::journal::{Outcome, Phase};
use crate::runs::{RunRecord, Unreadable};

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
    /// The run's whole output, masked (absent for runs of an upshift that kept none).
    log: Option<String>,
    /// In a run over a fleet: its hosts, in the inventory's order.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    hosts: Vec<String>,
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
    exit_code: Option<i32>,
    duration_ms: Option<u64>,
    /// How many times it started (retries, resumes).
    starts: u32,
}

/// One run in full: what `status` lists, and who ran it where.
#[derive(Debug, Serialize)]
struct RunDetail<'a> {
    #[serde(flatten)]
    status: RunStatus,
    file: String,
    target: &'a str,
    host: &'a str,
    user: &'a str,
    pid: u32,
    window: Option<&'a str>,
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
                exit_code: state.exit_code,
                duration_ms: state.duration_ms,
                starts: state.starts,
            });
        }
    }
    let log = crate::runs::log_path(&record.path);
    RunStatus {
        run_id: record.header.run_id.clone(),
        playbook: record.header.playbook.clone(),
        environment: record.header.environment.clone(),
        started_at: record.header.started_at.clone(),
        state: record.describe(),
        unfinished: record.unfinished(),
        version: record.header.selection.as_ref().map(|s| format!("{} → {}", s.current, s.target)),
        journal: record.path.display().to_string(),
        log: log.exists().then(|| log.display().to_string()),
        hosts: if fleet {
            let mut hosts: Vec<String> = record.header.host_vars.keys().cloned().collect();
            for state in record.steps.values() {
                if !hosts.contains(&state.target) {
                    hosts.push(state.target.clone());
                }
            }
            hosts
        } else {
            Vec::new()
        },
        steps,
        left: record.end.as_ref().map(|(_, left)| left.clone()).unwrap_or_default(),
    }
}

/// Which runs `status` shows.
#[derive(Debug, Default)]
pub(crate) struct Query<'a> {
    /// One playbook's runs (name, environment).
    pub(crate) playbook: Option<(&'a str, Option<&'a str>)>,
    /// Only the runs in this environment.
    pub(crate) environment: Option<&'a str>,
    /// One run: its id or a unique prefix of it.
    pub(crate) run: Option<&'a str>,
    /// The newest run only.
    pub(crate) last: bool,
    /// The run's log instead of its steps.
    pub(crate) log: bool,
}

/// What `status` prints for a query, as text or JSON.
pub(crate) fn render(state_dir: &Path, query: &Query<'_>, json: bool) -> Result<String, Failure> {
    let (mut runs, unreadable) = crate::runs::list_runs(state_dir, query.playbook);
    if let Some(env) = query.environment {
        runs.retain(|r| r.header.environment.as_deref() == Some(env));
    }
    // Newest first: the run an operator asks about is almost always the last one.
    runs.reverse();
    if let Some(prefix) = query.run {
        let found: Vec<&RunRecord> = runs.iter().filter(|r| r.header.run_id.starts_with(prefix)).collect();
        return match found.as_slice() {
            [one] => one_run(one, query.log, json),
            [] => Err(Failure::new(
                Exit::Invalid,
                format!("no run `{prefix}` in `{}`", crate::diagnostic::display_path(state_dir)),
            )
            .help("`upshift status` lists the runs; a playbook is named by its path")),
            many => Err(Failure::new(Exit::Invalid, format!("`{prefix}` names {} runs", many.len()))
                .details(many.iter().map(|r| r.header.run_id.clone()).collect())
                .help("give more of the run id")),
        };
    }
    if query.last {
        return match runs.first() {
            Some(newest) => one_run(newest, query.log, json),
            None if query.log => Err(Failure::new(Exit::Invalid, "there is no run yet, so no log")),
            None => Ok(if json { pretty(&serde_json::json!({ "v": 1, "run": null })) } else { "no runs yet\n".into() }),
        };
    }
    if query.log {
        return Err(Failure::new(Exit::Invalid, "`--log` prints the log of one run")
            .help("name it: `upshift status RUN_ID --log`, or `upshift status --last --log`"));
    }
    Ok(list(&runs, &unreadable, json))
}

fn pretty(value: &serde_json::Value) -> String {
    format!("{}\n", serde_json::to_string_pretty(value).expect("json serializes"))
}

fn list(runs: &[RunRecord], unreadable: &[Unreadable], json: bool) -> String {
    let statuses: Vec<RunStatus> = runs.iter().map(status_of).collect();
    if json {
        let damaged: Vec<serde_json::Value> = unreadable
            .iter()
            .map(|u| serde_json::json!({ "journal": u.path.display().to_string(), "run_id": u.run_id, "reason": u.reason }))
            .collect();
        return pretty(&serde_json::json!({ "v": 1, "runs": statuses, "unreadable": damaged }));
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
        if run.steps.iter().any(|s| s.host.is_some()) {
            grid(&mut out, &run.hosts, &run.steps);
        } else {
            for step in &run.steps {
                let reason = step.reason.as_deref().map_or_else(String::new, |r| format!(": {r}"));
                let _ = writeln!(out, "  {:<11} {}{}{reason}", step.outcome, step.step, phase(step.phase));
            }
        }
        for left in &run.left {
            let _ = writeln!(out, "  left        {left}");
        }
        let _ = writeln!(out, "  journal  {}", run.journal);
    }
    for bad in unreadable {
        let what = bad.run_id.as_deref().map_or_else(|| "not a journal".to_owned(), |id| format!("run {id}: damaged"));
        let _ = writeln!(out, "{what}: {}\n  journal  {}", bad.reason, bad.path.display());
    }
    out
}

/// A fleet run's steps as a grid: a row per step (and phase), a column per
/// host, `·` where the step did not run on the host; then why each pair
/// that failed or was interrupted did.
fn grid(out: &mut String, hosts: &[String], steps: &[StepStatus]) {
    // Only the hosts something ran on: `local` shows when a step ran here.
    let hosts: Vec<&str> =
        hosts.iter().map(String::as_str).filter(|h| steps.iter().any(|s| s.host.as_deref() == Some(*h))).collect();
    let mut rows: Vec<(&str, Phase)> = Vec::new();
    for step in steps {
        if !rows.contains(&(step.step.as_str(), step.phase)) {
            rows.push((step.step.as_str(), step.phase));
        }
    }
    let names: Vec<String> = rows.iter().map(|(id, p)| format!("{id}{}", phase(*p))).collect();
    let first = names.iter().map(|n| n.chars().count()).max().unwrap_or(0).max(4);
    let widths: Vec<usize> = hosts.iter().map(|h| h.chars().count().max("interrupted".len())).collect();
    let mut line = format!("  {:<first$}", "step");
    for (host, width) in hosts.iter().zip(&widths) {
        line.push_str(&format!("  {host:<width$}"));
    }
    let _ = writeln!(out, "{}", line.trim_end());
    for ((id, p), name) in rows.iter().zip(&names) {
        let mut line = format!("  {name:<first$}");
        for (host, width) in hosts.iter().zip(&widths) {
            let cell = steps
                .iter()
                .find(|s| {
                    s.step == *id && s.phase == *p && s.host.as_deref().unwrap_or(crate::playbook::LOCAL) == *host
                })
                .map_or("·", |s| s.outcome.as_str());
            line.push_str(&format!("  {cell:<width$}"));
        }
        let _ = writeln!(out, "{}", line.trim_end());
    }
    for step in steps.iter().filter(|s| s.outcome == "failed" || s.outcome == "interrupted") {
        let host = step.host.as_deref().unwrap_or(crate::playbook::LOCAL);
        let reason = step.reason.as_deref().map_or_else(String::new, |r| format!(": {r}"));
        let _ = writeln!(out, "  {:<11} {}{} on `{host}`{reason}", step.outcome, step.step, phase(step.phase));
    }
}

fn phase(phase: Phase) -> &'static str {
    match phase {
        Phase::Step => "",
        Phase::Rollback => " (rollback)",
        Phase::Finally => " (finally)",
    }
}

/// One run in full, or its log.
fn one_run(record: &RunRecord, log: bool, json: bool) -> Result<String, Failure> {
    if log {
        let path = crate::runs::log_path(&record.path);
        let bytes = crate::files::read_private(&path).map_err(|error| {
            let why = if error.kind() == std::io::ErrorKind::NotFound {
                "it has no log (an older upshift kept only the journal's tail)".to_owned()
            } else {
                crate::document::io_reason(&error)
            };
            Failure::new(Exit::Invalid, format!("cannot read the log of run `{}`: {why}", record.header.run_id))
                .help(format!("the journal `{}` keeps the tail of each step's output", record.path.display()))
        })?;
        let text = String::from_utf8_lossy(&bytes).into_owned();
        return Ok(if json {
            pretty(&serde_json::json!({ "v": 1, "run_id": record.header.run_id, "log": text }))
        } else {
            text
        });
    }
    let header = &record.header;
    let detail = RunDetail {
        status: status_of(record),
        file: header.file.display().to_string(),
        target: &header.target,
        host: &header.host,
        user: &header.user,
        pid: header.pid,
        window: header.window.as_deref(),
    };
    if json {
        return Ok(pretty(&serde_json::json!({ "v": 1, "run": detail })));
    }
    let run = &detail.status;
    let mut out = String::new();
    let _ = writeln!(out, "run {}", run.run_id);
    let _ = writeln!(out, "  playbook     `{}` ({})", run.playbook, detail.file);
    if let Some(env) = &run.environment {
        let _ = writeln!(out, "  environment  {env}");
    }
    if let Some(version) = &run.version {
        let _ = writeln!(out, "  version      {version}");
    }
    let _ = writeln!(
        out,
        "  started      {} by {} on {} (pid {}), target {}",
        run.started_at, detail.user, detail.host, detail.pid, detail.target
    );
    if let Some(window) = detail.window {
        let _ = writeln!(out, "  window       {window}");
    }
    let _ = writeln!(out, "  state        {}", run.state);
    let names: Vec<String> = run
        .steps
        .iter()
        .map(|step| {
            let tries = if step.starts > 1 { format!(" ({} tries)", step.starts) } else { String::new() };
            let host = step.host.as_deref().map_or_else(String::new, |h| format!(" on `{h}`"));
            format!("{}{host}{}{tries}", step.step, phase(step.phase))
        })
        .collect();
    let width = names.iter().map(|n| n.chars().count()).max().unwrap_or(0).max(4);
    if !run.steps.is_empty() {
        let _ = writeln!(out, "\n  {:<11} {:<width$} {:>7}  exit  reason", "outcome", "step", "took");
    }
    for (step, name) in run.steps.iter().zip(&names) {
        let took = match step.duration_ms {
            Some(ms) if step.outcome != "skipped" => format!("{:.1}s", ms as f64 / 1000.0),
            _ => String::new(),
        };
        let code = step.exit_code.map_or_else(|| "-".to_owned(), |c| c.to_string());
        let reason = step.reason.as_deref().unwrap_or("");
        let line = format!("  {:<11} {name:<width$} {took:>7}  {code:<4}  {reason}", step.outcome);
        let _ = writeln!(out, "{}", line.trim_end());
    }
    if !run.left.is_empty() {
        out.push('\n');
    }
    for left in &run.left {
        let _ = writeln!(out, "  left         {left}");
    }
    let _ = writeln!(out, "\n  journal      {}", run.journal);
    match &run.log {
        Some(log) => {
            let _ = writeln!(out, "  log          {log} (`upshift status {} --log`)", run.run_id);
        }
        None => {
            let _ = writeln!(out, "  log          none (an older upshift kept only the journal's tail)");
        }
    }
    if run.state == "rollback-incomplete" {
        let _ = writeln!(out, "\nwhat is left must be undone: `upshift rollback` tries again");
    } else if run.unfinished {
        let _ = writeln!(out, "\n`upshift resume` continues it, `upshift rollback` undoes it");
    }
    Ok(out)
}
