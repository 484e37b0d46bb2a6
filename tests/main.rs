//! The integration suite: drives the real `upshift` binary in temporary
//! sandboxes (own working directory, own state dir, `NO_COLOR`, a fixed
//! `PATH`, a fixed clock) and compares whole outputs with insta snapshots.

use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::{Duration, Instant};

use assert_cmd::cargo::CommandCargoExt;

mod attack;
mod crash;
mod e2e;
mod e2e_django;
mod e2e_fleet;
mod engine;
mod examples;
mod fleet;
mod invalid;
mod language;
mod plan;
mod promises;
mod properties;
mod quoting;
mod saved;
mod templates;
mod ux;
mod variables;
mod versions;

/// The repository root.
fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// A temporary directory to run `upshift` in.
pub(crate) struct Sandbox {
    dir: tempfile::TempDir,
    env: Vec<(String, String)>,
    path: Vec<PathBuf>,
}

/// What one run of the binary left.
pub(crate) struct Run {
    pub(crate) code: i32,
    pub(crate) stdout: String,
    pub(crate) stderr: String,
}

impl Sandbox {
    pub(crate) fn new() -> Sandbox {
        Sandbox { dir: tempfile::tempdir().expect("a temp dir"), env: Vec::new(), path: Vec::new() }
    }

    pub(crate) fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Writes a file (creating its directories) and returns its path.
    pub(crate) fn write(&self, relative: &str, content: &str) -> PathBuf {
        let path = self.dir.path().join(relative);
        std::fs::create_dir_all(path.parent().expect("a parent")).expect("mkdir");
        std::fs::write(&path, content).expect("write");
        path
    }

    pub(crate) fn read(&self, relative: &str) -> String {
        std::fs::read_to_string(self.dir.path().join(relative)).expect("read")
    }

    pub(crate) fn env(mut self, key: &str, value: &str) -> Sandbox {
        self.env.push((key.to_owned(), value.to_owned()));
        self
    }

    /// Puts a directory in front of the fixed `PATH`.
    pub(crate) fn with_path(mut self, dir: PathBuf) -> Sandbox {
        self.path.push(dir);
        self
    }

    pub(crate) fn run(&self, args: &[&str]) -> Run {
        self.run_in(self.dir.path(), args)
    }

    pub(crate) fn run_in(&self, cwd: &Path, args: &[&str]) -> Run {
        self.run_with(cwd, &[], args)
    }

    /// Runs with more environment variables (they win over the sandbox's).
    pub(crate) fn run_env(&self, env: &[(&str, &str)], args: &[&str]) -> Run {
        self.run_with(self.dir.path(), env, args)
    }

    fn run_with(&self, cwd: &Path, extra: &[(&str, &str)], args: &[&str]) -> Run {
        let mut command = std::process::Command::cargo_bin("upshift").expect("the binary is built");
        let mut path: Vec<String> = self.path.iter().map(|p| p.display().to_string()).collect();
        path.extend(["/usr/local/bin", "/usr/bin", "/bin"].map(str::to_owned));
        command
            .args(args)
            .current_dir(cwd)
            .env_clear()
            .env("PATH", path.join(":"))
            .env("HOME", self.dir.path())
            .env("NO_COLOR", "1")
            .env("UPSHIFT_STATE_DIR", self.dir.path().join(".state"))
            .env("UPSHIFT_NOW", "2026-11-24T12:00:00Z");
        for (key, value) in &self.env {
            command.env(key, value);
        }
        for (key, value) in extra {
            command.env(key, value);
        }
        let Output { status, stdout, stderr } = command.output().expect("upshift runs");
        Run {
            code: status.code().unwrap_or(-1),
            stdout: String::from_utf8(stdout).expect("utf-8 stdout"),
            stderr: String::from_utf8(stderr).expect("utf-8 stderr"),
        }
    }

    /// Replaces the sandbox's path in output with `[SANDBOX]`.
    pub(crate) fn scrub(&self, text: &str) -> String {
        let real = self.dir.path().canonicalize().unwrap_or_else(|_| self.dir.path().to_path_buf());
        text.replace(&real.display().to_string(), "[SANDBOX]")
            .replace(&self.dir.path().display().to_string(), "[SANDBOX]")
    }
}

impl Run {
    #[track_caller]
    pub(crate) fn code(&self, expected: i32) -> &Run {
        assert_eq!(
            self.code, expected,
            "exit code {} (expected {expected})\n--- stdout\n{}\n--- stderr\n{}",
            self.code, self.stdout, self.stderr
        );
        self
    }
}

/// Waits until no process works in `dir` (orphans of a killed run).
pub(crate) fn wait_for_no_process_in(dir: &Path) {
    let dir = dir.canonicalize().unwrap();
    let until = Instant::now() + Duration::from_secs(60);
    loop {
        let busy = std::fs::read_dir("/proc")
            .unwrap()
            .flatten()
            .any(|entry| std::fs::read_link(entry.path().join("cwd")).is_ok_and(|cwd| cwd.starts_with(&dir)));
        if !busy {
            return;
        }
        assert!(Instant::now() < until, "processes still run in {}", dir.display());
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Kills every process working in `dir`: what a killed run left behind.
pub(crate) fn kill_processes_in(dir: &Path) {
    let dir = dir.canonicalize().unwrap();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        if std::fs::read_link(entry.path().join("cwd")).is_ok_and(|cwd| cwd.starts_with(&dir)) {
            let pid = entry.file_name().to_string_lossy().into_owned();
            let _ = std::process::Command::new("kill").args(["-s", "KILL", &pid]).status();
        }
    }
    wait_for_no_process_in(&dir);
}

/// Runs `upshift` from the repository root (for paths like `playbooks/…`).
pub(crate) fn in_repo(sandbox: &Sandbox, args: &[&str]) -> Run {
    sandbox.run_in(&root(), args)
}

#[test]
fn help_is_stable() {
    let sandbox = Sandbox::new();
    for command in
        ["validate", "plan", "run", "resume", "rollback", "status", "diff", "schema", "init", "completions", "man"]
    {
        let run = sandbox.run(&[command, "--help"]);
        run.code(0);
        insta::assert_snapshot!(format!("help-{command}"), run.stdout);
    }
    let run = sandbox.run(&["--help"]);
    run.code(0);
    insta::assert_snapshot!("help", run.stdout);
}

#[test]
fn schema_matches_the_committed_file() {
    let sandbox = Sandbox::new();
    let run = sandbox.run(&["schema"]);
    run.code(0);
    let committed = std::fs::read_to_string(root().join("schema/playbook.schema.json")).expect("schema file");
    assert_eq!(run.stdout, committed, "regenerate with `upshift schema > schema/playbook.schema.json`");
    let run = sandbox.run(&["schema", "--environment"]);
    let committed = std::fs::read_to_string(root().join("schema/environment.schema.json")).expect("schema file");
    assert_eq!(
        run.stdout, committed,
        "regenerate with `upshift schema --environment > schema/environment.schema.json`"
    );
    // The schema is real JSON Schema that names every step field.
    let schema: serde_json::Value = serde_json::from_str(&committed).expect("json");
    assert_eq!(schema["title"], "upshift environment");
}
