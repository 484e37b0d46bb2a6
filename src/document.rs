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
        // A message of our own (`its working directory … does not exist`) says more than the kind.
        _ if error.get_ref().is_some() => error.to_string(),
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

/// Parses `source` as `T`, all or nothing (`parse_partial` keeps what parses).
#[cfg(test)]
pub(crate) fn parse<T: DeserializeOwned>(source: &Arc<Source>, arrays: &[(&str, Piece)]) -> Result<T, Vec<Diagnostic>> {
    match parse_partial(source, arrays) {
        Parsed { value: Some(value), diagnostics, .. } if diagnostics.is_empty() => Ok(value),
        Parsed { diagnostics, .. } => Err(diagnostics),
    }
}

/// A document parsed as far as it goes: what parsed once every key that did
/// not fit was left out, and a diagnostic for each key left out.
#[derive(Debug)]
pub(crate) struct Parsed<T> {
    pub(crate) value: Option<T>,
    pub(crate) diagnostics: Vec<Diagnostic>,
    /// The spans of the tables that lost a key (the whole document's among
    /// them): what such a table lacks may be the key that was left out.
    pub(crate) damaged: Vec<std::ops::Range<usize>>,
}

/// Parses `source` as `T`, leaving out each key (or array element) that does
/// not fit and saying why, so that checks can go on with the rest: one
/// problem never hides another. Syntax errors stop it (`value` is `None`).
/// `arrays` names the arrays of tables whose elements are parsed one by one
/// (each with its own type) when leaving keys out does not get there.
pub(crate) fn parse_partial<T: DeserializeOwned>(source: &Arc<Source>, arrays: &[(&str, Piece)]) -> Parsed<T> {
    let (document, errors) = DeTable::parse_recoverable(&source.text);
    if !errors.is_empty() {
        let diagnostics = errors.iter().map(|error| syntax_diagnostic(source, error)).collect();
        return Parsed { value: None, diagnostics, damaged: Vec::new() };
    }
    let first = match T::deserialize(toml::de::Deserializer::from(document.clone())) {
        Ok(value) => return Parsed { value: Some(value), diagnostics: Vec::new(), damaged: Vec::new() },
        Err(error) => error,
    };
    // The slow path, for a broken file only: leave out what does not fit, one key at a time.
    let whole = document.get_ref().clone();
    // The whole document is the root table's span (what `absent` compares with).
    let root = 0..source.text.len();
    let mut trimmed = document.clone();
    let mut diagnostics = Vec::new();
    let mut damaged = Vec::new();
    let mut error = first;
    // Each round removes a key, so the rounds end; the bound is a guard.
    for _ in 0..10_000 {
        let Some(table) = error.span().and_then(|span| remove_at(trimmed.get_mut(), root.clone(), &span)) else {
            break;
        };
        diagnostics.push(serde_diagnostic(source, &whole, &error));
        damaged.push(table);
        match T::deserialize(toml::de::Deserializer::from(trimmed.clone())) {
            Ok(value) => return Parsed { value: Some(value), diagnostics, damaged },
            Err(next) => error = next,
        }
    }
    // What could not be left out: report piece by piece, as well as it goes.
    let mut rest: Vec<(toml::Spanned<DeValue<'_>>, Piece)> = Vec::new();
    let mut top = trimmed;
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
        diagnostics.push(serde_diagnostic(source, &whole, &error));
    }
    Parsed { value: None, diagnostics, damaged }
}

/// Removes the key (or array element) that `span` points at, or whose table or
/// value it is; returns the span of the table (or array) it was removed from.
fn remove_at(
    table: &mut DeTable<'_>,
    table_span: std::ops::Range<usize>,
    span: &std::ops::Range<usize>,
) -> Option<std::ops::Range<usize>> {
    let hit =
        table.iter().find(|(key, value)| key.span() == *span || value.span() == *span).map(|(key, _)| key.clone());
    if let Some(key) = hit {
        table.remove(&key);
        return Some(table_span);
    }
    // Spans of arrays of tables do not cover their elements: look everywhere.
    table.iter_mut().find_map(|(_, value)| {
        let inner = value.span();
        remove_in(value.get_mut(), inner, span)
    })
}

fn remove_in(
    value: &mut DeValue<'_>,
    value_span: std::ops::Range<usize>,
    span: &std::ops::Range<usize>,
) -> Option<std::ops::Range<usize>> {
    match value {
        DeValue::Table(table) => remove_at(table, value_span, span),
        DeValue::Array(items) => {
            if let Some(index) = items.iter().position(|item| item.span() == *span) {
                let kept: toml::de::DeArray<'_> =
                    items.iter().enumerate().filter(|(i, _)| *i != index).map(|(_, item)| item.clone()).collect();
                *items = kept;
                return Some(value_span);
            }
            items.iter_mut().find_map(|item| {
                let inner = item.span();
                remove_in(item.get_mut(), inner, span)
            })
        }
        _ => None,
    }
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
    if start == path.len() && start >= 2 {
        // An element of an array of tables: `[[step]]`.
        if let Some(Some(array)) = path.get(start - 2) {
            return format!("[[{array}]]");
        }
    }
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
    // Say whose value it is: `timeout`: invalid type: integer `5`, expected a string.
    let key = error.span().and_then(|span| key_of_value(document, &span));
    let message = match key {
        Some(key) if message.starts_with("invalid ") => format!("`{key}`: {message}"),
        _ => message,
    };
    Diagnostic::error(message).at_opt(location).label("here")
}

/// The key whose value is at `span`, anywhere in the document.
fn key_of_value(table: &DeTable<'_>, span: &std::ops::Range<usize>) -> Option<String> {
    table.iter().find_map(|(key, value)| {
        if value.span() == *span {
            return Some(key.get_ref().to_string());
        }
        key_in_value(value.get_ref(), span)
    })
}

fn key_in_value(value: &DeValue<'_>, span: &std::ops::Range<usize>) -> Option<String> {
    match value {
        DeValue::Table(table) => key_of_value(table, span),
        DeValue::Array(items) => items.iter().find_map(|item| key_in_value(item.get_ref(), span)),
        _ => None,
    }
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
