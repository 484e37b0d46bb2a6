//! Files on disk, read and changed safely.
//!
//! - Documents (playbooks, includes, template sources, environments, secret
//!   files) are read only when they are regular files, never past a size limit,
//!   and never by blocking on a FIFO.
//! - State files (journals, snapshots, the lock) are never read or written
//!   through a symlink.
//! - `edit` and `template` change a file's content and nothing else: a symlink
//!   stays a symlink (the file it points to changes), owner, group and mode stay,
//!   a file with several hard links keeps them, and a new file honours the umask.
//!   Writes are atomic where that keeps those promises (temp file in the same
//!   directory, fsync, rename, fsync the directory).
//! - Snapshots, taken just before a step changes a file, restore it exactly. A
//!   file that will hold a secret is snapshotted beside itself (same owner, mode
//!   0600 at most), never into the state dir, and that copy is removed when the
//!   run ends.

use std::fs::OpenOptions;
use std::io::{Read, Write};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// The most a playbook, include, template source, environment or var file may hold.
pub(crate) const DOCUMENT_LIMIT: u64 = 16 << 20;

fn nofollow() -> i32 {
    rustix::fs::OFlags::NOFOLLOW.bits() as i32
}

/// Writes a state file atomically with `mode` (temp file, fsync, rename, fsync the directory).
pub(crate) fn write_atomic(path: &Path, content: &[u8], mode: u32) -> std::io::Result<()> {
    let dir = parent_of(path);
    let mut temp = tempfile::Builder::new().prefix(".upshift-").tempfile_in(dir)?;
    temp.write_all(content)?;
    temp.as_file().set_permissions(std::fs::Permissions::from_mode(mode))?;
    temp.as_file().sync_all()?;
    temp.persist(path).map_err(|error| error.error)?;
    crate::journal::sync_dir(dir)
}

fn parent_of(path: &Path) -> &Path {
    path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."))
}

/// Reads a state file, refusing a symlink or anything but a regular file.
pub(crate) fn read_private(path: &Path) -> std::io::Result<Vec<u8>> {
    let mut file = OpenOptions::new().read(true).custom_flags(nofollow()).open(path)?;
    if !file.metadata()?.is_file() {
        return Err(std::io::Error::new(std::io::ErrorKind::InvalidInput, "not a regular file"));
    }
    let mut out = Vec::new();
    file.read_to_end(&mut out)?;
    Ok(out)
}

/// Reads a document: a regular file (symlinks followed) of at most `limit`
/// bytes. A FIFO, a device or a directory is an error, at once.
pub(crate) fn read_document(path: &Path, limit: u64) -> std::io::Result<Vec<u8>> {
    // O_NONBLOCK: opening a FIFO must not wait for a writer.
    let file = OpenOptions::new().read(true).custom_flags(rustix::fs::OFlags::NONBLOCK.bits() as i32).open(path)?;
    let meta = file.metadata()?;
    if !meta.is_file() {
        let what = if meta.is_dir() { "a directory" } else { "not a regular file (a FIFO, socket or device)" };
        return Err(std::io::Error::new(std::io::ErrorKind::InvalidInput, what));
    }
    if meta.len() > limit {
        return Err(too_large(limit));
    }
    let mut out = Vec::with_capacity(meta.len() as usize);
    file.take(limit + 1).read_to_end(&mut out)?;
    if out.len() as u64 > limit {
        return Err(too_large(limit));
    }
    Ok(out)
}

fn too_large(limit: u64) -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::InvalidInput, format!("larger than {} MiB", limit >> 20))
}

/// The process's umask, read once.
fn umask() -> u32 {
    static UMASK: std::sync::OnceLock<u32> = std::sync::OnceLock::new();
    *UMASK.get_or_init(|| {
        let old = rustix::process::umask(rustix::fs::Mode::from_raw_mode(0o077));
        rustix::process::umask(old);
        old.as_raw_mode()
    })
}

/// The mode a new file gets: the one asked for, or 0666 less the umask.
pub(crate) fn new_file_mode(asked: Option<u32>) -> u32 {
    asked.unwrap_or(0o666 & !umask())
}

/// The file a path really names: symlinks followed to the end (a dangling
/// link names the file it would create). Relative links resolve against
/// the directory of the link.
pub(crate) fn resolve_links(path: &Path) -> std::io::Result<PathBuf> {
    let mut current = path.to_path_buf();
    for _ in 0..40 {
        match std::fs::symlink_metadata(&current) {
            Ok(meta) if meta.file_type().is_symlink() => {
                let target = std::fs::read_link(&current)?;
                current = if target.is_absolute() { target } else { parent_of(&current).join(target) };
            }
            Ok(_) => return Ok(current),
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(current),
            Err(error) => return Err(error),
        }
    }
    Err(std::io::Error::other("too many levels of symbolic links"))
}

/// What a file was before a step changed it: enough to put it back exactly.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub(crate) struct FileState {
    /// The file really changed (symlinks resolved).
    pub(crate) path: PathBuf,
    pub(crate) existed: bool,
    pub(crate) mode: Option<u32>,
    #[serde(default)]
    pub(crate) uid: Option<u32>,
    #[serde(default)]
    pub(crate) gid: Option<u32>,
}

impl FileState {
    pub(crate) fn of(path: &Path) -> std::io::Result<FileState> {
        let path = resolve_links(path)?;
        match std::fs::metadata(&path) {
            Ok(meta) if meta.is_file() => Ok(FileState {
                path,
                existed: true,
                mode: Some(meta.mode() & 0o7777),
                uid: Some(meta.uid()),
                gid: Some(meta.gid()),
            }),
            Ok(_) => Err(std::io::Error::new(std::io::ErrorKind::InvalidInput, "not a regular file")),
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
                Ok(FileState { path, existed: false, mode: None, uid: None, gid: None })
            }
            Err(error) => Err(error),
        }
    }
}

/// Replaces the content of the file `path` names, keeping what the file is:
/// symlinks, owner, group, mode and hard links. A new file gets 0666 less the
/// umask. `mode` forces a mode.
pub(crate) fn replace_content(path: &Path, content: &[u8], mode: Option<u32>) -> std::io::Result<()> {
    let state = FileState::of(path)?;
    let mode = mode.or(state.mode).unwrap_or_else(|| new_file_mode(None));
    write_file(&state.path, content, (state.uid, state.gid), mode)
}

/// Writes `content` at `state.path` (no symlink followed) with `state`'s owner
/// and mode (a new file's mode when it has none): how a snapshot puts a file back.
pub(crate) fn write_as(state: &FileState, content: &[u8]) -> std::io::Result<()> {
    write_file(&state.path, content, (state.uid, state.gid), state.mode.unwrap_or_else(|| new_file_mode(None)))
}

/// Writes `content` to `path` (no symlink there) with this owner and mode.
fn write_file(path: &Path, content: &[u8], owner: (Option<u32>, Option<u32>), mode: u32) -> std::io::Result<()> {
    let me = rustix::process::geteuid().as_raw();
    if let Ok(meta) = std::fs::metadata(path)
        && meta.is_file()
        && (meta.nlink() > 1 || (meta.uid() != me && me != 0))
    {
        // Renaming a new file over it would break its other hard links, or
        // (not being root) give it our ownership: write in place instead.
        let mut file = OpenOptions::new().write(true).truncate(true).open(path)?;
        file.write_all(content)?;
        if meta.mode() & 0o7777 != mode {
            file.set_permissions(std::fs::Permissions::from_mode(mode))?;
        }
        if me == 0 {
            std::os::unix::fs::fchown(&file, owner.0, owner.1)?;
        }
        return file.sync_all();
    }
    let dir = parent_of(path);
    let mut temp = tempfile::Builder::new().prefix(".upshift-").tempfile_in(dir)?;
    temp.write_all(content)?;
    if me == 0 || owner.0 == Some(me) {
        std::os::unix::fs::fchown(temp.as_file(), owner.0, owner.1)?;
    }
    temp.as_file().set_permissions(std::fs::Permissions::from_mode(mode))?;
    temp.as_file().sync_all()?;
    temp.persist(path).map_err(|error| error.error)?;
    crate::journal::sync_dir(dir)
}

/// What the state dir keeps of a snapshot.
#[derive(Debug, Serialize, Deserialize)]
struct Meta {
    #[serde(flatten)]
    file: FileState,
    /// Where the old content is when it is kept beside the file (it holds a secret).
    #[serde(default)]
    beside: Option<PathBuf>,
    /// Where the file is: `local`, or a host of the fleet.
    #[serde(default = "local")]
    target: String,
    /// The snapshot's key (`STEP` or `STEP@HOST`); file names may shorten it.
    #[serde(default)]
    key: Option<String>,
}

/// A file a run's snapshot is of.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct SnapshotFile {
    /// The step that took it.
    pub(crate) step: String,
    pub(crate) target: String,
    pub(crate) path: PathBuf,
}

fn local() -> String {
    crate::playbook::LOCAL.to_owned()
}

/// The snapshots of one run: `RUN.files/KEY.{meta.json,content}`, a key per
/// (step, target). The files themselves are read and written through their
/// target's transport.
#[derive(Debug, Clone)]
pub(crate) struct Snapshots {
    dir: PathBuf,
    run_id: String,
}

impl Snapshots {
    pub(crate) fn new(dir: PathBuf, run_id: &str) -> Snapshots {
        Snapshots { dir, run_id: run_id.to_owned() }
    }

    fn meta_path(&self, key: &str) -> PathBuf {
        self.dir.join(format!("{}.meta.json", file_name(key)))
    }

    fn content_path(&self, key: &str) -> PathBuf {
        self.dir.join(format!("{}.content", file_name(key)))
    }

    /// Is there a snapshot under this key?
    pub(crate) fn has(&self, key: &str) -> bool {
        self.meta_path(key).is_file()
    }

    /// Records the file `path` names (on `transport`) as it is now, unless
    /// this key already has a snapshot (a re-run after a crash must keep the
    /// original). `secret`: the file will hold a secret, so its old content is
    /// kept beside it (same owner, mode 0600 at most), not in the state dir.
    pub(crate) fn take(
        &self,
        key: &str,
        transport: &dyn crate::transport::Transport,
        path: &str,
        secret: bool,
    ) -> std::io::Result<()> {
        if self.has(key) {
            return Ok(());
        }
        crate::journal::create_private_dir(&self.dir)?;
        let (content, file) = transport.read_file(path)?;
        let mut beside = None;
        if let Some(content) = content {
            if secret {
                let copy = beside_path(&file.path, &self.run_id, key);
                let state = FileState {
                    path: copy.clone(),
                    existed: false,
                    mode: Some(file.mode.unwrap_or(0o600) & 0o600),
                    uid: file.uid,
                    gid: file.gid,
                };
                transport.restore_file(&state, &content)?;
                beside = Some(copy);
            } else {
                write_atomic(&self.content_path(key), &content, 0o600)?;
            }
        }
        let meta = Meta { file, beside, target: transport.name().to_owned(), key: Some(key.to_owned()) };
        write_atomic(&self.meta_path(key), &serde_json::to_vec(&meta).map_err(std::io::Error::other)?, 0o600)
    }

    /// Puts the file back as the snapshot recorded it: content, owner, group
    /// and mode, or its absence. Returns the path.
    pub(crate) fn restore(&self, key: &str, transport: &dyn crate::transport::Transport) -> std::io::Result<PathBuf> {
        let meta: Meta = serde_json::from_slice(&read_private(&self.meta_path(key))?).map_err(std::io::Error::other)?;
        let path = meta.file.path.clone();
        if meta.file.existed {
            let content = match &meta.beside {
                Some(copy) => transport
                    .read_file(&copy.to_string_lossy())?
                    .0
                    .ok_or_else(|| std::io::Error::other(format!("its copy `{}` is gone", copy.display())))?,
                None => read_private(&self.content_path(key))?,
            };
            transport.restore_file(&meta.file, &content)?;
        } else {
            transport.remove_file(&path.to_string_lossy())?;
        }
        Ok(path)
    }

    fn meta(&self, key: &str) -> std::io::Result<Meta> {
        serde_json::from_slice(&read_private(&self.meta_path(key))?).map_err(std::io::Error::other)
    }

    /// The file this key's snapshot is of.
    pub(crate) fn file(&self, key: &str) -> Option<PathBuf> {
        self.meta(key).ok().map(|meta| meta.file.path)
    }

    /// Why this key's snapshot could not be restored, if it could not: gone,
    /// unreadable, or (for a file that held a secret) its copy removed when
    /// the run ended (looked for on its target).
    pub(crate) fn missing(&self, key: &str, targets: &crate::transport::Targets) -> Option<String> {
        let meta = match self.meta(key) {
            Ok(meta) => meta,
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Some("it has no snapshot".to_owned()),
            Err(error) => return Some(format!("its snapshot cannot be read: {}", crate::document::io_reason(&error))),
        };
        let shown = meta.file.path.display();
        if !meta.file.existed {
            return None;
        }
        match &meta.beside {
            Some(copy) => {
                let exists = match targets.get(&meta.target) {
                    Some(transport) => transport.exists(&copy.to_string_lossy()),
                    None => {
                        return Some(format!("`{}` is no longer a host: its snapshot cannot be restored", meta.target));
                    }
                };
                match exists {
                    Ok(true) => None,
                    Ok(false) => Some(format!(
                        "the snapshot of `{shown}` is gone: the file held a secret, so its copy was removed when the run ended"
                    )),
                    Err(error) => Some(format!(
                        "the snapshot of `{shown}` cannot be looked at: {}",
                        crate::document::io_reason(&error)
                    )),
                }
            }
            None if !self.content_path(key).is_file() => Some(format!("the snapshot of `{shown}` is gone")),
            None => None,
        }
    }

    /// Every file this run's snapshots are of: where, and the step that took each.
    pub(crate) fn files(&self) -> Vec<SnapshotFile> {
        let mut files = Vec::new();
        for entry in std::fs::read_dir(&self.dir).into_iter().flatten().flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            let Some(stem) = name.strip_suffix(".meta.json") else { continue };
            let Ok(bytes) = read_private(&entry.path()) else { continue };
            if let Ok(meta) = serde_json::from_slice::<Meta>(&bytes) {
                let key = meta.key.unwrap_or_else(|| stem.to_owned());
                let step = key.split('@').next().unwrap_or_default().to_owned();
                files.push(SnapshotFile { step, target: meta.target, path: meta.file.path });
            }
        }
        files.sort();
        files
    }

    /// Removes the copies kept beside files (they hold secrets): the run ended.
    pub(crate) fn discard_beside_copies(&self, targets: &crate::transport::Targets) {
        for entry in std::fs::read_dir(&self.dir).into_iter().flatten().flatten() {
            let path = entry.path();
            if !path.to_string_lossy().ends_with(".meta.json") {
                continue;
            }
            let Ok(bytes) = read_private(&path) else { continue };
            if let Ok(Meta { beside: Some(copy), target, .. }) = serde_json::from_slice::<Meta>(&bytes)
                && let Some(transport) = targets.get(&target)
            {
                let _ = transport.remove_file(&copy.to_string_lossy());
            }
        }
    }
}

/// A step id as a file name: ids are `[a-z0-9_.-]`, but keep it short and safe whatever comes.
fn file_name(step: &str) -> String {
    let clean: String =
        step.chars().map(|c| if c.is_ascii_alphanumeric() || "-_.".contains(c) { c } else { '_' }).collect();
    if clean.len() <= 100 && clean == step {
        clean
    } else {
        let short: String = clean.chars().take(60).collect();
        format!("{short}-{}", &crate::diagnostic::hex(&<sha2::Sha256 as sha2::Digest>::digest(step.as_bytes()))[..16])
    }
}

/// Where the old content of a secret-holding file waits: beside it, hidden.
fn beside_path(path: &Path, run_id: &str, step: &str) -> PathBuf {
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    parent_of(path).join(format!(".{name}.upshift-{run_id}-{}", file_name(step)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn snapshots_restore_content_and_mode_and_absence() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("config.json");
        std::fs::write(&file, "old").unwrap();
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o640)).unwrap();
        let snapshots = Snapshots::new(dir.path().join("run.files"), "r1");
        let local = crate::transport::Local;
        let path = file.to_string_lossy().into_owned();
        snapshots.take("edit", &local, &path, false).unwrap();
        replace_content(&file, b"new", None).unwrap();
        assert_eq!(std::fs::metadata(&file).unwrap().mode() & 0o777, 0o640, "a write keeps the mode");
        snapshots.take("edit", &local, &path, false).unwrap(); // a second take keeps the first
        snapshots.restore("edit", &local).unwrap();
        assert_eq!(std::fs::read_to_string(&file).unwrap(), "old");
        let created = dir.path().join("new.conf");
        snapshots.take("template", &local, &created.to_string_lossy(), false).unwrap();
        std::fs::write(&created, "x").unwrap();
        snapshots.restore("template", &local).unwrap();
        assert!(!created.exists());
    }

    #[test]
    fn a_symlink_stays_a_symlink_and_hard_links_stay_linked() {
        let dir = tempfile::tempdir().unwrap();
        let real = dir.path().join("real.json");
        std::fs::write(&real, "old").unwrap();
        let link = dir.path().join("link.json");
        std::os::unix::fs::symlink("real.json", &link).unwrap();
        let snapshots = Snapshots::new(dir.path().join("run.files"), "r1");
        let local = crate::transport::Local;
        snapshots.take("edit", &local, &link.to_string_lossy(), false).unwrap();
        replace_content(&link, b"new", None).unwrap();
        assert!(std::fs::symlink_metadata(&link).unwrap().file_type().is_symlink());
        assert_eq!(std::fs::read_to_string(&real).unwrap(), "new");
        snapshots.restore("edit", &local).unwrap();
        assert!(std::fs::symlink_metadata(&link).unwrap().file_type().is_symlink());
        assert_eq!(std::fs::read_to_string(&real).unwrap(), "old");

        let other = dir.path().join("hard.json");
        std::fs::hard_link(&real, &other).unwrap();
        replace_content(&real, b"both", None).unwrap();
        assert_eq!(std::fs::read_to_string(&other).unwrap(), "both");
    }

    #[test]
    fn a_secret_file_is_snapshotted_beside_itself() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("auth.json");
        std::fs::write(&file, "token-1").unwrap();
        let state = dir.path().join("state/run.files");
        let snapshots = Snapshots::new(state.clone(), "r1");
        let local = crate::transport::Local;
        snapshots.take("auth", &local, &file.to_string_lossy(), true).unwrap();
        for entry in std::fs::read_dir(&state).unwrap() {
            let content = std::fs::read_to_string(entry.unwrap().path()).unwrap();
            assert!(!content.contains("token-1"), "the state dir holds the old content");
        }
        replace_content(&file, b"token-2", None).unwrap();
        snapshots.restore("auth", &local).unwrap();
        assert_eq!(std::fs::read_to_string(&file).unwrap(), "token-1");
        snapshots.discard_beside_copies(&crate::transport::Targets::local());
        let left: Vec<_> = std::fs::read_dir(dir.path()).unwrap().flatten().map(|e| e.file_name()).collect();
        assert_eq!(left.len(), 2, "only auth.json and state/ remain: {left:?}");
    }

    #[test]
    fn documents_must_be_regular_files_of_bounded_size() {
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("fifo");
        rustix::fs::mknodat(
            rustix::fs::CWD,
            &fifo,
            rustix::fs::FileType::Fifo,
            rustix::fs::Mode::from_raw_mode(0o600),
            0,
        )
        .unwrap();
        assert!(read_document(&fifo, DOCUMENT_LIMIT).is_err());
        assert!(read_document(Path::new("/dev/zero"), DOCUMENT_LIMIT).is_err());
        let big = dir.path().join("big");
        std::fs::write(&big, vec![b'x'; 2048]).unwrap();
        assert!(read_document(&big, 1024).is_err());
        assert_eq!(read_document(&big, 4096).unwrap().len(), 2048);
    }
}
