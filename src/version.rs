//! Versions and requirements in two schemes: `semver` (the `semver` crate as
//! is) and `composer` (Composer's own order and constraint language, which
//! Magento's `-pN` security patch levels need).
//!
//! Composer normalizes `2.4.6-p3` to `2.4.6.0-patch3` and compares with PHP's
//! `version_compare`, so a patch level sorts *after* its release:
//! `2.4.6 < 2.4.6-p1 < 2.4.6-p10 < 2.4.7-beta1 < 2.4.7`. This module mirrors
//! `composer/semver`'s `VersionParser` for the subset of strings real release
//! trains use, and rejects the strings Composer rejects. It knows nothing of
//! playbooks or selection.

use std::cmp::Ordering;
use std::fmt;

/// A version scheme.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum Scheme {
    Semver,
    Composer,
}

impl Scheme {
    pub(crate) fn parse(name: &str) -> Option<Scheme> {
        match name {
            "semver" => Some(Scheme::Semver),
            "composer" => Some(Scheme::Composer),
            _ => None,
        }
    }

    pub(crate) fn version(self, text: &str) -> Result<Version, String> {
        match self {
            Scheme::Semver => {
                let trimmed = text.trim();
                let bare = trimmed.strip_prefix('v').unwrap_or(trimmed);
                semver::Version::parse(bare)
                    .map(|version| Version::Semver(version, trimmed.to_owned()))
                    .map_err(|error| format!("`{text}` is not a semantic version: {error}"))
            }
            Scheme::Composer => ComposerVersion::parse(text).map(Version::Composer),
        }
    }

    pub(crate) fn requirement(self, text: &str) -> Result<Requirement, String> {
        match self {
            Scheme::Semver => semver_requirement(text).map(Requirement::Semver),
            Scheme::Composer => Constraint::parse(text).map(Requirement::Composer),
        }
    }
}

/// A semver requirement that also accepts `||` between alternatives.
pub(crate) fn semver_requirement(text: &str) -> Result<Vec<semver::VersionReq>, String> {
    text.split("||")
        .map(|part| {
            semver::VersionReq::parse(part.trim())
                .map_err(|error| format!("`{}` is not a semver requirement: {error}", part.trim()))
        })
        .collect()
}

/// A parsed version in one of the schemes.
#[derive(Debug, Clone)]
pub(crate) enum Version {
    Semver(semver::Version, String),
    Composer(ComposerVersion),
}

impl Version {
    pub(crate) fn major(&self) -> u64 {
        match self {
            Version::Semver(version, _) => version.major,
            Version::Composer(version) => version.parts[0],
        }
    }

    pub(crate) fn minor(&self) -> u64 {
        match self {
            Version::Semver(version, _) => version.minor,
            Version::Composer(version) => version.parts[1],
        }
    }

    pub(crate) fn patch(&self) -> u64 {
        match self {
            Version::Semver(version, _) => version.patch,
            Version::Composer(version) => version.parts[2],
        }
    }

    /// The security patch level (`-pN`); 0 for none and in semver.
    pub(crate) fn patch_level(&self) -> u64 {
        match self {
            Version::Semver(..) => 0,
            Version::Composer(version) => match version.stage {
                Stage::Patch => version.stage_number.first().copied().unwrap_or(0),
                _ => 0,
            },
        }
    }

    /// `stable`, `RC`, `beta`, `alpha` or `dev`.
    pub(crate) fn stability(&self) -> &'static str {
        match self {
            Version::Semver(version, _) => {
                let pre = version.pre.as_str().to_ascii_lowercase();
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
            Version::Composer(version) => version.stage.stability(),
        }
    }

    pub(crate) fn is_stable(&self) -> bool {
        self.stability() == "stable"
    }

    /// How big a step from `self` to `to` is: `major`, `minor`, `patch` or `none`.
    pub(crate) fn change_to(&self, to: &Version) -> &'static str {
        if self.major() != to.major() {
            "major"
        } else if self.minor() != to.minor() {
            "minor"
        } else if self.cmp_same(to) != Ordering::Equal {
            "patch"
        } else {
            "none"
        }
    }

    /// Compares two versions of the same scheme.
    pub(crate) fn cmp_same(&self, other: &Version) -> Ordering {
        match (self, other) {
            (Version::Semver(a, _), Version::Semver(b, _)) => a.cmp(b),
            (Version::Composer(a), Version::Composer(b)) => a.cmp(b),
            // Internal invariant: one selection never mixes schemes.
            _ => Ordering::Equal,
        }
    }
}

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Version::Semver(_, text) => f.write_str(text),
            Version::Composer(version) => f.write_str(&version.text),
        }
    }
}

/// A requirement in one of the schemes.
#[derive(Debug, Clone)]
pub(crate) enum Requirement {
    Semver(Vec<semver::VersionReq>),
    Composer(Constraint),
}

impl Requirement {
    pub(crate) fn matches(&self, version: &Version) -> bool {
        match (self, version) {
            (Requirement::Semver(alternatives), Version::Semver(version, _)) => {
                alternatives.iter().any(|req| req.matches(version))
            }
            (Requirement::Composer(constraint), Version::Composer(version)) => constraint.matches(version),
            _ => false,
        }
    }
}

/// Stability stages in Composer's order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Stage {
    Dev,
    Alpha,
    Beta,
    Rc,
    Stable,
    Patch,
}

impl Stage {
    fn stability(self) -> &'static str {
        match self {
            Stage::Dev => "dev",
            Stage::Alpha => "alpha",
            Stage::Beta => "beta",
            Stage::Rc => "RC",
            Stage::Stable | Stage::Patch => "stable",
        }
    }
}

/// A version as Composer normalizes it: four numbers, a stage and its numbers.
#[derive(Debug, Clone)]
pub(crate) struct ComposerVersion {
    parts: [u64; 4],
    stage: Stage,
    stage_number: Vec<u64>,
    /// A trailing `-dev` after a stage (`2.4.7-beta1-dev`).
    dev: bool,
    text: String,
}

impl PartialEq for ComposerVersion {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}

impl Eq for ComposerVersion {}

impl PartialOrd for ComposerVersion {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for ComposerVersion {
    fn cmp(&self, other: &Self) -> Ordering {
        self.parts
            .cmp(&other.parts)
            .then(self.stage.cmp(&other.stage))
            .then_with(|| compare_numbers(&self.stage_number, &other.stage_number))
            // `beta1-dev` comes before `beta1`.
            .then(other.dev.cmp(&self.dev))
    }
}

/// Compares number lists as `version_compare` does: a missing part sorts first.
fn compare_numbers(a: &[u64], b: &[u64]) -> Ordering {
    for i in 0..a.len().max(b.len()) {
        match (a.get(i), b.get(i)) {
            (Some(x), Some(y)) if x != y => return x.cmp(y),
            (Some(_), None) => return Ordering::Greater,
            (None, Some(_)) => return Ordering::Less,
            _ => {}
        }
    }
    Ordering::Equal
}

impl ComposerVersion {
    /// Parses a version as Composer's `VersionParser::normalize` would accept it.
    pub(crate) fn parse(text: &str) -> Result<ComposerVersion, String> {
        let invalid = || format!("`{text}` is not a valid Composer version");
        let trimmed = text.trim();
        let lower = trimmed.to_ascii_lowercase();
        let rest = lower.strip_prefix('v').unwrap_or(&lower);
        // The numeric parts: one to four, separated by dots.
        let numeric_end = rest.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(rest.len());
        let (numeric, mut modifier) = rest.split_at(numeric_end);
        // A dot before the modifier belongs to the modifier (`2.4.6.p3` is odd but legal).
        let numeric = match numeric.strip_suffix('.') {
            Some(stripped) if !modifier.is_empty() => {
                modifier = &rest[numeric_end - 1..];
                stripped
            }
            _ => numeric,
        };
        let numbers: Vec<&str> = numeric.split('.').collect();
        if numbers.is_empty() || numbers.len() > 4 || numbers.iter().any(|n| n.is_empty()) {
            return Err(invalid());
        }
        let mut parts = [0u64; 4];
        for (slot, number) in parts.iter_mut().zip(&numbers) {
            *slot = number.parse().map_err(|_| invalid())?;
        }
        let (stage, stage_number, dev) = parse_modifier(modifier).ok_or_else(invalid)?;
        Ok(ComposerVersion { parts, stage, stage_number, dev, text: trimmed.to_owned() })
    }

    /// The normalized form, as Composer prints it (`2.4.6.0-patch3`).
    #[cfg(test)]
    pub(crate) fn normalized(&self) -> String {
        let [a, b, c, d] = self.parts;
        let mut out = format!("{a}.{b}.{c}.{d}");
        let word = match self.stage {
            Stage::Stable => None,
            Stage::Dev => Some("dev"),
            Stage::Alpha => Some("alpha"),
            Stage::Beta => Some("beta"),
            Stage::Rc => Some("RC"),
            Stage::Patch => Some("patch"),
        };
        if let Some(word) = word {
            out.push('-');
            out.push_str(word);
            let numbers: Vec<String> = self.stage_number.iter().map(u64::to_string).collect();
            out.push_str(&numbers.join("."));
        }
        if self.dev {
            out.push_str("-dev");
        }
        out
    }

    fn bound(parts: [u64; 4], stage: Stage) -> ComposerVersion {
        ComposerVersion { parts, stage, stage_number: Vec::new(), dev: false, text: String::new() }
    }
}

/// Parses Composer's modifier: `[._-]?(stable|beta|b|RC|alpha|a|patch|pl|p)((?:[.-]?\d+)*)?([.-]?dev)?`.
fn parse_modifier(modifier: &str) -> Option<(Stage, Vec<u64>, bool)> {
    if modifier.is_empty() {
        return Some((Stage::Stable, Vec::new(), false));
    }
    let mut rest = modifier.strip_prefix(['.', '_', '-']).unwrap_or(modifier);
    if rest == "dev" {
        return Some((Stage::Dev, Vec::new(), false));
    }
    // Longest words first, so `beta` is not read as `b` + `eta`.
    const WORDS: [(&str, Stage); 9] = [
        ("stable", Stage::Stable),
        ("alpha", Stage::Alpha),
        ("patch", Stage::Patch),
        ("beta", Stage::Beta),
        ("rc", Stage::Rc),
        ("pl", Stage::Patch),
        ("a", Stage::Alpha),
        ("b", Stage::Beta),
        ("p", Stage::Patch),
    ];
    let (word, stage) = WORDS.iter().find(|(word, _)| rest.starts_with(word))?;
    rest = &rest[word.len()..];
    let mut numbers = Vec::new();
    loop {
        let after_separator = rest.strip_prefix(['.', '-']).unwrap_or(rest);
        let digits = after_separator.find(|c: char| !c.is_ascii_digit()).unwrap_or(after_separator.len());
        if digits == 0 {
            break;
        }
        numbers.push(after_separator[..digits].parse().ok()?);
        rest = &after_separator[digits..];
    }
    let dev = match rest {
        "" => false,
        "dev" | ".dev" | "-dev" => true,
        _ => return None,
    };
    Some((*stage, numbers, dev))
}

/// Composer's comparison operators.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
}

/// One comparison against a normalized version.
#[derive(Debug, Clone)]
struct Comparison {
    op: Op,
    version: ComposerVersion,
}

impl Comparison {
    fn matches(&self, version: &ComposerVersion) -> bool {
        let ordering = version.cmp(&self.version);
        match self.op {
            Op::Eq => ordering == Ordering::Equal,
            Op::Ne => ordering != Ordering::Equal,
            Op::Lt => ordering == Ordering::Less,
            Op::Le => ordering != Ordering::Greater,
            Op::Gt => ordering == Ordering::Greater,
            Op::Ge => ordering != Ordering::Less,
        }
    }
}

/// A Composer constraint: alternatives (`||`) of conjunctions (`,` or space).
#[derive(Debug, Clone)]
pub(crate) struct Constraint {
    alternatives: Vec<Vec<Comparison>>,
}

impl Constraint {
    pub(crate) fn parse(text: &str) -> Result<Constraint, String> {
        let trimmed = text.trim();
        if trimmed.is_empty() {
            return Err("an empty version requirement".to_owned());
        }
        let mut alternatives = Vec::new();
        for alternative in split_or(trimmed) {
            let alternative = alternative.trim();
            if alternative.is_empty() {
                return Err(format!("`{text}` has an empty alternative around `||`"));
            }
            let mut all = Vec::new();
            for part in split_and(alternative) {
                all.extend(parse_single(&part).map_err(|reason| format!("`{text}`: {reason}"))?);
            }
            alternatives.push(all);
        }
        Ok(Constraint { alternatives })
    }

    pub(crate) fn matches(&self, version: &ComposerVersion) -> bool {
        self.alternatives.iter().any(|all| all.iter().all(|comparison| comparison.matches(version)))
    }
}

fn split_or(text: &str) -> Vec<&str> {
    let mut parts = Vec::new();
    let mut rest = text;
    while let Some(index) = rest.find('|') {
        parts.push(&rest[..index]);
        rest = rest[index + 1..].strip_prefix('|').unwrap_or(&rest[index + 1..]);
    }
    parts.push(rest);
    parts
}

/// Splits a conjunction on commas and spaces, keeping hyphen ranges and
/// operators followed by a space (`>= 2.4`) together.
fn split_and(text: &str) -> Vec<String> {
    let tokens: Vec<&str> = text.split([',', ' ']).filter(|t| !t.is_empty()).collect();
    let mut parts: Vec<String> = Vec::new();
    let mut i = 0;
    while i < tokens.len() {
        let token = tokens[i];
        if tokens.get(i + 1) == Some(&"-") && i + 2 < tokens.len() {
            parts.push(format!("{} - {}", token, tokens[i + 2]));
            i += 3;
        } else if matches!(token, ">" | ">=" | "<" | "<=" | "=" | "==" | "!=" | "<>" | "~" | "^")
            && i + 1 < tokens.len()
        {
            parts.push(format!("{token}{}", tokens[i + 1]));
            i += 2;
        } else {
            parts.push(token.to_owned());
            i += 1;
        }
    }
    parts
}

/// The numeric parts a constraint wrote, as Composer's `versionRegex` reads them.
struct Partial {
    numbers: Vec<u64>,
    /// The whole version text after the numbers (a stability modifier), if any.
    has_modifier: bool,
    text: String,
}

fn parse_partial(text: &str) -> Result<Partial, String> {
    let version = ComposerVersion::parse(text)?;
    let lower = text.trim().to_ascii_lowercase();
    let rest = lower.strip_prefix('v').unwrap_or(&lower);
    let numeric_end = rest.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(rest.len());
    let numbers: Vec<u64> =
        rest[..numeric_end].trim_end_matches('.').split('.').take(4).map(|n| n.parse().unwrap_or(0)).collect();
    Ok(Partial {
        numbers,
        has_modifier: version.stage != Stage::Stable || version.dev || numeric_end < rest.len(),
        text: text.trim().to_owned(),
    })
}

/// Composer's `manipulateVersionString`: keep `position` parts (1-based),
/// add `increment` to the last kept one, zero the rest.
fn manipulate(numbers: &[u64], position: usize, increment: u64) -> [u64; 4] {
    let mut parts = [0u64; 4];
    for (i, slot) in parts.iter_mut().enumerate().take(position) {
        *slot = numbers.get(i).copied().unwrap_or(0);
    }
    parts[position - 1] += increment;
    parts
}

fn ge_dev(parts: [u64; 4]) -> Comparison {
    Comparison { op: Op::Ge, version: ComposerVersion::bound(parts, Stage::Dev) }
}

fn lt_dev(parts: [u64; 4]) -> Comparison {
    Comparison { op: Op::Lt, version: ComposerVersion::bound(parts, Stage::Dev) }
}

/// The lower bound of `~`, `^` and hyphen ranges: the version itself, with
/// `-dev` added when it names no stability.
fn lower_bound(partial: &Partial) -> Result<Comparison, String> {
    let mut version = ComposerVersion::parse(&partial.text)?;
    if !partial.has_modifier {
        version.stage = Stage::Dev;
    }
    Ok(Comparison { op: Op::Ge, version })
}

fn parse_single(text: &str) -> Result<Vec<Comparison>, String> {
    if text.contains('@') {
        return Err(format!("stability flags such as `{text}` are not supported"));
    }
    if text == "*" || text == "x" || text == "X" {
        return Ok(vec![ge_dev([0; 4])]);
    }
    if let Some((from, to)) = text.split_once(" - ") {
        let from = parse_partial(from)?;
        let to = parse_partial(to)?;
        let mut comparisons = vec![lower_bound(&from)?];
        if to.numbers.len() >= 3 || to.has_modifier {
            comparisons.push(Comparison { op: Op::Le, version: ComposerVersion::parse(&to.text)? });
        } else {
            comparisons.push(lt_dev(manipulate(&to.numbers, to.numbers.len(), 1)));
        }
        return Ok(comparisons);
    }
    if let Some(rest) = text.strip_prefix('~') {
        let rest = rest.strip_prefix('>').unwrap_or(rest);
        let partial = parse_partial(rest)?;
        let position = partial.numbers.len();
        let high = manipulate(&partial.numbers, position.saturating_sub(1).max(1), 1);
        return Ok(vec![lower_bound(&partial)?, lt_dev(high)]);
    }
    if let Some(rest) = text.strip_prefix('^') {
        let partial = parse_partial(rest)?;
        let n = &partial.numbers;
        let position = if n[0] != 0 || n.len() < 2 {
            1
        } else if n[1] != 0 || n.len() < 3 {
            2
        } else {
            3
        };
        return Ok(vec![lower_bound(&partial)?, lt_dev(manipulate(n, position, 1))]);
    }
    if let Some(prefix) = wildcard_prefix(text) {
        let numbers: Vec<u64> = prefix
            .split('.')
            .map(|n| n.parse().map_err(|_| format!("`{text}` is not a valid wildcard")))
            .collect::<Result<_, _>>()?;
        if numbers.len() > 3 {
            return Err(format!("`{text}` is not a valid wildcard"));
        }
        let position = numbers.len();
        let low = manipulate(&numbers, position, 0);
        let high = lt_dev(manipulate(&numbers, position, 1));
        return Ok(if low == [0; 4] { vec![high] } else { vec![ge_dev(low), high] });
    }
    let (op, rest) = [
        (">=", Op::Ge),
        ("<=", Op::Le),
        ("<>", Op::Ne),
        ("!=", Op::Ne),
        ("==", Op::Eq),
        (">", Op::Gt),
        ("<", Op::Lt),
        ("=", Op::Eq),
    ]
    .iter()
    .find_map(|(prefix, op)| text.strip_prefix(prefix).map(|rest| (*op, rest.trim())))
    .unwrap_or((Op::Eq, text));
    let mut version = ComposerVersion::parse(rest)?;
    let partial = parse_partial(rest)?;
    if matches!(op, Op::Lt | Op::Ge) && !partial.has_modifier {
        version.stage = Stage::Dev;
    }
    Ok(vec![Comparison { op, version }])
}

/// `2.4.*` → `2.4`; `None` for anything that is not an x-range.
fn wildcard_prefix(text: &str) -> Option<&str> {
    let text = text.strip_prefix('v').unwrap_or(text);
    let mut prefix = text;
    let mut stripped = false;
    while let Some(rest) =
        prefix.strip_suffix(".*").or_else(|| prefix.strip_suffix(".x")).or_else(|| prefix.strip_suffix(".X"))
    {
        prefix = rest;
        stripped = true;
    }
    (stripped && !prefix.is_empty() && prefix.chars().all(|c| c.is_ascii_digit() || c == '.')).then_some(prefix)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(text: &str) -> ComposerVersion {
        ComposerVersion::parse(text).unwrap()
    }

    fn satisfies(constraint: &str, version: &str) -> bool {
        Constraint::parse(constraint).unwrap().matches(&v(version))
    }

    #[test]
    fn magento_release_train_orders_like_composer() {
        let train = [
            "2.4.6",
            "2.4.6-p1",
            "2.4.6-p2",
            "2.4.6-p9",
            "2.4.6-p10",
            "2.4.6-p15",
            "2.4.7-alpha1",
            "2.4.7-beta1",
            "2.4.7-RC1",
            "2.4.7",
            "2.4.7-p1",
        ];
        for pair in train.windows(2) {
            assert!(v(pair[0]) < v(pair[1]), "{} < {}", pair[0], pair[1]);
        }
    }

    #[test]
    fn normalizes_like_composer() {
        assert_eq!(v("2.4.6-p3").normalized(), "2.4.6.0-patch3");
        assert_eq!(v("2.4.6-pl3"), v("2.4.6-p3"));
        assert_eq!(v("v2.4.7-rc1").normalized(), "2.4.7.0-RC1");
        assert_eq!(v("2.4.6").normalized(), "2.4.6.0");
    }

    #[test]
    fn rejects_what_composer_rejects() {
        for bad in ["2.4.3-ext-7", "2.4.7-p1.*", "2.4.x.y", "", "1.2.3.4.5", "2.4.6-foo"] {
            assert!(ComposerVersion::parse(bad).is_err() || Constraint::parse(bad).is_err(), "{bad}");
        }
        assert!(Constraint::parse("2.4.7-p1.*").is_err());
    }

    #[test]
    fn line_requirements_include_patch_levels() {
        assert!(satisfies(">=2.4.6 <2.4.7", "2.4.6-p15"));
        assert!(satisfies("2.4.6.*", "2.4.6-p3"));
        assert!(satisfies("~2.4.6", "2.4.9"));
        assert!(!satisfies("~2.4.6", "2.5.0"));
        assert!(!satisfies("2.4.6", "2.4.6-p1"));
        assert!(satisfies(">=2.4.6-p3", "2.4.7"));
        assert!(!satisfies(">=2.4.6-p3", "2.4.6-p2"));
        assert!(!satisfies("<2.4.7", "2.4.7-beta1"));
        assert!(satisfies("^2.4", "2.4.8-p2"));
        assert!(satisfies("2.4.0 - 2.4.6", "2.4.6"));
        assert!(!satisfies("2.4.0 - 2.4.6", "2.4.6-p1"));
        assert!(satisfies("2.4.0 - 2.4", "2.4.9"));
        assert!(satisfies("~2.4.6 || ^3.0", "3.1.0"));
        assert!(satisfies(">=2.4.7, <2.4.9", "2.4.8-p1"));
        assert!(satisfies("!= 2.4.7", "2.4.8"));
    }
}

/// Composer itself is the oracle: `tests/composer/generate` asks composer/semver
/// how it orders real Magento versions and which requirements they satisfy.
#[cfg(test)]
mod composer_oracle {
    use super::*;

    fn fixture() -> serde_json::Value {
        serde_json::from_str(include_str!("../tests/fixtures/composer-semver.json")).expect("the fixture is JSON")
    }

    fn version(text: &str) -> ComposerVersion {
        ComposerVersion::parse(text).unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn agrees_with_every_comparison() {
        let fixture = fixture();
        let rows = fixture["comparisons"].as_array().unwrap();
        assert!(rows.len() >= 60, "the fixture has {} comparisons", rows.len());
        for row in rows {
            let (a, b) = (row["a"].as_str().unwrap(), row["b"].as_str().unwrap());
            let expected = match row["cmp"].as_i64().unwrap() {
                -1 => Ordering::Less,
                0 => Ordering::Equal,
                _ => Ordering::Greater,
            };
            assert_eq!(version(a).cmp(&version(b)), expected, "{a} vs {b}");
        }
        let sorted: Vec<&str> = fixture["sorted"].as_array().unwrap().iter().map(|v| v.as_str().unwrap()).collect();
        for pair in sorted.windows(2) {
            assert_ne!(version(pair[0]).cmp(&version(pair[1])), Ordering::Greater, "{} then {}", pair[0], pair[1]);
        }
    }

    #[test]
    fn agrees_with_every_requirement() {
        let fixture = fixture();
        let rows = fixture["satisfies"].as_array().unwrap();
        assert!(rows.len() >= 40, "the fixture has {} requirement rows", rows.len());
        for row in rows {
            let (requirement, text) = (row["requirement"].as_str().unwrap(), row["version"].as_str().unwrap());
            let constraint = Constraint::parse(requirement).unwrap_or_else(|e| panic!("{e}"));
            assert_eq!(
                constraint.matches(&version(text)),
                row["satisfies"].as_bool().unwrap(),
                "{text} satisfies {requirement}?"
            );
        }
    }

    #[test]
    fn rejects_what_composer_rejects() {
        let fixture = fixture();
        for text in fixture["rejected_versions"].as_array().unwrap() {
            let text = text.as_str().unwrap();
            assert!(ComposerVersion::parse(text).is_err(), "`{text}` was accepted");
        }
        for text in fixture["rejected_requirements"].as_array().unwrap() {
            let text = text.as_str().unwrap();
            assert!(Constraint::parse(text).is_err(), "`{text}` was accepted");
        }
    }
}
