//! Reading TOML files into raw types: syntax errors and type errors become
//! diagnostics with `file:line:col`, as many at once as the text allows.
//!
//! A serde error stops at its first problem, so a file whose whole parse fails
//! is parsed again piece by piece (each `[[step]]`, `[[check]]`, `[[finally]]`
//! and the rest) to report every broken piece, not just the first.

use std::path::Path;
use std::sync::Arc;

use serde::de::DeserializeOwned;
use toml::de::{DeTable, DeValue, ValueDeserializer};

use crate::diagnostic::{Diagnostic, Location, Source, did_you_mean};

/// Reads a file into a `Source`, or says why not.
pub(crate) fn read(path: &Path, what: &str) -> Result<Arc<Source>, Diagnostic> {
    let text = crate::files::read_document(path, crate::files::DOCUMENT_LIMIT).and_then(|bytes| {
        String::from_utf8(bytes).map_err(|_| std::io::Error::new(std::io::ErrorKind::InvalidData, "not UTF-8 text"))
    });
    match text {
        Ok(text) => Ok(Source::new(path, text)),
        Err(error) => Err(Diagnostic::error(format!(
            "cannot read {what} `{}`: {}",
            crate::diagnostic::display_path(path),
            io_reason(&error)
        ))),
    }
}

/// An I/O error in the house voice (lowercase, no "os error" noise).
pub(crate) fn io_reason(error: &std::io::Error) -> String {
    let text = match error.kind() {
        std::io::ErrorKind::NotFound => "no such file".to_owned(),
        std::io::ErrorKind::PermissionDenied => "permission denied".to_owned(),
        _ => error.to_string(),
    };
    let mut chars = text.chars();
    match chars.next() {
        Some(first) => first.to_lowercase().chain(chars).collect(),
        None => text,
    }
}

/// Parses `source` as `T`. `arrays` names the arrays of tables whose elements
/// are re-parsed one by one (as `E`) to find every broken element.
pub(crate) fn parse<T: DeserializeOwned, E: DeserializeOwned>(
    source: &Arc<Source>,
    arrays: &[&str],
) -> Result<T, Vec<Diagnostic>> {
    let (document, errors) = DeTable::parse_recoverable(&source.text);
    if !errors.is_empty() {
        return Err(errors.iter().map(|error| syntax_diagnostic(source, error)).collect());
    }
    let first = match T::deserialize(toml::de::Deserializer::from(document)) {
        Ok(value) => return Ok(value),
        Err(error) => error,
    };
    // The slow path, for a broken file only: parse again and try piece by piece.
    let (document, _) = DeTable::parse_recoverable(&source.text);
    let mut diagnostics = Vec::new();
    let mut rest: Vec<(toml::Spanned<DeValue<'_>>, &str)> = Vec::new();
    let mut top = document.clone();
    for name in arrays {
        if let Some(value) = top.get_mut().remove(*name) {
            if let DeValue::Array(items) = value.get_ref() {
                for item in items.iter() {
                    rest.push((item.clone(), name));
                }
            } else {
                rest.push((value, name));
            }
        }
    }
    for (item, _) in rest {
        if let Err(error) = E::deserialize(ValueDeserializer::from(item)) {
            diagnostics.push(serde_diagnostic(source, &error));
        }
    }
    if let Err(error) = T::deserialize(toml::de::Deserializer::from(top)) {
        diagnostics.push(serde_diagnostic(source, &error));
    }
    if diagnostics.is_empty() {
        diagnostics.push(serde_diagnostic(source, &first));
    }
    Err(diagnostics)
}

fn syntax_diagnostic(source: &Arc<Source>, error: &toml::de::Error) -> Diagnostic {
    let message = first_line(error.message());
    let diagnostic = Diagnostic::error(format!("invalid TOML: {message}"));
    match error.span() {
        Some(span) => diagnostic.at(Location::new(source, span)),
        None => diagnostic,
    }
}

fn first_line(text: &str) -> String {
    text.lines().next().unwrap_or(text).trim().trim_end_matches('.').to_owned()
}

/// Turns serde's words into the house voice, with "did you mean" for unknown keys.
fn serde_diagnostic(source: &Arc<Source>, error: &toml::de::Error) -> Diagnostic {
    let message = first_line(error.message());
    let location = error.span().map(|span| Location::new(source, span));
    if let Some(rest) = message.strip_prefix("unknown field `") {
        let (name, expected) = rest.split_once('`').unwrap_or((rest, ""));
        let candidates: Vec<&str> = expected.split('`').skip(1).step_by(2).collect();
        let diagnostic =
            Diagnostic::error(format!("unknown key `{name}`")).at_opt(location).label("not a known key here");
        return match did_you_mean(name, candidates.iter().copied()) {
            Some(close) => diagnostic.help(format!("did you mean `{close}`?")),
            None if !candidates.is_empty() => diagnostic.help(format!(
                "the keys allowed here are {}",
                candidates.iter().map(|c| format!("`{c}`")).collect::<Vec<_>>().join(", ")
            )),
            None => diagnostic,
        };
    }
    if let Some(rest) = message.strip_prefix("missing field `") {
        let name = rest.split('`').next().unwrap_or(rest);
        return Diagnostic::error(format!("missing key `{name}`")).at_opt(location).label("in this table");
    }
    let message = message
        .replace("expected u32", "expected a whole number ≥ 0")
        .replace("expected i64", "expected a whole number");
    Diagnostic::error(message).at_opt(location).label("here")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::raw::{RawPlaybook, RawStep};

    fn errors(text: &str) -> Vec<String> {
        let source = Source::new(Path::new("t.toml"), text.to_owned());
        match parse::<RawPlaybook, RawStep>(&source, &["step", "finally"]) {
            Ok(_) => Vec::new(),
            Err(diagnostics) => diagnostics.iter().map(|d| format!("{} {:?}", d.message, d.help)).collect(),
        }
    }

    #[test]
    fn reports_an_unknown_key_in_every_step() {
        let found = errors(
            "format = 1\nname = \"x\"\n[[step]]\nid = \"a\"\nrollbak = \"x\"\n[[step]]\nid = \"b\"\nrunn = \"x\"\n",
        );
        assert_eq!(found.len(), 2, "{found:?}");
        assert!(found[0].contains("unknown key `rollbak`") && found[0].contains("did you mean `rollback`?"));
        assert!(found[1].contains("unknown key `runn`") && found[1].contains("did you mean `run`?"));
    }

    #[test]
    fn reports_syntax_errors() {
        let found = errors("format = \nname = 'x'");
        assert!(found[0].starts_with("invalid TOML"), "{found:?}");
    }
}
