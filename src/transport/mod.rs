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

use indexmap::IndexMap;

use crate::files::FileState;
use crate::playbook::{Inventory, LOCAL};
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

    /// Takes the host's lock for this run (`holder` describes it for others).
    fn lock(&self, _holder: &str) -> Result<ssh::Locked, String> {
        Ok(ssh::Locked::Held { unfinished: None })
    }

    /// Leaves the marker of an unfinished run on the host.
    fn mark_unfinished(&self, _text: &str) -> std::io::Result<()> {
        Ok(())
    }

    /// Removes the marker: the run finished.
    fn clear_unfinished(&self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Where a run's steps run: this machine, and every host of the fleet, connected.
pub(crate) struct Targets {
    places: IndexMap<String, Box<dyn Transport>>,
    /// The ControlMasters' sockets (a short private directory), removed last.
    _control: Option<tempfile::TempDir>,
}

impl std::fmt::Debug for Targets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.places.keys()).finish()
    }
}

impl Targets {
    /// This machine alone.
    pub(crate) fn local() -> Targets {
        let mut places: IndexMap<String, Box<dyn Transport>> = IndexMap::new();
        places.insert(LOCAL.to_owned(), Box::new(Local));
        Targets { places, _control: None }
    }

    /// This machine and every host of the inventory, connected at once (host
    /// keys checked). `Err` lists each host that cannot be used, and why.
    pub(crate) fn connect(inventory: Option<&Inventory>) -> Result<Targets, Vec<String>> {
        let mut targets = Targets::local();
        let Some(inventory) = inventory else {
            return Ok(targets);
        };
        // Short and private: a socket path must stay under ~104 bytes.
        let control = tempfile::Builder::new()
            .prefix("ups")
            .tempdir_in("/tmp")
            .map_err(|e| vec![format!("cannot make a directory for ssh: {}", crate::document::io_reason(&e))])?;
        let results: Vec<Result<ssh::Ssh, String>> = std::thread::scope(|scope| {
            let handles: Vec<_> = inventory
                .hosts
                .iter()
                .enumerate()
                .map(|(index, host)| {
                    let dir = control.path();
                    scope.spawn(move || {
                        ssh::Ssh::connect(&host.name, &host.destination, &inventory.ssh, dir, index, &host.state_dir)
                    })
                })
                .collect();
            handles
                .into_iter()
                .map(|h| h.join().unwrap_or_else(|_| Err("internal error: a connection panicked".to_owned())))
                .collect()
        });
        let mut problems = Vec::new();
        for (host, result) in inventory.hosts.iter().zip(results) {
            match result {
                Ok(ssh) => {
                    targets.places.insert(host.name.clone(), Box::new(ssh));
                }
                Err(why) => problems.push(format!("host `{}`: {why}", host.name)),
            }
        }
        targets._control = Some(control);
        if problems.is_empty() { Ok(targets) } else { Err(problems) }
    }

    /// The transport of a target; `None` for a name this run does not know.
    pub(crate) fn get(&self, name: &str) -> Option<&dyn Transport> {
        self.places.get(name).map(|b| b.as_ref())
    }

    /// Every host of the fleet (not `local`).
    pub(crate) fn hosts(&self) -> impl Iterator<Item = (&str, &dyn Transport)> {
        self.places.iter().filter(|(name, _)| name.as_str() != LOCAL).map(|(n, t)| (n.as_str(), t.as_ref()))
    }
}
