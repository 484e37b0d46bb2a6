//! The `semver` scheme: the `semver` crate (Cargo's reading of Semantic
//! Versioning), plus the two-part versions registries publish (`6.4` reads as
//! `6.4.0` and prints as written) and `||` between requirements.
//!
//! Pre-releases follow the crate: a requirement matches `1.2.3-rc.1` only when
//! one of its comparators names a pre-release of `1.2.3`. `allow_prerelease`
//! lifts that gate and compares pre-releases by their order alone.

use std::cmp::Ordering;

use semver::{Comparator, Op, Prerelease};

/// A semantic version and the text it was written as.
#[derive(Debug, Clone)]
pub(crate) struct Version {
    pub(crate) inner: semver::Version,
    pub(crate) text: String,
}

impl Version {
    pub(crate) fn parse(text: &str) -> Result<Version, String> {
        let trimmed = text.trim();
        let bare = trimmed.strip_prefix('v').unwrap_or(trimmed);
        match semver::Version::parse(bare) {
            Ok(inner) => Ok(Version { inner, text: trimmed.to_owned() }),
            Err(error) => {
                // `6.4`, `6.4-rc.1`: two numbers, then what a full version may carry.
                let numbers_end = bare.find(['-', '+']).unwrap_or(bare.len());
                let (numbers, rest) = bare.split_at(numbers_end);
                let two_part = numbers.split('.').count() == 2
                    && numbers.split('.').all(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()));
                if two_part && let Ok(inner) = semver::Version::parse(&format!("{numbers}.0{rest}")) {
                    return Ok(Version { inner, text: trimmed.to_owned() });
                }
                Err(format!("`{trimmed}` is not a semantic version: {error}"))
            }
        }
    }

    pub(crate) fn cmp(&self, other: &Version) -> Ordering {
        self.inner.cmp(&other.inner)
    }

    /// `stable`, `RC`, `beta`, `alpha` or `dev`, from the pre-release's first identifier.
    pub(crate) fn stability(&self) -> &'static str {
        let pre = self.inner.pre.as_str().to_ascii_lowercase();
        if pre.is_empty() {
            "stable"
        } else if pre.starts_with("rc") {
            "RC"
        } else if pre.starts_with("beta") {
            "beta"
        } else if pre.starts_with("alpha") {
            "alpha"
        } else {
            "dev"
        }
    }
}

/// A semver requirement that also accepts `||` between alternatives.
pub(crate) fn requirement(text: &str) -> Result<Vec<semver::VersionReq>, String> {
    text.split("||")
        .map(|part| {
            semver::VersionReq::parse(part.trim())
                .map_err(|error| format!("`{}` is not a semver requirement: {error}", part.trim()))
        })
        .collect()
}

/// Whether `version` satisfies one of the alternatives; with `allow_prerelease`,
/// pre-releases are compared like any version.
pub(crate) fn matches(alternatives: &[semver::VersionReq], version: &semver::Version, allow_prerelease: bool) -> bool {
    alternatives.iter().any(|req| {
        if allow_prerelease {
            req.comparators.iter().all(|cmp| comparator_matches(cmp, version))
        } else {
            req.matches(version)
        }
    })
}

/// One comparator without the crate's pre-release gate (the crate's own rules otherwise).
fn comparator_matches(cmp: &Comparator, ver: &semver::Version) -> bool {
    match cmp.op {
        Op::Exact | Op::Wildcard => exact(cmp, ver),
        Op::Greater => greater(cmp, ver),
        Op::GreaterEq => exact(cmp, ver) || greater(cmp, ver),
        Op::Less => less(cmp, ver),
        Op::LessEq => exact(cmp, ver) || less(cmp, ver),
        Op::Tilde => tilde(cmp, ver),
        Op::Caret => caret(cmp, ver),
        _ => false,
    }
}

fn pre(cmp: &Comparator) -> &Prerelease {
    &cmp.pre
}

fn exact(cmp: &Comparator, ver: &semver::Version) -> bool {
    ver.major == cmp.major
        && cmp.minor.is_none_or(|minor| ver.minor == minor)
        && cmp.patch.is_none_or(|patch| ver.patch == patch)
        && (cmp.op == Op::Wildcard || ver.pre == *pre(cmp))
}

fn greater(cmp: &Comparator, ver: &semver::Version) -> bool {
    if ver.major != cmp.major {
        return ver.major > cmp.major;
    }
    let Some(minor) = cmp.minor else { return false };
    if ver.minor != minor {
        return ver.minor > minor;
    }
    let Some(patch) = cmp.patch else { return false };
    if ver.patch != patch {
        return ver.patch > patch;
    }
    ver.pre > *pre(cmp)
}

fn less(cmp: &Comparator, ver: &semver::Version) -> bool {
    if ver.major != cmp.major {
        return ver.major < cmp.major;
    }
    let Some(minor) = cmp.minor else { return false };
    if ver.minor != minor {
        return ver.minor < minor;
    }
    let Some(patch) = cmp.patch else { return false };
    if ver.patch != patch {
        return ver.patch < patch;
    }
    ver.pre < *pre(cmp)
}

fn tilde(cmp: &Comparator, ver: &semver::Version) -> bool {
    if ver.major != cmp.major {
        return false;
    }
    if let Some(minor) = cmp.minor
        && ver.minor != minor
    {
        return false;
    }
    if let Some(patch) = cmp.patch
        && ver.patch != patch
    {
        return ver.patch > patch;
    }
    ver.pre >= *pre(cmp)
}

fn caret(cmp: &Comparator, ver: &semver::Version) -> bool {
    if ver.major != cmp.major {
        return false;
    }
    let Some(minor) = cmp.minor else { return true };
    let Some(patch) = cmp.patch else {
        return if cmp.major > 0 { ver.minor >= minor } else { ver.minor == minor };
    };
    if cmp.major > 0 {
        if ver.minor != minor {
            return ver.minor > minor;
        } else if ver.patch != patch {
            return ver.patch > patch;
        }
    } else if minor > 0 {
        if ver.minor != minor {
            return false;
        } else if ver.patch != patch {
            return ver.patch > patch;
        }
    } else if ver.minor != minor || ver.patch != patch {
        return false;
    }
    ver.pre >= *pre(cmp)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(text: &str) -> Version {
        Version::parse(text).unwrap()
    }

    #[test]
    fn two_part_versions_read_as_three() {
        assert_eq!(v("6.4").inner, semver::Version::new(6, 4, 0));
        assert_eq!(v("6.4").text, "6.4");
        assert_eq!(v("v6.0").inner, semver::Version::new(6, 0, 0));
        assert_eq!(v("6.4-rc.1").inner.pre.as_str(), "rc.1");
        assert!(v("6.4").cmp(&v("6.4.1")).is_lt());
        assert!(Version::parse("6").is_err());
        assert!(Version::parse("6.4.x").is_err());
        assert!(Version::parse("garbage").is_err());
    }

    #[test]
    fn prereleases_follow_the_crate_unless_allowed() {
        let req = requirement("^1.2 || >=3.0.0-rc.1").unwrap();
        assert!(matches(&req, &v("1.5.0").inner, false));
        assert!(!matches(&req, &v("1.5.0-beta.1").inner, false));
        assert!(matches(&req, &v("1.5.0-beta.1").inner, true));
        assert!(matches(&req, &v("3.0.0-rc.2").inner, false));
        assert!(!matches(&req, &v("2.0.0").inner, false));
        assert!(!matches(&requirement(">=1.2.3").unwrap(), &v("1.2.3-beta.1").inner, true));
    }
}
