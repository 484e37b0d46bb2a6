//! Diagnostics: the one type every user-facing problem with a playbook becomes,
//! and the one place they are rendered (annotate-snippets, as cargo does for
//! TOML), as text or as JSON for editors and CI.
//!
//! House voice: lowercase, names in backticks, no final period. This module
//! only renders; it never decides what is wrong.

use std::ops::Range;
use std::path::Path;
use std::sync::Arc;

use annotate_snippets::{AnnotationKind, Group, Level, Renderer, Snippet};
use serde::Serialize;

/// A file whose text diagnostics can point into.
#[derive(Debug)]
pub(crate) struct Source {
    /// The path as shown to people (relative to the working directory when possible).
    pub(crate) display: String,
    pub(crate) text: String,
}

impl Source {
    pub(crate) fn new(path: &Path, text: String) -> Arc<Source> {
        Arc::new(Source { display: display_path(path), text })
    }

    /// 1-based line and column (in characters) of a byte offset.
    pub(crate) fn line_col(&self, offset: usize) -> (usize, usize) {
        let offset = offset.min(self.text.len());
        let before = &self.text[..offset];
        let line = before.matches('\n').count() + 1;
        let line_start = before.rfind('\n').map_or(0, |i| i + 1);
        (line, before[line_start..].chars().count() + 1)
    }
}

/// Shows `path` relative to the working directory when it lies below it.
pub(crate) fn display_path(path: &Path) -> String {
    if let Ok(cwd) = std::env::current_dir()
        && let Ok(relative) = path.strip_prefix(&cwd)
    {
        return relative.display().to_string();
    }
    path.display().to_string()
}

/// A place in a source file.
#[derive(Debug, Clone)]
pub(crate) struct Location {
    pub(crate) source: Arc<Source>,
    pub(crate) span: Range<usize>,
}

impl Location {
    pub(crate) fn new(source: &Arc<Source>, span: Range<usize>) -> Location {
        Location { source: Arc::clone(source), span }
    }

    /// `path:line:col`.
    pub(crate) fn describe(&self) -> String {
        let (line, col) = self.source.line_col(self.span.start);
        format!("{}:{line}:{col}", self.source.display)
    }
}

/// One problem, with where it is and what might fix it.
#[derive(Debug, Clone)]
pub struct Diagnostic {
    pub(crate) message: String,
    pub(crate) location: Option<Location>,
    pub(crate) label: Option<String>,
    pub(crate) help: Option<String>,
    pub(crate) notes: Vec<String>,
}

impl Diagnostic {
    pub(crate) fn error(message: impl Into<String>) -> Diagnostic {
        Diagnostic { message: message.into(), location: None, label: None, help: None, notes: Vec::new() }
    }

    pub(crate) fn at(mut self, location: Location) -> Diagnostic {
        self.location = Some(location);
        self
    }

    pub(crate) fn at_opt(mut self, location: Option<Location>) -> Diagnostic {
        self.location = location;
        self
    }

    pub(crate) fn label(mut self, label: impl Into<String>) -> Diagnostic {
        self.label = Some(label.into());
        self
    }

    pub(crate) fn help(mut self, help: impl Into<String>) -> Diagnostic {
        self.help = Some(help.into());
        self
    }

    pub(crate) fn note(mut self, note: impl Into<String>) -> Diagnostic {
        self.notes.push(note.into());
        self
    }

    fn sort_key(&self) -> (String, usize, usize) {
        match &self.location {
            Some(location) => (location.source.display.clone(), location.span.start, location.span.end),
            None => (String::new(), 0, 0),
        }
    }

    /// Renders the diagnostic as text, with a source snippet where there is a location.
    pub(crate) fn render(&self, color: bool) -> String {
        let renderer = if color { Renderer::styled() } else { Renderer::plain() };
        // What a value brings into a message is shown, never obeyed by the terminal.
        let shown = |text: &str| crate::ui::printable(text, &[]).into_owned();
        let message = shown(&self.message);
        let label = self.label.as_deref().map(shown);
        let help = self.help.as_deref().map(shown);
        let notes: Vec<String> = self.notes.iter().map(|note| shown(note)).collect();
        let mut title = Group::with_title(Level::ERROR.primary_title(message.as_str()));
        if let Some(location) = &self.location {
            let text = location.source.text.as_str();
            let mut span = location.span.clone();
            span.end = span.end.min(text.len());
            span.start = span.start.min(span.end);
            let annotation = AnnotationKind::Primary.span(span);
            let annotation = match &label {
                Some(label) => annotation.label(label.as_str()),
                None => annotation,
            };
            title = title.element(Snippet::source(text).path(location.source.display.as_str()).annotation(annotation));
        }
        let mut groups = vec![title];
        for note in &notes {
            groups.push(Group::with_title(Level::NOTE.secondary_title(note.as_str())));
        }
        if let Some(help) = &help {
            groups.push(Group::with_title(Level::HELP.secondary_title(help.as_str())));
        }
        renderer.render(&groups)
    }

    /// The JSON shape of a diagnostic (documented in the README).
    pub(crate) fn to_json(&self) -> JsonDiagnostic {
        let (file, line, column, end_line, end_column) = match &self.location {
            Some(location) => {
                let (line, column) = location.source.line_col(location.span.start);
                let (end_line, end_column) = location.source.line_col(location.span.end);
                (Some(location.source.display.clone()), Some(line), Some(column), Some(end_line), Some(end_column))
            }
            None => (None, None, None, None, None),
        };
        JsonDiagnostic {
            severity: "error",
            message: self.message.clone(),
            file,
            line,
            column,
            end_line,
            end_column,
            label: self.label.clone(),
            help: self.help.clone(),
            notes: self.notes.clone(),
        }
    }
}

#[derive(Debug, Serialize)]
pub(crate) struct JsonDiagnostic {
    severity: &'static str,
    message: String,
    file: Option<String>,
    line: Option<usize>,
    column: Option<usize>,
    end_line: Option<usize>,
    end_column: Option<usize>,
    label: Option<String>,
    help: Option<String>,
    notes: Vec<String>,
}

/// Sorts diagnostics by file and position and drops exact repeats.
pub(crate) fn sort(diagnostics: &mut Vec<Diagnostic>) {
    diagnostics.sort_by_key(Diagnostic::sort_key);
    diagnostics.dedup_by(|a, b| a.message == b.message && a.sort_key() == b.sort_key());
}

/// Renders every diagnostic, then a count line.
pub(crate) fn render_all(diagnostics: &[Diagnostic], color: bool) -> String {
    let mut out = String::new();
    for diagnostic in diagnostics {
        out.push_str(&diagnostic.render(color));
        out.push_str("\n\n");
    }
    let n = diagnostics.len();
    out.push_str(&format!("error: found {n} problem{}\n", if n == 1 { "" } else { "s" }));
    out
}

/// Lowercase hex of bytes (for fingerprints).
pub(crate) fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for byte in bytes {
        out.push(DIGITS[usize::from(byte >> 4)] as char);
        out.push(DIGITS[usize::from(byte & 0xf)] as char);
    }
    out
}

/// The closest of `candidates` to `name`, if it is close enough to suggest.
pub(crate) fn did_you_mean<'a>(name: &str, candidates: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    candidates
        .into_iter()
        .map(|candidate| (strsim::jaro_winkler(name, candidate), candidate))
        .filter(|(score, _)| *score > 0.86)
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .map(|(_, candidate)| candidate)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_col_counts_characters() {
        let source = Source::new(Path::new("x.toml"), "a = 1\nbé = \"x\"\n".to_owned());
        assert_eq!(source.line_col(0), (1, 1));
        assert_eq!(source.line_col(6), (2, 1));
        // `=` after a two-byte character is the fourth character of line 2.
        assert_eq!(source.line_col(10), (2, 4));
    }

    #[test]
    fn suggests_close_names_only() {
        assert_eq!(did_you_mean("rollbak", ["rollback", "run"]), Some("rollback"));
        assert_eq!(did_you_mean("zzz", ["rollback", "run"]), None);
    }
}
