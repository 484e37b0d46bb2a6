//! The subcommands: each reads its inputs, drives the pipeline (check, plan,
//! engine, reporters) and maps the outcome to an exit code from DESIGN.md.
//! What a command does lives here; how it looks lives in `ui` and `report`.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};

use crate::check::{Inputs, load};
use crate::cli::{self, Format};
use crate::diagnostic::{self, Diagnostic};
use crate::journal::RunOutcome;
use crate::plan::{self, Plan, PlanError, PlanOptions};
use crate::saved::{self, SavedPlan};
use crate::ui::Ui;
use crate::{Exit, Playbook, check, edit, engine, events, process, report, runs, status};

pub(crate) fn inputs(args: &cli::InputArgs) -> Inputs {
    Inputs {
        env: args.env.clone(),
        env_file: args.env_file.clone(),
        var_files: args.var_file.clone(),
        vars: args.vars.clone(),
    }
}

pub(crate) fn validate(ui: &Ui, playbooks: &[PathBuf], inputs: &Inputs) -> Exit {
    let mut exit = Exit::Success;
    let mut reports = Vec::new();
    for path in playbooks {
        let display = diagnostic::display_path(path);
        match load(path, inputs) {
            Ok(playbook) => {
                if ui.format == Format::Json {
                    reports.push(serde_json::json!({ "file": display, "valid": true, "diagnostics": [] }));
                } else {
                    let checks = playbook.checks.len();
                    ui.status(
                        "Valid",
                        &format!(
                            "{display}: `{}`, {} step{}, {} finally, {checks} readiness check{}",
                            playbook.name,
                            playbook.steps.len(),
                            if playbook.steps.len() == 1 { "" } else { "s" },
                            playbook.finally.len(),
                            if checks == 1 { "" } else { "s" },
                        ),
                    );
                }
            }
            Err(diagnostics) => {
                exit = Exit::Invalid;
                if ui.format == Format::Json {
                    let list: Vec<_> = diagnostics.iter().map(Diagnostic::to_json).collect();
                    reports.push(serde_json::json!({ "file": display, "valid": false, "diagnostics": list }));
                } else {
                    ui.diagnostics(&diagnostics);
                }
            }
        }
    }
    if ui.format == Format::Json {
        let report = serde_json::json!({ "v": 1, "valid": exit == Exit::Success, "playbooks": reports });
        ui.stdout(&format!("{}\n", serde_json::to_string_pretty(&report).expect("json serializes")));
    }
    exit
}

/// Why no plan could be made: said on stderr, and as a JSON error object by `plan --format json`.
struct Refusal {
    exit: Exit,
    message: String,
    help: Option<String>,
    /// One line each, under the message (the hosts that cannot be used).
    details: Vec<String>,
    diagnostics: Vec<Diagnostic>,
}

impl Refusal {
    fn new(exit: Exit, message: String, help: Option<&str>) -> Refusal {
        Refusal { exit, message, help: help.map(str::to_owned), details: Vec::new(), diagnostics: Vec::new() }
    }

    fn invalid(diagnostics: Vec<Diagnostic>) -> Refusal {
        let count = diagnostics.len();
        let message = format!("the playbook is invalid: {count} problem{}", if count == 1 { "" } else { "s" });
        Refusal { exit: Exit::Invalid, message, help: None, details: Vec::new(), diagnostics }
    }

    /// Says it on stderr (diagnostics with their snippets), returns the exit code.
    fn report(&self, ui: &Ui) -> Exit {
        if self.diagnostics.is_empty() {
            ui.error(&self.message);
            for detail in &self.details {
                ui.stderr(&format!("  - {}\n", crate::ui::printable(detail, &[])));
            }
            if let Some(help) = &self.help {
                ui.help(help);
            }
        } else {
            ui.diagnostics(&self.diagnostics);
        }
        self.exit
    }

    /// The JSON error object (`"v": 1`) a machine reads instead of a plan.
    fn json(&self) -> serde_json::Value {
        serde_json::json!({
            "exit_code": self.exit.code(),
            "message": self.message,
            "help": self.help,
            "details": self.details,
            "diagnostics": self.diagnostics.iter().map(Diagnostic::to_json).collect::<Vec<_>>(),
        })
    }
}

/// Loads and plans; `Err` says why not.
fn make_plan(path: &Path, inputs: &Inputs, options: &PlanOptions) -> Result<Plan, Refusal> {
    load_and_plan(path, inputs, options).map(|(_, plan, _)| plan)
}

/// Loads and plans; the playbook and the connections to its targets too.
fn load_and_plan(
    path: &Path,
    inputs: &Inputs,
    options: &PlanOptions,
) -> Result<(Playbook, Plan, crate::transport::Targets), Refusal> {
    // A plan runs commands (probes, checks): a signal stops them, not only us.
    process::signals::install();
    let playbook = load(path, inputs).map_err(Refusal::invalid)?;
    let (plan, targets) = plan_playbook(&playbook, options)?;
    Ok((playbook, plan, targets))
}

/// Plans a loaded playbook on its targets.
fn plan_playbook(playbook: &Playbook, options: &PlanOptions) -> Result<(Plan, crate::transport::Targets), Refusal> {
    let targets = crate::transport::Targets::connect(playbook.inventory.as_ref()).map_err(|problems| {
        let count = problems.len();
        let message = format!("{count} host{} cannot be used", if count == 1 { "" } else { "s" });
        Refusal { details: problems, ..Refusal::new(Exit::NotReady, message, Some("nothing was changed")) }
    })?;
    let plan = plan::plan(playbook, options, &targets).map_err(|error| match error {
        PlanError::Invalid(diagnostics) => Refusal::invalid(diagnostics),
        PlanError::Version { message, usage } => {
            let exit = if usage { Exit::Invalid } else { Exit::NotReady };
            let help = (!usage).then_some("nothing was changed");
            Refusal::new(exit, format!("cannot choose a version: {message}"), help)
        }
        PlanError::Interrupted(signal) => Refusal::new(
            Exit::Interrupted,
            format!("interrupted by {signal}"),
            Some("what the plan was running was stopped; nothing was changed"),
        ),
    })?;
    Ok((plan, targets))
}

/// `execute`: run the readiness checks too (`plan`); `diff` compares what
/// would run, so it runs only the read-only steps that guards may read.
fn plan_options(selection: &cli::SelectionArgs, execute: bool) -> PlanOptions {
    PlanOptions {
        selection: selection.clone(),
        execute,
        execute_read_only: true,
        now: clock(),
        secrets: None,
        recorded: None,
    }
}

/// The instant windows are judged at: now, or `UPSHIFT_NOW` (RFC 3339) for tests and rehearsals.
fn clock() -> Option<jiff::Timestamp> {
    std::env::var("UPSHIFT_NOW").ok().and_then(|text| text.parse().ok())
}

/// `plan --out FILE`: where to save the plan, and for how long it holds.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Save<'a> {
    pub(crate) out: &'a Path,
    pub(crate) expires_in: Option<std::time::Duration>,
}

/// `plan`: with `--check FILE`, compares a saved plan with the world; else plans (and saves with `--out`).
pub(crate) fn plan_command(ui: &Ui, args: &cli::PlanArgs) -> Exit {
    if let Some(file) = &args.check {
        return plan_check(ui, file);
    }
    let Some(path) = &args.playbook else {
        ui.error("`plan` needs a PLAYBOOK, or `--check FILE`");
        return Exit::Invalid;
    };
    let save = args.out.as_deref().map(|out| Save { out, expires_in: args.expires_in });
    plan(ui, path, &inputs(&args.inputs), &args.selection, save)
}

pub(crate) fn plan(
    ui: &Ui,
    path: &Path,
    inputs: &Inputs,
    selection: &cli::SelectionArgs,
    save: Option<Save<'_>>,
) -> Exit {
    let json = ui.format == Format::Json;
    let (playbook, plan, targets) = match load_and_plan(path, inputs, &plan_options(selection, true)) {
        Ok(found) => found,
        Err(refusal) => {
            if json {
                ui.stdout(&pretty(&serde_json::json!({ "v": plan::PLAN_FORMAT, "error": refusal.json() })));
            }
            return refusal.report(ui);
        }
    };
    // A plan worth saving is one `run --plan` could run.
    let saved = save.filter(|_| plan.ready && !plan.up_to_date).map(|save| {
        let now = clock().unwrap_or_else(jiff::Timestamp::now);
        saved::save(&playbook, &plan, inputs, path, now, save.expires_in, &targets)
    });
    // Written first: the output never says "saved" of a file that is not there.
    if let (Some(saved), Some(save)) = (&saved, save)
        && let Err(message) = saved.write(save.out)
    {
        ui.error(&message);
        return Exit::Invalid;
    }
    let refusal = (!plan.ready).then(|| {
        let failed = plan.checks.iter().filter(|c| c.status == "failed").count();
        let steps = plan.steps.iter().filter(|s| s.output.as_ref().is_some_and(|o| o.exit_code != Some(0))).count();
        let mut what = Vec::new();
        if failed > 0 {
            what.push(format!("{failed} readiness check{} failed", if failed == 1 { "" } else { "s" }));
        }
        if steps > 0 {
            what.push(format!("{steps} read-only step{} failed", if steps == 1 { "" } else { "s" }));
        }
        let help = match save {
            Some(save) => format!(
                "nothing was changed, and no plan was written to `{}`; see the hints above",
                crate::diagnostic::display_path(save.out)
            ),
            None => "nothing was changed; see the hints above".to_owned(),
        };
        Refusal::new(Exit::NotReady, format!("not ready: {}", what.join(", ")), Some(&help))
    });
    let mut out = match ui.format {
        Format::Text => report::text(&plan, report::Style::new(ui.color_out)),
        // A plan that is not ready is still the product; its `error` says why `run` would stop.
        Format::Json => match &refusal {
            Some(refusal) => {
                let mut value = serde_json::to_value(&plan).expect("a plan serializes");
                value["error"] = refusal.json();
                pretty(&value)
            }
            None => report::json(&plan),
        },
        Format::Markdown => report::markdown(&plan),
    };
    if let (Some(saved), Some(save), Format::Markdown) = (&saved, save, ui.format) {
        out.push_str(&format!(
            "\n> Saved as plan `{}`, valid until {} ({}). It runs exactly as shown: `upshift run --plan {}`\n",
            saved.id,
            saved.expires_at,
            saved.expiry,
            crate::diagnostic::display_path(save.out)
        ));
    }
    match ui.format {
        Format::Json => ui.stdout(&out),
        Format::Text | Format::Markdown => ui.stdout_text(&out),
    }
    if let (Some(saved), Some(save)) = (&saved, save) {
        ui.status(
            "Saved",
            &format!(
                "plan `{}` to `{}`, valid until {} ({})",
                saved.id,
                crate::diagnostic::display_path(save.out),
                saved.expires_at,
                saved.expiry
            ),
        );
    } else if let Some(save) = save
        && plan.up_to_date
    {
        ui.warning(&format!(
            "already up to date: there is nothing to run, so no plan was written to `{}`",
            crate::diagnostic::display_path(save.out)
        ));
    }
    match refusal {
        Some(refusal) => refusal.report(ui),
        None => Exit::Success,
    }
}

/// Reads a saved plan and loads its playbook as the plan did.
fn saved_plan(ui: &Ui, file: &Path) -> Result<(SavedPlan, Playbook), Exit> {
    let saved = SavedPlan::read(file).map_err(|message| {
        ui.error(&message);
        Exit::Invalid
    })?;
    let playbook = load(&saved.playbook.path, &saved.inputs()).map_err(|diagnostics| {
        ui.diagnostics(&diagnostics);
        ui.help(&format!("the playbook of plan `{}` is `{}`", saved.id, saved.playbook.path.display()));
        Exit::Invalid
    })?;
    Ok((saved, playbook))
}

/// `plan --check FILE`: would a plan made now equal the saved one? The same
/// comparison `run --plan` makes, without the lock and running only what `plan` runs.
pub(crate) fn plan_check(ui: &Ui, file: &Path) -> Exit {
    let (saved, playbook) = match saved_plan(ui, file) {
        Ok(found) => found,
        Err(exit) => return exit,
    };
    let recorded = match saved.selection() {
        Ok(selection) => selection,
        Err(why) => {
            ui.error(&format!("the plan's version choice does not parse: {why}"));
            return Exit::Invalid;
        }
    };
    let options = PlanOptions { recorded, ..plan_options(&cli::SelectionArgs::default(), true) };
    process::signals::install();
    let (plan, targets) = match plan_playbook(&playbook, &options) {
        Ok(found) => found,
        Err(refusal) => return refusal.report(ui),
    };
    let review = saved::compare(&saved, &playbook, &plan, &targets, clock().unwrap_or_else(jiff::Timestamp::now));
    let current = review.differences.is_empty();
    if ui.format == Format::Json {
        let report = serde_json::json!({
            "v": 1,
            "plan": saved.id,
            "file": crate::diagnostic::display_path(file),
            "current": current,
            "differences": review.differences,
            "notes": review.notes,
        });
        ui.stdout(&pretty(&report));
    } else if current {
        ui.status(
            "Current",
            &format!(
                "plan `{}` still matches the playbook and the machine (valid until {})",
                saved.id, saved.expires_at
            ),
        );
    } else {
        let count = review.differences.len();
        ui.error(&format!(
            "plan `{}` no longer matches: {count} difference{}",
            saved.id,
            if count == 1 { "" } else { "s" }
        ));
        for difference in &review.differences {
            ui.stderr(&format!("  - {}\n", crate::ui::printable(difference, &[])));
        }
    }
    if ui.format != Format::Json {
        for note in &review.notes {
            ui.stderr(&format!("note: {}\n", crate::ui::printable(note, &[])));
        }
    }
    if current {
        Exit::Success
    } else {
        if ui.format != Format::Json {
            ui.help("make a new plan with `upshift plan PLAYBOOK --out FILE` and review it");
        }
        Exit::NotReady
    }
}

fn pretty(value: &serde_json::Value) -> String {
    format!("{}\n", serde_json::to_string_pretty(value).expect("json serializes"))
}

pub(crate) fn diff(ui: &Ui, args: &cli::DiffArgs) -> Exit {
    let base = inputs(&args.inputs);
    let options = plan_options(&cli::SelectionArgs::default(), false);
    let left = match make_plan(&args.playbook, &base, &options) {
        Ok(plan) => plan,
        Err(refusal) => return refusal.report(ui),
    };
    let (right, left_name, right_name) = if let Some(env) = &args.against_env {
        let other = Inputs { env: Some(env.clone()), env_file: None, ..base.clone() };
        match make_plan(&args.playbook, &other, &options) {
            Ok(plan) => (plan, env_label(&base), format!("env {env}")),
            Err(refusal) => return refusal.report(ui),
        }
    } else if let Some(rev) = &args.against {
        let checkout = match git_checkout(&args.playbook, rev) {
            Ok(checkout) => checkout,
            Err(message) => {
                ui.error(&message);
                return Exit::Invalid;
            }
        };
        match make_plan(&checkout.playbook, &base, &options) {
            Ok(mut plan) => {
                plan.file = left.file.clone();
                (plan, rev.clone(), "working tree".to_owned())
            }
            Err(refusal) => return refusal.report(ui),
        }
    } else {
        ui.error("`diff` needs `--against-env NAME` or `--against GIT_REV`");
        return Exit::Invalid;
    };
    // `--against REV` shows what changed since REV: the revision is the old side.
    let (old, new, old_name, new_name) = if args.against.is_some() {
        (&right, &left, left_name, right_name)
    } else {
        (&left, &right, left_name, right_name)
    };
    let style = report::Style::new(false);
    let old_text = report::text(old, style);
    let new_text = report::text(new, style);
    match edit::diff(&old_text, &new_text, "plan") {
        None => ui.status("Identical", &format!("the plans of {old_name} and {new_name} are the same")),
        Some(_) => {
            let diff = similar::TextDiff::from_lines(&old_text, &new_text)
                .unified_diff()
                .context_radius(3)
                .header(&format!("plan ({old_name})"), &format!("plan ({new_name})"))
                .to_string();
            ui.stdout_text(&report::color_diff(&diff, "", report::Style::new(ui.color_out)));
        }
    }
    Exit::Success
}

fn env_label(inputs: &Inputs) -> String {
    match (&inputs.env, &inputs.env_file) {
        (Some(env), _) => format!("env {env}"),
        (None, Some(file)) => format!("env file {}", file.display()),
        (None, None) => "no env".to_owned(),
    }
}

/// The playbook's directory as committed at a revision, in a temporary directory.
struct Checkout {
    _dir: tempfile::TempDir,
    playbook: PathBuf,
}

fn git_checkout(playbook: &Path, rev: &str) -> Result<Checkout, String> {
    let playbook = check::absolute(playbook);
    let dir = playbook.parent().ok_or("the playbook has no directory")?;
    let git = |args: &[&str]| {
        duct::cmd("git", args)
            .dir(dir)
            .stderr_capture()
            .stdout_capture()
            .unchecked()
            .run()
            .map_err(|error| format!("cannot run git: {error}"))
            .and_then(|output| {
                if output.status.success() {
                    Ok(output.stdout)
                } else {
                    Err(String::from_utf8_lossy(&output.stderr).trim().to_owned())
                }
            })
    };
    let top = git(&["rev-parse", "--show-toplevel"])
        .map_err(|why| format!("`{}` is not in a git repository: {why}", dir.display()))?;
    let top = PathBuf::from(String::from_utf8_lossy(&top).trim());
    let top = top.canonicalize().unwrap_or(top);
    let dir_canonical = dir.canonicalize().map_err(|error| error.to_string())?;
    let relative_dir = dir_canonical.strip_prefix(&top).map_err(|_| "the playbook is outside its repository")?;
    let relative_playbook = relative_dir.join(playbook.file_name().ok_or("the playbook has no file name")?);
    let pathspec = if relative_dir.as_os_str().is_empty() { ".".into() } else { relative_dir.to_string_lossy() };
    let tree = git(&["-C", &top.to_string_lossy(), "ls-tree", "-r", "--name-only", rev, "--", &pathspec])
        .map_err(|why| format!("cannot read revision `{rev}`: {why}"))?;
    let temp = tempfile::tempdir().map_err(|error| format!("cannot create a temporary directory: {error}"))?;
    for file in String::from_utf8_lossy(&tree).lines() {
        let content = git(&["-C", &top.to_string_lossy(), "show", &format!("{rev}:{file}")])
            .map_err(|why| format!("cannot read `{file}` at `{rev}`: {why}"))?;
        let target = temp.path().join(file);
        if let Some(parent) = target.parent() {
            std::fs::create_dir_all(parent).map_err(|error| error.to_string())?;
        }
        std::fs::write(&target, content).map_err(|error| error.to_string())?;
    }
    let checked_out = temp.path().join(&relative_playbook);
    if !checked_out.is_file() {
        return Err(format!("`{}` does not exist at revision `{rev}`", relative_playbook.display()));
    }
    Ok(Checkout { _dir: temp, playbook: checked_out })
}

fn reporter(ui: &Ui, global: &cli::Global) -> Box<dyn events::Reporter> {
    match global.format {
        Format::Json => Box::new(events::JsonReporter),
        _ => Box::new(events::TextReporter::new(
            global.quiet,
            global.verbose > 0,
            ui.color_err,
            std::io::stderr().is_terminal(),
        )),
    }
}

/// Prints an engine failure and returns its exit code.
fn failed(ui: &Ui, failure: engine::Failure) -> Exit {
    ui.error(&failure.message);
    for detail in &failure.details {
        ui.stderr(&format!("  - {}\n", crate::ui::printable(detail, &[])));
    }
    if let Some(help) = &failure.help {
        ui.help(help);
    }
    failure.exit
}

pub(crate) fn run(ui: &Ui, global: &cli::Global, args: &cli::RunArgs) -> Exit {
    let options = engine::RunOptions {
        yes: args.approval.yes,
        approve: args.approval.approve.clone(),
        ignore_window: args.ignore_window,
        override_run: args.override_run.clone(),
        ..engine::RunOptions::default()
    };
    if let Some(file) = &args.plan {
        let (saved, playbook) = match saved_plan(ui, file) {
            Ok(found) => found,
            Err(exit) => return exit,
        };
        let mut reporter = reporter(ui, global);
        let binding = engine::Binding::Saved { plan: &saved, file };
        let result = engine::run(&playbook, &global.state_dir, &binding, &options, reporter.as_mut(), clock());
        drop(reporter);
        return result.unwrap_or_else(|failure| failed(ui, failure));
    }
    let Some(path) = &args.playbook else {
        ui.error("`run` needs a PLAYBOOK, or `--plan FILE`");
        return Exit::Invalid;
    };
    let playbook = match load(path, &inputs(&args.inputs)) {
        Ok(playbook) => playbook,
        Err(diagnostics) => {
            ui.diagnostics(&diagnostics);
            return Exit::Invalid;
        }
    };
    let mut reporter = reporter(ui, global);
    let binding = engine::Binding::Fresh(&args.selection);
    let result = engine::run(&playbook, &global.state_dir, &binding, &options, reporter.as_mut(), clock());
    // The reporter's spinner goes before anything else is said.
    drop(reporter);
    result.unwrap_or_else(|failure| failed(ui, failure))
}

/// The unfinished run and the playbook it ran, loaded again.
fn unfinished(
    ui: &Ui,
    global: &cli::Global,
    playbook: Option<&Path>,
    env: Option<&str>,
) -> Result<(Playbook, runs::RunRecord), Exit> {
    let named = match playbook {
        Some(path) => {
            let playbook = load(path, &Inputs { env: env.map(str::to_owned), ..Inputs::default() }).map_err(|d| {
                ui.diagnostics(&d);
                Exit::Invalid
            })?;
            Some(playbook)
        }
        None => None,
    };
    let (record, unreadable) =
        runs::find_unfinished(&global.state_dir, named.as_ref().map(|p| (p.name.as_str(), p.environment.as_deref())))
            .map_err(|f| failed(ui, f))?;
    for other in &unreadable {
        ui.warning(&format!("ignored `{}`: {}", other.path.display(), other.reason));
    }
    let playbook = match named {
        Some(playbook) => playbook,
        None => load(&record.header.file, &record.inputs()).map_err(|d| {
            ui.diagnostics(&d);
            Exit::Invalid
        })?,
    };
    Ok((playbook, record))
}

pub(crate) fn resume(ui: &Ui, global: &cli::Global, args: &cli::ResumeArgs) -> Exit {
    let (mut playbook, record) = match unfinished(ui, global, args.playbook.as_deref(), args.env.as_deref()) {
        Ok(found) => found,
        Err(exit) => return exit,
    };
    let options = engine::RunOptions {
        yes: args.approval.yes,
        approve: args.approval.approve.clone(),
        accept_changes: args.accept_changes,
        retry_interrupted: args.retry_interrupted,
        skip_interrupted: args.skip_interrupted,
        kill_orphans: args.kill_orphans,
        override_run: args.override_run.clone(),
        ..engine::RunOptions::default()
    };
    let mut reporter = reporter(ui, global);
    let result = engine::resume(&mut playbook, record, &global.state_dir, &options, reporter.as_mut());
    drop(reporter);
    result.unwrap_or_else(|failure| failed(ui, failure))
}

/// `rollback`: undoes the unfinished run; with no unfinished run, or with
/// `--run ID` naming a finished one, undoes a finished, successful run.
pub(crate) fn rollback(ui: &Ui, global: &cli::Global, args: &cli::RollbackArgs) -> Exit {
    let options = engine::RunOptions {
        kill_orphans: args.kill_orphans,
        override_run: args.override_run.clone(),
        retry_interrupted: args.retry_interrupted,
        skip_interrupted: args.skip_interrupted,
        rollback_requested: true,
        ..engine::RunOptions::default()
    };
    let record = if let Some(id) = &args.run_id {
        match runs::find_run(&global.state_dir, id) {
            Ok(record) => record,
            Err(failure) => return failed(ui, failure),
        }
    } else {
        let named = match &args.playbook {
            Some(path) => match load(path, &Inputs { env: args.env.clone(), ..Inputs::default() }) {
                Ok(playbook) => Some(playbook),
                Err(diagnostics) => {
                    ui.diagnostics(&diagnostics);
                    return Exit::Invalid;
                }
            },
            None => None,
        };
        let filter = named.as_ref().map(|p| (p.name.as_str(), p.environment.as_deref()));
        let (unfinished, bad) = runs::unfinished_runs(&global.state_dir, filter);
        if !unfinished.is_empty() || bad.iter().any(|b| b.run_id.is_some()) {
            return rollback_unfinished(ui, global, args, &options);
        }
        // Nothing unfinished: the latest run, if it succeeded, is undone.
        match runs::latest_run(&global.state_dir, filter) {
            None => {
                ui.error("there is no unfinished run to continue, and no finished run to undo");
                ui.help("`upshift status` lists the runs");
                return Exit::Invalid;
            }
            Some(Err(failure)) => return failed(ui, failure),
            Some(Ok(record))
                if record.undo
                    || !matches!(record.end, Some((RunOutcome::Succeeded | RunOutcome::FinallyFailed, _))) =>
            {
                ui.error(&format!(
                    "there is no unfinished run, and the latest run `{}` {}: nothing to undo",
                    record.header.run_id,
                    if record.undo { "was undone already".to_owned() } else { format!("ended {}", record.describe()) }
                ));
                ui.help(
                    "`upshift rollback --run ID` undoes an earlier successful run; `upshift status` lists the runs",
                );
                return Exit::Invalid;
            }
            Some(Ok(record)) => record,
        }
    };
    let mut playbook = match load(&record.header.file, &record.inputs()) {
        Ok(playbook) => playbook,
        Err(diagnostics) => {
            ui.diagnostics(&diagnostics);
            return Exit::Invalid;
        }
    };
    let mut reporter = reporter(ui, global);
    let result = if record.unfinished() {
        engine::rollback(&mut playbook, record, &global.state_dir, &options, reporter.as_mut())
    } else {
        let mut confirm = |plan: &engine::UndoPlan| confirm_undo(ui, plan, args.yes);
        engine::undo(&mut playbook, record, &global.state_dir, &options, reporter.as_mut(), &mut confirm)
    };
    drop(reporter);
    result.unwrap_or_else(|failure| failed(ui, failure))
}

fn rollback_unfinished(ui: &Ui, global: &cli::Global, args: &cli::RollbackArgs, options: &engine::RunOptions) -> Exit {
    let (mut playbook, record) = match unfinished(ui, global, args.playbook.as_deref(), args.env.as_deref()) {
        Ok(found) => found,
        Err(exit) => return exit,
    };
    let mut reporter = reporter(ui, global);
    let result = engine::rollback(&mut playbook, record, &global.state_dir, options, reporter.as_mut());
    drop(reporter);
    result.unwrap_or_else(|failure| failed(ui, failure))
}

/// Shows what undoing a finished run will do, then takes `--yes`, or asks on a terminal.
fn confirm_undo(ui: &Ui, plan: &engine::UndoPlan, yes: bool) -> Result<(), engine::Failure> {
    let version = plan.version.as_deref().map_or_else(String::new, |v| format!(", {v}"));
    if !(yes && ui.quiet) {
        let mut text = format!(
            "Undoing run `{}` (started {}{version}) undoes its completed steps, newest first:\n",
            plan.run_id, plan.started_at
        );
        for line in &plan.steps {
            text.push_str(&format!("  - {line}\n"));
        }
        if !plan.finally.is_empty() {
            let names: Vec<String> = plan.finally.iter().map(|f| format!("`{f}`")).collect();
            text.push_str(&format!("then the `finally` steps run again: {}\n", names.join(", ")));
        }
        ui.stderr(&crate::ui::printable(&text, &[]));
    }
    if yes {
        return Ok(());
    }
    if !std::io::stdin().is_terminal() {
        return Err(engine::Failure::new(
            Exit::Invalid,
            format!(
                "undoing the finished run `{}` needs a person's yes, and there is no terminal to ask on",
                plan.run_id
            ),
        )
        .help("nothing was changed; read what it will undo above, then pass `--yes`"));
    }
    match engine::ask(&format!("Undo run `{}`? [y/N] ", plan.run_id)) {
        engine::Answer::Yes => Ok(()),
        engine::Answer::No => {
            Err(engine::Failure::new(Exit::Invalid, format!("run `{}` was not undone: not confirmed", plan.run_id))
                .help("nothing was changed"))
        }
        engine::Answer::Interrupted => {
            Err(engine::interrupted_before(process::signals::pending().map_or("SIGINT", process::signals::name)))
        }
    }
}

pub(crate) fn status(ui: &Ui, global: &cli::Global, args: &cli::StatusArgs) -> Exit {
    // A playbook is a file (or a path to one); anything else names a run.
    let (playbook, run) = match &args.target {
        Some(target) if looks_like_a_path(target) => (Some(Path::new(target)), None),
        Some(target) => (None, Some(target.as_str())),
        None => (None, None),
    };
    let named = match playbook {
        Some(path) => match load(path, &Inputs { env: args.env.clone(), ..Inputs::default() }) {
            Ok(playbook) => Some(playbook),
            Err(diagnostics) => {
                ui.diagnostics(&diagnostics);
                return Exit::Invalid;
            }
        },
        None => None,
    };
    let query = status::Query {
        playbook: named.as_ref().map(|p| (p.name.as_str(), p.environment.as_deref())),
        environment: args.env.as_deref(),
        run,
        last: args.last,
        log: args.log,
    };
    match status::render(&global.state_dir, &query, ui.format == Format::Json) {
        Ok(text) if ui.format == Format::Json => {
            ui.stdout(&text);
            Exit::Success
        }
        Ok(text) => {
            ui.stdout_text(&text);
            Exit::Success
        }
        Err(failure) => failed(ui, failure),
    }
}

/// Does a `status` argument name a playbook rather than a run?
fn looks_like_a_path(target: &str) -> bool {
    target.contains('/') || target.ends_with(".toml") || Path::new(target).is_file()
}

/// `init`: a commented starter playbook, its staging environment and the JSON
/// Schemas its `#:schema` lines point at. Refuses to overwrite anything.
pub(crate) fn init(ui: &Ui, args: &cli::InitArgs) -> Exit {
    let dir = check::absolute(&args.dir);
    let name = args.name.clone().unwrap_or_else(|| {
        let base = dir.file_name().map(|n| n.to_string_lossy().to_lowercase()).unwrap_or_default();
        let slug: String = base.chars().map(|c| if c.is_ascii_alphanumeric() { c } else { '-' }).collect();
        let slug = slug.trim_matches('-').to_owned();
        if slug.is_empty() { "app".to_owned() } else { slug }
    });
    if name.trim().is_empty() || name.contains(['"', '\\', '\n', '\0']) {
        ui.error(&format!("`{}` cannot be a playbook's name here", name.escape_debug()));
        ui.help("`--name` takes a name without quotes, backslashes or line breaks");
        return Exit::Invalid;
    }
    let files = [
        ("upgrade.toml", include_str!("starter.toml").replace("@NAME@", &name)),
        ("environments/staging.toml", include_str!("starter-env.toml").replace("@NAME@", &name)),
        ("schema/playbook.schema.json", crate::playbook_schema()),
        ("schema/environment.schema.json", crate::environment_schema()),
    ];
    let existing: Vec<String> = files
        .iter()
        .map(|(file, _)| dir.join(file))
        .filter(|path| std::fs::symlink_metadata(path).is_ok())
        .map(|path| diagnostic::display_path(&path))
        .collect();
    if !existing.is_empty() {
        ui.error(&format!(
            "`init` would overwrite {}",
            existing.iter().map(|p| format!("`{p}`")).collect::<Vec<_>>().join(", ")
        ));
        ui.help("nothing was written; run it in another directory, or move those files aside");
        return Exit::Invalid;
    }
    for (file, content) in &files {
        let path = dir.join(file);
        let written = path
            .parent()
            .map_or(Ok(()), std::fs::create_dir_all)
            .and_then(|()| std::fs::OpenOptions::new().write(true).create_new(true).open(&path))
            .and_then(|mut out| std::io::Write::write_all(&mut out, content.as_bytes()));
        if let Err(error) = written {
            ui.error(&format!(
                "cannot write `{}`: {}",
                diagnostic::display_path(&path),
                crate::document::io_reason(&error)
            ));
            return Exit::Invalid;
        }
        ui.status("Created", &diagnostic::display_path(&path));
    }
    let playbook = diagnostic::display_path(&dir.join("upgrade.toml"));
    ui.status("Next", &format!("`upshift plan {playbook} --env staging` shows what it would do"));
    Exit::Success
}

/// `completions SHELL`: the completion script clap_complete writes.
pub(crate) fn completions(ui: &Ui, shell: clap_complete::Shell) -> Exit {
    use clap::CommandFactory;
    let mut out = Vec::new();
    clap_complete::generate(shell, &mut cli::Cli::command(), "upshift", &mut out);
    ui.stdout(&String::from_utf8_lossy(&out));
    Exit::Success
}

/// `man`: the manual page on stdout, or one page per command in a directory.
pub(crate) fn man(ui: &Ui, out_dir: Option<&Path>) -> Exit {
    use clap::CommandFactory;
    let command = cli::Cli::command();
    match out_dir {
        None => {
            let mut out = Vec::new();
            match clap_mangen::Man::new(command).render(&mut out) {
                Ok(()) => {
                    ui.stdout(&String::from_utf8_lossy(&out));
                    Exit::Success
                }
                Err(error) => {
                    ui.error(&format!("cannot render the manual page: {error}"));
                    Exit::Invalid
                }
            }
        }
        Some(dir) => {
            let written = std::fs::create_dir_all(dir).and_then(|()| clap_mangen::generate_to(command, dir));
            match written {
                Ok(()) => {
                    ui.status("Written", &format!("manual pages into `{}`", diagnostic::display_path(dir)));
                    Exit::Success
                }
                Err(error) => {
                    ui.error(&format!(
                        "cannot write manual pages into `{}`: {}",
                        diagnostic::display_path(dir),
                        crate::document::io_reason(&error)
                    ));
                    Exit::Invalid
                }
            }
        }
    }
}
