//! Select Version: reads the current and available versions through read-only
//! probes, then chooses the newest available version that satisfies the
//! target and is newer than the current one (or checks a pinned `--to`).
//! Also merges the requirement matrix row of the chosen version.
//!
//! It runs only the probes' commands; it never changes anything.

use indexmap::IndexMap;

use crate::cli::SelectionArgs;
use crate::diagnostic::Diagnostic;
use crate::playbook::{Extract, Probe, VersionSpec};
use crate::template::RenderError;
use crate::transport::Transport;
use crate::version::{Requirement, Scheme, Version};

/// The outcome of version selection, as plan prints it and the journal keeps it.
#[derive(Debug, Clone)]
pub(crate) struct Selection {
    pub(crate) scheme: Scheme,
    pub(crate) current: Version,
    /// The chosen version; the current one when `up_to_date`.
    pub(crate) target: Version,
    pub(crate) change: &'static str,
    /// Versions that qualified, newest first.
    pub(crate) candidates: Vec<Version>,
    pub(crate) requirement: Option<String>,
    pub(crate) reason: String,
    /// Versions left out and why (`3.0.0: a major upgrade`, `` `garbage` is not … ``).
    pub(crate) passed_over: Vec<String>,
    pub(crate) requirements: IndexMap<String, String>,
    /// The matrix row (`versions`) the requirements came from.
    pub(crate) matrix_row: Option<String>,
    /// No available version is newer and the current one satisfies the target:
    /// nothing to do.
    pub(crate) up_to_date: bool,
}

/// Why no version could be chosen. `usage` errors are the operator's flags (exit 2);
/// the others are the state of the system (exit 3).
#[derive(Debug)]
pub(crate) struct SelectError {
    pub(crate) message: String,
    pub(crate) usage: bool,
}

fn fail(message: impl Into<String>) -> SelectError {
    SelectError { message: message.into(), usage: false }
}

/// Runs a probe: the versions it yields, as strings.
pub(crate) type ProbeRunner<'a> = dyn FnMut(&Probe) -> Result<Vec<String>, String> + 'a;

/// The target requirement: parsed at validate time, or rendered with `context`
/// (the vars, as probes see them) and parsed now.
pub(crate) fn resolve_target(
    spec: &VersionSpec,
    context: &minijinja::Value,
) -> Result<Option<(String, Requirement)>, Diagnostic> {
    let Some(target) = &spec.target else { return Ok(None) };
    if let Some(requirement) = &target.requirement {
        return Ok(Some((target.text.clone(), requirement.clone())));
    }
    let rendered = target.template.render(context).map_err(RenderError::into_diagnostic)?;
    let rendered = rendered.trim().to_owned();
    match spec.scheme.requirement(&rendered) {
        Ok(requirement) => Ok(Some((rendered, requirement))),
        Err(reason) => Err(Diagnostic::error(format!("`target` renders to `{rendered}`: {reason}"))
            .at(target.location.clone())
            .help(format!("the target must be {}", spec.scheme.a_requirement()))),
    }
}

pub(crate) fn select(
    spec: &VersionSpec,
    target: Option<&(String, Requirement)>,
    args: &SelectionArgs,
    probe: &mut ProbeRunner<'_>,
) -> Result<Selection, SelectError> {
    let scheme = spec.scheme;
    let current_text = probe(&spec.current).map_err(|why| fail(format!("cannot read the current version: {why}")))?;
    let current_text =
        current_text.first().ok_or_else(|| fail("cannot read the current version: the probe found none"))?;
    let current =
        scheme.version(current_text).map_err(|why| fail(format!("cannot read the current version: {why}")))?;
    let available_texts =
        probe(&spec.available).map_err(|why| fail(format!("cannot list the available versions: {why}")))?;
    // A version that does not parse is passed over with its reason, never dropped silently.
    let mut passed_over = Vec::new();
    let mut available: Vec<Version> = Vec::new();
    for text in &available_texts {
        match scheme.version(text) {
            Ok(version) => available.push(version),
            Err(why) => passed_over.push(why),
        }
    }
    let mut available = newest_first(available);
    available.dedup_by(|a, b| a.cmp_same(b).is_eq());
    let allow_major = spec.allow_major || args.allow_major;
    let allow_downgrade = spec.allow_downgrade || args.allow_downgrade;
    let requirement = target.map(|(text, _)| text.clone());
    let req = target.map(|(_, req)| req);

    if let Some(pinned) = &args.to {
        let wanted = scheme.version(pinned).map_err(|why| SelectError { message: why, usage: true })?;
        let Some(found) = available.iter().find(|v| v.cmp_same(&wanted).is_eq()).cloned() else {
            let newest: Vec<String> = available.iter().take(5).map(Version::to_string).collect();
            return Err(SelectError {
                message: format!(
                    "`--to {pinned}` is not an available version (newest available: {})",
                    if newest.is_empty() { "none".to_owned() } else { newest.join(", ") }
                ),
                // Not the flags' fault: what is available decides (exit 3, like a failed readiness check).
                usage: false,
            });
        };
        if let Some((text, req)) = target
            && !req.matches(&found)
            && !args.force_version
        {
            return Err(SelectError {
                message: format!(
                    "`--to {pinned}` does not satisfy the target `{text}` (add `--force-version` to go on)"
                ),
                usage: true,
            });
        }
        refuse(&current, &found, allow_major, allow_downgrade).map_err(|m| SelectError { message: m, usage: true })?;
        let change = current.change_to(&found);
        return Ok(finish(
            spec,
            current,
            found.clone(),
            change,
            vec![found],
            requirement,
            format!("pinned with `--to {pinned}`"),
            Vec::new(),
        ));
    }

    let eligible = scheme.eligible(req, &available, spec.allow_prerelease);
    let eligible_with_prereleases = scheme.eligible(req, &available, true);
    let mut candidates = Vec::new();
    for ((version, ok), ok_with_prereleases) in available.iter().zip(eligible).zip(eligible_with_prereleases) {
        let newer = version.cmp_same(&current).is_gt();
        let older = version.cmp_same(&current).is_lt();
        if !ok {
            if newer && ok_with_prereleases {
                passed_over.push(format!("{version}: a pre-release (set `allow_prerelease` to consider it)"));
            }
            continue;
        }
        if !(newer || allow_downgrade && older) {
            continue;
        }
        if version.major() != current.major() && !allow_major {
            passed_over.push(format!("{version}: a major upgrade (set `allow_major` or pass `--allow-major`)"));
            continue;
        }
        candidates.push(version.clone());
    }
    let within = match &requirement {
        Some(text) => format!(" that satisfies `{text}`"),
        None => String::new(),
    };
    let satisfied = req.is_none_or(|req| req.matches(&current));
    if satisfied && !available.is_empty() && !candidates.iter().any(|v| v.cmp_same(&current).is_gt()) {
        let reason = format!("no available version{within} is newer than {current}");
        let mut selection =
            finish(spec, current.clone(), current, "none", Vec::new(), requirement, reason, passed_over);
        selection.up_to_date = true;
        return Ok(selection);
    }
    let Some(target) = candidates.first().cloned() else {
        let mut message = if available.is_empty() {
            format!("the available versions probe listed no {} versions", scheme.title())
        } else if satisfied {
            format!("no available version{within} is newer than the current {current}")
        } else {
            format!("the current {current} does not satisfy the target and no available version{within} qualifies")
        };
        if !passed_over.is_empty() {
            message.push_str(&format!("; passed over: {}", passed_over.join("; ")));
        }
        return Err(fail(message));
    };
    let reason = match &requirement {
        Some(text) => format!("the newest available version that satisfies `{text}` and is newer than {current}"),
        None => format!("the newest available version newer than {current}"),
    };
    let reason = if target.cmp_same(&current).is_lt() {
        format!("the newest available version that satisfies `{}` (a downgrade)", requirement.as_deref().unwrap_or("*"))
    } else {
        reason
    };
    let change = current.change_to(&target);
    Ok(finish(spec, current, target, change, candidates, requirement, reason, passed_over))
}

/// A stable merge sort, newest first. Unlike `sort_by`, it cannot panic should a
/// scheme's comparison (PHP's `version_compare` for Composer) ever fail to be a
/// total order on some probe's output.
fn newest_first(versions: Vec<Version>) -> Vec<Version> {
    if versions.len() < 2 {
        return versions;
    }
    let mut left = versions;
    let right = left.split_off(left.len() / 2);
    let (left, right) = (newest_first(left), newest_first(right));
    let mut merged = Vec::with_capacity(left.len() + right.len());
    let (mut left, mut right) = (left.into_iter().peekable(), right.into_iter().peekable());
    while let (Some(l), Some(r)) = (left.peek(), right.peek()) {
        let take_right = r.cmp_same(l).is_gt();
        merged.extend(if take_right { right.next() } else { left.next() });
    }
    merged.extend(left);
    merged.extend(right);
    merged
}

#[allow(clippy::too_many_arguments)]
fn finish(
    spec: &VersionSpec,
    current: Version,
    target: Version,
    change: &'static str,
    candidates: Vec<Version>,
    requirement: Option<String>,
    reason: String,
    passed_over: Vec<String>,
) -> Selection {
    let row = spec.matrix.iter().find(|row| row.requirement.matches(&target));
    let requirements = row.map(|row| row.set.clone()).unwrap_or_default();
    let matrix_row = row.map(|row| row.versions.clone());
    Selection {
        scheme: spec.scheme,
        current,
        target,
        change,
        candidates,
        requirement,
        reason,
        passed_over,
        requirements,
        matrix_row,
        up_to_date: false,
    }
}

fn refuse(current: &Version, to: &Version, allow_major: bool, allow_downgrade: bool) -> Result<(), String> {
    if to.cmp_same(current).is_lt() && !allow_downgrade {
        return Err(format!("{to} is older than the current {current}: a downgrade (pass `--allow-downgrade`)"));
    }
    if to.major() != current.major() && !allow_major {
        return Err(format!("{current} → {to} changes the major version (pass `--allow-major`)"));
    }
    Ok(())
}

/// Pulls versions out of a probe command's output.
pub(crate) fn extract(extract: &Extract, stdout: &str) -> Result<Vec<String>, String> {
    match extract {
        Extract::Whole => Ok(vec![stdout.trim().to_owned()]),
        Extract::Lines => {
            let found: Vec<String> =
                stdout.lines().map(str::trim).filter(|line| !line.is_empty()).map(str::to_owned).collect();
            if found.is_empty() { Err(format!("the output lists no versions: {}", excerpt(stdout))) } else { Ok(found) }
        }
        Extract::Regex(regex) => {
            let found: Vec<String> = regex
                .captures_iter(stdout)
                .filter_map(|c| c.get(1).or_else(|| c.get(0)).map(|m| m.as_str().to_owned()))
                .collect();
            if found.is_empty() {
                Err(format!("the regex `{regex}` matched nothing in the output: {}", excerpt(stdout)))
            } else {
                Ok(found)
            }
        }
        Extract::JsonPointer(pointer) => {
            let value: serde_json::Value = serde_json::from_str(stdout)
                .map_err(|error| format!("the output is not JSON ({error}): {}", excerpt(stdout)))?;
            match value.pointer(pointer) {
                Some(serde_json::Value::String(s)) => Ok(vec![s.clone()]),
                // Non-strings are kept as their JSON text, so they are passed over with a reason.
                Some(serde_json::Value::Array(items)) => Ok(items
                    .iter()
                    .map(|item| match item {
                        serde_json::Value::String(s) => s.clone(),
                        other => other.to_string(),
                    })
                    .collect()),
                Some(other) => Err(format!("`{pointer}` holds {other}, not a version or a list of versions")),
                None => Err(format!("the output has no `{pointer}`")),
            }
        }
    }
}

/// The start of some output, on one line, for an error message.
pub(crate) fn excerpt(text: &str) -> String {
    let trimmed = text.trim();
    if trimmed.is_empty() {
        return "(no output)".to_owned();
    }
    let one_line = trimmed.lines().take(3).collect::<Vec<_>>().join(" ⏎ ");
    let mut short: String = one_line.chars().take(200).collect();
    if short.len() < one_line.len() {
        short.push('…');
    }
    format!("`{short}`")
}

/// Builds the command spec of a probe's command, given its rendered `cwd`.
pub(crate) type SpecFor<'a> =
    dyn Fn(&crate::playbook::Command, Option<String>) -> Result<crate::process::CommandSpec, String> + 'a;

/// Runs a probe where the version lives (a transport), for `plan` and `run`.
pub(crate) fn run_probe(
    probe: &Probe,
    executor: &dyn Transport,
    render: &dyn Fn(&crate::template::Template) -> Result<String, String>,
    spec_for: &SpecFor<'_>,
) -> Result<Vec<String>, String> {
    match probe {
        Probe::List(list) => Ok(list.clone()),
        Probe::Value(template) => Ok(vec![render(template)?]),
        Probe::Command { command, cwd, extract: how } => {
            let cwd = cwd.as_ref().map(render).transpose()?;
            let spec = spec_for(command, cwd)?;
            let shown = match command {
                crate::playbook::Command::Shell { .. } => spec.argv.last().cloned().unwrap_or_default(),
                crate::playbook::Command::Exec(_) => shell_words::join(&spec.argv),
            };
            let output = executor
                .run(&spec, &mut |_| {})
                .map_err(|error| format!("`{shown}` could not start: {}", crate::document::io_reason(&error)))?;
            if !output.success() {
                return Err(format!(
                    "`{shown}` failed ({}): {}",
                    output.describe_end(),
                    excerpt(if output.stderr.trim().is_empty() { &output.stdout } else { &output.stderr })
                ));
            }
            extract(how, &output.stdout).map_err(|why| format!("`{shown}`: {why}"))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::playbook::MatrixRow;

    fn spec(target: &str, available: &[&str]) -> VersionSpec {
        let scheme = Scheme::Composer;
        VersionSpec {
            scheme,
            current: Probe::List(vec!["2.4.6-p3".into()]),
            available: Probe::List(available.iter().map(|s| s.to_string()).collect()),
            target: Some(crate::playbook::Target {
                text: target.to_owned(),
                location: crate::diagnostic::Location::new(
                    &crate::diagnostic::Source::new(std::path::Path::new("p.toml"), String::new()),
                    0..0,
                ),
                template: crate::template::Template::new(target, crate::template::Quoting::Plain, None),
                requirement: Some(scheme.requirement(target).unwrap()),
            }),
            allow_major: false,
            allow_downgrade: false,
            allow_prerelease: false,
            matrix: vec![MatrixRow {
                versions: ">=2.4.7".into(),
                requirement: scheme.requirement(">=2.4.7").unwrap(),
                set: [("php".to_owned(), ">=8.2".to_owned())].into_iter().collect(),
            }],
            on: crate::playbook::LOCAL.to_owned(),
        }
    }

    fn run(spec: &VersionSpec, args: &SelectionArgs) -> Result<Selection, SelectError> {
        let target = spec.target.as_ref().map(|t| (t.text.clone(), t.requirement.clone().unwrap()));
        select(spec, target.as_ref(), args, &mut |probe| match probe {
            Probe::List(list) => Ok(list.clone()),
            _ => Err("unexpected".into()),
        })
    }

    const TRAIN: [&str; 9] =
        ["2.4.6", "2.4.6-p3", "2.4.6-p10", "2.4.6-p2", "2.4.7-beta1", "2.4.7", "2.4.7-p1", "3.0.0", "dev-main"];

    #[test]
    fn picks_the_newest_patch_level_of_the_line() {
        let selection = run(&spec("2.4.6.*", &TRAIN), &SelectionArgs::default()).unwrap();
        assert_eq!(selection.target.to_string(), "2.4.6-p10");
        assert_eq!(selection.change, "patch");
        assert!(selection.requirements.is_empty());
    }

    #[test]
    fn skips_majors_and_prereleases_and_merges_the_matrix() {
        let selection = run(&spec("*", &TRAIN), &SelectionArgs::default()).unwrap();
        assert_eq!(selection.target.to_string(), "2.4.7-p1");
        assert_eq!(selection.change, "patch");
        assert_eq!(selection.requirements["php"], ">=8.2");
        assert!(selection.passed_over[0].starts_with("3.0.0"));
    }

    #[test]
    fn pins_and_refuses() {
        let args = SelectionArgs { to: Some("2.4.7".into()), ..Default::default() };
        assert_eq!(run(&spec("~2.4", &TRAIN), &args).unwrap().target.to_string(), "2.4.7");
        let args = SelectionArgs { to: Some("2.4.9".into()), ..Default::default() };
        let unavailable = run(&spec("~2.4", &TRAIN), &args).unwrap_err();
        assert!(unavailable.message.contains("not an available version") && !unavailable.usage, "exit 3, not 2");
        let args = SelectionArgs { to: Some("2.4.6".into()), ..Default::default() };
        assert!(run(&spec("~2.4", &TRAIN), &args).unwrap_err().message.contains("downgrade"));
        assert!(run(&spec("2.4.5.*", &TRAIN), &SelectionArgs::default()).unwrap_err().message.contains("no available"));
    }
}
