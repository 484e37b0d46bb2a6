//! Printing a `Plan`: text for people (deterministic, color only when asked),
//! JSON for machines (the versioned shape of `Plan`), Markdown for a
//! pull-request comment. Reporters print; they never decide.

use std::fmt::Write as _;

use crate::plan::{self, Plan, PlannedAction, PlannedRollback, PlannedStep, Status};

/// Styles for text output; all empty when color is off.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Style {
    bold: &'static str,
    green: &'static str,
    red: &'static str,
    yellow: &'static str,
    dim: &'static str,
    cyan: &'static str,
    reset: &'static str,
}

impl Style {
    pub(crate) fn new(color: bool) -> Style {
        if color {
            Style {
                bold: "\x1b[1m",
                green: "\x1b[32m",
                red: "\x1b[31m",
                yellow: "\x1b[33m",
                dim: "\x1b[2m",
                cyan: "\x1b[36m",
                reset: "\x1b[0m",
            }
        } else {
            Style { bold: "", green: "", red: "", yellow: "", dim: "", cyan: "", reset: "" }
        }
    }
}

/// Colors a unified diff's lines (headers bold, hunks cyan, removals red,
/// additions green); `prefix` goes before each line, uncolored.
pub(crate) fn color_diff(diff: &str, prefix: &str, style: Style) -> String {
    let mut out = String::new();
    for line in diff.lines() {
        let color = if line.starts_with("+++") || line.starts_with("---") {
            style.bold
        } else if line.starts_with("@@") {
            style.cyan
        } else if line.starts_with('+') {
            style.green
        } else if line.starts_with('-') {
            style.red
        } else {
            ""
        };
        let reset = if color.is_empty() { "" } else { style.reset };
        let _ = writeln!(out, "{prefix}{color}{line}{reset}");
    }
    out
}

pub(crate) fn json(plan: &Plan) -> String {
    let mut out = serde_json::to_string_pretty(plan).expect("a plan serializes");
    out.push('\n');
    out
}

pub(crate) fn text(plan: &Plan, style: Style) -> String {
    let Style { bold, green, red, yellow, dim, reset, .. } = style;
    let mut out = String::new();
    let env = plan.environment.as_deref().map_or_else(String::new, |e| format!(" (environment `{e}`)"));
    let _ = writeln!(out, "{bold}Plan for `{}`{env}{reset}", plan.playbook);
    if let Some(description) = &plan.description {
        let _ = writeln!(out, "  {description}");
    }
    let _ = writeln!(out, "  playbook     {}", plan.file);
    let _ = writeln!(out, "  target       {}", plan.target);
    for host in &plan.hosts {
        let roles = if host.roles.is_empty() { String::new() } else { format!(" ({})", host.roles.join(", ")) };
        let _ = writeln!(out, "               {} {}{roles}", host.name, host.address);
    }
    let _ = writeln!(out, "  fingerprint  {}", plan.fingerprint);

    if let Some(version) = &plan.version {
        let _ = writeln!(out, "\n{bold}Version{reset} ({})", scheme(version.scheme));
        let _ = writeln!(out, "  current      {}", version.current);
        if let Some(requirement) = &version.target_requirement {
            let _ = writeln!(out, "  target       {requirement}");
        }
        let more = version.candidates_total.saturating_sub(version.candidates.len());
        let more = if more > 0 { format!(" (+{more} older)") } else { String::new() };
        let candidates = if version.candidates.is_empty() { "none".to_owned() } else { version.candidates.join(", ") };
        let _ = writeln!(out, "  candidates   {candidates}{more}");
        if version.up_to_date {
            let _ = writeln!(out, "  selected     {green}{} (up to date){reset}: {}", version.selected, version.reason);
        } else {
            let _ = writeln!(out, "  selected     {green}{}{reset}: {}", version.selected, version.reason);
        }
        let _ = writeln!(out, "  change       {}", version.change);
        for passed in &version.passed_over {
            let _ = writeln!(out, "  passed over  {passed}");
        }
        if let Some(row) = &version.matrix_row {
            let _ = writeln!(out, "  matrix row   {row}");
        }
        for (key, value) in &version.requirements {
            let _ = writeln!(out, "  requires     {key} {value}");
        }
    }

    if let Some(window) = &plan.window {
        let _ = writeln!(out, "\n{bold}Window{reset} ({})", window.timezone);
        match (&window.rule, &window.next_open) {
            (Some(rule), _) => {
                let _ = writeln!(out, "  {green}open{reset} now ({rule})");
            }
            (None, Some(next)) => {
                let _ =
                    writeln!(out, "  {yellow}closed{reset}: the next window opens {next}; `run` refuses outside it");
            }
            (None, None) => {
                let _ = writeln!(out, "  {yellow}closed{reset}: no window opens in the next week");
            }
        }
    }

    if !plan.secrets.is_empty() {
        let _ = writeln!(out, "\n{bold}Secrets{reset} (values are never shown)");
        let width = plan.secrets.iter().map(|s| s.name.len()).max().unwrap_or(0);
        for secret in &plan.secrets {
            let presence = match secret.present {
                Some(true) => format!("{green}present{reset}"),
                Some(false) if secret.empty && secret.required => format!("{red}empty{reset}"),
                Some(false) if secret.empty => format!("{dim}empty (optional){reset}"),
                Some(false) if secret.required => format!("{red}missing{reset}"),
                Some(false) => format!("{dim}missing (optional){reset}"),
                None => format!("{dim}resolved by `run`{reset}"),
            };
            let _ = writeln!(out, "  {:width$}  {}  {presence}", secret.name, secret.source);
        }
    }

    if !plan.checks.is_empty() {
        let _ = writeln!(out, "\n{bold}Readiness{reset}");
        for check in &plan.checks {
            let mark = match check.status {
                "passed" => format!("{green}ok    {reset}"),
                "failed" => format!("{red}FAILED{reset}"),
                "skipped" => format!("{dim}skip  {reset}"),
                _ => format!("{dim}-     {reset}"),
            };
            let observed = if check.observed.is_empty() { String::new() } else { format!(": {}", check.observed) };
            let host = check.host.as_deref().map_or_else(String::new, |h| format!(" (on `{h}`)"));
            let _ = writeln!(out, "  {mark} {}{host}{observed}", check.name);
            if let Some(hint) = &check.hint {
                let _ = writeln!(out, "         {yellow}hint:{reset} {hint}");
            }
        }
    }

    if plan.up_to_date {
        let _ = writeln!(out, "\n{bold}Steps{reset} (nothing will run: already up to date)");
    } else {
        let _ = writeln!(out, "\n{bold}Steps{reset}");
    }
    steps(&mut out, &plan.steps, style);
    if !plan.finally.is_empty() {
        let _ = writeln!(out, "\n{bold}Finally{reset} (after success, and after a rollback)");
        steps(&mut out, &plan.finally, style);
    }

    let _ = writeln!(out, "\n{}", summary(plan));
    if let Some(point) = plan.steps.iter().find(|s| s.point_of_no_return && s.status != Status::Skipped) {
        let _ = writeln!(
            out,
            "{yellow}point of no return{reset}: `{}` cannot be undone; after it, only earlier steps' rollbacks put back what changed",
            point.id
        );
    }
    if plan.up_to_date {
        let _ = writeln!(out, "{green}up to date{reset}: `run` would do nothing");
    }
    if !plan.ready {
        let _ = writeln!(out, "{red}not ready{reset}: `run` would stop before changing anything");
    }
    out
}

/// How many steps (and `finally` steps) will run, are skipped, or wait for
/// `run`, as their own lines say; then the readiness checks.
fn summary(plan: &Plan) -> String {
    let all = || plan.steps.iter().chain(&plan.finally);
    let count = |status: Status| all().filter(|s| s.status == status).count();
    let later = all().filter(|s| s.status == Status::WillRun && plan::change_known_at_run_time(&s.action)).count();
    let checks = |status: &str| plan.checks.iter().filter(|c| c.status == status).count();
    let plural = |n: usize, word: &str| format!("{n} {word}{}", if n == 1 { "" } else { "s" });
    let mut text = plural(plan.steps.len(), "step");
    if !plan.finally.is_empty() {
        text.push_str(&format!(" and {} finally", plan.finally.len()));
    }
    text.push_str(&format!(
        ": {} will run, {} skipped, {} decided at run time",
        count(Status::WillRun),
        count(Status::Skipped),
        count(Status::DecidedAtRunTime)
    ));
    if later > 0 {
        text.push_str(&format!(", {} known only at run time", plural(later, "file change")));
    }
    text.push_str(&format!("; readiness: {} passed, {} failed", checks("passed"), checks("failed")));
    for (status, words) in [("skipped", "skipped"), ("not-run", "not run")] {
        if checks(status) > 0 {
            text.push_str(&format!(", {} {words}", checks(status)));
        }
    }
    text
}

fn scheme(scheme: crate::version::Scheme) -> &'static str {
    scheme.name()
}

fn steps(out: &mut String, steps: &[PlannedStep], style: Style) {
    let Style { dim, reset, .. } = style;
    for (index, step) in steps.iter().enumerate() {
        let name = step.name.as_deref().map_or_else(String::new, |n| format!("  {n}"));
        let _ = writeln!(out, "  {:>2}. {}{name}", index + 1, step.id);
        // In a fleet: where it runs, each group of hosts with its own rendering.
        let mut notes = Vec::new();
        if step.once {
            notes.push("once".to_owned());
        }
        if let Some(rolling) = &step.rolling {
            notes.push(format!("rolling: {rolling}"));
        }
        let notes = if notes.is_empty() { String::new() } else { format!(" {dim}({}){reset}", notes.join(", ")) };
        if !step.hosts.is_empty() {
            let _ = writeln!(out, "      on        {}{notes}", step.hosts.join(", "));
        }
        rendering(out, step, style);
        for group in &step.per_host {
            let _ = writeln!(out, "      on        {}", group.hosts.join(", "));
            rendering(out, group, style);
        }
    }
}

/// One rendering of a step: its status, action, settings and rollback.
fn rendering(out: &mut String, step: &PlannedStep, style: Style) {
    let Style { green, yellow, dim, reset, .. } = style;
    {
        let status = match step.status {
            Status::WillRun => format!("{green}will run{reset}"),
            Status::Skipped => format!("{dim}skipped{reset}"),
            Status::DecidedAtRunTime => format!("{yellow}decided at run time{reset}"),
        };
        let reason = step.reason.as_deref().map_or_else(String::new, |r| format!(": {r}"));
        let _ = writeln!(out, "      {status}{reason}");
        action(out, "", &step.action, style);
        if let Some(cwd) = &step.cwd {
            let _ = writeln!(out, "      cwd       {cwd}");
        }
        for (key, value) in &step.env {
            let _ = writeln!(out, "      env       {key}={value}");
        }
        if let Some(timeout) = &step.timeout {
            let _ = writeln!(out, "      timeout   {timeout}");
        }
        if step.retries > 0 {
            let delay = step.retry_delay.as_deref().map_or_else(String::new, |d| format!(", {d} apart"));
            let _ = writeln!(out, "      retries   {}{delay}", step.retries);
        }
        let mut flags = Vec::new();
        if step.read_only {
            flags.push("read-only");
        }
        if step.idempotent {
            flags.push("idempotent");
        }
        if step.continue_on_error {
            flags.push("continue on error");
        }
        if !flags.is_empty() {
            let _ = writeln!(out, "      {dim}{}{reset}", flags.join(", "));
        }
        if let Some(output) = &step.output {
            let code = output.exit_code.map_or_else(|| "none".to_owned(), |c| c.to_string());
            let _ = writeln!(out, "      output    {} (exit code {code})", output.stdout.lines().next().unwrap_or(""));
        }
        match &step.rollback {
            PlannedRollback::None => {}
            PlannedRollback::Restore => {
                let _ = writeln!(out, "      rollback  restore the file from its snapshot");
            }
            PlannedRollback::Irreversible => {
                let _ = writeln!(out, "      rollback  {yellow}none: the point of no return{reset}");
            }
            PlannedRollback::Action { action: rollback, when, cwd, env, timeout } => {
                let guard = when.as_deref().map_or_else(String::new, |w| format!(" (when `{w}`)"));
                action(out, &format!("rollback{guard} "), rollback, style);
                if cwd.is_some() && cwd != &step.cwd {
                    let _ = writeln!(out, "      rollback cwd {}", cwd.as_deref().unwrap_or(""));
                }
                for (key, value) in env {
                    let _ = writeln!(out, "      rollback env {key}={value}");
                }
                if let Some(timeout) = timeout {
                    let _ = writeln!(out, "      rollback timeout {timeout}");
                }
            }
        }
    }
}

fn action(out: &mut String, prefix: &str, action: &PlannedAction, style: Style) {
    let label = |name: &str| {
        if prefix.is_empty() { format!("{name:<9}") } else { format!("{prefix}{name}") }
    };
    match action {
        PlannedAction::Run { shell, command } => {
            let shell = if shell == "sh" { String::new() } else { format!(" ({shell})") };
            write_block(out, &format!("{}{shell}", label("run")), command);
        }
        PlannedAction::Exec { argv } => {
            let _ = writeln!(out, "      {} {}", label("exec"), shell_words::join(argv));
        }
        PlannedAction::Edit { path, set, diff, note } => {
            let _ = writeln!(out, "      {} {path}", label("edit"));
            for change in set {
                let _ = writeln!(out, "                {change}");
            }
            file_change(out, diff.as_deref(), note.as_deref(), style);
        }
        PlannedAction::Template { src, dest, mode, diff, note } => {
            let mode = mode.as_deref().map_or_else(String::new, |m| format!(" (mode {m})"));
            let _ = writeln!(out, "      {} {src} → {dest}{mode}", label("template"));
            file_change(out, diff.as_deref(), note.as_deref(), style);
        }
        PlannedAction::Pause { message } => {
            write_block(out, &label("pause"), message);
        }
    }
}

fn write_block(out: &mut String, label: &str, text: &str) {
    let mut lines = text.lines();
    let _ = writeln!(out, "      {label} {}", lines.next().unwrap_or(""));
    for line in lines {
        let _ = writeln!(out, "      {:width$} {line}", "", width = label.chars().count());
    }
}

fn file_change(out: &mut String, diff: Option<&str>, note: Option<&str>, style: Style) {
    if let Some(note) = note {
        let _ = writeln!(out, "                {note}");
    }
    if let Some(diff) = diff {
        out.push_str(&color_diff(diff, "        | ", style));
    }
}

/// Markdown for a pull-request comment.
pub(crate) fn markdown(plan: &Plan) -> String {
    let mut out = String::new();
    let env = plan.environment.as_deref().map_or_else(String::new, |e| format!(" on `{e}`"));
    let _ = writeln!(out, "### upshift plan: `{}`{env}\n", plan.playbook);
    let all = || plan.steps.iter().chain(&plan.finally);
    let count = |status: Status| all().filter(|s| s.status == status).count();
    let later = all().filter(|s| s.status == Status::WillRun && plan::change_known_at_run_time(&s.action)).count();
    let later = if later > 0 {
        format!(" · **{later}** file change{} known only at run time", if later == 1 { "" } else { "s" })
    } else {
        String::new()
    };
    let _ = writeln!(
        out,
        "**{}** will run · **{}** skipped · **{}** decided at run time{later} · fingerprint `{}`\n",
        count(Status::WillRun),
        count(Status::Skipped),
        count(Status::DecidedAtRunTime),
        plan.fingerprint
    );
    if let Some(version) = plan.version.as_ref().filter(|v| v.up_to_date) {
        let _ = writeln!(
            out,
            "**Version** ({}): `{}` is up to date — {}; nothing will run\n",
            scheme(version.scheme),
            version.current,
            version.reason
        );
    } else if let Some(version) = &plan.version {
        let _ = writeln!(
            out,
            "**Version** ({}): `{}` → **`{}`** ({} change) — {}\n",
            scheme(version.scheme),
            version.current,
            version.selected,
            version.change,
            version.reason
        );
    }
    if let Some(window) = &plan.window {
        let verdict = match (&window.rule, &window.next_open) {
            (Some(rule), _) => format!("open now (`{rule}`)"),
            (None, Some(next)) => format!("closed; next opens {next}"),
            (None, None) => "closed".to_owned(),
        };
        let _ = writeln!(out, "**Window** ({}): {verdict}\n", window.timezone);
    }
    if !plan.checks.is_empty() {
        let _ = writeln!(out, "| Readiness | Result | Seen |\n| --- | --- | --- |");
        for check in &plan.checks {
            let mark = match check.status {
                "passed" => "✅ passed",
                "failed" => "❌ failed",
                "skipped" => "⏭️ skipped",
                _ => "not run",
            };
            let host = check.host.as_deref().map_or_else(String::new, |h| format!(" (on `{h}`)"));
            let _ = writeln!(out, "| {}{host} | {mark} | {} |", cell(&check.name), cell(&check.observed));
        }
        out.push('\n');
    }
    let _ = writeln!(out, "| # | Step | Status | Action | Rollback |\n| --- | --- | --- | --- | --- |");
    let rows = plan.steps.iter().chain(&plan.finally).enumerate().flat_map(|(index, step)| {
        // In a fleet, each group of hosts with its own rendering is a row.
        std::iter::once((index, step, step)).chain(step.per_host.iter().map(move |group| (index, step, group)))
    });
    for (index, first, step) in rows {
        let on = if step.hosts.is_empty() { String::new() } else { format!(" on {}", step.hosts.join(", ")) };
        let step_id = &first.id;
        let status = match step.status {
            Status::WillRun => "will run".to_owned(),
            Status::Skipped => format!("skipped: {}", step.reason.as_deref().unwrap_or("")),
            Status::DecidedAtRunTime => "decided at run time".to_owned(),
        };
        let rollback = match &step.rollback {
            PlannedRollback::None => "—".to_owned(),
            PlannedRollback::Restore => "restore snapshot".to_owned(),
            PlannedRollback::Irreversible => "⚠️ **point of no return**".to_owned(),
            PlannedRollback::Action { action, .. } => code_cell(&action_text(action)),
        };
        let finally = if index >= plan.steps.len() { " (finally)" } else { "" };
        let _ = writeln!(
            out,
            "| {} | `{}`{finally}{} | {} | {} | {} |",
            index + 1,
            step_id,
            cell(&on),
            cell(&status),
            code_cell(&action_text(&step.action)),
            rollback
        );
    }
    let diffs: Vec<(&str, &str)> = plan
        .steps
        .iter()
        .chain(&plan.finally)
        .filter_map(|step| match &step.action {
            PlannedAction::Edit { diff: Some(diff), .. } | PlannedAction::Template { diff: Some(diff), .. } => {
                Some((step.id.as_str(), diff.as_str()))
            }
            _ => None,
        })
        .collect();
    for (id, diff) in diffs {
        let _ = writeln!(
            out,
            "\n<details><summary>File changes of <code>{id}</code></summary>\n\n```diff\n{diff}```\n</details>"
        );
    }
    if !plan.ready {
        let _ = writeln!(out, "\n> **Not ready**: `run` would stop before changing anything.");
    }
    out
}

/// What an action does, every line of it.
fn action_text(action: &PlannedAction) -> String {
    match action {
        PlannedAction::Run { command, .. } => command.clone(),
        PlannedAction::Exec { argv } => shell_words::join(argv),
        PlannedAction::Edit { path, .. } => format!("edit {path}"),
        PlannedAction::Template { dest, .. } => format!("template → {dest}"),
        PlannedAction::Pause { message } => format!("pause: {message}"),
    }
}

/// Code in a table cell: a code span for one line; for several, each line in
/// `<code>` with `<br>` between them (a cell holds no line break), so that no
/// line of a command is left out of the comment.
fn code_cell(text: &str) -> String {
    let text = text.trim_end_matches('\n');
    if !text.contains('\n') {
        // A code span's fence is longer than any run of backticks inside it.
        let longest = text.split(|c| c != '`').map(str::len).max().unwrap_or(0);
        let fence = "`".repeat(longest + 1);
        let pad = if longest > 0 { " " } else { "" };
        return format!("{fence}{pad}{}{pad}{fence}", text.replace('|', "\\|"));
    }
    text.lines()
        .map(|line| {
            if line.is_empty() {
                return String::new();
            }
            let indent = line.len() - line.trim_start_matches(' ').len();
            let escaped =
                line[indent..].replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('|', "&#124;");
            format!("<code>{}{escaped}</code>", "&nbsp;".repeat(indent))
        })
        .collect::<Vec<_>>()
        .join("<br>")
}

fn cell(text: &str) -> String {
    text.replace('|', "\\|").replace('\n', " ")
}
