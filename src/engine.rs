//! The engine: executes a checked playbook as a state machine. Every
//! transition is appended to the journal (fsynced) before the engine moves on;
//! reporters only hear events. `run` starts a run, `resume` continues an
//! unfinished one from its journal, `rollback` undoes what a run did.
//!
//! Every decision (what is left to run, what to undo, which `finally` steps
//! still owe a run) is read from the run's journal state, the same for a
//! fresh run, a resumed one and a rollback, so a crash at any moment neither
//! loses nor doubles a step.
//!
//! Commands see secret values; everything shown or stored sees masks.

use std::collections::{BTreeMap, HashSet};
use std::path::Path;
use std::time::{Duration, Instant};

use crate::Exit;
use crate::cli::SelectionArgs;
use crate::context::{Context, StepInfo, StepResult};
use crate::events::{Event, Reporter};
use crate::files::{Snapshots, replace_content};
use crate::journal::{self, Header, Journal, Outcome, Phase, Record, RunOutcome, SavedSelection};
use crate::plan::{
    self, PlanOptions, PlannedAction, PlannedStep, Status, apply_edit, command_spec, render_env, resolve,
};
use crate::playbook::{Action, Playbook, Rollback, Step};
use crate::process::{Executor, Output, Stream, Watch, signals};
use crate::runlog::RunLog;
use crate::runs::{RunRecord, StepState};
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
    /// Stop what is left of an interrupted step's processes instead of refusing.
    pub(crate) kill_orphans: bool,
    /// `upshift rollback`: undoing the run is what was asked, so a complete undo succeeds (exit 0).
    pub(crate) rollback_requested: bool,
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
    pub(crate) fn new(exit: Exit, message: impl Into<String>) -> Failure {
        Failure { exit, message: message.into(), help: None, details: Vec::new() }
    }

    pub(crate) fn help(mut self, help: impl Into<String>) -> Failure {
        self.help = Some(help.into());
        self
    }

    pub(crate) fn details(mut self, details: Vec<String>) -> Failure {
        self.details = details;
        self
    }
}

fn io_failure(what: &str, error: &std::io::Error) -> Failure {
    Failure::new(Exit::RollbackIncomplete, format!("{what}: {}", crate::document::io_reason(error)))
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
        up_to_date: false,
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

/// The failure of a plan made inside `run`.
fn plan_failure(error: plan::PlanError) -> Failure {
    match error {
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
        plan::PlanError::Interrupted(signal) => interrupted_before(signal),
    }
}

/// A signal arrived before the journal existed: nothing changed, nothing to resume.
fn interrupted_before(signal: &str) -> Failure {
    Failure::new(Exit::Interrupted, format!("interrupted by {signal} before anything changed"))
        .help("nothing was changed and there is nothing to resume")
}

fn check_signal() -> Result<(), Failure> {
    match signals::pending() {
        Some(signal) => Err(interrupted_before(signals::name(signal))),
        None => Ok(()),
    }
}

/// `run`: lock, secrets, version, readiness, window, header, steps.
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
    let (unfinished, unreadable) =
        crate::runs::unfinished_runs(state_dir, Some((&playbook.name, playbook.environment.as_deref())));
    if let Some(damaged) = unreadable.iter().find(|u| u.run_id.is_some()) {
        return Err(Failure::new(
            Exit::Locked,
            format!(
                "run `{}` of this playbook has a damaged journal: {}",
                damaged.run_id.as_deref().unwrap_or(""),
                damaged.reason
            ),
        )
        .help(format!(
            "it may be unfinished: inspect `{}`, finish by hand what it left, then move the file aside",
            damaged.path.display()
        )));
    }
    for other in &unreadable {
        reporter.event(&Event::Notice {
            level: "warning",
            message: &format!("ignored `{}`: {}", other.path.display(), other.reason),
        });
    }
    if let Some(unfinished) = unfinished.last() {
        return Err(Failure::new(
            Exit::Locked,
            format!("run `{}` of this playbook is unfinished ({})", unfinished.header.run_id, unfinished.describe()),
        )
        .help("`upshift resume` continues it, `upshift rollback` undoes it"));
    }
    // Secrets before readiness: a check may need one (a database password).
    let secret_values = resolve_secrets(playbook)?;
    check_signal()?;
    let plan_options = PlanOptions {
        selection: selection.clone(),
        execute: true,
        execute_read_only: false,
        now,
        secrets: Some(secret_values.clone()),
    };
    let plan = plan::plan(playbook, &plan_options, &executor).map_err(plan_failure)?;
    check_signal()?;
    if plan.up_to_date {
        // Nothing to do: no steps, no journal.
        let version = plan.version.as_ref().map_or("", |v| v.current.as_str());
        reporter.event(&Event::UpToDate {
            playbook: &playbook.name,
            environment: playbook.environment.as_deref(),
            version,
        });
        return Ok(Exit::Success);
    }
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

    let run_id = new_run_id();
    let dir = crate::runs::runs_dir(state_dir, &playbook.name, playbook.environment.as_deref());
    crate::journal::create_private_dir(&state_dir.join("runs"))
        .and_then(|()| crate::journal::create_private_dir(&dir))
        .map_err(|e| io_failure("cannot create the state dir", &e))?;
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
        boot_id: crate::process::boot_id(),
    };
    // The last moment to stop with nothing changed.
    check_signal()?;
    let journal = Journal::create(&path, &Record::Run(Box::new(header.clone())))
        .map_err(|e| io_failure("cannot create the journal", &e))?;
    let record = RunRecord::new(path.clone(), header);

    let contexts = Engine::contexts(playbook, &secret_values, plan.selection.as_ref(), (&run_id, &started_at));
    let mut engine = Engine::new(playbook, &executor, reporter, journal, record, contexts, &secret_values, options);
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
    engine.forward()
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

/// Is this run undoing itself? A rollback began, or a step failed (and the
/// run did not go on past it).
fn rolling_back(playbook: &Playbook, record: &RunRecord) -> bool {
    record.phase(Phase::Rollback).next().is_some()
        || record
            .phase(Phase::Step)
            .any(|s| s.outcome == Some(Outcome::Failed) && !continues_on_error(playbook, &s.step))
}

/// `resume`: continues an unfinished run from its journal.
pub(crate) fn resume(
    playbook: &mut Playbook,
    record: RunRecord,
    state_dir: &Path,
    options: &RunOptions,
    reporter: &mut dyn Reporter,
) -> Result<Exit, Failure> {
    if let Some((RunOutcome::RollbackIncomplete, _)) = record.end {
        return Err(Failure::new(
            Exit::RollbackIncomplete,
            format!("run `{}` failed and its rollback is incomplete: there is nothing to resume", record.header.run_id),
        )
        .help("`upshift rollback` retries what is left"));
    }
    if rolling_back(playbook, &record) {
        reporter.event(&Event::Notice {
            level: "warning",
            message: "this run failed and was being rolled back: finishing the rollback",
        });
        return rollback(playbook, record, state_dir, options, reporter);
    }
    let Reopened { record, journal, mut contexts, secrets: secret_values, _lock } =
        reopen(playbook, &record, state_dir, "resume", options)?;
    let executor = crate::process::Local;

    // Fingerprints of completed steps against the playbook as it is now.
    let mut changed = Vec::new();
    for state in record.phase(Phase::Step).filter(|s| s.outcome == Some(Outcome::Ok)) {
        let Some(step) = playbook.steps.iter().find(|s| s.id.as_str() == state.step) else {
            changed.push(format!("`{}` is no longer in the playbook", state.step));
            continue;
        };
        // Rendered as the step saw itself when it started.
        if let Some((attempt, interrupted, resumed)) = state.last_try {
            contexts.0.set_current_step(StepInfo { id: state.step.clone(), attempt, interrupted });
            contexts.0.set_resumed(resumed);
        }
        let now = plan::describe_step(step, &contexts.0).map(|p| p.fingerprint).unwrap_or_default();
        contexts.0.set_resumed(true);
        if state.fingerprint != now {
            changed.push(format!("`{}` changed since it ran", state.step));
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

    // A step the crash or signal stopped: run it again, take it as done, or ask.
    let interrupted = interrupted_to_settle(playbook, &record, options, &[Phase::Step, Phase::Finally])?;

    let torn = record.torn;
    let path = record.path.clone();
    let run_id = record.header.run_id.clone();
    let version = record.header.selection.as_ref().map(|s| s.target.clone());
    let in_finally = record.phase(Phase::Finally).next().is_some();
    let mut engine = Engine::new(playbook, &executor, reporter, journal, record, contexts, &secret_values, options);
    engine.report(&Event::RunStarted {
        run_id: &run_id,
        playbook: &playbook.name,
        environment: playbook.environment.as_deref(),
        version: version.as_deref(),
        resumed: true,
        journal: &path.display().to_string(),
    });
    if torn {
        engine.notice("warning", "the journal's last record was cut off by the crash; it was ignored");
    }
    engine.append(&Record::Resumed { pid: std::process::id(), accepted_changes: changed, at: journal::now() })?;
    if let Some(state) = &interrupted {
        engine.settle(state)?;
    }
    if in_finally { engine.finally_and_end(None) } else { engine.forward() }
}

/// The step of `phases` a crash or signal stopped, if the operator's flags or
/// its idempotence say what to do with it; an error asks them otherwise.
fn interrupted_to_settle(
    playbook: &Playbook,
    record: &RunRecord,
    options: &RunOptions,
    phases: &[Phase],
) -> Result<Option<StepState>, Failure> {
    let Some(state) = phases.iter().find_map(|phase| record.interrupted(*phase)) else {
        return Ok(None);
    };
    let steps = if state.phase == Phase::Finally { &playbook.finally } else { &playbook.steps };
    let idempotent = steps.iter().find(|s| s.id.as_str() == state.step).is_some_and(|s| s.idempotent);
    if !idempotent && !options.retry_interrupted && !options.skip_interrupted {
        let command = if phases.contains(&Phase::Step) { "resume" } else { "rollback" };
        return Err(Failure::new(
            Exit::Invalid,
            format!(
                "{}step `{}` was interrupted and is not idempotent: it may have run in part",
                if state.phase == Phase::Finally { "finally " } else { "" },
                state.step
            ),
        )
        .help(format!("check what it did, then `upshift {command} --retry-interrupted` to run it again or `--skip-interrupted` if it completed")));
    }
    Ok(Some(state.clone()))
}

/// Resolves the playbook's secrets; a missing required one stops before anything changes.
fn resolve_secrets(playbook: &Playbook) -> Result<BTreeMap<String, String>, Failure> {
    crate::secrets::resolve(playbook).map_err(|problems| {
        Failure::new(Exit::NotReady, "required secrets are missing or unusable")
            .details(problems)
            .help("nothing was changed")
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
/// lock, makes sure nothing of the run still runs, and rebuilds the contexts
/// from the journal. Never selects a version.
fn reopen(
    playbook: &mut Playbook,
    record: &RunRecord,
    state_dir: &Path,
    command: &str,
    options: &RunOptions,
) -> Result<Reopened, Failure> {
    playbook.vars = record.header.vars.clone();
    signals::install();
    let lock = take_lock(state_dir, command)?;
    let record = crate::runs::read_run(&record.path)?;
    leftovers(&record, options)?;
    let secrets = resolve_secrets(playbook)?;
    check_signal()?;
    let selection =
        record.header.selection.as_ref().map(selection_of).transpose().map_err(|why| {
            Failure::new(Exit::Invalid, format!("the journal's version choice does not parse: {why}"))
        })?;
    let journal =
        Journal::reopen(&record.path, record.valid_len).map_err(|e| io_failure("cannot open the journal", &e))?;
    let mut contexts =
        Engine::contexts(playbook, &secrets, selection.as_ref(), (&record.header.run_id, &record.header.started_at));
    contexts.0.set_resumed(true);
    contexts.1.set_resumed(true);
    for state in record.steps.values().filter(|s| matches!(s.phase, Phase::Step | Phase::Finally)) {
        if let Some(outcome) = state.outcome {
            let result = StepResult {
                stdout: state.stdout.clone(),
                exit_code: state.exit_code,
                skipped: outcome == Outcome::Skipped,
            };
            contexts.0.set_step(&state.step, &result);
            contexts.1.set_step(&state.step, &result);
        }
    }
    Ok(Reopened { record, journal, contexts, secrets, _lock: lock })
}

/// The environment variable that marks a step's processes: `RUN_ID/PHASE/STEP`.
const STEP_MARK: &str = "UPSHIFT_STEP";

fn step_mark(run_id: &str, phase: Phase, step: &str) -> String {
    let phase = match phase {
        Phase::Step => "step",
        Phase::Rollback => "rollback",
        Phase::Finally => "finally",
    };
    format!("{run_id}/{phase}/{step}")
}

/// Refuses to go on while processes of an interrupted step still run (they
/// would race what comes next), or stops them when the operator said so.
/// They are found by the process group the journal recorded, and by the mark
/// every step's processes inherit (for a kill before the group was recorded).
fn leftovers(record: &RunRecord, options: &RunOptions) -> Result<(), Failure> {
    let this_boot = crate::process::boot_id();
    if record.header.boot_id.is_some() && record.header.boot_id != this_boot {
        return Ok(()); // The machine rebooted since: nothing of that run can still run.
    }
    let mut alive = Vec::new();
    for state in record.steps.values().filter(|s| s.outcome.is_none()) {
        let mut groups: Vec<(u32, u64)> = state.process.into_iter().collect();
        let mark = step_mark(&record.header.run_id, state.phase, &state.step);
        for (_, pgid, start) in crate::process::with_environment(STEP_MARK, &mark) {
            if !groups.iter().any(|(g, _)| *g == pgid) {
                groups.push((pgid, start));
            }
        }
        for (pgid, start) in groups {
            let members = crate::process::group_members(pgid, start);
            if !members.is_empty() {
                alive.push((state.clone(), pgid, start, members));
            }
        }
    }
    if alive.is_empty() {
        return Ok(());
    }
    if options.kill_orphans {
        for (_, pgid, start, _) in &alive {
            crate::process::stop_group(*pgid, *start);
        }
        return Ok(());
    }
    let details = alive
        .iter()
        .flat_map(|(state, _, _, members)| {
            members.iter().map(move |m| format!("`{}`: pid {} `{}`", state.step, m.pid, m.command))
        })
        .collect();
    Err(Failure::new(
        Exit::Locked,
        format!(
            "the interrupted step `{}` is still running: going on now would race it",
            alive.iter().map(|(s, ..)| s.step.as_str()).collect::<Vec<_>>().join("`, `")
        ),
    )
    .details(details)
    .help("wait for it to end and try again, or pass `--kill-orphans` to stop it first"))
}

fn continues_on_error(playbook: &Playbook, id: &str) -> bool {
    playbook.steps.iter().any(|s| s.id.as_str() == id && s.continue_on_error)
}

/// `rollback`: undoes the completed and interrupted steps of an unfinished or
/// failed run, newest first, then runs the `finally` steps it still owes.
pub(crate) fn rollback(
    playbook: &mut Playbook,
    record: RunRecord,
    state_dir: &Path,
    options: &RunOptions,
    reporter: &mut dyn Reporter,
) -> Result<Exit, Failure> {
    let Reopened { record, journal, contexts, secrets: secret_values, _lock } =
        reopen(playbook, &record, state_dir, "rollback", options)?;
    let executor = crate::process::Local;
    // An interrupted step is undone like a completed one; an interrupted
    // `finally` step still owes its run, which the operator may have to settle.
    let interrupted = interrupted_to_settle(playbook, &record, options, &[Phase::Finally])?;
    let run_id = record.header.run_id.clone();
    let mut engine = Engine::new(playbook, &executor, reporter, journal, record, contexts, &secret_values, options);
    engine.report(&Event::Notice { level: "note", message: &format!("rolling back run `{run_id}`") });
    if let Some(state) = &interrupted {
        engine.settle(state)?;
    }
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
    /// The run as its journal says, kept up to date with every append.
    record: RunRecord,
    masker: Masker,
    /// Secrets masked: what is shown, fingerprinted and journalled.
    shown: Context,
    /// Secrets revealed: what commands are built from.
    exec: Context,
    snapshots: Snapshots,
    /// Every output line, masked (the journal keeps a tail).
    log: RunLog,
    options: &'a RunOptions,
    run_id: String,
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

/// The end of a text, at most `max` bytes, cut at a line start (a cut inside
/// a line could leave half of a masked secret's neighbour… or of a secret).
fn tail(text: &str, max: usize) -> String {
    if text.len() <= max {
        return text.to_owned();
    }
    let from = text.len() - max;
    let start = text[from..].find('\n').map_or(text.len(), |i| from + i + 1);
    format!("…\n{}", &text[start..])
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
        record: RunRecord,
        contexts: (Context, Context),
        secrets: &BTreeMap<String, String>,
        options: &'a RunOptions,
    ) -> Engine<'a> {
        let run_id = record.header.run_id.clone();
        let snapshots = Snapshots::new(journal.path.with_extension("files"), &run_id);
        let log = RunLog::open(&journal.path);
        Engine {
            playbook,
            executor,
            reporter,
            journal,
            record,
            masker: Masker::new(secrets),
            shown: contexts.0,
            exec: contexts.1,
            snapshots,
            log,
            options,
            run_id,
        }
    }

    fn contexts(
        playbook: &Playbook,
        secrets: &BTreeMap<String, String>,
        selection: Option<&Selection>,
        run: (&str, &str),
    ) -> (Context, Context) {
        (Context::new(playbook, selection, None, run), Context::new(playbook, selection, Some(secrets), run))
    }

    fn target(&self) -> String {
        self.executor.target().to_owned()
    }

    fn report(&mut self, event: &Event<'_>) {
        if let Event::StepStarted { step, phase, attempt, .. } = event {
            self.log.begin(step, *phase, *attempt);
        }
        self.reporter.event(event);
        if let Some(problem) = self.log.problem() {
            self.reporter.event(&Event::Notice { level: "warning", message: &problem });
        }
    }

    fn notice(&mut self, level: &'static str, message: &str) {
        let message = self.masker.mask(message);
        self.reporter.event(&Event::Notice { level, message: &message });
    }

    fn append(&mut self, record: &Record) -> Result<(), Failure> {
        // The log is never behind the journal: what a record says ran, its output is on disk.
        self.log.sync();
        self.journal.append(record).map_err(|e| self.journal_failure(&e))?;
        self.record.apply_ref(record);
        Ok(())
    }

    fn journal_failure(&self, error: &std::io::Error) -> Failure {
        Failure::new(
            Exit::RollbackIncomplete,
            format!(
                "cannot write the journal `{}`: {}",
                self.journal.path.display(),
                crate::document::io_reason(error)
            ),
        )
        .help("the run stopped; fix the state dir, then `upshift resume`")
    }

    /// The tries of a step so far in this run: how many, and whether the last was left open.
    fn earlier_tries(&self, phase: Phase, id: &str) -> (u32, bool) {
        self.record
            .steps
            .get(&(phase, id.to_owned(), self.target()))
            .map_or((0, false), |s| (s.starts, s.starts > 0 && s.outcome.is_none()))
    }

    /// Says in both contexts which step runs, and which try (`step.*`).
    fn set_try(&mut self, id: &str, attempt: u32, interrupted: bool) {
        let info = StepInfo { id: id.to_owned(), attempt, interrupted };
        self.shown.set_current_step(info.clone());
        self.exec.set_current_step(info);
    }

    fn set_result(&mut self, id: &str, result: &StepResult) {
        self.shown.set_step(id, result);
        self.exec.set_step(id, result);
    }

    /// Has this step of this phase an outcome in the journal (it ran, was skipped, or failed)?
    fn settled(&self, phase: Phase, id: &str) -> bool {
        self.record.steps.get(&(phase, id.to_owned(), self.target())).is_some_and(|s| s.outcome.is_some())
    }

    /// Settles an interrupted step as the operator said: `--skip-interrupted`
    /// takes it as completed (so a rollback undoes it); else it runs again.
    fn settle(&mut self, state: &StepState) -> Result<(), Failure> {
        if self.options.skip_interrupted {
            self.notice(
                "warning",
                &format!("`{}` was interrupted; taken as completed, as asked (--skip-interrupted)", state.step),
            );
            self.append(&finished(
                &state.step,
                state.phase,
                Outcome::Ok,
                Some("interrupted; the operator says it completed".to_owned()),
                &Output::default(),
                &self.masker,
                &state.target,
            ))?;
            self.set_result(&state.step, &StepResult { stdout: String::new(), exit_code: None, skipped: false });
        } else {
            let why = if self.options.retry_interrupted { "--retry-interrupted" } else { "it is idempotent" };
            self.notice("warning", &format!("`{}` was interrupted; running it again ({why})", state.step));
        }
        Ok(())
    }

    /// Runs the steps still owed, then `finally`; rolls back on a failure.
    fn forward(&mut self) -> Result<Exit, Failure> {
        let steps = &self.playbook.steps;
        match self.steps(steps, Phase::Step)? {
            Ended::Completed => self.finally_and_end(None),
            Ended::Failed(id) => {
                let count = self.to_undo().len();
                self.notice(
                    "error",
                    &format!("`{id}` failed: rolling back {count} completed step{}", if count == 1 { "" } else { "s" }),
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
        self.finally_and_end(Some(left))
    }

    /// Runs the `finally` steps this run still owes, then writes its end:
    /// after success (`rolled_back` is `None`) or after a rollback (with what it left).
    fn finally_and_end(&mut self, rolled_back: Option<Vec<String>>) -> Result<Exit, Failure> {
        let steps = &self.playbook.finally;
        if let Ended::Interrupted(step) = self.steps(steps, Phase::Finally)? {
            return self.interrupted(step);
        }
        let failures: Vec<String> = self
            .record
            .phase(Phase::Finally)
            .filter(|s| s.outcome == Some(Outcome::Failed))
            .map(|s| format!("finally step `{}` failed: check it by hand", s.step))
            .collect();
        match rolled_back {
            None if failures.is_empty() => self.end(RunOutcome::Succeeded, Vec::new(), Exit::Success),
            None => self.end(RunOutcome::FinallyFailed, failures, Exit::RollbackIncomplete),
            Some(left) if left.is_empty() && failures.is_empty() => {
                // After a failure the run failed (1); asked to roll back, the rollback succeeded (0).
                let exit = if self.options.rollback_requested { Exit::Success } else { Exit::StepFailed };
                self.end(RunOutcome::RolledBack, Vec::new(), exit)
            }
            Some(left) if left.is_empty() => self.end(RunOutcome::FinallyFailed, failures, Exit::RollbackIncomplete),
            Some(mut left) => {
                left.extend(failures);
                self.end(RunOutcome::RollbackIncomplete, left, Exit::RollbackIncomplete)
            }
        }
    }

    fn end(&mut self, outcome: RunOutcome, left: Vec<String>, exit: Exit) -> Result<Exit, Failure> {
        self.append(&Record::End { outcome, left: left.clone(), at: journal::now() })?;
        // The run is over: copies of secret-holding files go.
        if outcome != RunOutcome::RollbackIncomplete {
            self.snapshots.discard_beside_copies();
        }
        let name = serde_json::to_value(outcome).ok().and_then(|v| v.as_str().map(str::to_owned)).unwrap_or_default();
        self.report(&Event::RunFinished {
            run_id: &self.run_id.clone(),
            outcome: &name,
            exit_code: exit.code(),
            left: &left,
        });
        Ok(exit)
    }

    /// Runs the steps of a list that have no outcome yet in this run.
    fn steps(&mut self, steps: &'a [Step], phase: Phase) -> Result<Ended, Failure> {
        for step in steps {
            let id = step.id.as_str();
            if self.settled(phase, id) {
                continue;
            }
            if signals::pending().is_some() {
                return Ok(Ended::Interrupted(None));
            }
            let (earlier, interrupted) = self.earlier_tries(phase, id);
            self.set_try(id, earlier + 1, interrupted);
            let planned = plan::describe_step(step, &self.shown).map_err(render_failure)?;
            match planned.status {
                Status::Skipped => {
                    let reason = planned.reason.clone().unwrap_or_default();
                    let target = self.target();
                    self.append(&finished(
                        id,
                        phase,
                        Outcome::Skipped,
                        Some(reason.clone()),
                        &Output::default(),
                        &self.masker,
                        &target,
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
                target: self.target(),
                at: journal::now(),
            })?;
            let mut tries = 1;
            let mut shown_action = action_text.clone();
            let done = loop {
                self.report(&Event::StepStarted {
                    step: id,
                    name: planned.name.as_deref(),
                    phase,
                    action: &shown_action,
                    attempt: earlier + tries,
                });
                let done =
                    self.execute(step, phase, &step.action, &planned, step.cwd.as_ref(), &step.env, step.timeout)?;
                if done.output.interrupted.is_some() || done.error.is_none() || tries > step.retries {
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
                tries += 1;
                self.set_try(id, earlier + tries, interrupted);
                // What this try runs, as people see it (a command may read `step.attempt`).
                let shown = self.shown.value(step.scope.as_ref()).map_err(render_failure)?;
                shown_action =
                    describe_action(&plan::render_action(&step.action, &shown, true).map_err(render_failure)?);
            };
            if done.output.interrupted.is_some() || (done.error.is_some() && signals::pending().is_some()) {
                return Ok(Ended::Interrupted(Some(id.to_owned())));
            }
            let outcome = if done.error.is_none() { Outcome::Ok } else { Outcome::Failed };
            let target = self.target();
            self.append(&finished(id, phase, outcome, done.error.clone(), &done.output, &self.masker, &target))?;
            // Output is masked as it is read: later steps see what everyone sees.
            let result = StepResult {
                stdout: done.output.stdout.trim().to_owned(),
                exit_code: done.output.exit_code,
                skipped: false,
            };
            self.set_result(id, &result);
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
                Outcome::Ok | Outcome::Skipped => {}
                _ if step.continue_on_error => {
                    self.notice("warning", &format!("`{id}` failed; going on (continue_on_error)"));
                }
                // A failing `finally` step does not stop the others.
                _ if phase == Phase::Finally => {}
                _ => return Ok(Ended::Failed(id.to_owned())),
            }
        }
        Ok(Ended::Completed)
    }

    /// What a rollback undoes, newest first: steps that completed or were
    /// interrupted (a half-done step's rollback must tolerate that), and any
    /// step whose file snapshot is on disk, unless already rolled back.
    fn to_undo(&self) -> Vec<StepState> {
        let target = self.target();
        let undone: HashSet<&str> = self
            .record
            .phase(Phase::Rollback)
            .filter(|s| matches!(s.outcome, Some(Outcome::Ok | Outcome::Skipped)))
            .map(|s| s.step.as_str())
            .collect();
        self.record
            .phase(Phase::Step)
            .filter(|s| s.target == target && !undone.contains(s.step.as_str()))
            .filter(|s| matches!(s.outcome, Some(Outcome::Ok) | None) || self.snapshots.has(&s.step))
            .cloned()
            .collect::<Vec<_>>()
            .into_iter()
            .rev()
            .collect()
    }

    /// Undoes what `to_undo` lists. `Ok(left)` lists what could not be
    /// undone; `Err(step)` means a signal stopped the rollback.
    fn rollback(&mut self) -> Result<Result<Vec<String>, Option<String>>, Failure> {
        let mut left = Vec::new();
        for state in self.to_undo() {
            let id = state.step.clone();
            if signals::pending().is_some() {
                return Ok(Err(None));
            }
            let Some(step) = self.playbook.steps.iter().find(|s| s.id.as_str() == id) else {
                left.push(format!("`{id}` is no longer in the playbook: undo it by hand"));
                continue;
            };
            let completed = state.outcome == Some(Outcome::Ok);
            let interrupted = state.outcome.is_none();
            let (earlier, open) = self.earlier_tries(Phase::Rollback, &id);
            self.set_try(&id, earlier + 1, open);
            let value = self.exec.value(step.scope.as_ref()).map_err(render_failure)?;
            let shown = self.shown.value(step.scope.as_ref()).map_err(render_failure)?;
            // A file changed by this step (even one that failed) goes back as it was.
            if self.snapshots.has(&id) {
                self.start_rollback(&id, "restore the file from its snapshot")?;
                let started = Instant::now();
                let result = self.snapshots.restore(&id);
                let output = Output { elapsed: started.elapsed(), exit_code: Some(0), ..Output::default() };
                let error =
                    result.err().map(|e| format!("cannot restore the snapshot: {}", crate::document::io_reason(&e)));
                if let Some(error) = &error {
                    left.push(format!("`{id}`: {error}"));
                }
                self.finish_rollback(&id, error, &output)?;
                continue;
            }
            if !(completed || interrupted) {
                continue;
            }
            match &step.rollback {
                Rollback::Nothing => {}
                Rollback::Irreversible => {
                    self.notice("warning", &format!("`{id}` cannot be undone (rollback = false); an earlier step's rollback restores what it changed"));
                }
                Rollback::Restore => {
                    if completed {
                        left.push(format!("`{id}`: its file snapshot is gone; restore the file by hand"));
                    }
                }
                Rollback::Action { action, guard, cwd, env, timeout } => {
                    if let Some(guard) = guard {
                        match guard.eval(&value) {
                            Ok(true) => {}
                            Ok(false) => {
                                let reason = format!("`{}` is false", guard.source);
                                let target = self.target();
                                self.append(&finished(
                                    &id,
                                    Phase::Rollback,
                                    Outcome::Skipped,
                                    Some(reason.clone()),
                                    &Output::default(),
                                    &self.masker,
                                    &target,
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
                    let done = self.execute(step, Phase::Rollback, action, &planned, cwd, env, *timeout)?;
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
            target: self.target(),
            at: journal::now(),
        })?;
        self.report(&Event::StepStarted { step: id, name: None, phase: Phase::Rollback, action, attempt: 1 });
        Ok(())
    }

    fn finish_rollback(&mut self, id: &str, error: Option<String>, output: &Output) -> Result<(), Failure> {
        let outcome = if error.is_none() { Outcome::Ok } else { Outcome::Failed };
        let target = self.target();
        self.append(&finished(id, Phase::Rollback, outcome, error.clone(), output, &self.masker, &target))?;
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
    #[allow(clippy::too_many_arguments)]
    fn execute(
        &mut self,
        step: &Step,
        phase: Phase,
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
                let mut spec = match rendered {
                    Ok(spec) => spec,
                    Err(error) => return Ok(finish(Some(self.masker.mask(&error.to_string())))),
                };
                spec.masker = self.masker.clone();
                spec.env.push((STEP_MARK.to_owned(), step_mark(&self.run_id, phase, &id)));
                let target = self.target();
                let reporter = &mut *self.reporter;
                let journal = &mut self.journal;
                let record = &mut self.record;
                let log = &mut self.log;
                let mut journal_error = None;
                let result = self.executor.run_watched(&spec, &mut |event| match event {
                    Watch::Spawned { pgid, start } => {
                        let spawned = Record::Spawned {
                            step: id.clone(),
                            phase,
                            target: target.clone(),
                            pgid,
                            start,
                            at: journal::now(),
                        };
                        match journal.append_unsynced(&spawned) {
                            Ok(()) => record.apply_ref(&spawned),
                            Err(error) => journal_error = Some(error),
                        }
                    }
                    Watch::Line(stream, line) => {
                        log.line(stream, line);
                        reporter.event(&Event::Output {
                            step: &id,
                            stream: match stream {
                                Stream::Stdout => "stdout",
                                Stream::Stderr => "stderr",
                            },
                            line,
                        });
                    }
                });
                if let Some(error) = journal_error {
                    return Err(self.journal_failure(&error));
                }
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
                    Err(error) => {
                        // A missing working directory is the reason, not the shell that never started.
                        let reason = match &spec.cwd {
                            Some(cwd) if !cwd.is_dir() => {
                                format!("its working directory `{}` does not exist", cwd.display())
                            }
                            _ => format!(
                                "`{}` could not start: {}",
                                spec.argv.first().map_or("", String::as_str),
                                crate::document::io_reason(&error)
                            ),
                        };
                        Ok(finish(Some(self.masker.mask(&reason))))
                    }
                }
            }
            Action::Edit(edit) => {
                let result = (|| -> Result<(), String> {
                    let path = resolve(&edit.path.render(&value).map_err(|e| e.to_string())?);
                    let old = std::fs::read_to_string(&path)
                        .map_err(|e| format!("cannot read `{}`: {}", path.display(), crate::document::io_reason(&e)))?;
                    let new = apply_edit(&edit.kind, &old, &value, edit.path.location.as_ref())
                        .map_err(|e| e.to_string())??;
                    let secret =
                        plan::writes_secret(action, &self.shown.value(step.scope.as_ref()).map_err(|e| e.to_string())?);
                    self.snapshots.take(&id, &path, secret).map_err(|e| {
                        format!("cannot snapshot `{}`: {}", path.display(), crate::document::io_reason(&e))
                    })?;
                    if new != old {
                        replace_content(&path, new.as_bytes(), None).map_err(|e| {
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
                    let secret =
                        plan::writes_secret(action, &self.shown.value(step.scope.as_ref()).map_err(|e| e.to_string())?);
                    self.snapshots.take(&id, &dest, secret).map_err(|e| {
                        format!("cannot snapshot `{}`: {}", dest.display(), crate::document::io_reason(&e))
                    })?;
                    replace_content(&dest, content.as_bytes(), template.mode)
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
        say(&format!("\n{message}\n\nContinue with `{id}`? [y/N] "));
        let (sender, receiver) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut line = String::new();
            let _ = std::io::stdin().read_line(&mut line);
            let _ = sender.send(line);
        });
        loop {
            if signals::pending().is_some() {
                say("\n");
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

/// Writes to stderr, ignoring a closed or broken stream: a vanished terminal never stops a run.
fn say(text: &str) {
    use std::io::Write;
    let mut err = std::io::stderr().lock();
    let _ = err.write_all(text.as_bytes());
    let _ = err.flush();
}

fn render_failure(error: impl Into<plan::PlanError>) -> Failure {
    match error.into() {
        plan::PlanError::Invalid(diagnostics) => Failure::new(
            Exit::RollbackIncomplete,
            diagnostics.iter().map(|d| d.message.clone()).collect::<Vec<_>>().join("; "),
        )
        .help("a template failed while the run was under way: `upshift status` shows where it stopped"),
        plan::PlanError::Version { message, .. } => Failure::new(Exit::RollbackIncomplete, message),
        plan::PlanError::Interrupted(signal) => interrupted_before(signal),
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
