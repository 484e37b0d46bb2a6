//! This machine as a transport: commands through `process`, files through `files`.

use std::path::PathBuf;

use super::Transport;
use crate::files::FileState;
use crate::process::{Alive, CommandSpec, Executor, Output, Watch};

/// This machine.
#[derive(Debug, Default)]
pub(crate) struct Local;

/// A run-time path made absolute against the directory upshift was started in.
fn resolve(path: &str) -> PathBuf {
    crate::plan::resolve(path)
}

impl Transport for Local {
    fn name(&self) -> &str {
        "local"
    }

    fn run(&self, spec: &CommandSpec, watch: &mut dyn FnMut(Watch<'_>)) -> std::io::Result<Output> {
        crate::process::Local.run_watched(spec, watch)
    }

    fn read_file(&self, path: &str) -> std::io::Result<(Option<Vec<u8>>, FileState)> {
        let state = FileState::of(&resolve(path))?;
        let content = if state.existed { Some(std::fs::read(&state.path)?) } else { None };
        Ok((content, state))
    }

    fn write_file(&self, path: &str, content: &[u8], mode: Option<u32>) -> std::io::Result<()> {
        crate::files::replace_content(&resolve(path), content, mode)
    }

    fn restore_file(&self, state: &FileState, content: &[u8]) -> std::io::Result<()> {
        crate::files::write_as(state, content)
    }

    fn remove_file(&self, path: &str) -> std::io::Result<()> {
        let path = resolve(path);
        match std::fs::remove_file(&path) {
            Ok(()) => crate::journal::sync_dir(path.parent().unwrap_or(std::path::Path::new("."))),
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(error) => Err(error),
        }
    }

    fn exists(&self, path: &str) -> std::io::Result<bool> {
        Ok(resolve(path).exists())
    }

    fn leftovers(&self, mark: &str) -> std::io::Result<Vec<Alive>> {
        let mut alive = Vec::new();
        for (_, pgid, start) in crate::process::with_environment(crate::engine::STEP_MARK, mark) {
            for member in crate::process::group_members(pgid, start) {
                if !alive.contains(&member) {
                    alive.push(member);
                }
            }
        }
        Ok(alive)
    }

    fn stop_leftovers(&self, mark: &str) -> std::io::Result<()> {
        for (_, pgid, start) in crate::process::with_environment(crate::engine::STEP_MARK, mark) {
            crate::process::stop_group(pgid, start);
        }
        Ok(())
    }
}
