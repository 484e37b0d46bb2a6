//! Where output goes and how it looks: stdout is the product (plans, JSON,
//! status), stderr the conversation (status lines, warnings, errors). Color
//! only on a terminal, or when asked; never with `NO_COLOR`.

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

    pub(crate) fn stderr(&self, text: &str) {
        let _ = std::io::stderr().lock().write_all(text.as_bytes());
    }

    /// A cargo-style status line: a right-aligned verb, then the rest.
    pub(crate) fn status(&self, verb: &str, rest: &str) {
        if self.quiet {
            return;
        }
        let (on, off) = if self.color_err { ("\x1b[1;32m", "\x1b[0m") } else { ("", "") };
        self.stderr(&format!("{on}{verb:>12}{off} {rest}\n"));
    }

    pub(crate) fn error(&self, message: &str) {
        let (on, off) = if self.color_err { ("\x1b[1;31m", "\x1b[0m") } else { ("", "") };
        self.stderr(&format!("{on}error{off}: {message}\n"));
    }

    pub(crate) fn warning(&self, message: &str) {
        if self.quiet {
            return;
        }
        let (on, off) = if self.color_err { ("\x1b[1;33m", "\x1b[0m") } else { ("", "") };
        self.stderr(&format!("{on}warning{off}: {message}\n"));
    }

    pub(crate) fn help(&self, message: &str) {
        self.stderr(&format!("  = help: {message}\n"));
    }

    pub(crate) fn diagnostics(&self, diagnostics: &[Diagnostic]) {
        self.stderr(&diagnostic::render_all(diagnostics, self.color_err));
    }
}
