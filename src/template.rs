//! Templates and guards: one minijinja environment, strict about undefined
//! values, that renders secret handles as a mask unless the handle carries its
//! value. In a shell script (`Quoting::Shell`) every value is data: the render
//! writes a marker for each value, `shell` says which context each marker
//! landed in, and the value is quoted for that context, or refused where
//! nothing is safe; only `{{ x | safe }}` splices raw text. `validate` gets the
//! same verdicts from the source (`shell_problems`), and a shell's `${#…}`,
//! which minijinja would read as a comment, its own diagnostic.
//!
//! This module compiles, renders and evaluates; it does not know which names a
//! playbook declares (that is `check`) or what a step means (that is `plan`).

use std::cell::RefCell;
use std::collections::HashSet;
use std::fmt;
use std::ops::Range;
use std::sync::{Arc, OnceLock};

use minijinja::value::{Object, Value, ValueKind};
use minijinja::{AutoEscape, Environment, OutputSpan, OutputSpanKind, UndefinedBehavior};

use crate::diagnostic::{Diagnostic, Location};
use crate::shell::{self, Context, Dialect, Refused, Unsafe};

/// How interpolated values are written into the output.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Quoting {
    /// A script for a shell of this dialect: every value is quoted for the
    /// context it lands in (see `shell`).
    Shell(Dialect),
    /// Anything else (argv elements, paths, file contents): values as they are.
    Plain,
    /// A regex (line edits, `expect.regex`): values match literally.
    Regex,
    /// A regex replacement (`edit.line.replace`): a `$` in a value stays a `$`.
    Replacement,
    /// A JSON pointer (an `edit.json` key): a `/` or `~` in a value is part
    /// of one key (`~1`, `~0`).
    Pointer,
}

impl Quoting {
    /// A script for the shell program `shell` (`sh`, `bash`, `/bin/zsh`, …).
    pub(crate) fn shell(shell: &str) -> Quoting {
        Quoting::Shell(Dialect::of(shell))
    }

    fn name(self) -> &'static str {
        match self {
            Quoting::Shell(_) => SHELL_TEMPLATE,
            Quoting::Plain => "text",
            Quoting::Regex => REGEX_TEMPLATE,
            Quoting::Replacement => REPLACEMENT_TEMPLATE,
            Quoting::Pointer => POINTER_TEMPLATE,
        }
    }
}

/// The name shell scripts are compiled under: the formatter quotes in them only.
const SHELL_TEMPLATE: &str = "command.sh";
/// Regexes and replacements: the formatter escapes values in them.
const REGEX_TEMPLATE: &str = "pattern.re";
const REPLACEMENT_TEMPLATE: &str = "line.replace";
const POINTER_TEMPLATE: &str = "key.pointer";

/// A template string from a playbook, checked to compile.
#[derive(Debug, Clone)]
pub(crate) struct Template {
    pub(crate) source: String,
    pub(crate) quoting: Quoting,
    pub(crate) location: Option<Location>,
}

/// Why a render failed, with the place in the playbook.
#[derive(Debug)]
pub(crate) struct RenderError {
    pub(crate) message: String,
    pub(crate) location: Option<Location>,
}

impl RenderError {
    pub(crate) fn into_diagnostic(self) -> Diagnostic {
        Diagnostic::error(self.message).at_opt(self.location)
    }
}

impl fmt::Display for RenderError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.location {
            Some(location) => write!(f, "{} (at {})", self.message, location.describe()),
            None => f.write_str(&self.message),
        }
    }
}

impl Template {
    pub(crate) fn new(source: &str, quoting: Quoting, location: Option<Location>) -> Template {
        Template { source: source.to_owned(), quoting, location }
    }

    /// True when the text has no `{{`, `{%` or `{#`: rendering returns it as is.
    pub(crate) fn is_literal(&self) -> bool {
        !self.source.contains('{')
    }

    /// Renders the template keeping the type of its value when the whole text
    /// is one expression (`"{{ workers }}"` gives the number 4, not `"4"`);
    /// any other text renders to a string.
    pub(crate) fn evaluate(&self, context: &Value) -> Result<serde_json::Value, RenderError> {
        if let Some(expression) = self.single_expression()
            && let Ok(compiled) = engine().compile_expression(expression)
        {
            let watch = SecretWatch::start();
            let json = compiled.eval(context).ok().and_then(|value| to_json(&value).ok());
            watch.finish(self.location.as_ref())?;
            if let Some(json) = json {
                return Ok(json);
            }
        }
        // Anything else, and every error (with its place), goes the usual way.
        self.render(context).map(serde_json::Value::String)
    }

    /// The expression inside `{{ … }}` when that is the whole text.
    pub(crate) fn single_expression(&self) -> Option<&str> {
        let inner = self.source.strip_prefix("{{")?.strip_suffix("}}")?;
        let inner = inner.strip_prefix(['-', '+']).unwrap_or(inner);
        let inner = inner.strip_suffix(['-', '+']).unwrap_or(inner);
        let nested = ["{{", "}}", "{%", "%}", "{#", "#}"].iter().any(|d| inner.contains(d));
        (!nested && !inner.trim().is_empty()).then_some(inner)
    }

    /// Compiles the template and lists the variables it reads (dotted, e.g.
    /// `steps.backup.stdout`). A shell's `${#…}`, which minijinja would read
    /// as a comment, is reported (every one) instead of compiling.
    pub(crate) fn analyze(&self) -> Result<Vec<String>, Vec<Diagnostic>> {
        if self.is_literal() {
            return Ok(Vec::new());
        }
        let hashes = self.dollar_hash_problems();
        if !hashes.is_empty() {
            return Err(hashes);
        }
        let template = engine()
            .template_from_named_str(self.quoting.name(), &self.source)
            .map_err(|error| vec![self.diagnostic("template syntax error", &error)])?;
        let mut names: Vec<String> = template.undeclared_variables(true).into_iter().collect();
        names.sort();
        Ok(names)
    }

    /// Every interpolation of a shell script that lands where no quoting is
    /// safe (backticks, arithmetic, `${…}`, …), or any at all for a
    /// shell whose quoting is unknown. `{{ x | safe }}` is the author's own
    /// text and is not checked. Call it on a template that compiles.
    pub(crate) fn shell_problems(&self) -> Vec<Diagnostic> {
        let Quoting::Shell(dialect) = self.quoting else {
            return Vec::new();
        };
        if self.is_literal() {
            return Vec::new();
        }
        let scan = scan(&self.source);
        // The script as the shell would see it, with each `{{ … }}` as a hole.
        let mut script = String::with_capacity(self.source.len());
        let mut holes = Vec::new();
        let mut expressions = Vec::new();
        for part in &scan.parts {
            match part {
                Part::Text(range) => script.push_str(&self.source[range.clone()]),
                Part::Expression { range, inner } => {
                    let start = script.len();
                    script.push_str(&self.source[range.clone()]);
                    holes.push(start..script.len());
                    expressions.push((range.clone(), inner.clone()));
                }
            }
        }
        let lexed = match dialect {
            Dialect::Other => None,
            _ => Some(shell::lex(&script, &holes, dialect)),
        };
        let mut problems = Vec::new();
        for (i, (range, inner)) in expressions.iter().enumerate() {
            let expression = self.source[inner.clone()].trim();
            if ends_with_filter(expression, "safe") {
                continue;
            }
            let settled = match &lexed {
                Some(lexed) => lexed.settle(i, ends_with_filter(expression, "quote")),
                None => Err(Unsafe::UnknownShell),
            };
            let Err(why) = settled else {
                continue;
            };
            let shown = format!("`{{{{ {expression} }}}}`");
            let diagnostic = Diagnostic::error(why.message(&shown)).label(why.label()).help(why.help());
            problems.push(diagnostic.at_opt(self.at(range.clone())));
        }
        problems
    }

    /// Every `{{ … }}` or `{% … %}` that does more with a secret than write
    /// it as it is (`{{ secrets.token }}`, also `| safe` or `| quote`): a
    /// filter, a test, a comparison, `~`, a slice would see its mask in `plan`
    /// and make a form of the value that output masking does not know in `run`.
    pub(crate) fn secret_problems(&self) -> Vec<Diagnostic> {
        if self.is_literal() || !self.source.contains("secrets") {
            return Vec::new();
        }
        let scan = scan(&self.source);
        let expressions = scan.parts.iter().filter_map(|part| match part {
            Part::Expression { range, inner } => Some((range.clone(), inner.clone(), true)),
            Part::Text(_) => None,
        });
        let statements = scan.statements.iter().map(|(range, inner)| (range.clone(), inner.clone(), false));
        let mut tags: Vec<(Range<usize>, Range<usize>, bool)> = expressions.chain(statements).collect();
        tags.sort_by_key(|(range, _, _)| range.start);
        let mut problems = Vec::new();
        for (range, inner, expression) in tags {
            let text = self.source[inner].trim();
            let Some(name) = secret_read(text) else {
                continue;
            };
            if expression && written_as_is(text) {
                continue;
            }
            let shown = &self.source[range.clone()];
            problems.push(
                Diagnostic::error(format!("`{shown}` works on a secret, and a secret can only be written as it is"))
                    .at_opt(self.at(range))
                    .label(format!(
                        "a filter, a test or an operation here sees `{}`, not the value",
                        SecretHandle::mask(&name)
                    ))
                    .help(format!(
                        "write `{{{{ secrets.{name} }}}}` and work on the value in the command (`printf '%s' \
                         {{{{ secrets.{name} }}}} | …`), or give the secret the form it needs at its source"
                    )),
            );
        }
        problems
    }

    /// Does the template's own text (outside `{{ … }}`) hold any of `chars`?
    pub(crate) fn text_has(&self, chars: [char; 2]) -> bool {
        scan(&self.source).parts.iter().any(|part| match part {
            Part::Text(range) => self.source[range.clone()].contains(chars),
            Part::Expression { .. } => false,
        })
    }

    /// Every interpolation of the template (but `| safe`), refused for `why`.
    pub(crate) fn refused_values(&self, why: &Unsafe) -> Vec<Diagnostic> {
        if self.is_literal() {
            return Vec::new();
        }
        scan(&self.source)
            .parts
            .into_iter()
            .filter_map(|part| match part {
                Part::Expression { range, inner } => Some((range, inner)),
                Part::Text(_) => None,
            })
            .filter(|(_, inner)| !ends_with_filter(self.source[inner.clone()].trim(), "safe"))
            .map(|(range, inner)| {
                let shown = format!("`{{{{ {} }}}}`", self.source[inner].trim());
                Diagnostic::error(why.message(&shown)).label(why.label()).help(why.help()).at_opt(self.at(range))
            })
            .collect()
    }

    /// `${#…}` in the source: minijinja would start a comment at its `{#`.
    fn dollar_hash_problems(&self) -> Vec<Diagnostic> {
        scan(&self.source)
            .dollar_hash
            .into_iter()
            .map(|range| {
                let text = &self.source[range.clone()];
                Diagnostic::error(format!("`{text}` would start a template comment at its `{{#`"))
                    .at_opt(self.at(range))
                    .label("`{#` starts a comment in a template")
                    .help(format!("write `{{% raw %}}{text}{{% endraw %}}`"))
            })
            .collect()
    }

    /// The place of `range` of the source in the playbook.
    fn at(&self, range: Range<usize>) -> Option<Location> {
        narrow_location(self.location.as_ref()?, &self.source, Some(range))
    }

    pub(crate) fn render(&self, context: &Value) -> Result<String, RenderError> {
        if self.is_literal() {
            return Ok(self.source.clone());
        }
        let watch = SecretWatch::start();
        let rendered = self.render_values(context);
        watch.finish(self.location.as_ref())?;
        // A filter that fails on a secret (`| reverse`) without reading it says why.
        if rendered.is_err()
            && let Some(problem) = self.secret_problems().into_iter().next()
        {
            return Err(RenderError { message: problem.message, location: problem.location });
        }
        rendered
    }

    /// Renders; in a plan, each `{{ … }}` that reads a value only `run` will
    /// know (an earlier step's output) is written as itself, `<steps.x.stdout
    /// | int * 2>`, whatever it does with the value.
    fn render_values(&self, context: &Value) -> Result<String, RenderError> {
        if self.source.contains("steps")
            && let Some((template, context)) = self.with_later(context)
        {
            return template.render_now(&context);
        }
        self.render_now(context)
    }

    /// The template with each expression that reads a value only `run` will
    /// know replaced by that expression's placeholder, and the context that
    /// holds the placeholders.
    fn with_later(&self, context: &Value) -> Option<(Template, Value)> {
        let mut source = String::with_capacity(self.source.len());
        let mut last = 0;
        let mut later = Vec::new();
        for part in scan(&self.source).parts {
            let Part::Expression { inner, .. } = part else {
                continue;
            };
            let expression = &self.source[inner.clone()];
            let Ok(compiled) = engine().compile_expression(expression) else {
                continue;
            };
            if !compiled.undeclared_variables(true).iter().any(|name| reads_later(name, context)) {
                continue;
            }
            source.push_str(&self.source[last..inner.start]);
            source.push_str(&format!(" {LATER}[{}] ", later.len()));
            later.push(Value::from_object(Later(expression.trim().to_owned())));
            last = inner.end;
        }
        if later.is_empty() {
            return None;
        }
        source.push_str(&self.source[last..]);
        let context = minijinja::context! { __upshift_later => Value::from(later), ..context.clone() };
        Some((Template { source, quoting: self.quoting, location: self.location.clone() }, context))
    }

    fn render_now(&self, context: &Value) -> Result<String, RenderError> {
        let template = engine()
            .template_from_named_str(self.quoting.name(), &self.source)
            .map_err(|error| self.render_error(&error))?;
        match self.quoting {
            Quoting::Plain | Quoting::Regex | Quoting::Pointer => {
                template.render(context).map_err(|error| self.render_error(&error))
            }
            Quoting::Replacement => {
                // A line edit writes one line: a value with a newline would
                // write lines of its own, and the edit would match again.
                let (output, spans) = template.render_with_spans(context).map_err(|error| self.render_error(&error))?;
                let newline = spans.iter().find(|span| {
                    span.kind() == OutputSpanKind::Expression
                        && output.get(span.output_range()).is_some_and(|text| text.contains(['\n', '\r']))
                });
                if let Some(span) = newline {
                    let (shown, location) = self.expression(&spans, span.output_range().start);
                    return Err(RenderError {
                        message: format!("the value of {shown} has a line break, and a line edit writes one line"),
                        location,
                    });
                }
                Ok(output)
            }
            Quoting::Shell(dialect) => {
                let previous = RECORDING.with(|cell| cell.replace(Some(Recorder::new())));
                let rendered = template.render_with_spans(context);
                let recorder = RECORDING.with(|cell| cell.replace(previous));
                let (output, spans) = rendered.map_err(|error| self.render_error(&error))?;
                let recorder = recorder.ok_or_else(|| RenderError {
                    message: "internal error: a shell script rendered without its values".to_owned(),
                    location: self.location.clone(),
                })?;
                self.splice(&output, &spans, &recorder, dialect)
            }
        }
    }

    fn render_error(&self, error: &minijinja::Error) -> RenderError {
        RenderError { message: describe_error(error), location: self.narrow(error) }
    }

    /// Puts each recorded value in place of its marker, quoted for the context
    /// the marker is in; refuses when a context has no safe quoting, or when a
    /// value would end its here-document early.
    fn splice(
        &self,
        output: &str,
        spans: &[OutputSpan],
        recorder: &Recorder,
        dialect: Dialect,
    ) -> Result<String, RenderError> {
        let holes = recorder.find(output);
        let stray_nonce = output.matches(recorder.nonce.as_str()).count() != holes.len();
        let stray_open = output.matches(MARK_OPEN).count() != holes.len()
            && !self.source.contains(MARK_OPEN)
            && !recorder.raw.iter().any(|text| text.contains(MARK_OPEN));
        if stray_nonce || stray_open {
            return Err(RenderError {
                message: "a filter changed the text around an interpolated value, so it cannot be quoted; apply \
                          filters to values, not to text that holds them"
                    .to_owned(),
                location: self.location.clone(),
            });
        }
        let ranges: Vec<Range<usize>> = holes.iter().map(|(range, _)| range.clone()).collect();
        let lexed = match dialect {
            Dialect::Other => None,
            _ => Some(shell::lex(output, &ranges, dialect)),
        };
        let bytes = output.as_bytes();
        let mut out = String::with_capacity(output.len() + 16 * holes.len());
        let mut placed: Vec<Range<usize>> = Vec::with_capacity(holes.len());
        let mut last = 0;
        for (i, (range, index)) in holes.iter().enumerate() {
            out.push_str(&output[last..range.start]);
            // A value another shell reads again must have been quoted for it (`| quote`).
            let context = match &lexed {
                Some(lexed) => lexed.settle(i, recorder.requoted[*index]).unwrap_or_else(Context::Unsafe),
                None => Context::Unsafe(Unsafe::UnknownShell),
            };
            let before = bytes[..range.start].last().copied();
            let after = bytes.get(range.end).copied();
            let quoted = shell::quote(&recorder.values[*index], &context, before, after).map_err(|why| {
                let (shown, location) = self.expression(spans, range.start);
                let message = match why {
                    Refused::Unsafe(why) => {
                        format!("{} ({})", why.message(&format!("the value of {shown}")), why.help())
                    }
                    Refused::NewlineInComment => {
                        format!("the value of {shown} has a newline, which would end the comment it is in")
                    }
                };
                RenderError { message, location }
            })?;
            let start = out.len();
            out.push_str(&quoted);
            placed.push(start..out.len());
            last = range.end;
        }
        out.push_str(&output[last..]);
        if let Some(lexed) = &lexed {
            self.check_heredocs(&out, lexed, &ranges, &placed, spans)?;
        }
        Ok(out)
    }

    /// A value with a line equal to its here-document's delimiter would end the
    /// document there and run the rest of the value as commands.
    fn check_heredocs(
        &self,
        out: &str,
        lexed: &shell::Lexed,
        ranges: &[Range<usize>],
        placed: &[Range<usize>],
        spans: &[OutputSpan],
    ) -> Result<(), RenderError> {
        // Where a position of the rendered script is after the values went in.
        let moved = |position: usize| -> usize {
            let mut at = position;
            for (range, new) in ranges.iter().zip(placed) {
                if range.end <= position {
                    at = at + new.len() - range.len();
                }
            }
            at
        };
        for heredoc in &lexed.heredocs {
            // Every value in the body, also inside a `$(…)` there: bash finds
            // the delimiter line before it reads anything in the body.
            let inside: Vec<usize> = (0..ranges.len())
                .filter(|i| ranges[*i].start >= heredoc.body.start && ranges[*i].end <= heredoc.body.end)
                .collect();
            if inside.is_empty() {
                continue;
            }
            let start = moved(heredoc.body.start);
            let end = moved(heredoc.body.end);
            if heredoc.strip_tabs {
                // `<<-` strips the leading tabs of every line, the value's too.
                for i in &inside {
                    let value = &out[placed[*i].clone()];
                    let line_start = out[..placed[*i].start].rfind('\n').map_or(0, |n| n + 1);
                    let at_line_start = out[line_start..placed[*i].start].bytes().all(|b| b == b'\t');
                    if value.contains("\n\t") || (value.starts_with('\t') && at_line_start) {
                        let (shown, location) = self.expression(spans, ranges[*i].start);
                        return Err(RenderError {
                            message: format!(
                                "the value of {shown} has a line that starts with a tab, which `<<-` would strip \
                                 (write `<<` to keep it)"
                            ),
                            location,
                        });
                    }
                }
            }
            for (line, range) in heredoc.lines(&out[start..end]) {
                let (line_start, line_end) = (start + range.start, start + range.end);
                if heredoc.ends_at(&line) || heredoc.cuts_at(&line) {
                    let culprit = inside
                        .iter()
                        .find(|i| placed[**i].start <= line_end && placed[**i].end >= line_start)
                        .unwrap_or(&inside[0]);
                    let (shown, location) = self.expression(spans, ranges[*culprit].start);
                    return Err(RenderError {
                        message: if heredoc.ends_at(&line) && heredoc.delimiter.is_empty() {
                            format!(
                                "the value of {shown} makes an empty line in the here-document, which ends it early \
                                 (its delimiter is empty)"
                            )
                        } else if heredoc.ends_at(&line) {
                            format!(
                                "the value of {shown} makes a line `{}` in the here-document, which would end it \
                                 early",
                                heredoc.delimiter
                            )
                        } else {
                            format!(
                                "the value of {shown} makes a line that starts with `{}` and has a `)`, where bash \
                                 would end the here-document (it is inside `$(…)`)",
                                heredoc.delimiter
                            )
                        },
                        location,
                    });
                }
            }
        }
        Ok(())
    }

    /// The `{{ … }}` that wrote the output at `position`, and its place.
    fn expression(&self, spans: &[OutputSpan], position: usize) -> (String, Option<Location>) {
        let span = spans
            .iter()
            .find(|span| span.kind() == OutputSpanKind::Expression && span.output_range().contains(&position));
        match span.map(OutputSpan::source_range) {
            Some(range) if self.source.get(range.clone()).is_some() => {
                let expression = self.source[range.clone()].trim();
                // Point at the whole `{{ … }}` when that is what wrote it.
                let before = self.source[..range.start].trim_end_matches([' ', '\t', '-', '+']);
                let after = self.source[range.end..].trim_start_matches([' ', '\t', '-', '+']);
                let whole = if before.ends_with("{{") && after.starts_with("}}") {
                    before.len() - 2..self.source.len() - after.len() + 2
                } else {
                    range
                };
                (format!("`{{{{ {expression} }}}}`"), self.at(whole))
            }
            _ => ("a value".to_owned(), self.location.clone()),
        }
    }

    fn diagnostic(&self, what: &str, error: &minijinja::Error) -> Diagnostic {
        Diagnostic::error(format!("{what}: {}", describe_error(error)))
            .at_opt(self.narrow(error))
            .label(error.detail().unwrap_or("here").to_owned())
    }

    /// The location of an error inside the template, when the TOML text holds
    /// the template verbatim (no escapes); else the whole string.
    fn narrow(&self, error: &minijinja::Error) -> Option<Location> {
        let location = self.location.as_ref()?;
        let range = error.range();
        narrow_location(location, &self.source, range)
    }
}

/// The first secret an expression reads (`secrets.NAME`, `secrets['NAME']`),
/// outside its string literals; `secrets` alone reads them all. (Read from
/// the text: minijinja lists no variables for an expression with a slice.)
pub(crate) fn secret_read(expression: &str) -> Option<String> {
    let bytes = expression.as_bytes();
    let is_ident = |b: u8| b.is_ascii_alphanumeric() || b == b'_';
    let mut pos = 0;
    while pos < bytes.len() {
        match bytes[pos] {
            quote @ (b'"' | b'\'') => {
                pos += 1;
                while pos < bytes.len() && bytes[pos] != quote {
                    pos += if bytes[pos] == b'\\' { 2 } else { 1 };
                }
                pos += 1;
            }
            b if is_ident(b) => {
                let start = pos;
                while pos < bytes.len() && is_ident(bytes[pos]) {
                    pos += 1;
                }
                let after_dot = start > 0 && expression[..start].trim_end().ends_with('.');
                if &expression[start..pos] == "secrets" && !after_dot {
                    let rest = expression[pos..].trim_start();
                    let name = rest
                        .strip_prefix('.')
                        .map(|r| r.trim_start().split(|c: char| !(c.is_alphanumeric() || c == '_')).next())
                        .or_else(|| {
                            rest.strip_prefix('[')
                                .map(|r| r.trim_start().trim_start_matches(['\'', '"']).split(['\'', '"']).next())
                        })
                        .flatten()
                        .filter(|n| !n.is_empty())
                        .unwrap_or("…");
                    return Some(name.to_owned());
                }
            }
            _ => pos += 1,
        }
    }
    None
}

/// `secrets.NAME` (or `secrets['NAME']`) alone, or with `| safe` or `| quote`.
fn written_as_is(expression: &str) -> bool {
    static PLAIN: OnceLock<regex::Regex> = OnceLock::new();
    let plain = PLAIN.get_or_init(|| {
        regex::Regex::new(
            r#"^secrets\s*(?:\.\s*[A-Za-z_][A-Za-z0-9_]*|\[\s*(?:'[^']*'|"[^"]*")\s*\])(?:\s*\|\s*(?:safe|quote))?$"#,
        )
        .expect("a valid pattern")
    });
    plain.is_match(expression)
}

/// Does this expression (the text inside `{{ }}`) end with the filter `name`
/// (`| safe`: spliced raw; `| quote`: quoted for a shell that reads it again)?
fn ends_with_filter(expression: &str, name: &str) -> bool {
    expression.strip_suffix(name).map(str::trim_end).is_some_and(|rest| rest.ends_with('|') && !rest.ends_with("||"))
}

/// Points into a TOML string at `range` of its value: exactly when the value
/// stands verbatim in the source or is a basic string with escapes; else the
/// whole string.
pub(crate) fn narrow_location(location: &Location, value: &str, range: Option<Range<usize>>) -> Option<Location> {
    let text = &location.source.text;
    let span = location.span.clone();
    let (Some(raw), Some(range)) = (text.get(span.clone()), range) else {
        return Some(location.clone());
    };
    if value.is_empty() {
        return Some(location.clone());
    }
    let (start, end) = match raw.find(value) {
        Some(offset) => (offset + range.start.min(value.len()), offset + range.end.min(value.len())),
        None => match decode_basic_string(raw) {
            Some((decoded, map)) if decoded == value => {
                (map[range.start.min(value.len())], map[range.end.min(value.len())])
            }
            _ => return Some(location.clone()),
        },
    };
    let start = span.start + start;
    let end = (span.start + end).max(start + 1);
    Some(Location::new(&location.source, start..end.min(span.end)))
}

/// A TOML basic string (`"…"` or `"""…"""`, quotes included) decoded, with the
/// offset in `raw` of each byte of the result (and of its end).
fn decode_basic_string(raw: &str) -> Option<(String, Vec<usize>)> {
    let multi = raw.starts_with("\"\"\"");
    let mut pos = if multi {
        3
    } else if raw.starts_with('"') {
        1
    } else {
        return None;
    };
    if multi {
        if raw[pos..].starts_with("\r\n") {
            pos += 2;
        } else if raw[pos..].starts_with('\n') {
            pos += 1;
        }
    }
    let close = if multi { raw.len().checked_sub(3)? } else { raw.len().checked_sub(1)? };
    let mut decoded = String::new();
    let mut map = Vec::new();
    let push = |decoded: &mut String, map: &mut Vec<usize>, c: char, at: usize| {
        decoded.push(c);
        map.extend(std::iter::repeat_n(at, c.len_utf8()));
    };
    while pos < close {
        let c = raw[pos..].chars().next()?;
        if c != '\\' {
            push(&mut decoded, &mut map, c, pos);
            pos += c.len_utf8();
            continue;
        }
        let escape = raw[pos + 1..].chars().next()?;
        let (value, length) = match escape {
            'b' => ('\u{8}', 2),
            't' => ('\t', 2),
            'n' => ('\n', 2),
            'f' => ('\u{c}', 2),
            'r' => ('\r', 2),
            'e' => ('\u{1b}', 2),
            '"' => ('"', 2),
            '\\' => ('\\', 2),
            'x' | 'u' | 'U' => {
                let digits = match escape {
                    'x' => 2,
                    'u' => 4,
                    _ => 8,
                };
                let hex = raw.get(pos + 2..pos + 2 + digits)?;
                (char::from_u32(u32::from_str_radix(hex, 16).ok()?)?, 2 + digits)
            }
            ' ' | '\t' | '\r' | '\n' if multi => {
                // A line-ending backslash: it eats the whitespace up to the next text.
                pos += 1;
                while raw[pos..].starts_with([' ', '\t', '\r', '\n']) {
                    pos += 1;
                }
                continue;
            }
            _ => return None,
        };
        push(&mut decoded, &mut map, value, pos);
        pos += length;
    }
    map.push(close);
    Some((decoded, map))
}

/// Finds `name` (a variable) in the template text, for pointing at it.
pub(crate) fn locate_name(template: &Template, name: &str) -> Option<Location> {
    let location = template.location.as_ref()?;
    let first = name.split('.').next().unwrap_or(name);
    let bytes = template.source.as_bytes();
    let is_ident = |b: u8| b.is_ascii_alphanumeric() || b == b'_';
    let mut from = 0;
    while let Some(found) = template.source[from..].find(first) {
        let start = from + found;
        let end = start + first.len();
        let before_ok = start == 0 || !is_ident(bytes[start - 1]) && bytes[start - 1] != b'.';
        let after_ok = end == bytes.len() || !is_ident(bytes[end]);
        if before_ok && after_ok {
            let full = template.source[start..].find(|c: char| !(c.is_alphanumeric() || c == '_' || c == '.'));
            let full_end = full.map_or(template.source.len(), |n| start + n);
            return narrow_location(location, &template.source, Some(start..full_end.max(end)));
        }
        from = end;
    }
    Some(location.clone())
}

/// A guard: a minijinja expression that decides whether a step runs.
#[derive(Debug, Clone)]
pub(crate) struct Guard {
    pub(crate) source: String,
    pub(crate) location: Option<Location>,
    /// The variables it reads, once `analyze` has run.
    names: Arc<OnceLock<Vec<String>>>,
}

impl Guard {
    pub(crate) fn new(source: &str, location: Option<Location>) -> Guard {
        Guard { source: source.to_owned(), location, names: Arc::default() }
    }

    pub(crate) fn analyze(&self) -> Result<Vec<String>, Diagnostic> {
        if let Some(names) = self.names.get() {
            return Ok(names.clone());
        }
        let expression = engine().compile_expression(&self.source).map_err(|error| {
            Diagnostic::error(format!("guard does not compile: {}", describe_error(&error)))
                .at_opt(self.location.as_ref().and_then(|l| narrow_location(l, &self.source, error.range())))
                .label(error.detail().unwrap_or("here").to_owned())
        })?;
        let mut names: Vec<String> = expression.undeclared_variables(true).into_iter().collect();
        names.sort();
        Ok(self.names.get_or_init(|| names).clone())
    }

    /// Evaluates the guard; an error is never taken as `false`.
    pub(crate) fn eval(&self, context: &Value) -> Result<bool, RenderError> {
        let watch = SecretWatch::start();
        let decided = engine()
            .compile_expression(&self.source)
            .and_then(|expression| expression.eval(context))
            .map(|value| value.is_true())
            .map_err(|error| RenderError {
                message: format!("guard `{}` cannot be evaluated: {}", self.source, describe_error(&error)),
                location: self.location.clone(),
            });
        watch.finish(self.location.as_ref())?;
        decided
    }
}

/// minijinja's message without its location suffix (we print our own).
fn describe_error(error: &minijinja::Error) -> String {
    let kind = error.kind().to_string();
    match error.detail() {
        Some(detail) => format!("{kind}: {detail}"),
        None => kind,
    }
}

/// The name the placeholders of a plan's run-time values have in a rewritten template.
const LATER: &str = "__upshift_later";

/// A value only `run` will know (an earlier step's output, in `plan`): it
/// writes as `<steps.ID.stdout>`, and so does any attribute of it.
#[derive(Debug)]
pub(crate) struct Later(pub(crate) String);

impl Object for Later {
    fn repr(self: &Arc<Self>) -> minijinja::value::ObjectRepr {
        minijinja::value::ObjectRepr::Plain
    }

    fn get_value(self: &Arc<Self>, key: &Value) -> Option<Value> {
        Some(Value::from_object(Later(format!("{}.{}", self.0, key))))
    }

    fn render(self: &Arc<Self>, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "<{}>", self.0)
    }
}

/// Does `name` (dotted, as minijinja lists the variables an expression
/// reads) read a value only `run` will know? `steps` alone (read with a
/// subscript, `steps['id']`) does when any step's is.
fn reads_later(name: &str, context: &Value) -> bool {
    let is_later = |value: &Value| value.downcast_object_ref::<Later>().is_some();
    let mut parts = name.split('.');
    let Some(Ok(mut value)) = parts.next().map(|first| context.get_attr(first)) else {
        return false;
    };
    let rest: Vec<&str> = parts.collect();
    if rest.is_empty() && name == "steps" {
        return value
            .try_iter()
            .is_ok_and(|mut keys| keys.any(|key| value.get_item(&key).is_ok_and(|step| is_later(&step))));
    }
    let mut at = 0;
    while at < rest.len() {
        if is_later(&value) {
            return true;
        }
        // Included steps' ids hold dots: the longest known key first.
        let found = (at + 1..=rest.len()).rev().find_map(|end| {
            let key = rest[at..end].join(".");
            value.get_attr(&key).ok().filter(|v| !v.is_undefined()).map(|v| (v, end))
        });
        match found {
            Some((next, end)) => {
                value = next;
                at = end;
            }
            None => return false,
        }
    }
    is_later(&value)
}

/// A secret in the template context. Without a value it renders as
/// `<secret:NAME>`; with one (only while `run` executes a command) as the value.
#[derive(Debug)]
pub(crate) struct SecretHandle {
    pub(crate) name: String,
    pub(crate) value: Option<String>,
}

impl SecretHandle {
    pub(crate) fn mask(name: &str) -> String {
        format!("<secret:{name}>")
    }

    fn text(&self) -> String {
        match &self.value {
            Some(value) => value.clone(),
            None => SecretHandle::mask(&self.name),
        }
    }
}

impl Object for SecretHandle {
    fn repr(self: &Arc<Self>) -> minijinja::value::ObjectRepr {
        minijinja::value::ObjectRepr::Plain
    }

    /// Written as it is, a secret never comes here (see `text_of`): this is
    /// a filter or an operation on it, which sees the mask and is refused.
    fn render(self: &Arc<Self>, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        SecretWatch::used(&self.name);
        f.write_str(&SecretHandle::mask(&self.name))
    }

    /// Deciding on a secret is an operation on it.
    fn is_true(self: &Arc<Self>) -> bool {
        SecretWatch::used(&self.name);
        true
    }
}

thread_local! {
    /// The first secret a filter or an operation touched in the render under way.
    static SECRET_USED: std::cell::Cell<Option<String>> = const { std::cell::Cell::new(None) };
}

/// Watches one render for operations on a secret: a secret can only be
/// written as it is. A filter (`| upper`), a slice, `~`, a test or a
/// comparison would see its mask (`plan`) or make a form of it the masker
/// does not know (`run`): either way the render is refused.
struct SecretWatch {
    previous: Option<String>,
}

impl SecretWatch {
    fn start() -> SecretWatch {
        SecretWatch { previous: SECRET_USED.with(std::cell::Cell::take) }
    }

    fn used(name: &str) {
        SECRET_USED.with(|cell| {
            let first = cell.take();
            cell.set(first.or_else(|| Some(name.to_owned())));
        });
    }

    /// Refuses the render when an operation touched a secret.
    fn finish(self, location: Option<&Location>) -> Result<(), RenderError> {
        match SECRET_USED.with(|cell| cell.replace(self.previous)) {
            None => Ok(()),
            Some(name) => Err(RenderError {
                message: format!(
                    "a filter or an operation reads `secrets.{name}`, and a secret can only be written as it is \
                     (`{{{{ secrets.{name} }}}}`): it would work on the mask `{}`, or make a form of the value that \
                     output masking does not know",
                    SecretHandle::mask(&name)
                ),
                location: location.cloned(),
            }),
        }
    }
}

/// What a value writes: a secret's text, nothing for `none`, else as `display` writes it.
fn text_of(value: &Value) -> String {
    match value.downcast_object_ref::<SecretHandle>() {
        Some(secret) => secret.text(),
        None if value.is_none() => String::new(),
        None => display(value),
    }
}
/// A value as text: strings as they are, booleans `true`/`false`, lists and
/// maps as JSON (`["a", true]`), objects as they render themselves.
/// (minijinja alone writes Python's `True`.)
pub(crate) fn display(value: &Value) -> String {
    match value.kind() {
        ValueKind::Bool => if value.is_true() { "true" } else { "false" }.to_owned(),
        ValueKind::Seq | ValueKind::Map | ValueKind::Iterable if !is_plain_object(value) => {
            to_json(value).map_or_else(|_| value.to_string(), |json| json_text(&json))
        }
        _ => value.to_string(),
    }
}

fn is_plain_object(value: &Value) -> bool {
    value.as_object().is_some_and(|o| o.repr() == minijinja::value::ObjectRepr::Plain)
}

/// JSON with a space after `,` and `:`, as people write it.
fn json_text(value: &serde_json::Value) -> String {
    match value {
        serde_json::Value::Array(items) => {
            format!("[{}]", items.iter().map(json_text).collect::<Vec<_>>().join(", "))
        }
        serde_json::Value::Object(map) => format!(
            "{{{}}}",
            map.iter()
                .map(|(k, v)| format!("{}: {}", serde_json::Value::String(k.clone()), json_text(v)))
                .collect::<Vec<_>>()
                .join(", ")
        ),
        other => other.to_string(),
    }
}

/// A template value as data: booleans, numbers, strings, lists and maps keep
/// their type; objects that render as text (versions, secret handles,
/// placeholders) become that text.
pub(crate) fn to_json(value: &Value) -> Result<serde_json::Value, String> {
    // A secret written as it is (a whole edit value); inside a list or a map
    // it would be an operation on it.
    if let Some(secret) = value.downcast_object_ref::<SecretHandle>() {
        return Ok(serde_json::Value::String(secret.text()));
    }
    to_json_nested(value)
}

fn to_json_nested(value: &Value) -> Result<serde_json::Value, String> {
    if is_plain_object(value) {
        return Ok(serde_json::Value::String(value.to_string()));
    }
    Ok(match value.kind() {
        ValueKind::Undefined => return Err("an undefined value".to_owned()),
        ValueKind::None => serde_json::Value::Null,
        ValueKind::Bool => serde_json::Value::Bool(value.is_true()),
        ValueKind::Number => match value.as_i64() {
            Some(i) => serde_json::Value::from(i),
            None => {
                let f = f64::try_from(value.clone()).map_err(|e| e.to_string())?;
                serde_json::Number::from_f64(f).map_or(serde_json::Value::Null, serde_json::Value::Number)
            }
        },
        ValueKind::String => serde_json::Value::String(value.as_str().unwrap_or_default().to_owned()),
        ValueKind::Bytes => {
            serde_json::Value::String(String::from_utf8_lossy(value.as_bytes().unwrap_or_default()).into_owned())
        }
        ValueKind::Seq | ValueKind::Iterable => serde_json::Value::Array(
            value.try_iter().map_err(|e| e.to_string())?.map(|item| to_json_nested(&item)).collect::<Result<_, _>>()?,
        ),
        ValueKind::Map => {
            let mut map = serde_json::Map::new();
            for key in value.try_iter().map_err(|e| e.to_string())? {
                let item = value.get_item(&key).map_err(|e| e.to_string())?;
                map.insert(display(&key), to_json_nested(&item)?);
            }
            serde_json::Value::Object(map)
        }
        _ => serde_json::Value::String(value.to_string()),
    })
}

thread_local! {
    /// The values of the shell script being rendered on this thread.
    static RECORDING: RefCell<Option<Recorder>> = const { RefCell::new(None) };
}

/// Opens and closes the marker that stands for a value in a rendered script.
const MARK_OPEN: char = '\u{E000}';
const MARK_CLOSE: char = '\u{E001}';

/// One render of a shell script: the formatter writes a marker for each value
/// and keeps the value here; `splice` then quotes each value for the context
/// its marker is in. Markers carry a random nonce; a value never reaches the
/// rendered script itself, so no value can forge one (and a forged one would
/// still only be replaced by a quoted value).
struct Recorder {
    nonce: String,
    values: Vec<String>,
    /// For each value: was it quoted by `| quote` (for a shell that reads it again)?
    requoted: Vec<bool>,
    /// Texts `| safe` produced in this render: written raw.
    raw: HashSet<String>,
    /// Texts `| quote` produced in this render.
    quoted: HashSet<String>,
}

impl Recorder {
    fn new() -> Recorder {
        use std::hash::BuildHasher;
        let state = std::collections::hash_map::RandomState::new();
        let a = state.hash_one(std::time::SystemTime::now());
        let b = state.hash_one(std::process::id());
        Recorder {
            nonce: format!("{a:020}{b:020}"),
            values: Vec::new(),
            requoted: Vec::new(),
            raw: HashSet::new(),
            quoted: HashSet::new(),
        }
    }

    fn marker(&self, index: usize) -> String {
        format!("{MARK_OPEN}{}:{index}{MARK_CLOSE}", self.nonce)
    }

    /// Keeps a value and returns its marker. A value that holds markers (a
    /// `{% set %}` block or a macro's output written again) is one value: the
    /// text with its own values in place.
    fn record(&mut self, text: String) -> String {
        let text = if text.contains(&self.nonce) { self.expand(&text) } else { text };
        self.requoted.push(self.quoted.contains(&text));
        self.values.push(text);
        self.marker(self.values.len() - 1)
    }

    fn expand(&self, text: &str) -> String {
        let mut out = String::with_capacity(text.len());
        let mut last = 0;
        for (range, index) in self.find(text) {
            out.push_str(&text[last..range.start]);
            out.push_str(&self.values[index]);
            last = range.end;
        }
        out.push_str(&text[last..]);
        out
    }

    /// Every marker in `text`: its range and the index of its value.
    fn find(&self, text: &str) -> Vec<(Range<usize>, usize)> {
        let prefix = format!("{MARK_OPEN}{}:", self.nonce);
        let mut found = Vec::new();
        let mut from = 0;
        while let Some(offset) = text[from..].find(&prefix) {
            let digits = from + offset + prefix.len();
            let digits_end = text[digits..].find(|c: char| !c.is_ascii_digit()).map_or(text.len(), |n| digits + n);
            let index = text[digits..digits_end].parse::<usize>().ok().filter(|i| *i < self.values.len());
            match index {
                Some(index) if text[digits_end..].starts_with(MARK_CLOSE) => {
                    let end = digits_end + MARK_CLOSE.len_utf8();
                    found.push((from + offset..end, index));
                    from = end;
                }
                _ => from = digits,
            }
        }
        found
    }
}

/// The minijinja source split into what reaches the output: literal text and
/// `{{ … }}` expressions (`{% … %}` and `{# … #}` write nothing; `{% raw %}`
/// blocks are text). Also every `${#` (a shell's length expansion) that
/// minijinja would read as a comment.
struct Scan {
    parts: Vec<Part>,
    /// Each `{% … %}` tag: the whole tag and its inside.
    statements: Vec<(Range<usize>, Range<usize>)>,
    dollar_hash: Vec<Range<usize>>,
}

enum Part {
    Text(Range<usize>),
    /// `range` is the whole `{{ … }}`, `inner` the expression.
    Expression {
        range: Range<usize>,
        inner: Range<usize>,
    },
}

fn scan(source: &str) -> Scan {
    let bytes = source.as_bytes();
    let mut parts = Vec::new();
    let mut statements = Vec::new();
    let mut dollar_hash = Vec::new();
    let mut text_start = 0;
    let mut trim_start = false;
    let mut pos = 0;
    let push_text = |parts: &mut Vec<Part>, mut range: Range<usize>, trim_start: bool, trim_end: bool| {
        if trim_start {
            range.start += source[range.clone()].len() - source[range.clone()].trim_start().len();
        }
        if trim_end {
            range.end = range.start + source[range.clone()].trim_end().len();
        }
        if !range.is_empty() {
            parts.push(Part::Text(range));
        }
    };
    while pos + 1 < bytes.len() {
        if bytes[pos] != b'{' || !matches!(bytes[pos + 1], b'{' | b'%' | b'#') {
            pos += 1;
            continue;
        }
        let kind = bytes[pos + 1];
        if kind == b'#' && pos > 0 && bytes[pos - 1] == b'$' {
            dollar_hash.push(pos - 1..parameter_end(source, pos + 1));
            pos += 2;
            continue;
        }
        let trim_before = bytes.get(pos + 2) == Some(&b'-');
        push_text(&mut parts, text_start..pos, trim_start, trim_before);
        let inner_start = pos + 2 + usize::from(matches!(bytes.get(pos + 2), Some(b'-' | b'+')));
        let closer = match kind {
            b'{' => "}}",
            b'%' => "%}",
            _ => "#}",
        };
        let Some(close) = find_closer(source, inner_start, closer, kind != b'#') else {
            // Unterminated: minijinja reports it; nothing more to see.
            return Scan { parts, statements, dollar_hash };
        };
        let trim_after = close > inner_start && bytes[close - 1] == b'-';
        let inner_end = if close > inner_start && matches!(bytes[close - 1], b'-' | b'+') { close - 1 } else { close };
        let after = close + 2;
        trim_start = trim_after;
        match kind {
            b'{' => parts.push(Part::Expression { range: pos..after, inner: inner_start..inner_end }),
            b'%' if source[inner_start..inner_end].trim() != "raw" => {
                statements.push((pos..after, inner_start..inner_end));
            }
            b'%' => {
                let end_raw = find_endraw(source, after);
                let (content_end, next) = end_raw.unwrap_or((source.len(), source.len()));
                let trim_end = content_end > after && source[content_end..].starts_with("{%-");
                push_text(&mut parts, after..content_end, trim_after, trim_end);
                trim_start = next > 2 && bytes[next - 3] == b'-';
                pos = next;
                text_start = next;
                continue;
            }
            _ => {}
        }
        pos = after;
        text_start = after;
    }
    push_text(&mut parts, text_start..source.len(), trim_start, false);
    Scan { parts, statements, dollar_hash }
}

/// Where the closer of a tag starting at `from` is; strings are skipped in
/// expressions and statements.
fn find_closer(source: &str, from: usize, closer: &str, strings: bool) -> Option<usize> {
    let bytes = source.as_bytes();
    let mut pos = from;
    while pos < bytes.len() {
        if bytes[pos..].starts_with(closer.as_bytes()) {
            return Some(pos);
        }
        match bytes[pos] {
            quote @ (b'"' | b'\'') if strings => {
                pos += 1;
                while pos < bytes.len() && bytes[pos] != quote {
                    pos += if bytes[pos] == b'\\' { 2 } else { 1 };
                }
                pos += 1;
            }
            _ => pos += 1,
        }
    }
    None
}

/// The `{% endraw %}` after `from`: where its tag starts and ends.
fn find_endraw(source: &str, from: usize) -> Option<(usize, usize)> {
    let mut pos = from;
    while let Some(offset) = source[pos..].find("{%") {
        let start = pos + offset;
        let inner = start + 2 + usize::from(matches!(source.as_bytes().get(start + 2), Some(b'-' | b'+')));
        let close = source[inner..].find("%}").map(|n| inner + n)?;
        let body = source[inner..close].trim_end_matches(['-', '+']).trim();
        if body == "endraw" {
            return Some((start, close + 2));
        }
        pos = start + 2;
    }
    None
}

/// The end of `${#…}` whose `#` is at `hash` (after the matching `}`, on the same line).
fn parameter_end(source: &str, hash: usize) -> usize {
    let mut depth = 1usize;
    for (offset, byte) in source.as_bytes()[hash..].iter().enumerate() {
        match byte {
            b'{' => depth += 1,
            b'}' => {
                depth -= 1;
                if depth == 0 {
                    return hash + offset + 1;
                }
            }
            b'\n' => break,
            _ => {}
        }
    }
    hash + 1
}

fn engine() -> &'static Environment<'static> {
    static ENGINE: OnceLock<Environment<'static>> = OnceLock::new();
    ENGINE.get_or_init(|| {
        let mut env = Environment::new();
        env.set_undefined_behavior(UndefinedBehavior::Strict);
        // No auto-escaping: the formatter decides, by template, and only `| safe` is raw.
        env.set_auto_escape_callback(|_| AutoEscape::None);
        env.set_syntax(
            minijinja::syntax::SyntaxConfig::builder()
                .keep_trailing_newline(true)
                .build()
                .expect("the default delimiters are valid"),
        );
        env.set_formatter(|out, state, value| {
            let text = text_of(value);
            if state.name() != SHELL_TEMPLATE {
                // Values are data in regexes and replacements too: they match
                // literally, and a `$` in a value is not a capture group.
                match state.name() {
                    REGEX_TEMPLATE if !value.is_safe() => out.write_str(&regex::escape(&text))?,
                    REPLACEMENT_TEMPLATE if !value.is_safe() => out.write_str(&text.replace('$', "$$"))?,
                    POINTER_TEMPLATE if !value.is_safe() => {
                        out.write_str(&text.replace('~', "~0").replace('/', "~1"))?
                    }
                    _ => out.write_str(&text)?,
                }
                return Ok(());
            }
            let written = RECORDING.with(|cell| {
                let mut recording = cell.try_borrow_mut().ok()?;
                let recorder = recording.as_mut()?;
                Some(if value.is_safe() && recorder.raw.contains(&text) { text.clone() } else { recorder.record(text) })
            });
            match written {
                Some(written) => out.write_str(&written)?,
                None => {
                    return Err(minijinja::Error::new(
                        minijinja::ErrorKind::InvalidOperation,
                        "internal error: a shell script rendered without its quoting",
                    ));
                }
            }
            Ok(())
        });
        // `| safe` marks its text raw for this render; other filters that return
        // "safe" strings (`tojson`, `escape`, …) do not bypass quoting.
        env.add_filter("safe", |value: Value| {
            let text = text_of(&value);
            RECORDING.with(|cell| {
                if let Ok(mut recording) = cell.try_borrow_mut()
                    && let Some(recorder) = recording.as_mut()
                {
                    recorder.raw.insert(text.clone());
                }
            });
            Value::from_safe_string(text)
        });
        // One shell word: in a shell script, quoted once more for where it lands
        // (for a shell inside the shell, as with `ssh host …`).
        env.add_filter("quote", |value: Value| {
            let text = text_of(&value);
            let quoted = shell::quote_word(&text);
            RECORDING.with(|cell| {
                if let Ok(mut recording) = cell.try_borrow_mut()
                    && let Some(recorder) = recording.as_mut()
                {
                    recorder.quoted.insert(quoted.clone());
                }
            });
            Value::from(quoted)
        });
        // `| string` writes booleans and lists as `display` does.
        env.add_filter(
            "string",
            |value: Value| {
                if value.kind() == ValueKind::String { value } else { Value::from(display(&value)) }
            },
        );
        env
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const SH: Quoting = Quoting::Shell(Dialect::Posix);

    fn render(source: &str, quoting: Quoting, context: Value) -> String {
        Template::new(source, quoting, None).render(&context).unwrap()
    }

    fn render_err(source: &str, context: Value) -> String {
        Template::new(source, SH, None).render(&context).unwrap_err().message
    }

    #[test]
    fn shell_strings_quote_every_value() {
        let context = minijinja::context! { x => "x'; touch pwned; echo '", php => "php" };
        assert_eq!(render("echo {{ x }}", SH, context.clone()), r#"echo 'x'\''; touch pwned; echo '\'''"#);
        assert_eq!(render("{{ php }} -v", SH, context.clone()), "php -v");
        assert_eq!(render("echo {{ x | safe }}", Quoting::Plain, context.clone()), "echo x'; touch pwned; echo '");
        assert_eq!(render("{{ x }}", Quoting::Plain, context), "x'; touch pwned; echo '");
    }

    #[test]
    fn values_are_quoted_for_the_context_they_land_in() {
        let context = minijinja::context! { dir => "$(touch PWNED)", shop => "/var/www/my shop", q => "it's" };
        assert_eq!(render("ls -d \"{{ dir }}/cache\"", SH, context.clone()), r#"ls -d "\$(touch PWNED)/cache""#);
        assert_eq!(render("ls -d \"{{ shop }}/cache\"", SH, context.clone()), r#"ls -d "/var/www/my shop/cache""#);
        assert_eq!(render("echo '{{ q }}; {{ dir }}'", SH, context.clone()), r"echo 'it'\''s; $(touch PWNED)'");
        assert_eq!(render("cd {{ shop }}/cache", SH, context.clone()), "cd '/var/www/my shop'/cache");
        assert_eq!(
            render("cat <<EOF\n{{ dir }} {{ q }}\nEOF\n", SH, context.clone()),
            "cat <<EOF\n\\$(touch PWNED) it's\nEOF\n"
        );
        assert_eq!(render("cat <<'EOF'\n{{ dir }}\nEOF\n", SH, context.clone()), "cat <<'EOF'\n$(touch PWNED)\nEOF\n");
        assert_eq!(render("echo $'{{ q }}'", Quoting::Shell(Dialect::Bash), context.clone()), r"echo $'it\'s'");
        // Loops and conditions work on the real script.
        let list = minijinja::context! { items => vec!["a b", "c\"d"] };
        assert_eq!(
            render("for i in{% for i in items %} \"{{ i }}\"{% endfor %}; do :; done", SH, list),
            r#"for i in "a b" "c\"d"; do :; done"#
        );
    }

    #[test]
    fn only_safe_splices_raw_text() {
        let context = minijinja::context! { v => "a'b $(c)", j => "a b $(c)", flags => "-a -b" };
        assert_eq!(render("echo {{ j | tojson }}", SH, context.clone()), r#"echo '"a b $(c)"'"#);
        assert_eq!(render("echo \"{{ j | tojson }}\"", SH, context.clone()), r#"echo "\"a b \$(c)\"""#);
        assert_eq!(render("echo {{ v | e }}", SH, context.clone()), "echo 'a&#x27;b $(c)'");
        assert_eq!(render("ls {{ flags | safe }} {{ flags }}", SH, context.clone()), "ls -a -b '-a -b'");
        assert_eq!(
            render("{% autoescape false %}echo {{ v }}{% endautoescape %}", SH, context.clone()),
            r"echo 'a'\''b $(c)'"
        );
        // `| quote` quotes once more, for a shell inside the shell.
        assert_eq!(render("ssh host ls {{ flags | quote }}", SH, context.clone()), r"ssh host ls ''\''-a -b'\'''");
        assert_eq!(render("ls {{ flags | quote }}", Quoting::Plain, context), "ls '-a -b'");
    }

    #[test]
    fn a_value_another_shell_reads_must_be_quoted_for_it() {
        let context = minijinja::context! { v => "a b; touch PWNED" };
        assert!(render_err("eval echo {{ v }}", context.clone()).contains("would be read again as a script by `eval`"));
        assert!(render_err("sh -c \"echo {{ v }}\"", context.clone()).contains("by `sh -c`"));
        assert_eq!(render("eval echo {{ v | quote }}", SH, context.clone()), r"eval echo ''\''a b; touch PWNED'\'''");
        assert_eq!(render("sh -c \"echo {{ v | quote }}\"", SH, context.clone()), r#"sh -c "echo 'a b; touch PWNED'""#);
        assert_eq!(
            render("sh -c 'echo \"$1\"' sh {{ v }}", SH, context.clone()),
            r#"sh -c 'echo "$1"' sh 'a b; touch PWNED'"#
        );
        let template = Template::new("ssh host ls {{ v }} {{ v | quote }}; bash <<EOF\n{{ v }}\nEOF\n", SH, None);
        let problems: Vec<String> = template.shell_problems().into_iter().map(|d| d.message).collect();
        assert_eq!(
            problems,
            vec![
                "`{{ v }}` would be read again as a script by `ssh`",
                "`{{ v }}` would be read again as a script by `bash`",
            ]
        );
    }

    #[test]
    fn captured_text_is_one_value_unless_safe() {
        let context = minijinja::context! { root => "/srv/my shop", v => "$(x)" };
        assert_eq!(
            render("{% set p %}{{ root }}/cache{% endset %}rm -rf {{ p }}", SH, context.clone()),
            "rm -rf '/srv/my shop/cache'"
        );
        assert_eq!(
            render("{% set c %}echo \"{{ v }}\"{% endset %}{{ c | safe }}; {{ c | safe }}", SH, context.clone()),
            r#"echo "\$(x)"; echo "\$(x)""#
        );
        assert_eq!(
            render("{% macro say(x) %}echo {{ x }}{% endmacro %}{{ say(v) | safe }}", SH, context),
            "echo '$(x)'"
        );
    }

    #[test]
    fn markers_cannot_be_forged() {
        // A value holding marker-like text is data like any other.
        let forged = format!("{MARK_OPEN}00000000000000000000:0{MARK_CLOSE}");
        let context = minijinja::context! { v => forged.clone(), w => "ok" };
        assert_eq!(render("echo {{ v }} {{ w }}", SH, context), format!("echo '{forged}' ok"));
    }

    #[test]
    fn unsafe_places_fail_to_render() {
        let context = minijinja::context! { v => "x", lines => "a\nEOF\ntouch PWNED", nl => "a\nb" };
        assert!(
            render_err("echo `ls {{ v }}`", context.clone()).contains("`{{ v }}` cannot be quoted inside backticks")
        );
        assert!(render_err("echo $(( {{ v }} + 1 ))", context.clone()).contains("in arithmetic"));
        assert!(
            render_err("cat <<EOF\n{{ lines }}\nEOF\n", context.clone())
                .contains("the value of `{{ lines }}` makes a line `EOF` in the here-document")
        );
        assert!(render_err("cat <<-EOF\n\t{{ lines }}\n\tEOF\n", context.clone()).contains("line `EOF`"));
        // A value that makes a line go on into the delimiter line cannot exist (its `\` is escaped) …
        let ends = minijinja::context! { v => "a\\" };
        assert_eq!(render("cat <<EOF\n{{ v }}\nEOF\n", SH, ends), "cat <<EOF\na\\\\\nEOF\n");
        // … but a value can make the template's own `\` line end the document.
        let eof = minijinja::context! { v => "EOF" };
        assert!(render_err("cat <<EOF\n\\\n{{ v }}\nEOF\n", eof).contains("line `EOF`"));
        let tabs = minijinja::context! { v => "a\n\tb", t => "\ta" };
        assert!(render_err("cat <<-EOF\n\t{{ v }}\n\tEOF\n", tabs.clone()).contains("starts with a tab"));
        assert!(render_err("cat <<-EOF\n\t{{ t }}\nEOF\n", tabs.clone()).contains("starts with a tab"));
        assert_eq!(render("cat <<-EOF\n\tx{{ t }}\nEOF\n", SH, tabs.clone()), "cat <<-EOF\n\tx\ta\nEOF\n");
        assert_eq!(render("cat <<EOF\n\t{{ v }}\nEOF\n", SH, tabs), "cat <<EOF\n\ta\n\tb\nEOF\n");
        assert!(render_err("true # {{ nl }}", context.clone()).contains("has a newline"));
        assert_eq!(render("true # {{ v }}", SH, context.clone()), "true # x");
        let fish = Template::new("echo {{ v }}", Quoting::shell("fish"), None);
        assert!(fish.render(&context).unwrap_err().message.contains("for a shell upshift does not know"));
        assert_eq!(render("echo {{ v | safe }}", Quoting::shell("fish"), context), "echo x");
    }

    #[test]
    fn validate_names_every_unsafe_interpolation() {
        let template = Template::new(
            "echo `{{ a }}` $(( {{ b }} )) ${x:-{{ c }}} \"{{ ok }}\" {{ raw | safe }} `{{ d|safe }}` # {{ e }}\ncat <<{{ f }}\n",
            SH,
            None,
        );
        let problems: Vec<String> = template.shell_problems().into_iter().map(|d| d.message).collect();
        assert_eq!(
            problems,
            vec![
                "`{{ a }}` cannot be quoted inside backticks",
                "`{{ b }}` cannot be quoted in arithmetic (`$((…))`, `((…))`, `let`)",
                "`{{ c }}` cannot be quoted inside a parameter expansion `${…}`",
                "`{{ f }}` cannot be quoted in a here-document's delimiter",
            ]
        );
        let fish = Template::new("echo {{ a }} {{ b | safe }}", Quoting::shell("fish"), None);
        assert_eq!(fish.shell_problems().len(), 1);
        // Tags write nothing and raw blocks are text.
        let tags =
            Template::new("{% if a %}echo {# `{{ x }}` #}{{ a }}{% endif %} {% raw %}`{{ b }}`{% endraw %}", SH, None);
        assert!(tags.shell_problems().is_empty());
    }

    #[test]
    fn a_shell_length_expansion_gets_its_own_diagnostic() {
        let template = Template::new("echo ${#files[@]} ${#}; echo {# a comment #}", SH, None);
        let problems = template.analyze().unwrap_err();
        assert_eq!(problems.len(), 2);
        assert_eq!(problems[0].message, "`${#files[@]}` would start a template comment at its `{#`");
        assert_eq!(problems[0].help.as_deref(), Some("write `{% raw %}${#files[@]}{% endraw %}`"));
        let fixed = Template::new("echo {% raw %}${#files[@]}{% endraw %} {{ x }}", SH, None);
        assert_eq!(fixed.analyze().unwrap(), vec!["x".to_owned()]);
        assert_eq!(render("echo {% raw %}${#files[@]}{% endraw %}", SH, minijinja::context! {}), "echo ${#files[@]}");
    }

    #[test]
    fn locations_reach_into_escaped_toml_strings() {
        let text = "run = \"ls -d \\\"{{ dir }}/\\u00e9\\\" `{{ x }}`\"\n".to_owned();
        let source = crate::diagnostic::Source::new(std::path::Path::new("p.toml"), text.clone());
        let value = "ls -d \"{{ dir }}/é\" `{{ x }}`";
        let location = Location::new(&source, 6..text.len() - 1);
        let template = Template::new(value, SH, Some(location));
        let problems = template.shell_problems();
        assert_eq!(problems.len(), 1);
        let at = problems[0].location.as_ref().unwrap();
        assert_eq!(&text[at.span.clone()], "{{ x }}");
        assert_eq!(at.describe(), "p.toml:1:36");
    }

    #[test]
    fn secrets_render_masked_without_a_value() {
        let secret = Value::from_object(SecretHandle { name: "key".into(), value: None });
        let context = minijinja::context! { secrets => minijinja::context! { key => secret } };
        assert_eq!(render("token {{ secrets.key }}", SH, context), "token '<secret:key>'");
    }

    #[test]
    fn a_secret_can_only_be_written_as_it_is() {
        let handle = |value: Option<&str>| {
            Value::from_object(SecretHandle { name: "key".into(), value: value.map(str::to_owned) })
        };
        for value in [None, Some("s3cr3t")] {
            let context = minijinja::context! { secrets => minijinja::context! { key => handle(value) } };
            let shown = value.unwrap_or("<secret:key>");
            assert_eq!(render("k={{ secrets.key }}", Quoting::Plain, context.clone()), format!("k={shown}"));
            assert_eq!(render("k={{ secrets['key'] | safe }}", Quoting::Plain, context.clone()), format!("k={shown}"));
            // Whatever works on it sees the mask, or would make a form masking
            // does not know: refused, in `plan` and in `run` alike.
            for source in [
                "{{ secrets.key | upper }}",
                "{{ secrets.key ~ 'x' }}",
                "{{ (secrets.key | string)[:2] }}",
                "{% if secrets.key %}x{% endif %}",
                "{% set k = secrets.key %}{{ k | reverse }}",
                "{{ [secrets.key] }}",
            ] {
                let error = Template::new(source, Quoting::Plain, None).render(&context).unwrap_err();
                assert!(error.message.contains("a secret can only be written as it is"), "{source}: {}", error.message);
                assert!(!error.message.contains("s3cr3t"), "{}", error.message);
            }
            let guard = Guard::new("(secrets.key | string)[:4] == 'ENT-'", None);
            assert!(guard.eval(&context).is_err());
            let evaluated = Template::new("{{ secrets.key | lower }}", Quoting::Plain, None).evaluate(&context);
            assert!(evaluated.is_err());
        }
        // `validate` names each place, and lets the plain writes be.
        let template = Template::new(
            "{{ secrets.key }} {{ secrets['key'] | quote }} {{ 'secrets' }} {{ x.secrets }} {{ secrets.key|upper }} \
             {% for s in secrets %}{% endfor %}",
            SH,
            None,
        );
        let problems: Vec<String> = template.secret_problems().into_iter().map(|d| d.message).collect();
        assert_eq!(
            problems,
            vec![
                "`{{ secrets.key|upper }}` works on a secret, and a secret can only be written as it is",
                "`{% for s in secrets %}` works on a secret, and a secret can only be written as it is",
            ]
        );
    }

    #[test]
    fn a_plan_writes_what_reads_a_run_time_value_as_itself() {
        let steps = minijinja::context! {
            count => Value::from_object(Later("steps.count".into())),
            done => minijinja::context! { stdout => "7" },
        };
        let context = minijinja::context! { steps => steps, n => 3 };
        assert_eq!(
            render("w={{ steps.count.stdout | int * 2 }} {{ steps.done.stdout | int * n }}", SH, context.clone()),
            "w='<steps.count.stdout | int * 2>' 21"
        );
        assert_eq!(
            render("{{- steps['count'].stdout -}} x", Quoting::Plain, context.clone()),
            "<steps['count'].stdout>x"
        );
        let value = Template::new("{{ steps.count.exit_code + 1 }}", Quoting::Plain, None).evaluate(&context).unwrap();
        assert_eq!(value, serde_json::json!("<steps.count.exit_code + 1>"));
    }

    #[test]
    fn undefined_values_are_errors() {
        let template = Template::new("echo {{ nope }}", SH, None);
        assert!(template.render(&minijinja::context! {}).is_err());
        let guard = Guard::new("nope == 1", None);
        assert!(guard.eval(&minijinja::context! {}).is_err());
    }

    #[test]
    fn analyze_lists_nested_names() {
        let template = Template::new("{{ steps.backup.stdout }} {{ root }}", SH, None);
        assert_eq!(template.analyze().unwrap(), vec!["root".to_owned(), "steps.backup.stdout".to_owned()]);
    }

    #[test]
    fn booleans_lists_and_maps_render_as_people_write_them() {
        let context =
            minijinja::context! { flag => true, list => vec![Value::from(false), Value::from(1), Value::from("a")] };
        assert_eq!(
            render("{{ flag }} {{ not flag }} {{ list }}", Quoting::Plain, context.clone()),
            r#"true false [false, 1, "a"]"#
        );
        assert_eq!(render("{{ flag | string }}", Quoting::Plain, context.clone()), "true");
        assert_eq!(render("{{ {'on': flag} }}", Quoting::Plain, context), r#"{"on": true}"#);
    }

    #[test]
    fn one_expression_keeps_its_type() {
        let context = minijinja::context! { workers => 4, name => "web" };
        let evaluate = |source: &str| Template::new(source, Quoting::Plain, None).evaluate(&context).unwrap();
        assert_eq!(evaluate("{{ workers }}"), serde_json::json!(4));
        assert_eq!(evaluate("{{ workers * 2 > 7 }}"), serde_json::json!(true));
        assert_eq!(evaluate("{{ [workers, name] }}"), serde_json::json!([4, "web"]));
        assert_eq!(evaluate("{{ workers }} workers"), serde_json::json!("4 workers"));
        assert_eq!(evaluate("{{ name }}"), serde_json::json!("web"));
        let secret = Value::from_object(SecretHandle { name: "key".into(), value: None });
        let context = minijinja::context! { secrets => minijinja::context! { key => secret } };
        let json = Template::new("{{ secrets.key }}", Quoting::Plain, None).evaluate(&context).unwrap();
        assert_eq!(json, serde_json::json!("<secret:key>"), "a secret is text, masked here");
    }

    #[test]
    fn values_are_data_in_regexes_and_replacements() {
        let context = minijinja::context! { v => "2.4.7+b", p => "[0-9]+", d => "pa$1" };
        assert_eq!(render("^v{{ v }}$", Quoting::Regex, context.clone()), r"^v2\.4\.7\+b$");
        assert_eq!(render("^{{ p | safe }}$", Quoting::Regex, context.clone()), "^[0-9]+$");
        assert_eq!(render("x=$1 {{ d }}", Quoting::Replacement, context), "x=$1 pa$$1");
    }
}
