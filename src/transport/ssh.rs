//! A host reached through the system's OpenSSH client: the operator's
//! `ssh_config`, agents, bastions and known hosts just work.
//!
//! - One ControlMaster per host, in a short private directory, started with
//!   `BatchMode=yes` and `StrictHostKeyChecking=yes` (an unknown or changed
//!   host key is refused, naming the host), `ServerAliveInterval` so a host
//!   that stops answering is noticed, and `ControlPersist` so a master left by
//!   a crash goes away by itself; `close` ends it on every other exit path.
//! - Every remote command goes through a POSIX `sh` bootstrap whose script and
//!   arguments travel base64-encoded, so the remote login shell (bash, zsh,
//!   csh, fish) never has to parse a value.
//! - A step runs in its own session and process group on the host, with its
//!   stdin from `/dev/null`; a watcher reads signal names from the ssh
//!   channel and, when the channel closes (upshift died, the connection
//!   dropped), stops the group: SIGTERM, then SIGKILL.
//! - Files are read and written by small remote scripts: symlinks followed,
//!   owner, group and mode kept, temp file and rename in the file's directory.
//! - The host lock is a process that holds `flock` on the host for as long as
//!   the run's connection lives, so it can never go stale.

use std::io::{BufRead, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use super::Transport;
use crate::files::FileState;
use crate::process::{Alive, CommandSpec, Output, Stop, Watch};

/// How to reach hosts: the `[ssh]` table of an environment.
#[derive(Debug, Clone, Default)]
pub(crate) struct SshOptions {
    /// `-F`: an ssh_config instead of the user's own.
    pub(crate) config: Option<PathBuf>,
    /// `UserKnownHostsFile`.
    pub(crate) known_hosts: Option<PathBuf>,
    pub(crate) connect_timeout: Duration,
}

/// Where a host is: `user@address[:port]`, or an alias of ssh_config.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Destination {
    pub(crate) user: Option<String>,
    pub(crate) host: String,
    pub(crate) port: Option<u16>,
}

impl Destination {
    /// Parses `user@address[:port]`, `[v6::addr]:port` or an alias.
    pub(crate) fn parse(text: &str) -> Result<Destination, String> {
        let text = text.trim();
        if text.is_empty() || text.starts_with('-') || text.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(format!("`{text}` is not `user@address[:port]` or a host alias"));
        }
        let (user, rest) = match text.rsplit_once('@') {
            Some((user, rest)) if !user.is_empty() => (Some(user.to_owned()), rest),
            Some(_) => return Err(format!("`{text}` names no user before `@`")),
            None => (None, text),
        };
        let (host, port) = if let Some(inner) = rest.strip_prefix('[') {
            let (address, after) =
                inner.split_once(']').ok_or_else(|| format!("`{text}`: an IPv6 address needs its closing `]`"))?;
            let port = match after.strip_prefix(':') {
                Some(port) => Some(port),
                None if after.is_empty() => None,
                None => return Err(format!("`{text}`: expected `:port` after `]`")),
            };
            (address.to_owned(), port)
        } else {
            match rest.split_once(':') {
                Some((host, port)) if !port.contains(':') => (host.to_owned(), Some(port)),
                Some(_) => return Err(format!("`{text}`: write an IPv6 address as `[address]:port`")),
                None => (rest.to_owned(), None),
            }
        };
        if host.is_empty() || host.starts_with('-') {
            return Err(format!("`{text}` names no address"));
        }
        let port = port
            .map(|p| p.parse::<u16>().ok().filter(|p| *p > 0).ok_or_else(|| format!("`{text}`: `{p}` is not a port")))
            .transpose()?;
        Ok(Destination { user, host, port })
    }

    /// The address people read (`deploy@10.0.0.11:2222`).
    pub(crate) fn display(&self) -> String {
        let host = if self.host.contains(':') { format!("[{}]", self.host) } else { self.host.clone() };
        let user = self.user.as_ref().map_or_else(String::new, |u| format!("{u}@"));
        let port = self.port.map_or_else(String::new, |p| format!(":{p}"));
        format!("{user}{host}{port}")
    }

    fn args(&self) -> Vec<String> {
        let mut args = Vec::new();
        if let Some(port) = self.port {
            args.extend(["-p".to_owned(), port.to_string()]);
        }
        if let Some(user) = &self.user {
            args.extend(["-l".to_owned(), user.clone()]);
        }
        // `--`: a host is never read as an option.
        args.extend(["--".to_owned(), self.host.clone()]);
        args
    }
}

/// The host lock as it answered.
#[derive(Debug)]
pub(crate) enum Locked {
    /// Held by this run; `unfinished` is the marker another run left, if any.
    Held { unfinished: Option<String> },
    /// Held by another controller (what its holder file says).
    Busy(String),
}

/// A host of the inventory, connected.
pub(crate) struct Ssh {
    name: String,
    destination: Destination,
    options: SshOptions,
    socket: PathBuf,
    log: PathBuf,
    /// Where upshift keeps its lock and marker on the host.
    state_dir: String,
    /// The process holding the host lock (its stdin is the lock's lifeline).
    lock: Mutex<Option<Child>>,
}

impl std::fmt::Debug for Ssh {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ssh").field("name", &self.name).field("destination", &self.destination).finish()
    }
}

/// How long the master may take to connect and authenticate, at most.
fn connect_deadline(options: &SshOptions) -> Duration {
    options.connect_timeout + Duration::from_secs(20)
}

impl Ssh {
    /// Connects: starts the ControlMaster (host key checked). `Err` says why
    /// the host cannot be used, in words for the operator.
    pub(crate) fn connect(
        name: &str,
        destination: &Destination,
        options: &SshOptions,
        control_dir: &Path,
        index: usize,
        state_dir: &str,
    ) -> Result<Ssh, String> {
        let ssh = Ssh {
            name: name.to_owned(),
            destination: destination.clone(),
            options: options.clone(),
            socket: control_dir.join(format!("{index}")),
            log: control_dir.join(format!("{index}.log")),
            state_dir: state_dir.to_owned(),
            lock: Mutex::new(None),
        };
        let mut args = vec!["-M".to_owned(), "-N".to_owned(), "-f".to_owned(), "-E".to_owned()];
        args.push(ssh.log.display().to_string());
        args.extend(["-o".to_owned(), "ControlPersist=60".to_owned()]);
        args.extend(ssh.common_args());
        args.extend(destination.args());
        let mut child = std::process::Command::new("ssh")
            .args(&args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|error| format!("cannot start `ssh`: {}", crate::document::io_reason(&error)))?;
        let deadline = Instant::now() + connect_deadline(options);
        let status = loop {
            if let Some(status) = child.try_wait().map_err(|e| e.to_string())? {
                break status;
            }
            if Instant::now() > deadline || crate::process::signals::pending().is_some() {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!("`{}` did not answer within {}s", destination.display(), deadline_secs(options)));
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        if !status.success() {
            return Err(ssh.log_reason());
        }
        Ok(ssh)
    }

    /// Why the master failed, from its log, in the house voice.
    fn log_reason(&self) -> String {
        let log = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = log.lines().map(str::trim).filter(|l| !l.is_empty()).collect();
        let changed = lines.iter().any(|l| l.contains("REMOTE HOST IDENTIFICATION HAS CHANGED"));
        let failed = lines.iter().any(|l| l.contains("Host key verification failed"));
        let unknown = lines.iter().any(|l| l.contains("No ") && l.contains("host key is known"));
        if changed {
            return format!(
                "`{}`: its host key has CHANGED since it was recorded in known_hosts; refusing to connect",
                self.destination.display()
            );
        }
        if unknown || failed {
            return format!(
                "`{}`: its host key is not in known_hosts; refusing to connect (add it after checking it)",
                self.destination.display()
            );
        }
        let last = lines.last().copied().unwrap_or("ssh failed without saying why");
        format!("`{}` is unreachable: {}", self.destination.display(), last.trim_end_matches('.'))
    }

    /// Options every invocation shares.
    fn common_args(&self) -> Vec<String> {
        let mut args = vec!["-S".to_owned(), self.socket.display().to_string()];
        let timeout = self.options.connect_timeout.as_secs().max(1);
        for option in [
            "BatchMode=yes".to_owned(),
            "StrictHostKeyChecking=yes".to_owned(),
            format!("ConnectTimeout={timeout}"),
            format!("ServerAliveInterval={}", timeout.min(5)),
            "ServerAliveCountMax=3".to_owned(),
            "LogLevel=ERROR".to_owned(),
        ] {
            args.extend(["-o".to_owned(), option]);
        }
        if let Some(known_hosts) = &self.options.known_hosts {
            args.extend(["-o".to_owned(), format!("UserKnownHostsFile={}", known_hosts.display())]);
        }
        if let Some(config) = &self.options.config {
            args.extend(["-F".to_owned(), config.display().to_string()]);
        }
        args
    }

    /// The argv that runs `script` (POSIX sh) on the host with `args` as `$1`…
    fn remote(&self, script: &str, args: &[&[u8]]) -> Vec<String> {
        let mut argv = vec!["ssh".to_owned(), "-T".to_owned(), "-o".to_owned(), "ControlMaster=no".to_owned()];
        argv.extend(self.common_args());
        argv.extend(self.destination.args());
        // What the remote login shell sees: no character it could read differently.
        let mut command = format!("sh -c 'eval \"$(printf %s \"$0\" | base64 -d)\"' {}", base64(script.as_bytes()));
        for arg in args {
            command.push(' ');
            // An empty argument must survive the login shell: `-` marks it.
            let encoded = base64(arg);
            command.push_str(if encoded.is_empty() { "-" } else { &encoded });
        }
        argv.push(command);
        argv
    }

    /// Runs a short remote script with `input` on stdin; `Ok` is (exit code, stdout, stderr).
    fn script(&self, script: &str, args: &[&[u8]], input: &[u8]) -> std::io::Result<(i32, Vec<u8>, String)> {
        let argv = self.remote(&format!("{DECODE}{script}"), args);
        let output = duct::cmd(&argv[0], &argv[1..])
            .stdin_bytes(input.to_vec())
            .stdout_capture()
            .stderr_capture()
            .unchecked()
            .run()?;
        let code = output.status.code().unwrap_or(-1);
        let stderr = String::from_utf8_lossy(&output.stderr).trim().to_owned();
        if code == 255 && !self.alive() {
            return Err(std::io::Error::other(format!("`{}` is unreachable: {stderr}", self.name)));
        }
        Ok((code, output.stdout, stderr))
    }

    /// Is the master still connected?
    pub(crate) fn alive(&self) -> bool {
        let mut args = self.common_args();
        args.extend(["-O".to_owned(), "check".to_owned()]);
        args.extend(self.destination.args());
        std::process::Command::new("ssh")
            .args(&args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    }

    /// Takes the host lock for this run: a remote process holds `flock` for as
    /// long as its channel (and so this run's connection) lives. Also reports
    /// the marker of an unfinished run found there.
    pub(crate) fn lock(&self, holder: &str) -> Result<Locked, String> {
        let argv = self.remote(&format!("{DECODE}{LOCK}"), &[self.state_dir.as_bytes(), holder.as_bytes()]);
        let mut child = std::process::Command::new(&argv[0])
            .args(&argv[1..])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| format!("cannot start `ssh`: {}", crate::document::io_reason(&e)))?;
        let stdout = child.stdout.take().ok_or("no output from the lock")?;
        let (sender, receiver) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            // Up to `locked` (the lock is held while the channel lives), or to
            // the end after `busy` (the holder's description follows).
            let mut lines = Vec::new();
            let mut busy = false;
            for line in std::io::BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if line == "locked" && !busy {
                    lines.push(line);
                    break;
                }
                busy |= line == "busy" && lines.iter().all(|l| l != "unfinished");
                lines.push(line);
            }
            let _ = sender.send(lines);
        });
        let lines = receiver.recv_timeout(connect_deadline(&self.options)).map_err(|_| {
            let _ = child.kill();
            format!("`{}` did not answer the lock request", self.name)
        })?;
        match (lines.first().map(String::as_str), lines.last().map(String::as_str)) {
            (_, Some("locked")) => {
                let unfinished =
                    lines.iter().position(|l| l == "unfinished").map(|i| lines[i + 1..lines.len() - 1].join("\n"));
                *self.lock.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = Some(child);
                Ok(Locked::Held { unfinished })
            }
            (Some("busy"), _) => {
                let _ = child.wait();
                Ok(Locked::Busy(lines[1..].join("\n").trim().to_owned()))
            }
            _ => {
                let mut stderr = String::new();
                if let Some(mut err) = child.stderr.take() {
                    let _ = err.read_to_string(&mut stderr);
                }
                let _ = child.wait();
                Err(format!("cannot lock `{}`: {}", self.name, stderr.trim().lines().last().unwrap_or("no answer")))
            }
        }
    }

    /// Writes the marker of an unfinished run on the host.
    pub(crate) fn mark_unfinished(&self, text: &str) -> std::io::Result<()> {
        let path = format!("{}/unfinished", self.state_dir);
        self.write_file(&path, format!("{text}\n").as_bytes(), Some(0o600))
    }

    /// Removes the marker (the run finished).
    pub(crate) fn clear_unfinished(&self) -> std::io::Result<()> {
        self.remove_file(&format!("{}/unfinished", self.state_dir))
    }

    /// Releases the lock and ends the master.
    pub(crate) fn close(&self) {
        if let Some(mut child) = self.lock.lock().unwrap_or_else(std::sync::PoisonError::into_inner).take() {
            drop(child.stdin.take());
            let _ = child.wait();
        }
        let mut args = self.common_args();
        args.extend(["-O".to_owned(), "exit".to_owned()]);
        args.extend(self.destination.args());
        let _ = std::process::Command::new("ssh")
            .args(&args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}

impl Drop for Ssh {
    fn drop(&mut self) {
        self.close();
    }
}

fn deadline_secs(options: &SshOptions) -> u64 {
    connect_deadline(options).as_secs()
}

/// Decodes `$1`… (base64, `-` for empty) into `$a1`…; trailing newlines kept.
const DECODE: &str = r#"set -u
n=1
for arg in "$@"; do
  if [ "$arg" = - ]; then v=; else v=$(printf %s "$arg" | base64 -d; printf x); v=${v%x}; fi
  eval "a$n=\$v"
  n=$((n + 1))
done
"#;

/// The lock: `a1` the state dir, `a2` the holder's description.
const LOCK: &str = r#"umask 077
mkdir -p -- "$a1" || exit 3
exec 9>>"$a1/lock" || exit 3
if ! flock -n 9; then printf 'busy\n'; cat -- "$a1/holder" 2>/dev/null; exit 1; fi
printf '%s\n' "$a2" > "$a1/holder"
if [ -f "$a1/unfinished" ]; then printf 'unfinished\n'; cat -- "$a1/unfinished"; fi
printf 'locked\n'
cat >/dev/null
"#;

/// Reads a file: a header line (`present MODE UID GID` or `absent`), the real
/// path's length and bytes, then the content.
const READ: &str = r#"real=$(readlink -f -- "$a1" 2>/dev/null) || real=$a1
[ -n "$real" ] || real=$a1
if [ -e "$real" ]; then
  [ -f "$real" ] || { printf 'not a regular file\n' >&2; exit 3; }
  [ -r "$real" ] || { printf 'permission denied\n' >&2; exit 3; }
  printf 'present %s %s\n' "$(stat -c '%a %u %g' -- "$real")" "${#real}"
  printf '%s' "$real"
  cat -- "$real"
else
  printf 'absent - - - %s\n' "${#real}"
  printf '%s' "$real"
fi
"#;

/// Writes stdin as the content of the file `a1` names, keeping what the file
/// is; `a2` forces a mode (octal) when not empty. `a3`, `a4`, `a5` force the
/// owner and mode of a restore (`-` in `a6` means: `a1` is the real path).
const WRITE: &str = r#"if [ "${a6:-}" = exact ]; then real=$a1; else real=$(readlink -f -- "$a1" 2>/dev/null) || real=$a1; fi
dir=$(dirname -- "$real")
[ -d "$dir" ] || { printf 'no such directory: %s\n' "$dir" >&2; exit 4; }
mode=; uid=; gid=; links=1
if [ -e "$real" ]; then set -- $(stat -c '%a %u %g %h' -- "$real"); mode=$1 uid=$2 gid=$3 links=$4; fi
[ -n "${a2:-}" ] && mode=$a2
[ -n "${a3:-}" ] && uid=$a3
[ -n "${a4:-}" ] && gid=$a4
me=$(id -u)
if [ -e "$real" ] && { [ "$links" -gt 1 ] || { [ "$uid" != "$me" ] && [ "$me" != 0 ]; }; }; then
  cat > "$real" || exit 5
  [ -n "$mode" ] && chmod "$mode" -- "$real" 2>/dev/null
  exit 0
fi
tmp=$(mktemp "$dir/.upshift-XXXXXX") || exit 5
if ! cat > "$tmp"; then rm -f -- "$tmp"; exit 5; fi
if [ -z "$mode" ]; then mode=$(printf '%o' $(( 0666 & ~0$(umask) ))); fi
chmod "$mode" -- "$tmp" || { rm -f -- "$tmp"; exit 5; }
if [ -n "$uid" ] && [ "$me" = 0 ]; then chown "$uid:$gid" -- "$tmp" || { rm -f -- "$tmp"; exit 5; }; fi
mv -f -- "$tmp" "$real" || { rm -f -- "$tmp"; exit 5; }
"#;

/// Lists the processes whose environment carries the step mark `a1`.
const LEFTOVERS: &str = r#"for d in /proc/[0-9]*; do
  [ "${d#/proc/}" = "$$" ] && continue
  if tr '\0' '\n' < "$d/environ" 2>/dev/null | grep -qxF -- "UPSHIFT_STEP=$a1"; then
    printf '%s %s\n' "${d#/proc/}" "$(tr '\0' ' ' < "$d/cmdline" 2>/dev/null)"
  fi
done
"#;

/// Stops them: SIGTERM, then SIGKILL after `a2` seconds.
const STOP: &str = r#"list() { for d in /proc/[0-9]*; do [ "${d#/proc/}" = "$$" ] && continue; tr '\0' '\n' < "$d/environ" 2>/dev/null | grep -qxF -- "UPSHIFT_STEP=$a1" && printf '%s\n' "${d#/proc/}"; done; }
for p in $(list); do kill -s TERM "$p" 2>/dev/null; done
i=0
while [ -n "$(list)" ] && [ "$i" -lt "$a2" ]; do sleep 1; i=$((i + 1)); done
for p in $(list); do kill -s KILL "$p" 2>/dev/null; done
"#;

impl Transport for Ssh {
    fn name(&self) -> &str {
        &self.name
    }

    fn run(&self, spec: &CommandSpec, watch: &mut dyn FnMut(Watch<'_>)) -> std::io::Result<Output> {
        let mark = spec.env.iter().find(|(k, _)| k == crate::engine::STEP_MARK).map(|(_, v)| v.clone());
        let script = step_script(spec, crate::process::grace().as_secs().max(1));
        let argv = self.remote(&script, &[]);
        // The local `ssh` carries the mark too, so a leftover client is found here as well.
        let local = CommandSpec {
            argv,
            cwd: None,
            env: mark.map(|m| vec![(crate::engine::STEP_MARK.to_owned(), m)]).unwrap_or_default(),
            timeout: spec.timeout,
            masker: spec.masker.clone(),
        };
        let mut output = crate::process::run_process(&local, Stop::Channel, watch)?;
        if output.exit_code == Some(255) && !self.alive() {
            return Err(std::io::Error::new(
                std::io::ErrorKind::NotConnected,
                format!("`{}` is unreachable (the connection to {} was lost)", self.name, self.destination.display()),
            ));
        }
        if output.exit_code == Some(126) && output.stderr.contains("upshift: no working directory ") {
            let line = output.stderr.lines().find(|l| l.starts_with("upshift: no working directory ")).unwrap_or("");
            return Err(std::io::Error::new(
                std::io::ErrorKind::NotFound,
                format!(
                    "its working directory `{}` does not exist on `{}`",
                    line.trim_start_matches("upshift: no working directory "),
                    self.name
                ),
            ));
        }
        output.stderr = output
            .stderr
            .lines()
            .filter(|l| !l.starts_with(crate::process::GROUP_LINE))
            .map(|l| format!("{l}\n"))
            .collect();
        Ok(output)
    }

    fn read_file(&self, path: &str) -> std::io::Result<(Option<Vec<u8>>, FileState)> {
        let (code, stdout, stderr) = self.script(READ, &[path.as_bytes()], &[])?;
        if code != 0 {
            return Err(std::io::Error::other(if stderr.is_empty() { format!("exit code {code}") } else { stderr }));
        }
        let newline = stdout.iter().position(|b| *b == b'\n').ok_or_else(|| std::io::Error::other("no answer"))?;
        let header = String::from_utf8_lossy(&stdout[..newline]).into_owned();
        let fields: Vec<&str> = header.split(' ').collect();
        let length: usize =
            fields.last().and_then(|f| f.parse().ok()).ok_or_else(|| std::io::Error::other("a bad answer"))?;
        let rest = &stdout[newline + 1..];
        if rest.len() < length {
            return Err(std::io::Error::other("a short answer"));
        }
        let real = PathBuf::from(String::from_utf8_lossy(&rest[..length]).into_owned());
        if fields.first() == Some(&"present") && fields.len() == 5 {
            let number = |i: usize, radix: u32| u32::from_str_radix(fields[i], radix).ok();
            let state =
                FileState { path: real, existed: true, mode: number(1, 8), uid: number(2, 10), gid: number(3, 10) };
            Ok((Some(rest[length..].to_vec()), state))
        } else {
            Ok((None, FileState { path: real, existed: false, mode: None, uid: None, gid: None }))
        }
    }

    fn write_file(&self, path: &str, content: &[u8], mode: Option<u32>) -> std::io::Result<()> {
        let mode = mode.map(|m| format!("{m:o}")).unwrap_or_default();
        let (code, _, stderr) = self.script(WRITE, &[path.as_bytes(), mode.as_bytes()], content)?;
        check(code, &stderr)
    }

    fn restore_file(&self, state: &FileState, content: &[u8]) -> std::io::Result<()> {
        let path = state.path.to_string_lossy();
        let mode = state.mode.map(|m| format!("{m:o}")).unwrap_or_default();
        let uid = state.uid.map(|u| u.to_string()).unwrap_or_default();
        let gid = state.gid.map(|g| g.to_string()).unwrap_or_default();
        let args: [&[u8]; 6] = [path.as_bytes(), mode.as_bytes(), uid.as_bytes(), gid.as_bytes(), b"", b"exact"];
        let (code, _, stderr) = self.script(WRITE, &args, content)?;
        check(code, &stderr)
    }

    fn remove_file(&self, path: &str) -> std::io::Result<()> {
        let (code, _, stderr) = self.script("rm -f -- \"$a1\"\n", &[path.as_bytes()], &[])?;
        check(code, &stderr)
    }

    fn exists(&self, path: &str) -> std::io::Result<bool> {
        let (code, _, _) = self.script("[ -e \"$a1\" ]\n", &[path.as_bytes()], &[])?;
        Ok(code == 0)
    }

    fn leftovers(&self, mark: &str) -> std::io::Result<Vec<Alive>> {
        let (code, stdout, stderr) = self.script(LEFTOVERS, &[mark.as_bytes()], &[])?;
        check(code, &stderr)?;
        Ok(String::from_utf8_lossy(&stdout)
            .lines()
            .filter_map(|line| {
                let (pid, command) = line.split_once(' ')?;
                Some(Alive { pid: pid.parse().ok()?, command: command.trim().to_owned() })
            })
            .collect())
    }

    fn stop_leftovers(&self, mark: &str) -> std::io::Result<()> {
        let grace = crate::process::grace().as_secs().max(1).to_string();
        let (code, _, stderr) = self.script(STOP, &[mark.as_bytes(), grace.as_bytes()], &[])?;
        check(code, &stderr)
    }

    fn lock(&self, holder: &str) -> Result<Locked, String> {
        Ssh::lock(self, holder)
    }

    fn mark_unfinished(&self, text: &str) -> std::io::Result<()> {
        Ssh::mark_unfinished(self, text)
    }

    fn clear_unfinished(&self) -> std::io::Result<()> {
        Ssh::clear_unfinished(self)
    }
}

fn check(code: i32, stderr: &str) -> std::io::Result<()> {
    if code == 0 {
        Ok(())
    } else {
        Err(std::io::Error::other(if stderr.is_empty() { format!("exit code {code}") } else { stderr.to_owned() }))
    }
}

/// The script that runs one step on a host: its working directory and
/// environment, its argv in a new session (so a process group of its own),
/// stdin from `/dev/null`, and a watcher on the channel that signals the
/// group on request and stops it when the channel closes.
fn step_script(spec: &CommandSpec, grace: u64) -> String {
    let quote = |s: &str| shell_words::quote(s).into_owned();
    let mut script = String::new();
    if let Some(cwd) = &spec.cwd {
        let cwd = cwd.to_string_lossy();
        script.push_str(&format!(
            "cd -- {0} 2>/dev/null || {{ printf 'upshift: no working directory %s\\n' {0} >&2; exit 126; }}\n",
            quote(&cwd)
        ));
    }
    for (key, value) in &spec.env {
        script.push_str(&format!("export {}={}\n", quote(key), quote(value)));
    }
    let argv: Vec<String> = spec.argv.iter().map(|a| quote(a)).collect();
    // The watcher reads the channel through fd 3: an asynchronous list's own
    // stdin is /dev/null in a shell without job control.
    script.push_str(&format!(
        r#"exec 3<&0
setsid {argv} </dev/null 3<&- &
pid=$!
printf '\036upshift-pgid %s\n' "$pid" >&2
( unset {mark}
  while read -r sig <&3; do kill -s "$sig" -- -"$pid" 2>/dev/null; done
  kill -s TERM -- -"$pid" 2>/dev/null; sleep {grace}; kill -s KILL -- -"$pid" 2>/dev/null ) </dev/null >/dev/null 2>&1 &
watcher=$!
wait "$pid"; code=$?
kill "$watcher" 2>/dev/null
exit "$code"
"#,
        argv = argv.join(" "),
        mark = crate::engine::STEP_MARK
    ));
    script
}

/// Base64 (standard alphabet, padded), for what crosses the remote login shell.
pub(crate) fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let n = (u32::from(chunk[0]) << 16)
            | (u32::from(*chunk.get(1).unwrap_or(&0)) << 8)
            | u32::from(*chunk.get(2).unwrap_or(&0));
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn destinations_parse_as_ssh_reads_them() {
        let d = Destination::parse("deploy@10.0.0.11:2222").unwrap();
        assert_eq!((d.user.as_deref(), d.host.as_str(), d.port), (Some("deploy"), "10.0.0.11", Some(2222)));
        assert_eq!(Destination::parse("web1").unwrap(), Destination { user: None, host: "web1".into(), port: None });
        let d = Destination::parse("[::1]:22").unwrap();
        assert_eq!((d.host.as_str(), d.port, d.display()), ("::1", Some(22), "[::1]:22".to_owned()));
        for bad in ["", "-oProxyCommand=x", "a b", "@host", "h:0", "h:99999", "h:x", "::1", "u@-h"] {
            assert!(Destination::parse(bad).is_err(), "{bad}");
        }
        assert_eq!(d.args().last().map(String::as_str), Some("::1"));
    }

    #[test]
    fn base64_matches_the_standard() {
        assert_eq!(base64(b""), "");
        assert_eq!(base64(b"f"), "Zg==");
        assert_eq!(base64(b"fo"), "Zm8=");
        assert_eq!(base64(b"foo"), "Zm9v");
        assert_eq!(base64(b"foob"), "Zm9vYg==");
    }

    #[test]
    fn the_bootstrap_survives_any_value() {
        // Run the bootstrap through a local `sh -c`, as a remote login shell would.
        let script = format!("{DECODE}printf '[%s]' \"$a1\" \"$a2\" \"$a3\"\n");
        let values: [&[u8]; 3] = [b"it's \"$(touch PWNED)\" `x` \n\n", b"", "ünï\u{1}".as_bytes()];
        let mut command = format!("sh -c 'eval \"$(printf %s \"$0\" | base64 -d)\"' {}", base64(script.as_bytes()));
        for value in values {
            let encoded = base64(value);
            command.push(' ');
            command.push_str(if encoded.is_empty() { "-" } else { &encoded });
        }
        let dir = tempfile::tempdir().unwrap();
        let output =
            std::process::Command::new("bash").args(["-c", &command]).current_dir(dir.path()).output().unwrap();
        assert_eq!(String::from_utf8_lossy(&output.stdout), "[it's \"$(touch PWNED)\" `x` \n\n][][ünï\u{1}]");
        assert!(!dir.path().join("PWNED").exists());
    }
}

/// A real `sshd` on a loopback address, for the transport's own tests (the
/// fleet's CLI tests have their own, with several hosts).
#[cfg(test)]
pub(crate) mod test_host {
    use std::path::{Path, PathBuf};
    use std::time::Duration;

    /// One throwaway host: its sshd, keys, known_hosts and a client config.
    pub(crate) struct TestHost {
        pub(crate) dir: tempfile::TempDir,
        pub(crate) address: String,
        pub(crate) port: u16,
        sshd: std::process::Child,
    }

    fn keygen(path: &Path) {
        let status = std::process::Command::new("ssh-keygen")
            .args(["-q", "-t", "ed25519", "-N", "", "-f"])
            .arg(path)
            .status()
            .expect("ssh-keygen runs");
        assert!(status.success());
    }

    fn free_port(address: &str) -> u16 {
        std::net::TcpListener::bind((address, 0)).expect("a free port").local_addr().unwrap().port()
    }

    impl TestHost {
        pub(crate) fn start(octet: u8) -> TestHost {
            assert!(Path::new("/usr/sbin/sshd").exists(), "sshd is missing: run scripts/setup (openssh-server)");
            std::fs::create_dir_all("/run/sshd").expect("the privilege separation directory");
            let dir = tempfile::tempdir().unwrap();
            let address = format!("127.0.0.{octet}");
            let port = free_port(&address);
            let d = dir.path();
            keygen(&d.join("hostkey"));
            keygen(&d.join("client"));
            std::fs::copy(d.join("client.pub"), d.join("authorized_keys")).unwrap();
            std::fs::write(
                d.join("sshd_config"),
                format!(
                    "ListenAddress {address}:{port}\nHostKey {0}/hostkey\nPidFile {0}/sshd.pid\nAuthorizedKeysFile {0}/authorized_keys\nPermitRootLogin prohibit-password\nPasswordAuthentication no\nKbdInteractiveAuthentication no\nUsePAM no\nStrictModes no\nMaxSessions 50\nMaxStartups 100\nLogLevel ERROR\n",
                    d.display()
                ),
            )
            .unwrap();
            let host_key = std::fs::read_to_string(d.join("hostkey.pub")).unwrap();
            let key: Vec<&str> = host_key.split_whitespace().take(2).collect();
            std::fs::write(d.join("known_hosts"), format!("[{address}]:{port} {}\n", key.join(" "))).unwrap();
            std::fs::write(
                d.join("ssh_config"),
                format!("Host *\n  IdentityFile {}/client\n  IdentitiesOnly yes\n  User root\n", d.display()),
            )
            .unwrap();
            let sshd = std::process::Command::new("/usr/sbin/sshd")
                .args(["-D", "-e", "-f"])
                .arg(d.join("sshd_config"))
                .stderr(std::process::Stdio::null())
                .spawn()
                .expect("sshd starts");
            // Wait until it listens.
            for _ in 0..100 {
                if std::net::TcpStream::connect((address.as_str(), port)).is_ok() {
                    break;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            TestHost { dir, address, port, sshd }
        }

        pub(crate) fn options(&self) -> super::SshOptions {
            super::SshOptions {
                config: Some(self.dir.path().join("ssh_config")),
                known_hosts: Some(self.dir.path().join("known_hosts")),
                connect_timeout: Duration::from_secs(5),
            }
        }

        pub(crate) fn destination(&self) -> super::Destination {
            super::Destination { user: Some("root".into()), host: self.address.clone(), port: Some(self.port) }
        }

        pub(crate) fn path(&self, name: &str) -> PathBuf {
            self.dir.path().join(name)
        }
    }

    impl Drop for TestHost {
        fn drop(&mut self) {
            let _ = self.sshd.kill();
            let _ = self.sshd.wait();
        }
    }
}

#[cfg(test)]
mod host_tests {
    use super::test_host::TestHost;
    use super::*;

    fn connect(host: &TestHost) -> Ssh {
        let control = tempfile::Builder::new().prefix("up").tempdir_in("/tmp").unwrap();
        let ssh = Ssh::connect(
            "web1",
            &host.destination(),
            &host.options(),
            control.path(),
            0,
            &host.path("state").display().to_string(),
        )
        .unwrap_or_else(|e| panic!("{e}"));
        std::mem::forget(control);
        ssh
    }

    #[test]
    fn runs_commands_and_moves_files_on_a_host() {
        let host = TestHost::start(61);
        let ssh = connect(&host);
        let spec = CommandSpec {
            argv: vec!["sh".into(), "-c".into(), "echo out $X; echo err >&2; pwd; exit 3".into()],
            cwd: Some(host.dir.path().to_path_buf()),
            env: vec![("X".into(), "it's $HOME".into())],
            timeout: Some(Duration::from_secs(20)),
            masker: crate::secrets::Masker::default(),
        };
        let mut group = None;
        let output = ssh
            .run(&spec, &mut |event| {
                if let Watch::RemoteGroup { pgid } = event {
                    group = Some(pgid);
                }
            })
            .unwrap();
        assert_eq!(output.exit_code, Some(3));
        assert_eq!(output.stdout, format!("out it's $HOME\n{}\n", host.dir.path().display()));
        assert_eq!(output.stderr, "err\n");
        assert!(group.is_some());

        // Files: a symlinked file keeps its link, owner and mode.
        let real = host.path("real.json");
        std::fs::write(&real, "old").unwrap();
        std::fs::set_permissions(&real, std::os::unix::fs::PermissionsExt::from_mode(0o640)).unwrap();
        std::os::unix::fs::symlink(&real, host.path("link.json")).unwrap();
        let link = host.path("link.json").display().to_string();
        let (content, state) = ssh.read_file(&link).unwrap();
        assert_eq!(content.as_deref(), Some(&b"old"[..]));
        assert_eq!((state.path.clone(), state.mode), (real.clone(), Some(0o640)));
        ssh.write_file(&link, b"new\n\0binary", None).unwrap();
        assert!(std::fs::symlink_metadata(host.path("link.json")).unwrap().file_type().is_symlink());
        assert_eq!(std::fs::read(&real).unwrap(), b"new\n\0binary");
        assert_eq!(std::os::unix::fs::MetadataExt::mode(&std::fs::metadata(&real).unwrap()) & 0o777, 0o640);
        ssh.restore_file(&state, b"old").unwrap();
        assert_eq!(std::fs::read(&real).unwrap(), b"old");
        let absent = host.path("absent").display().to_string();
        assert_eq!(ssh.read_file(&absent).unwrap().0, None);
        assert!(!ssh.exists(&absent).unwrap());
        ssh.remove_file(&real.display().to_string()).unwrap();
        assert!(!real.exists());
        ssh.close();
    }

    #[test]
    fn a_timeout_and_a_lost_channel_stop_the_remote_group() {
        let host = TestHost::start(62);
        let ssh = connect(&host);
        let marker = host.path("survived");
        let spec = CommandSpec {
            argv: vec!["sh".into(), "-c".into(), format!("(sleep 2; touch {}) & sleep 120", marker.display())],
            cwd: None,
            env: vec![(crate::engine::STEP_MARK.into(), "run/step/slow".into())],
            timeout: Some(Duration::from_millis(500)),
            masker: crate::secrets::Masker::default(),
        };
        let started = Instant::now();
        let output = ssh.run(&spec, &mut |_| {}).unwrap();
        assert!(output.timed_out);
        // Well before the sleep would end, however loaded the machine.
        assert!(started.elapsed() < Duration::from_secs(60), "{:?}", started.elapsed());
        std::thread::sleep(Duration::from_millis(2500));
        assert!(!marker.exists(), "a remote grandchild outlived the timeout");
        assert!(ssh.leftovers("run/step/slow").unwrap().is_empty());
    }

    #[test]
    fn the_host_lock_is_held_while_the_connection_lives() {
        let host = TestHost::start(63);
        let first = connect(&host);
        assert!(matches!(first.lock("run A by me").unwrap(), Locked::Held { unfinished: None }));
        let second = connect(&host);
        match second.lock("run B").unwrap() {
            Locked::Busy(holder) => assert_eq!(holder, "run A by me"),
            other => panic!("{other:?}"),
        }
        first.mark_unfinished("run A (unfinished)").unwrap();
        first.close();
        match second.lock("run B").unwrap() {
            Locked::Held { unfinished } => assert_eq!(unfinished.as_deref(), Some("run A (unfinished)")),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn an_unknown_host_key_is_refused_naming_the_host() {
        let host = TestHost::start(64);
        std::fs::write(host.path("known_hosts"), "").unwrap();
        let control = tempfile::tempdir_in("/tmp").unwrap();
        let error = Ssh::connect("web9", &host.destination(), &host.options(), control.path(), 0, "state").unwrap_err();
        assert!(error.contains("host key is not in known_hosts"), "{error}");
        assert!(error.contains(&host.address), "{error}");
    }
}
