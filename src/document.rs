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

/// Re-parses one element of an array of tables as its own type.
pub(crate) type Piece = for<'a> fn(toml::Spanned<DeValue<'a>>) -> Result<(), toml::de::Error>;

/// A `Piece` for elements of type `E`.
pub(crate) fn piece<E: DeserializeOwned>(item: toml::Spanned<DeValue<'_>>) -> Result<(), toml::de::Error> {
    E::deserialize(ValueDeserializer::from(item)).map(|_| ())
}

/// Parses `source` as `T`. `arrays` names the arrays of tables whose elements
/// are re-parsed one by one (each with its own type) to find every broken element.
pub(crate) fn parse<T: DeserializeOwned>(source: &Arc<Source>, arrays: &[(&str, Piece)]) -> Result<T, Vec<Diagnostic>> {
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
    let whole = document.get_ref().clone();
    let mut diagnostics = Vec::new();
    let mut rest: Vec<(toml::Spanned<DeValue<'_>>, Piece)> = Vec::new();
    let mut top = document.clone();
    for (name, piece) in arrays {
        if let Some(value) = top.get_mut().remove(*name) {
            if let DeValue::Array(items) = value.get_ref() {
                for item in items.iter() {
                    rest.push((item.clone(), *piece));
                }
            } else {
                rest.push((value, *piece));
            }
        }
    }
    for (item, piece) in rest {
        if let Err(error) = piece(item) {
            diagnostics.push(serde_diagnostic(source, &whole, &error));
        }
    }
    if let Err(error) = T::deserialize(toml::de::Deserializer::from(top)) {
        diagnostics.push(serde_diagnostic(source, &whole, &error));
    }
    if diagnostics.is_empty() {
        diagnostics.push(serde_diagnostic(source, &whole, &first));
    }
    Err(diagnostics)
}

/// The keys leading to the table that holds the key at `span`; `None` stands
/// for an element of an array.
fn table_path(table: &DeTable<'_>, span: &std::ops::Range<usize>) -> Option<Vec<Option<String>>> {
    for (key, value) in table.iter() {
        if key.span() == *span {
            return Some(Vec::new());
        }
        if let Some(mut path) = value_path(value.get_ref(), span) {
            path.insert(0, Some(key.get_ref().to_string()));
            return Some(path);
        }
    }
    None
}

fn value_path(value: &DeValue<'_>, span: &std::ops::Range<usize>) -> Option<Vec<Option<String>>> {
    match value {
        DeValue::Table(table) => table_path(table, span),
        DeValue::Array(items) => items.iter().find_map(|item| {
            value_path(item.get_ref(), span).map(|mut path| {
                path.insert(0, None);
                path
            })
        }),
        _ => None,
    }
}

/// How people name a table: the keys after the last array element
/// (`edit.line` inside a `[[step]]`, `version.current` at the top).
fn table_name(path: &[Option<String>]) -> String {
    let start = path.iter().rposition(Option::is_none).map_or(0, |i| i + 1);
    path[start..].iter().flatten().cloned().collect::<Vec<_>>().join(".")
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

/// Turns serde's words into the house voice, with "did you mean" for unknown
/// keys (from the keys of the table the key is in, which it names).
fn serde_diagnostic(source: &Arc<Source>, document: &DeTable<'_>, error: &toml::de::Error) -> Diagnostic {
    let message = first_line(error.message());
    let location = error.span().map(|span| Location::new(source, span));
    if let Some(rest) = message.strip_prefix("unknown field `") {
        let (name, expected) = rest.split_once('`').unwrap_or((rest, ""));
        let candidates: Vec<&str> = expected.split('`').skip(1).step_by(2).collect();
        let table = error.span().and_then(|span| table_path(document, &span)).map(|path| table_name(&path));
        let diagnostic = match table.filter(|t| !t.is_empty()) {
            Some(table) => Diagnostic::error(format!("unknown key `{name}` in `{table}`"))
                .at_opt(location)
                .label(format!("not a key of `{table}`")),
            None => Diagnostic::error(format!("unknown key `{name}`")).at_opt(location).label("not a known key here"),
        };
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
        let arrays: [(&str, Piece); 3] =
            [("step", piece::<RawStep>), ("finally", piece::<RawStep>), ("check", piece::<crate::raw::RawCheck>)];
        match parse::<RawPlaybook>(&source, &arrays) {
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
    fn names_the_table_of_a_nested_unknown_key() {
        let found = errors(
            "format = 1\nname = \"x\"\n[[check]]\nname = \"c\"\nrun = \"true\"\nexpect = { minimum = 1 }\n[[step]]\nid = \"a\"\nedit = { path = \"f\", line = { regex = \"x\", replace = \"y\", mising = \"append\" } }\n[version]\ncurrent = { value = \"1.0.0\", regx = \"x\" }\navailable = { list = [] }\n",
        );
        assert_eq!(found.len(), 3, "{found:?}");
        assert!(
            found.iter().any(|f| f.contains("unknown key `minimum` in `expect`") && f.contains("did you mean `min`?")),
            "{found:?}"
        );
        assert!(
            found.iter().any(|f| f.contains("unknown key `mising` in `edit.line`") && f.contains("`missing`")),
            "{found:?}"
        );
        assert!(found.iter().any(|f| f.contains("unknown key `regx` in `version.current`")), "{found:?}");
    }

    #[test]
    fn reports_syntax_errors() {
        let found = errors("format = \nname = 'x'");
        assert!(found[0].starts_with("invalid TOML"), "{found:?}");
    }
}
