//! Select Version: reads the current and available versions through read-only
//! probes, then chooses the newest available version that satisfies the
//! target and is newer than the current one (or checks a pinned `--to`).
//! Also merges the requirement matrix row of the chosen version.
//!
//! It runs only the probes' commands; it never changes anything.

use indexmap::IndexMap;

use crate::cli::SelectionArgs;
use crate::playbook::{Extract, Probe, VersionSpec};
use crate::process::Executor;
use crate::version::{Scheme, Version};

/// The outcome of version selection, as plan prints it and the journal keeps it.
#[derive(Debug, Clone)]
pub(crate) struct Selection {
    pub(crate) scheme: Scheme,
    pub(crate) current: Version,
    pub(crate) target: Version,
    pub(crate) change: &'static str,
    /// Versions that qualified, newest first.
    pub(crate) candidates: Vec<Version>,
    pub(crate) requirement: Option<String>,
    pub(crate) reason: String,
    /// Versions left out and why (`3.0.0: a major upgrade`).
    pub(crate) passed_over: Vec<String>,
    pub(crate) requirements: IndexMap<String, String>,
    /// The matrix row (`versions`) the requirements came from.
    pub(crate) matrix_row: Option<String>,
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

pub(crate) fn select(
    spec: &VersionSpec,
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
    let mut available: Vec<Version> = available_texts.iter().filter_map(|text| scheme.version(text).ok()).collect();
    available.sort_by(|a, b| b.cmp_same(a));
    available.dedup_by(|a, b| a.cmp_same(b).is_eq());
    let allow_major = spec.allow_major || args.allow_major;
    let allow_downgrade = spec.allow_downgrade || args.allow_downgrade;
    let requirement = spec.target.as_ref().map(|(text, _)| text.clone());

    if let Some(pinned) = &args.to {
        let wanted = scheme.version(pinned).map_err(|why| SelectError { message: why, usage: true })?;
        let Some(found) = available.iter().find(|v| v.cmp_same(&wanted).is_eq()).cloned() else {
            let newest: Vec<String> = available.iter().take(5).map(Version::to_string).collect();
            return Err(SelectError {
                message: format!(
                    "`--to {pinned}` is not an available version (newest available: {})",
                    if newest.is_empty() { "none".to_owned() } else { newest.join(", ") }
                ),
                usage: true,
            });
        };
        if let Some((text, req)) = &spec.target
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

    let mut passed_over = Vec::new();
    let mut candidates = Vec::new();
    for version in &available {
        if !version.is_stable() && !spec.allow_prerelease {
            continue;
        }
        if let Some((_, req)) = &spec.target
            && !req.matches(version)
        {
            continue;
        }
        let newer = version.cmp_same(&current).is_gt();
        let older = version.cmp_same(&current).is_lt();
        if !(newer || allow_downgrade && older) {
            continue;
        }
        if version.major() != current.major() && !allow_major {
            passed_over.push(format!("{version}: a major upgrade (set `allow_major` or pass `--allow-major`)"));
            continue;
        }
        candidates.push(version.clone());
    }
    let Some(target) = candidates.first().cloned() else {
        let within = match &requirement {
            Some(text) => format!(" that satisfies `{text}`"),
            None => String::new(),
        };
        let mut message = format!("no available version{within} is newer than the current {current}");
        if available.is_empty() {
            message = format!("the available versions probe listed no {} versions", scheme_word(scheme));
        }
        if !passed_over.is_empty() {
            message.push_str(&format!("; passed over: {}", passed_over.join("; ")));
        }
        return Err(fail(message));
    };
    let reason = match &requirement {
        Some(text) => format!("the newest available version that satisfies `{text}` and is newer than {current}"),
        None => format!("the newest available version newer than {current}"),
    };
    let change = current.change_to(&target);
    Ok(finish(spec, current, target, change, candidates, requirement, reason, passed_over))
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

fn scheme_word(scheme: Scheme) -> &'static str {
    match scheme {
        Scheme::Semver => "semver",
        Scheme::Composer => "Composer",
    }
}

/// Pulls versions out of a probe command's output.
pub(crate) fn extract(extract: &Extract, stdout: &str) -> Result<Vec<String>, String> {
    match extract {
        Extract::Whole => Ok(vec![stdout.trim().to_owned()]),
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
                Some(serde_json::Value::Array(items)) => {
                    Ok(items.iter().filter_map(|i| i.as_str().map(str::to_owned)).collect())
                }
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

/// Runs a probe on an executor, for `plan` and `run`.
pub(crate) fn run_probe(
    probe: &Probe,
    executor: &dyn Executor,
    render: &dyn Fn(&crate::template::Template) -> Result<String, String>,
    spec_for: &SpecFor<'_>,
) -> Result<Vec<String>, String> {
    match probe {
        Probe::List(list) => Ok(list.clone()),
        Probe::Value(template) => Ok(vec![render(template)?]),
        Probe::Command { command, cwd, extract: how } => {
            let cwd = cwd.as_ref().map(render).transpose()?;
            let spec = spec_for(command, cwd)?;
            let shown = spec.argv.last().cloned().unwrap_or_default();
            let output = executor.run(&spec).map_err(|error| format!("`{shown}` could not start: {error}"))?;
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
            target: Some((target.to_owned(), scheme.requirement(target).unwrap())),
            allow_major: false,
            allow_downgrade: false,
            allow_prerelease: false,
            matrix: vec![MatrixRow {
                versions: ">=2.4.7".into(),
                requirement: scheme.requirement(">=2.4.7").unwrap(),
                set: [("php".to_owned(), ">=8.2".to_owned())].into_iter().collect(),
            }],
        }
    }

    fn run(spec: &VersionSpec, args: &SelectionArgs) -> Result<Selection, SelectError> {
        select(spec, args, &mut |probe| match probe {
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
        assert!(run(&spec("~2.4", &TRAIN), &args).unwrap_err().usage);
        let args = SelectionArgs { to: Some("2.4.6".into()), ..Default::default() };
        assert!(run(&spec("~2.4", &TRAIN), &args).unwrap_err().message.contains("downgrade"));
        assert!(run(&spec("2.4.5.*", &TRAIN), &SelectionArgs::default()).unwrap_err().message.contains("no available"));
    }
}
