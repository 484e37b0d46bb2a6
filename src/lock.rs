//! One runner at a time per state dir: an OS lock (`flock` through
//! `File::try_lock`) on `STATE/lock`. The kernel drops it when the process
//! dies, so it can never go stale. The file names the holder (pid, host, user,
//! start) for the message a second runner prints.

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use serde::{Deserialize, Serialize};

/// Who holds the lock.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Holder {
    pub(crate) pid: u32,
    pub(crate) host: String,
    pub(crate) user: String,
    pub(crate) started_at: String,
    pub(crate) command: String,
}

impl Holder {
    pub(crate) fn me(command: &str) -> Holder {
        Holder {
            pid: std::process::id(),
            host: hostname(),
            user: user(),
            started_at: crate::journal::now(),
            command: command.to_owned(),
        }
    }

    pub(crate) fn describe(&self) -> String {
        let gone = if self.gone() { " (that process is gone: something it started still holds the lock)" } else { "" };
        format!(
            "pid {} on {} (user {}), `{}` since {}{gone}",
            self.pid, self.host, self.user, self.command, self.started_at
        )
    }

    /// Is the holder a process of this machine that no longer exists?
    fn gone(&self) -> bool {
        self.host == hostname() && !Path::new(&format!("/proc/{}", self.pid)).exists()
    }
}

/// Who is running upshift: `$USER`, `$LOGNAME`, or the uid.
pub(crate) fn user() -> String {
    std::env::var("USER")
        .or_else(|_| std::env::var("LOGNAME"))
        .unwrap_or_else(|_| format!("uid {}", rustix::process::getuid().as_raw()))
}

pub(crate) fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .or_else(|_| std::fs::read_to_string("/etc/hostname"))
        .map(|s| s.trim().to_owned())
        .unwrap_or_else(|_| "localhost".to_owned())
}

/// A held lock; dropping it (or dying) releases it.
#[derive(Debug)]
pub(crate) struct Lock {
    _file: File,
}

/// Why the lock could not be taken.
#[derive(Debug)]
pub(crate) enum LockError {
    Held(Option<Holder>),
    Io(std::io::Error),
}

pub(crate) fn acquire(state_dir: &Path, command: &str) -> Result<Lock, LockError> {
    crate::journal::create_private_dir(state_dir).map_err(LockError::Io)?;
    let path = state_dir.join("lock");
    let mut file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        // Never through a symlink: that would let anyone who can plant one truncate another file.
        .custom_flags(rustix::fs::OFlags::NOFOLLOW.bits() as i32)
        .open(&path)
        .map_err(|error| {
            LockError::Io(if error.raw_os_error() == Some(rustix::io::Errno::LOOP.raw_os_error()) {
                std::io::Error::other(format!("`{}` is a symlink; refusing to use it", path.display()))
            } else {
                error
            })
        })?;
    if !file.metadata().map_err(LockError::Io)?.is_file() {
        return Err(LockError::Io(std::io::Error::other(format!("`{}` is not a regular file", path.display()))));
    }
    // A holder that died a moment ago may have forked a child that holds the
    // lock until it execs (which closes it): give that moment to pass.
    let patience = std::time::Instant::now() + std::time::Duration::from_secs(2);
    loop {
        match file.try_lock() {
            Ok(()) => break,
            Err(std::fs::TryLockError::WouldBlock) => {
                let mut text = String::new();
                file.rewind().map_err(LockError::Io)?;
                let _ = file.read_to_string(&mut text);
                let holder: Option<Holder> = serde_json::from_str(&text).ok();
                if holder.as_ref().is_some_and(Holder::gone) && std::time::Instant::now() < patience {
                    std::thread::sleep(std::time::Duration::from_millis(20));
                    continue;
                }
                return Err(LockError::Held(holder));
            }
            Err(std::fs::TryLockError::Error(error)) => return Err(LockError::Io(error)),
        }
    }
    let holder = serde_json::to_string(&Holder::me(command)).map_err(|e| LockError::Io(std::io::Error::other(e)))?;
    file.set_len(0).map_err(LockError::Io)?;
    file.rewind().map_err(LockError::Io)?;
    file.write_all(holder.as_bytes()).map_err(LockError::Io)?;
    file.sync_data().map_err(LockError::Io)?;
    Ok(Lock { _file: file })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A lock held by a file description whose recorded holder is a pid of
    /// this machine that no longer exists (a fork of a killed upshift, say).
    fn held_by_the_dead(dir: &Path) -> File {
        let mut child = std::process::Command::new("true").spawn().unwrap();
        child.wait().unwrap();
        let holder = Holder { pid: child.id(), ..Holder::me("run") };
        std::fs::create_dir_all(dir).unwrap();
        let mut file =
            OpenOptions::new().read(true).write(true).create(true).truncate(true).open(dir.join("lock")).unwrap();
        file.try_lock().unwrap();
        file.write_all(serde_json::to_string(&holder).unwrap().as_bytes()).unwrap();
        file
    }

    #[test]
    fn a_lock_whose_holder_died_a_moment_ago_is_waited_for_then_named_as_gone() {
        let dir = tempfile::tempdir().unwrap();
        let state = dir.path().join("state");
        let file = held_by_the_dead(&state);
        let release = std::thread::spawn(move || {
            std::thread::sleep(std::time::Duration::from_millis(300));
            drop(file);
        });
        assert!(acquire(&state, "resume").is_ok(), "released within the patience");
        release.join().unwrap();

        let other = tempfile::tempdir().unwrap();
        let state = other.path().join("state");
        let _held = held_by_the_dead(&state);
        match acquire(&state, "resume") {
            Err(LockError::Held(Some(holder))) => {
                assert!(holder.describe().contains("that process is gone"), "{}", holder.describe())
            }
            other => panic!("{other:?}"),
        }
    }
}
