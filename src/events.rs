//! Events of a run and the reporters that listen to them: cargo-style status
//! lines (or an indicatif spinner per step on a terminal) on stderr, or
//! versioned NDJSON on stdout for CI and dashboards. Reporters never decide
//! anything; every text they get is already masked.

use std::io::Write;
use std::time::Duration;

use serde::Serialize;

use crate::journal::{Outcome, Phase};

/// The NDJSON events' format version.
pub(crate) const EVENTS_FORMAT: u32 = 1;

#[derive(Debug, Serialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub(crate) enum Event<'a> {
    RunStarted {
        run_id: &'a str,
        playbook: &'a str,
        environment: Option<&'a str>,
        version: Option<&'a str>,
        resumed: bool,
        journal: &'a str,
    },
    StepStarted {
        step: &'a str,
        /// In a fleet: the host it runs on.
        #[serde(skip_serializing_if = "Option::is_none")]
        host: Option<&'a str>,
        name: Option<&'a str>,
        phase: Phase,
        action: &'a str,
        attempt: u32,
    },
    Output {
        step: &'a str,
        #[serde(skip_serializing_if = "Option::is_none")]
        host: Option<&'a str>,
        stream: &'static str,
        line: &'a str,
    },
    StepFinished {
        step: &'a str,
        #[serde(skip_serializing_if = "Option::is_none")]
        host: Option<&'a str>,
        phase: Phase,
        outcome: Outcome,
        reason: Option<&'a str>,
        exit_code: Option<i32>,
        duration_ms: u64,
    },
    Notice {
        level: &'static str,
        message: &'a str,
    },
    /// A `pause` step waits for a person's answer on the terminal.
    Waiting {
        step: &'a str,
        message: &'a str,
    },
    /// `run` found the current version already selected: nothing ran.
    UpToDate {
        playbook: &'a str,
        environment: Option<&'a str>,
        version: &'a str,
    },
    RunFinished {
        run_id: &'a str,
        outcome: &'a str,
        exit_code: u8,
        left: &'a [String],
    },
}

pub(crate) trait Reporter {
    fn event(&mut self, event: &Event<'_>);
}

/// Writes to stderr, ignoring a closed or broken stream (`upshift run … 2>&1 | head`,
/// a dropped SSH session): output that cannot be shown never stops a run.
fn say(text: &str) {
    let mut err = std::io::stderr().lock();
    let _ = err.write_all(text.as_bytes());
    let _ = err.flush();
}

/// NDJSON on stdout, one object a line, each with `"v": 1`.
#[derive(Debug, Default)]
pub(crate) struct JsonReporter;

impl Reporter for JsonReporter {
    fn event(&mut self, event: &Event<'_>) {
        let mut value = serde_json::to_value(event).expect("events serialize");
        if let Some(object) = value.as_object_mut() {
            object.insert("v".to_owned(), EVENTS_FORMAT.into());
            object.insert("at".to_owned(), crate::journal::now().into());
        }
        let mut out = std::io::stdout().lock();
        let _ = writeln!(out, "{value}");
        let _ = out.flush();
    }
}

/// Status lines on stderr; on a terminal, a spinner per running step (one
/// per host in a fleet).
pub(crate) struct TextReporter {
    quiet: bool,
    verbose: bool,
    color: bool,
    /// Running spinners, by host (`""` on this machine alone).
    spinners: Vec<(String, indicatif::ProgressBar)>,
    multi: indicatif::MultiProgress,
    terminal: bool,
}

impl TextReporter {
    pub(crate) fn new(quiet: bool, verbose: bool, color: bool, terminal: bool) -> TextReporter {
        TextReporter {
            quiet,
            verbose,
            color,
            spinners: Vec::new(),
            multi: indicatif::MultiProgress::new(),
            terminal: terminal && !verbose && !quiet,
        }
    }

    fn line(&mut self, verb: &str, rest: &str, style: &str) {
        if self.quiet && verb != "error" && verb != "warning" {
            return;
        }
        let (on, off) = if self.color { (style, "\x1b[0m") } else { ("", "") };
        let text = format!("{on}{verb:>12}{off} {}", crate::ui::printable(rest, &[]));
        if self.spinners.is_empty() {
            say(&format!("{text}\n"));
        } else {
            let _ = self.multi.println(text);
        }
    }

    fn finish_spinner(&mut self, host: &str) {
        if let Some(index) = self.spinners.iter().position(|(h, _)| h == host) {
            let (_, spinner) = self.spinners.remove(index);
            spinner.finish_and_clear();
            self.multi.remove(&spinner);
        }
    }

    fn finish_all(&mut self) {
        for (_, spinner) in self.spinners.drain(..) {
            spinner.finish_and_clear();
            self.multi.remove(&spinner);
        }
    }
}

/// `` on `web1` `` in a fleet, nothing on this machine alone.
fn on(host: Option<&str>) -> String {
    host.map_or_else(String::new, |h| format!(" on `{h}`"))
}

/// A spinner never stays on screen, frozen, when the reporter goes: after
/// Ctrl-C, an error, or anything else that ends a command early.
impl Drop for TextReporter {
    fn drop(&mut self) {
        self.finish_all();
    }
}

const GREEN: &str = "\x1b[1;32m";
const YELLOW: &str = "\x1b[1;33m";
const RED: &str = "\x1b[1;31m";
const CYAN: &str = "\x1b[1;36m";

fn seconds(duration_ms: u64) -> String {
    let duration = Duration::from_millis(duration_ms);
    if duration < Duration::from_secs(60) {
        format!("{:.1}s", duration.as_secs_f64())
    } else {
        humantime::format_duration(Duration::from_secs(duration.as_secs())).to_string()
    }
}

impl Reporter for TextReporter {
    fn event(&mut self, event: &Event<'_>) {
        match event {
            Event::RunStarted { run_id, playbook, environment, version, resumed, .. } => {
                let env = environment.map_or_else(String::new, |e| format!(" on `{e}`"));
                let version = version.map_or_else(String::new, |v| format!(" to {v}"));
                let verb = if *resumed { "Resuming" } else { "Upgrading" };
                self.line(verb, &format!("`{playbook}`{env}{version} (run {run_id})"), GREEN);
            }
            Event::StepStarted { step, host, name, phase, attempt, .. } => {
                let name = name.map_or_else(String::new, |n| format!(": {n}"));
                let verb = match (phase, attempt) {
                    (Phase::Rollback, _) => "Rolling back",
                    (_, 1) => "Running",
                    _ => "Retrying",
                };
                let on = on(*host);
                if self.terminal {
                    let key = host.unwrap_or_default().to_owned();
                    self.finish_spinner(&key);
                    let spinner = self.multi.add(indicatif::ProgressBar::new_spinner());
                    spinner.set_style(
                        indicatif::ProgressStyle::with_template("{spinner} {prefix} [{elapsed}] {wide_msg}")
                            .expect("a valid template"),
                    );
                    spinner.set_prefix(crate::ui::printable(&format!("{step}{on}{name}"), &[]).into_owned());
                    spinner.enable_steady_tick(Duration::from_millis(120));
                    self.spinners.push((key, spinner));
                } else {
                    self.line(verb, &format!("{step}{on}{name}"), CYAN);
                }
            }
            Event::Output { host, line, .. } => {
                let key = host.unwrap_or_default();
                if let Some((_, spinner)) = self.spinners.iter().find(|(h, _)| h == key) {
                    spinner.set_message(crate::ui::printable(line, &[]).into_owned());
                } else if self.verbose {
                    let prefix = host.map_or_else(|| "│".to_owned(), |h| format!("{h} │"));
                    say(&format!("{prefix:>12} {}\n", crate::ui::printable(line, &[])));
                }
            }
            Event::StepFinished { step, host, phase, outcome, reason, duration_ms, .. } => {
                self.finish_spinner(host.unwrap_or_default());
                let reason = reason.map_or_else(String::new, |r| format!(": {r}"));
                let on = on(*host);
                let time = seconds(*duration_ms);
                match (phase, outcome) {
                    (Phase::Rollback, Outcome::Ok) => {
                        self.line("Rolled back", &format!("{step}{on} in {time}"), YELLOW)
                    }
                    (Phase::Rollback, Outcome::Skipped) => self.line("Kept", &format!("{step}{on}{reason}"), YELLOW),
                    (_, Outcome::Ok) => self.line("Finished", &format!("{step}{on} in {time}"), GREEN),
                    (_, Outcome::Skipped) => self.line("Skipped", &format!("{step}{on}{reason}"), CYAN),
                    (_, Outcome::Failed) => self.line("Failed", &format!("{step}{on}{reason}"), RED),
                }
            }
            Event::Notice { level, message } => {
                let style = if *level == "error" { RED } else { YELLOW };
                if message.starts_with("interrupted by ") {
                    // The steps they showed were stopped: their lines go, the notice says why.
                    self.finish_all();
                }
                self.line(level, message, style);
            }
            Event::Waiting { step, .. } => {
                // The question comes next, on the terminal: nothing may draw over it.
                self.finish_all();
                self.line("Waiting", &format!("{step}: a person's yes"), CYAN);
            }
            Event::UpToDate { playbook, environment, version } => {
                let env = environment.map_or_else(String::new, |e| format!(" on `{e}`"));
                self.line("Up to date", &format!("`{playbook}`{env} is already at {version}; nothing to run"), GREEN);
            }
            Event::RunFinished { outcome, left, .. } => {
                self.finish_all();
                let style = match *outcome {
                    "succeeded" => GREEN,
                    "rolled-back" | "interrupted" => YELLOW,
                    _ => RED,
                };
                self.line("Done", outcome, style);
                for item in left.iter() {
                    self.line("left", item, RED);
                }
            }
        }
    }
}
