//! The engine: executes a checked playbook as a state machine over (step,
//! target) pairs: each step runs on its targets (this machine, or the hosts
//! of a fleet, `parallel` at a time), and the next step starts when it has
//! finished on all of them. Every transition is appended to the journal
//! (fsynced) before the engine moves on; reporters only hear events. `run`
//! starts a run (choosing a version, or held to a saved plan: `Binding`),
//! `resume` continues an unfinished one from its journal, `rollback` undoes
//! what a run did, and `undo` does so for a run that had finished (an `undo`
//! record opens a new pass of the same journal).
//!
//! Every decision (what is left to run, what to undo, which `finally` steps
//! still owe a run) is read from the run's journal state, the same for a
//! fresh run, a resumed one and a rollback, so a crash at any moment neither
//! loses nor doubles a step.
//!
//! Commands see secret values; everything shown or stored sees masks.

use std::collections::{BTreeMap, BTreeSet, HashSet, VecDeque};
use std::path::Path;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use indexmap::IndexMap;

use crate::Exit;
use crate::cli::SelectionArgs;
use crate::context::{Context, StepInfo, StepResult};
use crate::events::{Event, Reporter};
use crate::files::Snapshots;
use crate::journal::{self, Header, Journal, Outcome, Phase, Record, RunOutcome, SavedSelection};
use crate::plan::{self, PlanOptions, PlannedAction, PlannedStep, Status, apply_edit, command_spec, render_env};
use crate::playbook::{Action, Batch, LOCAL, Playbook, Rollback, Step};
use crate::process::{CommandSpec, Output, Stream, Watch, signals};
use crate::runlog::RunLog;
use crate::runs::{RunRecord, StepState};
use crate::secrets::Masker;
use crate::select::Selection;
use crate::transport::{Targets, Transport};

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
    /// Start on hosts that carry the marker of this unfinished run (another controller's).
    pub(crate) override_run: Option<String>,
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

pub(crate) fn selection_of(saved: &SavedSelection) -> Result<Selection, String> {
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
pub(crate) fn interrupted_before(signal: &str) -> Failure {
    Failure::new(Exit::Interrupted, format!("interrupted by {signal} before anything changed"))
        .help("nothing was changed and there is nothing to resume")
}

fn check_signal() -> Result<(), Failure> {
    match signals::pending() {
        Some(signal) => Err(interrupted_before(signals::name(signal))),
        None => Ok(()),
    }
}

/// What `run` binds the playbook to: a version chosen now, or a reviewed plan.
pub(crate) enum Binding<'a> {
    /// Select a version now (`--to` and friends).
    Fresh(&'a SelectionArgs),
    /// Run exactly a saved plan (`run --plan FILE`).
    Saved { plan: &'a crate::saved::SavedPlan, file: &'a Path },
}

/// `run`: lock, secrets, hosts, version, readiness, window, header, steps.
/// With a saved plan: no version is selected; what the plan recorded is
/// re-probed and every difference refuses the run before anything changes.
pub(crate) fn run(
    playbook: &Playbook,
    state_dir: &Path,
    binding: &Binding<'_>,
    options: &RunOptions,
    reporter: &mut dyn Reporter,
    now: Option<jiff::Timestamp>,
) -> Result<Exit, Failure> {
    // The lock comes first: a second runner must hear "another run holds the
    // lock", not whatever the first run's half-done changes make its checks say.
    signals::install();
    let _lock = take_lock(state_dir, "run")?;
    if let Binding::Saved { plan: saved, file } = binding
        && let Some((run_id, journal)) =
            crate::runs::applied_by(state_dir, (&playbook.name, playbook.environment.as_deref()), &saved.id)
    {
        return Err(Failure::new(
            Exit::Locked,
            format!("plan `{}` (`{}`) was applied already, by run `{run_id}`", saved.id, file.display()),
        )
        .help(format!(
            "a plan runs once: `upshift status` shows how that run went (journal `{}`); make a new plan with `upshift plan … --out FILE`",
            journal.display()
        )));
    }
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
    // The hosts: connected (host keys checked), locked for this run.
    let targets = connect(playbook)?;
    lock_hosts(&targets, None, options)?;
    check_signal()?;
    let plan_options = match binding {
        Binding::Fresh(selection) => PlanOptions {
            selection: (*selection).clone(),
            execute: true,
            execute_read_only: false,
            now,
            secrets: Some(secret_values.clone()),
            recorded: None,
        },
        // As `plan` made it: read-only steps run, so guards on their output
        // are decided as the plan decided them.
        Binding::Saved { plan: saved, .. } => PlanOptions {
            selection: SelectionArgs::default(),
            execute: true,
            execute_read_only: true,
            now,
            secrets: Some(secret_values.clone()),
            recorded: saved.selection().map_err(|why| {
                Failure::new(Exit::Invalid, format!("the plan's version choice does not parse: {why}"))
            })?,
        },
    };
    let plan = plan::plan(playbook, &plan_options, &targets).map_err(plan_failure)?;
    check_signal()?;
    let mut notes = Vec::new();
    let mut plan_ref = None;
    if let Binding::Saved { plan: saved, file } = binding {
        let review = crate::saved::compare(saved, playbook, &plan, &targets, now.unwrap_or_else(jiff::Timestamp::now));
        if !review.differences.is_empty() {
            let count = review.differences.len();
            let mut details = review.differences;
            details.extend(review.notes.iter().map(|n| format!("note: {n}")));
            return Err(Failure::new(
                Exit::NotReady,
                format!(
                    "plan `{}` no longer matches: {count} difference{}",
                    saved.id,
                    if count == 1 { "" } else { "s" }
                ),
            )
            .details(details)
            .help("nothing was changed; make a new plan, review it, and run that one"));
        }
        notes = review.notes;
        plan_ref = Some(saved.reviewed(file));
    }
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
    let mut pauses: Vec<(String, bool)> = Vec::new();
    for step in plan.steps.iter().chain(&plan.finally) {
        let groups = std::iter::once(step).chain(&step.per_host);
        let statuses: Vec<Status> = groups.map(|g| g.status).collect();
        if matches!(step.action, PlannedAction::Pause { .. }) && statuses.iter().any(|s| *s != Status::Skipped) {
            pauses.push((step.id.clone(), !statuses.contains(&Status::WillRun)));
        }
    }
    approvals(playbook, &pauses, options)?;
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
        target: if playbook.inventory.is_some() { "fleet".to_owned() } else { LOCAL.to_owned() },
        host: crate::lock::hostname(),
        user: crate::lock::user(),
        pid: std::process::id(),
        window: window_note.clone(),
        boot_id: crate::process::boot_id(),
        host_vars: host_vars(playbook),
        plan: plan_ref.clone(),
    };
    // The last moment to stop with nothing changed.
    check_signal()?;
    let journal = Journal::create(&path, &Record::Run(Box::new(header.clone())))
        .map_err(|e| io_failure("cannot create the journal", &e))?;
    let record = RunRecord::new(path.clone(), header);
    // Hosts this run touches carry its marker until it ends finished.
    mark_hosts(&targets, &record)?;

    let contexts = Engine::contexts(playbook, &secret_values, plan.selection.as_ref(), (&run_id, &started_at));
    let mut engine = Engine::new(playbook, &targets, reporter, journal, record, contexts, &secret_values, options);
    if let Some(plan_ref) = &plan_ref {
        engine.reviewed = Some(Reviewed::new(playbook, plan.selection.as_ref(), plan_ref, &engine.record));
    }
    engine.report(&Event::RunStarted {
        run_id: &run_id,
        playbook: &playbook.name,
        environment: playbook.environment.as_deref(),
        version: plan.version.as_ref().map(|v| v.selected.as_str()),
        resumed: false,
        journal: &path.display().to_string(),
    });
    if let Binding::Saved { plan: saved, .. } = binding {
        engine.notice(
            "note",
            &format!(
                "running the reviewed plan `{}` (made {}, valid until {})",
                saved.id, saved.created_at, saved.expires_at
            ),
        );
    }
    for note in &notes {
        engine.notice("note", note);
    }
    if let Some(note) = &window_note {
        engine.notice("warning", note);
    }
    engine.forward()
}

/// Refuses, before anything changes, a run that will (or may) reach a
/// `pause` step no one can answer: no terminal, and neither `--yes` nor
/// `--approve ID`. `pauses` are (id, decided at run time).
fn approvals(playbook: &Playbook, pauses: &[(String, bool)], options: &RunOptions) -> Result<(), Failure> {
    let known: Vec<&str> = playbook
        .steps
        .iter()
        .chain(&playbook.finally)
        .filter(|s| matches!(s.action, Action::Pause(_)))
        .map(|s| s.id.as_str())
        .collect();
    let unknown: Vec<&str> = options.approve.iter().map(String::as_str).filter(|a| !known.contains(a)).collect();
    if let Some(first) = unknown.first() {
        let message = match unknown.as_slice() {
            [one] => format!("`--approve {one}`: no `pause` step has this id"),
            many => format!("`--approve`: no `pause` step has the ids {}", ids_list(many)),
        };
        let help = match crate::diagnostic::did_you_mean(first, known.iter().copied()) {
            Some(close) => format!("did you mean `{close}`? nothing was changed"),
            None if known.is_empty() => "this playbook has no `pause` step; nothing was changed".to_owned(),
            None => format!("its `pause` steps: {}; nothing was changed", ids_list(&known)),
        };
        return Err(Failure::new(Exit::Invalid, message).help(help));
    }
    use std::io::IsTerminal;
    if options.yes || std::io::stdin().is_terminal() {
        return Ok(());
    }
    let unanswered: Vec<String> = pauses
        .iter()
        .filter(|(id, _)| !options.approve.contains(id))
        .map(
            |(id, may)| {
                if *may { format!("`{id}` (may run: its guard is decided at run time)") } else { format!("`{id}`") }
            },
        )
        .collect();
    if unanswered.is_empty() {
        return Ok(());
    }
    let first = pauses.iter().find(|(id, _)| !options.approve.contains(id)).map_or("", |(id, _)| id.as_str());
    Err(Failure::new(
        Exit::Invalid,
        format!(
            "this run reaches {} that need{} a person's yes, and there is no terminal to ask on",
            if unanswered.len() == 1 { "a `pause` step" } else { "`pause` steps" },
            if unanswered.len() == 1 { "s" } else { "" }
        ),
    )
    .details(unanswered)
    .help(format!(
        "nothing was changed; approve now with `--approve {first}` (repeat for each) or `--yes` for every pause"
    )))
}

fn ids_list(ids: &[&str]) -> String {
    ids.iter().map(|id| format!("`{id}`")).collect::<Vec<_>>().join(", ")
}

/// A run held to a reviewed plan: each (step, target), before it starts,
/// must render as the plan rendered it, in a context that knows what the
/// plan knew.
struct Reviewed {
    /// By (phase, step, target).
    steps: std::collections::HashMap<(Phase, String, String), journal::ReviewedStep>,
    /// Per target, as the plan saw the run: `<run id>`, first tries, the
    /// outputs of the read-only steps it ran, `<steps.ID…>` for what only the run knows.
    contexts: IndexMap<String, Context>,
}

impl Reviewed {
    fn new(
        playbook: &Playbook,
        selection: Option<&Selection>,
        plan: &journal::PlanRef,
        record: &RunRecord,
    ) -> Reviewed {
        let contexts = playbook
            .target_names()
            .into_iter()
            .map(|target| {
                let context = Context::on(playbook, &target, selection, None, ("<run id>", "<run start>"));
                (target, context)
            })
            .collect();
        let steps = plan
            .steps
            .iter()
            .map(|s| ((s.phase, s.id.clone(), s.host.clone().unwrap_or_else(|| LOCAL.to_owned())), s.clone()))
            .collect();
        let mut reviewed = Reviewed { steps, contexts };
        for state in record.steps.values().filter(|s| matches!(s.phase, Phase::Step | Phase::Finally)) {
            if let Some(outcome) = state.outcome {
                let result = StepResult {
                    stdout: state.stdout.clone(),
                    exit_code: state.exit_code,
                    skipped: outcome == Outcome::Skipped,
                };
                let sole = step_targets(playbook, state.phase, &state.step).is_none_or(|t| t.len() == 1);
                reviewed.learn(state.phase, &state.step, &state.target, sole, &result);
            }
        }
        reviewed
    }

    /// Takes a (step, target)'s result into the plan's view: what the plan
    /// knew, it learns; the rest stays unknown. `sole`: the step runs on one
    /// target, and every target reads its result.
    fn learn(&mut self, phase: Phase, id: &str, target: &str, sole: bool, result: &StepResult) {
        let reviewed = self.steps.get(&(phase, id.to_owned(), target.to_owned()));
        for (name, context) in self.contexts.iter_mut() {
            if name != target && !sole {
                continue;
            }
            match reviewed {
                Some(step) if step.known => context.set_step(id, result),
                Some(step) if step.status == "skipped" => {
                    context.set_step(id, &StepResult { stdout: String::new(), exit_code: None, skipped: true })
                }
                _ => context.set_step_unknown(id),
            }
        }
    }

    /// Why this (step, target) may not start as the reviewed plan's, if it may not.
    fn differs(&mut self, step: &Step, phase: Phase, target: &str, transport: &dyn Transport) -> Option<String> {
        let id = step.id.as_str();
        let on = if target == LOCAL { String::new() } else { format!(" on `{target}`") };
        let Some(reviewed) = self.steps.get(&(phase, id.to_owned(), target.to_owned())) else {
            return Some(format!("`{id}`{on} is not in the reviewed plan"));
        };
        if reviewed.status == "skipped" {
            return Some(format!("`{id}`{on} would run, and the reviewed plan skipped it"));
        }
        let Some(context) = self.contexts.get_mut(target) else {
            return Some(format!("`{id}`{on}: `{target}` is not a target of the reviewed plan"));
        };
        context.set_current_step(StepInfo { id: id.to_owned(), attempt: 1, interrupted: false });
        match plan::describe_step(step, context, transport, false) {
            Ok(planned) if planned.fingerprint == reviewed.fingerprint => None,
            Ok(planned) => Some(format!(
                "`{id}`{on} renders differently than in the reviewed plan (fingerprint {} → {}); it was not run",
                reviewed.fingerprint, planned.fingerprint
            )),
            Err(error) => {
                Some(format!("`{id}`{on} cannot be rendered as the plan saw it: {}", render_failure(error).message))
            }
        }
    }
}

/// Connects to the playbook's hosts; a host that cannot be used is a
/// readiness failure naming it (nothing changed).
fn connect(playbook: &Playbook) -> Result<Targets, Failure> {
    Targets::connect(playbook.inventory.as_ref()).map_err(|problems| {
        Failure::new(
            Exit::NotReady,
            format!("{} host{} cannot be used", problems.len(), if problems.len() == 1 { "" } else { "s" }),
        )
        .details(problems)
        .help("nothing was changed")
    })
}

/// Each host's variables, as the journal keeps them.
fn host_vars(playbook: &Playbook) -> IndexMap<String, IndexMap<String, serde_json::Value>> {
    playbook.inventory.iter().flat_map(|i| &i.hosts).map(|h| (h.name.clone(), h.vars.clone())).collect()
}

/// Who holds a host: this controller, user, process and run.
fn holder(run_id: Option<&str>, playbook: &str) -> String {
    format!(
        "controller {}, user {}, pid {}, playbook `{playbook}`{}, since {}",
        crate::lock::hostname(),
        crate::lock::user(),
        std::process::id(),
        run_id.map_or_else(String::new, |id| format!(", run {id}")),
        journal::now()
    )
}

/// Takes every host's lock for this run (held while the run's connection
/// lives). `run_id` is the run being continued (`resume`, `rollback`): its own
/// marker on a host is expected; another run's refuses the host unless the
/// operator named that run with `--override`.
fn lock_hosts(targets: &Targets, run_id: Option<&str>, options: &RunOptions) -> Result<(), Failure> {
    let hosts: Vec<(&str, &dyn Transport)> = targets.hosts().collect();
    if hosts.is_empty() {
        return Ok(());
    }
    let holder = holder(run_id, "");
    let results: Vec<Result<crate::transport::ssh::Locked, String>> = std::thread::scope(|scope| {
        let handles: Vec<_> = hosts.iter().map(|(_, t)| scope.spawn(|| t.lock(&holder))).collect();
        handles
            .into_iter()
            .map(|h| h.join().unwrap_or_else(|_| Err("internal error: a lock panicked".to_owned())))
            .collect()
    });
    let mut busy = Vec::new();
    let mut marked = Vec::new();
    let mut failed = Vec::new();
    for ((name, _), result) in hosts.iter().zip(results) {
        match result {
            Ok(crate::transport::ssh::Locked::Held { unfinished: Some(marker) }) => {
                let theirs = marker.lines().find_map(|l| l.strip_prefix("run ")).map(str::trim).unwrap_or("");
                let ours = run_id.is_some_and(|id| id == theirs);
                let overridden = options.override_run.as_deref().is_some_and(|id| id == theirs);
                if !ours && !overridden {
                    marked.push(format!("host `{name}`: {}", marker.replace('\n', "; ")));
                }
            }
            Ok(crate::transport::ssh::Locked::Held { unfinished: None }) => {}
            Ok(crate::transport::ssh::Locked::Busy(holder)) => busy.push(format!("host `{name}`: held by {holder}")),
            Err(why) => failed.push(format!("host `{name}`: {why}")),
        }
    }
    if !failed.is_empty() {
        return Err(Failure::new(Exit::NotReady, "cannot lock every host").details(failed).help("nothing was changed"));
    }
    if !busy.is_empty() {
        return Err(Failure::new(Exit::Locked, "another upshift holds a host")
            .details(busy)
            .help("wait for it to finish; a host's lock is released when that run's connection ends"));
    }
    if !marked.is_empty() {
        return Err(Failure::new(Exit::Locked, "a host carries the marker of another unfinished run")
            .details(marked)
            .help("resume or roll back that run from its controller, or pass `--override RUN_ID` naming it"));
    }
    Ok(())
}

/// Leaves this run's marker on every host (removed when it ends finished).
fn mark_hosts(targets: &Targets, record: &RunRecord) -> Result<(), Failure> {
    let header = &record.header;
    let text = format!(
        "run {}\ncontroller {}, user {}, playbook `{}`{}, started {}",
        header.run_id,
        header.host,
        header.user,
        header.playbook,
        header.environment.as_deref().map_or_else(String::new, |e| format!(" on `{e}`")),
        header.started_at
    );
    for (name, transport) in targets.hosts() {
        transport
            .mark_unfinished(&text)
            .map_err(|e| io_failure(&format!("cannot leave the run's marker on `{name}`"), &e))?;
    }
    Ok(())
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

/// The hosts (targets) where a step failed and the run did not go on past it.
fn failed_targets(playbook: &Playbook, record: &RunRecord) -> BTreeSet<String> {
    record
        .phase(Phase::Step)
        .filter(|s| s.outcome == Some(Outcome::Failed) && !continues_on_error(playbook, &s.step))
        .map(|s| s.target.clone())
        .collect()
}

/// How many failed hosts a fleet tolerates (none without a fleet).
fn tolerated(playbook: &Playbook) -> usize {
    playbook.inventory.as_ref().map_or(0, |i| i.max_fail.of(i.hosts.len()))
}

/// Is this run undoing itself? A rollback began, or more hosts failed than
/// the fleet tolerates.
fn rolling_back(playbook: &Playbook, record: &RunRecord) -> bool {
    record.undo
        || record.phase(Phase::Rollback).next().is_some()
        || failed_targets(playbook, record).len() > tolerated(playbook)
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
            message: if record.undo {
                "this run was being undone: finishing the undo"
            } else {
                "this run failed and was being rolled back: finishing the rollback"
            },
        });
        return rollback(playbook, record, state_dir, options, reporter);
    }
    let Reopened { record, journal, mut contexts, secrets: secret_values, targets, _lock } =
        reopen(playbook, &record, state_dir, "resume", options)?;

    // Fingerprints of completed steps against the playbook as it is now.
    let mut changed = Vec::new();
    for state in record.phase(Phase::Step).filter(|s| s.outcome == Some(Outcome::Ok)) {
        let Some(step) = playbook.steps.iter().find(|s| s.id.as_str() == state.step) else {
            changed.push(format!("`{}` is no longer in the playbook", state.step));
            continue;
        };
        let (Some(context), Some(transport)) = (contexts.get_mut(&state.target), targets.get(&state.target)) else {
            changed.push(format!("`{}` ran on `{}`, which is no longer a host", state.step, state.target));
            continue;
        };
        // Rendered as the step saw itself when it started.
        if let Some((attempt, interrupted, resumed)) = state.last_try {
            context.0.set_current_step(StepInfo { id: state.step.clone(), attempt, interrupted });
            context.0.set_resumed(resumed);
        }
        let now = plan::describe_step(step, &context.0, transport, false).map(|p| p.fingerprint).unwrap_or_default();
        context.0.set_resumed(true);
        if state.fingerprint != now {
            let on = if state.target == LOCAL { String::new() } else { format!(" on `{}`", state.target) };
            changed.push(format!("`{}`{on} changed since it ran", state.step));
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

    // Steps the crash or signal stopped: run them again, take them as done, or ask.
    let interrupted = interrupted_to_settle(playbook, &record, options, &[Phase::Step, Phase::Finally])?;
    // The `pause` steps still ahead, asked for before anything runs again.
    let mut pauses = Vec::new();
    for (phase, steps) in [(Phase::Step, &playbook.steps), (Phase::Finally, &playbook.finally)] {
        for step in steps.iter().filter(|s| matches!(s.action, Action::Pause(_))) {
            for target in &step.targets {
                let done = record
                    .steps
                    .get(&(phase, step.id.as_str().to_owned(), target.clone()))
                    .is_some_and(|s| s.outcome.is_some());
                let (Some((shown, _)), Some(transport)) = (contexts.get(target), targets.get(target)) else {
                    continue;
                };
                match plan::describe_step(step, shown, transport, false).map(|p| p.status) {
                    _ if done => {}
                    Ok(Status::Skipped) => {}
                    Ok(Status::WillRun) => pauses.push((step.id.as_str().to_owned(), false)),
                    _ => pauses.push((step.id.as_str().to_owned(), true)),
                }
            }
        }
    }
    pauses.dedup();
    approvals(playbook, &pauses, options)?;
    let selection = record.header.selection.as_ref().and_then(|s| selection_of(s).ok());
    let reviewed = record.header.plan.as_ref().map(|p| Reviewed::new(playbook, selection.as_ref(), p, &record));

    let torn = record.torn;
    let path = record.path.clone();
    let run_id = record.header.run_id.clone();
    let version = record.header.selection.as_ref().map(|s| s.target.clone());
    let in_finally = record.phase(Phase::Finally).next().is_some();
    let mut engine = Engine::new(playbook, &targets, reporter, journal, record, contexts, &secret_values, options);
    engine.reviewed = reviewed;
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
    for state in &interrupted {
        engine.settle(state)?;
    }
    if in_finally { engine.finally_and_end(None) } else { engine.forward() }
}

/// The steps of `phases` a crash or signal stopped, when the operator's flags
/// or their idempotence say what to do with them; an error asks otherwise.
fn interrupted_to_settle(
    playbook: &Playbook,
    record: &RunRecord,
    options: &RunOptions,
    phases: &[Phase],
) -> Result<Vec<StepState>, Failure> {
    let stopped: Vec<&StepState> =
        record.steps.values().filter(|s| s.outcome.is_none() && phases.contains(&s.phase)).collect();
    for state in &stopped {
        let steps = if state.phase == Phase::Finally { &playbook.finally } else { &playbook.steps };
        let idempotent = steps.iter().find(|s| s.id.as_str() == state.step).is_some_and(|s| s.idempotent);
        if !idempotent && !options.retry_interrupted && !options.skip_interrupted {
            let command = if phases.contains(&Phase::Step) { "resume" } else { "rollback" };
            let on = if state.target == LOCAL { String::new() } else { format!(" on `{}`", state.target) };
            return Err(Failure::new(
                Exit::Invalid,
                format!(
                    "{}step `{}`{on} was interrupted and is not idempotent: it may have run in part",
                    if state.phase == Phase::Finally { "finally " } else { "" },
                    state.step
                ),
            )
            .help(format!("check what it did, then `upshift {command} --retry-interrupted` to run it again or `--skip-interrupted` if it completed")));
        }
    }
    Ok(stopped.into_iter().cloned().collect())
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
    /// Per target: shown and exec contexts, with the journal's version choice and step outputs.
    contexts: IndexMap<String, (Context, Context)>,
    secrets: BTreeMap<String, String>,
    targets: Targets,
    _lock: crate::lock::Lock,
}

/// Binds the playbook to the run's variables, resolves secrets, takes the
/// locks, makes sure nothing of the run still runs, and rebuilds the contexts
/// from the journal. Never selects a version.
fn reopen(
    playbook: &mut Playbook,
    record: &RunRecord,
    state_dir: &Path,
    command: &str,
    options: &RunOptions,
) -> Result<Reopened, Failure> {
    playbook.vars = record.header.vars.clone();
    if let Some(inventory) = playbook.inventory.as_mut() {
        for host in &mut inventory.hosts {
            if let Some(vars) = record.header.host_vars.get(&host.name) {
                host.vars = vars.clone();
            }
        }
    }
    signals::install();
    let lock = take_lock(state_dir, command)?;
    let record = crate::runs::read_run(&record.path)?;
    let secrets = resolve_secrets(playbook)?;
    let targets = connect(playbook)?;
    lock_hosts(&targets, Some(&record.header.run_id), options)?;
    leftovers(&record, &targets, options)?;
    check_signal()?;
    let selection =
        record.header.selection.as_ref().map(selection_of).transpose().map_err(|why| {
            Failure::new(Exit::Invalid, format!("the journal's version choice does not parse: {why}"))
        })?;
    let journal =
        Journal::reopen(&record.path, record.valid_len).map_err(|e| io_failure("cannot open the journal", &e))?;
    let mut contexts =
        Engine::contexts(playbook, &secrets, selection.as_ref(), (&record.header.run_id, &record.header.started_at));
    for (shown, exec) in contexts.values_mut() {
        shown.set_resumed(true);
        exec.set_resumed(true);
    }
    for state in record.steps.values().filter(|s| matches!(s.phase, Phase::Step | Phase::Finally)) {
        if let Some(outcome) = state.outcome {
            let result = StepResult {
                stdout: state.stdout.clone(),
                exit_code: state.exit_code,
                skipped: outcome == Outcome::Skipped,
            };
            let sole = step_targets(playbook, state.phase, &state.step).is_some_and(|t| t.len() == 1);
            for (target, (shown, exec)) in contexts.iter_mut() {
                if *target == state.target || sole {
                    shown.set_step(&state.step, &result);
                    exec.set_step(&state.step, &result);
                }
            }
        }
    }
    Ok(Reopened { record, journal, contexts, secrets, targets, _lock: lock })
}

/// The targets a step of a phase runs on, if the playbook has that step.
fn step_targets<'p>(playbook: &'p Playbook, phase: Phase, id: &str) -> Option<&'p [String]> {
    let steps = if phase == Phase::Finally { &playbook.finally } else { &playbook.steps };
    steps.iter().find(|s| s.id.as_str() == id).map(|s| s.targets.as_slice())
}

/// The environment variable that marks a step's processes: `RUN_ID/PHASE/STEP@TARGET`.
pub(crate) const STEP_MARK: &str = "UPSHIFT_STEP";

fn step_mark(run_id: &str, phase: Phase, step: &str, target: &str) -> String {
    let phase = match phase {
        Phase::Step => "step",
        Phase::Rollback => "rollback",
        Phase::Finally => "finally",
    };
    format!("{run_id}/{phase}/{step}@{target}")
}

/// Refuses to go on while processes of an interrupted step still run (they
/// would race what comes next), or stops them when the operator said so.
/// On this machine they are found by the process group the journal recorded
/// and by the mark every step's processes inherit (for a kill before the
/// group was recorded); on a host, by the mark.
fn leftovers(record: &RunRecord, targets: &Targets, options: &RunOptions) -> Result<(), Failure> {
    let this_boot = crate::process::boot_id();
    let rebooted = record.header.boot_id.is_some() && record.header.boot_id != this_boot;
    let mut alive: Vec<(StepState, Vec<crate::process::Alive>)> = Vec::new();
    for state in record.steps.values().filter(|s| s.outcome.is_none()) {
        let mark = step_mark(&record.header.run_id, state.phase, &state.step, &state.target);
        let mut members = Vec::new();
        if state.target == LOCAL {
            // The machine rebooted since: nothing of that run can still run here.
            if rebooted {
                continue;
            }
            if let Some((pgid, start)) = state.process {
                members.extend(crate::process::group_members(pgid, start));
            }
        }
        // This machine's processes (a leftover `ssh` client too) and the host's.
        let mut places: Vec<&dyn Transport> = targets.get(LOCAL).into_iter().collect();
        if state.target != LOCAL {
            places.extend(targets.get(&state.target));
        }
        for place in places {
            for member in place.leftovers(&mark).unwrap_or_default() {
                if !members.contains(&member) {
                    members.push(member);
                }
            }
        }
        if !members.is_empty() {
            alive.push((state.clone(), members));
        }
    }
    if alive.is_empty() {
        return Ok(());
    }
    if options.kill_orphans {
        for (state, _) in &alive {
            let mark = step_mark(&record.header.run_id, state.phase, &state.step, &state.target);
            if state.target == LOCAL
                && let Some((pgid, start)) = state.process
            {
                crate::process::stop_group(pgid, start);
            }
            if let Some(local) = targets.get(LOCAL) {
                let _ = local.stop_leftovers(&mark);
            }
            if let Some(host) = targets.get(&state.target).filter(|_| state.target != LOCAL) {
                host.stop_leftovers(&mark)
                    .map_err(|e| io_failure(&format!("cannot stop what runs on `{}`", state.target), &e))?;
            }
        }
        return Ok(());
    }
    let details = alive
        .iter()
        .flat_map(|(state, members)| {
            let on = if state.target == LOCAL { String::new() } else { format!(" on `{}`", state.target) };
            members.iter().map(move |m| format!("`{}`{on}: pid {} `{}`", state.step, m.pid, m.command))
        })
        .collect();
    Err(Failure::new(
        Exit::Locked,
        format!(
            "the interrupted step `{}` is still running: going on now would race it",
            alive
                .iter()
                .map(|(s, _)| s.step.as_str())
                .collect::<BTreeSet<_>>()
                .into_iter()
                .collect::<Vec<_>>()
                .join("`, `")
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
    let Reopened { record, journal, contexts, secrets: secret_values, targets, _lock } =
        reopen(playbook, &record, state_dir, "rollback", options)?;
    // An interrupted step is undone like a completed one; an interrupted
    // `finally` step still owes its run, which the operator may have to settle.
    let interrupted = interrupted_to_settle(playbook, &record, options, &[Phase::Finally])?;
    let run_id = record.header.run_id.clone();
    // The `finally` steps of a reviewed plan's run are held to it; an undo's are not.
    let reviewed = record.header.plan.as_ref().filter(|_| !record.undo).map(|plan| {
        let selection = record.header.selection.as_ref().and_then(|s| selection_of(s).ok());
        Reviewed::new(playbook, selection.as_ref(), plan, &record)
    });
    let mut engine = Engine::new(playbook, &targets, reporter, journal, record, contexts, &secret_values, options);
    engine.reviewed = reviewed;
    engine.report(&Event::Notice { level: "note", message: &format!("rolling back run `{run_id}`") });
    for state in &interrupted {
        engine.settle(state)?;
    }
    engine.rollback_and_finish(None)
}

/// What undoing a finished run will do, shown before the operator confirms.
#[derive(Debug)]
pub(crate) struct UndoPlan {
    pub(crate) run_id: String,
    /// `1.0.0 → 1.1.0`, when the run chose a version.
    pub(crate) version: Option<String>,
    pub(crate) started_at: String,
    /// One line per (step, target) to undo, newest first.
    pub(crate) steps: Vec<String>,
    /// The `finally` steps that run again afterwards.
    pub(crate) finally: Vec<String>,
}

/// `rollback --run ID` (and a bare `rollback` after a success): undoes a
/// finished run's completed steps, newest first, with the same journal,
/// snapshots and rollback rules as a failed run, then runs `finally` again.
/// Refuses, before changing anything, when a snapshot it needs is gone or a
/// later run of the playbook changed the same files; `confirm` sees what it
/// will do and says whether to go on.
pub(crate) fn undo(
    playbook: &mut Playbook,
    record: RunRecord,
    state_dir: &Path,
    options: &RunOptions,
    reporter: &mut dyn Reporter,
    confirm: &mut dyn FnMut(&UndoPlan) -> Result<(), Failure>,
) -> Result<Exit, Failure> {
    let Reopened { record, journal, contexts, secrets: secret_values, targets, _lock } =
        reopen(playbook, &record, state_dir, "rollback", options)?;
    let run_id = record.header.run_id.clone();
    // As the journal says now, under the lock.
    match &record.end {
        _ if record.undo && !record.unfinished() => {
            return Err(Failure::new(Exit::Invalid, format!("run `{run_id}` was undone already"))
                .help("`upshift status` shows how it ended"));
        }
        Some((RunOutcome::Succeeded | RunOutcome::FinallyFailed, _)) if !rolling_back(playbook, &record) => {}
        Some((RunOutcome::Succeeded | RunOutcome::FinallyFailed | RunOutcome::RolledBack, _)) => {
            return Err(Failure::new(
                Exit::Invalid,
                format!("run `{run_id}` failed and was rolled back: there is nothing to undo"),
            ));
        }
        _ => {
            return Err(Failure::new(Exit::Invalid, format!("run `{run_id}` is unfinished"))
                .help("`upshift rollback` (without `--run`) undoes it, `upshift resume` continues it"));
        }
    }
    let (unfinished, _) =
        crate::runs::unfinished_runs(state_dir, Some((&record.header.playbook, record.header.environment.as_deref())));
    if let Some(other) = unfinished.last() {
        return Err(Failure::new(
            Exit::Locked,
            format!("run `{}` of this playbook is unfinished ({})", other.header.run_id, other.describe()),
        )
        .help("finish it first: `upshift resume` continues it, `upshift rollback` undoes it"));
    }
    let mut engine = Engine::new(playbook, &targets, reporter, journal, record, contexts, &secret_values, options);
    let problems = engine.undo_problems(state_dir);
    if !problems.is_empty() {
        return Err(Failure::new(Exit::NotReady, format!("run `{run_id}` cannot be undone"))
            .details(problems)
            .help("nothing was changed"));
    }
    let summary = engine.undo_plan()?;
    confirm(&summary)?;
    check_signal()?;
    engine.append(&Record::Undo { pid: std::process::id(), user: crate::lock::user(), at: journal::now() })?;
    // Unfinished again: its hosts carry its marker until the undo ends.
    mark_hosts(&targets, &engine.record)?;
    let count = engine.to_undo().len();
    engine.notice(
        "note",
        &format!(
            "undoing run `{run_id}`: {count} completed step{}, newest first, then `finally`",
            if count == 1 { "" } else { "s" }
        ),
    );
    engine.rollback_and_finish(None)
}

/// How a list of steps ended.
enum Ended {
    Completed,
    Failed(String),
    Interrupted(Option<String>),
}

struct Engine<'a> {
    playbook: &'a Playbook,
    targets: &'a Targets,
    reporter: &'a mut dyn Reporter,
    journal: Journal,
    /// The run as its journal says, kept up to date with every append.
    record: RunRecord,
    masker: Masker,
    /// Per target: secrets masked (what is shown, fingerprinted and journalled),
    /// and revealed (what commands are built from).
    contexts: IndexMap<String, (Context, Context)>,
    snapshots: std::sync::Arc<Snapshots>,
    /// Every output line, masked (the journal keeps a tail).
    log: RunLog,
    options: &'a RunOptions,
    run_id: String,
    /// In a fleet: events and messages name hosts.
    fleet: bool,
    /// The reviewed plan this run is held to (`run --plan`).
    reviewed: Option<Reviewed>,
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

/// The end of a text, at most `max` bytes, cut at a line start.
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

impl Done {
    fn failed(started: Instant, error: String) -> Done {
        Done {
            output: Output { elapsed: started.elapsed(), exit_code: Some(1), ..Output::default() },
            error: Some(error),
        }
    }

    fn ok(started: Instant) -> Done {
        Done { output: Output { elapsed: started.elapsed(), exit_code: Some(0), ..Output::default() }, error: None }
    }

    fn interrupted(&self) -> bool {
        self.output.interrupted.is_some()
    }
}

/// What a worker thread does for one (step, target): everything rendered.
enum Work<'s> {
    Command(CommandSpec),
    Edit {
        path: String,
        edit: &'s crate::playbook::Edit,
        value: minijinja::Value,
        secret: bool,
    },
    Template {
        dest: String,
        content: String,
        mode: Option<u32>,
        secret: bool,
    },
    Restore,
    /// Failed before it could start (a template that did not render).
    Refused(String),
}

/// A message from a worker to the engine's thread.
enum Message {
    Spawned { target: String, pgid: u32, start: u64 },
    Line { target: String, stream: Stream, line: String },
    Done { index: usize, done: Done },
}

/// One (step, target) to execute.
struct Job<'s> {
    target: String,
    /// Tries journalled before this process, and whether the last was left open.
    earlier: u32,
    interrupted: bool,
    /// Tries in this process (1 for the first).
    tries: u32,
    /// Not before this instant (a retry's delay).
    ready: Instant,
    /// The shown action of this try, for events.
    action: String,
    planned: Option<PlannedStep>,
    /// The step whose rollback this is (rollback jobs).
    rollback: Option<&'s Step>,
}

impl<'a> Engine<'a> {
    #[allow(clippy::too_many_arguments)]
    fn new(
        playbook: &'a Playbook,
        targets: &'a Targets,
        reporter: &'a mut dyn Reporter,
        journal: Journal,
        record: RunRecord,
        contexts: IndexMap<String, (Context, Context)>,
        secrets: &BTreeMap<String, String>,
        options: &'a RunOptions,
    ) -> Engine<'a> {
        let run_id = record.header.run_id.clone();
        let snapshots = std::sync::Arc::new(Snapshots::new(journal.path.with_extension("files"), &run_id));
        let log = RunLog::open(&journal.path);
        Engine {
            playbook,
            targets,
            reporter,
            journal,
            record,
            masker: Masker::new(secrets),
            contexts,
            snapshots,
            log,
            options,
            run_id,
            fleet: playbook.inventory.is_some(),
            reviewed: None,
        }
    }

    /// Per target: the shown and exec contexts.
    fn contexts(
        playbook: &Playbook,
        secrets: &BTreeMap<String, String>,
        selection: Option<&Selection>,
        run: (&str, &str),
    ) -> IndexMap<String, (Context, Context)> {
        playbook
            .target_names()
            .into_iter()
            .map(|target| {
                let shown = Context::on(playbook, &target, selection, None, run);
                let exec = Context::on(playbook, &target, selection, Some(secrets), run);
                (target, (shown, exec))
            })
            .collect()
    }

    fn transport(&self, target: &str) -> Result<&'a dyn Transport, Failure> {
        let targets: &'a Targets = self.targets;
        targets.get(target).ok_or_else(|| {
            Failure::new(Exit::RollbackIncomplete, format!("internal error: no connection to `{target}`"))
        })
    }

    fn context(&self, target: &str) -> Result<&(Context, Context), Failure> {
        self.contexts
            .get(target)
            .ok_or_else(|| Failure::new(Exit::RollbackIncomplete, format!("internal error: no context for `{target}`")))
    }

    /// The host an event names (none on this machine alone).
    fn host<'t>(&self, target: &'t str) -> Option<&'t str> {
        (self.fleet || target != LOCAL).then_some(target)
    }

    /// `` on `web1` `` in messages about a fleet's host.
    fn on(&self, target: &str) -> String {
        if self.fleet || target != LOCAL { format!(" on `{target}`") } else { String::new() }
    }

    fn report(&mut self, event: &Event<'_>) {
        if let Event::StepStarted { step, host, phase, attempt, .. } = event {
            self.log.begin(step, *host, *phase, *attempt);
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

    /// The tries of a (step, target) so far in this run: how many, and whether the last was left open.
    fn earlier_tries(&self, phase: Phase, id: &str, target: &str) -> (u32, bool) {
        self.record
            .steps
            .get(&(phase, id.to_owned(), target.to_owned()))
            .map_or((0, false), |s| (s.starts, s.starts > 0 && s.outcome.is_none()))
    }

    /// Says in a target's contexts which step runs, and which try (`step.*`).
    fn set_try(&mut self, target: &str, id: &str, attempt: u32, interrupted: bool) {
        if let Some((shown, exec)) = self.contexts.get_mut(target) {
            let info = StepInfo { id: id.to_owned(), attempt, interrupted };
            shown.set_current_step(info.clone());
            exec.set_current_step(info);
        }
    }

    /// What later steps read: on this target, and on every target when the
    /// step runs on one only.
    fn set_result(&mut self, phase: Phase, id: &str, target: &str, result: &StepResult) {
        let sole = step_targets(self.playbook, phase, id).is_none_or(|t| t.len() == 1);
        for (name, (shown, exec)) in self.contexts.iter_mut() {
            if name == target || sole {
                shown.set_step(id, result);
                exec.set_step(id, result);
            }
        }
        if let Some(reviewed) = &mut self.reviewed {
            reviewed.learn(phase, id, target, sole, result);
        }
    }

    /// Has this (step, target) of this phase an outcome in the journal?
    fn settled(&self, phase: Phase, id: &str, target: &str) -> bool {
        self.record.steps.get(&(phase, id.to_owned(), target.to_owned())).is_some_and(|s| s.outcome.is_some())
    }

    /// Settles an interrupted (step, target) as the operator said:
    /// `--skip-interrupted` takes it as completed (so a rollback undoes it);
    /// else it runs again.
    fn settle(&mut self, state: &StepState) -> Result<(), Failure> {
        let on = self.on(&state.target);
        if self.options.skip_interrupted {
            self.notice(
                "warning",
                &format!("`{}`{on} was interrupted; taken as completed, as asked (--skip-interrupted)", state.step),
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
            let result = StepResult { stdout: String::new(), exit_code: None, skipped: false };
            self.set_result(state.phase, &state.step, &state.target, &result);
        } else {
            let why = if self.options.retry_interrupted { "--retry-interrupted" } else { "it is idempotent" };
            self.notice("warning", &format!("`{}`{on} was interrupted; running it again ({why})", state.step));
        }
        Ok(())
    }

    /// The hosts where a step failed and nothing more runs.
    fn out(&self) -> BTreeSet<String> {
        failed_targets(self.playbook, &self.record)
    }

    /// Runs the steps still owed, then `finally`; rolls back on a failure.
    fn forward(&mut self) -> Result<Exit, Failure> {
        let steps = &self.playbook.steps;
        match self.steps(steps, Phase::Step)? {
            Ended::Completed => self.finally_and_end(None),
            Ended::Failed(id) => {
                let pairs = self.to_undo();
                let steps = pairs.iter().map(|s| s.step.as_str()).collect::<BTreeSet<_>>().len();
                let hosts = self.out();
                let at = if self.fleet {
                    format!(" on {}", hosts.iter().map(|h| format!("`{h}`")).collect::<Vec<_>>().join(", "))
                } else {
                    String::new()
                };
                let over = if self.fleet {
                    let targets = pairs.iter().map(|s| s.target.as_str()).collect::<BTreeSet<_>>().len();
                    format!(" on {targets} host{}", if targets == 1 { "" } else { "s" })
                } else {
                    String::new()
                };
                self.notice(
                    "error",
                    &format!(
                        "`{id}` failed{at}: rolling back {steps} completed step{}{over}",
                        if steps == 1 { "" } else { "s" }
                    ),
                );
                self.rollback_and_finish(None)
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

    /// Undoes what `to_undo` lists (of `only` these targets), then `finally`.
    fn rollback_and_finish(&mut self, only: Option<&BTreeSet<String>>) -> Result<Exit, Failure> {
        let left = match self.rollback(only)? {
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
            .map(|s| format!("finally step `{}`{} failed: check it by hand", s.step, self.on(&s.target)))
            .collect();
        match rolled_back {
            None => {
                // Hosts a fleet tolerated losing: nothing more ran there.
                let mut left: Vec<String> = self
                    .record
                    .phase(Phase::Step)
                    .filter(|s| s.outcome == Some(Outcome::Failed) && !continues_on_error(self.playbook, &s.step))
                    .map(|s| {
                        format!(
                            "host `{}` failed at `{}` and was left as it was (within `max_fail`): check it",
                            s.target, s.step
                        )
                    })
                    .collect();
                left.extend(failures);
                if left.is_empty() {
                    self.end(RunOutcome::Succeeded, left, Exit::Success)
                } else if self.record.phase(Phase::Finally).any(|s| s.outcome == Some(Outcome::Failed)) {
                    self.end(RunOutcome::FinallyFailed, left, Exit::RollbackIncomplete)
                } else {
                    self.end(RunOutcome::Succeeded, left, Exit::RollbackIncomplete)
                }
            }
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

    fn end(&mut self, outcome: RunOutcome, mut left: Vec<String>, exit: Exit) -> Result<Exit, Failure> {
        // Undoing a finished run was asked for: rolled back is its success.
        let exit = if self.record.undo && exit == Exit::StepFailed { Exit::Success } else { exit };
        if outcome != RunOutcome::RollbackIncomplete {
            // The run is over: its markers go from the hosts, copies of secret-holding files too.
            for (name, transport) in self.targets.hosts() {
                if let Err(error) = transport.clear_unfinished() {
                    left.push(format!(
                        "the run's marker stays on `{name}` ({}): remove it there, or pass `--override {}`",
                        crate::document::io_reason(&error),
                        self.run_id
                    ));
                }
            }
            self.snapshots.discard_beside_copies(self.targets);
        }
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

    /// Runs the steps of a list that have no outcome yet in this run, step by
    /// step over their targets; the steps of a `serial` include batch by batch.
    fn steps(&mut self, steps: &'a [Step], phase: Phase) -> Result<Ended, Failure> {
        let mut i = 0;
        while i < steps.len() {
            let Some(batch) = &steps[i].batch else {
                match self.wave(&steps[i], phase, &steps[i].targets)? {
                    Ended::Completed => {}
                    other => return Ok(other),
                }
                i += 1;
                continue;
            };
            let end = i + steps[i..].iter().take_while(|s| s.batch.as_ref() == Some(batch)).count();
            let group = &steps[i..end];
            for chunk in batches(self.playbook, group, batch) {
                for step in group {
                    let on: Vec<String> = step.targets.iter().filter(|t| chunk.contains(t)).cloned().collect();
                    if on.is_empty() {
                        continue;
                    }
                    match self.wave(step, phase, &on)? {
                        Ended::Completed => {}
                        other => return Ok(other),
                    }
                }
            }
            i = end;
        }
        Ok(Ended::Completed)
    }

    /// Runs one step on the given targets that have no outcome yet (and, in
    /// the steps phase, have not failed), `parallel` at a time. A failure
    /// beyond what the fleet tolerates starts nothing new; what runs finishes.
    fn wave(&mut self, step: &'a Step, phase: Phase, targets: &[String]) -> Result<Ended, Failure> {
        let id = step.id.as_str();
        let out = if phase == Phase::Step { self.out() } else { BTreeSet::new() };
        let mut jobs: Vec<Job<'a>> = Vec::new();
        for target in targets {
            if self.settled(phase, id, target) || out.contains(target) {
                continue;
            }
            if signals::pending().is_some() {
                return Ok(Ended::Interrupted(None));
            }
            let (earlier, interrupted) = self.earlier_tries(phase, id, target);
            self.set_try(target, id, earlier + 1, interrupted);
            let transport = self.transport(target)?;
            let planned =
                plan::describe_step(step, &self.context(target)?.0, transport, false).map_err(render_failure)?;
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
                        target,
                    ))?;
                    self.set_result(
                        phase,
                        id,
                        target,
                        &StepResult { stdout: String::new(), exit_code: None, skipped: true },
                    );
                    let host = self.host(target);
                    self.report(&Event::StepFinished {
                        step: id,
                        host,
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
            if let Some(why) = self.reviewed.as_mut().and_then(|r| r.differs(step, phase, target, transport)) {
                // Not what was reviewed: it does not run, and the run stops as after a failure.
                self.append(&finished(
                    id,
                    phase,
                    Outcome::Failed,
                    Some(why.clone()),
                    &Output::default(),
                    &self.masker,
                    target,
                ))?;
                self.set_result(
                    phase,
                    id,
                    target,
                    &StepResult { stdout: String::new(), exit_code: None, skipped: false },
                );
                let host = self.host(target);
                self.report(&Event::StepFinished {
                    step: id,
                    host,
                    phase,
                    outcome: Outcome::Failed,
                    reason: Some(&why),
                    exit_code: None,
                    duration_ms: 0,
                });
                if phase == Phase::Finally {
                    continue;
                }
                return Ok(Ended::Failed(id.to_owned()));
            }
            jobs.push(Job {
                target: target.clone(),
                earlier,
                interrupted,
                tries: 1,
                ready: Instant::now(),
                action: describe_action(&planned.action),
                planned: Some(planned),
                rollback: None,
            });
        }
        if jobs.is_empty() {
            return Ok(Ended::Completed);
        }
        if matches!(step.action, Action::Pause(_)) {
            for job in &jobs {
                match self.pause_step(step, phase, job)? {
                    Ended::Completed => {}
                    other => return Ok(other),
                }
            }
            return Ok(Ended::Completed);
        }
        let mut failed = false;
        let mut stopped = false;
        let tolerated = tolerated(self.playbook);
        self.run_jobs(step, phase, jobs, &mut |engine, job, done| {
            let target = job.target.clone();
            if done.interrupted() || (done.error.is_some() && signals::pending().is_some()) {
                stopped = true;
                return Ok(After::Stop);
            }
            if let Some(reason) = &done.error
                && job.tries <= step.retries
                && phase != Phase::Rollback
            {
                let on = engine.on(&target);
                engine.notice(
                    "warning",
                    &format!(
                        "`{id}`{on} failed ({reason}); retrying in {}",
                        humantime::format_duration(step.retry_delay)
                    ),
                );
                job.tries += 1;
                job.ready = Instant::now() + step.retry_delay;
                return Ok(After::Retry);
            }
            let outcome = if done.error.is_none() { Outcome::Ok } else { Outcome::Failed };
            engine.append(&finished(id, phase, outcome, done.error.clone(), &done.output, &engine.masker, &target))?;
            // Output is masked as it is read: later steps see what everyone sees.
            let result = StepResult {
                stdout: done.output.stdout.trim().to_owned(),
                exit_code: done.output.exit_code,
                skipped: false,
            };
            engine.set_result(phase, id, &target, &result);
            let reason = done.error.as_deref().map(|r| engine.masker.mask(r));
            let host = engine.host(&target);
            engine.report(&Event::StepFinished {
                step: id,
                host,
                phase,
                outcome,
                reason: reason.as_deref(),
                exit_code: done.output.exit_code,
                duration_ms: done.output.elapsed.as_millis() as u64,
            });
            if outcome == Outcome::Failed {
                if step.continue_on_error {
                    let on = engine.on(&target);
                    engine.notice("warning", &format!("`{id}`{on} failed; going on (continue_on_error)"));
                } else if phase == Phase::Step {
                    let out = engine.out();
                    if out.len() > tolerated {
                        failed = true;
                        return Ok(After::Stop);
                    }
                    let on = engine.on(&target);
                    engine.notice(
                        "warning",
                        &format!(
                            "`{id}`{on} failed: nothing more runs on `{target}` ({} of {tolerated} tolerated)",
                            out.len()
                        ),
                    );
                }
            }
            Ok(After::Next)
        })?;
        if stopped {
            return Ok(Ended::Interrupted(Some(id.to_owned())));
        }
        if failed {
            return Ok(Ended::Failed(id.to_owned()));
        }
        Ok(Ended::Completed)
    }

    /// Executes jobs of one step, `parallel` at a time, each on its target's
    /// transport in a thread of its own; this thread journals and reports.
    /// `after` decides about each finished job: go on, retry it, or start
    /// nothing new (what runs finishes).
    fn run_jobs(
        &mut self,
        step: &'a Step,
        phase: Phase,
        jobs: Vec<Job<'a>>,
        after: &mut dyn FnMut(&mut Engine<'a>, &mut Job<'a>, Done) -> Result<After, Failure>,
    ) -> Result<(), Failure> {
        let parallel = self.playbook.inventory.as_ref().map_or(1, |i| i.parallel).max(1);
        let id = step.id.as_str();
        let mut jobs: Vec<Job<'a>> = jobs;
        let mut waiting: VecDeque<usize> = (0..jobs.len()).collect();
        let (sender, receiver) = mpsc::channel::<Message>();
        let snapshots = std::sync::Arc::clone(&self.snapshots);
        std::thread::scope(|scope| -> Result<(), Failure> {
            let mut running = 0usize;
            let mut stop = false;
            loop {
                if signals::pending().is_some() {
                    stop = true;
                }
                // Start what may start.
                while running < parallel && !stop {
                    let now = Instant::now();
                    let Some(position) = waiting.iter().position(|i| jobs[*i].ready <= now) else { break };
                    let index = waiting.remove(position).expect("the position exists");
                    let job = &jobs[index];
                    let target = job.target.clone();
                    let transport = self.transport(&target)?;
                    let attempt = job.earlier + job.tries;
                    if job.tries > 1 {
                        self.set_try(&target, id, attempt, job.interrupted);
                    }
                    let work = match job.rollback {
                        Some(rollback_of) => self.rollback_work(rollback_of, &target)?,
                        None => self.work(step, phase, &target)?,
                    };
                    // What this try runs, as people see it (a command may read `step.attempt`).
                    let action = if job.tries > 1 && job.rollback.is_none() {
                        let shown = self.context(&target)?.0.value(step.scope.as_ref()).map_err(render_failure)?;
                        describe_action(&plan::render_action(&step.action, &shown, true, None).map_err(render_failure)?)
                    } else {
                        job.action.clone()
                    };
                    if job.tries == 1 {
                        let fingerprint = job.planned.as_ref().map(|p| p.fingerprint.clone()).unwrap_or_default();
                        self.append(&Record::Started {
                            step: id.to_owned(),
                            phase,
                            fingerprint,
                            action: action.clone(),
                            target: target.clone(),
                            at: journal::now(),
                        })?;
                    }
                    let name = job.planned.as_ref().and_then(|p| p.name.clone());
                    let host = self.host(&target);
                    self.report(&Event::StepStarted {
                        step: id,
                        host,
                        name: name.as_deref(),
                        phase,
                        action: &action,
                        attempt: job.earlier + job.tries,
                    });
                    let sender = sender.clone();
                    let snapshots = std::sync::Arc::clone(&snapshots);
                    let key = snapshot_key(id, &target);
                    let masker = self.masker.clone();
                    scope.spawn(move || {
                        let done = execute(work, transport, &snapshots, &key, &target, &masker, &sender);
                        let _ = sender.send(Message::Done { index, done });
                    });
                    running += 1;
                }
                if running == 0 && (waiting.is_empty() || stop) {
                    return Ok(());
                }
                let wait = waiting
                    .iter()
                    .map(|i| jobs[*i].ready.saturating_duration_since(Instant::now()))
                    .min()
                    .unwrap_or(Duration::from_millis(100))
                    .clamp(Duration::from_millis(1), Duration::from_millis(100));
                match receiver.recv_timeout(wait) {
                    Ok(Message::Spawned { target, pgid, start }) => {
                        let spawned =
                            Record::Spawned { step: id.to_owned(), phase, target, pgid, start, at: journal::now() };
                        self.journal.append_unsynced(&spawned).map_err(|e| self.journal_failure(&e))?;
                        self.record.apply_ref(&spawned);
                    }
                    Ok(Message::Line { target, stream, line }) => {
                        let host = self.host(&target);
                        self.log.line(host, stream, &line);
                        self.report(&Event::Output {
                            step: id,
                            host,
                            stream: match stream {
                                Stream::Stdout => "stdout",
                                Stream::Stderr => "stderr",
                            },
                            line: &line,
                        });
                    }
                    Ok(Message::Done { index, done }) => {
                        running -= 1;
                        match after(self, &mut jobs[index], done)? {
                            After::Next => {}
                            After::Retry => waiting.push_back(index),
                            After::Stop => stop = true,
                        }
                    }
                    Err(mpsc::RecvTimeoutError::Timeout) => {}
                    Err(mpsc::RecvTimeoutError::Disconnected) => return Ok(()),
                }
            }
        })
    }

    /// Renders a step's action for a target, with secrets revealed.
    fn work(&self, step: &'a Step, phase: Phase, target: &str) -> Result<Work<'a>, Failure> {
        let value = self.context(target)?.1.value(step.scope.as_ref()).map_err(render_failure)?;
        let shown = self.context(target)?.0.value(step.scope.as_ref()).map_err(render_failure)?;
        Ok(self.action_work(
            &step.action,
            step,
            step.cwd.as_ref(),
            &step.env,
            step.timeout,
            phase,
            target,
            &value,
            &shown,
        ))
    }

    /// What undoing a step on a target does: restore its snapshot, or run its rollback action.
    fn rollback_work(&self, step: &'a Step, target: &str) -> Result<Work<'a>, Failure> {
        let key = snapshot_key(step.id.as_str(), target);
        if self.snapshots.has(&key) {
            return Ok(Work::Restore);
        }
        let Rollback::Action { action, cwd, env, timeout, .. } = &step.rollback else {
            return Ok(Work::Refused("internal error: nothing to undo".to_owned()));
        };
        let value = self.context(target)?.1.value(step.scope.as_ref()).map_err(render_failure)?;
        let shown = self.context(target)?.0.value(step.scope.as_ref()).map_err(render_failure)?;
        // A rollback runs where its step ran unless it says otherwise.
        let cwd = cwd.as_ref().or(step.cwd.as_ref());
        Ok(self.action_work(action, step, cwd, env, *timeout, Phase::Rollback, target, &value, &shown))
    }

    #[allow(clippy::too_many_arguments)]
    fn action_work(
        &self,
        action: &'a Action,
        step: &Step,
        cwd: Option<&crate::template::Template>,
        env: &[(String, crate::template::Template)],
        timeout: Option<Duration>,
        phase: Phase,
        target: &str,
        value: &minijinja::Value,
        shown: &minijinja::Value,
    ) -> Work<'a> {
        let refused = |error: &dyn std::fmt::Display| Work::Refused(self.masker.mask(&error.to_string()));
        match action {
            Action::Command(command) => {
                let rendered = (|| {
                    let cwd = cwd.map(|c| c.render(value)).transpose()?;
                    let env = render_env(env, value)?;
                    command_spec(command, value, cwd.as_deref(), &env, timeout)
                })();
                match rendered {
                    Ok(mut spec) => {
                        spec.masker = self.masker.clone();
                        spec.env.push((STEP_MARK.to_owned(), step_mark(&self.run_id, phase, step.id.as_str(), target)));
                        Work::Command(spec)
                    }
                    Err(error) => refused(&error),
                }
            }
            Action::Edit(edit) => match edit.path.render(value) {
                Ok(path) => Work::Edit { path, edit, value: value.clone(), secret: plan::writes_secret(action, shown) },
                Err(error) => refused(&error),
            },
            Action::Template(template) => {
                let rendered = (|| {
                    Ok::<_, crate::template::RenderError>((
                        template.dest.render(value)?,
                        template.content.render(value)?,
                    ))
                })();
                match rendered {
                    Ok((dest, content)) => Work::Template {
                        dest,
                        content,
                        mode: template.mode,
                        secret: plan::writes_secret(action, shown),
                    },
                    Err(error) => refused(&error),
                }
            }
            Action::Pause(_) => Work::Refused("internal error: a pause runs on the engine's thread".to_owned()),
        }
    }

    /// What a rollback undoes, newest first: (step, target) pairs that
    /// completed or were interrupted (a half-done step's rollback must tolerate
    /// that), and any pair whose file snapshot is on disk, unless already
    /// rolled back. `only` narrows it to some targets.
    fn to_undo(&self) -> Vec<StepState> {
        let undone: HashSet<(&str, &str)> = self
            .record
            .phase(Phase::Rollback)
            .filter(|s| matches!(s.outcome, Some(Outcome::Ok | Outcome::Skipped)))
            .map(|s| (s.step.as_str(), s.target.as_str()))
            .collect();
        self.record
            .phase(Phase::Step)
            .filter(|s| !undone.contains(&(s.step.as_str(), s.target.as_str())))
            .filter(|s| {
                matches!(s.outcome, Some(Outcome::Ok) | None) || self.snapshots.has(&snapshot_key(&s.step, &s.target))
            })
            .cloned()
            .collect::<Vec<_>>()
            .into_iter()
            .rev()
            .collect()
    }

    /// Undoes what `to_undo` lists, newest first: the pairs of one step
    /// together, steps one after another. `Ok(left)` lists what could not be
    /// undone; `Err(step)` means a signal stopped the rollback.
    fn rollback(&mut self, only: Option<&BTreeSet<String>>) -> Result<Result<Vec<String>, Option<String>>, Failure> {
        let mut left = Vec::new();
        let mut pairs: Vec<StepState> = self.to_undo();
        if let Some(only) = only {
            pairs.retain(|s| only.contains(&s.target));
        }
        let mut i = 0;
        while i < pairs.len() {
            let id = pairs[i].step.clone();
            let end = i + pairs[i..].iter().take_while(|s| s.step == id).count();
            let group: Vec<StepState> = pairs[i..end].to_vec();
            i = end;
            if signals::pending().is_some() {
                return Ok(Err(None));
            }
            let Some(step) = self.playbook.steps.iter().find(|s| s.id.as_str() == id) else {
                left.push(format!("`{id}` is no longer in the playbook: undo it by hand"));
                continue;
            };
            let mut jobs = Vec::new();
            for state in &group {
                let target = state.target.clone();
                let on = self.on(&target);
                let completed = state.outcome == Some(Outcome::Ok);
                let interrupted = state.outcome.is_none();
                let (earlier, open) = self.earlier_tries(Phase::Rollback, &id, &target);
                // Undoing a step that was itself cut short is repairing what it left.
                self.set_try(&target, &id, earlier + 1, open || interrupted);
                // A file changed by this step (even one that failed) goes back as it was.
                if self.snapshots.has(&snapshot_key(&id, &target)) {
                    jobs.push(self.rollback_job(step, &target, "restore the file from its snapshot".to_owned()));
                    continue;
                }
                if !(completed || interrupted) {
                    continue;
                }
                match &step.rollback {
                    Rollback::Nothing => {}
                    Rollback::Irreversible => {
                        self.notice(
                            "warning",
                            &format!("`{id}`{on} cannot be undone (rollback = false); an earlier step's rollback restores what it changed"),
                        );
                    }
                    Rollback::Restore => {
                        if completed {
                            left.push(format!("`{id}`{on}: its file snapshot is gone; restore the file by hand"));
                        }
                    }
                    Rollback::Action { action, guard, .. } => {
                        let (value, shown) = {
                            let (shown, exec) = self.context(&target)?;
                            (
                                exec.value(step.scope.as_ref()).map_err(render_failure)?,
                                shown.value(step.scope.as_ref()).map_err(render_failure)?,
                            )
                        };
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
                                        &target,
                                    ))?;
                                    let host = self.host(&target);
                                    self.report(&Event::StepFinished {
                                        step: &id,
                                        host,
                                        phase: Phase::Rollback,
                                        outcome: Outcome::Skipped,
                                        reason: Some(&reason),
                                        exit_code: None,
                                        duration_ms: 0,
                                    });
                                    continue;
                                }
                                Err(error) => {
                                    left.push(format!("`{id}`{on}: {}", self.masker.mask(&error.to_string())));
                                    continue;
                                }
                            }
                        }
                        let text =
                            describe_action(&plan::render_action(action, &shown, false, None).map_err(render_failure)?);
                        jobs.push(self.rollback_job(step, &target, text));
                    }
                }
            }
            if jobs.is_empty() {
                continue;
            }
            let mut stopped = None;
            self.run_jobs(step, Phase::Rollback, jobs, &mut |engine, job, done| {
                let target = job.target.clone();
                if done.interrupted() {
                    stopped = Some(id.clone());
                    return Ok(After::Stop);
                }
                if let Some(error) = &done.error {
                    let on = engine.on(&target);
                    let what = if job.action.starts_with("restore the file") {
                        format!("`{id}`{on}: {}", engine.masker.mask(error))
                    } else {
                        format!(
                            "`{id}`{on}: rollback failed ({}); undo by hand: {}",
                            engine.masker.mask(error),
                            job.action
                        )
                    };
                    left.push(what);
                }
                let outcome = if done.error.is_none() { Outcome::Ok } else { Outcome::Failed };
                engine.append(&finished(
                    &id,
                    Phase::Rollback,
                    outcome,
                    done.error.clone(),
                    &done.output,
                    &engine.masker,
                    &target,
                ))?;
                let reason = done.error.as_deref().map(|e| engine.masker.mask(e));
                let host = engine.host(&target);
                engine.report(&Event::StepFinished {
                    step: &id,
                    host,
                    phase: Phase::Rollback,
                    outcome,
                    reason: reason.as_deref(),
                    exit_code: done.output.exit_code,
                    duration_ms: done.output.elapsed.as_millis() as u64,
                });
                Ok(After::Next)
            })?;
            if let Some(step) = stopped {
                return Ok(Err(Some(step)));
            }
        }
        Ok(Ok(left))
    }

    /// What would stop an undo of this finished run: a step it must undo
    /// that the playbook no longer has, a snapshot it needs that is gone, a
    /// file a later run (not rolled back) changed again.
    fn undo_problems(&self, state_dir: &Path) -> Vec<String> {
        let mut problems = Vec::new();
        for state in self.to_undo() {
            let id = &state.step;
            let on = self.on(&state.target);
            let Some(step) = self.playbook.steps.iter().find(|s| s.id.as_str() == *id) else {
                problems.push(format!("`{id}` is no longer in the playbook: how to undo it is unknown"));
                continue;
            };
            let key = snapshot_key(id, &state.target);
            if (matches!(step.rollback, Rollback::Restore) || self.snapshots.has(&key))
                && let Some(why) = self.snapshots.missing(&key, self.targets)
            {
                problems.push(format!("`{id}`{on}: {why}"));
            }
        }
        let mine = self.snapshots.files();
        for later in crate::runs::later_runs(state_dir, &self.record) {
            if matches!(later.end, Some((RunOutcome::RolledBack, _))) {
                continue;
            }
            let theirs = Snapshots::new(later.path.with_extension("files"), &later.header.run_id).files();
            for mine in &mine {
                if let Some(other) = theirs.iter().find(|t| t.target == mine.target && t.path == mine.path) {
                    problems.push(format!(
                        "`{}`{} (step `{}`) was changed again by the later run `{}` (step `{}`): undo that run first",
                        crate::diagnostic::display_path(&mine.path),
                        self.on(&mine.target),
                        mine.step,
                        later.header.run_id,
                        other.step
                    ));
                }
            }
        }
        problems
    }

    /// What an undo will do, in words, newest first.
    fn undo_plan(&mut self) -> Result<UndoPlan, Failure> {
        let mut steps = Vec::new();
        for state in self.to_undo() {
            let id = state.step.clone();
            let target = state.target.clone();
            let on = self.on(&target);
            let Some(step) = self.playbook.steps.iter().find(|s| s.id.as_str() == id) else { continue };
            if let Some(path) = self.snapshots.file(&snapshot_key(&id, &target)) {
                steps.push(format!(
                    "`{id}`{on}: restore `{}` from its snapshot",
                    crate::diagnostic::display_path(&path)
                ));
                continue;
            }
            steps.push(match &step.rollback {
                Rollback::Nothing => format!("`{id}`{on}: nothing to undo (it has no rollback)"),
                Rollback::Irreversible => format!(
                    "`{id}`{on}: cannot be undone (rollback = false); an earlier step's rollback restores what it changed"
                ),
                Rollback::Restore => format!("`{id}`{on}: restore its file from the snapshot"),
                Rollback::Action { action, guard, .. } => {
                    self.set_try(&target, &id, 1, false);
                    let shown = self.context(&target)?.0.value(step.scope.as_ref()).map_err(render_failure)?;
                    let text =
                        describe_action(&plan::render_action(action, &shown, false, None).map_err(render_failure)?);
                    let mut lines = text.lines();
                    let first = lines.next().unwrap_or("");
                    let more = if lines.next().is_some() { " …" } else { "" };
                    let when = guard.as_ref().map_or_else(String::new, |g| format!(" (when `{}`)", g.source));
                    format!("`{id}`{on}: {first}{more}{when}")
                }
            });
        }
        let header = &self.record.header;
        Ok(UndoPlan {
            run_id: header.run_id.clone(),
            version: header.selection.as_ref().map(|s| format!("{} → {}", s.current, s.target)),
            started_at: header.started_at.clone(),
            steps,
            finally: self.playbook.finally.iter().map(|s| s.id.as_str().to_owned()).collect(),
        })
    }

    fn rollback_job(&self, step: &'a Step, target: &str, action: String) -> Job<'a> {
        Job {
            target: target.to_owned(),
            earlier: 0,
            interrupted: false,
            tries: 1,
            ready: Instant::now(),
            action,
            planned: None,
            rollback: Some(step),
        }
    }
}

/// What the engine does after a job finished.
enum After {
    Next,
    Retry,
    Stop,
}

/// The targets a group of `serial` steps rolls over, batch by batch, in inventory order.
fn batches(playbook: &Playbook, group: &[Step], batch: &Batch) -> Vec<Vec<String>> {
    let order = playbook.target_names();
    let hosts: Vec<String> = order.into_iter().filter(|name| group.iter().any(|s| s.targets.contains(name))).collect();
    let size = batch.serial.of(hosts.len()).max(1);
    hosts.chunks(size).map(<[String]>::to_vec).collect()
}

/// A snapshot's name: the step, and the host in a fleet.
fn snapshot_key(step: &str, target: &str) -> String {
    if target == LOCAL { step.to_owned() } else { format!("{step}@{target}") }
}

/// Executes one rendered action on a transport (in a worker thread).
fn execute(
    work: Work<'_>,
    transport: &dyn Transport,
    snapshots: &Snapshots,
    key: &str,
    target: &str,
    masker: &Masker,
    sender: &mpsc::Sender<Message>,
) -> Done {
    let started = Instant::now();
    let io = |what: &str, path: &str, error: &std::io::Error| {
        format!("cannot {what} `{path}`{}: {}", on_host(target), crate::document::io_reason(error))
    };
    match work {
        Work::Refused(error) => Done::failed(started, error),
        Work::Command(spec) => {
            let result = transport.run(&spec, &mut |event| match event {
                Watch::Spawned { pgid, start } => {
                    let _ = sender.send(Message::Spawned { target: target.to_owned(), pgid, start });
                }
                // The host's process group: journalled too, for people reading the journal.
                Watch::RemoteGroup { pgid } => {
                    let _ = sender.send(Message::Spawned { target: target.to_owned(), pgid, start: 0 });
                }
                Watch::Line(stream, line) => {
                    let _ = sender.send(Message::Line { target: target.to_owned(), stream, line: line.to_owned() });
                }
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
                    Done { output, error }
                }
                Err(error) if error.kind() == std::io::ErrorKind::NotConnected => {
                    Done::failed(started, masker.mask(&error.to_string()))
                }
                // A missing working directory is the reason, not the shell that never started.
                Err(_) if target == LOCAL && spec.cwd.as_ref().is_some_and(|cwd| !cwd.is_dir()) => Done::failed(
                    started,
                    masker.mask(&format!(
                        "its working directory `{}` does not exist",
                        spec.cwd.as_ref().map_or_else(String::new, |cwd| cwd.display().to_string())
                    )),
                ),
                Err(error) => Done::failed(
                    started,
                    masker.mask(&format!(
                        "`{}` could not start{}: {}",
                        spec.argv.first().map_or("", String::as_str),
                        on_host(target),
                        crate::document::io_reason(&error)
                    )),
                ),
            }
        }
        Work::Edit { path, edit, value, secret } => {
            let result = (|| -> Result<(), String> {
                let (content, _) = transport.read_file(&path).map_err(|e| io("read", &path, &e))?;
                let old = content.ok_or_else(|| format!("cannot read `{path}`{}: no such file", on_host(target)))?;
                let old = String::from_utf8(old).map_err(|_| format!("`{path}` is not UTF-8 text"))?;
                let new =
                    apply_edit(&edit.kind, &old, &value, edit.path.location.as_ref()).map_err(|e| e.to_string())??;
                snapshots.take(key, transport, &path, secret).map_err(|e| io("snapshot", &path, &e))?;
                if new != old {
                    transport.write_file(&path, new.as_bytes(), None).map_err(|e| io("write", &path, &e))?;
                }
                Ok(())
            })();
            match result {
                Ok(()) => Done::ok(started),
                Err(error) => Done::failed(started, masker.mask(&error)),
            }
        }
        Work::Template { dest, content, mode, secret } => {
            let result = (|| -> Result<(), String> {
                snapshots.take(key, transport, &dest, secret).map_err(|e| io("snapshot", &dest, &e))?;
                transport.write_file(&dest, content.as_bytes(), mode).map_err(|e| io("write", &dest, &e))
            })();
            match result {
                Ok(()) => Done::ok(started),
                Err(error) => Done::failed(started, masker.mask(&error)),
            }
        }
        Work::Restore => match snapshots.restore(key, transport) {
            Ok(_) => Done::ok(started),
            Err(error) => Done::failed(
                started,
                masker.mask(&format!(
                    "cannot restore the snapshot{}: {}",
                    on_host(target),
                    crate::document::io_reason(&error)
                )),
            ),
        },
    }
}

fn on_host(target: &str) -> String {
    if target == LOCAL { String::new() } else { format!(" on `{target}`") }
}

impl Engine<'_> {
    /// A `pause` step: asked here, on this thread, for its one target.
    fn pause_step(&mut self, step: &Step, phase: Phase, job: &Job<'_>) -> Result<Ended, Failure> {
        let id = step.id.as_str();
        let target = job.target.clone();
        let Some(PlannedAction::Pause { message }) = job.planned.as_ref().map(|p| &p.action) else {
            return Err(Failure::new(Exit::RollbackIncomplete, "internal error: a pause without a message"));
        };
        let message = message.clone();
        self.append(&Record::Started {
            step: id.to_owned(),
            phase,
            fingerprint: job.planned.as_ref().map(|p| p.fingerprint.clone()).unwrap_or_default(),
            action: job.action.clone(),
            target: target.clone(),
            at: journal::now(),
        })?;
        let host = self.host(&target);
        self.report(&Event::StepStarted { step: id, host, name: None, phase, action: &job.action, attempt: 1 });
        let started = Instant::now();
        let answer = self.pause(id, &message);
        if answer.is_err() && signals::pending().is_some() {
            return Ok(Ended::Interrupted(Some(id.to_owned())));
        }
        let done = match answer {
            Ok(()) => Done::ok(started),
            Err(why) => Done::failed(started, why),
        };
        let outcome = if done.error.is_none() { Outcome::Ok } else { Outcome::Failed };
        self.append(&finished(id, phase, outcome, done.error.clone(), &done.output, &self.masker, &target))?;
        self.set_result(
            phase,
            id,
            &target,
            &StepResult { stdout: String::new(), exit_code: done.output.exit_code, skipped: false },
        );
        self.report(&Event::StepFinished {
            step: id,
            host,
            phase,
            outcome,
            reason: done.error.as_deref(),
            exit_code: done.output.exit_code,
            duration_ms: done.output.elapsed.as_millis() as u64,
        });
        Ok(if outcome == Outcome::Ok || phase == Phase::Finally {
            Ended::Completed
        } else {
            Ended::Failed(id.to_owned())
        })
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
        // Reporters put away what they draw (a spinner would draw over the question).
        self.report(&Event::Waiting { step: id, message });
        match ask(&format!("\n{}\n\nContinue with `{id}`? [y/N] ", crate::ui::printable(message, &[]))) {
            Answer::Yes => Ok(()),
            Answer::No => Err(format!("`{id}` was not approved")),
            Answer::Interrupted => Err("interrupted".to_owned()),
        }
    }
}

/// A person's answer to a yes/no question.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Answer {
    Yes,
    No,
    /// A signal arrived while waiting.
    Interrupted,
}

/// Asks a question on the terminal (stderr) and waits for a line on stdin;
/// `y` or `yes` is yes. A signal (once `signals::install` ran) stops the wait.
pub(crate) fn ask(question: &str) -> Answer {
    say(question);
    let (sender, receiver) = mpsc::channel();
    std::thread::spawn(move || {
        let mut line = String::new();
        let _ = std::io::stdin().read_line(&mut line);
        let _ = sender.send(line);
    });
    loop {
        if signals::pending().is_some() {
            say("\n");
            return Answer::Interrupted;
        }
        match receiver.recv_timeout(Duration::from_millis(100)) {
            Ok(line) if matches!(line.trim().to_ascii_lowercase().as_str(), "y" | "yes") => return Answer::Yes,
            Ok(_) | Err(mpsc::RecvTimeoutError::Disconnected) => return Answer::No,
            Err(mpsc::RecvTimeoutError::Timeout) => {}
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
