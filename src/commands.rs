//! The subcommands: each reads its inputs, drives the pipeline (check, plan,
//! engine, reporters) and maps the outcome to an exit code from DESIGN.md.
//! What a command does lives here; how it looks lives in `ui` and `report`.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};

use crate::check::{Inputs, load};
use crate::cli::{self, Format};
use crate::diagnostic::{self, Diagnostic};
use crate::plan::{self, Plan, PlanError, PlanOptions};
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

/// Loads and plans, reporting problems; `Err` carries the exit code.
fn make_plan(ui: &Ui, path: &Path, inputs: &Inputs, options: &PlanOptions) -> Result<Plan, Exit> {
    // A plan runs commands (probes, checks): a signal stops them, not only us.
    process::signals::install();
    let playbook = load(path, inputs).map_err(|diagnostics| {
        ui.diagnostics(&diagnostics);
        Exit::Invalid
    })?;
    let targets = crate::transport::Targets::connect(playbook.inventory.as_ref()).map_err(|problems| {
        ui.error(&format!("{} host{} cannot be used", problems.len(), if problems.len() == 1 { "" } else { "s" }));
        for problem in &problems {
            ui.stderr(&format!("  - {}\n", crate::ui::printable(&problem.to_string(), &[])));
        }
        ui.help("nothing was changed");
        Exit::NotReady
    })?;
    plan::plan(&playbook, options, &targets).map_err(|error| match error {
        PlanError::Invalid(diagnostics) => {
            ui.diagnostics(&diagnostics);
            Exit::Invalid
        }
        PlanError::Version { message, usage } => {
            ui.error(&format!("cannot choose a version: {message}"));
            if usage {
                Exit::Invalid
            } else {
                ui.help("nothing was changed");
                Exit::NotReady
            }
        }
        PlanError::Interrupted(signal) => {
            ui.error(&format!("interrupted by {signal}"));
            ui.help("what the plan was running was stopped; nothing was changed");
            Exit::Interrupted
        }
    })
}

fn plan_options(selection: &cli::SelectionArgs, execute: bool) -> PlanOptions {
    PlanOptions { selection: selection.clone(), execute, execute_read_only: execute, now: clock(), secrets: None }
}

/// The instant windows are judged at: now, or `UPSHIFT_NOW` (RFC 3339) for tests and rehearsals.
fn clock() -> Option<jiff::Timestamp> {
    std::env::var("UPSHIFT_NOW").ok().and_then(|text| text.parse().ok())
}

pub(crate) fn plan(ui: &Ui, path: &Path, inputs: &Inputs, selection: &cli::SelectionArgs) -> Exit {
    let plan = match make_plan(ui, path, inputs, &plan_options(selection, true)) {
        Ok(plan) => plan,
        Err(exit) => return exit,
    };
    match ui.format {
        Format::Text => ui.stdout_text(&report::text(&plan, report::Style::new(ui.color_out))),
        Format::Json => ui.stdout(&report::json(&plan)),
        Format::Markdown => ui.stdout_text(&report::markdown(&plan)),
    }
    if plan.ready {
        Exit::Success
    } else {
        let failed = plan.checks.iter().filter(|c| c.status == "failed").count();
        let steps = plan.steps.iter().filter(|s| s.output.as_ref().is_some_and(|o| o.exit_code != Some(0))).count();
        let mut what = Vec::new();
        if failed > 0 {
            what.push(format!("{failed} readiness check{} failed", if failed == 1 { "" } else { "s" }));
        }
        if steps > 0 {
            what.push(format!("{steps} read-only step{} failed", if steps == 1 { "" } else { "s" }));
        }
        ui.error(&format!("not ready: {}", what.join(", ")));
        ui.help("nothing was changed; see the hints above");
        Exit::NotReady
    }
}

pub(crate) fn diff(ui: &Ui, args: &cli::DiffArgs) -> Exit {
    let base = inputs(&args.inputs);
    let options = plan_options(&cli::SelectionArgs::default(), false);
    let left = match make_plan(ui, &args.playbook, &base, &options) {
        Ok(plan) => plan,
        Err(exit) => return exit,
    };
    let (right, left_name, right_name) = if let Some(env) = &args.against_env {
        let other = Inputs { env: Some(env.clone()), env_file: None, ..base.clone() };
        match make_plan(ui, &args.playbook, &other, &options) {
            Ok(plan) => (plan, env_label(&base), format!("env {env}")),
            Err(exit) => return exit,
        }
    } else if let Some(rev) = &args.against {
        let checkout = match git_checkout(&args.playbook, rev) {
            Ok(checkout) => checkout,
            Err(message) => {
                ui.error(&message);
                return Exit::Invalid;
            }
        };
        match make_plan(ui, &checkout.playbook, &base, &options) {
            Ok(mut plan) => {
                plan.file = left.file.clone();
                (plan, rev.clone(), "working tree".to_owned())
            }
            Err(exit) => return exit,
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
            ui.stdout_text(&diff);
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
    let playbook = match load(&args.playbook, &inputs(&args.inputs)) {
        Ok(playbook) => playbook,
        Err(diagnostics) => {
            ui.diagnostics(&diagnostics);
            return Exit::Invalid;
        }
    };
    let options = engine::RunOptions {
        yes: args.approval.yes,
        approve: args.approval.approve.clone(),
        ignore_window: args.ignore_window,
        override_run: args.override_run.clone(),
        ..engine::RunOptions::default()
    };
    let mut reporter = reporter(ui, global);
    match engine::run(&playbook, &global.state_dir, &args.selection, &options, reporter.as_mut(), clock()) {
        Ok(exit) => exit,
        Err(failure) => failed(ui, failure),
    }
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
    match engine::resume(&mut playbook, record, &global.state_dir, &options, reporter.as_mut()) {
        Ok(exit) => exit,
        Err(failure) => failed(ui, failure),
    }
}

pub(crate) fn rollback(ui: &Ui, global: &cli::Global, args: &cli::RollbackArgs) -> Exit {
    let (mut playbook, record) = match unfinished(ui, global, args.playbook.as_deref(), args.env.as_deref()) {
        Ok(found) => found,
        Err(exit) => return exit,
    };
    let mut reporter = reporter(ui, global);
    let options = engine::RunOptions {
        kill_orphans: args.kill_orphans,
        override_run: args.override_run.clone(),
        retry_interrupted: args.retry_interrupted,
        skip_interrupted: args.skip_interrupted,
        ..engine::RunOptions::default()
    };
    match engine::rollback(&mut playbook, record, &global.state_dir, &options, reporter.as_mut()) {
        Ok(exit) => exit,
        Err(failure) => failed(ui, failure),
    }
}

pub(crate) fn status(ui: &Ui, global: &cli::Global, args: &cli::StatusArgs) -> Exit {
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
    match status::render(&global.state_dir, filter, ui.format == Format::Json) {
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
