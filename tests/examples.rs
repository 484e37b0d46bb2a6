//! Examples are tests: every playbook in `playbooks/` validates, and its plan
//! is snapshotted.

use std::path::PathBuf;

use crate::{Sandbox, in_repo, root};

/// Every playbook (not includes, not environments) under `playbooks/`.
fn playbooks() -> Vec<PathBuf> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir(root().join("playbooks")).expect("playbooks/") {
        let dir = entry.expect("entry").path();
        for file in std::fs::read_dir(&dir).expect("a playbook dir") {
            let path = file.expect("entry").path();
            if path.extension().is_some_and(|e| e == "toml") {
                found.push(path.strip_prefix(root()).expect("in repo").to_path_buf());
            }
        }
    }
    found.sort();
    found
}

#[test]
fn every_example_validates_in_every_environment() {
    let sandbox = Sandbox::new();
    let all = playbooks();
    assert!(all.len() >= 2, "{all:?}");
    for playbook in &all {
        let playbook = playbook.to_string_lossy();
        in_repo(&sandbox, &["validate", &playbook]).code(0);
        let envs = root().join(std::path::Path::new(&*playbook).parent().unwrap()).join("environments");
        for env in std::fs::read_dir(envs).into_iter().flatten() {
            let env = env.unwrap().path();
            // Beside environments: files they name (an ssh_config, a known_hosts).
            if env.extension().is_none_or(|e| e != "toml") {
                continue;
            }
            let name = env.file_stem().unwrap().to_string_lossy().into_owned();
            in_repo(&sandbox, &["validate", &playbook, "--env", &name]).code(0);
        }
    }
}

#[test]
fn every_example_starts_with_a_schema_line() {
    for playbook in playbooks() {
        let text = std::fs::read_to_string(root().join(&playbook)).unwrap();
        assert!(text.starts_with("#:schema "), "{} lacks a `#:schema` line", playbook.display());
    }
}

/// The readiness line about free space shows this machine's number: hide it.
fn scrub_free_space(text: &str) -> String {
    let regex = regex::Regex::new(r"\d+ \(at least (5242880|10240)\)").unwrap();
    let text = regex.replace_all(text, "[FREE] (at least $1)");
    // sqlite3 comes from this machine's packages.
    let sqlite = regex::Regex::new(r"sqlite3 is installed: \d+\.\d+\.\d+").unwrap();
    sqlite.replace_all(&text, "sqlite3 is installed: [VERSION]").into_owned()
}

#[test]
fn quickstart_plan_on_a_fresh_directory() {
    let sandbox = Sandbox::new();
    let app = sandbox.path().join("app");
    let run =
        in_repo(&sandbox, &["plan", "playbooks/quickstart/upgrade.toml", "--var", &format!("root={}", app.display())]);
    run.code(0);
    insta::assert_snapshot!(scrub_free_space(&sandbox.scrub(&run.stdout)));
    assert!(!app.exists(), "plan created nothing");
}

/// Installs the quickstart's demo app at 1.0.0, as its first step would.
pub(crate) fn install_demo(sandbox: &Sandbox) -> PathBuf {
    let app = sandbox.path().join("app");
    let script = format!(
        "set -e; cd {}; mkdir -p config data var/cache var/backups; \
         printf '%s\\n' '{{' '  \"name\": \"demo\",' '  \"version\": \"1.0.0\",' '  \"features\": {{' '    \"search\": false' '  }}' '}}' > config/app.json; \
         sqlite3 data/app.db \"CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT); INSERT INTO meta VALUES ('schema', '1.0.0');\"; \
         echo 1.0.0 > VERSION",
        app.display()
    );
    std::fs::create_dir_all(&app).unwrap();
    let status = std::process::Command::new("sh").arg("-c").arg(script).status().unwrap();
    assert!(status.success());
    app
}

#[test]
fn quickstart_plan_on_an_installed_demo_shows_diffs_and_changes_nothing() {
    let sandbox = Sandbox::new();
    let app = install_demo(&sandbox);
    let before = snapshot_tree(&app);
    let run =
        in_repo(&sandbox, &["plan", "playbooks/quickstart/upgrade.toml", "--var", &format!("root={}", app.display())]);
    run.code(0);
    let output = sandbox.scrub(&run.stdout);
    assert!(output.contains("-  \"version\": \"1.0.0\","), "{output}");
    assert!(output.contains("+  \"version\": \"1.2.0\","), "{output}");
    assert!(output.contains("skipped: `[SANDBOX]/app/VERSION` exists"), "{output}");
    insta::assert_snapshot!(scrub_free_space(&output));
    assert_eq!(before, snapshot_tree(&app), "plan changed the demo app");
}

/// Every file below `dir` with its content.
pub(crate) fn snapshot_tree(dir: &std::path::Path) -> Vec<(PathBuf, Vec<u8>)> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(dir) = stack.pop() {
        // A directory that is not there (yet) holds nothing; files may come and go.
        for entry in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
            let path = entry.path();
            if path.is_dir() {
                stack.push(path);
            } else if let Ok(content) = std::fs::read(&path) {
                out.push((path, content));
            }
        }
    }
    out.sort();
    out
}

/// A sandbox with fake `php`, `composer` and `mysql` and a Magento root.
fn fake_magento() -> (Sandbox, PathBuf) {
    let sandbox = Sandbox::new().with_path(root().join("tests/fixtures/fake-magento/bin"));
    let magento = sandbox.path().join("magento");
    for dir in ["app/etc", "var/backups", "pub/media", "pub/static", "generated"] {
        std::fs::create_dir_all(magento.join(dir)).unwrap();
    }
    (sandbox, magento)
}

#[test]
fn magento2_plan_with_staging() {
    let (sandbox, magento) = fake_magento();
    let run = in_repo(
        &sandbox,
        &[
            "plan",
            "playbooks/magento2/upgrade.toml",
            "--env",
            "staging",
            "--var",
            &format!("root={}", magento.display()),
        ],
    );
    run.code(0);
    let output = sandbox.scrub(&run.stdout);
    assert!(output.contains("selected     2.4.8-p3"), "{output}");
    assert!(output.contains("current      2.4.7-p2"), "{output}");
    insta::assert_snapshot!(scrub_free_space(&output));
}

#[test]
fn magento2_plan_for_production_is_markdown_for_a_pull_request() {
    let (sandbox, magento) = fake_magento();
    let run = in_repo(
        &sandbox,
        &[
            "plan",
            "playbooks/magento2/upgrade.toml",
            "--env",
            "production",
            "--var",
            &format!("root={}", magento.display()),
            "--to",
            "2.4.8-p2",
            "--format",
            "markdown",
        ],
    );
    run.code(0);
    let output = sandbox.scrub(&run.stdout);
    assert!(output.contains("`2.4.7-p2` → **`2.4.8-p2`** (patch change)"), "{output}");
    assert!(output.contains("closed; next opens Sat 2026-11-28 22:00 CET"), "{output}");
    insta::assert_snapshot!(scrub_free_space(&output));
}

/// The Django example against a stub app: a venv python that reports Django
/// 5.0.9, and stub `psql`, `pg_dump`, `pg_restore`, `systemctl`.
#[test]
fn django_plan_and_run_on_a_stub_app() {
    let sandbox = Sandbox::new()
        .with_path(root().join("tests/fixtures/fake-django/bin"))
        .env("SHOP_DB_PASSWORD", "pg-canary-7d1e");
    let app = sandbox.path().join("app");
    sandbox.write("app/requirements.txt", "requests==2.32.3\n");
    let deploy = "# How the shop is served\n[server]\nworkers = 2  # one per CPU\n\n[app]\ndjango = \"5.0.9\"\n";
    sandbox.write("app/deploy.toml", deploy);
    std::fs::create_dir_all(app.join(".venv/bin")).unwrap();
    std::fs::copy(root().join("tests/fixtures/fake-django/venv-python"), app.join(".venv/bin/python")).unwrap();
    let root_var = format!("root={}", app.display());
    let args = ["playbooks/django/upgrade.toml", "--var", &root_var, "--var", "min_free_kib=1"];
    let run = in_repo(&sandbox, &[&["plan"], &args[..]].concat());
    run.code(0);
    let free = regex::Regex::new(r"\d+ \(at least 1\)").unwrap();
    let output = free.replace_all(&sandbox.scrub(&run.stdout), "[FREE] (at least 1)").into_owned();
    assert!(output.contains("selected     5.1.4"), "{output}");
    // It reads the database password, and `plan` reads no secret: it says so rather than guess.
    assert!(
        output.contains("-      PostgreSQL server version: it reads a secret, and only `run` reads secrets"),
        "{output}"
    );
    assert!(output.contains(" +Django==5.1.4"), "{output}");
    assert!(output.contains(" +workers = 4  # one per CPU"), "{output}");
    insta::assert_snapshot!(output);

    let run = in_repo(&sandbox, &[&["run"], &args[..], &["--var", "collectstatic=false"]].concat());
    run.code(0);
    assert_eq!(sandbox.read("app/requirements.txt"), "requests==2.32.3\nDjango==5.1.4\n");
    assert_eq!(sandbox.read("app/deploy.toml"), deploy.replace("= 2 ", "= 4 ").replace("5.0.9", "5.1.4"));
    let log = sandbox.read("stub.log");
    assert!(
        log.contains("python -m pip install --quiet --disable-pip-version-check --requirement requirements.txt\n"),
        "{log}"
    );
    assert!(log.contains("python manage.py migrate --noinput\n"), "{log}");
    assert!(!log.contains("collectstatic"), "`--var collectstatic=false` skipped it: {log}");
    assert!(log.ends_with("systemctl restart shop\n"), "{log}");
    assert!(!app.join("maintenance.on").exists());
}

/// The production cluster (two web nodes, an admin/cron node) as committed,
/// planned over three sshd's on loopback. The playbook and its environment are
/// copied unchanged into the sandbox; only the two files that say how to reach
/// the nodes (`production-cluster.ssh_config`, `.known_hosts`) are the test's:
/// they send `web1.shop.example` & co. to the sshd's, so the plan shows the
/// committed names and no port of this machine. On the hosts, `PATH` finds the
/// stand-ins for php, composer and mysql first.
#[test]
fn magento2_plan_for_the_production_cluster() {
    let (sandbox, magento) = fake_magento();
    let roles: [(&str, &[&str]); 3] = [("web1", &["web"]), ("web2", &["web"]), ("admin", &["admin", "cron"])];
    let stubs = root().join("tests/fixtures/fake-magento/bin");
    let path = format!("{}:/usr/local/bin:/usr/bin:/bin", stubs.display());
    let quiet = crate::fleet::QUIET_SHELL;
    let fleet =
        crate::fleet::Fleet::start_with(&sandbox, 104, &roles, &[("PATH", path), (quiet.0, quiet.1.to_owned())]);
    let playbook = sandbox.path().join("playbooks/magento2");
    crate::e2e::copy_dir(&root().join("playbooks/magento2"), &playbook);
    let mut config = String::new();
    for host in &fleet.hosts {
        config.push_str(&format!(
            "Host {}.shop.example\n  HostName {}\n  Port {}\n  User root\n  IdentityFile {}/client\n  IdentitiesOnly yes\n",
            host.name,
            host.address,
            host.port,
            fleet.dir.display()
        ));
    }
    std::fs::write(playbook.join("environments/production-cluster.ssh_config"), config).unwrap();
    std::fs::copy(fleet.dir.join("known_hosts"), playbook.join("environments/production-cluster.known_hosts")).unwrap();
    let root_var = format!("root={}", magento.display());
    let args = ["plan", "playbooks/magento2/upgrade.toml", "--env", "production-cluster", "--var", &root_var];
    let run = sandbox.run(&[&args[..], &["--to", "2.4.8-p2"]].concat());
    run.code(0);
    let output = sandbox.scrub(&run.stdout);
    assert!(output.contains("target       a fleet of 3 hosts"), "{output}");
    for needle in [
        // Once, on the admin node: the database and cron.
        "16. setup-upgrade  Upgrade the database schema and data (setup:upgrade)\n      on        admin (once)",
        // Every node: code, maintenance.
        "12. composer-update  Install the new code (composer update)\n      on        web1, web2, admin\n",
        // The web nodes, one at a time.
        "17. module-list.refresh  Bring this node's module list up to date\n      on        web1, web2 (rolling: 1 host at a time, with the steps of `module-list`)\n",
    ] {
        assert!(output.contains(needle), "{needle}\n---\n{output}");
    }
    for port in fleet.hosts.iter().map(|h| h.port.to_string()) {
        assert!(!output.contains(&format!(":{port}")), "a port of this machine: {output}");
    }
    insta::assert_snapshot!(scrub_free_space(&output));
    // Nothing changed on any node.
    assert!(!magento.join("var/.maintenance.flag").exists());
}
