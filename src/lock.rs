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
        format!("pid {} on {} (user {}), `{}` since {}", self.pid, self.host, self.user, self.command, self.started_at)
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
    match file.try_lock() {
        Ok(()) => {}
        Err(std::fs::TryLockError::WouldBlock) => {
            let mut text = String::new();
            let _ = file.read_to_string(&mut text);
            return Err(LockError::Held(serde_json::from_str(&text).ok()));
        }
        Err(std::fs::TryLockError::Error(error)) => return Err(LockError::Io(error)),
    }
    let holder = serde_json::to_string(&Holder::me(command)).map_err(|e| LockError::Io(std::io::Error::other(e)))?;
    file.set_len(0).map_err(LockError::Io)?;
    file.rewind().map_err(LockError::Io)?;
    file.write_all(holder.as_bytes()).map_err(LockError::Io)?;
    file.sync_data().map_err(LockError::Io)?;
    Ok(Lock { _file: file })
}
