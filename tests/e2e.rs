//! End to end on a real stack: PHP, Composer and MariaDB from Debian's
//! packages, the Acme store (`tests/e2e/store`, the application `acme/store`
//! published in six versions in local path repositories, copied per store so
//! a scenario can publish one more; Packagist off), and
//! `playbooks/demo-store/upgrade.toml`. Every scenario asserts real state:
//! installed versions, database contents and dumps, files, the journal.
//!
//! One MariaDB serves every scenario (a database each) and is stopped at the end;
//! `e2e_fleet` upgrades the store over three hosts with it.

use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use assert_cmd::cargo::CommandCargoExt;

use crate::{Run, Sandbox, root};

pub(crate) const TOKEN: &str = "repo-token-9d1c7e5a-canary";

/// A private MariaDB, stopped when dropped.
pub(crate) struct Db {
    dir: tempfile::TempDir,
    pub(crate) socket: PathBuf,
}

impl Db {
    fn start() -> Db {
        let dir = tempfile::tempdir().unwrap();
        let output = std::process::Command::new(root().join("tests/e2e/mariadb"))
            .args(["start", &dir.path().display().to_string()])
            .output()
            .expect("tests/e2e/mariadb runs (scripts/setup installs MariaDB)");
        assert!(output.status.success(), "MariaDB did not start: {}", String::from_utf8_lossy(&output.stderr));
        let socket = PathBuf::from(String::from_utf8(output.stdout).unwrap().trim());
        Db { dir, socket }
    }

    pub(crate) fn sql(&self, database: &str, sql: &str) -> String {
        let output = std::process::Command::new("mariadb")
            .args([&format!("--socket={}", self.socket.display()), "-uroot", "-N", "-e", sql, database])
            .output()
            .unwrap();
        assert!(output.status.success(), "{sql}: {}", String::from_utf8_lossy(&output.stderr));
        String::from_utf8(output.stdout).unwrap()
    }

    pub(crate) fn dump(&self, database: &str) -> String {
        let output = std::process::Command::new("mariadb-dump")
            .args([&format!("--socket={}", self.socket.display()), "-uroot", "--skip-dump-date", database])
            .output()
            .unwrap();
        assert!(output.status.success());
        String::from_utf8(output.stdout).unwrap()
    }
}

impl Drop for Db {
    fn drop(&mut self) {
        let _ = std::process::Command::new(root().join("tests/e2e/mariadb"))
            .args(["stop", &self.dir.path().display().to_string()])
            .status();
    }
}

/// One store: a Composer project at 1.0.0 with its own database.
pub(crate) struct Store<'a> {
    db: &'a Db,
    pub(crate) sandbox: Sandbox,
    pub(crate) root: PathBuf,
    pub(crate) name: String,
}

pub(crate) fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let path = entry.unwrap().path();
        let target = to.join(path.file_name().unwrap());
        if path.is_dir() {
            copy_dir(&path, &target);
        } else {
            std::fs::copy(&path, &target).unwrap();
        }
    }
}

impl<'a> Store<'a> {
    pub(crate) fn new(db: &'a Db, name: &str) -> Store<'a> {
        let sandbox = Sandbox::new();
        let home = sandbox.path().join("home");
        let sandbox = sandbox
            .env("COMPOSER_ALLOW_SUPERUSER", "1")
            .env("COMPOSER_DISABLE_NETWORK", "1")
            .env("COMPOSER_HOME", &home.join("composer").display().to_string())
            .env("STORE_REPO_TOKEN", TOKEN);
        let root_dir = sandbox.path().join("store");
        copy_dir(&root().join("tests/e2e/store"), &root_dir);
        // The store's own path repositories: `publish` adds a version to them.
        copy_dir(&root().join("tests/e2e/packages"), &sandbox.path().join("packages"));
        let packages = sandbox.path().join("packages").display().to_string();
        let composer =
            std::fs::read_to_string(root_dir.join("composer.json.in")).unwrap().replace("@PACKAGES@", &packages);
        std::fs::write(root_dir.join("composer.json"), composer).unwrap();
        std::fs::remove_file(root_dir.join("composer.json.in")).unwrap();
        let env = std::fs::read_to_string(root_dir.join("app/etc/env.php.in"))
            .unwrap()
            .replace("@SOCKET@", &db.socket.display().to_string())
            .replace("@DB@", name);
        std::fs::write(root_dir.join("app/etc/env.php"), env).unwrap();
        std::fs::remove_file(root_dir.join("app/etc/env.php.in")).unwrap();
        std::fs::create_dir_all(root_dir.join("var/cache")).unwrap();
        std::fs::write(root_dir.join("var/cache/page.html"), "cached").unwrap();
        db.sql("mysql", &format!("CREATE DATABASE {name}"));
        let store = Store { db, sandbox, root: root_dir, name: name.to_owned() };
        store.shell(
            "composer update --no-interaction --quiet && php bin/store setup:install && php bin/store indexer:reindex && php bin/store cron:install",
        );
        assert_eq!(store.version(), "1.0.0");
        store
    }

    /// Runs a shell command in the store with the sandbox's environment.
    fn shell(&self, script: &str) -> String {
        self.shell_in(&self.root, script)
    }

    /// Runs a shell command in `dir` (a copy of the store) with the sandbox's environment.
    pub(crate) fn shell_in(&self, dir: &Path, script: &str) -> String {
        let mut command = std::process::Command::new("sh");
        command.args(["-c", script]).current_dir(dir).env_clear().env("PATH", "/usr/local/bin:/usr/bin:/bin");
        for (key, value) in &self.sandbox.env {
            command.env(key, value);
        }
        let output = command.output().unwrap();
        assert!(output.status.success(), "{script}: {}", String::from_utf8_lossy(&output.stderr));
        String::from_utf8(output.stdout).unwrap()
    }

    /// Publishes acme/store `version` (1.1.0's code under another number) in the store's repositories.
    fn publish(&self, version: &str) {
        let packages = self.sandbox.path().join("packages");
        let dir = packages.join(format!("acme-store-{version}"));
        copy_dir(&packages.join("acme-store-1.1.0"), &dir);
        for file in ["composer.json", "src/Release.php"] {
            let text = std::fs::read_to_string(dir.join(file)).unwrap().replace("1.1.0", version);
            std::fs::write(dir.join(file), text).unwrap();
        }
    }

    fn version(&self) -> String {
        self.shell("php bin/store --version").trim().trim_start_matches("Acme Store CLI ").to_owned()
    }

    pub(crate) fn schema(&self) -> String {
        self.db.sql(&self.name, "SELECT version FROM store_schema").trim().to_owned()
    }

    fn args(&self, command: &str, extra: &[&str]) -> Vec<String> {
        let mut args = vec![
            command.to_owned(),
            root().join("playbooks/demo-store/upgrade.toml").display().to_string(),
            "--var".to_owned(),
            format!("root={}", self.root.display()),
            "--var".to_owned(),
            format!("db_name={}", self.name),
            "--var".to_owned(),
            format!("db_socket={}", self.db.socket.display()),
        ];
        args.extend(extra.iter().map(|s| s.to_string()));
        args
    }

    fn upshift(&self, command: &str, extra: &[&str]) -> Run {
        let args = self.args(command, extra);
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let run = self.sandbox.run(&args);
        assert!(
            !run.stdout.contains(TOKEN) && !run.stderr.contains(TOKEN),
            "the token leaked:\n{}\n{}",
            run.stdout,
            run.stderr
        );
        run
    }

    fn spawn(&self, command: &str, extra: &[&str], env: &[(&str, &str)]) -> Child {
        let mut process = std::process::Command::cargo_bin("upshift").unwrap();
        process
            .args(self.args(command, extra))
            .current_dir(self.sandbox.path())
            .env_clear()
            .env("PATH", "/usr/local/bin:/usr/bin:/bin")
            .env("NO_COLOR", "1")
            .env("UPSHIFT_STATE_DIR", self.sandbox.path().join(".state"))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        for (key, value) in &self.sandbox.env {
            process.env(key, value);
        }
        for (key, value) in env {
            process.env(key, value);
        }
        process.spawn().unwrap()
    }

    /// Every file of the store (vendor included) with its content.
    fn tree(&self, sub: &str) -> Vec<(PathBuf, Vec<u8>)> {
        crate::examples::snapshot_tree(&self.root.join(sub))
    }

    pub(crate) fn journal(&self) -> String {
        crate::examples::snapshot_tree(&self.sandbox.path().join(".state/runs"))
            .into_iter()
            .filter(|(p, _)| p.extension().is_some_and(|e| e == "jsonl"))
            .map(|(_, c)| String::from_utf8(c).unwrap())
            .collect()
    }

    pub(crate) fn assert_no_token_in_state(&self) {
        for (path, content) in crate::examples::snapshot_tree(&self.sandbox.path().join(".state")) {
            assert!(!String::from_utf8_lossy(&content).contains(TOKEN), "{} holds the token", path.display());
        }
    }
}

fn wait_for(path: &Path) {
    let until = Instant::now() + Duration::from_secs(60);
    while !path.exists() {
        assert!(Instant::now() < until, "{} never appeared", path.display());
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn store_upgrades_end_to_end() {
    let db = Db::start();
    happy_path(&db);
    pinned_patch_level(&db);
    failure_after_setup_upgrade_rolls_everything_back(&db);
    killed_during_composer_update_then_resumed(&db);
    plan_changes_nothing(&db);
    a_second_run_exits_5(&db);
    a_saved_plan_runs_the_reviewed_version_then_is_undone(&db);
    crate::e2e_fleet::over_three_hosts(&db);
}

/// a. 1.0.0 → 1.1.0 (target `~1.1`).
fn happy_path(db: &Db) {
    let store = Store::new(db, "store_a");
    let run = store.upshift("run", &[]);
    run.code(0);
    assert_eq!(store.version(), "1.1.0");
    assert_eq!(store.schema(), "1.1.0");
    assert!(store.shell("cat composer.json").contains("\"acme/store\": \"1.1.0\""));
    // The reindex rebuilt the index from the catalog, prices included.
    assert_eq!(db.sql("store_a", "SELECT COUNT(*), SUM(price_cents) FROM product_index").trim(), "3\t1090");
    assert!(!store.root.join("var/.maintenance.flag").exists(), "maintenance is off");
    assert!(!store.root.join("auth.json").exists(), "auth.json is gone");
    assert!(store.root.join("var/crontab").exists(), "cron is back");
    assert!(!store.root.join("var/cache/page.html").exists(), "the cache was flushed");
    store.assert_no_token_in_state();
}

/// b. `--to 1.0.0-p2`: a patch level; the cache is flushed, the reindex skipped.
fn pinned_patch_level(db: &Db) {
    let store = Store::new(db, "store_b");
    let run = store.upshift("run", &["--to", "1.0.0-p2"]);
    run.code(2);
    assert!(run.stderr.contains("`--to 1.0.0-p2` does not satisfy the target `~1.1`"), "{}", run.stderr);
    let plan = store.upshift("plan", &["--to", "1.0.0-p2", "--force-version"]);
    plan.code(0);
    assert!(plan.stdout.contains("selected     1.0.0-p2: pinned with `--to 1.0.0-p2`"), "{}", plan.stdout);
    assert!(plan.stdout.contains("change       patch"), "{}", plan.stdout);
    assert!(plan.stdout.contains("skipped: `version.change in ['major', 'minor']` is false"), "{}", plan.stdout);
    let run = store.upshift("run", &["--to", "1.0.0-p2", "--force-version"]);
    run.code(0);
    assert_eq!(store.version(), "1.0.0-p2");
    assert_eq!(store.schema(), "1.0.0-p2");
    assert!(run.stderr.contains("Skipped reindex"), "{}", run.stderr);
    assert!(!store.root.join("var/cache/page.html").exists(), "the cache was flushed");
    // 1.0.0-p2 trims names in the catalog; the index was not rebuilt.
    assert_eq!(db.sql("store_b", "SELECT name FROM products WHERE sku = 'T-1'").trim(), "Green tea");
    assert_eq!(
        db.sql("store_b", "SELECT product_name FROM product_index WHERE product_id = 1").trim_end_matches('\n'),
        " Green tea "
    );
    store.assert_no_token_in_state();
}

/// c. A failure right after `setup:upgrade`: the database, composer.json,
/// composer.lock and vendor/ are back as they were; maintenance is off; exit 1.
fn failure_after_setup_upgrade_rolls_everything_back(db: &Db) {
    let store = Store::new(db, "store_c");
    let dump = db.dump("store_c");
    let manifests = (store.shell("cat composer.json"), store.shell("cat composer.lock"));
    let vendor = store.tree("vendor");
    let run = store.upshift("run", &["--var", "fail_after_upgrade=true"]);
    run.code(1);
    assert!(
        run.stderr.contains("Failed injected-failure: exit code 1: injected failure after setup:upgrade"),
        "{}",
        run.stderr
    );
    assert!(run.stderr.contains("`setup-upgrade` cannot be undone"), "{}", run.stderr);
    assert_eq!(db.dump("store_c"), dump, "the database is restored byte for byte");
    assert_eq!((store.shell("cat composer.json"), store.shell("cat composer.lock")), manifests);
    assert_eq!(store.tree("vendor"), vendor, "vendor/ is reinstalled as it was");
    assert_eq!(store.version(), "1.0.0");
    assert!(!store.root.join("var/.maintenance.flag").exists(), "maintenance is off");
    assert!(!store.root.join("auth.json").exists());
    store.assert_no_token_in_state();
}

/// d. SIGKILL during `composer update`, then `resume`: it completes, and no
/// step before it ran twice.
fn killed_during_composer_update_then_resumed(db: &Db) {
    let store = Store::new(db, "store_d");
    let child = store.spawn("run", &[], &[("STORE_COMPOSER_DELAY", "2")]);
    wait_for(&store.root.join("var/composer-updating"));
    let status = std::process::Command::new("kill").args(["-s", "KILL", &child.id().to_string()]).status().unwrap();
    assert!(status.success());
    let _ = child.wait_with_output();
    crate::wait_for_no_process_in(&store.root);
    let status = store.sandbox.run(&["status"]);
    assert!(status.stdout.contains("unfinished: stopped during `composer-update`"), "{}", status.stdout);
    let resume = store.sandbox.run(&["resume"]);
    resume.code(0);
    assert!(
        resume.stderr.contains("`composer-update` was interrupted; running it again (it is idempotent)"),
        "{}",
        resume.stderr
    );
    assert_eq!(store.version(), "1.1.0");
    assert_eq!(store.schema(), "1.1.0");
    let journal = store.journal();
    for step in
        ["maintenance-state", "maintenance-on", "cron-remove", "backup-db", "backup-code", "auth", "require-version"]
    {
        let started = journal.matches(&format!("\"type\":\"started\",\"step\":\"{step}\",\"phase\":\"step\"")).count();
        assert_eq!(started, 1, "`{step}` started {started} times");
    }
    assert_eq!(journal.matches("\"type\":\"started\",\"step\":\"composer-update\"").count(), 2);
    assert!(!store.root.join("auth.json").exists());
    store.assert_no_token_in_state();
}

/// e. `plan` changes nothing, and shows the composer.json diff, the candidates
/// and the readiness results.
fn plan_changes_nothing(db: &Db) {
    let store = Store::new(db, "store_e");
    let files = store.tree("");
    let dump = db.dump("store_e");
    let plan = store.upshift("plan", &[]);
    plan.code(0);
    assert_eq!(store.tree(""), files, "plan changed a file");
    assert_eq!(db.dump("store_e"), dump, "plan changed the database");
    let out = &plan.stdout;
    assert!(out.contains("candidates   1.1.0\n"), "{out}");
    assert!(out.contains("ok     Database schema is up to date: All modules are up to date."), "{out}");
    assert!(out.contains("ok     Database reachable: "), "{out}");
    assert!(out.contains("-        \"acme/store\": \"1.0.0\"\n        | +        \"acme/store\": \"1.1.0\""), "{out}");
    assert!(
        out.contains("the new content holds a secret: the file is not shown"),
        "the auth.json diff is not shown: {out}"
    );
    assert!(!out.contains("packages.acme.invalid"), "no line of auth.json is shown: {out}");
    for format in ["json", "markdown"] {
        store.upshift("plan", &["--format", format]).code(0);
    }
    // The plan is the reviewed contract: snapshot it, with this machine's
    // paths, versions and free space taken out.
    let scrubbed = store
        .sandbox
        .scrub(out)
        .replace(&db.socket.display().to_string(), "[SOCKET]")
        .replace(&root().display().to_string(), "[REPO]");
    let scrubbed = regex::Regex::new(r"(PHP version|Database reachable): \d+\.\d+\.\d+")
        .unwrap()
        .replace_all(&scrubbed, "$1: [VERSION]")
        .into_owned();
    let scrubbed =
        regex::Regex::new(r"\d+ \(at least 102400\)").unwrap().replace_all(&scrubbed, "[FREE] (at least 102400)");
    insta::assert_snapshot!("demo_store_plan", scrubbed);
}

/// f. A second `run` while one is running exits 5.
fn a_second_run_exits_5(db: &Db) {
    let store = Store::new(db, "store_f");
    let child = store.spawn("run", &[], &[("STORE_SETUP_DELAY", "3")]);
    let until = Instant::now() + Duration::from_secs(60);
    while !store.journal().contains("\"step\":\"setup-upgrade\"") {
        assert!(Instant::now() < until, "the first run never reached setup-upgrade");
        std::thread::sleep(Duration::from_millis(20));
    }
    let second = store.upshift("run", &[]);
    second.code(5);
    assert!(
        second.stderr.contains(&format!("another upshift holds the lock: pid {}", child.id())),
        "{}",
        second.stderr
    );
    let output = child.wait_with_output().unwrap();
    assert_eq!(output.status.code(), Some(0), "{}", String::from_utf8_lossy(&output.stderr));
    assert!(!String::from_utf8_lossy(&output.stderr).contains(TOKEN));
    assert_eq!(store.version(), "1.1.0");
    store.assert_no_token_in_state();
}

/// g. A plan saved at 1.0.0 with 1.1.0 available; then 1.1.1 is published.
/// A changed composer.json makes `run --plan` refuse, naming the file, with
/// nothing changed; put back, `run --plan` installs the reviewed 1.1.0 and
/// notes 1.1.1; the plan runs once. An hour later the upgrade is undone.
fn a_saved_plan_runs_the_reviewed_version_then_is_undone(db: &Db) {
    let store = Store::new(db, "store_g");
    let dump = db.dump("store_g");
    let manifests = (store.shell("cat composer.json"), store.shell("cat composer.lock"));
    let plan = store.upshift("plan", &["--out", "plan.json", "--format", "markdown"]);
    plan.code(0);
    assert!(plan.stdout.contains("`1.0.0` → **`1.1.0`**"), "{}", plan.stdout);
    assert!(plan.stdout.contains("> Saved as plan `"), "{}", plan.stdout);
    let saved = store.sandbox.read("plan.json");
    assert!(!saved.contains(TOKEN), "the plan file holds the token");
    let json: serde_json::Value = serde_json::from_str(&saved).unwrap();
    assert_eq!(json["version"]["selected"], "1.1.0");
    assert!(
        json["files"].as_array().unwrap().iter().any(|f| f["path"].as_str().unwrap().ends_with("store/composer.json"))
    );

    store.publish("1.1.1");
    let available = store.shell("composer show acme/store --all --format=json");
    assert!(available.contains("\"1.1.1\""), "1.1.1 is published: {available}");
    let check = store.sandbox.run(&["plan", "--check", "plan.json"]);
    check.code(0);
    assert!(
        check.stderr.contains("note: 1.1.1 is available; this plan installs the reviewed 1.1.0"),
        "{}",
        check.stderr
    );

    // composer.json changed since the review: refused, nothing changed.
    let changed = manifests.0.replace("the root project", "the root project (edited)");
    std::fs::write(store.root.join("composer.json"), &changed).unwrap();
    let run = store.sandbox.run(&["run", "--plan", "plan.json"]);
    run.code(3);
    assert!(run.stderr.contains("no longer matches: 1 difference\n"), "{}", run.stderr);
    assert!(run.stderr.contains("  - `store/composer.json` changed since the plan: digest "), "{}", run.stderr);
    assert_eq!(store.version(), "1.0.0");
    assert_eq!(db.dump("store_g"), dump);
    assert!(!store.root.join("var/.maintenance.flag").exists());
    std::fs::write(store.root.join("composer.json"), &manifests.0).unwrap();

    let run = store.sandbox.run(&["run", "--plan", "plan.json"]);
    run.code(0);
    assert!(run.stderr.contains("Upgrading `demo-store-upgrade` to 1.1.0"), "{}", run.stderr);
    assert!(run.stderr.contains("note 1.1.1 is available; this plan installs the reviewed 1.1.0"), "{}", run.stderr);
    assert_eq!(store.version(), "1.1.0", "the reviewed version, not the newest");
    assert_eq!(store.schema(), "1.1.0");
    assert!(!run.stderr.contains(TOKEN));
    let again = store.sandbox.run(&["run", "--plan", "plan.json"]);
    again.code(5);
    assert!(again.stderr.contains("was applied already, by run"), "{}", again.stderr);

    // The upgrade is undone: the database, the manifests and the code are as before.
    let undo = store.sandbox.run(&["rollback", "--yes"]);
    undo.code(0);
    assert!(!undo.stderr.contains(TOKEN));
    assert!(
        undo.stderr.contains("  - `require-version`: restore `store/composer.json` from its snapshot"),
        "{}",
        undo.stderr
    );
    assert!(undo.stderr.contains("  - `setup-upgrade`: cannot be undone (rollback = false)"), "{}", undo.stderr);
    assert!(undo.stderr.contains("Done rolled-back"), "{}", undo.stderr);
    assert_eq!(store.version(), "1.0.0");
    assert_eq!(db.dump("store_g"), dump, "the database is restored byte for byte");
    assert_eq!((store.shell("cat composer.json"), store.shell("cat composer.lock")), manifests);
    assert!(!store.root.join("var/.maintenance.flag").exists(), "maintenance is off");
    assert!(!store.root.join("auth.json").exists());
    store.assert_no_token_in_state();
}

/// `tests/e2e/new-store` on a directory that holds something else refuses and
/// leaves it; on a store it made before, it builds that store again from nothing.
#[test]
fn new_store_refuses_what_it_did_not_make_and_rebuilds_what_it_did() {
    let script = root().join("tests/e2e/new-store");
    let foreign = tempfile::tempdir().unwrap();
    std::fs::write(foreign.path().join("notes.txt"), "mine").unwrap();
    let output = std::process::Command::new(&script).arg(foreign.path()).output().unwrap();
    assert_eq!(output.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&output.stderr).contains("is not a store new-store made"));
    assert_eq!(std::fs::read_dir(foreign.path()).unwrap().count(), 1, "nothing was added");

    let dir = tempfile::tempdir().unwrap();
    let make = || {
        let output = std::process::Command::new(&script).arg(dir.path()).output().unwrap();
        assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
        String::from_utf8(output.stdout).unwrap()
    };
    let said = make();
    assert!(said.contains("An Acme store at 1.0.0"), "{said}");
    // Leave marks where a rebuild must not keep them: the code and the database.
    let socket = dir.path().join("mariadb/mysqld.sock");
    let sql = |sql: &str| {
        let output = std::process::Command::new("mariadb")
            .args([&format!("--socket={}", socket.display()), "-uroot", "-N", "-e", sql, "store"])
            .output()
            .unwrap();
        assert!(output.status.success(), "{sql}: {}", String::from_utf8_lossy(&output.stderr));
        String::from_utf8(output.stdout).unwrap()
    };
    sql("CREATE TABLE leftover (id INT)");
    std::fs::write(dir.path().join("store/leftover.txt"), "old").unwrap();
    let said = make();
    assert!(said.contains("An Acme store at 1.0.0"), "{said}");
    assert!(!dir.path().join("store/leftover.txt").exists(), "the code was replaced");
    assert!(!sql("SHOW TABLES").contains("leftover"), "the database was dropped");
    let _ = std::process::Command::new(root().join("tests/e2e/mariadb"))
        .args(["stop", &dir.path().join("mariadb").display().to_string()])
        .status();
}
