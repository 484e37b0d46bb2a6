//! End to end on a real Python stack: Debian's PostgreSQL and `python3 -m
//! venv`, Django and psycopg from the local wheelhouse that `scripts/setup`
//! downloads once (`target/wheelhouse/`, listed in `tests/e2e/wheelhouse.txt`;
//! pip runs offline here: `--no-index --find-links`), the shop project
//! (`tests/e2e/django`), and `playbooks/django/upgrade.toml`. Every scenario
//! asserts real state: the Django in the venv, the database (through `psql`
//! and `pg_dump`), files, the journal, and that the database password appears
//! in no output and no state file.
//!
//! One PostgreSQL serves every scenario (a database and a role each) and is
//! stopped at the end, also when a scenario fails. The venv is built once and
//! copied into each scenario's project.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use assert_cmd::cargo::CommandCargoExt;

use crate::{Run, Sandbox, root};

/// The database password: a secret, so it must show up nowhere.
const PASSWORD: &str = "pg-pw-5f2c9e1d-canary";
const OLD: &str = "5.0.14";
/// The newest 5.1 in the wheelhouse (which also has 5.1.14): what `~=5.1.0` selects.
const NEW: &str = "5.1.15";
/// Debian's interpreter, the one `scripts/setup` downloaded the wheels for.
const PYTHON3: &str = "/usr/bin/python3";

fn wheelhouse() -> PathBuf {
    let dir = root().join("target/wheelhouse");
    assert!(dir.join(".complete").exists(), "{} is missing or incomplete: run scripts/setup", dir.display());
    dir
}

/// Runs a command, asserts success, returns its stdout.
#[track_caller]
fn output(command: &mut Command) -> String {
    let output = command.output().unwrap_or_else(|e| panic!("{command:?}: {e}"));
    assert!(
        output.status.success(),
        "{command:?}: {}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).unwrap()
}

/// A private PostgreSQL (`tests/e2e/postgres`) on a Unix socket in its own
/// directory and on 127.0.0.1 at a free port, stopped when dropped.
struct Postgres {
    dir: tempfile::TempDir,
    port: u16,
}

impl Postgres {
    fn start() -> Postgres {
        let dir = tempfile::tempdir().unwrap();
        // As root the server runs as `postgres`, which must reach its directory.
        let status = Command::new("chmod").arg("0755").arg(dir.path()).status().unwrap();
        assert!(status.success());
        let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let postgres = Postgres { dir, port };
        output(Command::new(root().join("tests/e2e/postgres")).arg("start").arg(postgres.data()).arg(port.to_string()));
        postgres
    }

    fn data(&self) -> PathBuf {
        self.dir.path().join("pg")
    }

    /// `psql` as the superuser, over the private socket: unaligned, tuples only.
    fn sql(&self, database: &str, sql: &str) -> String {
        output(
            Command::new("psql")
                .args(["-h", &self.data().display().to_string(), "-p", &self.port.to_string(), "-U", "postgres"])
                .args(["-X", "-v", "ON_ERROR_STOP=1", "-tA", "-d", database, "-c", sql]),
        )
    }

    /// The whole database as SQL, without the random `\restrict` key newer
    /// `pg_dump`s write.
    fn dump(&self, database: &str) -> String {
        let dump = output(
            Command::new("pg_dump")
                .args(["-h", &self.data().display().to_string(), "-p", &self.port.to_string(), "-U", "postgres"])
                .arg(database),
        );
        dump.lines().filter(|l| !l.starts_with("\\restrict") && !l.starts_with("\\unrestrict")).collect()
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        let _ = Command::new(root().join("tests/e2e/postgres")).arg("stop").arg(self.data()).status();
    }
}

/// The shop's venv at the old Django, built once from the wheelhouse.
fn base_venv(dir: &Path) -> PathBuf {
    let venv = dir.join(".venv");
    output(Command::new(PYTHON3).args(["-m", "venv"]).arg(&venv));
    output(
        Command::new(venv.join("bin/python"))
            .args(["-m", "pip", "install", "--quiet", "--disable-pip-version-check", "--no-index", "--find-links"])
            .arg(wheelhouse())
            .arg("--requirement")
            .arg(root().join("tests/e2e/django/requirements.txt"))
            .env("PIP_CONFIG_FILE", "/dev/null"),
    );
    venv
}

/// One shop: the project at Django 5.0 with its own database and role,
/// migrated (catalog at 0001), its static files collected.
struct Shop<'a> {
    pg: &'a Postgres,
    sandbox: Sandbox,
    root: PathBuf,
    db: String,
}

impl<'a> Shop<'a> {
    fn new(pg: &'a Postgres, venv: &Path, db: &str) -> Shop<'a> {
        let sandbox = Sandbox::new().with_path(root().join("tests/e2e/stand-ins"));
        let log = sandbox.path().join("systemctl.log").display().to_string();
        let sandbox = sandbox
            .env("SHOP_DB_PASSWORD", PASSWORD)
            .env("SYSTEMCTL_LOG", &log)
            // Offline, whatever the machine's pip configuration says.
            .env("PIP_NO_INDEX", "1")
            .env("PIP_CONFIG_FILE", "/dev/null");
        let root_dir = sandbox.path().join("shop");
        output(Command::new("cp").arg("-R").arg(root().join("tests/e2e/django")).arg(&root_dir));
        output(Command::new("cp").arg("-a").arg(venv).arg(root_dir.join(".venv")));
        pg.sql("postgres", &format!("CREATE ROLE {db} LOGIN PASSWORD '{PASSWORD}'"));
        pg.sql("postgres", &format!("CREATE DATABASE {db} OWNER {db}"));
        let shop = Shop { pg, sandbox, root: root_dir, db: db.to_owned() };
        // Installed as it would be deployed: migrated, static files collected.
        shop.manage(&["migrate", "--noinput"]);
        shop.manage(&["collectstatic", "--noinput"]);
        assert_eq!(shop.django(), OLD);
        assert_eq!(shop.migrations(), "0001_initial");
        shop
    }

    /// `manage.py …` with the venv's python, connected as the app's role.
    fn manage(&self, args: &[&str]) -> String {
        output(
            Command::new(self.root.join(".venv/bin/python"))
                .arg("manage.py")
                .args(args)
                .current_dir(&self.root)
                .env_clear()
                .env("PATH", "/usr/bin:/bin")
                .env("PGHOST", "127.0.0.1")
                .env("PGPORT", self.pg.port.to_string())
                .env("PGDATABASE", &self.db)
                .env("PGUSER", &self.db)
                .env("PGPASSWORD", PASSWORD),
        )
    }

    fn django(&self) -> String {
        output(Command::new(self.root.join(".venv/bin/python")).args(["-m", "django", "--version"])).trim().to_owned()
    }

    /// The catalog's applied migrations, from `django_migrations`.
    fn migrations(&self) -> String {
        let names = self.pg.sql(&self.db, "SELECT name FROM django_migrations WHERE app = 'catalog' ORDER BY name");
        names.split_whitespace().collect::<Vec<_>>().join(" ")
    }

    fn read(&self, relative: &str) -> String {
        std::fs::read_to_string(self.root.join(relative)).unwrap()
    }

    fn args(&self, command: &str, extra: &[&str]) -> Vec<String> {
        let mut args = vec![command.to_owned(), root().join("playbooks/django/upgrade.toml").display().to_string()];
        for var in [
            format!("root={}", self.root.display()),
            format!("wheelhouse={}", wheelhouse().display()),
            format!("base_python={PYTHON3}"),
            format!("db_name={}", self.db),
            format!("db_user={}", self.db),
            "db_host=127.0.0.1".to_owned(),
            format!("db_port={}", self.pg.port),
            "min_free_kib=1".to_owned(),
        ] {
            args.extend(["--var".to_owned(), var]);
        }
        args.extend(extra.iter().map(|s| s.to_string()));
        args
    }

    fn upshift(&self, command: &str, extra: &[&str]) -> Run {
        let args = self.args(command, extra);
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let run = self.sandbox.run(&args);
        assert_no_password(&run);
        run
    }

    fn spawn(&self, command: &str, extra: &[&str]) -> Child {
        let mut process = Command::cargo_bin("upshift").unwrap();
        process
            .args(self.args(command, extra))
            .current_dir(self.sandbox.path())
            .env_clear()
            .env("PATH", format!("{}:/usr/local/bin:/usr/bin:/bin", root().join("tests/e2e/stand-ins").display()))
            .env("HOME", self.sandbox.path())
            .env("NO_COLOR", "1")
            .env("UPSHIFT_STATE_DIR", self.sandbox.path().join(".state"))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        for (key, value) in &self.sandbox.env {
            process.env(key, value);
        }
        process.spawn().unwrap()
    }

    /// The project's files (the venv and bytecode caches aside) with their
    /// contents, and the venv's packages.
    fn state(&self) -> (Vec<(PathBuf, Vec<u8>)>, String) {
        let files = crate::examples::snapshot_tree(&self.root)
            .into_iter()
            .filter(|(path, _)| !path.starts_with(self.root.join(".venv")))
            // Python's bytecode cache, written by whatever imports the code.
            .filter(|(path, _)| !path.components().any(|c| c.as_os_str() == "__pycache__"))
            .collect();
        let freeze = output(Command::new(self.root.join(".venv/bin/python")).args([
            "-m",
            "pip",
            "freeze",
            "--disable-pip-version-check",
        ]));
        (files, freeze)
    }

    fn journal(&self) -> String {
        crate::examples::snapshot_tree(&self.sandbox.path().join(".state/runs"))
            .into_iter()
            .filter(|(p, _)| p.extension().is_some_and(|e| e == "jsonl"))
            .map(|(_, c)| String::from_utf8(c).unwrap())
            .collect()
    }

    fn restarts(&self) -> String {
        std::fs::read_to_string(self.sandbox.path().join("systemctl.log")).unwrap_or_default()
    }

    /// The password is in no state file, no backup, no project file.
    fn assert_no_password_at_rest(&self) {
        for dir in [self.sandbox.path().join(".state"), self.root.join("backups")] {
            for (path, content) in crate::examples::snapshot_tree(&dir) {
                assert!(!String::from_utf8_lossy(&content).contains(PASSWORD), "{} holds the password", path.display());
            }
        }
        for (path, content) in self.state().0 {
            assert!(!String::from_utf8_lossy(&content).contains(PASSWORD), "{} holds the password", path.display());
        }
    }
}

#[track_caller]
fn assert_no_password(run: &Run) {
    assert!(
        !run.stdout.contains(PASSWORD) && !run.stderr.contains(PASSWORD),
        "the password leaked:\n{}\n{}",
        run.stdout,
        run.stderr
    );
}

#[test]
fn django_upgrades_end_to_end() {
    assert!(Path::new(PYTHON3).exists(), "{PYTHON3} is missing: run scripts/setup");
    let pg = Postgres::start();
    let base = tempfile::tempdir().unwrap();
    let venv = base_venv(base.path());
    // Independent stories (a database, a project and a sandbox each), at once.
    std::thread::scope(|scope| {
        scope.spawn(|| plan_rehearse_then_upgrade(&pg, &venv));
        scope.spawn(|| killed_during_pip_install_then_resumed(&pg, &venv));
        scope.spawn(|| killed_during_pip_install_then_rolled_back(&pg, &venv));
    });
}

/// An operator's evening on one shop: plan, rehearse a failure, upgrade.
fn plan_rehearse_then_upgrade(pg: &Postgres, venv: &Path) {
    let shop = Shop::new(pg, venv, "shop");
    plan_changes_nothing(&shop);
    failure_after_migrate_rolls_back(&shop);
    run_upgrades(&shop);
}

/// `plan` selects the newest 5.1 from the offline index, shows the diffs,
/// masks the password, and changes no file, no package, no row.
fn plan_changes_nothing(shop: &Shop) {
    let pg = shop.pg;
    let before = (shop.state(), pg.dump(&shop.db));
    let plan = shop.upshift("plan", &[]);
    plan.code(0);
    assert_eq!((shop.state(), pg.dump(&shop.db)), before, "plan changed something");
    let out = &plan.stdout;
    assert!(out.contains(&format!("current      {OLD}\n")), "{out}");
    assert!(out.contains(&format!("candidates   {NEW}, 5.1.14\n")), "{out}");
    assert!(out.contains(&format!("selected     {NEW}: the newest available version")), "{out}");
    assert!(out.contains(&format!("| -Django=={OLD}\n        | +Django=={NEW}\n")), "{out}");
    assert!(out.contains("env       PGPASSWORD=<secret:db_password>"), "{out}");
    assert!(out.contains("--no-index --find-links"), "{out}");
    assert!(shop.restarts().is_empty());
    let scrubbed = shop
        .sandbox
        .scrub(out)
        .replace(&root().display().to_string(), "[REPO]")
        .replace(&format!("PGPORT={}", pg.port), "PGPORT=[PORT]");
    let scrubbed = regex::Regex::new(r"\d+ \(at least 1\)").unwrap().replace_all(&scrubbed, "[FREE] (at least 1)");
    insta::assert_snapshot!("django_plan", scrubbed);
}

/// A failure after `migrate` (`rehearse_rollback`) rolls everything back:
/// the database restored from the dump byte for byte (the new table gone
/// too), the venv's packages as they were, the requirement line and
/// deploy.toml back, the app server restarted on the old release; exit 1.
fn failure_after_migrate_rolls_back(shop: &Shop) {
    let pg = shop.pg;
    let dump = pg.dump(&shop.db);
    let (files, packages) = shop.state();
    let run = shop.upshift("run", &["--var", "rehearse_rollback=true"]);
    run.code(1);
    let err = &run.stderr;
    assert!(err.contains("Finished migrate"), "{err}");
    assert!(err.contains("Failed rehearsal: exit code 1: rehearsing the rollback: failing after migrate"), "{err}");
    assert!(err.contains("`migrate` cannot be undone"), "{err}");
    for step in ["workers", "install", "pin", "backup", "maintenance-on"] {
        assert!(err.contains(&format!(" Rolled back {step} in ")), "{step}: {err}");
    }
    assert_eq!(pg.dump(&shop.db), dump, "the database is restored byte for byte");
    assert_eq!(shop.migrations(), "0001_initial");
    assert_eq!(shop.django(), OLD);
    let (files_after, packages_after) = shop.state();
    assert_eq!(packages_after, packages, "the venv holds the packages it held before");
    assert_only_backups_are_new(shop, &files, &files_after);
    let report = shop.manage(&["catalog_report"]);
    assert!(report.starts_with(&format!("Django {OLD}, catalog release 1\n")), "{report}");
    assert!(report.contains("T-1 Green tea 450\n"), "{report}");
    assert_eq!(shop.restarts(), "systemctl restart shop\n", "restarted on the old release");
    shop.assert_no_password_at_rest();
}

/// `run` upgrades for real: the pin, Django 5.1 in the venv, migration 0002
/// applied (seen with `psql`), static files collected, the app server
/// restarted, and the app answers.
fn run_upgrades(shop: &Shop) {
    let pg = shop.pg;
    let run = shop.upshift("run", &[]);
    run.code(0);
    assert!(run.stderr.contains("Finished collectstatic"), "{}", run.stderr);
    assert!(run.stderr.contains("Done succeeded"), "{}", run.stderr);
    assert_eq!(shop.django(), NEW);
    assert!(shop.read("requirements.txt").contains(&format!("\nDjango=={NEW}\npsycopg[binary]==3.3.9\n")));
    assert!(shop.read("deploy.toml").contains(&format!("workers = 4  # one per CPU\n\n[app]\ndjango = \"{NEW}\"")));
    assert_eq!(shop.migrations(), "0001_initial 0002_stock_and_price_check");
    assert_eq!(pg.sql(&shop.db, "SELECT SUM(stock) FROM catalog_product").trim(), "30");
    assert_eq!(pg.sql(&shop.db, "SELECT COUNT(*) FROM catalog_stockmovement").trim(), "0");
    let constraint = "SELECT conname FROM pg_constraint WHERE conname = 'catalog_price_positive'";
    assert_eq!(pg.sql(&shop.db, constraint).trim(), "catalog_price_positive");
    assert_eq!(shop.restarts(), "systemctl restart shop\nsystemctl restart shop\n");
    assert!(!shop.root.join("maintenance.on").exists());
    let report = shop.manage(&["catalog_report"]);
    assert!(report.starts_with(&format!("Django {NEW}, catalog release 2\n")), "{report}");
    assert!(report.contains("T-1 Green tea 450 stock 10\n"), "{report}");
    assert!(shop.root.join(format!("backups/before-{NEW}.dump")).exists());
    shop.assert_no_password_at_rest();
}

/// Only files under `backups/` differ between two states of the project.
#[track_caller]
fn assert_only_backups_are_new(shop: &Shop, before: &[(PathBuf, Vec<u8>)], after: &[(PathBuf, Vec<u8>)]) {
    let backups = shop.root.join("backups");
    let outside = |files: &[(PathBuf, Vec<u8>)]| -> Vec<(PathBuf, Vec<u8>)> {
        files.iter().filter(|(p, _)| !p.starts_with(&backups)).cloned().collect()
    };
    let (before, after) = (outside(before), outside(after));
    let changed: Vec<_> = after
        .iter()
        .filter(|f| !before.contains(f))
        .chain(before.iter().filter(|f| !after.contains(f)))
        .map(|(p, _)| p)
        .collect();
    assert!(changed.is_empty(), "changed outside backups/: {changed:?}");
}

/// Runs the upgrade and kills it (upshift and pip alike, as a crash would)
/// while pip replaces Django: the venv is left half installed. Returns the
/// file that marks the venv as the one built before the crash.
fn crash_during_pip_install(shop: &Shop) -> PathBuf {
    let marker = shop.root.join(".venv/built-before-the-crash");
    std::fs::write(&marker, "").unwrap();
    let site = output(
        Command::new(shop.root.join(".venv/bin/python"))
            .args(["-c", "import django, pathlib; print(pathlib.Path(django.__file__).parent.parent)"]),
    );
    let old = Path::new(site.trim()).join(format!("Django-{OLD}.dist-info"));
    assert!(old.exists(), "{}", old.display());
    let mut child = shop.spawn("run", &[]);
    // pip moves the old Django aside before it writes the new one.
    let until = Instant::now() + Duration::from_secs(120);
    while old.exists() {
        if child.try_wait().unwrap().is_some() {
            let output = child.wait_with_output().unwrap();
            panic!("the run ended before pip touched Django:\n{}", String::from_utf8_lossy(&output.stderr));
        }
        assert!(Instant::now() < until, "pip never started replacing Django");
        std::thread::sleep(Duration::from_millis(5));
    }
    let status = Command::new("kill").args(["-s", "KILL", &child.id().to_string()]).status().unwrap();
    assert!(status.success());
    crate::kill_processes_in(&shop.root);
    let _ = child.wait_with_output();
    assert!(!old.exists(), "the venv is half installed");
    let status = shop.sandbox.run(&["status"]);
    assert!(status.stdout.contains("unfinished: stopped during `install`"), "{}", status.stdout);
    marker
}

/// A crash while pip replaces Django, then `resume`: the interrupted
/// install rebuilds the venv (`step.interrupted`) and the upgrade finishes;
/// no earlier step runs twice.
fn killed_during_pip_install_then_resumed(pg: &Postgres, venv: &Path) {
    let shop = Shop::new(pg, venv, "shop_resume");
    let marker = crash_during_pip_install(&shop);
    let resume = shop.sandbox.run(&["resume"]);
    assert_no_password(&resume);
    resume.code(0);
    assert!(
        resume.stderr.contains("`install` was interrupted; running it again (it is idempotent)"),
        "{}",
        resume.stderr
    );
    assert!(!marker.exists(), "the half-installed venv was rebuilt");
    assert_eq!(shop.django(), NEW);
    assert_eq!(shop.migrations(), "0001_initial 0002_stock_and_price_check");
    assert!(shop.manage(&["catalog_report"]).starts_with(&format!("Django {NEW}, catalog release 2\n")));
    let journal = shop.journal();
    for step in ["maintenance-on", "backup", "packages", "pin"] {
        let started = journal.matches(&format!("\"type\":\"started\",\"step\":\"{step}\",\"phase\":\"step\"")).count();
        assert_eq!(started, 1, "`{step}` started {started} times");
    }
    assert_eq!(journal.matches("\"type\":\"started\",\"step\":\"install\"").count(), 2);
    assert_eq!(shop.restarts(), "systemctl restart shop\n");
    shop.assert_no_password_at_rest();
}

/// A crash while pip replaces Django, then `rollback`: the install's
/// rollback knows the step was cut short (`step.interrupted`), builds the venv
/// again and reinstalls exactly the packages recorded before; the rest is
/// undone as after a failure.
fn killed_during_pip_install_then_rolled_back(pg: &Postgres, venv: &Path) {
    let shop = Shop::new(pg, venv, "shop_undo");
    let (files, packages) = shop.state();
    let dump = pg.dump(&shop.db);
    let marker = crash_during_pip_install(&shop);
    let rollback = shop.sandbox.run(&["rollback"]);
    assert_no_password(&rollback);
    rollback.code(0);
    assert!(rollback.stderr.contains(" Rolled back install in "), "{}", rollback.stderr);
    assert!(!marker.exists(), "the half-installed venv was rebuilt");
    assert_eq!(shop.django(), OLD);
    let (files_after, packages_after) = shop.state();
    assert_eq!(packages_after, packages, "the venv holds the packages it held before");
    assert_only_backups_are_new(&shop, &files, &files_after);
    assert_eq!(pg.dump(&shop.db), dump);
    assert!(shop.manage(&["catalog_report"]).starts_with(&format!("Django {OLD}, catalog release 1\n")));
    assert_eq!(shop.restarts(), "systemctl restart shop\n");
    shop.assert_no_password_at_rest();
}
