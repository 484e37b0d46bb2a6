//! The engine: executes a checked playbook as a state machine. Every
//! transition is appended to the journal (fsynced) before the engine moves on;
//! reporters only hear events. `run` starts a run, `resume` continues an
//! unfinished one from its journal, `rollback` undoes what a run completed.
//!
//! Commands see secret values; everything shown or stored sees masks.

use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::Exit;
use crate::check::Inputs;
use crate::cli::SelectionArgs;
use crate::context::{Context, StepResult};
use crate::events::{Event, Reporter};
use crate::files::{Snapshots, mode_of, write_atomic};
use crate::journal::{self, Header, Journal, Outcome, Phase, Record, RunOutcome, SavedSelection};
use crate::plan::{
    self, PlanOptions, PlannedAction, PlannedStep, Status, apply_edit, command_spec, render_env, resolve,
};
use crate::playbook::{Action, Playbook, Rollback, Step};
use crate::process::{Executor, Output, Stream, signals};
use crate::secrets::Masker;
use crate::select::Selection;

/// How much of a step's output the journal keeps (the tail), for `steps.*` on resume.
const JOURNAL_OUTPUT: usize = 64 * 1024;

/// The operator's choices for one invocation.
#[derive(Debug, Clone, Default)]
pub(crate) struct RunOptions {
    pub(crate) yes: bool,
    pub(crate) approve: Vec<String>,
    pub(crate) ignore_window: bool,
    pub(crate) accept_changes: bool,
    pub(crate) retry_interrupted: bool,
    pub(crate) skip_interrupted: bool,
}

/// Why a command stopped before or outside the step loop.
#[derive(Debug)]
pub(crate) struct Failure {
    pub(crate) exit: Exit,
    pub(crate) message: String,
    pub(crate) help: Option<String>,
    /// Lines listed under the message (failed checks, changed steps).
    pub(crate) details: Vec<String>,
}

impl Failure {
    fn new(exit: Exit, message: impl Into<String>) -> Failure {
        Failure { exit, message: message.into(), help: None, details: Vec::new() }
    }

    fn help(mut self, help: impl Into<String>) -> Failure {
        self.help = Some(help.into());
        self
    }

    fn details(mut self, details: Vec<String>) -> Failure {
        self.details = details;
        self
    }
}

fn io_failure(what: &str, error: &std::io::Error) -> Failure {
    Failure::new(Exit::RollbackIncomplete, format!("{what}: {}", crate::document::io_reason(error)))
}

/// Where a playbook's runs live: `STATE/runs/NAME@ENV/`.
pub(crate) fn runs_dir(state_dir: &Path, playbook: &str, environment: Option<&str>) -> PathBuf {
    let clean = |s: &str| {
        s.chars().map(|c| if c.is_ascii_alphanumeric() || "-_.".contains(c) { c } else { '_' }).collect::<String>()
    };
    state_dir.join("runs").join(format!("{}@{}", clean(playbook), clean(environment.unwrap_or("default"))))
}

/// One journalled run, read back.
#[derive(Debug)]
pub(crate) struct RunRecord {
    pub(crate) path: PathBuf,
    pub(crate) header: Header,
    pub(crate) records: Vec<Record>,
    pub(crate) valid_len: u64,
    pub(crate) torn: bool,
}

impl RunRecord {
    pub(crate) fn end(&self) -> Option<(RunOutcome, &[String])> {
        self.records.iter().rev().find_map(|r| match r {
            Record::End { outcome, left, .. } => Some((*outcome, left.as_slice())),
            _ => None,
        })
    }

    /// Not finished: crashed, interrupted, or a rollback left work.
    pub(crate) fn unfinished(&self) -> bool {
        matches!(self.end(), None | Some((RunOutcome::RollbackIncomplete, _)))
    }

    /// The last outcome of each step in a phase, in journal order.
    pub(crate) fn outcomes(&self, phase: Phase) -> Vec<(String, Option<Outcome>)> {
        let mut out: Vec<(String, Option<Outcome>)> = Vec::new();
        for record in &self.records {
            match record {
                Record::Started { step, phase: p, .. } if *p == phase => {
                    out.retain(|(id, _)| id != step);
                    out.push((step.clone(), None));
                }
                Record::Finished { step, phase: p, outcome, .. } if *p == phase => {
                    out.retain(|(id, _)| id != step);
                    out.push((step.clone(), Some(*outcome)));
                }
                _ => {}
            }
        }
        out
    }

    /// The step that started and never finished (a crash or a signal), if any.
    pub(crate) fn interrupted_step(&self) -> Option<(Phase, String)> {
        for phase in [Phase::Step, Phase::Finally, Phase::Rollback] {
            if let Some((id, None)) = self.outcomes(phase).last() {
                return Some((phase, id.clone()));
            }
        }
        None
    }

    pub(crate) fn describe(&self) -> String {
        match (self.end(), self.interrupted_step()) {
            (Some((outcome, _)), _) => {
                serde_json::to_value(outcome).ok().and_then(|v| v.as_str().map(str::to_owned)).unwrap_or_default()
            }
            (None, Some((_, step))) => format!("unfinished: stopped during `{step}`"),
            (None, None) => "unfinished".to_owned(),
        }
    }
}

/// Every run of a playbook+environment, oldest first.
pub(crate) fn list_runs(dir: &Path) -> Result<Vec<RunRecord>, Failure> {
    let mut paths: Vec<PathBuf> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "jsonl"))
        .collect();
    paths.sort();
    paths.iter().map(|path| read_run(path)).collect()
}

pub(crate) fn read_run(path: &Path) -> Result<RunRecord, Failure> {
    let loaded = journal::load(path).map_err(|message| {
        Failure::new(Exit::RollbackIncomplete, message).help("the journal is damaged; inspect it before going on")
    })?;
    let header = match loaded.records.first() {
        Some(Record::Run(header)) => (**header).clone(),
        _ => {
            return Err(Failure::new(
                Exit::RollbackIncomplete,
                format!("journal `{}` has no run header", path.display()),
            ));
        }
    };
    Ok(RunRecord {
        path: path.to_owned(),
        header,
        records: loaded.records,
        valid_len: loaded.valid_len,
        torn: loaded.torn,
    })
}

fn selection_of(saved: &SavedSelection) -> Result<Selection, String> {
    let scheme = saved.scheme;
    let change = match saved.change.as_str() {
        "major" => "major",
        "minor" => "minor",
        "patch" => "patch",
        _ => "none",
    };
    Ok(Selection {
        scheme,
        current: scheme.version(&saved.current)?,
        target: scheme.version(&saved.target)?,
        change,
        candidates: saved.candidates.iter().filter_map(|c| scheme.version(c).ok()).collect(),
        requirement: saved.requirement.clone(),
        reason: saved.reason.clone(),
        passed_over: Vec::new(),
        requirements: saved.requirements.clone(),
        matrix_row: saved.matrix_row.clone(),
    })
}

fn saved_selection(selection: &Selection) -> SavedSelection {
    SavedSelection {
        scheme: selection.scheme,
        current: selection.current.to_string(),
        target: selection.target.to_string(),
        change: selection.change.to_owned(),
        candidates: selection.candidates.iter().map(|v| v.to_string()).collect(),
        requirement: selection.requirement.clone(),
        reason: selection.reason.clone(),
        requirements: selection.requirements.clone(),
        matrix_row: selection.matrix_row.clone(),
    }
}

fn new_run_id() -> String {
    let now = jiff::Timestamp::now();
    format!("{}-{:05}", now.strftime("%Y%m%dT%H%M%S%.3fZ"), std::process::id() % 100_000).replace('.', "")
}

/// `run`: readiness, window, secrets, lock, header, steps.
pub(crate) fn run(
    playbook: &Playbook,
    state_dir: &Path,
    selection: &SelectionArgs,
    options: &RunOptions,
    reporter: &mut dyn Reporter,
    now: Option<jiff::Timestamp>,
) -> Result<Exit, Failure> {
    let executor = crate::process::Local;
    // The lock comes first: a second runner must hear "another run holds the
    // lock", not whatever the first run's half-done changes make its checks say.
    signals::install();
    let _lock = take_lock(state_dir, "run")?;
    let dir = runs_dir(state_dir, &playbook.name, playbook.environment.as_deref());
    if let Some(unfinished) = list_runs(&dir)?.into_iter().rev().find(RunRecord::unfinished) {
        return Err(Failure::new(
            Exit::Locked,
            format!("run `{}` of this playbook is unfinished ({})", unfinished.header.run_id, unfinished.describe()),
        )
        .help("`upshift resume` continues it, `upshift rollback` undoes it"));
    }
    let plan_options = PlanOptions { selection: selection.clone(), execute: true, execute_read_only: false, now };
    let plan = plan::plan(playbook, &plan_options, &executor).map_err(|error| match error {
        plan::PlanError::Invalid(diagnostics) => {
            // `failed` prints the `error: ` the rendered diagnostics start with.
            let rendered = crate::diagnostic::render_all(&diagnostics, false);
            Failure::new(Exit::Invalid, rendered.strip_prefix("error: ").unwrap_or(&rendered))
        }
        plan::PlanError::Version { message, usage } => Failure::new(
            if usage { Exit::Invalid } else { Exit::NotReady },
            format!("cannot choose a version: {message}"),
        )
        .help("nothing was changed"),
    })?;
    let failed: Vec<String> = plan
        .checks
        .iter()
        .filter(|c| c.status == "failed")
        .map(|c| match &c.hint {
            Some(hint) => format!("{}: {} (hint: {hint})", c.name, c.observed),
            None => format!("{}: {}", c.name, c.observed),
        })
        .collect();
    if !failed.is_empty() {
        return Err(Failure::new(
            Exit::NotReady,
            format!("{} readiness check{} failed", failed.len(), if failed.len() == 1 { "" } else { "s" }),
        )
        .details(failed)
        .help("nothing was changed"));
    }
    let mut window_note = None;
    if let Some(verdict) = &plan.window
        && !verdict.open
    {
        let next = verdict.next_open.as_deref().unwrap_or("not within a week");
        if !options.ignore_window {
            return Err(Failure::new(
                Exit::NotReady,
                format!("outside the maintenance window ({}); the next opens {next}", verdict.timezone),
            )
            .help("nothing was changed; `--ignore-window` runs anyway"));
        }
        window_note = Some(format!("started outside the window with --ignore-window (next opens {next})"));
    }
    let secret_values = resolve_secrets(playbook)?;

    let run_id = new_run_id();
    let path = dir.join(format!("{run_id}.jsonl"));
    let started_at = journal::now();
    let header = Header {
        v: journal::JOURNAL_FORMAT,
        run_id: run_id.clone(),
        playbook: playbook.name.clone(),
        file: crate::check::absolute(Path::new(&playbook.source.display)),
        fingerprint: playbook.fingerprint.clone(),
        environment: playbook.environment.clone(),
        vars: playbook.vars.clone(),
        selection: plan.selection.as_ref().map(saved_selection),
        started_at: started_at.clone(),
        target: executor.target().to_owned(),
        host: crate::lock::hostname(),
        user: crate::lock::user(),
        pid: std::process::id(),
        window: window_note.clone(),
    };
    let journal = Journal::create(&path, &Record::Run(Box::new(header)))
        .map_err(|e| io_failure("cannot create the journal", &e))?;

    let mut engine = Engine::new(
        playbook,
        &executor,
        reporter,
        journal,
        &secret_values,
        plan.selection.as_ref(),
        (&run_id, &started_at),
        options,
    );
    engine.report(&Event::RunStarted {
        run_id: &run_id,
        playbook: &playbook.name,
        environment: playbook.environment.as_deref(),
        version: plan.version.as_ref().map(|v| v.selected.as_str()),
        resumed: false,
        journal: &path.display().to_string(),
    });
    if let Some(note) = &window_note {
        engine.notice("warning", note);
    }
    engine.finish(&HashSet::new())
}

fn take_lock(state_dir: &Path, command: &str) -> Result<crate::lock::Lock, Failure> {
    crate::lock::acquire(state_dir, command).map_err(|error| match error {
        crate::lock::LockError::Held(holder) => Failure::new(
            Exit::Locked,
            match holder {
                Some(holder) => format!("another upshift holds the lock: {}", holder.describe()),
                None => "another upshift holds the lock".to_owned(),
            },
        )
        .help("wait for it to finish; the lock is released when that process ends"),
        crate::lock::LockError::Io(error) => io_failure(&format!("cannot lock `{}`", state_dir.display()), &error),
    })
}

/// Finds the run `resume` or `rollback` works on: the newest unfinished run
/// of the playbook, or the only unfinished run in the state dir.
pub(crate) fn find_unfinished(state_dir: &Path, playbook: Option<(&str, Option<&str>)>) -> Result<RunRecord, Failure> {
    let mut candidates = Vec::new();
    match playbook {
        Some((name, env)) => candidates.extend(list_runs(&runs_dir(state_dir, name, env))?),
        None => {
            for entry in std::fs::read_dir(state_dir.join("runs")).into_iter().flatten().flatten() {
                candidates.extend(list_runs(&entry.path())?);
            }
        }
    }
    let mut unfinished: Vec<RunRecord> = candidates.into_iter().filter(RunRecord::unfinished).collect();
    unfinished.sort_by(|a, b| a.header.run_id.cmp(&b.header.run_id));
    match (unfinished.len(), playbook) {
        (0, _) => Err(Failure::new(Exit::Invalid, "there is no unfinished run to continue")
            .help("`upshift status` lists the runs")),
        (1, _) | (_, Some(_)) => Ok(unfinished.pop().expect("not empty")),
        (_, None) => Err(Failure::new(Exit::Invalid, "there are several unfinished runs; name the playbook").details(
            unfinished
                .iter()
                .map(|r| {
                    format!(
                        "{} ({}, run {})",
                        r.header.file.display(),
                        r.header.environment.as_deref().unwrap_or("no env"),
                        r.header.run_id
                    )
                })
                .collect(),
        )),
    }
}

/// The inputs that load a run's playbook again: its environment. (Its final
/// vars come from the journal: `reopen` puts them back.)
pub(crate) fn inputs_of(record: &RunRecord) -> Inputs {
    Inputs { env: record.header.environment.clone(), ..Inputs::default() }
}

/// `resume`: continues an unfinished run from its journal.
pub(crate) fn resume(
    playbook: &mut Playbook,
    record: RunRecord,
    state_dir: &Path,
    options: &RunOptions,
    reporter: &mut dyn Reporter,
) -> Result<Exit, Failure> {
    if let Some((RunOutcome::RollbackIncomplete, _)) = record.end() {
        return Err(Failure::new(
            Exit::Invalid,
            format!("run `{}` failed and its rollback is incomplete", record.header.run_id),
        )
        .help("`upshift rollback` retries what is left"));
    }
    let rolling_back = record.records.iter().any(|r| {
        matches!(r, Record::Started { phase: Phase::Rollback, .. } | Record::Finished { phase: Phase::Rollback, .. })
    }) || record
        .outcomes(Phase::Step)
        .iter()
        .any(|(id, o)| *o == Some(Outcome::Failed) && !continues_on_error(playbook, id));
    if rolling_back {
        reporter.event(&Event::Notice {
            level: "warning",
            message: "this run failed and was being rolled back: finishing the rollback",
        });
        return rollback(playbook, record, state_dir, options, reporter);
    }
    let Reopened { record, journal, contexts: engine_contexts, secrets: secret_values, _lock } =
        reopen(playbook, &record, state_dir, "resume")?;
    let executor = crate::process::Local;

    // Fingerprints of completed steps against the playbook as it is now.
    let started: BTreeMap<String, String> = record
        .records
        .iter()
        .filter_map(|r| match r {
            Record::Started { step, phase: Phase::Step, fingerprint, .. } => Some((step.clone(), fingerprint.clone())),
            _ => None,
        })
        .collect();
    let outcomes = record.outcomes(Phase::Step);
    let mut changed = Vec::new();
    for (id, outcome) in &outcomes {
        if *outcome != Some(Outcome::Ok) {
            continue;
        }
        let Some(step) = playbook.steps.iter().find(|s| s.id.as_str() == id) else {
            changed.push(format!("`{id}` is no longer in the playbook"));
            continue;
        };
        let now = plan::describe_step(step, &engine_contexts.0).map(|p| p.fingerprint).unwrap_or_default();
        if started.get(id) != Some(&now) {
            changed.push(format!("`{id}` changed since it ran"));
        }
    }
    if !changed.is_empty() && !options.accept_changes {
        return Err(Failure::new(
            Exit::Invalid,
            format!("the playbook changed since run `{}` started", record.header.run_id),
        )
        .details(changed)
        .help("nothing was run; `--accept-changes` resumes with the playbook as it is now"));
    }

    let mut skip: HashSet<String> = outcomes.iter().filter(|(_, o)| o.is_some()).map(|(id, _)| id.clone()).collect();
    let interrupted = record.interrupted_step();
    let mut engine = Engine::with_contexts(
        playbook,
        &executor,
        reporter,
        journal,
        engine_contexts,
        &secret_values,
        options,
        &record.header.run_id,
    );
    engine.report(&Event::RunStarted {
        run_id: &record.header.run_id,
        playbook: &playbook.name,
        environment: playbook.environment.as_deref(),
        version: record.header.selection.as_ref().map(|s| s.target.as_str()),
        resumed: true,
        journal: &record.path.display().to_string(),
    });
    if record.torn {
        engine.notice("warning", "the journal's last record was cut off by the crash; it was ignored");
    }
    engine.append(&Record::Resumed {
        pid: std::process::id(),
        accepted_changes: changed.clone(),
        at: journal::now(),
    })?;
    if let Some((Phase::Step, id)) = &interrupted {
        let step = playbook.steps.iter().find(|s| s.id.as_str() == id);
        let idempotent = step.is_some_and(|s| s.idempotent);
        if options.skip_interrupted {
            engine.notice("warning", &format!("`{id}` was interrupted; skipped as asked (--skip-interrupted)"));
            engine.append(&finished(
                id,
                Phase::Step,
                Outcome::Skipped,
                Some("interrupted; skipped by the operator".to_owned()),
                &Output::default(),
                &engine.masker,
                engine.target(),
            ))?;
            engine.set_result(id, &StepResult { stdout: String::new(), exit_code: None, skipped: true });
            skip.insert(id.clone());
        } else if idempotent || options.retry_interrupted {
            engine.notice(
                "warning",
                &format!(
                    "`{id}` was interrupted; running it again ({})",
                    if idempotent { "it is idempotent" } else { "--retry-interrupted" }
                ),
            );
        } else {
            return Err(Failure::new(Exit::Invalid, format!("step `{id}` was interrupted and is not idempotent: it may have run in part"))
                .help("check what it did, then `upshift resume --retry-interrupted` to run it again or `--skip-interrupted` if it completed"));
        }
    }
    // Steps done before the crash count for rollback.
    engine.done = outcomes.iter().filter(|(_, o)| *o == Some(Outcome::Ok)).map(|(id, _)| id.clone()).collect();
    engine.finish(&skip)
}

/// Resolves the playbook's secrets; a missing required one stops before anything changes.
fn resolve_secrets(playbook: &Playbook) -> Result<BTreeMap<String, String>, Failure> {
    crate::secrets::resolve(playbook).map_err(|missing| {
        Failure::new(Exit::NotReady, "required secrets are missing").details(missing).help("nothing was changed")
    })
}

/// A journalled run made ready to go on (`resume`) or to be undone (`rollback`).
struct Reopened {
    /// Read again under the lock: another process may have moved it on.
    record: RunRecord,
    journal: Journal,
    /// Shown and exec contexts, with the journal's version choice and step outputs.
    contexts: (Context, Context),
    secrets: BTreeMap<String, String>,
    _lock: crate::lock::Lock,
}

/// Binds the playbook to the run's variables, resolves secrets, takes the
/// lock, and rebuilds the contexts from the journal. Never selects a version.
fn reopen(playbook: &mut Playbook, record: &RunRecord, state_dir: &Path, command: &str) -> Result<Reopened, Failure> {
    playbook.vars = record.header.vars.clone();
    let secrets = resolve_secrets(playbook)?;
    signals::install();
    let lock = take_lock(state_dir, command)?;
    let record = read_run(&record.path)?;
    let selection =
        record.header.selection.as_ref().map(selection_of).transpose().map_err(|why| {
            Failure::new(Exit::Invalid, format!("the journal's version choice does not parse: {why}"))
        })?;
    let journal =
        Journal::reopen(&record.path, record.valid_len).map_err(|e| io_failure("cannot open the journal", &e))?;
    let mut contexts =
        Engine::contexts(playbook, &secrets, selection.as_ref(), (&record.header.run_id, &record.header.started_at));
    restore_outputs(&record, &mut contexts);
    Ok(Reopened { record, journal, contexts, secrets, _lock: lock })
}

fn continues_on_error(playbook: &Playbook, id: &str) -> bool {
    playbook.steps.iter().any(|s| s.id.as_str() == id && s.continue_on_error)
}

/// Puts journalled step results back into both contexts.
fn restore_outputs(record: &RunRecord, contexts: &mut (Context, Context)) {
    for r in &record.records {
        if let Record::Finished { step, phase: Phase::Step | Phase::Finally, outcome, stdout, exit_code, .. } = r {
            let result =
                StepResult { stdout: stdout.clone(), exit_code: *exit_code, skipped: *outcome == Outcome::Skipped };
            contexts.0.set_step(step, &result);
            contexts.1.set_step(step, &result);
        }
    }
}

/// `rollback`: undoes the completed steps of an unfinished or failed run, newest first.
pub(crate) fn rollback(
    playbook: &mut Playbook,
    record: RunRecord,
    state_dir: &Path,
    options: &RunOptions,
    reporter: &mut dyn Reporter,
) -> Result<Exit, Failure> {
    let Reopened { record, journal, contexts, secrets: secret_values, _lock } =
        reopen(playbook, &record, state_dir, "rollback")?;
    let executor = crate::process::Local;
    let mut engine = Engine::with_contexts(
        playbook,
        &executor,
        reporter,
        journal,
        contexts,
        &secret_values,
        options,
        &record.header.run_id,
    );
    engine.report(&Event::Notice { level: "note", message: &format!("rolling back run `{}`", record.header.run_id) });
    let rolled_back: HashSet<String> = record
        .outcomes(Phase::Rollback)
        .into_iter()
        .filter(|(_, o)| matches!(o, Some(Outcome::Ok | Outcome::Skipped)))
        .map(|(id, _)| id)
        .collect();
    engine.done = record
        .outcomes(Phase::Step)
        .into_iter()
        .filter(|(id, o)| *o == Some(Outcome::Ok) && !rolled_back.contains(id))
        .map(|(id, _)| id)
        .collect();
    engine.rollback_and_finish()
}

/// How a list of steps ended.
enum Ended {
    Completed,
    Failed(String),
    Interrupted(Option<String>),
}

struct Engine<'a> {
    playbook: &'a Playbook,
    executor: &'a dyn Executor,
    reporter: &'a mut dyn Reporter,
    journal: Journal,
    masker: Masker,
    /// Secrets masked: what is shown, fingerprinted and journalled.
    shown: Context,
    /// Secrets revealed: what commands are built from.
    exec: Context,
    snapshots: Snapshots,
    options: &'a RunOptions,
    run_id: String,
    /// Steps that completed, in order: what a rollback undoes.
    done: Vec<String>,
}

fn finished(
    step: &str,
    phase: Phase,
    outcome: Outcome,
    reason: Option<String>,
    output: &Output,
    masker: &Masker,
    target: &str,
) -> Record {
    Record::Finished {
        step: step.to_owned(),
        phase,
        outcome,
        reason: reason.map(|r| masker.mask(&r)),
        exit_code: output.exit_code,
        stdout: tail(&masker.mask(output.stdout.trim()), JOURNAL_OUTPUT),
        stderr: tail(&masker.mask(output.stderr.trim()), 4096),
        duration_ms: output.elapsed.as_millis() as u64,
        target: target.to_owned(),
        at: journal::now(),
    }
}

fn tail(text: &str, max: usize) -> String {
    if text.len() <= max {
        return text.to_owned();
    }
    let start = (text.len() - max..text.len()).find(|i| text.is_char_boundary(*i)).unwrap_or(text.len());
    format!("…{}", &text[start..])
}

/// What executing one action left.
struct Done {
    output: Output,
    error: Option<String>,
}

impl<'a> Engine<'a> {
    #[allow(clippy::too_many_arguments)]
    fn new(
        playbook: &'a Playbook,
        executor: &'a dyn Executor,
        reporter: &'a mut dyn Reporter,
        journal: Journal,
        secrets: &BTreeMap<String, String>,
        selection: Option<&Selection>,
        run: (&str, &str),
        options: &'a RunOptions,
    ) -> Engine<'a> {
        let contexts = Engine::contexts(playbook, secrets, selection, run);
        Engine::with_contexts(playbook, executor, reporter, journal, contexts, secrets, options, run.0)
    }

    fn contexts(
        playbook: &Playbook,
        secrets: &BTreeMap<String, String>,
        selection: Option<&Selection>,
        run: (&str, &str),
    ) -> (Context, Context) {
        (Context::new(playbook, selection, None, run), Context::new(playbook, selection, Some(secrets), run))
    }

    #[allow(clippy::too_many_arguments)]
    fn with_contexts(
        playbook: &'a Playbook,
        executor: &'a dyn Executor,
        reporter: &'a mut dyn Reporter,
        journal: Journal,
        contexts: (Context, Context),
        secrets: &BTreeMap<String, String>,
        options: &'a RunOptions,
        run_id: &str,
    ) -> Engine<'a> {
        let snapshots = Snapshots::new(journal.path.with_extension("files"));
        Engine {
            playbook,
            executor,
            reporter,
            journal,
            masker: Masker::new(secrets),
            shown: contexts.0,
            exec: contexts.1,
            snapshots,
            options,
            run_id: run_id.to_owned(),
            done: Vec::new(),
        }
    }

    fn target(&self) -> &str {
        self.executor.target()
    }

    fn report(&mut self, event: &Event<'_>) {
        self.reporter.event(event);
    }

    fn notice(&mut self, level: &'static str, message: &str) {
        let message = self.masker.mask(message);
        self.reporter.event(&Event::Notice { level, message: &message });
    }

    fn append(&mut self, record: &Record) -> Result<(), Failure> {
        self.journal.append(record).map_err(|e| {
            Failure::new(
                Exit::RollbackIncomplete,
                format!(
                    "cannot write the journal `{}`: {}",
                    self.journal.path.display(),
                    crate::document::io_reason(&e)
                ),
            )
            .help("the run stopped; fix the state dir, then `upshift resume`")
        })
    }

    fn set_result(&mut self, id: &str, result: &StepResult) {
        self.shown.set_step(id, result);
        self.exec.set_step(id, result);
    }

    /// Runs the steps (skipping `skip`), then finally; rolls back on a failure.
    fn finish(&mut self, skip: &HashSet<String>) -> Result<Exit, Failure> {
        let steps = &self.playbook.steps;
        match self.steps(steps, Phase::Step, skip)? {
            Ended::Completed => {
                let failures = self.finally()?;
                if failures.is_empty() {
                    self.end(RunOutcome::Succeeded, Vec::new(), Exit::Success)
                } else {
                    self.end(RunOutcome::FinallyFailed, failures, Exit::RollbackIncomplete)
                }
            }
            Ended::Failed(id) => {
                self.notice(
                    "error",
                    &format!(
                        "`{id}` failed: rolling back {} completed step{}",
                        self.done.len(),
                        if self.done.len() == 1 { "" } else { "s" }
                    ),
                );
                self.rollback_and_finish()
            }
            Ended::Interrupted(step) => self.interrupted(step),
        }
    }

    fn interrupted(&mut self, step: Option<String>) -> Result<Exit, Failure> {
        let signal = signals::pending().map_or("SIGINT", signals::name);
        self.append(&Record::Interrupted { step: step.clone(), signal: signal.to_owned(), at: journal::now() })?;
        let at = step.map_or_else(String::new, |s| format!(" during `{s}`"));
        self.notice("warning", &format!("interrupted by {signal}{at}; nothing was rolled back"));
        self.notice("note", "`upshift resume` continues the run, `upshift rollback` undoes it");
        self.report(&Event::RunFinished {
            run_id: &self.run_id.clone(),
            outcome: "interrupted",
            exit_code: Exit::Interrupted.code(),
            left: &[],
        });
        Ok(Exit::Interrupted)
    }

    fn rollback_and_finish(&mut self) -> Result<Exit, Failure> {
        let left = match self.rollback()? {
            Ok(left) => left,
            Err(step) => return self.interrupted(step),
        };
        let finally_failures = self.finally()?;
        let mut all = left.clone();
        all.extend(finally_failures);
        if left.is_empty() && all.is_empty() {
            self.end(RunOutcome::RolledBack, all, Exit::StepFailed)
        } else if left.is_empty() {
            self.end(RunOutcome::FinallyFailed, all, Exit::RollbackIncomplete)
        } else {
            self.end(RunOutcome::RollbackIncomplete, all, Exit::RollbackIncomplete)
        }
    }

    fn end(&mut self, outcome: RunOutcome, left: Vec<String>, exit: Exit) -> Result<Exit, Failure> {
        self.append(&Record::End { outcome, left: left.clone(), at: journal::now() })?;
        let name = serde_json::to_value(outcome).ok().and_then(|v| v.as_str().map(str::to_owned)).unwrap_or_default();
        self.report(&Event::RunFinished {
            run_id: &self.run_id.clone(),
            outcome: &name,
            exit_code: exit.code(),
            left: &left,
        });
        Ok(exit)
    }

    fn steps(&mut self, steps: &'a [Step], phase: Phase, skip: &HashSet<String>) -> Result<Ended, Failure> {
        for step in steps {
            let id = step.id.as_str();
            if skip.contains(id) {
                continue;
            }
            if signals::pending().is_some() {
                return Ok(Ended::Interrupted(None));
            }
            let planned = plan::describe_step(step, &self.shown).map_err(render_failure)?;
            match planned.status {
                Status::Skipped => {
                    let reason = planned.reason.clone().unwrap_or_default();
                    self.append(&finished(
                        id,
                        phase,
                        Outcome::Skipped,
                        Some(reason.clone()),
                        &Output::default(),
                        &self.masker,
                        self.executor.target(),
                    ))?;
                    self.set_result(id, &StepResult { stdout: String::new(), exit_code: None, skipped: true });
                    self.report(&Event::StepFinished {
                        step: id,
                        phase,
                        outcome: Outcome::Skipped,
                        reason: Some(&reason),
                        exit_code: None,
                        duration_ms: 0,
                    });
                    continue;
                }
                Status::DecidedAtRunTime => {
                    return Err(Failure::new(
                        Exit::RollbackIncomplete,
                        format!("internal error: the guard of `{id}` could not be decided at run time"),
                    ));
                }
                Status::WillRun => {}
            }
            let action_text = describe_action(&planned.action);
            self.append(&Record::Started {
                step: id.to_owned(),
                phase,
                fingerprint: planned.fingerprint.clone(),
                action: action_text.clone(),
                target: self.executor.target().to_owned(),
                at: journal::now(),
            })?;
            let mut attempt = 1;
            let done = loop {
                self.report(&Event::StepStarted {
                    step: id,
                    name: planned.name.as_deref(),
                    phase,
                    action: &action_text,
                    attempt,
                });
                let done = self.execute(step, &step.action, &planned, step.cwd.as_ref(), &step.env, step.timeout)?;
                if done.output.interrupted.is_some() || done.error.is_none() || attempt > step.retries {
                    break done;
                }
                let reason = done.error.clone().unwrap_or_default();
                self.notice(
                    "warning",
                    &format!("`{id}` failed ({reason}); retrying in {}", humantime::format_duration(step.retry_delay)),
                );
                if !sleep_unless_signalled(step.retry_delay) {
                    break done;
                }
                attempt += 1;
            };
            if done.output.interrupted.is_some() || (done.error.is_some() && signals::pending().is_some()) {
                return Ok(Ended::Interrupted(Some(id.to_owned())));
            }
            let outcome = if done.error.is_none() { Outcome::Ok } else { Outcome::Failed };
            self.append(&finished(
                id,
                phase,
                outcome,
                done.error.clone(),
                &done.output,
                &self.masker,
                self.executor.target(),
            ))?;
            let result = StepResult {
                stdout: self.masker.mask(done.output.stdout.trim()),
                exit_code: done.output.exit_code,
                skipped: false,
            };
            // Later steps read the real output; what is shown or stored stays masked.
            self.exec.set_step(id, &StepResult { stdout: done.output.stdout.trim().to_owned(), ..result.clone() });
            self.shown.set_step(id, &result);
            let reason = done.error.as_deref().map(|r| self.masker.mask(r));
            self.report(&Event::StepFinished {
                step: id,
                phase,
                outcome,
                reason: reason.as_deref(),
                exit_code: done.output.exit_code,
                duration_ms: done.output.elapsed.as_millis() as u64,
            });
            match outcome {
                Outcome::Ok => {
                    if phase == Phase::Step {
                        self.done.push(id.to_owned());
                    }
                }
                _ if step.continue_on_error => {
                    self.notice("warning", &format!("`{id}` failed; going on (continue_on_error)"));
                }
                _ => return Ok(Ended::Failed(id.to_owned())),
            }
        }
        Ok(Ended::Completed)
    }

    /// Runs every `finally` step; returns what failed.
    fn finally(&mut self) -> Result<Vec<String>, Failure> {
        let mut failures = Vec::new();
        let steps = &self.playbook.finally;
        for step in steps {
            match self.steps(std::slice::from_ref(step), Phase::Finally, &HashSet::new())? {
                Ended::Failed(id) => failures.push(format!("finally step `{id}` failed: check it by hand")),
                Ended::Interrupted(_) => {
                    failures.push(format!("finally step `{}` was interrupted", step.id));
                    break;
                }
                Ended::Completed => {}
            }
        }
        Ok(failures)
    }

    /// Undoes completed steps newest first. `Ok(left)` lists what could not be
    /// undone; `Err(step)` means a signal stopped the rollback.
    fn rollback(&mut self) -> Result<Result<Vec<String>, Option<String>>, Failure> {
        let mut left = Vec::new();
        let done: Vec<String> = self.done.iter().rev().cloned().collect();
        for id in done {
            if signals::pending().is_some() {
                return Ok(Err(None));
            }
            let Some(step) = self.playbook.steps.iter().find(|s| s.id.as_str() == id) else {
                left.push(format!("`{id}` is no longer in the playbook: undo it by hand"));
                continue;
            };
            let value = self.exec.value(step.scope.as_ref()).map_err(render_failure)?;
            let shown = self.shown.value(step.scope.as_ref()).map_err(render_failure)?;
            match &step.rollback {
                Rollback::Nothing => {}
                Rollback::Irreversible => {
                    self.notice("warning", &format!("`{id}` cannot be undone (rollback = false); an earlier step's rollback restores what it changed"));
                }
                Rollback::Restore => {
                    self.start_rollback(&id, "restore the file from its snapshot")?;
                    let started = Instant::now();
                    let result = self.snapshots.restore(&id);
                    let output = Output { elapsed: started.elapsed(), exit_code: Some(0), ..Output::default() };
                    let error = result
                        .err()
                        .map(|e| format!("cannot restore the snapshot: {}", crate::document::io_reason(&e)));
                    if let Some(error) = &error {
                        left.push(format!("`{id}`: {error}"));
                    }
                    self.finish_rollback(&id, error, &output)?;
                }
                Rollback::Action { action, guard, cwd, env, timeout } => {
                    if let Some(guard) = guard {
                        match guard.eval(&value) {
                            Ok(true) => {}
                            Ok(false) => {
                                let reason = format!("`{}` is false", guard.source);
                                self.append(&finished(
                                    &id,
                                    Phase::Rollback,
                                    Outcome::Skipped,
                                    Some(reason.clone()),
                                    &Output::default(),
                                    &self.masker,
                                    self.executor.target(),
                                ))?;
                                self.report(&Event::StepFinished {
                                    step: &id,
                                    phase: Phase::Rollback,
                                    outcome: Outcome::Skipped,
                                    reason: Some(&reason),
                                    exit_code: None,
                                    duration_ms: 0,
                                });
                                continue;
                            }
                            Err(error) => {
                                left.push(format!("`{id}`: {}", self.masker.mask(&error.to_string())));
                                continue;
                            }
                        }
                    }
                    let planned_action = plan::render_action(action, &shown, false).map_err(render_failure)?;
                    let text = describe_action(&planned_action);
                    self.start_rollback(&id, &text)?;
                    // A rollback runs where its step ran unless it says otherwise.
                    let cwd = cwd.as_ref().or(step.cwd.as_ref());
                    let planned = PlannedStep::for_rollback(&id, planned_action);
                    let done = self.execute(step, action, &planned, cwd, env, *timeout)?;
                    if done.output.interrupted.is_some() {
                        return Ok(Err(Some(id)));
                    }
                    if let Some(error) = &done.error {
                        left.push(format!(
                            "`{id}`: rollback failed ({}); undo by hand: {text}",
                            self.masker.mask(error)
                        ));
                    }
                    self.finish_rollback(&id, done.error.clone(), &done.output)?;
                }
            }
        }
        Ok(Ok(left))
    }

    fn start_rollback(&mut self, id: &str, action: &str) -> Result<(), Failure> {
        self.append(&Record::Started {
            step: id.to_owned(),
            phase: Phase::Rollback,
            fingerprint: String::new(),
            action: action.to_owned(),
            target: self.executor.target().to_owned(),
            at: journal::now(),
        })?;
        self.report(&Event::StepStarted { step: id, name: None, phase: Phase::Rollback, action, attempt: 1 });
        Ok(())
    }

    fn finish_rollback(&mut self, id: &str, error: Option<String>, output: &Output) -> Result<(), Failure> {
        let outcome = if error.is_none() { Outcome::Ok } else { Outcome::Failed };
        self.append(&finished(
            id,
            Phase::Rollback,
            outcome,
            error.clone(),
            output,
            &self.masker,
            self.executor.target(),
        ))?;
        let reason = error.map(|e| self.masker.mask(&e));
        self.report(&Event::StepFinished {
            step: id,
            phase: Phase::Rollback,
            outcome,
            reason: reason.as_deref(),
            exit_code: output.exit_code,
            duration_ms: output.elapsed.as_millis() as u64,
        });
        Ok(())
    }

    /// Executes one action with secrets revealed. Errors of the step itself
    /// are in `Done::error`; `Err` is only for the journal failing.
    fn execute(
        &mut self,
        step: &Step,
        action: &Action,
        planned: &PlannedStep,
        cwd: Option<&crate::template::Template>,
        env: &[(String, crate::template::Template)],
        timeout: Option<Duration>,
    ) -> Result<Done, Failure> {
        let id = planned.id.clone();
        let value = self.exec.value(step.scope.as_ref()).map_err(render_failure)?;
        let started = Instant::now();
        let finish = |error: Option<String>| Done {
            output: Output {
                elapsed: started.elapsed(),
                exit_code: Some(if error.is_some() { 1 } else { 0 }),
                ..Output::default()
            },
            error,
        };
        match action {
            Action::Command(command) => {
                let rendered = (|| {
                    let cwd = cwd.map(|c| c.render(&value)).transpose()?;
                    let env = render_env(env, &value)?;
                    command_spec(command, &value, cwd.as_deref(), &env, timeout)
                })();
                let spec = match rendered {
                    Ok(spec) => spec,
                    Err(error) => return Ok(finish(Some(self.masker.mask(&error.to_string())))),
                };
                let masker = self.masker.clone();
                let reporter = &mut *self.reporter;
                let result = self.executor.run_watched(&spec, &mut |stream, line| {
                    let line = masker.mask(line);
                    reporter.event(&Event::Output {
                        step: &id,
                        stream: match stream {
                            Stream::Stdout => "stdout",
                            Stream::Stderr => "stderr",
                        },
                        line: &line,
                    });
                });
                match result {
                    Ok(output) => {
                        let error = (!output.success()).then(|| {
                            let last = output
                                .stderr
                                .trim()
                                .lines()
                                .last()
                                .or_else(|| output.stdout.trim().lines().last())
                                .unwrap_or("");
                            if last.is_empty() {
                                output.describe_end()
                            } else {
                                format!("{}: {last}", output.describe_end())
                            }
                        });
                        Ok(Done { output, error })
                    }
                    Err(error) => Ok(finish(Some(format!(
                        "could not start `{}`: {error}",
                        spec.argv.first().map_or("", String::as_str)
                    )))),
                }
            }
            Action::Edit(edit) => {
                let result = (|| -> Result<(), String> {
                    let path = resolve(&edit.path.render(&value).map_err(|e| e.to_string())?);
                    let old = std::fs::read_to_string(&path)
                        .map_err(|e| format!("cannot read `{}`: {}", path.display(), crate::document::io_reason(&e)))?;
                    let new = apply_edit(&edit.kind, &old, &value, edit.path.location.as_ref())
                        .map_err(|e| e.to_string())??;
                    self.snapshots.take(&id, &path).map_err(|e| {
                        format!("cannot snapshot `{}`: {}", path.display(), crate::document::io_reason(&e))
                    })?;
                    if new != old {
                        write_atomic(&path, new.as_bytes(), mode_of(&path).unwrap_or(0o644)).map_err(|e| {
                            format!("cannot write `{}`: {}", path.display(), crate::document::io_reason(&e))
                        })?;
                    }
                    Ok(())
                })();
                Ok(finish(result.err().map(|e| self.masker.mask(&e))))
            }
            Action::Template(template) => {
                let result = (|| -> Result<(), String> {
                    let dest = resolve(&template.dest.render(&value).map_err(|e| e.to_string())?);
                    let content = template.content.render(&value).map_err(|e| e.to_string())?;
                    self.snapshots.take(&id, &dest).map_err(|e| {
                        format!("cannot snapshot `{}`: {}", dest.display(), crate::document::io_reason(&e))
                    })?;
                    let mode = template.mode.or_else(|| mode_of(&dest)).unwrap_or(0o644);
                    write_atomic(&dest, content.as_bytes(), mode)
                        .map_err(|e| format!("cannot write `{}`: {}", dest.display(), crate::document::io_reason(&e)))
                })();
                Ok(finish(result.err().map(|e| self.masker.mask(&e))))
            }
            Action::Pause(_) => {
                let PlannedAction::Pause { message } = &planned.action else {
                    return Ok(finish(Some("internal error: a pause without a message".to_owned())));
                };
                let answer = self.pause(&id, message);
                let mut done = finish(answer.clone().err());
                if answer == Err("interrupted".to_owned()) {
                    done.output.interrupted = Some(signals::pending().map_or("SIGINT", signals::name));
                }
                Ok(done)
            }
        }
    }

    /// Asks for a person's yes on a terminal; without one, `--yes` or `--approve ID` decide.
    fn pause(&mut self, id: &str, message: &str) -> Result<(), String> {
        if self.options.yes || self.options.approve.iter().any(|a| a == id) {
            self.notice("note", &format!("`{id}` approved on the command line: {message}"));
            return Ok(());
        }
        use std::io::IsTerminal;
        if !std::io::stdin().is_terminal() {
            return Err(format!(
                "`{id}` needs a person's yes and there is no terminal: pass `--approve {id}` or `--yes`"
            ));
        }
        eprintln!("\n{message}\n");
        eprint!("Continue with `{id}`? [y/N] ");
        let (sender, receiver) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut line = String::new();
            let _ = std::io::stdin().read_line(&mut line);
            let _ = sender.send(line);
        });
        loop {
            if signals::pending().is_some() {
                eprintln!();
                return Err("interrupted".to_owned());
            }
            match receiver.recv_timeout(Duration::from_millis(100)) {
                Ok(line) if matches!(line.trim().to_ascii_lowercase().as_str(), "y" | "yes") => return Ok(()),
                Ok(_) => return Err(format!("`{id}` was not approved")),
                Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {}
                Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => return Err(format!("`{id}` was not approved")),
            }
        }
    }
}

fn render_failure(error: impl Into<plan::PlanError>) -> Failure {
    match error.into() {
        plan::PlanError::Invalid(diagnostics) => Failure::new(
            Exit::RollbackIncomplete,
            diagnostics.iter().map(|d| d.message.clone()).collect::<Vec<_>>().join("; "),
        )
        .help("a template failed while the run was under way: `upshift status` shows where it stopped"),
        plan::PlanError::Version { message, .. } => Failure::new(Exit::RollbackIncomplete, message),
    }
}

/// Sleeps, waking early (false) when a signal arrives.
fn sleep_unless_signalled(duration: Duration) -> bool {
    let until = Instant::now() + duration;
    while Instant::now() < until {
        if signals::pending().is_some() {
            return false;
        }
        std::thread::sleep(Duration::from_millis(50).min(until - Instant::now()));
    }
    true
}

/// One line describing an action, secrets masked, for the journal and events.
fn describe_action(action: &PlannedAction) -> String {
    match action {
        PlannedAction::Run { command, .. } => command.clone(),
        PlannedAction::Exec { argv } => shell_words::join(argv),
        PlannedAction::Edit { path, set, .. } => format!("edit {path}: {}", set.join(", ")),
        PlannedAction::Template { src, dest, .. } => format!("template {src} → {dest}"),
        PlannedAction::Pause { message } => format!("pause: {}", message.lines().next().unwrap_or("")),
    }
}
