//! Durable file changes for `edit` and `template` steps: atomic writes that
//! keep a file's mode (temp file in the same directory, fsync, rename, fsync
//! the directory), and the snapshots taken just before a step changes a file,
//! from which its rollback restores it.

use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// Writes `content` to `path` atomically with `mode`.
pub(crate) fn write_atomic(path: &Path, content: &[u8], mode: u32) -> std::io::Result<()> {
    let dir = path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let mut temp = tempfile::Builder::new().prefix(".upshift-").tempfile_in(dir)?;
    temp.write_all(content)?;
    temp.as_file().set_permissions(std::fs::Permissions::from_mode(mode))?;
    temp.as_file().sync_all()?;
    temp.persist(path).map_err(|error| error.error)?;
    crate::journal::sync_dir(dir)
}

/// The mode of an existing file.
pub(crate) fn mode_of(path: &Path) -> Option<u32> {
    std::fs::metadata(path).ok().map(|m| m.permissions().mode() & 0o7777)
}

/// What a file was before a step changed it.
#[derive(Debug, Serialize, Deserialize)]
struct Meta {
    path: PathBuf,
    existed: bool,
    mode: Option<u32>,
}

/// The snapshots of one run: `RUN.files/STEP.{meta,content}`.
#[derive(Debug, Clone)]
pub(crate) struct Snapshots {
    dir: PathBuf,
}

impl Snapshots {
    pub(crate) fn new(dir: PathBuf) -> Snapshots {
        Snapshots { dir }
    }

    fn meta_path(&self, step: &str) -> PathBuf {
        self.dir.join(format!("{step}.meta.json"))
    }

    /// Records `path` as it is now, unless this step already has a snapshot
    /// (a re-run after a crash must keep the original).
    pub(crate) fn take(&self, step: &str, path: &Path) -> std::io::Result<()> {
        if self.meta_path(step).exists() {
            return Ok(());
        }
        crate::journal::create_private_dir(&self.dir)?;
        let existed = path.exists();
        if existed {
            write_atomic(&self.dir.join(format!("{step}.content")), &std::fs::read(path)?, 0o600)?;
        }
        let meta = Meta { path: path.to_owned(), existed, mode: mode_of(path) };
        write_atomic(&self.meta_path(step), &serde_json::to_vec(&meta).map_err(std::io::Error::other)?, 0o600)
    }

    /// Puts the file back as the snapshot recorded it. Returns the path.
    pub(crate) fn restore(&self, step: &str) -> std::io::Result<PathBuf> {
        let meta: Meta =
            serde_json::from_slice(&std::fs::read(self.meta_path(step))?).map_err(std::io::Error::other)?;
        if meta.existed {
            let content = std::fs::read(self.dir.join(format!("{step}.content")))?;
            write_atomic(&meta.path, &content, meta.mode.unwrap_or(0o644))?;
        } else if meta.path.exists() {
            std::fs::remove_file(&meta.path)?;
        }
        Ok(meta.path)
    }
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
        let snapshots = Snapshots::new(dir.path().join("run.files"));
        snapshots.take("edit", &file).unwrap();
        write_atomic(&file, b"new", mode_of(&file).unwrap()).unwrap();
        assert_eq!(mode_of(&file), Some(0o640), "an atomic write keeps the mode");
        snapshots.take("edit", &file).unwrap(); // a second take keeps the first
        snapshots.restore("edit").unwrap();
        assert_eq!(std::fs::read_to_string(&file).unwrap(), "old");
        let created = dir.path().join("new.conf");
        snapshots.take("template", &created).unwrap();
        std::fs::write(&created, "x").unwrap();
        snapshots.restore("template").unwrap();
        assert!(!created.exists());
    }
}
