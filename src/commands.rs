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

/// Loads and plans, reporting problems; `Err` carries the exit code.
fn make_plan(ui: &Ui, path: &Path, inputs: &Inputs, options: &PlanOptions) -> Result<Plan, Exit> {
    load_and_plan(ui, path, inputs, options).map(|(_, plan, _)| plan)
}

/// Loads and plans; the playbook and the connections to its targets too.
fn load_and_plan(
    ui: &Ui,
    path: &Path,
    inputs: &Inputs,
    options: &PlanOptions,
) -> Result<(Playbook, Plan, crate::transport::Targets), Exit> {
    // A plan runs commands (probes, checks): a signal stops them, not only us.
    process::signals::install();
    let playbook = load(path, inputs).map_err(|diagnostics| {
        ui.diagnostics(&diagnostics);
        Exit::Invalid
    })?;
    let (plan, targets) = plan_playbook(ui, &playbook, options)?;
    Ok((playbook, plan, targets))
}

/// Plans a loaded playbook on its targets, reporting problems.
fn plan_playbook(
    ui: &Ui,
    playbook: &Playbook,
    options: &PlanOptions,
) -> Result<(Plan, crate::transport::Targets), Exit> {
    let targets = crate::transport::Targets::connect(playbook.inventory.as_ref()).map_err(|problems| {
        ui.error(&format!("{} host{} cannot be used", problems.len(), if problems.len() == 1 { "" } else { "s" }));
        for problem in &problems {
            ui.stderr(&format!("  - {problem}\n"));
        }
        ui.help("nothing was changed");
        Exit::NotReady
    })?;
    let plan = plan::plan(playbook, options, &targets).map_err(|error| match error {
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
    })?;
    Ok((plan, targets))
}

fn plan_options(selection: &cli::SelectionArgs, execute: bool) -> PlanOptions {
    PlanOptions {
        selection: selection.clone(),
        execute,
        execute_read_only: execute,
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
    let (playbook, plan, targets) = match load_and_plan(ui, path, inputs, &plan_options(selection, true)) {
        Ok(found) => found,
        Err(exit) => return exit,
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
    let mut out = match ui.format {
        Format::Text => report::text(&plan, report::Style::new(ui.color_out)),
        Format::Json => report::json(&plan),
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
    ui.stdout(&out);
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
        match save {
            Some(save) => ui.help(&format!(
                "nothing was changed, and no plan was written to `{}`; see the hints above",
                crate::diagnostic::display_path(save.out)
            )),
            None => ui.help("nothing was changed; see the hints above"),
        }
        Exit::NotReady
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
    let (plan, targets) = match plan_playbook(ui, &playbook, &options) {
        Ok(plan) => plan,
        Err(exit) => return exit,
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
        ui.stdout(&format!("{}\n", serde_json::to_string_pretty(&report).unwrap_or_default()));
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
            ui.stderr(&format!("  - {difference}\n"));
        }
    }
    if ui.format != Format::Json {
        for note in &review.notes {
            ui.stderr(&format!("note: {note}\n"));
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
            ui.stdout(&diff);
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
        ui.stderr(&format!("  - {detail}\n"));
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
        return match engine::run(&playbook, &global.state_dir, &binding, &options, reporter.as_mut(), clock()) {
            Ok(exit) => exit,
            Err(failure) => failed(ui, failure),
        };
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
    match engine::run(&playbook, &global.state_dir, &binding, &options, reporter.as_mut(), clock()) {
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

/// `rollback`: undoes the unfinished run; with no unfinished run, or with
/// `--run ID` naming a finished one, undoes a finished, successful run.
pub(crate) fn rollback(ui: &Ui, global: &cli::Global, args: &cli::RollbackArgs) -> Exit {
    let options = engine::RunOptions {
        kill_orphans: args.kill_orphans,
        override_run: args.override_run.clone(),
        retry_interrupted: args.retry_interrupted,
        skip_interrupted: args.skip_interrupted,
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
    match result {
        Ok(exit) => exit,
        Err(failure) => failed(ui, failure),
    }
}

fn rollback_unfinished(ui: &Ui, global: &cli::Global, args: &cli::RollbackArgs, options: &engine::RunOptions) -> Exit {
    let (mut playbook, record) = match unfinished(ui, global, args.playbook.as_deref(), args.env.as_deref()) {
        Ok(found) => found,
        Err(exit) => return exit,
    };
    let mut reporter = reporter(ui, global);
    match engine::rollback(&mut playbook, record, &global.state_dir, options, reporter.as_mut()) {
        Ok(exit) => exit,
        Err(failure) => failed(ui, failure),
    }
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
        ui.stderr(&text);
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
        Ok(text) => {
            ui.stdout(&text);
            Exit::Success
        }
        Err(failure) => failed(ui, failure),
    }
}
