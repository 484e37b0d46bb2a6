//! Secrets at run time: resolving each one from its source (environment
//! variable, file, command), and the masker every line of output, every
//! journal record and every error passes through.
//!
//! The masker hides a value in every form output can carry it: as written,
//! each line of a multi-line value, JSON-escaped (with and without `\/`),
//! shell-quoted (single, double, `$'…'`), percent-encoded and base64 at any
//! alignment. A value too short to hide without showing where it was (masked
//! inside ordinary words) is refused.
//!
//! Values live only in memory, only for `run`, `resume` and `rollback`.

use std::collections::BTreeMap;
use std::time::Duration;

use aho_corasick::{AhoCorasick, MatchKind};

use crate::playbook::{Playbook, SecretSource};

/// What replaces a secret's value wherever it would be shown or stored.
pub(crate) const MASK: &str = "********";

/// The shortest secret upshift accepts: shorter ones would be masked inside
/// ordinary words, which shows where they are.
pub(crate) const MIN_LENGTH: usize = 8;

/// The most a secret file or a secret command's output may hold.
const MAX_LENGTH: u64 = 1 << 20;

/// How long a secret's command may take.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(60);

/// Resolves every secret. `Err` lists the problems (missing required ones, too short ones).
pub(crate) fn resolve(playbook: &Playbook) -> Result<BTreeMap<String, String>, Vec<String>> {
    let mut values = BTreeMap::new();
    let mut problems = Vec::new();
    for (name, secret) in &playbook.secrets {
        let found = match &secret.source {
            SecretSource::Env(var) => match std::env::var(var) {
                Ok(value) if !value.is_empty() => Ok(value),
                Ok(_) => Err(format!("`{name}`: the environment variable `{var}` is empty")),
                Err(std::env::VarError::NotPresent) => {
                    Err(format!("`{name}`: the environment variable `{var}` is not set"))
                }
                Err(std::env::VarError::NotUnicode(_)) => {
                    Err(format!("`{name}`: the environment variable `{var}` is not UTF-8"))
                }
            },
            SecretSource::File(path) => match crate::files::read_document(path, MAX_LENGTH) {
                Ok(bytes) => String::from_utf8(bytes)
                    .map(|text| text.trim_end_matches(['\n', '\r']).to_owned())
                    .map_err(|_| format!("`{name}`: `{}` is not UTF-8", crate::diagnostic::display_path(path))),
                Err(error) => Err(format!(
                    "`{name}`: cannot read `{}`: {}",
                    crate::diagnostic::display_path(path),
                    crate::document::io_reason(&error)
                )),
            },
            SecretSource::Command(argv) => from_command(name, argv),
        };
        match found {
            Ok(value) if value.is_empty() => {
                if secret.required {
                    problems.push(format!("`{name}`: the value is empty"));
                }
            }
            Ok(value) if value.chars().count() < MIN_LENGTH => problems.push(format!(
                "`{name}`: the value has {} characters; a secret needs at least {MIN_LENGTH} to be hidden in output (a shorter one would be masked inside ordinary words, which shows where it is)",
                value.chars().count()
            )),
            Ok(value) => {
                values.insert(name.clone(), value);
            }
            Err(reason) if secret.required => problems.push(reason),
            Err(_) => {}
        }
    }
    if problems.is_empty() { Ok(values) } else { Err(problems) }
}

/// Runs a secret's command (no shell, its own process group, a timeout, its
/// output bounded) and returns its standard output, trailing newline trimmed.
fn from_command(name: &str, argv: &[String]) -> Result<String, String> {
    use crate::process::{CommandSpec, Executor};
    let program = argv.first().map_or("", String::as_str);
    let spec = CommandSpec {
        argv: argv.to_vec(),
        cwd: None,
        env: Vec::new(),
        timeout: Some(COMMAND_TIMEOUT),
        masker: Masker::default(),
    };
    let output = crate::process::Local
        .run(&spec)
        .map_err(|error| format!("`{name}`: `{program}` could not start: {}", crate::document::io_reason(&error)))?;
    if !output.success() {
        // Its output may hold the value: say only how it ended.
        return Err(format!("`{name}`: `{program}` {}", output.describe_end()));
    }
    if output.stdout.len() as u64 > MAX_LENGTH {
        return Err(format!("`{name}`: `{program}` printed more than 1 MiB"));
    }
    Ok(output.stdout.trim_end_matches(['\n', '\r']).to_owned())
}

/// Replaces every secret value, in every form, with `********`.
#[derive(Debug, Clone, Default)]
pub(crate) struct Masker {
    /// Every form of every value, longest first.
    patterns: Vec<String>,
    matcher: Option<AhoCorasick>,
}

impl Masker {
    pub(crate) fn new(values: &BTreeMap<String, String>) -> Masker {
        let mut patterns: Vec<String> = values.values().filter(|v| !v.is_empty()).flat_map(|v| forms(v)).collect();
        patterns.sort_by(|a, b| b.len().cmp(&a.len()).then_with(|| a.cmp(b)));
        patterns.dedup();
        let matcher = (!patterns.is_empty()).then(|| {
            AhoCorasick::builder()
                .match_kind(MatchKind::LeftmostLongest)
                .build(&patterns)
                .expect("literal patterns always build")
        });
        Masker { patterns, matcher }
    }

    /// The longest form of any secret, in bytes (0 without secrets).
    pub(crate) fn longest(&self) -> usize {
        self.patterns.first().map_or(0, String::len)
    }

    pub(crate) fn mask(&self, text: &str) -> String {
        match &self.matcher {
            Some(matcher) if matcher.is_match(text) => {
                let mut out = String::with_capacity(text.len());
                matcher.replace_all_with(text, &mut out, |_, _, out| {
                    out.push_str(MASK);
                    true
                });
                out
            }
            _ => text.to_owned(),
        }
    }

    /// Where a too-long line may be cut at or before `wanted` bytes so that no
    /// occurrence of a secret, whole or still arriving, is cut in two. `None`
    /// when no such place exists yet (wait for more bytes).
    pub(crate) fn safe_cut(&self, bytes: &[u8], wanted: usize) -> Option<usize> {
        let mut cut = wanted.min(bytes.len());
        if let Some(matcher) = &self.matcher {
            // Hold back what could be the start of a secret still arriving.
            cut = cut.min(bytes.len().saturating_sub(self.longest().saturating_sub(1)));
            for found in matcher.find_iter(bytes) {
                if found.start() < cut && cut < found.end() {
                    cut = found.start();
                }
            }
        }
        // Never inside a UTF-8 character.
        while cut > 0 && cut < bytes.len() && (bytes[cut] & 0b1100_0000) == 0b1000_0000 {
            cut -= 1;
        }
        (cut > 0).then_some(cut)
    }
}

/// The forms a value can take in output.
fn forms(value: &str) -> Vec<String> {
    let mut out = vec![value.to_owned()];
    // Each line of a multi-line value (a PEM key), as output arrives line by line.
    if value.contains('\n') {
        out.extend(
            value
                .lines()
                .map(|l| l.trim_end_matches('\r'))
                .filter(|l| l.trim().chars().count() >= 3)
                .map(str::to_owned),
        );
    }
    // JSON, as a command or a config file prints it (PHP escapes `/` too).
    let json = serde_json::to_string(value).expect("a string serializes");
    let json = &json[1..json.len() - 1];
    out.push(json.to_owned());
    out.push(json.replace('/', "\\/"));
    // Shell: single-quoted (`set -x`), double-quoted, and bash's `$'…'`.
    out.push(shell_words::quote(value).into_owned());
    out.push(value.replace('\'', "'\\''"));
    out.push(value.chars().fold(String::new(), |mut s, c| {
        if matches!(c, '"' | '\\' | '$' | '`') {
            s.push('\\');
        }
        s.push(c);
        s
    }));
    out.push(ansi_c(value));
    // URLs and forms.
    out.push(percent(value, false));
    out.push(percent(value, true));
    out.push(percent(value, false).to_ascii_lowercase());
    // Base64 at each alignment: the characters that depend on the value alone.
    for alphabet in [STANDARD, URL_SAFE] {
        for offset in 0..3 {
            let mut bytes = vec![0u8; offset];
            bytes.extend_from_slice(value.as_bytes());
            let encoded = base64(&bytes, alphabet);
            let start = if offset == 0 { 0 } else { 4 };
            let end = if bytes.len() % 3 == 0 { encoded.len() } else { encoded.len().saturating_sub(4) };
            if end > start + 4 {
                out.push(encoded[start..end].to_owned());
            }
        }
    }
    out.retain(|form| form.chars().count() >= 3);
    out
}

fn ansi_c(value: &str) -> String {
    let mut out = String::new();
    for c in value.chars() {
        match c {
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            '\\' => out.push_str("\\\\"),
            '\'' => out.push_str("\\'"),
            c => out.push(c),
        }
    }
    out
}

fn percent(value: &str, plus: bool) -> String {
    let mut out = String::new();
    for byte in value.bytes() {
        match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => out.push(byte as char),
            b' ' if plus => out.push('+'),
            _ => out.push_str(&format!("%{byte:02X}")),
        }
    }
    out
}

const STANDARD: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
const URL_SAFE: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

/// Base64 without padding.
fn base64(bytes: &[u8], alphabet: &[u8; 64]) -> String {
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let n = (u32::from(chunk[0]) << 16)
            | (u32::from(*chunk.get(1).unwrap_or(&0)) << 8)
            | u32::from(*chunk.get(2).unwrap_or(&0));
        let chars = chunk.len() + 1;
        for i in 0..chars {
            out.push(alphabet[((n >> (18 - 6 * i)) & 63) as usize] as char);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn masker(values: &[&str]) -> Masker {
        Masker::new(&values.iter().enumerate().map(|(i, v)| (i.to_string(), (*v).to_owned())).collect())
    }

    #[test]
    fn masks_every_occurrence_longest_first() {
        let masker = masker(&["hunter2-x", "hunter2-long"]);
        assert_eq!(masker.mask("x hunter2-long y hunter2-x"), "x ******** y ********");
    }

    #[test]
    fn masks_every_form_output_can_carry() {
        let secret = "p/ss w\"o'rd$1";
        let masker = masker(&[secret]);
        let json = serde_json::to_string(secret).unwrap();
        for shown in [
            secret.to_owned(),
            json[1..json.len() - 1].to_owned(),
            json[1..json.len() - 1].replace('/', "\\/"),
            shell_words::quote(secret).into_owned(),
            "p%2Fss%20w%22o%27rd%241".to_owned(),
            "p%2Fss+w%22o%27rd%241".to_owned(),
        ] {
            let masked = masker.mask(&format!("before {shown} after"));
            assert_eq!(masked, "before ******** after", "{shown}");
        }
        // Base64 inside other text, at any alignment (HTTP basic auth).
        for prefix in ["", "u:", "us:", "use:"] {
            let encoded = base64(format!("{prefix}{secret}").as_bytes(), STANDARD);
            let masked = masker.mask(&encoded);
            assert!(masked.contains(MASK), "{prefix}: {encoded} → {masked}");
            assert!(masked.len() < encoded.len() / 2 + MASK.len() + 8, "{prefix}: most of it is hidden: {masked}");
        }
    }

    #[test]
    fn masks_each_line_of_a_multi_line_secret() {
        let key = "-----BEGIN KEY-----\nMIIEowIBAAKCAQEA1\nq2w3e4r5t6y7u8i9\n-----END KEY-----";
        let masker = masker(&[key]);
        for line in key.lines() {
            assert_eq!(masker.mask(line), MASK, "{line}");
        }
        assert_eq!(masker.mask(key), MASK);
        assert_eq!(masker.mask(&key.replace('\n', "\\n")), MASK, "JSON-escaped whole");
    }

    #[test]
    fn a_cut_never_splits_a_secret() {
        let masker = masker(&["abcdefghij"]);
        let text = b"0123abcdefghij5678";
        // Cutting at 8 would split the secret: the cut moves before it.
        assert_eq!(masker.safe_cut(text, 8), Some(4));
        // A partial secret at the end is held back.
        let cut = masker.safe_cut(b"0123456789abcde", 15).unwrap();
        assert!(cut <= 10, "{cut}");
        assert_eq!(Masker::default().safe_cut(text, 8), Some(8));
    }
}
