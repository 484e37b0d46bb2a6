//! Judging a readiness check's output against its `expect`: exit code, regex,
//! `contains`, `equals`, a semver requirement on the leading version in the
//! output (`8.2.7-1+deb12u1` reads as 8.2.7), and a numeric minimum.
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
    if let Some(regex) = &expect.regex
        && !regex.is_match(stdout)
    {
        return fail(format!("{shown} (does not match `{regex}`)"));
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
        return Ok(Verdict { passed: true, observed: format!("{version} (satisfies `{text}`)") });
    }
    if let Some(min) = expect.min {
        match first_line.split_whitespace().next().and_then(|n| n.parse::<i64>().ok()) {
            Some(n) if n >= min => {
                return Ok(Verdict { passed: true, observed: format!("{n} (at least {min})") });
            }
            Some(n) => return fail(format!("{n} (needs at least {min})")),
            None => return fail(format!("{shown} (not a number)")),
        }
    }
    Ok(Verdict { passed: true, observed: shown })
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
}
