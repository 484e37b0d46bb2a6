//! Transports: where a step's commands run and its files change. `local` is
//! this machine; `ssh` is a host of the inventory, reached through the system's
//! OpenSSH client over one ControlMaster per host. They are the only code that
//! starts step processes or changes a step's files; the engine and the plan
//! only ask them.
//!
//! Paths acted on at run time are strings: on this machine a relative path
//! resolves against the directory upshift was started in, on a host against
//! the ssh user's home directory.

mod local;
pub(crate) mod ssh;

pub(crate) use local::Local;

use crate::files::FileState;
use crate::process::{Alive, CommandSpec, Output, Watch};

/// A place steps run: runs commands, reads and writes files.
pub(crate) trait Transport: Send + Sync {
    /// Its name in journals and output (`local`, or the host's name).
    fn name(&self) -> &str;

    /// Runs a command to its end, its timeout, or a signal to upshift, telling
    /// `watch` its process group(s) and each masked output line as they come.
    fn run(&self, spec: &CommandSpec, watch: &mut dyn FnMut(Watch<'_>)) -> std::io::Result<Output>;

    /// The content of the file `path` names (symlinks followed) and what it is;
    /// `None` content when it does not exist.
    fn read_file(&self, path: &str) -> std::io::Result<(Option<Vec<u8>>, FileState)>;

    /// Replaces the content of the file `path` names, keeping what the file is
    /// (symlinks, owner, group, mode, hard links); a new file gets 0666 less
    /// the umask. `mode` forces a mode.
    fn write_file(&self, path: &str, content: &[u8], mode: Option<u32>) -> std::io::Result<()>;

    /// Writes `content` at `state.path` (no symlink followed) with `state`'s
    /// owner and mode: how a snapshot puts a file back.
    fn restore_file(&self, state: &FileState, content: &[u8]) -> std::io::Result<()>;

    /// Removes a file (gone already is fine).
    fn remove_file(&self, path: &str) -> std::io::Result<()>;

    /// Does `path` exist (for `creates`)?
    fn exists(&self, path: &str) -> std::io::Result<bool>;

    /// What still runs there that carries this step mark (`UPSHIFT_STEP`).
    fn leftovers(&self, mark: &str) -> std::io::Result<Vec<Alive>>;

    /// Stops what carries this step mark: SIGTERM, then SIGKILL after the grace period.
    fn stop_leftovers(&self, mark: &str) -> std::io::Result<()>;
}
