//! Running commands: the `Executor` trait (one target, today always `local`)
//! and its local implementation through `duct`. Every child gets its own
//! process group, so a timeout or a forwarded signal reaches grandchildren too.
//! Output is streamed line by line to a watcher while it is captured.
//!
//! This module runs what it is given; it does not render, decide or print.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
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
    /// The signal that made upshift stop it (`SIGINT`, `SIGTERM`).
    pub(crate) interrupted: Option<&'static str>,
    pub(crate) elapsed: Duration,
}

impl Output {
    pub(crate) fn success(&self) -> bool {
        self.exit_code == Some(0) && !self.timed_out && self.interrupted.is_none()
    }

    /// One line saying how it ended, for people.
    pub(crate) fn describe_end(&self) -> String {
        match (self.interrupted, self.timed_out, self.exit_code) {
            (Some(signal), _, _) => format!("stopped by {signal}"),
            (None, true, _) => {
                format!("timed out after {}", humantime::format_duration(Duration::from_secs(self.elapsed.as_secs())))
            }
            (None, false, Some(code)) => format!("exit code {code}"),
            (None, false, None) => "killed by a signal".to_owned(),
        }
    }
}

/// Which stream a line came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Stream {
    Stdout,
    Stderr,
}

/// Runs commands on one target.
pub(crate) trait Executor {
    /// The target's name, recorded with every result (`local` today).
    fn target(&self) -> &str;

    /// Runs a command to its end, its timeout, or a signal to upshift,
    /// handing each output line to `watch` as it comes.
    fn run_watched(&self, spec: &CommandSpec, watch: &mut dyn FnMut(Stream, &str)) -> std::io::Result<Output>;

    /// Runs a command, capturing its output.
    fn run(&self, spec: &CommandSpec) -> std::io::Result<Output> {
        self.run_watched(spec, &mut |_, _| {})
    }
}

/// This machine.
#[derive(Debug, Default)]
pub(crate) struct Local;

/// How long a child may take to stop after a forwarded signal before it is killed.
fn grace() -> Duration {
    std::env::var("UPSHIFT_GRACE_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .map_or(Duration::from_secs(10), Duration::from_secs_f64)
}

/// Most of a command's output kept in memory (the journal keeps a smaller tail).
const KEEP: usize = 1 << 20;

fn keep(buffer: &mut String, line: &str) {
    buffer.push_str(line);
    buffer.push('\n');
    if buffer.len() > KEEP {
        let cut = buffer.len() - KEEP;
        let cut = (cut..buffer.len()).find(|i| buffer.is_char_boundary(*i)).unwrap_or(buffer.len());
        buffer.drain(..cut);
    }
}

impl Executor for Local {
    fn target(&self) -> &str {
        "local"
    }

    fn run_watched(&self, spec: &CommandSpec, watch: &mut dyn FnMut(Stream, &str)) -> std::io::Result<Output> {
        let (program, args) = spec.argv.split_first().ok_or_else(|| std::io::Error::other("an empty command"))?;
        // An absolute program lets std spawn with posix_spawn (vfork) instead of
        // fork: duct passes the whole environment, PATH included, and std only
        // searches PATH itself after a fork.
        let path_override = spec.env.iter().rev().find(|(k, _)| k == "PATH").map(|(_, v)| v.as_str());
        let program = resolve_program(program, path_override);
        let (out_reader, out_writer) = os_pipe::pipe()?;
        let (err_reader, err_writer) = os_pipe::pipe()?;
        // Built in a block so every intermediate expression (each holds the
        // pipes' write ends) is dropped with it.
        let expression = {
            let mut expression =
                duct::cmd(program, args).stdin_null().stdout_file(out_writer).stderr_file(err_writer).unchecked();
            if let Some(cwd) = &spec.cwd {
                expression = expression.dir(cwd);
            }
            for (key, value) in &spec.env {
                expression = expression.env(key, value);
            }
            expression.before_spawn(|command| {
                use std::os::unix::process::CommandExt;
                command.process_group(0);
                Ok(())
            })
        };
        let started = Instant::now();
        let handle = expression.start()?;
        // Our copies of the write ends must close, or the readers never see EOF.
        drop(expression);
        let pgid = handle.pids().first().copied();

        // One loop, no threads: poll both pipes (waking for output or EOF),
        // and between polls look at the child, the clock and the signals.
        let mut output = Output::default();
        let mut streams = [
            (Stream::Stdout, Some(out_reader), Vec::<u8>::new()),
            (Stream::Stderr, Some(err_reader), Vec::<u8>::new()),
        ];
        let mut exited_at: Option<Instant> = None;
        let mut stopping: Option<(Instant, bool)> = None;
        let status = loop {
            let open = streams.iter().filter(|(_, r, _)| r.is_some()).count();
            if open > 0 {
                let timeout = rustix::event::Timespec { tv_sec: 0, tv_nsec: 20_000_000 };
                let mut ready = [false; 2];
                {
                    let mut fds: Vec<(usize, rustix::event::PollFd<'_>)> = streams
                        .iter()
                        .enumerate()
                        .filter_map(|(i, (_, r, _))| {
                            r.as_ref().map(|r| (i, rustix::event::PollFd::new(r, rustix::event::PollFlags::IN)))
                        })
                        .collect();
                    let mut just: Vec<rustix::event::PollFd<'_>> = fds.iter().map(|(_, fd)| fd.clone()).collect();
                    match rustix::event::poll(&mut just, Some(&timeout)) {
                        Ok(_) | Err(rustix::io::Errno::INTR) => {}
                        Err(error) => return Err(error.into()),
                    }
                    for ((i, _), fd) in fds.iter_mut().zip(&just) {
                        ready[*i] = !fd.revents().is_empty();
                    }
                }
                for (i, is_ready) in ready.iter().enumerate() {
                    if !is_ready {
                        continue;
                    }
                    let (stream, reader, pending) = &mut streams[i];
                    let mut chunk = [0u8; 8192];
                    let n = match reader.as_mut().map(|r| std::io::Read::read(r, &mut chunk)) {
                        Some(Ok(n)) => n,
                        Some(Err(error)) if error.kind() == std::io::ErrorKind::Interrupted => continue,
                        _ => 0,
                    };
                    if n == 0 {
                        *reader = None;
                        if !pending.is_empty() {
                            let line = String::from_utf8_lossy(pending).into_owned();
                            emit(*stream, &line, watch, &mut output);
                            pending.clear();
                        }
                        continue;
                    }
                    pending.extend_from_slice(&chunk[..n]);
                    while let Some(newline) = pending.iter().position(|b| *b == b'\n') {
                        let line: Vec<u8> = pending.drain(..=newline).collect();
                        let text = String::from_utf8_lossy(&line);
                        emit(*stream, text.trim_end_matches(['\n', '\r']), watch, &mut output);
                    }
                }
            }
            let readers_done = streams.iter().all(|(_, r, _)| r.is_none());
            let finished = if readers_done {
                handle.wait_timeout(Duration::from_millis(50))?.map(|o| o.status)
            } else {
                handle.try_wait()?.map(|o| o.status)
            };
            if let Some(status) = finished {
                // A daemon that keeps our pipes open must not hold the step forever.
                let exited = *exited_at.get_or_insert_with(Instant::now);
                if readers_done || exited.elapsed() > Duration::from_secs(2) {
                    break status;
                }
                continue;
            }
            if output.interrupted.is_none()
                && let Some(signal) = signals::pending()
            {
                output.interrupted = Some(signals::name(signal));
                if let Some(pgid) = pgid {
                    kill_group(pgid, signals::to_rustix(signal));
                }
                stopping = Some((Instant::now(), false));
            }
            if let Some(timeout) = spec.timeout
                && !output.timed_out
                && output.interrupted.is_none()
                && started.elapsed() >= timeout
            {
                output.timed_out = true;
                if let Some(pgid) = pgid {
                    kill_group(pgid, rustix::process::Signal::KILL);
                }
            }
            if let Some((since, killed)) = stopping
                && !killed
                && since.elapsed() >= grace()
            {
                if let Some(pgid) = pgid {
                    kill_group(pgid, rustix::process::Signal::KILL);
                }
                stopping = Some((since, true));
            }
        };
        output.exit_code = status.code();
        output.elapsed = started.elapsed();
        // Whatever is left of the group (a background grandchild) goes with the step.
        if let Some(pgid) = pgid
            && (output.timed_out || output.interrupted.is_some())
        {
            kill_group(pgid, rustix::process::Signal::KILL);
        }
        Ok(output)
    }
}

/// Finds `program` on PATH (as `execvp` would); a name with a `/`, or one
/// that is not found, is returned as it is (the spawn then reports it).
fn resolve_program(program: &str, path: Option<&str>) -> PathBuf {
    use std::os::unix::fs::PermissionsExt;
    if program.contains('/') {
        return PathBuf::from(program);
    }
    let path = path.map(str::to_owned).or_else(|| std::env::var("PATH").ok()).unwrap_or_default();
    for dir in path.split(':').filter(|d| !d.is_empty()) {
        let candidate = Path::new(dir).join(program);
        if std::fs::metadata(&candidate).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0) {
            return candidate;
        }
    }
    PathBuf::from(program)
}

/// Hands a line to the watcher and keeps it.
fn emit(stream: Stream, line: &str, watch: &mut dyn FnMut(Stream, &str), output: &mut Output) {
    watch(stream, line);
    match stream {
        Stream::Stdout => keep(&mut output.stdout, line),
        Stream::Stderr => keep(&mut output.stderr, line),
    }
}

fn kill_group(pgid: u32, signal: rustix::process::Signal) {
    if let Some(pid) = rustix::process::Pid::from_raw(pgid as i32) {
        let _ = rustix::process::kill_process_group(pid, signal);
    }
}

/// SIGINT and SIGTERM, caught once `install` ran: the engine forwards them to
/// the running command and stops after it.
pub(crate) mod signals {
    use super::*;

    fn slot() -> &'static Arc<AtomicUsize> {
        static SLOT: OnceLock<Arc<AtomicUsize>> = OnceLock::new();
        SLOT.get_or_init(|| Arc::new(AtomicUsize::new(0)))
    }

    /// Catches SIGINT and SIGTERM from now on (for `run`, `resume`, `rollback`).
    pub(crate) fn install() {
        for signal in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
            let _ = signal_hook::flag::register_usize(signal, Arc::clone(slot()), signal as usize);
        }
    }

    /// The signal received, if any.
    pub(crate) fn pending() -> Option<i32> {
        match slot().load(Ordering::SeqCst) {
            0 => None,
            signal => Some(signal as i32),
        }
    }

    pub(crate) fn name(signal: i32) -> &'static str {
        if signal == signal_hook::consts::SIGTERM { "SIGTERM" } else { "SIGINT" }
    }

    pub(crate) fn to_rustix(signal: i32) -> rustix::process::Signal {
        if signal == signal_hook::consts::SIGTERM {
            rustix::process::Signal::TERM
        } else {
            rustix::process::Signal::INT
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(script: &str, timeout: Option<Duration>) -> CommandSpec {
        CommandSpec {
            argv: vec!["sh".into(), "-c".into(), script.into()],
            cwd: None,
            env: vec![("X".into(), "1".into())],
            timeout,
        }
    }

    #[test]
    fn captures_and_streams_output_and_exit_code() {
        let mut seen = Vec::new();
        let output = Local
            .run_watched(&spec("echo out; echo err >&2; echo $X; exit 3", None), &mut |stream, line| {
                seen.push((stream, line.to_owned()))
            })
            .unwrap();
        assert_eq!(output.stdout, "out\n1\n");
        assert_eq!(output.stderr, "err\n");
        assert_eq!(output.exit_code, Some(3));
        assert!(seen.contains(&(Stream::Stderr, "err".to_owned())));
    }

    #[test]
    fn a_timeout_kills_the_whole_process_group() {
        let dir = tempfile::tempdir().unwrap();
        let marker = dir.path().join("grandchild-survived");
        let script = format!("(sleep 1; touch {}) & sleep 5; echo never", marker.display());
        let output = Local.run(&spec(&script, Some(Duration::from_millis(300)))).unwrap();
        assert!(output.timed_out);
        assert!(output.elapsed < Duration::from_secs(3), "{:?}", output.elapsed);
        std::thread::sleep(Duration::from_millis(1500));
        assert!(!marker.exists(), "the grandchild outlived the timeout");
    }
}
