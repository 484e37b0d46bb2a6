//! The `composer` scheme: a port of `composer/semver` (`VersionParser`,
//! `Constraint`, `MultiConstraint`, `Comparator`, `Semver`) and of PHP's
//! `version_compare`, which Composer compares normalized versions with.
//!
//! Versions are kept as Composer normalizes them (`2.4.6-p3` → `2.4.6.0-patch3`,
//! `2010-01-02` → `2010.01.02`, `dev-main`), and every comparison goes through
//! the same `version_compare` PHP runs, so the order is Composer's: a patch level
//! sorts after its release, `p10` after `p9`, alpha < beta < RC < stable.
//! The regular expressions are Composer's own, character for character (possessive
//! quantifiers and look-arounds included, hence `fancy_regex`). The conformance
//! tests at the bottom replay the vectors of composer/semver's own test suite.
//! This module knows nothing of playbooks or selection.

// The whole library surface is kept (and exercised by the conformance tests),
// though selection uses only part of it.
#![cfg_attr(not(test), allow(dead_code))]

use std::cmp::Ordering;
use std::fmt;
use std::sync::LazyLock;

use fancy_regex::{Captures, Regex};

/// Composer's `VersionParser::$modifierRegex`.
const MODIFIER: &str = r"[._-]?(?:(stable|beta|b|RC|alpha|a|patch|pl|p)((?:[.-]?[0-9]+)*+)?)?([.-]?dev)?";

/// PHP's `PHP_INT_MAX`, the version of `Bound::positiveInfinity()`.
const PHP_INT_MAX: &str = "9223372036854775807";

fn regex(pattern: &str) -> Regex {
    Regex::new(pattern).unwrap_or_else(|error| panic!("internal error: bad regex {pattern}: {error}"))
}

macro_rules! regex {
    ($name:ident, $pattern:expr) => {
        static $name: LazyLock<Regex> = LazyLock::new(|| regex(&$pattern));
    };
}

regex!(ALIAS, r"^([^,\s]++) ++as ++([^,\s]++)$");
regex!(STABILITY_FLAG, r"(?i)@(?:stable|RC|beta|alpha|dev)$");
regex!(BUILD_METADATA, r"^([^,\s+]++)\+[^\s]++$");
regex!(CLASSICAL, format!(r"(?i)^v?([0-9]{{1,5}}+)(\.[0-9]++)?(\.[0-9]++)?(\.[0-9]++)?{MODIFIER}$"));
regex!(DATE, format!(r"(?i)^v?([0-9]{{4}}(?:[.:-]?[0-9]{{2}}){{1,6}}(?:[.:-]?[0-9]{{1,3}}){{0,2}}){MODIFIER}$"));
regex!(DEV_SUFFIX, r"(?i)(.*?)[.-]?dev$");
regex!(BRANCH, r"(?i)^v?([0-9]++)(\.(?:[0-9]++|[xX*]))?(\.(?:[0-9]++|[xX*]))?(\.(?:[0-9]++|[xX*]))?$");
regex!(NUMERIC_ALIAS, r"(?i)^(?P<version>([0-9]++\.)*[0-9]++)(?:\.x)?-dev$");
regex!(STABILITY_MODIFIER, format!(r"(?i){MODIFIER}(?:\+.*)?$"));
regex!(OR_SPLIT, r"\s*\|\|?\s*");
regex!(AND_SPLIT, r"(?<!^|as|[=>< ,]) *(?<!-)[, ](?!-) *(?!,|as|$)");
regex!(CONSTRAINT_STABILITY, r"(?i)^([^,\s]*?)@(stable|RC|beta|alpha|dev)$");
regex!(REFERENCE, r"(?i)^(dev-[^,\s@]+?|[^,\s@]+?\.x-dev)#.+$");
regex!(MATCH_ANY, r"(?i)^(v)?[xX*](\.[xX*])*$");
regex!(TILDE, format!(r"(?i)^~>?{}$", version_regex()));
regex!(CARET, format!(r"(?i)^\^{}($)", version_regex()));
regex!(X_RANGE, r"^v?([0-9]++)(?:\.([0-9]++))?(?:\.([0-9]++))?(?:\.[xX*])++$");
regex!(HYPHEN, format!(r"(?i)^(?P<from>{0}) +- +(?P<to>{0})($)", version_regex()));
regex!(BASIC, r"^(<>|!=|>=?|<=?|==?)?\s*(.*)");
regex!(DEV_RECOVERY, r"^[0-9a-zA-Z-./]+$");
regex!(ENDS_WITH_MODIFIER, format!(r"-{MODIFIER}$"));
regex!(EXPLICIT_FLAG, r"(?i)^[^@]*?@(stable|RC|beta|alpha|dev)$");
regex!(FLAG_ALIAS, r"^([^,\s@]+) as .+$");
regex!(SINGLE_VERSION, r"^[^,\s@]+$");

fn version_regex() -> String {
    format!(r"v?([0-9]++)(?:\.([0-9]++))?(?:\.([0-9]++))?(?:\.([0-9]++))?(?:{MODIFIER}|\.([xX*][.-]?dev))(?:\+[^\s]+)?")
}

fn captures<'t>(regex: &Regex, text: &'t str) -> Option<Captures<'t, str>> {
    regex.captures(text).ok().flatten()
}

fn is_match(regex: &Regex, text: &str) -> bool {
    regex.is_match(text).unwrap_or(false)
}

/// A capture group's text; `""` when it did not take part (as PHP fills gaps).
fn group<'t>(captures: &Captures<'t, str>, index: usize) -> &'t str {
    captures.get(index).map_or("", |m| m.as_str())
}

/// PHP's `preg_split` without flags.
fn split<'t>(regex: &Regex, text: &'t str) -> Vec<&'t str> {
    let mut parts = Vec::new();
    let mut start = 0;
    for found in regex.find_iter(text).flatten() {
        if found.start() == found.end() {
            continue;
        }
        parts.push(&text[start..found.start()]);
        start = found.end();
    }
    parts.push(&text[start..]);
    parts
}

/// PHP's `trim()`: spaces, tabs, newlines, carriage returns, NUL and vertical tabs.
fn php_trim(text: &str) -> &str {
    text.trim_matches([' ', '\t', '\n', '\r', '\0', '\x0B'])
}

/// PHP's `empty()` on a matched group: `""` and `"0"` are empty.
fn empty(text: &str) -> bool {
    text.is_empty() || text == "0"
}

fn starts_with_ignore_case(text: &str, prefix: &str) -> bool {
    text.len() >= prefix.len() && text.as_bytes()[..prefix.len()].eq_ignore_ascii_case(prefix.as_bytes())
}

/// `VersionParser::normalize`. `full` is the whole constraint, for the message.
pub(crate) fn normalize(input: &str, full: Option<&str>) -> Result<String, String> {
    let trimmed = php_trim(input);
    let original = trimmed;
    let full = full.unwrap_or(trimmed);
    let mut version = trimmed.to_owned();
    if let Some(found) = captures(&ALIAS, &version) {
        version = group(&found, 1).to_owned();
    }
    if let Ok(Some(found)) = STABILITY_FLAG.find(&version) {
        version.truncate(found.start());
    }
    if matches!(version.as_str(), "master" | "trunk" | "default") {
        version = format!("dev-{version}");
    }
    if starts_with_ignore_case(&version, "dev-") {
        return Ok(format!("dev-{}", &version[4..]));
    }
    if let Some(found) = captures(&BUILD_METADATA, &version) {
        version = group(&found, 1).to_owned();
    }
    let parsed = if let Some(found) = captures(&CLASSICAL, &version) {
        let part = |i: usize| if empty(group(&found, i)) { ".0".to_owned() } else { group(&found, i).to_owned() };
        Some((format!("{}{}{}{}", group(&found, 1), part(2), part(3), part(4)), found, 5))
    } else if let Some(found) = captures(&DATE, &version) {
        let numbers: String = group(&found, 1).chars().map(|c| if c.is_ascii_digit() { c } else { '.' }).collect();
        Some((numbers, found, 2))
    } else {
        None
    };
    if let Some((mut normalized, found, index)) = parsed {
        let word = group(&found, index);
        if !empty(word) {
            if word == "stable" {
                return Ok(normalized);
            }
            normalized.push('-');
            normalized.push_str(&expand_stability(word));
            normalized.push_str(group(&found, index + 1).trim_start_matches(['.', '-']));
        }
        if !empty(group(&found, index + 2)) {
            normalized.push_str("-dev");
        }
        return Ok(normalized);
    }
    if let Some(found) = captures(&DEV_SUFFIX, &version) {
        let normalized = normalize_branch(group(&found, 1));
        if !normalized.contains("dev-") {
            return Ok(normalized);
        }
    }
    let quoted = fancy_regex::escape(&version);
    let mut extra = String::new();
    if is_match(&regex(&format!(r" +as +{quoted}(?:@(?:stable|RC|beta|alpha|dev))?$")), full) {
        extra = format!(" in `{full}`: the alias must be an exact version");
    } else if is_match(&regex(&format!(r"^{quoted}(?:@(?:stable|RC|beta|alpha|dev))? +as +")), full) {
        extra =
            format!(" in `{full}`: the alias source must be an exact version; a branch name needs the `dev-` prefix");
    }
    Err(format!("`{original}` is not a valid Composer version{extra}"))
}

fn expand_stability(word: &str) -> String {
    match word.to_ascii_lowercase().as_str() {
        "a" => "alpha".to_owned(),
        "b" => "beta".to_owned(),
        "p" | "pl" => "patch".to_owned(),
        "rc" => "RC".to_owned(),
        other => other.to_owned(),
    }
}

/// `VersionParser::normalizeBranch`.
pub(crate) fn normalize_branch(name: &str) -> String {
    let name = php_trim(name);
    if let Some(found) = captures(&BRANCH, name) {
        let mut version = String::new();
        for i in 1..5 {
            match found.get(i) {
                Some(part) => version.push_str(&part.as_str().replace(['*', 'X'], "x")),
                None => version.push_str(".x"),
            }
        }
        return format!("{}-dev", version.replace('x', "9999999"));
    }
    format!("dev-{name}")
}

/// `VersionParser::parseNumericAliasPrefix`.
pub(crate) fn parse_numeric_alias_prefix(branch: &str) -> Option<String> {
    captures(&NUMERIC_ALIAS, branch).map(|found| format!("{}.", group(&found, 1)))
}

/// `VersionParser::normalizeDefaultBranch`.
fn normalize_default_branch(name: &str) -> &str {
    match name {
        "dev-master" | "dev-default" | "dev-trunk" => "9999999-dev",
        other => other,
    }
}

/// `VersionParser::parseStability`: `stable`, `RC`, `beta`, `alpha` or `dev`.
pub(crate) fn parse_stability(version: &str) -> &'static str {
    let version = match version.find('#') {
        Some(index) if version[index + 1..].chars().next().is_some_and(|c| c != '\n') => &version[..index],
        _ => version,
    };
    if version.starts_with("dev-") || version.ends_with("-dev") {
        return "dev";
    }
    let lower = version.to_ascii_lowercase();
    let Some(found) = captures(&STABILITY_MODIFIER, &lower) else {
        return "stable";
    };
    if !empty(group(&found, 3)) {
        return "dev";
    }
    match group(&found, 1) {
        "beta" | "b" => "beta",
        "alpha" | "a" => "alpha",
        "rc" => "RC",
        _ => "stable",
    }
}

/// Composer's stability ranks (`BasePackage::STABILITIES`): lower is more stable.
pub(crate) fn stability_rank(stability: &str) -> u8 {
    match stability.to_ascii_lowercase().as_str() {
        "stable" => 0,
        "rc" => 5,
        "beta" => 10,
        "alpha" => 15,
        _ => 20,
    }
}

/// PHP's `version_compare($a, $b)`: -1, 0 or 1.
pub(crate) fn php_version_compare(a: &str, b: &str) -> Ordering {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    if a.is_empty() || b.is_empty() {
        return a.is_empty().cmp(&b.is_empty()).reverse();
    }
    let a = if a[0] == b'#' { a.to_vec() } else { canonicalize(a) };
    let b = if b[0] == b'#' { b.to_vec() } else { canonicalize(b) };
    compare_canonical(&a, &b)
}

/// `php_canonicalize_version`: `-`, `_`, `+` and other punctuation become `.`,
/// and a `.` goes between digits and letters.
fn canonicalize(version: &[u8]) -> Vec<u8> {
    let is_digit = |c: u8| c.is_ascii_digit();
    let is_non_digit = |c: u8| !c.is_ascii_digit() && c != b'.';
    let mut out = vec![version[0]];
    let mut last = version[0];
    for &c in &version[1..] {
        let dot = |out: &mut Vec<u8>| {
            if out.last() != Some(&b'.') {
                out.push(b'.');
            }
        };
        if matches!(c, b'-' | b'_' | b'+') {
            dot(&mut out);
        } else if (is_non_digit(last) && is_digit(c)) || (is_digit(last) && is_non_digit(c)) {
            dot(&mut out);
            out.push(c);
        } else if !c.is_ascii_alphanumeric() {
            dot(&mut out);
        } else {
            out.push(c);
        }
        last = c;
    }
    out
}

/// `compare_special_version_forms`: dev < alpha = a < beta = b < RC = rc < # < pl = p.
fn special_form(form: &[u8]) -> i32 {
    const FORMS: [(&[u8], i32); 10] = [
        (b"dev", 0),
        (b"alpha", 1),
        (b"a", 1),
        (b"beta", 2),
        (b"b", 2),
        (b"RC", 3),
        (b"rc", 3),
        (b"#", 4),
        (b"pl", 5),
        (b"p", 5),
    ];
    FORMS.iter().find(|(name, _)| form.starts_with(name)).map_or(-1, |(_, order)| *order)
}

fn compare_special(a: &[u8], b: &[u8]) -> Ordering {
    special_form(a).cmp(&special_form(b))
}

/// `strtol` on a run of digits, saturating as C does.
fn strtol(digits: &[u8]) -> i64 {
    let end = digits.iter().position(|c| !c.is_ascii_digit()).unwrap_or(digits.len());
    std::str::from_utf8(&digits[..end]).ok().and_then(|s| s.parse::<i64>().ok()).unwrap_or(i64::MAX)
}

/// `php_version_compare` on canonical forms, element by element.
fn compare_canonical(a: &[u8], b: &[u8]) -> Ordering {
    let element = |text: &[u8], from: usize| -> (usize, Option<usize>) {
        match text[from..].iter().position(|&c| c == b'.') {
            Some(i) => (from + i, Some(from + i + 1)),
            None => (text.len(), None),
        }
    };
    let (mut p1, mut p2) = (0usize, 0usize);
    let (mut n1, mut n2): (Option<usize>, Option<usize>) = (Some(0), Some(0));
    let mut compare = Ordering::Equal;
    while p1 < a.len() && p2 < b.len() && n1.is_some() && n2.is_some() {
        let (end1, next1) = element(a, p1);
        let (end2, next2) = element(b, p2);
        n1 = next1;
        n2 = next2;
        let (e1, e2) = (&a[p1..end1], &b[p2..end2]);
        let digit1 = e1.first().is_some_and(u8::is_ascii_digit);
        let digit2 = e2.first().is_some_and(u8::is_ascii_digit);
        compare = match (digit1, digit2) {
            (true, true) => strtol(e1).cmp(&strtol(e2)),
            (false, false) => compare_special(e1, e2),
            (true, false) => compare_special(b"#N#", e2),
            (false, true) => compare_special(e1, b"#N#"),
        };
        if compare != Ordering::Equal {
            break;
        }
        if let Some(next) = n1 {
            p1 = next;
        }
        if let Some(next) = n2 {
            p2 = next;
        }
    }
    if compare == Ordering::Equal {
        if n1.is_some() {
            compare = if a.get(p1).is_some_and(u8::is_ascii_digit) {
                Ordering::Greater
            } else {
                php_version_compare_bytes(&a[p1..], b"#N#")
            };
        } else if n2.is_some() {
            compare = if b.get(p2).is_some_and(u8::is_ascii_digit) {
                Ordering::Less
            } else {
                php_version_compare_bytes(b"#N#", &b[p2..])
            };
        }
    }
    compare
}

fn php_version_compare_bytes(a: &[u8], b: &[u8]) -> Ordering {
    if a.is_empty() || b.is_empty() {
        return a.is_empty().cmp(&b.is_empty()).reverse();
    }
    let a = if a[0] == b'#' { a.to_vec() } else { canonicalize(a) };
    let b = if b[0] == b'#' { b.to_vec() } else { canonicalize(b) };
    compare_canonical(&a, &b)
}

/// PHP's `version_compare($a, $b, $operator)`.
pub(crate) fn php_version_compare_op(a: &str, b: &str, op: Op) -> bool {
    op.holds(php_version_compare(a, b))
}

/// Composer's operators.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Op {
    Eq,
    Lt,
    Le,
    Gt,
    Ge,
    Ne,
}

impl Op {
    pub(crate) fn parse(text: &str) -> Option<Op> {
        Some(match text {
            "=" | "==" => Op::Eq,
            "<" => Op::Lt,
            "<=" => Op::Le,
            ">" => Op::Gt,
            ">=" => Op::Ge,
            "<>" | "!=" => Op::Ne,
            _ => return None,
        })
    }

    fn as_str(self) -> &'static str {
        match self {
            Op::Eq => "==",
            Op::Lt => "<",
            Op::Le => "<=",
            Op::Gt => ">",
            Op::Ge => ">=",
            Op::Ne => "!=",
        }
    }

    /// The operator without `=` (`Constraint::matchSpecific`'s `$noEqualOp`).
    fn without_equal(self) -> &'static str {
        match self {
            Op::Eq => "",
            Op::Lt | Op::Le => "<",
            Op::Gt | Op::Ge => ">",
            Op::Ne => "!",
        }
    }

    fn holds(self, ordering: Ordering) -> bool {
        match self {
            Op::Eq => ordering == Ordering::Equal,
            Op::Ne => ordering != Ordering::Equal,
            Op::Lt => ordering == Ordering::Less,
            Op::Le => ordering != Ordering::Greater,
            Op::Gt => ordering == Ordering::Greater,
            Op::Ge => ordering != Ordering::Less,
        }
    }
}

/// `Constraint::versionCompare`.
fn version_compare(a: &str, b: &str, op: Op, compare_branches: bool) -> bool {
    let a_branch = a.starts_with("dev-");
    let b_branch = b.starts_with("dev-");
    if op == Op::Ne && (a_branch || b_branch) {
        return a != b;
    }
    if a_branch && b_branch {
        return op == Op::Eq && a == b;
    }
    if !compare_branches && (a_branch || b_branch) {
        return false;
    }
    php_version_compare_op(a, b, op)
}

/// `Constraint`: one operator and one normalized version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Simple {
    pub(crate) op: Op,
    pub(crate) version: String,
}

impl Simple {
    pub(crate) fn new(op: Op, version: impl Into<String>) -> Simple {
        Simple { op, version: version.into() }
    }

    /// `Constraint::matchSpecific`.
    pub(crate) fn match_specific(&self, provider: &Simple, compare_branches: bool) -> bool {
        let no_equal = self.op.without_equal();
        let provider_no_equal = provider.op.without_equal();
        let is_equal = self.op == Op::Eq;
        let is_non_equal = self.op == Op::Ne;
        let provider_equal = provider.op == Op::Eq;
        let provider_non_equal = provider.op == Op::Ne;
        if is_non_equal || provider_non_equal {
            if is_non_equal && !provider_non_equal && !provider_equal && provider.version.starts_with("dev-") {
                return false;
            }
            if provider_non_equal && !is_non_equal && !is_equal && self.version.starts_with("dev-") {
                return false;
            }
            if !is_equal && !provider_equal {
                return true;
            }
            return version_compare(&provider.version, &self.version, Op::Ne, compare_branches);
        }
        if self.op != Op::Eq && no_equal == provider_no_equal {
            return !(self.version.starts_with("dev-") || provider.version.starts_with("dev-"));
        }
        let (version1, version2, op) = if is_equal {
            (&self.version, &provider.version, provider.op)
        } else {
            (&provider.version, &self.version, self.op)
        };
        if version_compare(version1, version2, op, compare_branches) {
            return !(provider.op.as_str() == provider_no_equal
                && self.op.as_str() != no_equal
                && php_version_compare(&provider.version, &self.version) == Ordering::Equal);
        }
        false
    }

    fn bounds(&self) -> (Bound, Bound) {
        if self.version.starts_with("dev-") {
            return (Bound::zero(), Bound::positive_infinity());
        }
        let at = |inclusive| Bound { version: self.version.clone(), inclusive };
        match self.op {
            Op::Eq => (at(true), at(true)),
            Op::Lt => (Bound::zero(), at(false)),
            Op::Le => (Bound::zero(), at(true)),
            Op::Gt => (at(false), Bound::positive_infinity()),
            Op::Ge => (at(true), Bound::positive_infinity()),
            Op::Ne => (Bound::zero(), Bound::positive_infinity()),
        }
    }
}

impl fmt::Display for Simple {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.op.as_str(), self.version)
    }
}

/// `Bound`: one end of a constraint's range.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Bound {
    version: String,
    inclusive: bool,
}

impl Bound {
    fn zero() -> Bound {
        Bound { version: "0.0.0.0-dev".to_owned(), inclusive: true }
    }

    fn positive_infinity() -> Bound {
        Bound { version: format!("{PHP_INT_MAX}.0.0.0"), inclusive: false }
    }

    /// `Bound::compareTo($other, '>' or '<')`.
    fn compare_to(&self, other: &Bound, greater: bool) -> bool {
        if self == other {
            return false;
        }
        match php_version_compare(&self.version, &other.version) {
            Ordering::Equal => {
                if greater {
                    other.inclusive
                } else {
                    !other.inclusive
                }
            }
            ordering => ordering == if greater { Ordering::Greater } else { Ordering::Less },
        }
    }
}

impl fmt::Display for Bound {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} [{}]", self.version, if self.inclusive { "inclusive" } else { "exclusive" })
    }
}

/// `ConstraintInterface`: what `parseConstraints` returns.
#[derive(Debug, Clone)]
pub(crate) enum Constraint {
    Simple(Simple),
    Multi { constraints: Vec<Constraint>, conjunctive: bool },
    MatchAll,
    MatchNone,
}

impl Constraint {
    /// `ConstraintInterface::matches($provider)`.
    pub(crate) fn matches(&self, provider: &Constraint) -> bool {
        match self {
            Constraint::MatchAll => true,
            Constraint::MatchNone => false,
            Constraint::Simple(simple) => match provider {
                Constraint::Simple(other) => simple.match_specific(other, false),
                other => other.matches(self),
            },
            Constraint::Multi { constraints, conjunctive: false } => constraints.iter().any(|c| provider.matches(c)),
            Constraint::Multi { constraints, conjunctive: true } => {
                if let Constraint::Multi { conjunctive: false, .. } = provider {
                    return provider.matches(self);
                }
                constraints.iter().all(|c| provider.matches(c))
            }
        }
    }

    /// `MultiConstraint::create`.
    pub(crate) fn create(mut constraints: Vec<Constraint>, conjunctive: bool) -> Constraint {
        if constraints.is_empty() {
            return Constraint::MatchAll;
        }
        if constraints.len() == 1 {
            return constraints.remove(0);
        }
        if !conjunctive && let Some(merged) = optimize_disjunction(&constraints) {
            if merged.len() == 1 {
                return merged.into_iter().next().unwrap_or(Constraint::MatchAll);
            }
            return Constraint::Multi { constraints: merged, conjunctive: false };
        }
        Constraint::Multi { constraints, conjunctive }
    }

    /// `getLowerBound()` and `getUpperBound()`.
    pub(crate) fn bounds(&self) -> (Bound, Bound) {
        match self {
            Constraint::MatchAll => (Bound::zero(), Bound::positive_infinity()),
            Constraint::MatchNone => {
                let none = Bound { version: "0.0.0.0-dev".to_owned(), inclusive: false };
                (none.clone(), none)
            }
            Constraint::Simple(simple) => simple.bounds(),
            Constraint::Multi { constraints, conjunctive } => {
                let mut found: Option<(Bound, Bound)> = None;
                for constraint in constraints {
                    let (low, high) = constraint.bounds();
                    match &mut found {
                        None => found = Some((low, high)),
                        Some((lower, upper)) => {
                            if low.compare_to(lower, *conjunctive) {
                                *lower = low;
                            }
                            if high.compare_to(upper, !*conjunctive) {
                                *upper = high;
                            }
                        }
                    }
                }
                found.unwrap_or_else(|| (Bound::zero(), Bound::positive_infinity()))
            }
        }
    }
}

/// `MultiConstraint::optimizeConstraints`: `[>= 1 < 2] || [>= 2 < 3]` → `[>= 1 < 3]`.
fn optimize_disjunction(constraints: &[Constraint]) -> Option<Vec<Constraint>> {
    let pair = |c: &Constraint| -> Option<(Simple, Simple)> {
        match c {
            Constraint::Multi { constraints, conjunctive: true } if constraints.len() == 2 => {
                match (&constraints[0], &constraints[1]) {
                    (Constraint::Simple(a), Constraint::Simple(b)) => Some((a.clone(), b.clone())),
                    _ => None,
                }
            }
            _ => None,
        }
    };
    let mut left = constraints[0].clone();
    let mut merged = Vec::new();
    let mut optimized = false;
    for right in &constraints[1..] {
        let joined = match (pair(&left), pair(right)) {
            (Some((l0, l1)), Some((r0, r1)))
                if l0.op == Op::Ge
                    && matches!(l1.op, Op::Lt | Op::Le)
                    && r0.op == Op::Ge
                    && matches!(r1.op, Op::Lt | Op::Le)
                    && l1.to_string().get(2..) == r0.to_string().get(3..) =>
            {
                Some(Constraint::Multi {
                    constraints: vec![Constraint::Simple(l0), Constraint::Simple(r1)],
                    conjunctive: true,
                })
            }
            _ => None,
        };
        match joined {
            Some(joined) => {
                optimized = true;
                left = joined;
            }
            None => {
                merged.push(left);
                left = right.clone();
            }
        }
    }
    optimized.then(|| {
        merged.push(left);
        merged
    })
}

impl fmt::Display for Constraint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Constraint::MatchAll => f.write_str("*"),
            Constraint::MatchNone => f.write_str("[]"),
            Constraint::Simple(simple) => simple.fmt(f),
            Constraint::Multi { constraints, conjunctive } => {
                let parts: Vec<String> = constraints.iter().map(ToString::to_string).collect();
                write!(f, "[{}]", parts.join(if *conjunctive { " " } else { " || " }))
            }
        }
    }
}

/// A PHP list of branch names, keys kept (`array_diff` and `array_intersect` keep them).
type Names = Vec<(usize, String)>;

/// Which `dev-*` branches an interval set admits: `names`, or all but `names` when `exclude`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Branches {
    pub(crate) names: Names,
    pub(crate) exclude: bool,
}

impl Branches {
    fn any_dev() -> Branches {
        Branches { names: Vec::new(), exclude: true }
    }

    fn no_dev() -> Branches {
        Branches { names: Vec::new(), exclude: false }
    }
}

fn intersect(a: &Names, b: &Names) -> Names {
    a.iter().filter(|(_, name)| b.iter().any(|(_, other)| other == name)).cloned().collect()
}

fn diff(a: &Names, b: &Names) -> Names {
    a.iter().filter(|(_, name)| !b.iter().any(|(_, other)| other == name)).cloned().collect()
}

fn merge(a: &Names, b: &Names) -> Names {
    a.iter().chain(b).enumerate().map(|(i, (_, name))| (i, name.clone())).collect()
}

fn unique(a: &Names) -> Names {
    let mut out: Names = Vec::new();
    for (key, name) in a {
        if !out.iter().any(|(_, seen)| seen == name) {
            out.push((*key, name.clone()));
        }
    }
    out
}

/// `Interval`: a start (`>`/`>=`) and an end (`<`/`<=`) constraint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Interval {
    pub(crate) start: Simple,
    pub(crate) end: Simple,
}

fn from_zero() -> Simple {
    Simple::new(Op::Ge, "0.0.0.0-dev")
}

fn until_positive_infinity() -> Simple {
    Simple::new(Op::Lt, format!("{PHP_INT_MAX}.0.0.0"))
}

/// `Intervals::get`: the numeric intervals and the branches a constraint admits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Intervals {
    pub(crate) numeric: Vec<Interval>,
    pub(crate) branches: Branches,
}

impl Constraint {
    /// `Intervals::get` / `generateIntervals`.
    pub(crate) fn intervals(&self, stop_on_first_valid: bool) -> Intervals {
        let (constraints, conjunctive) = match self {
            Constraint::MatchAll => {
                return Intervals {
                    numeric: vec![Interval { start: from_zero(), end: until_positive_infinity() }],
                    branches: Branches::any_dev(),
                };
            }
            Constraint::MatchNone => return Intervals { numeric: Vec::new(), branches: Branches::no_dev() },
            Constraint::Simple(simple) => return single_intervals(simple),
            Constraint::Multi { constraints, conjunctive } => (constraints, *conjunctive),
        };
        let parts: Vec<Intervals> = constraints.iter().map(|c| c.intervals(false)).collect();
        let mut branches = if conjunctive { Branches::any_dev() } else { Branches::no_dev() };
        for b in parts.iter().map(|p| &p.branches) {
            match (conjunctive, b.exclude, branches.exclude) {
                (false, true, true) => branches.names = intersect(&branches.names, &b.names),
                (false, true, false) => {
                    branches.exclude = true;
                    branches.names = diff(&b.names, &branches.names);
                }
                (false, false, true) => branches.names = diff(&branches.names, &b.names),
                (false, false, false) => branches.names = merge(&branches.names, &b.names),
                (true, true, true) => branches.names = merge(&branches.names, &b.names),
                (true, true, false) => branches.names = diff(&branches.names, &b.names),
                (true, false, true) => {
                    branches.names = diff(&b.names, &branches.names);
                    branches.exclude = false;
                }
                (true, false, false) => branches.names = intersect(&branches.names, &b.names),
            }
        }
        branches.names = unique(&branches.names);
        if parts.len() == 1 {
            return Intervals { numeric: parts[0].numeric.clone(), branches };
        }
        // Borders: (version, operator, is start).
        let mut borders: Vec<(&str, Op, bool)> = Vec::new();
        for part in &parts {
            for interval in &part.numeric {
                borders.push((&interval.start.version, interval.start.op, true));
                borders.push((&interval.end.version, interval.end.op, false));
            }
        }
        let rank = |op: Op| match op {
            Op::Ge => -3,
            Op::Lt => -2,
            Op::Gt => 2,
            Op::Le => 3,
            _ => 0,
        };
        borders.sort_by(|a, b| php_version_compare(a.0, b.0).then_with(|| rank(a.1).cmp(&rank(b.1))));
        let threshold = if conjunctive { parts.len() } else { 1 };
        let mut active = 0usize;
        let mut numeric = Vec::new();
        let mut start: Option<Simple> = None;
        for (version, op, is_start) in borders {
            if is_start {
                active += 1;
            } else {
                active = active.saturating_sub(1);
            }
            match &start {
                None if active >= threshold => start = Some(Simple::new(op, version)),
                Some(from) if active < threshold => {
                    let empty = php_version_compare(&from.version, version) == Ordering::Equal
                        && ((from.op == Op::Gt && op == Op::Le) || (from.op == Op::Ge && op == Op::Lt));
                    if !empty {
                        numeric.push(Interval { start: from.clone(), end: Simple::new(op, version) });
                        if stop_on_first_valid {
                            break;
                        }
                    }
                    start = None;
                }
                _ => {}
            }
        }
        Intervals { numeric, branches }
    }
}

/// `Intervals::generateSingleConstraintIntervals`.
fn single_intervals(constraint: &Simple) -> Intervals {
    let version = &constraint.version;
    if version.starts_with("dev-") {
        return match constraint.op {
            Op::Ne => Intervals {
                numeric: vec![Interval { start: from_zero(), end: until_positive_infinity() }],
                branches: Branches { names: vec![(0, version.clone())], exclude: true },
            },
            Op::Eq => Intervals {
                numeric: Vec::new(),
                branches: Branches { names: vec![(0, version.clone())], exclude: false },
            },
            _ => Intervals { numeric: Vec::new(), branches: Branches::no_dev() },
        };
    }
    let numeric = match constraint.op {
        Op::Gt | Op::Ge => vec![Interval { start: constraint.clone(), end: until_positive_infinity() }],
        Op::Lt | Op::Le => vec![Interval { start: from_zero(), end: constraint.clone() }],
        Op::Ne => {
            return Intervals {
                numeric: vec![
                    Interval { start: from_zero(), end: Simple::new(Op::Lt, version.clone()) },
                    Interval { start: Simple::new(Op::Gt, version.clone()), end: until_positive_infinity() },
                ],
                branches: Branches::any_dev(),
            };
        }
        Op::Eq => {
            vec![Interval { start: Simple::new(Op::Ge, version.clone()), end: Simple::new(Op::Le, version.clone()) }]
        }
    };
    Intervals { numeric, branches: Branches::no_dev() }
}

/// `Intervals::isSubsetOf`: does `candidate` admit only what `constraint` admits?
pub(crate) fn is_subset_of(candidate: &Constraint, constraint: &Constraint) -> bool {
    if matches!(constraint, Constraint::MatchAll) {
        return true;
    }
    if matches!(candidate, Constraint::MatchNone) || matches!(constraint, Constraint::MatchNone) {
        return false;
    }
    let both = Constraint::Multi { constraints: vec![candidate.clone(), constraint.clone()], conjunctive: true };
    let intersection = both.intervals(false);
    let own = candidate.intervals(false);
    if intersection.numeric.len() != own.numeric.len()
        || intersection.numeric.iter().zip(&own.numeric).any(|(a, b)| a.start != b.start || a.end != b.end)
    {
        return false;
    }
    if intersection.branches.exclude != own.branches.exclude
        || intersection.branches.names.len() != own.branches.names.len()
    {
        return false;
    }
    intersection.branches.names.iter().all(|(key, name)| own.branches.names.iter().any(|(k, n)| k == key && n == name))
}

/// `Intervals::haveIntersections`.
pub(crate) fn have_intersections(a: &Constraint, b: &Constraint) -> bool {
    if matches!(a, Constraint::MatchAll) || matches!(b, Constraint::MatchAll) {
        return true;
    }
    if matches!(a, Constraint::MatchNone) || matches!(b, Constraint::MatchNone) {
        return false;
    }
    let both = Constraint::Multi { constraints: vec![a.clone(), b.clone()], conjunctive: true };
    let found = both.intervals(true);
    !found.numeric.is_empty() || found.branches.exclude || !found.branches.names.is_empty()
}

/// `Intervals::compactConstraint`: the same constraint, as few parts as possible.
pub(crate) fn compact_constraint(constraint: &Constraint) -> Constraint {
    if !matches!(constraint, Constraint::Multi { .. }) {
        return constraint.clone();
    }
    let intervals = constraint.intervals(false);
    let simple = |s: &Simple| Constraint::Simple(s.clone());
    let mut constraints: Vec<Constraint> = Vec::new();
    let mut numeric_match_all = false;
    let numeric = &intervals.numeric;
    if numeric.len() == 1 && numeric[0].start == from_zero() && numeric[0].end == until_positive_infinity() {
        constraints.push(simple(&numeric[0].start));
        numeric_match_all = true;
    } else {
        let mut unequal: Vec<Constraint> = Vec::new();
        for (i, interval) in numeric.iter().enumerate() {
            if interval.end.op == Op::Lt
                && let Some(next) = numeric.get(i + 1)
                && interval.end.version == next.start.version
                && next.start.op == Op::Gt
            {
                if unequal.is_empty() && interval.start != from_zero() {
                    unequal.push(simple(&interval.start));
                }
                unequal.push(Constraint::Simple(Simple::new(Op::Ne, interval.end.version.clone())));
                continue;
            }
            if !unequal.is_empty() {
                if interval.end != until_positive_infinity() {
                    unequal.push(simple(&interval.end));
                }
                if unequal.len() > 1 {
                    constraints
                        .push(Constraint::Multi { constraints: std::mem::take(&mut unequal), conjunctive: true });
                } else {
                    constraints.push(unequal.remove(0));
                }
                continue;
            }
            if interval.start.version == interval.end.version
                && interval.start.op == Op::Ge
                && interval.end.op == Op::Le
            {
                constraints.push(Constraint::Simple(Simple::new(Op::Eq, interval.start.version.clone())));
            } else if interval.start == from_zero() {
                constraints.push(simple(&interval.end));
            } else if interval.end == until_positive_infinity() {
                constraints.push(simple(&interval.start));
            } else {
                constraints.push(Constraint::Multi {
                    constraints: vec![simple(&interval.start), simple(&interval.end)],
                    conjunctive: true,
                });
            }
        }
    }
    let branches = &intervals.branches;
    if branches.names.is_empty() {
        if branches.exclude && numeric_match_all {
            return Constraint::MatchAll;
        }
    } else {
        let op = if branches.exclude { Op::Ne } else { Op::Eq };
        let dev: Vec<Constraint> =
            branches.names.iter().map(|(_, name)| Constraint::Simple(Simple::new(op, name.clone()))).collect();
        if branches.exclude {
            if constraints.len() > 1 {
                let mut all = vec![Constraint::Multi { constraints, conjunctive: false }];
                all.extend(dev);
                return Constraint::Multi { constraints: all, conjunctive: true };
            }
            if constraints.len() == 1 && matches!(&constraints[0], Constraint::Simple(s) if *s == from_zero()) {
                if dev.len() > 1 {
                    return Constraint::Multi { constraints: dev, conjunctive: true };
                }
                return dev.into_iter().next().unwrap_or(Constraint::MatchNone);
            }
            constraints.extend(dev);
            return Constraint::Multi { constraints, conjunctive: true };
        }
        constraints.extend(dev);
    }
    match constraints.len() {
        0 => Constraint::MatchNone,
        1 => constraints.remove(0),
        _ => Constraint::Multi { constraints, conjunctive: false },
    }
}

/// `VersionParser::parseConstraints`.
pub(crate) fn parse_constraints(text: &str) -> Result<Constraint, String> {
    let mut groups = Vec::new();
    for or in split(&OR_SPLIT, php_trim(text)) {
        let ands = split(&AND_SPLIT, or);
        let mut objects = Vec::new();
        for and in &ands {
            objects.extend(parse_constraint(and)?);
        }
        groups.push(if objects.len() == 1 {
            objects.remove(0)
        } else {
            Constraint::Multi { constraints: objects, conjunctive: true }
        });
    }
    Ok(Constraint::create(groups, false))
}

/// `VersionParser::manipulateVersionString` for positive increments.
fn manipulate(numbers: [&str; 4], position: usize, increment: u64) -> String {
    let mut parts: Vec<String> = numbers.iter().map(|n| (*n).to_owned()).collect();
    for i in (1..=4).rev() {
        if i > position {
            parts[i - 1] = "0".to_owned();
        } else if i == position && increment > 0 {
            let value: u64 = parts[i - 1].parse().unwrap_or(0);
            parts[i - 1] = value.saturating_add(increment).to_string();
        }
    }
    parts.join(".")
}

fn numbers<'t>(found: &Captures<'t, str>, first: usize) -> [&'t str; 4] {
    [group(found, first), group(found, first + 1), group(found, first + 2), group(found, first + 3)]
}

fn parse_constraint(input: &str) -> Result<Vec<Constraint>, String> {
    let fail = |why: String| {
        // A reason about the whole text again adds nothing: say it once.
        if why.starts_with(&format!("`{input}` ")) {
            format!("`{input}` is not a Composer constraint")
        } else {
            format!("`{input}` is not a Composer constraint: {why}")
        }
    };
    let mut constraint = input.to_owned();
    if let Some(found) = captures(&ALIAS, &constraint) {
        constraint = group(&found, 1).to_owned();
    }
    let mut stability_modifier = None;
    if let Some(found) = captures(&CONSTRAINT_STABILITY, &constraint) {
        let flag = group(&found, 2).to_owned();
        constraint = if group(&found, 1).is_empty() { "*".to_owned() } else { group(&found, 1).to_owned() };
        if flag != "stable" {
            stability_modifier = Some(flag);
        }
    }
    if let Some(found) = captures(&REFERENCE, &constraint) {
        constraint = group(&found, 1).to_owned();
    }
    if let Some(found) = captures(&MATCH_ANY, &constraint) {
        if !empty(group(&found, 1)) || !empty(group(&found, 2)) {
            return Ok(vec![Constraint::Simple(Simple::new(Op::Ge, "0.0.0.0-dev"))]);
        }
        return Ok(vec![Constraint::MatchAll]);
    }
    let ge = |version: String| Constraint::Simple(Simple::new(Op::Ge, version));
    let lt = |version: String| Constraint::Simple(Simple::new(Op::Lt, version));

    if let Some(found) = captures(&TILDE, &constraint) {
        if constraint.starts_with("~>") {
            return Err(fail("invalid operator `~>`, you probably meant to use the `~` operator".to_owned()));
        }
        let mut position = (1..=4).rev().find(|&i| i == 1 || !group(&found, i).is_empty()).unwrap_or(1);
        if !empty(group(&found, 8)) {
            position += 1;
        }
        let suffix =
            if empty(group(&found, 5)) && empty(group(&found, 7)) && empty(group(&found, 8)) { "-dev" } else { "" };
        let low = normalize(&format!("{}{suffix}", &constraint[1..]), None).map_err(fail)?;
        let high = manipulate(numbers(&found, 1), position.saturating_sub(1).max(1), 1);
        return Ok(vec![ge(low), lt(format!("{high}-dev"))]);
    }
    if let Some(found) = captures(&CARET, &constraint) {
        let position = if group(&found, 1) != "0" || group(&found, 2).is_empty() {
            1
        } else if group(&found, 2) != "0" || group(&found, 3).is_empty() {
            2
        } else {
            3
        };
        let suffix =
            if empty(group(&found, 5)) && empty(group(&found, 7)) && empty(group(&found, 8)) { "-dev" } else { "" };
        let low = normalize(&format!("{}{suffix}", &constraint[1..]), None).map_err(fail)?;
        let high = manipulate(numbers(&found, 1), position, 1);
        return Ok(vec![ge(low), lt(format!("{high}-dev"))]);
    }
    if let Some(found) = captures(&X_RANGE, &constraint) {
        let position = if !group(&found, 3).is_empty() {
            3
        } else if !group(&found, 2).is_empty() {
            2
        } else {
            1
        };
        let parts = numbers(&found, 1);
        let low = format!("{}-dev", manipulate(parts, position, 0));
        let high = format!("{}-dev", manipulate(parts, position, 1));
        if low == "0.0.0.0-dev" {
            return Ok(vec![lt(high)]);
        }
        return Ok(vec![ge(low), lt(high)]);
    }
    if let Some(found) = captures(&HYPHEN, &constraint) {
        let low_suffix =
            if empty(group(&found, 6)) && empty(group(&found, 8)) && empty(group(&found, 9)) { "-dev" } else { "" };
        let from = found.name("from").map_or("", |m| m.as_str());
        let to = found.name("to").map_or("", |m| m.as_str());
        let low = normalize(from, None).map_err(fail)?;
        let lower = ge(format!("{low}{low_suffix}"));
        // `$empty` in the hyphen branch: "0" is not empty there.
        let blank = |i: usize| group(&found, i).is_empty();
        let upper = if (!blank(12) && !blank(13))
            || !empty(group(&found, 15))
            || !empty(group(&found, 17))
            || !empty(group(&found, 18))
        {
            Constraint::Simple(Simple::new(Op::Le, normalize(to, None).map_err(fail)?))
        } else {
            normalize(to, None).map_err(fail)?;
            let high = manipulate(numbers(&found, 11), if blank(12) { 1 } else { 2 }, 1);
            lt(format!("{high}-dev"))
        };
        return Ok(vec![lower, upper]);
    }
    if let Some(found) = captures(&BASIC, &constraint) {
        let written = group(&found, 2);
        let version = match normalize(written, None) {
            Ok(version) => Ok(version),
            Err(error) => {
                if written.ends_with("-dev") && is_match(&DEV_RECOVERY, written) {
                    normalize(&format!("dev-{}", &written[..written.len() - 4]), None)
                } else {
                    Err(error)
                }
            }
        };
        match version {
            Ok(mut version) => {
                let op_text = if group(&found, 1).is_empty() { "=" } else { group(&found, 1) };
                let op = Op::parse(op_text).ok_or_else(|| fail(format!("unknown operator `{op_text}`")))?;
                if let Some(modifier) = stability_modifier.as_deref().filter(|_| op != Op::Eq)
                    && parse_stability(&version) == "stable"
                {
                    version = format!("{version}-{modifier}");
                } else if matches!(op, Op::Lt | Op::Ge)
                    && !is_match(&ENDS_WITH_MODIFIER, &written.to_ascii_lowercase())
                    && !written.starts_with("dev-")
                {
                    version.push_str("-dev");
                }
                return Ok(vec![Constraint::Simple(Simple::new(op, version))]);
            }
            Err(error) => return Err(fail(error)),
        }
    }
    Err(fail("no version".to_owned()))
}

/// The most unstable stability a requirement's flags and versions allow, as
/// Composer's root package loader reads them (`^2.4@beta`, `>=2.4.7-RC1`).
pub(crate) fn stability_flag(text: &str) -> Option<&'static str> {
    let mut parts = Vec::new();
    for or in split(&OR_SPLIT, php_trim(text)) {
        parts.extend(split(&AND_SPLIT, or));
    }
    let mut flag: Option<&'static str> = None;
    let mut take = |stability: &'static str| {
        if flag.is_none_or(|current| stability_rank(current) < stability_rank(stability)) {
            flag = Some(stability);
        }
    };
    let mut explicit = false;
    for part in &parts {
        if let Some(found) = captures(&EXPLICIT_FLAG, part) {
            take(canonical_stability(group(&found, 1)));
            explicit = true;
        }
    }
    if !explicit {
        for part in &parts {
            let version = match captures(&FLAG_ALIAS, part) {
                Some(found) => group(&found, 1).to_owned(),
                None => (*part).to_owned(),
            };
            if is_match(&SINGLE_VERSION, &version) {
                let stability = parse_stability(&version);
                if stability != "stable" {
                    take(stability);
                }
            }
        }
    }
    flag
}

fn canonical_stability(text: &str) -> &'static str {
    match text.to_ascii_lowercase().as_str() {
        "stable" => "stable",
        "rc" => "RC",
        "beta" => "beta",
        "alpha" => "alpha",
        _ => "dev",
    }
}

/// `Comparator::compare($a, $op, $b)` on two version strings as given.
pub(crate) fn compare(a: &str, op: Op, b: &str) -> bool {
    Simple::new(op, b).match_specific(&Simple::new(Op::Eq, a), true)
}

/// A version as Composer normalizes it, with the text it was written as.
#[derive(Debug, Clone)]
pub(crate) struct Version {
    pub(crate) text: String,
    pub(crate) normalized: String,
}

impl Version {
    pub(crate) fn parse(text: &str) -> Result<Version, String> {
        let normalized = normalize(text, None)?;
        Ok(Version { text: php_trim(text).to_owned(), normalized })
    }

    /// The numbers before the first `-` (`2.4.6.0` of `2.4.6.0-patch3`); none for branches.
    pub(crate) fn numbers(&self) -> Vec<u64> {
        if self.normalized.starts_with("dev-") {
            return Vec::new();
        }
        let numeric = self.normalized.split('-').next().unwrap_or("");
        numeric.split('.').map(|n| n.parse().unwrap_or(u64::MAX)).collect()
    }

    /// The number of a `-patchN` (`-pN`, `-plN`) release; 0 when there is none.
    pub(crate) fn patch_level(&self) -> u64 {
        self.normalized
            .split_once("-patch")
            .map(|(_, rest)| rest.split(|c: char| !c.is_ascii_digit()).next().unwrap_or("").parse().unwrap_or(0))
            .unwrap_or(0)
    }

    pub(crate) fn stability(&self) -> &'static str {
        parse_stability(&self.text)
    }

    /// `Semver::sort`'s order: `Comparator::lessThan` on normalized versions,
    /// `dev-master` as the newest; other branches first, by name.
    pub(crate) fn sort_cmp(&self, other: &Version) -> Ordering {
        let a = normalize_default_branch(&self.normalized);
        let b = normalize_default_branch(&other.normalized);
        match (a.starts_with("dev-"), b.starts_with("dev-")) {
            (true, true) => a.cmp(b),
            (true, false) => Ordering::Less,
            (false, true) => Ordering::Greater,
            (false, false) => php_version_compare(a, b),
        }
    }
}

/// A Composer requirement: its constraint and the stability its flags allow.
#[derive(Debug, Clone)]
pub(crate) struct Requirement {
    pub(crate) constraint: Constraint,
    pub(crate) stability: Option<&'static str>,
}

impl Requirement {
    pub(crate) fn parse(text: &str) -> Result<Requirement, String> {
        if php_trim(text).is_empty() {
            return Err("an empty version requirement".to_owned());
        }
        Ok(Requirement { constraint: parse_constraints(text)?, stability: stability_flag(text) })
    }

    /// `Semver::satisfies`: the constraint matches `== normalized`.
    pub(crate) fn matches(&self, version: &Version) -> bool {
        self.constraint.matches(&Constraint::Simple(Simple::new(Op::Eq, version.normalized.clone())))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sat(constraint: &str, version: &str) -> bool {
        Requirement::parse(constraint).unwrap().matches(&Version::parse(version).unwrap())
    }

    #[test]
    fn magento_release_train() {
        let train = [
            "2.4.6",
            "2.4.6-p1",
            "2.4.6-p2",
            "2.4.6-p9",
            "2.4.6-p10",
            "2.4.7-alpha1",
            "2.4.7-beta1",
            "2.4.7-RC1",
            "2.4.7",
        ];
        for pair in train.windows(2) {
            let (a, b) = (Version::parse(pair[0]).unwrap(), Version::parse(pair[1]).unwrap());
            assert_eq!(a.sort_cmp(&b), Ordering::Less, "{} < {}", pair[0], pair[1]);
        }
        assert_eq!(Version::parse("2.4.6-p3").unwrap().normalized, "2.4.6.0-patch3");
        assert!(sat("2.4.6.*", "2.4.6-p3"));
        assert!(sat(">=2.4.6 <2.4.7", "2.4.6-p15"));
        assert!(!sat("<2.4.7", "2.4.7-beta1"));
        assert_eq!(stability_flag("^2.4@beta"), Some("beta"));
        assert_eq!(stability_flag(">=2.4.7-RC1"), Some("RC"));
        assert_eq!(stability_flag("~2.4"), None);
    }

    #[test]
    fn php_version_compare_basics() {
        assert_eq!(php_version_compare("1.0.0.0", "1.0.0.0-patch1"), Ordering::Less);
        assert_eq!(php_version_compare("1.0-dev", "1.0-alpha"), Ordering::Less);
        assert_eq!(php_version_compare("1.0.0.0-RC1", "1.0.0.0"), Ordering::Less);
        assert_eq!(php_version_compare("1.0", "1.0.0"), Ordering::Less);
    }
}

/// composer/semver's own test suite, answered by composer/semver itself
/// (`tests/composer/generate`): every vector must agree.
#[cfg(test)]
mod oracle {
    use super::*;
    use serde_json::Value;

    /// Every kind of vector is modelled; the skip count may only change on purpose.
    const SKIPPED_KINDS: [(&str, &str); 0] = [];
    const EXPECTED_SKIPS: usize = 0;

    fn intervals_json(intervals: &Intervals) -> Value {
        let numeric: Vec<Value> = intervals
            .numeric
            .iter()
            .map(|i| serde_json::json!({ "start": i.start.to_string(), "end": i.end.to_string() }))
            .collect();
        let sequential = intervals.branches.names.iter().enumerate().all(|(i, (key, _))| i == *key);
        let names = if sequential {
            Value::from(intervals.branches.names.iter().map(|(_, n)| n.clone()).collect::<Vec<_>>())
        } else {
            Value::Object(
                intervals.branches.names.iter().map(|(k, n)| (k.to_string(), Value::from(n.clone()))).collect(),
            )
        };
        serde_json::json!({ "ok": { "numeric": numeric, "branches": { "names": names, "exclude": intervals.branches.exclude } } })
    }

    fn fixture() -> Value {
        serde_json::from_str(include_str!("../../tests/fixtures/composer-semver.json")).expect("the fixture is JSON")
    }

    fn constraint(json: &Value) -> Constraint {
        match json {
            Value::String(s) if s == "*" => Constraint::MatchAll,
            Value::String(_) => Constraint::MatchNone,
            Value::Object(map) if map.contains_key("op") => {
                let op = Op::parse(map["op"].as_str().unwrap()).unwrap();
                Constraint::Simple(Simple::new(op, map["version"].as_str().unwrap()))
            }
            Value::Object(map) => Constraint::Multi {
                constraints: map["constraints"].as_array().unwrap().iter().map(constraint).collect(),
                conjunctive: map["conjunctive"].as_bool().unwrap(),
            },
            other => panic!("not a constraint: {other}"),
        }
    }

    fn answer(result: Result<String, String>) -> Value {
        match result {
            Ok(text) => serde_json::json!({ "ok": text }),
            Err(_) => serde_json::json!({ "error": true }),
        }
    }

    fn expected(json: &Value) -> Value {
        match json.get("ok") {
            Some(ok) => serde_json::json!({ "ok": ok }),
            None => serde_json::json!({ "error": true }),
        }
    }

    fn strings(json: &Value) -> Vec<String> {
        json.as_array().unwrap().iter().map(|v| v.as_str().unwrap().to_owned()).collect()
    }

    fn satisfies(version: &str, constraint: &str) -> bool {
        let provider = Constraint::Simple(Simple::new(Op::Eq, normalize(version, None).unwrap()));
        parse_constraints(constraint).unwrap().matches(&provider)
    }

    #[test]
    fn agrees_with_composer_semver_on_every_vector() {
        let fixture = fixture();
        let vectors = fixture["suite"].as_array().unwrap();
        let (mut checked, mut skipped, mut failures) = (0, 0, Vec::new());
        for v in vectors {
            let kind = v["kind"].as_str().unwrap();
            if SKIPPED_KINDS.iter().any(|(k, _)| *k == kind) {
                skipped += 1;
                continue;
            }
            let s = |key: &str| v[key].as_str().unwrap_or_else(|| panic!("{key} in {v}"));
            let ours: Value = match kind {
                "numeric_alias_prefix" => {
                    parse_numeric_alias_prefix(s("input")).map_or(Value::Bool(false), Value::String)
                }
                "is_valid" => Value::Bool(normalize(s("input"), None).is_ok()),
                "normalize" => answer(normalize(s("input"), v["full"].as_str())),
                "normalize_branch" => Value::String(normalize_branch(s("input"))),
                "parse_stability" => Value::String(parse_stability(s("input")).to_owned()),
                "parse_constraints" => answer(parse_constraints(s("input")).map(|c| c.to_string())),
                "satisfies" => Value::Bool(satisfies(s("version"), s("constraint"))),
                "satisfied_by" => Value::from(
                    strings(&v["versions"]).into_iter().filter(|x| satisfies(x, s("constraint"))).collect::<Vec<_>>(),
                ),
                "sort" => {
                    let mut versions: Vec<Version> =
                        strings(&v["versions"]).iter().map(|x| Version::parse(x).unwrap()).collect();
                    versions.sort_by(Version::sort_cmp);
                    let sorted: Vec<String> = versions.iter().map(|x| x.text.clone()).collect();
                    let rsorted: Vec<String> = sorted.iter().rev().cloned().collect();
                    serde_json::json!({ "sort": sorted, "rsort": rsorted })
                }
                "compare" => Value::Bool(compare(s("a"), Op::parse(s("op")).unwrap(), s("b"))),
                "constraint_matches" => {
                    let (require, provide) = (constraint(&v["require"]), constraint(&v["provide"]));
                    serde_json::json!({
                        "forward": require.matches(&provide),
                        "backward": provide.matches(&require),
                        "intersect": have_intersections(&require, &provide),
                        "compact": compact_constraint(&require).matches(&compact_constraint(&provide)),
                    })
                }
                "bounds" => {
                    let (lower, upper) = constraint(&v["constraint"]).bounds();
                    serde_json::json!({ "lower": lower.to_string(), "upper": upper.to_string() })
                }
                "intervals" => {
                    let input = match &v["input"] {
                        Value::String(text) => parse_constraints(text).unwrap(),
                        json => constraint(&json["object"]),
                    };
                    intervals_json(&input.intervals(false))
                }
                "compact" => {
                    let parts = strings(&v["parts"]).iter().map(|p| parse_constraints(p).unwrap()).collect();
                    let multi =
                        Constraint::Multi { constraints: parts, conjunctive: v["conjunctive"].as_bool().unwrap() };
                    serde_json::json!({ "ok": compact_constraint(&multi).to_string() })
                }
                "subset" => {
                    Value::Bool(is_subset_of(&parse_constraints(s("a")).unwrap(), &parse_constraints(s("b")).unwrap()))
                }
                other => panic!("unknown kind {other}"),
            };
            let theirs = match kind {
                "normalize" | "parse_constraints" => expected(&v["answer"]),
                _ => v["answer"].clone(),
            };
            checked += 1;
            if ours != theirs {
                failures.push(format!("{} {}: {v}\n    upshift: {ours}", v["source"], v["name"]));
            }
        }
        assert!(failures.is_empty(), "{} of {checked} vectors disagree:\n{}", failures.len(), failures.join("\n"));
        assert_eq!(skipped, EXPECTED_SKIPS, "the number of skipped vectors changed");
        assert!(checked >= 2000, "only {checked} vectors checked");
        eprintln!("composer/semver: {checked} vectors agree, {skipped} skipped");
    }

    #[test]
    fn agrees_on_the_magento_release_train() {
        let fixture = fixture();
        let version = |text: &str| Version::parse(text).unwrap_or_else(|e| panic!("{e}"));
        for row in fixture["comparisons"].as_array().unwrap() {
            let (a, b) = (row["a"].as_str().unwrap(), row["b"].as_str().unwrap());
            let expected = row["cmp"].as_i64().unwrap().cmp(&0);
            assert_eq!(version(a).sort_cmp(&version(b)), expected, "{a} vs {b}");
        }
        for row in fixture["satisfies"].as_array().unwrap() {
            let (requirement, text) = (row["requirement"].as_str().unwrap(), row["version"].as_str().unwrap());
            let ours = Requirement::parse(requirement).unwrap().matches(&version(text));
            assert_eq!(ours, row["satisfies"].as_bool().unwrap(), "{text} satisfies {requirement}?");
        }
        for text in strings(&fixture["rejected_versions"]) {
            assert!(Version::parse(&text).is_err(), "`{text}` was accepted");
        }
        for text in strings(&fixture["rejected_requirements"]) {
            assert!(Requirement::parse(&text).is_err(), "`{text}` was accepted");
        }
    }
}
