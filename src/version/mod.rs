//! Versions and requirements in four schemes, each the port of one library's
//! rules, each checked against that library's own test vectors:
//! `semver` (the `semver` crate), `composer` (composer/semver), `pep440`
//! (Python's `packaging`) and `npm` (npm's `semver` package).
//!
//! Every other module sees only `Scheme`, `Version` and `Requirement`: how a
//! scheme parses, orders and matches stays in its own file. This module knows
//! nothing of playbooks or selection.

pub(crate) mod composer;
pub(crate) mod npm;
pub(crate) mod pep440;
pub(crate) mod semver;

use std::cmp::Ordering;
use std::fmt;

/// A version scheme.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum Scheme {
    Semver,
    Composer,
    Pep440,
    Npm,
}

impl Scheme {
    pub(crate) fn parse(name: &str) -> Option<Scheme> {
        match name {
            "semver" => Some(Scheme::Semver),
            "composer" => Some(Scheme::Composer),
            "pep440" => Some(Scheme::Pep440),
            "npm" => Some(Scheme::Npm),
            _ => None,
        }
    }

    /// The name in playbooks (`semver`, `composer`, `pep440`, `npm`).
    pub(crate) fn name(self) -> &'static str {
        match self {
            Scheme::Semver => "semver",
            Scheme::Composer => "composer",
            Scheme::Pep440 => "pep440",
            Scheme::Npm => "npm",
        }
    }

    /// The name in prose (`a Composer requirement`).
    pub(crate) fn title(self) -> &'static str {
        match self {
            Scheme::Semver => "semver",
            Scheme::Composer => "Composer",
            Scheme::Pep440 => "PEP 440",
            Scheme::Npm => "npm",
        }
    }

    /// "a semver requirement", "an npm requirement": for messages.
    pub(crate) fn a_requirement(self) -> String {
        match self {
            Scheme::Npm => "an npm requirement".to_owned(),
            other => format!("a {} requirement", other.title()),
        }
    }

    pub(crate) fn version(self, text: &str) -> Result<Version, String> {
        match self {
            Scheme::Semver => semver::Version::parse(text).map(Version::Semver),
            Scheme::Composer => composer::Version::parse(text).map(Version::Composer),
            Scheme::Pep440 => pep440::Version::parse(text).map(Version::Pep440),
            Scheme::Npm => npm::Version::parse(text).map(Version::Npm),
        }
    }

    pub(crate) fn requirement(self, text: &str) -> Result<Requirement, String> {
        match self {
            Scheme::Semver => semver::requirement(text).map(Requirement::Semver),
            Scheme::Composer => composer::Requirement::parse(text).map(Requirement::Composer),
            Scheme::Pep440 => pep440::SpecifierSet::parse(text).map(Requirement::Pep440),
            Scheme::Npm => npm::Range::parse(text).map(Requirement::Npm),
        }
    }

    /// Which of `versions` the scheme's library would choose among for
    /// `requirement` by default (or with pre-releases allowed): Composer's
    /// stability flags and minimum stability, packaging's `SpecifierSet.filter`,
    /// node-semver's `satisfies`, the `semver` crate's `matches`. Without a
    /// requirement, stable versions only (pep440: pre-releases when no final exists).
    pub(crate) fn eligible(
        self,
        requirement: Option<&Requirement>,
        versions: &[Version],
        allow_prerelease: bool,
    ) -> Vec<bool> {
        if let (Scheme::Pep440, None) = (self, requirement) {
            let parsed: Vec<&pep440::Version> = versions.iter().filter_map(Version::as_pep440).collect();
            return pep440::SpecifierSet::default().filter_mask(&parsed, allow_prerelease.then_some(true));
        }
        let Some(requirement) = requirement else {
            return versions.iter().map(|v| allow_prerelease || v.is_stable()).collect();
        };
        match requirement {
            Requirement::Pep440(set) => {
                let parsed: Vec<&pep440::Version> = versions.iter().filter_map(Version::as_pep440).collect();
                set.filter_mask(&parsed, allow_prerelease.then_some(true))
            }
            _ => versions.iter().map(|v| requirement.allows(v, allow_prerelease)).collect(),
        }
    }
}

/// A semver requirement that also accepts `||` (for readiness `expect.semver`).
pub(crate) fn semver_requirement(text: &str) -> Result<Vec<::semver::VersionReq>, String> {
    semver::requirement(text)
}

/// A parsed version in one of the schemes.
#[derive(Debug, Clone)]
pub(crate) enum Version {
    Semver(semver::Version),
    Composer(composer::Version),
    Pep440(pep440::Version),
    Npm(npm::Version),
}

impl Version {
    fn as_pep440(&self) -> Option<&pep440::Version> {
        match self {
            Version::Pep440(version) => Some(version),
            _ => None,
        }
    }

    fn release(&self, index: usize) -> u64 {
        match self {
            Version::Semver(v) => [v.inner.major, v.inner.minor, v.inner.patch][index],
            Version::Composer(v) => v.numbers().get(index).copied().unwrap_or(0),
            Version::Pep440(v) => v.release.get(index).copied().unwrap_or(0),
            Version::Npm(v) => [v.major, v.minor, v.patch][index],
        }
    }

    pub(crate) fn major(&self) -> u64 {
        self.release(0)
    }

    pub(crate) fn minor(&self) -> u64 {
        self.release(1)
    }

    pub(crate) fn patch(&self) -> u64 {
        self.release(2)
    }

    /// The epoch of a PEP 440 version (`1!2.0`); 0 elsewhere.
    pub(crate) fn epoch(&self) -> u64 {
        match self {
            Version::Pep440(v) => v.epoch,
            _ => 0,
        }
    }

    /// Composer's patch level (`-pN`) or PEP 440's post-release number (`.postN`); 0 otherwise.
    pub(crate) fn patch_level(&self) -> u64 {
        match self {
            Version::Composer(v) => v.patch_level(),
            Version::Pep440(v) => v.post.unwrap_or(0),
            _ => 0,
        }
    }

    /// `stable`, `RC`, `beta`, `alpha` or `dev`.
    pub(crate) fn stability(&self) -> &'static str {
        match self {
            Version::Semver(v) => v.stability(),
            Version::Composer(v) => v.stability(),
            Version::Pep440(v) => v.stability(),
            Version::Npm(v) => v.stability(),
        }
    }

    pub(crate) fn is_stable(&self) -> bool {
        self.stability() == "stable"
    }

    /// How big a step from `self` to `to` is: `major` (an epoch or the first
    /// number changes), `minor`, `patch` (anything else) or `none`.
    pub(crate) fn change_to(&self, to: &Version) -> &'static str {
        if self.epoch() != to.epoch() || self.major() != to.major() {
            "major"
        } else if self.minor() != to.minor() {
            "minor"
        } else if self.cmp_same(to) != Ordering::Equal {
            "patch"
        } else {
            "none"
        }
    }

    /// Compares two versions of the same scheme, in the scheme's order.
    pub(crate) fn cmp_same(&self, other: &Version) -> Ordering {
        match (self, other) {
            (Version::Semver(a), Version::Semver(b)) => a.cmp(b),
            (Version::Composer(a), Version::Composer(b)) => a.sort_cmp(b),
            (Version::Pep440(a), Version::Pep440(b)) => a.cmp(b),
            (Version::Npm(a), Version::Npm(b)) => a.cmp(b),
            // Internal invariant: one selection never mixes schemes.
            _ => Ordering::Equal,
        }
    }
}

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Version::Semver(v) => &v.text,
            Version::Composer(v) => &v.text,
            Version::Pep440(v) => &v.text,
            Version::Npm(v) => &v.text,
        })
    }
}

/// A requirement in one of the schemes.
#[derive(Debug, Clone)]
pub(crate) enum Requirement {
    Semver(Vec<::semver::VersionReq>),
    Composer(composer::Requirement),
    Pep440(pep440::SpecifierSet),
    Npm(npm::Range),
}

impl Requirement {
    /// Whether `version` satisfies the requirement, pre-release policy aside
    /// (for matrix rows, `--to` and the current version).
    pub(crate) fn matches(&self, version: &Version) -> bool {
        match (self, version) {
            (Requirement::Composer(req), Version::Composer(v)) => req.matches(v),
            (Requirement::Pep440(set), Version::Pep440(v)) => set.contains(v, Some(true)),
            _ => self.allows(version, true),
        }
    }

    /// Whether `version` satisfies the requirement under the scheme's
    /// pre-release policy (lifted by `allow_prerelease`).
    pub(crate) fn allows(&self, version: &Version, allow_prerelease: bool) -> bool {
        match (self, version) {
            (Requirement::Semver(alternatives), Version::Semver(v)) => {
                semver::matches(alternatives, &v.inner, allow_prerelease)
            }
            (Requirement::Composer(req), Version::Composer(v)) => {
                let allowed = if allow_prerelease { "dev" } else { req.stability.unwrap_or("stable") };
                req.matches(v) && composer::stability_rank(v.stability()) <= composer::stability_rank(allowed)
            }
            (Requirement::Pep440(set), Version::Pep440(v)) => {
                set.contains(v, if allow_prerelease { Some(true) } else { set.prereleases() })
            }
            (Requirement::Npm(range), Version::Npm(v)) => range.test(v, allow_prerelease),
            _ => false,
        }
    }
}
