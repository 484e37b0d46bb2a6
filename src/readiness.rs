//! Judging a readiness check's output against its `expect`: exit code, regex,
//! `contains`, `equals`, a semver requirement on the leading version in the
//! output (`8.2.7-1+deb12u1` reads as 8.2.7), and numeric bounds on the first
//! number in the output. Every bound may be a template, rendered here.
//!
//! Pure: it is given the output, it runs nothing.

use std::sync::OnceLock;

use regex::Regex;

use crate::playbook::Expect;
use crate::process::Output;
use crate::template::RenderError;

#[derive(Debug)]
pub(crate) struct Verdict {
    pub(crate) passed: bool,
    pub(crate) observed: String,
}

pub(crate) fn judge(expect: &Expect, output: &Output, context: &minijinja::Value) -> Result<Verdict, RenderError> {
    let stdout = output.stdout.trim();
    let first_line = stdout.lines().next().unwrap_or("").trim();
    let shown = if first_line.is_empty() { "(no output)".to_owned() } else { first_line.to_owned() };
    let fail = |why: String| Ok(Verdict { passed: false, observed: why });
    if output.timed_out || output.exit_code != Some(expect.exit) {
        let stderr = output.stderr.trim().lines().last().unwrap_or("").trim().to_owned();
        let detail = if stderr.is_empty() { shown.clone() } else { stderr };
        return fail(format!("{} (expected exit code {}): {detail}", output.describe_end(), expect.exit));
    }
    if let Some(pattern) = &expect.regex {
        let regex = pattern.regex(context)?;
        if !regex.is_match(stdout) {
            return fail(format!("{shown} (does not match `{regex}`)"));
        }
    }
    if let Some(contains) = &expect.contains {
        let needle = contains.render(context)?;
        if !stdout.contains(&needle) {
            return fail(format!("{shown} (does not contain `{needle}`)"));
        }
    }
    if let Some(equals) = &expect.equals {
        let wanted = equals.render(context)?;
        if stdout != wanted.trim() {
            return fail(format!("{shown} (expected `{wanted}`)"));
        }
    }
    // What passed, said as precisely as the conditions allow.
    let mut observed = shown.clone();
    if let Some(requirement) = &expect.semver {
        let text = requirement.render(context)?;
        let alternatives = crate::version::semver_requirement(&text)
            .map_err(|message| RenderError { message, location: requirement.location.clone() })?;
        let Some(version) = leading_version(stdout) else {
            return fail(format!("{shown} (no version found to compare with `{text}`)"));
        };
        if !alternatives.iter().any(|req| req.matches(&version)) {
            return fail(format!("{version} (needs `{text}`)"));
        }
        observed = format!("{version} (satisfies `{text}`)");
    }
    if expect.min.is_some() || expect.max.is_some() {
        let min = expect.min.as_ref().map(|b| b.number(context)).transpose()?;
        let max = expect.max.as_ref().map(|b| b.number(context)).transpose()?;
        let Some((text, n)) = first_number(stdout) else {
            return fail(format!("{shown} (not a number)"));
        };
        let value = |number: &serde_json::Number| number.as_f64().unwrap_or(f64::NAN);
        let low = min.as_ref().is_none_or(|min| n >= value(min));
        let high = max.as_ref().is_none_or(|max| n <= value(max));
        let range = match (&min, &max) {
            (Some(min), Some(max)) => format!("between {min} and {max}"),
            (Some(min), None) => format!("at least {min}"),
            (None, Some(max)) => format!("at most {max}"),
            (None, None) => String::new(),
        };
        if !(low && high) {
            return fail(format!("{text} (needs {range})"));
        }
        observed = format!("{text} ({range})");
    }
    Ok(Verdict { passed: true, observed })
}

/// The first number in the text (`-12`, `3.5`), as written and as a value.
fn first_number(text: &str) -> Option<(String, f64)> {
    static NUMBER: OnceLock<Regex> = OnceLock::new();
    let regex = NUMBER.get_or_init(|| Regex::new(r"-?\d+(?:\.\d+)?").expect("a valid regex"));
    let found = regex.find(text)?;
    Some((found.as_str().to_owned(), found.as_str().parse().ok()?))
}

/// The first `X.Y[.Z]` in the text, as a semver version (missing parts are 0).
pub(crate) fn leading_version(text: &str) -> Option<semver::Version> {
    static NUMBER: OnceLock<Regex> = OnceLock::new();
    let regex = NUMBER.get_or_init(|| Regex::new(r"(\d+)\.(\d+)(?:\.(\d+))?").expect("a valid regex"));
    let captures = regex.captures(text)?;
    let part = |i: usize| captures.get(i).map_or(Some(0), |m| m.as_str().parse().ok());
    Some(semver::Version::new(part(1)?, part(2)?, part(3)?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_distribution_versions() {
        assert_eq!(leading_version("8.2.7-1+deb12u1"), Some(semver::Version::new(8, 2, 7)));
        assert_eq!(leading_version("Composer version 2.7.1 2024-02-09"), Some(semver::Version::new(2, 7, 1)));
        assert_eq!(leading_version("mysql  Ver 15.1 Distrib 10.11.6-MariaDB"), Some(semver::Version::new(15, 1, 0)));
        assert_eq!(leading_version("none"), None);
    }

    #[test]
    fn reads_the_first_number() {
        assert_eq!(first_number("79132960"), Some(("79132960".to_owned(), 79132960.0)));
        assert_eq!(first_number("free: 12.5 GiB on /dev/sda1"), Some(("12.5".to_owned(), 12.5)));
        assert_eq!(first_number("delta -3 rows"), Some(("-3".to_owned(), -3.0)));
        assert_eq!(first_number("none"), None);
    }
}
