//! Running commands: the `Executor` trait (one target, today always `local`)
//! and its local implementation through `duct`. Every child gets its own
//! process group so a timeout kills grandchildren too.
//!
//! This module runs what it is given; it does not render, decide or print.

use std::path::PathBuf;
use std::time::{Duration, Instant};

/// A command ready to run: fully rendered.
#[derive(Debug, Clone)]
pub(crate) struct CommandSpec {
    /// Program and arguments (`["sh", "-c", script]` for shell strings).
    pub(crate) argv: Vec<String>,
    pub(crate) cwd: Option<PathBuf>,
    pub(crate) env: Vec<(String, String)>,
    pub(crate) timeout: Option<Duration>,
}

/// What a finished command left.
#[derive(Debug, Clone, Default)]
pub(crate) struct Output {
    pub(crate) stdout: String,
    pub(crate) stderr: String,
    /// `None` when a signal ended it.
    pub(crate) exit_code: Option<i32>,
    pub(crate) timed_out: bool,
    pub(crate) elapsed: Duration,
}

impl Output {
    pub(crate) fn success(&self) -> bool {
        self.exit_code == Some(0) && !self.timed_out
    }

    /// One line saying how it ended, for people.
    pub(crate) fn describe_end(&self) -> String {
        match (self.timed_out, self.exit_code) {
            (true, _) => format!("timed out after {}", humantime::format_duration(round(self.elapsed))),
            (false, Some(code)) => format!("exit code {code}"),
            (false, None) => "killed by a signal".to_owned(),
        }
    }
}

fn round(duration: Duration) -> Duration {
    Duration::from_secs(duration.as_secs())
}

/// Runs commands on one target.
pub(crate) trait Executor {
    /// The target's name, recorded with every result (`local` today).
    fn target(&self) -> &str;
    /// Runs a command to its end (or its timeout), capturing its output.
    fn run(&self, spec: &CommandSpec) -> std::io::Result<Output>;
}

/// This machine.
#[derive(Debug, Default)]
pub(crate) struct Local;

impl Executor for Local {
    fn target(&self) -> &str {
        "local"
    }

    fn run(&self, spec: &CommandSpec) -> std::io::Result<Output> {
        let (program, args) = spec.argv.split_first().ok_or_else(|| std::io::Error::other("an empty command"))?;
        let mut expression = duct::cmd(program, args).stdin_null().stdout_capture().stderr_capture().unchecked();
        if let Some(cwd) = &spec.cwd {
            expression = expression.dir(cwd);
        }
        for (key, value) in &spec.env {
            expression = expression.env(key, value);
        }
        let expression = expression.before_spawn(|command| {
            use std::os::unix::process::CommandExt;
            command.process_group(0);
            Ok(())
        });
        let started = Instant::now();
        let handle = expression.start()?;
        let mut timed_out = false;
        let output = match spec.timeout {
            None => handle.wait()?.clone(),
            Some(timeout) => match handle.wait_timeout(timeout)? {
                Some(output) => output.clone(),
                None => {
                    timed_out = true;
                    for pid in handle.pids() {
                        if let Some(pid) = rustix::process::Pid::from_raw(pid as i32) {
                            let _ = rustix::process::kill_process_group(pid, rustix::process::Signal::KILL);
                        }
                    }
                    handle.kill()?;
                    handle.wait()?.clone()
                }
            },
        };
        Ok(Output {
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
            exit_code: output.status.code(),
            timed_out,
            elapsed: started.elapsed(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn captures_output_and_exit_code() {
        let spec = CommandSpec {
            argv: vec!["sh".into(), "-c".into(), "echo out; echo err >&2; exit 3".into()],
            cwd: None,
            env: vec![("X".into(), "1".into())],
            timeout: None,
        };
        let output = Local.run(&spec).unwrap();
        assert_eq!(output.stdout, "out\n");
        assert_eq!(output.stderr, "err\n");
        assert_eq!(output.exit_code, Some(3));
    }

    #[test]
    fn a_timeout_kills_the_command() {
        let spec = CommandSpec {
            argv: vec!["sh".into(), "-c".into(), "sleep 5 & sleep 5; echo never".into()],
            cwd: None,
            env: Vec::new(),
            timeout: Some(Duration::from_millis(200)),
        };
        let output = Local.run(&spec).unwrap();
        assert!(output.timed_out);
        assert!(output.elapsed < Duration::from_secs(4), "{:?}", output.elapsed);
        assert!(!output.stdout.contains("never"));
    }
}
