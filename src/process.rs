//! Running commands: the `Executor` trait (one target, today always `local`)
//! and its local implementation through `duct`. Every child gets its own
//! process group, so a timeout or a forwarded signal reaches grandchildren too,
//! and the group is announced as soon as it exists, so a journal can name it.
//! Output is masked line by line (secrets never reach a buffer unmasked),
//! streamed to a watcher and kept, bounded, in whole lines.
//!
//! Also: finding what is left of a process group after upshift itself was
//! killed, and stopping it.
//!
//! This module runs what it is given; it does not render, decide or print.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use crate::secrets::Masker;

/// A command ready to run: fully rendered.
#[derive(Debug, Clone)]
pub(crate) struct CommandSpec {
    /// Program and arguments (`["sh", "-c", script]` for shell strings).
    pub(crate) argv: Vec<String>,
    pub(crate) cwd: Option<PathBuf>,
    pub(crate) env: Vec<(String, String)>,
    pub(crate) timeout: Option<Duration>,
    /// Applied to every line before it is watched or kept.
    pub(crate) masker: Masker,
}

/// What a finished command left. Output is masked.
#[derive(Debug, Clone, Default)]
pub(crate) struct Output {
    pub(crate) stdout: String,
    pub(crate) stderr: String,
    /// `None` when a signal ended it.
    pub(crate) exit_code: Option<i32>,
    pub(crate) timed_out: bool,
    /// The signal that made upshift stop it (`SIGINT`, `SIGTERM`, `SIGHUP`).
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

/// What a watcher hears while a command runs.
#[derive(Debug)]
pub(crate) enum Watch<'a> {
    /// The command started as process group `pgid` (its leader started at `start`).
    Spawned { pgid: u32, start: u64 },
    /// One line of output, masked.
    Line(Stream, &'a str),
    /// On a host: the command's remote process group.
    RemoteGroup { pgid: u32 },
}

/// Runs commands on one target.
pub(crate) trait Executor {
    /// Runs a command to its end, its timeout, or a signal to upshift,
    /// telling `watch` its process group and each output line as they come.
    fn run_watched(&self, spec: &CommandSpec, watch: &mut dyn FnMut(Watch<'_>)) -> std::io::Result<Output>;

    /// Runs a command, capturing its output.
    fn run(&self, spec: &CommandSpec) -> std::io::Result<Output> {
        self.run_watched(spec, &mut |_| {})
    }
}

/// This machine.
#[derive(Debug, Default)]
pub(crate) struct Local;

/// How long a child may take to stop after a forwarded signal before it is killed.
pub(crate) fn grace() -> Duration {
    std::env::var("UPSHIFT_GRACE_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .map_or(Duration::from_secs(10), Duration::from_secs_f64)
}

/// Most of a command's output kept in memory, in whole lines (the journal keeps a smaller tail).
const KEEP: usize = 1 << 20;

/// A line longer than this is cut into pieces (never inside a secret).
const LINE: usize = 64 << 10;

/// Keeps a line, dropping whole lines from the front past `KEEP`.
fn keep(buffer: &mut String, line: &str) {
    buffer.push_str(line);
    buffer.push('\n');
    if buffer.len() > KEEP {
        let excess = buffer.len() - KEEP;
        let cut = buffer[excess..].find('\n').map_or(buffer.len(), |i| excess + i + 1);
        buffer.drain(..cut);
    }
}

impl Executor for Local {
    fn run_watched(&self, spec: &CommandSpec, watch: &mut dyn FnMut(Watch<'_>)) -> std::io::Result<Output> {
        if let Some(cwd) = &spec.cwd
            && !cwd.is_dir()
        {
            return Err(std::io::Error::new(
                std::io::ErrorKind::NotFound,
                format!("its working directory `{}` does not exist", cwd.display()),
            ));
        }
        run_process(spec, Stop::Group, watch)
    }
}

/// How a running command is stopped when upshift is signalled or its time is up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Stop {
    /// Signal its process group here.
    Group,
    /// Write the signal's name (`INT`, `TERM`, `KILL`) as a line to its stdin,
    /// which upshift holds open: a remote watcher signals the remote group
    /// (and stops it when the line's connection drops). The local process is
    /// killed only if it has not ended a grace period later.
    Channel,
}

/// The prefix of a line a remote wrapper writes on stderr to name its process group.
pub(crate) const GROUP_LINE: &str = "\u{1e}upshift-pgid ";

/// Spawns `spec.argv` (its own process group) and watches it to its end.
pub(crate) fn run_process(spec: &CommandSpec, stop: Stop, watch: &mut dyn FnMut(Watch<'_>)) -> std::io::Result<Output> {
    let (program, args) = spec.argv.split_first().ok_or_else(|| std::io::Error::other("an empty command"))?;
    // An absolute program lets std spawn with posix_spawn (vfork) instead of
    // fork: duct passes the whole environment, PATH included, and std only
    // searches PATH itself after a fork.
    let path_override = spec.env.iter().rev().find(|(k, _)| k == "PATH").map(|(_, v)| v.as_str());
    let program = resolve_program(program, path_override);
    let (out_reader, out_writer) = os_pipe::pipe()?;
    let (err_reader, err_writer) = os_pipe::pipe()?;
    // The control channel's write end stays here (close-on-exec): when upshift
    // dies, the channel closes, and a remote watcher stops what it watches.
    let mut channel = None;
    // Built in a block so every intermediate expression (each holds the
    // pipes' read or write ends) is dropped with it.
    let expression = {
        let mut expression = duct::cmd(program, args).stdout_file(out_writer).stderr_file(err_writer).unchecked();
        expression = match stop {
            Stop::Group => expression.stdin_null(),
            Stop::Channel => {
                let (reader, writer) = os_pipe::pipe()?;
                channel = Some(writer);
                expression.stdin_file(reader)
            }
        };
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
    // Our copies of the pipes' other ends must close, or the readers never see EOF.
    drop(expression);
    let pgid = handle.pids().first().copied();
    if let Some(pgid) = pgid {
        watch(Watch::Spawned { pgid, start: start_time(pgid).unwrap_or(0) });
    }
    let send = |channel: &mut Option<os_pipe::PipeWriter>, what: &str| {
        if let Some(writer) = channel.as_mut() {
            let _ = std::io::Write::write_all(writer, format!("{what}\n").as_bytes());
        }
    };

    // One loop, no threads: poll both pipes (waking for output or EOF),
    // and between polls look at the child, the clock and the signals.
    let mut output = Output::default();
    let mut streams =
        [(Stream::Stdout, Some(out_reader), Vec::<u8>::new()), (Stream::Stderr, Some(err_reader), Vec::<u8>::new())];
    let mut exited_at: Option<Instant> = None;
    let mut stopping: Option<(Instant, bool)> = None;
    let mut on_line = |stream: Stream, bytes: &[u8], output: &mut Output| {
        if stop == Stop::Channel
            && stream == Stream::Stderr
            && let Some(pgid) = std::str::from_utf8(bytes).ok().and_then(|l| l.strip_prefix(GROUP_LINE))
        {
            if let Ok(pgid) = pgid.trim().parse() {
                watch(Watch::RemoteGroup { pgid });
            }
            return;
        }
        emit(stream, bytes, &spec.masker, watch, output);
    };
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
                        on_line(*stream, pending, &mut output);
                        pending.clear();
                    }
                    continue;
                }
                pending.extend_from_slice(&chunk[..n]);
                let mut from = 0;
                while let Some(newline) = pending[from..].iter().position(|b| *b == b'\n') {
                    let end = from + newline;
                    let line = &pending[from..end];
                    on_line(*stream, line.strip_suffix(b"\r").unwrap_or(line), &mut output);
                    from = end + 1;
                }
                pending.drain(..from);
                // A line with no end in sight: cut it where no secret is cut.
                while pending.len() > LINE {
                    let Some(cut) = spec.masker.safe_cut(pending, LINE) else { break };
                    on_line(*stream, &pending[..cut], &mut output);
                    pending.drain(..cut);
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
            match (stop, pgid) {
                (Stop::Group, Some(pgid)) => kill_group(pgid, signals::to_rustix(signal)),
                (Stop::Channel, _) => send(&mut channel, signals::remote_name(signal)),
                (Stop::Group, None) => {}
            }
            stopping = Some((Instant::now(), false));
        }
        if let Some(timeout) = spec.timeout
            && !output.timed_out
            && output.interrupted.is_none()
            && started.elapsed() >= timeout
        {
            output.timed_out = true;
            match (stop, pgid) {
                (Stop::Group, Some(pgid)) => kill_group(pgid, rustix::process::Signal::KILL),
                (Stop::Channel, _) => {
                    send(&mut channel, "KILL");
                    stopping = Some((Instant::now(), false));
                }
                (Stop::Group, None) => {}
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
    drop(channel);
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

/// Masks a line, hands it to the watcher and keeps it.
fn emit(stream: Stream, bytes: &[u8], masker: &Masker, watch: &mut dyn FnMut(Watch<'_>), output: &mut Output) {
    let line = masker.mask(&String::from_utf8_lossy(bytes));
    watch(Watch::Line(stream, &line));
    match stream {
        Stream::Stdout => keep(&mut output.stdout, &line),
        Stream::Stderr => keep(&mut output.stderr, &line),
    }
}

fn kill_group(pgid: u32, signal: rustix::process::Signal) {
    if let Some(pid) = rustix::process::Pid::from_raw(pgid as i32) {
        let _ = rustix::process::kill_process_group(pid, signal);
    }
}

/// When a process started (clock ticks since boot), from `/proc/PID/stat`.
pub(crate) fn start_time(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) may hold spaces and parentheses: count from its end.
    let rest = &stat[stat.rfind(')')? + 2..];
    // `rest` starts at field 3 (state); the start time is field 22.
    rest.split(' ').nth(19)?.parse().ok()
}

/// This boot of the machine, so process records of another boot are not mistaken for live ones.
pub(crate) fn boot_id() -> Option<String> {
    std::fs::read_to_string("/proc/sys/kernel/random/boot_id").ok().map(|s| s.trim().to_owned())
}

/// A process that is still running.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Alive {
    pub(crate) pid: u32,
    pub(crate) command: String,
}

/// What still runs of process group `pgid`, started at or after `start`
/// (a group id reused by later, unrelated processes is not theirs).
pub(crate) fn group_members(pgid: u32, start: u64) -> Vec<Alive> {
    let mut alive = Vec::new();
    for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Some(pid) = entry.file_name().to_str().and_then(|n| n.parse::<u32>().ok()) else { continue };
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else { continue };
        let Some(close) = stat.rfind(')') else { continue };
        let fields: Vec<&str> = stat[close + 2..].split(' ').collect();
        // Field 3 is the state (Z: a zombie, already dead), 5 the group, 22 the start time.
        let zombie = fields.first() == Some(&"Z");
        let group = fields.get(2).and_then(|f| f.parse::<u32>().ok());
        let started = fields.get(19).and_then(|f| f.parse::<u64>().ok()).unwrap_or(0);
        if group == Some(pgid) && started >= start && !zombie {
            let command = std::fs::read(entry.path().join("cmdline"))
                .map(|bytes| {
                    bytes
                        .split(|b| *b == 0)
                        .filter(|a| !a.is_empty())
                        .map(String::from_utf8_lossy)
                        .collect::<Vec<_>>()
                        .join(" ")
                })
                .unwrap_or_default();
            alive.push(Alive { pid, command });
        }
    }
    alive.sort_by_key(|a| a.pid);
    alive
}

/// The processes whose environment holds `KEY=VALUE`, as `(pid, pgid, start)`:
/// how a step's processes are found even when its group was never journalled
/// (upshift killed between the spawn and the record).
pub(crate) fn with_environment(key: &str, value: &str) -> Vec<(u32, u32, u64)> {
    let needle = format!("{key}={value}");
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Some(pid) = entry.file_name().to_str().and_then(|n| n.parse::<u32>().ok()) else { continue };
        let Ok(environ) = std::fs::read(entry.path().join("environ")) else { continue };
        if !environ.split(|b| *b == 0).any(|var| var == needle.as_bytes()) {
            continue;
        }
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else { continue };
        let Some(close) = stat.rfind(')') else { continue };
        let fields: Vec<&str> = stat[close + 2..].split(' ').collect();
        if fields.first() == Some(&"Z") {
            continue;
        }
        let group = fields.get(2).and_then(|f| f.parse::<u32>().ok());
        let started = fields.get(19).and_then(|f| f.parse::<u64>().ok());
        if let (Some(group), Some(started)) = (group, started) {
            found.push((pid, group, started));
        }
    }
    found
}

/// Stops what is left of a process group: SIGTERM, then SIGKILL after the
/// grace period. Returns once none of it runs (or after a minute).
pub(crate) fn stop_group(pgid: u32, start: u64) {
    let members = group_members(pgid, start);
    if members.is_empty() {
        return;
    }
    for member in &members {
        if let Some(pid) = rustix::process::Pid::from_raw(member.pid as i32) {
            let _ = rustix::process::kill_process(pid, rustix::process::Signal::TERM);
        }
    }
    let since = Instant::now();
    let mut killed = false;
    while !group_members(pgid, start).is_empty() && since.elapsed() < Duration::from_secs(60) {
        if !killed && since.elapsed() >= grace() {
            for member in group_members(pgid, start) {
                if let Some(pid) = rustix::process::Pid::from_raw(member.pid as i32) {
                    let _ = rustix::process::kill_process(pid, rustix::process::Signal::KILL);
                }
            }
            killed = true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// SIGINT, SIGTERM and SIGHUP, caught once `install` ran: the engine forwards
/// them to the running command and stops after it. SIGHUP (a dropped SSH
/// session) is handled like SIGTERM.
pub(crate) mod signals {
    use super::*;

    fn slot() -> &'static Arc<AtomicUsize> {
        static SLOT: OnceLock<Arc<AtomicUsize>> = OnceLock::new();
        SLOT.get_or_init(|| Arc::new(AtomicUsize::new(0)))
    }

    /// Catches SIGINT, SIGTERM and SIGHUP from now on (for every command that runs something).
    pub(crate) fn install() {
        for signal in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM, signal_hook::consts::SIGHUP] {
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
        match signal {
            signal_hook::consts::SIGTERM => "SIGTERM",
            signal_hook::consts::SIGHUP => "SIGHUP",
            _ => "SIGINT",
        }
    }

    /// The signal a remote watcher sends for `signal`, by the name `kill -NAME` takes.
    pub(crate) fn remote_name(signal: i32) -> &'static str {
        if signal == signal_hook::consts::SIGINT { "INT" } else { "TERM" }
    }

    /// What the running command gets: SIGINT stays SIGINT; SIGTERM and SIGHUP become SIGTERM.
    pub(crate) fn to_rustix(signal: i32) -> rustix::process::Signal {
        if signal == signal_hook::consts::SIGINT { rustix::process::Signal::INT } else { rustix::process::Signal::TERM }
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
            masker: Masker::default(),
        }
    }

    #[test]
    fn captures_and_streams_output_and_exit_code() {
        let mut seen = Vec::new();
        let mut spawned = None;
        let output = Local
            .run_watched(&spec("echo out; echo err >&2; echo $X; exit 3", None), &mut |event| match event {
                Watch::Line(stream, line) => seen.push((stream, line.to_owned())),
                Watch::Spawned { pgid, .. } => spawned = Some(pgid),
                Watch::RemoteGroup { .. } => {}
            })
            .unwrap();
        assert_eq!(output.stdout, "out\n1\n");
        assert_eq!(output.stderr, "err\n");
        assert_eq!(output.exit_code, Some(3));
        assert!(seen.contains(&(Stream::Stderr, "err".to_owned())));
        assert!(spawned.is_some());
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

    #[test]
    fn a_secret_is_masked_before_anything_keeps_it_even_in_an_endless_line() {
        let values = [("k".to_owned(), "s3cr3t-value-XYZ".to_owned())].into_iter().collect();
        let mut spec = spec("i=0; while [ $i -lt 20000 ]; do printf 'ab s3cr3t-value-XYZ '; i=$((i+1)); done", None);
        spec.masker = Masker::new(&values);
        let output = Local.run(&spec).unwrap();
        assert!(!output.stdout.contains("s3cr3t") && !output.stdout.contains("XYZ"), "a fragment survived");
        assert!(output.stdout.len() <= KEEP + LINE, "bounded: {}", output.stdout.len());
        assert!(output.stdout.contains("ab ******** ab"));
    }

    #[test]
    fn group_members_finds_what_outlives_its_leader() {
        let dir = tempfile::tempdir().unwrap();
        let mut pgid = 0;
        let mut start = 0;
        let script = format!("sleep 30 & echo $! > {}/bg", dir.path().display());
        Local
            .run_watched(&spec(&script, None), &mut |event| {
                if let Watch::Spawned { pgid: p, start: s } = event {
                    pgid = p;
                    start = s;
                }
            })
            .unwrap();
        let members = group_members(pgid, start);
        assert_eq!(members.len(), 1, "{members:?}");
        assert!(members[0].command.starts_with("sleep 30"), "{members:?}");
        assert!(group_members(pgid, start + 1_000_000_000).is_empty(), "a later start time is another group");
        stop_group(pgid, start);
        assert!(group_members(pgid, start).is_empty());
    }
}
