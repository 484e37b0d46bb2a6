//! The `npm` scheme: npm's `semver` package (node-semver) in its default,
//! strict mode: `SemVer` parsing and order, and `Range` with `^`, `~`,
//! x-ranges, hyphen ranges, `||` and its pre-release rule (a pre-release
//! satisfies a range only when a comparator of the same set names a
//! pre-release of the same `major.minor.patch`, unless `includePrerelease`).
//!
//! The range parser is node-semver's: the same regular expressions (its "safe"
//! variants, where `\s*` stands for at most one blank) and the same rewriting
//! steps, in the same order, so `^1.2.x || >=3 <3.1` means what it means to npm.
//! `loose` mode is not modelled.

// The whole library surface is kept (and exercised by the conformance tests),
// though selection uses only part of it.
#![cfg_attr(not(test), allow(dead_code))]

use std::cmp::Ordering;
use std::sync::LazyLock;

use regex::{Captures, Regex};

/// JavaScript's `\s`.
const WS: &str = r"[\t\n\x0B\x0C\r \x{a0}\x{1680}\x{2000}-\x{200a}\x{2028}\x{2029}\x{202f}\x{205f}\x{3000}\x{feff}]";
const MAX_LENGTH: usize = 256;
const MAX_SAFE_INTEGER: u64 = 9_007_199_254_740_991;

/// node-semver's token sources (`internal/re.js`), as strings.
struct Sources {
    full: String,
    loose_plain: String,
    xrange_plain: String,
    build: String,
}

static SOURCES: LazyLock<Sources> = LazyLock::new(|| {
    let numeric = r"0|[1-9]\d*";
    let numeric_loose = r"\d+";
    let non_numeric = r"\d*[a-zA-Z-][a-zA-Z0-9-]*";
    let main = format!(r"({numeric})\.({numeric})\.({numeric})");
    let main_loose = format!(r"({numeric_loose})\.({numeric_loose})\.({numeric_loose})");
    let pre_id = format!("(?:{non_numeric}|{numeric})");
    let pre_id_loose = format!("(?:{non_numeric}|{numeric_loose})");
    let pre = format!(r"(?:-({pre_id}(?:\.{pre_id})*))");
    let pre_loose = format!(r"(?:-?({pre_id_loose}(?:\.{pre_id_loose})*))");
    let build_id = "[a-zA-Z0-9-]+";
    let build = format!(r"(?:\+({build_id}(?:\.{build_id})*))");
    let full_plain = format!("v?{main}{pre}?{build}?");
    let loose_plain = format!(r"[v=\s]*{main_loose}{pre_loose}?{build}?");
    let xid = r"0|[1-9]\d*|x|X|\*";
    let xrange_plain = format!(r"[v=\s]*({xid})(?:\.({xid})(?:\.({xid})(?:{pre})?{build}?)?)?");
    Sources { full: full_plain, loose_plain, xrange_plain, build }
});

/// `makeSafeRegex` for blanks, then JavaScript's `\d` and `\s`.
fn js(source: &str) -> Regex {
    let safe = source.replace(r"\s*", r"\s{0,1}").replace(r"\s+", r"\s{1,1}");
    let translated = safe.replace(r"\d", "[0-9]").replace(r"\s", WS);
    Regex::new(&translated).unwrap_or_else(|error| panic!("internal error: bad regex {translated}: {error}"))
}

macro_rules! re {
    ($name:ident, $build:expr) => {
        static $name: LazyLock<Regex> = LazyLock::new(|| js(&$build(&*SOURCES)));
    };
}

re!(FULL, |s: &Sources| format!("^{}$", s.full));
re!(BUILD, |s: &Sources| s.build.clone());
re!(TILDE, |s: &Sources| format!("^(?:~>?){}$", s.xrange_plain));
re!(CARET, |s: &Sources| format!(r"^(?:\^){}$", s.xrange_plain));
re!(XRANGE, |s: &Sources| format!(r"^((?:<|>)?=?)\s*{}$", s.xrange_plain));
re!(COMPARATOR, |s: &Sources| format!(r"^((?:<|>)?=?)\s*({})$|^$", s.full));
re!(COMPARATOR_TRIM, |s: &Sources| format!(r"(\s*)((?:<|>)?=?)\s*({}|{})", s.loose_plain, s.xrange_plain));
re!(TILDE_TRIM, |_: &Sources| r"(\s*)(?:~>?)\s+".to_owned());
re!(CARET_TRIM, |_: &Sources| r"(\s*)(?:\^)\s+".to_owned());
re!(HYPHEN, |s: &Sources| format!(r"^\s*({0})\s+-\s+({0})\s*$", s.xrange_plain));
re!(STAR, |_: &Sources| r"(<|>)?=?\s*\*".to_owned());
re!(GTE0, |_: &Sources| r"^\s*>=\s*0\.0\.0\s*$".to_owned());
re!(GTE0PRE, |_: &Sources| r"^\s*>=\s*0\.0\.0-0\s*$".to_owned());

/// The unsafe `BUILD` (node-semver strips build metadata from ranges with it).
static BUILD_STRIP: LazyLock<Regex> = LazyLock::new(|| {
    let source = SOURCES.build.replace(r"\d", "[0-9]");
    Regex::new(&source).unwrap_or_else(|error| panic!("internal error: {error}"))
});

/// Blanks as JavaScript's `/\s+/` sees them (unbounded).
static JS_BLANKS: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(&format!("{WS}+")).unwrap_or_else(|error| panic!("internal error: {error}")));

fn js_trim(text: &str) -> &str {
    text.trim_matches(|c: char| {
        matches!(
            c,
            '\t' | '\n' | '\x0B' | '\x0C' | '\r' | ' ' | '\u{a0}' | '\u{1680}' | '\u{2000}'
                ..='\u{200a}' | '\u{2028}' | '\u{2029}' | '\u{202f}' | '\u{205f}' | '\u{3000}' | '\u{feff}'
        )
    })
}

fn js_split_blanks(text: &str) -> Vec<&str> {
    JS_BLANKS.split(text).collect()
}

/// A pre-release identifier: numbers compare as numbers and sort first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Identifier {
    Number(u64),
    Text(String),
}

impl Identifier {
    fn text(&self) -> String {
        match self {
            Identifier::Number(n) => n.to_string(),
            Identifier::Text(t) => t.clone(),
        }
    }
}

/// `compareIdentifiers`.
fn compare_identifiers(a: &Identifier, b: &Identifier) -> Ordering {
    let numeric = |text: &str| !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit());
    match (a, b) {
        (Identifier::Number(x), Identifier::Number(y)) => x.cmp(y),
        _ => {
            let (a, b) = (a.text(), b.text());
            match (numeric(&a), numeric(&b)) {
                (true, true) => {
                    let x: f64 = a.parse().unwrap_or(f64::MAX);
                    let y: f64 = b.parse().unwrap_or(f64::MAX);
                    x.partial_cmp(&y).unwrap_or(Ordering::Equal)
                }
                (true, false) => Ordering::Less,
                (false, true) => Ordering::Greater,
                (false, false) => a.encode_utf16().cmp(b.encode_utf16()),
            }
        }
    }
}

/// A version as node-semver's `SemVer` reads it.
#[derive(Debug, Clone)]
pub(crate) struct Version {
    pub(crate) major: u64,
    pub(crate) minor: u64,
    pub(crate) patch: u64,
    pub(crate) prerelease: Vec<Identifier>,
    pub(crate) build: Vec<String>,
    pub(crate) text: String,
}

impl Version {
    pub(crate) fn parse(text: &str) -> Result<Version, String> {
        let invalid = |why: &str| format!("`{}` is not a valid npm version: {why}", text.trim());
        if text.chars().count() > MAX_LENGTH {
            return Err(invalid("longer than 256 characters"));
        }
        let trimmed = js_trim(text);
        let found = FULL.captures(trimmed).ok_or_else(|| invalid("not `MAJOR.MINOR.PATCH[-PRE][+BUILD]`"))?;
        let number = |i: usize| -> Result<u64, String> {
            let digits = found.get(i).map_or("", |m| m.as_str());
            match digits.parse::<u64>() {
                Ok(n) if n <= MAX_SAFE_INTEGER => Ok(n),
                _ => Err(invalid("a number is too large")),
            }
        };
        let prerelease = found.get(4).map_or_else(Vec::new, |m| {
            m.as_str()
                .split('.')
                .map(|id| match id.parse::<u64>() {
                    Ok(n) if id.bytes().all(|b| b.is_ascii_digit()) && n < MAX_SAFE_INTEGER => Identifier::Number(n),
                    _ => Identifier::Text(id.to_owned()),
                })
                .collect()
        });
        let build = found.get(5).map_or_else(Vec::new, |m| m.as_str().split('.').map(str::to_owned).collect());
        Ok(Version {
            major: number(1)?,
            minor: number(2)?,
            patch: number(3)?,
            prerelease,
            build,
            text: text.trim().to_owned(),
        })
    }

    /// `SemVer.version`: the normalized form, without build metadata.
    pub(crate) fn normalized(&self) -> String {
        let mut out = format!("{}.{}.{}", self.major, self.minor, self.patch);
        if !self.prerelease.is_empty() {
            let ids: Vec<String> = self.prerelease.iter().map(Identifier::text).collect();
            out.push('-');
            out.push_str(&ids.join("."));
        }
        out
    }

    /// `SemVer.compare`: main version, then pre-release (build ignored).
    pub(crate) fn cmp(&self, other: &Version) -> Ordering {
        (self.major, self.minor, self.patch).cmp(&(other.major, other.minor, other.patch)).then_with(|| {
            match (self.prerelease.is_empty(), other.prerelease.is_empty()) {
                (true, true) => Ordering::Equal,
                (false, true) => Ordering::Less,
                (true, false) => Ordering::Greater,
                (false, false) => {
                    for i in 0.. {
                        match (self.prerelease.get(i), other.prerelease.get(i)) {
                            (None, None) => return Ordering::Equal,
                            (Some(_), None) => return Ordering::Greater,
                            (None, Some(_)) => return Ordering::Less,
                            (Some(a), Some(b)) if a == b => continue,
                            (Some(a), Some(b)) => return compare_identifiers(a, b),
                        }
                    }
                    Ordering::Equal
                }
            }
        })
    }

    pub(crate) fn stability(&self) -> &'static str {
        let Some(first) = self.prerelease.first() else { return "stable" };
        let first = first.text().to_ascii_lowercase();
        if first.starts_with("rc") {
            "RC"
        } else if first.starts_with("beta") {
            "beta"
        } else if first.starts_with("alpha") {
            "alpha"
        } else {
            "dev"
        }
    }
}

/// One comparator: an operator and a version, or "any" (`''`).
#[derive(Debug, Clone)]
pub(crate) struct Comparator {
    op: &'static str,
    version: Option<Version>,
}

impl Comparator {
    fn parse(text: &str) -> Result<Comparator, String> {
        let joined = js_split_blanks(js_trim(text)).join(" ");
        let found = COMPARATOR.captures(&joined).ok_or_else(|| format!("invalid comparator `{joined}`"))?;
        let op = match found.get(1).map_or("", |m| m.as_str()) {
            "<" => "<",
            "<=" => "<=",
            ">" => ">",
            ">=" => ">=",
            _ => "",
        };
        let version = match found.get(2) {
            Some(m) if !m.as_str().is_empty() => Some(Version::parse(m.as_str())?),
            _ => None,
        };
        Ok(Comparator { op, version })
    }

    /// `Comparator.value` (`>=1.2.3-0`, or `''` for any).
    fn value(&self) -> String {
        match &self.version {
            None => String::new(),
            Some(version) => format!("{}{}", self.op, version.normalized()),
        }
    }

    fn test(&self, version: &Version) -> bool {
        let Some(own) = &self.version else { return true };
        let ordering = version.cmp(own);
        match self.op {
            "<" => ordering == Ordering::Less,
            "<=" => ordering != Ordering::Greater,
            ">" => ordering == Ordering::Greater,
            ">=" => ordering != Ordering::Less,
            _ => ordering == Ordering::Equal,
        }
    }
}

/// A parsed range: alternatives of comparator sets.
#[derive(Debug, Clone)]
pub(crate) struct Set(Vec<Vec<Comparator>>);

impl Set {
    /// `new Range(text, { includePrerelease })`.
    pub(crate) fn parse(text: &str, include_prerelease: bool) -> Result<Set, String> {
        let raw = JS_BLANKS.replace_all(js_trim(text), " ").into_owned();
        let mut set: Vec<Vec<Comparator>> = Vec::new();
        for part in raw.split("||") {
            let comparators = parse_range(js_trim(part), include_prerelease)?;
            if !comparators.is_empty() {
                set.push(comparators);
            }
        }
        if set.is_empty() {
            return Err(format!("`{raw}` is not an npm range"));
        }
        let null_set = |c: &Vec<Comparator>| c.first().is_some_and(|c| c.value() == "<0.0.0-0");
        if set.len() > 1 {
            let first = set[0].clone();
            set.retain(|c| !null_set(c));
            if set.is_empty() {
                set = vec![first];
            } else if set.len() > 1
                && let Some(any) = set.iter().find(|c| c.len() == 1 && c[0].value().is_empty())
            {
                set = vec![any.clone()];
            }
        }
        Ok(Set(set))
    }

    /// `Range.range`: the normalized form (`>=1.2.3 <2.0.0-0||>=3.0.0`).
    pub(crate) fn format(&self) -> String {
        self.0
            .iter()
            .map(|comparators| {
                comparators.iter().map(Comparator::value).collect::<Vec<_>>().join(" ").trim().to_owned()
            })
            .collect::<Vec<_>>()
            .join("||")
    }

    /// `Range.test(version)`.
    pub(crate) fn test(&self, version: &Version, include_prerelease: bool) -> bool {
        self.0.iter().any(|set| test_set(set, version, include_prerelease))
    }
}

impl Set {
    /// `outside(version, range, '>' or '<')`: is `version` above (or below)
    /// every version the range admits (`gtr`, `ltr`)?
    pub(crate) fn outside(&self, version: &Version, greater: bool, include_prerelease: bool) -> bool {
        if self.test(version, include_prerelease) {
            return false;
        }
        let (comp, ecomp) = if greater { (">", ">=") } else { ("<", "<=") };
        // `gtfn` and `ltfn` of node-semver: "beyond" and "short of" in the asked direction.
        let beyond = |a: &Version, b: &Version| a.cmp(b) == if greater { Ordering::Greater } else { Ordering::Less };
        let short = |a: &Version, b: &Version| a.cmp(b) == if greater { Ordering::Less } else { Ordering::Greater };
        let short_or_equal =
            |a: &Version, b: &Version| a.cmp(b) != if greater { Ordering::Greater } else { Ordering::Less };
        let zero = Version::parse("0.0.0").ok();
        for comparators in &self.0 {
            let mut high: Option<(&'static str, Version)> = None;
            let mut low: Option<(&'static str, Version)> = None;
            for comparator in comparators {
                let (op, semver) = match &comparator.version {
                    Some(version) => (comparator.op, version.clone()),
                    None => (">=", zero.clone().unwrap_or_else(|| version.clone())),
                };
                let h = high.get_or_insert_with(|| (op, semver.clone())).clone();
                let l = low.get_or_insert_with(|| (op, semver.clone())).clone();
                if beyond(&semver, &h.1) {
                    high = Some((op, semver));
                } else if short(&semver, &l.1) {
                    low = Some((op, semver));
                }
            }
            let (Some(high), Some(low)) = (high, low) else { continue };
            if high.0 == comp || high.0 == ecomp {
                return false;
            }
            let below_low = if low.0.is_empty() || low.0 == comp {
                short_or_equal(version, &low.1)
            } else {
                low.0 == ecomp && short(version, &low.1)
            };
            if below_low {
                return false;
            }
        }
        true
    }
}

fn test_set(set: &[Comparator], version: &Version, include_prerelease: bool) -> bool {
    if !set.iter().all(|c| c.test(version)) {
        return false;
    }
    if !version.prerelease.is_empty() && !include_prerelease {
        return set.iter().any(|c| {
            c.version.as_ref().is_some_and(|allowed| {
                !allowed.prerelease.is_empty()
                    && (allowed.major, allowed.minor, allowed.patch) == (version.major, version.minor, version.patch)
            })
        });
    }
    true
}

/// `Range.parseRange`.
fn parse_range(range: &str, include_prerelease: bool) -> Result<Vec<Comparator>, String> {
    let range = BUILD_STRIP.replace_all(range, "").into_owned();
    let range = HYPHEN.replace(&range, |c: &Captures<'_>| hyphen_replace(c, include_prerelease)).into_owned();
    let range = COMPARATOR_TRIM
        .replace_all(&range, |c: &Captures<'_>| format!("{}{}{}", group(c, 1), group(c, 2), group(c, 3)))
        .into_owned();
    let range = TILDE_TRIM.replace_all(&range, |c: &Captures<'_>| format!("{}~", group(c, 1))).into_owned();
    let range = CARET_TRIM.replace_all(&range, |c: &Captures<'_>| format!("{}^", group(c, 1))).into_owned();
    let replaced: Vec<String> = range.split(' ').map(|comp| parse_comparator(comp, include_prerelease)).collect();
    let joined = replaced.join(" ");
    let gte0 = if include_prerelease { &*GTE0PRE } else { &*GTE0 };
    let list: Vec<String> =
        js_split_blanks(&joined).into_iter().map(|comp| gte0.replace(js_trim(comp), "").into_owned()).collect();
    let mut values: Vec<(String, Comparator)> = Vec::new();
    for text in &list {
        let comparator = Comparator::parse(text)?;
        let value = comparator.value();
        if value == "<0.0.0-0" {
            return Ok(vec![comparator]);
        }
        match values.iter_mut().find(|(v, _)| *v == value) {
            Some(slot) => slot.1 = comparator,
            None => values.push((value, comparator)),
        }
    }
    if values.len() > 1 && values.iter().any(|(v, _)| v.is_empty()) {
        values.retain(|(v, _)| !v.is_empty());
    }
    Ok(values.into_iter().map(|(_, c)| c).collect())
}

fn group<'t>(captures: &Captures<'t>, index: usize) -> &'t str {
    captures.get(index).map_or("", |m| m.as_str())
}

fn opt<'t>(captures: &Captures<'t>, index: usize) -> Option<&'t str> {
    captures.get(index).map(|m| m.as_str())
}

/// `isX`: missing, `x`, `X` or `*`.
fn is_x(id: Option<&str>) -> bool {
    id.is_none_or(|id| id.is_empty() || id.eq_ignore_ascii_case("x") || id == "*")
}

/// JavaScript's `+id + 1`.
fn plus_one(id: Option<&str>) -> String {
    let n: u64 = id.unwrap_or("0").parse().unwrap_or(0);
    n.saturating_add(1).to_string()
}

fn parse_comparator(comp: &str, include_prerelease: bool) -> String {
    let comp = BUILD.replace(comp, "").into_owned();
    let comp = each_blank_separated(&comp, |c| replace_caret(c, include_prerelease));
    let comp = each_blank_separated(&comp, |c| replace_tilde(c, include_prerelease));
    let comp =
        js_split_blanks(&comp).into_iter().map(|c| replace_xrange(c, include_prerelease)).collect::<Vec<_>>().join(" ");
    STAR.replace(js_trim(&comp), "").into_owned()
}

fn each_blank_separated(comp: &str, f: impl Fn(&str) -> String) -> String {
    js_split_blanks(js_trim(comp)).into_iter().map(f).collect::<Vec<_>>().join(" ")
}

fn replace_tilde(comp: &str, include_prerelease: bool) -> String {
    let z = if include_prerelease { "-0" } else { "" };
    TILDE
        .replace(comp, |c: &Captures<'_>| {
            let (major, minor, patch, pre) = (opt(c, 1), opt(c, 2), opt(c, 3), opt(c, 4));
            let (ma, mi, pa) = (major.unwrap_or(""), minor.unwrap_or(""), patch.unwrap_or(""));
            if is_x(major) {
                String::new()
            } else if is_x(minor) {
                format!(">={ma}.0.0{z} <{}.0.0-0", plus_one(major))
            } else if is_x(patch) {
                format!(">={ma}.{mi}.0{z} <{ma}.{}.0-0", plus_one(minor))
            } else if let Some(pre) = pre.filter(|p| !p.is_empty()) {
                format!(">={ma}.{mi}.{pa}-{pre} <{ma}.{}.0-0", plus_one(minor))
            } else {
                format!(">={ma}.{mi}.{pa} <{ma}.{}.0-0", plus_one(minor))
            }
        })
        .into_owned()
}

fn replace_caret(comp: &str, include_prerelease: bool) -> String {
    let z = if include_prerelease { "-0" } else { "" };
    CARET
        .replace(comp, |c: &Captures<'_>| {
            let (major, minor, patch, pre) = (opt(c, 1), opt(c, 2), opt(c, 3), opt(c, 4));
            let (ma, mi, pa) = (major.unwrap_or(""), minor.unwrap_or(""), patch.unwrap_or(""));
            let pre = pre.filter(|p| !p.is_empty()).map(|p| format!("-{p}"));
            if is_x(major) {
                String::new()
            } else if is_x(minor) {
                format!(">={ma}.0.0{z} <{}.0.0-0", plus_one(major))
            } else if is_x(patch) {
                if ma == "0" {
                    format!(">={ma}.{mi}.0{z} <{ma}.{}.0-0", plus_one(minor))
                } else {
                    format!(">={ma}.{mi}.0{z} <{}.0.0-0", plus_one(major))
                }
            } else {
                let low = format!(">={ma}.{mi}.{pa}{}", pre.unwrap_or_default());
                if ma == "0" {
                    if mi == "0" {
                        format!("{low} <{ma}.{mi}.{}-0", plus_one(patch))
                    } else {
                        format!("{low} <{ma}.{}.0-0", plus_one(minor))
                    }
                } else {
                    format!("{low} <{}.0.0-0", plus_one(major))
                }
            }
        })
        .into_owned()
}

fn replace_xrange(comp: &str, include_prerelease: bool) -> String {
    let comp = js_trim(comp);
    XRANGE
        .replace(comp, |c: &Captures<'_>| {
            let whole = group(c, 0).to_owned();
            let mut gtlt = group(c, 1).to_owned();
            let (major, minor, patch) = (opt(c, 2), opt(c, 3), opt(c, 4));
            if (is_x(major) && !is_x(minor)) || (is_x(minor) && patch.is_some_and(|p| !p.is_empty()) && !is_x(patch)) {
                return comp.to_owned();
            }
            let xm_major = is_x(major);
            let xm = xm_major || is_x(minor);
            let xp = xm || is_x(patch);
            if gtlt == "=" && xp {
                gtlt = String::new();
            }
            let mut pr = if include_prerelease { "-0" } else { "" };
            let (mut ma, mut mi) = (major.unwrap_or("").to_owned(), minor.unwrap_or("").to_owned());
            if xm_major {
                if gtlt == ">" || gtlt == "<" { "<0.0.0-0".to_owned() } else { "*".to_owned() }
            } else if !gtlt.is_empty() && xp {
                if xm {
                    mi = "0".to_owned();
                }
                if gtlt == ">" {
                    gtlt = ">=".to_owned();
                    if xm {
                        ma = plus_one(Some(&ma));
                        mi = "0".to_owned();
                    } else {
                        mi = plus_one(Some(&mi));
                    }
                } else if gtlt == "<=" {
                    gtlt = "<".to_owned();
                    if xm {
                        ma = plus_one(Some(&ma));
                    } else {
                        mi = plus_one(Some(&mi));
                    }
                }
                if gtlt == "<" {
                    pr = "-0";
                }
                format!("{gtlt}{ma}.{mi}.0{pr}")
            } else if xm {
                format!(">={ma}.0.0{pr} <{}.0.0-0", plus_one(Some(&ma)))
            } else if xp {
                format!(">={ma}.{mi}.0{pr} <{ma}.{}.0-0", plus_one(Some(&mi)))
            } else {
                whole
            }
        })
        .into_owned()
}

fn hyphen_replace(c: &Captures<'_>, include_prerelease: bool) -> String {
    let z = if include_prerelease { "-0" } else { "" };
    let from_text = group(c, 1);
    let (f_major, f_minor, f_patch, f_pre) = (opt(c, 2), opt(c, 3), opt(c, 4), opt(c, 5));
    let to_text = group(c, 7);
    let (t_major, t_minor, t_patch, t_pre) = (opt(c, 8), opt(c, 9), opt(c, 10), opt(c, 11));
    let fm = f_major.unwrap_or("");
    let from = if is_x(f_major) {
        String::new()
    } else if is_x(f_minor) {
        format!(">={fm}.0.0{z}")
    } else if is_x(f_patch) {
        format!(">={fm}.{}.0{z}", f_minor.unwrap_or(""))
    } else if f_pre.is_some_and(|p| !p.is_empty()) {
        format!(">={from_text}")
    } else {
        format!(">={from_text}{z}")
    };
    let (tm, tn, tp) = (t_major.unwrap_or(""), t_minor.unwrap_or(""), t_patch.unwrap_or(""));
    let to = if is_x(t_major) {
        String::new()
    } else if is_x(t_minor) {
        format!("<{}.0.0-0", plus_one(t_major))
    } else if is_x(t_patch) {
        format!("<{tm}.{}.0-0", plus_one(t_minor))
    } else if let Some(pre) = t_pre.filter(|p| !p.is_empty()) {
        format!("<={tm}.{tn}.{tp}-{pre}")
    } else if include_prerelease {
        format!("<{tm}.{tn}.{}-0", plus_one(t_patch))
    } else {
        format!("<={to_text}")
    };
    format!("{from} {to}").trim().to_owned()
}

/// An npm range, parsed for both pre-release policies.
#[derive(Debug, Clone)]
pub(crate) struct Range {
    default: Set,
    include_prerelease: Set,
}

impl Range {
    pub(crate) fn parse(text: &str) -> Result<Range, String> {
        let reason = |why: String| {
            // A reason that only names the whole range again adds nothing: say it once.
            if why.ends_with(&format!("`{}`", text.trim())) {
                format!("`{}` is not an npm range", text.trim())
            } else {
                format!("`{}` is not an npm range: {why}", text.trim())
            }
        };
        Ok(Range {
            default: Set::parse(text, false).map_err(reason)?,
            include_prerelease: Set::parse(text, true).map_err(reason)?,
        })
    }

    /// `satisfies(version, range, { includePrerelease })`.
    pub(crate) fn test(&self, version: &Version, include_prerelease: bool) -> bool {
        if include_prerelease { self.include_prerelease.test(version, true) } else { self.default.test(version, false) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sat(range: &str, version: &str, include: bool) -> bool {
        Range::parse(range).unwrap().test(&Version::parse(version).unwrap(), include)
    }

    #[test]
    fn ranges_mean_what_they_mean_to_npm() {
        assert_eq!(Set::parse("^1.2.3", false).unwrap().format(), ">=1.2.3 <2.0.0-0");
        assert_eq!(Set::parse("1.2 - 2.3.4", false).unwrap().format(), ">=1.2.0 <=2.3.4");
        assert_eq!(Set::parse("~1.2.x || >=3", false).unwrap().format(), ">=1.2.0 <1.3.0-0||>=3.0.0");
        assert!(sat("^1.2.3", "1.9.0", false));
        assert!(!sat("^1.2.3", "1.9.0-beta.1", false));
        assert!(sat("^1.2.3", "1.9.0-beta.1", true));
        assert!(sat(">=1.2.3-alpha.1 <2", "1.2.3-beta", false));
        assert!(!sat("^1.2.3", "2.0.0-rc.1", true));
        assert!(Range::parse(">=1.2.3.4").is_err());
        assert!(Version::parse("1.2").is_err());
        assert_eq!(Version::parse("v1.2.3-rc.1+build").unwrap().normalized(), "1.2.3-rc.1");
    }
}

/// node-semver's own test fixtures, answered by npm's `semver` itself
/// (`tests/npm/generate`): every vector must agree.
#[cfg(test)]
mod oracle {
    use super::*;
    use serde_json::{Value, json};

    /// `loose` mode, `inc`, truncation and intersections have no counterpart in
    /// upshift; each skipped vector names its reason.
    const EXPECTED_SKIPS: usize = 349;

    fn fixture() -> Value {
        serde_json::from_str(include_str!("../../tests/fixtures/npm-semver.json")).expect("the fixture is JSON")
    }

    #[test]
    fn agrees_with_npm_semver_on_every_vector() {
        let fixture = fixture();
        let (mut checked, mut skipped, mut failures) = (0, 0, Vec::new());
        for v in fixture["vectors"].as_array().unwrap() {
            let s = |key: &str| v[key].as_str().unwrap_or_else(|| panic!("{key} in {v}"));
            let include = v["include_prerelease"].as_bool().unwrap_or(false);
            let ours = match v["kind"].as_str().unwrap() {
                "skipped" => {
                    skipped += 1;
                    continue;
                }
                "compare" => match (Version::parse(s("a")), Version::parse(s("b"))) {
                    (Ok(a), Ok(b)) => json!(a.cmp(&b) as i8),
                    (a, b) => json!(format!("{a:?} {b:?}")),
                },
                "satisfies" => json!(match (Set::parse(s("range"), include), Version::parse(s("version"))) {
                    (Ok(set), Ok(version)) => set.test(&version, include),
                    _ => false,
                }),
                "range_parse" => Set::parse(s("range"), include).map_or(Value::Null, |set| json!(set.format())),
                "outside" => match (Set::parse(s("range"), include), Version::parse(s("version"))) {
                    (Ok(set), Ok(version)) => json!(set.outside(&version, s("hilo") == ">", include)),
                    _ => Value::Null,
                },
                "valid" => Version::parse(s("input")).map_or(Value::Null, |v| json!(v.normalized())),
                "parse" => Version::parse(s("input")).map_or(Value::Null, |v| {
                    let prerelease: Vec<Value> = v
                        .prerelease
                        .iter()
                        .map(|id| match id {
                            Identifier::Number(n) => json!(n),
                            Identifier::Text(t) => json!(t),
                        })
                        .collect();
                    json!({ "major": v.major, "minor": v.minor, "patch": v.patch, "prerelease": prerelease,
                            "build": v.build, "version": v.normalized() })
                }),
                other => panic!("unknown kind {other}"),
            };
            checked += 1;
            if ours != v["answer"] {
                failures.push(format!("{v}\n    upshift: {ours}"));
            }
        }
        assert!(failures.is_empty(), "{} of {checked} vectors disagree:\n{}", failures.len(), failures.join("\n"));
        assert_eq!(skipped, EXPECTED_SKIPS, "the number of skipped vectors changed");
        eprintln!("npm semver: {checked} vectors agree, {skipped} skipped");
    }
}
