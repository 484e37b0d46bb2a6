//! Where output goes and how it looks: stdout is the product (plans, JSON,
//! status), stderr the conversation (status lines, warnings, errors). Color
//! only on a terminal, or when asked; never with `NO_COLOR`. Text for people
//! shows control characters escaped (`\x1b`, `\r`), so that nothing a value
//! or a command's output holds can move the cursor, erase a line or reorder
//! what is shown; what runs and what files receive is never changed.

use std::borrow::Cow;
use std::io::{IsTerminal, Write};

use crate::cli::{self, ColorChoice, Format};
use crate::diagnostic::{self, Diagnostic};

/// Where output goes and how it looks: stdout is the product, stderr the conversation.
pub(crate) struct Ui {
    pub(crate) format: Format,
    pub(crate) quiet: bool,
    pub(crate) color_out: bool,
    pub(crate) color_err: bool,
}

impl Ui {
    pub(crate) fn new(global: &cli::Global) -> Ui {
        let no_color = std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty());
        let decide = |terminal: bool| match global.color {
            ColorChoice::Always => true,
            ColorChoice::Never => false,
            ColorChoice::Auto => terminal && !no_color,
        };
        Ui {
            format: global.format,
            quiet: global.quiet,
            color_out: decide(std::io::stdout().is_terminal()),
            color_err: decide(std::io::stderr().is_terminal()),
        }
    }

    pub(crate) fn stdout(&self, text: &str) {
        let mut out = std::io::stdout().lock();
        let _ = out.write_all(text.as_bytes());
        let _ = out.flush();
    }

    /// Text for people on stdout (a plan, a status): control characters
    /// escaped, upshift's own colors kept.
    pub(crate) fn stdout_text(&self, text: &str) {
        self.stdout(&printable(text, if self.color_out { &STYLES } else { &[] }));
    }

    pub(crate) fn stderr(&self, text: &str) {
        let _ = std::io::stderr().lock().write_all(text.as_bytes());
    }

    /// A cargo-style status line: a right-aligned verb, then the rest.
    pub(crate) fn status(&self, verb: &str, rest: &str) {
        if self.quiet {
            return;
        }
        let (on, off) = if self.color_err { ("\x1b[1;32m", "\x1b[0m") } else { ("", "") };
        self.stderr(&format!("{on}{verb:>12}{off} {}\n", printable(rest, &[])));
    }

    pub(crate) fn error(&self, message: &str) {
        let (on, off) = if self.color_err { ("\x1b[1;31m", "\x1b[0m") } else { ("", "") };
        self.stderr(&format!("{on}error{off}: {}\n", printable(message, &[])));
    }

    pub(crate) fn warning(&self, message: &str) {
        if self.quiet {
            return;
        }
        let (on, off) = if self.color_err { ("\x1b[1;33m", "\x1b[0m") } else { ("", "") };
        self.stderr(&format!("{on}warning{off}: {}\n", printable(message, &[])));
    }

    pub(crate) fn help(&self, message: &str) {
        self.stderr(&format!("  = help: {}\n", printable(message, &[])));
    }

    pub(crate) fn diagnostics(&self, diagnostics: &[Diagnostic]) {
        let rendered = diagnostic::render_all(diagnostics, self.color_err);
        // Plain, the whole text (the snippets of a file too); in color,
        // `Diagnostic::render` escaped what it was given.
        if self.color_err { self.stderr(&rendered) } else { self.stderr(&printable(&rendered, &[])) }
    }
}

/// The color sequences upshift writes itself (plans, status lines): kept as
/// they are in text for people when color is on.
pub(crate) const STYLES: [&str; 11] = [
    "\x1b[0m",
    "\x1b[1m",
    "\x1b[2m",
    "\x1b[31m",
    "\x1b[32m",
    "\x1b[33m",
    "\x1b[36m",
    "\x1b[1;31m",
    "\x1b[1;32m",
    "\x1b[1;33m",
    "\x1b[1;36m",
];

/// `text` for a terminal: control characters (but newlines and tabs),
/// and the invisible marks that reorder text (bidi overrides), escaped as
/// `\r`, `\x1b`, `\u{202e}`; the sequences in `keep` (upshift's own colors)
/// stay as they are.
pub(crate) fn printable<'a>(text: &'a str, keep: &[&str]) -> Cow<'a, str> {
    if !text.chars().any(hidden) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 16);
    let mut rest = text;
    while let Some(c) = rest.chars().next() {
        if c == '\x1b'
            && let Some(own) = keep.iter().find(|own| rest.starts_with(**own))
        {
            out.push_str(own);
            rest = &rest[own.len()..];
            continue;
        }
        match c {
            '\r' => out.push_str("\\r"),
            c if hidden(c) && c.is_ascii() => out.push_str(&format!("\\x{:02x}", u32::from(c))),
            c if hidden(c) => out.push_str(&format!("\\u{{{:x}}}", u32::from(c))),
            c => out.push(c),
        }
        rest = &rest[c.len_utf8()..];
    }
    Cow::Owned(out)
}

/// A character a terminal does not show as itself.
fn hidden(c: char) -> bool {
    (c.is_control() && c != '\n' && c != '\t')
        || matches!(c, '\u{061c}' | '\u{200e}' | '\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
        || matches!(c, '\u{2028}' | '\u{2029}')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_characters_are_shown_escaped() {
        assert_eq!(printable("ok\x1b[2K\rrm -rf /", &[]), "ok\\x1b[2K\\rrm -rf /");
        assert_eq!(printable("a\tb\nc", &[]), "a\tb\nc");
        assert_eq!(printable("\u{7}\u{7f}\u{9b}31m \u{202e}txt.exe", &[]), "\\x07\\x7f\\u{9b}31m \\u{202e}txt.exe");
        assert_eq!(printable("héllo ✓", &[]), "héllo ✓");
        // Its own colors stay; anything else a value brings is shown.
        assert_eq!(printable("\x1b[1mPlan\x1b[0m \x1b[8mhidden", &STYLES), "\x1b[1mPlan\x1b[0m \\x1b[8mhidden");
    }
}
