//! The demo store over three hosts: `web1` and `web2` (role `web`) and
//! `admin` (roles `admin`, `cron`), each an sshd on loopback with its own
//! copy of the store (one Composer build, copied), all sharing one MariaDB
//! database. The environment file names the hosts; each host's `root` is its
//! own directory. Every scenario asserts each host's code, files and flags,
//! the shared database and what the journal says ran where.

use std::path::{Path, PathBuf};

use crate::e2e::{Db, Store, TOKEN, copy_dir};
use crate::fleet::Fleet;
use crate::{Run, root};

const ROLES: [(&str, &[&str]); 3] = [("web1", &["web"]), ("web2", &["web"]), ("admin", &["admin", "cron"])];

pub(crate) fn over_three_hosts(db: &Db) {
    upgrade(db);
    a_late_failure_on_one_host_brings_every_host_back(db);
}

/// A store built once, copied to three hosts; cron only on the cron node.
struct Cluster<'a> {
    store: Store<'a>,
    fleet: Fleet,
    env_file: PathBuf,
    socket: String,
}

impl<'a> Cluster<'a> {
    /// `vars`: more host vars, `(host, "key = value")`.
    fn new(db: &'a Db, name: &str, first: u8, vars: &[(&str, &str)]) -> Cluster<'a> {
        let store = Store::new(db, name);
        // What each host's own environment says (Composer as root, offline, its home in the sandbox).
        let home = store.sandbox.path().join("home/composer").display().to_string();
        let set_env = [
            (crate::fleet::QUIET_SHELL.0, crate::fleet::QUIET_SHELL.1.to_owned()),
            ("COMPOSER_ALLOW_SUPERUSER", "1".to_owned()),
            ("COMPOSER_DISABLE_NETWORK", "1".to_owned()),
            ("COMPOSER_HOME", home),
        ];
        let fleet = Fleet::start_with(&store.sandbox, first, &ROLES, &set_env);
        for host in &fleet.hosts {
            copy_dir(&store.root, &host.root);
            if host.name != "admin" {
                std::fs::remove_file(host.root.join("var/crontab")).unwrap();
            }
        }
        let env_file =
            store.sandbox.write("cluster.toml", &fleet.environment_with(&ROLES, "[fleet]\nparallel = 3\n", vars));
        Cluster { store, fleet, env_file, socket: db.socket.display().to_string() }
    }

    fn upshift(&self, command: &str, extra: &[&str]) -> Run {
        let playbook = root().join("playbooks/demo-store/upgrade.toml").display().to_string();
        let env_file = self.env_file.display().to_string();
        let db_name = format!("db_name={}", self.store.name);
        let socket = format!("db_socket={}", self.socket);
        let mut args = vec![command, &playbook, "--env-file", &env_file, "--var", &db_name, "--var", &socket];
        args.extend_from_slice(extra);
        let run = self.store.sandbox.run(&args);
        assert!(
            !run.stdout.contains(TOKEN) && !run.stderr.contains(TOKEN),
            "the token leaked:\n{}\n{}",
            run.stdout,
            run.stderr
        );
        run
    }

    fn root(&self, host: &str) -> &Path {
        &self.fleet.host(host).root
    }

    fn version(&self, host: &str) -> String {
        let out = self.store.shell_in(self.root(host), "php bin/store --version");
        out.trim().trim_start_matches("Acme Store CLI ").to_owned()
    }

    /// Which hosts a step started on in this sandbox's runs (`phase` `step`).
    fn started_on(&self, step: &str) -> Vec<String> {
        let mut hosts = Vec::new();
        for line in self.store.journal().lines() {
            let record: serde_json::Value = serde_json::from_str(line).unwrap();
            if record["type"] == "started" && record["step"] == step && record["phase"] == "step" {
                hosts.push(record["target"].as_str().unwrap().to_owned());
            }
        }
        hosts
    }

    /// No state file, here or on a host, holds the token.
    fn assert_no_token(&self) {
        self.store.assert_no_token_in_state();
        for host in &self.fleet.hosts {
            let state = host.root.parent().unwrap().join("state");
            for (path, content) in crate::examples::snapshot_tree(&state) {
                assert!(!String::from_utf8_lossy(&content).contains(TOKEN), "{} holds the token", path.display());
            }
        }
    }
}

/// 1.0.0 → 1.1.0 over three hosts: code and composer on every host, the
/// schema upgraded and the index rebuilt once (on `admin`), maintenance and
/// the file cache per host, cron on the cron node only.
fn upgrade(db: &Db) {
    let cluster = Cluster::new(db, "store_fleet", 101, &[]);
    let trees: Vec<_> = cluster.fleet.hosts.iter().map(|h| crate::examples::snapshot_tree(&h.root)).collect();
    let dump = db.dump("store_fleet");
    let plan = cluster.upshift("plan", &[]);
    plan.code(0);
    let out = &plan.stdout;
    assert!(out.contains("target       a fleet of 3 hosts"), "{out}");
    assert!(
        out.contains("setup-upgrade  Upgrade the database schema (setup:upgrade)\n      on        admin (once)\n"),
        "{out}"
    );
    // Each host has its own root: one rendering per host.
    assert!(out.contains("composer-update  Install the new code (composer update)\n      on        web1\n"), "{out}");
    assert!(out.contains("      on        web2\n      will run\n      run       composer update acme/store"), "{out}");
    for host in ["web1", "web2", "admin"] {
        assert!(out.contains(&format!("ok     acme/store 1.0.0 on every node (on `{host}`)")), "{out}");
    }
    let after: Vec<_> = cluster.fleet.hosts.iter().map(|h| crate::examples::snapshot_tree(&h.root)).collect();
    assert_eq!(after, trees, "plan changed a file on a host");
    assert_eq!(db.dump("store_fleet"), dump, "plan changed the database");
    let run = cluster.upshift("run", &[]);
    run.code(0);
    for host in ["web1", "web2", "admin"] {
        let dir = cluster.root(host);
        assert_eq!(cluster.version(host), "1.1.0", "{host}");
        assert!(
            std::fs::read_to_string(dir.join("composer.json")).unwrap().contains("\"acme/store\": \"1.1.0\""),
            "{host}"
        );
        assert!(!dir.join("var/.maintenance.flag").exists(), "maintenance is off on {host}");
        assert!(!dir.join("auth.json").exists(), "auth.json is gone on {host}");
        assert!(!dir.join("var/cache/page.html").exists(), "{host} flushed its own cache");
        assert_eq!(dir.join("var/crontab").exists(), host == "admin", "cron only on the cron node: {host}");
    }
    // One database, upgraded once, indexed once: on the admin node.
    assert_eq!(cluster.store.schema(), "1.1.0");
    assert_eq!(db.sql("store_fleet", "SELECT COUNT(*), SUM(price_cents) FROM product_index").trim(), "3\t1090");
    for (step, on) in [
        ("setup-upgrade", &["admin"][..]),
        ("reindex", &["admin"]),
        ("backup-db", &["admin"]),
        ("cron-install", &["admin"]),
        ("composer-update", &["web1", "web2", "admin"]),
        ("maintenance-on", &["web1", "web2", "admin"]),
    ] {
        let mut started = cluster.started_on(step);
        started.sort();
        let mut expected: Vec<String> = on.iter().map(|s| (*s).to_owned()).collect();
        expected.sort();
        assert_eq!(started, expected, "`{step}` started once on each of these");
    }
    // The schema upgrade started when every host had the new code and was in maintenance.
    let records: Vec<serde_json::Value> =
        cluster.store.journal().lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    let at = |kind: &str, step: &str| -> Vec<usize> {
        records.iter().enumerate().filter(|(_, r)| r["type"] == kind && r["step"] == step).map(|(i, _)| i).collect()
    };
    let upgrade_started = at("started", "setup-upgrade")[0];
    for step in ["maintenance-on", "composer-update"] {
        let finished = at("finished", step);
        assert_eq!(finished.len(), 3, "{step}");
        assert!(finished.iter().all(|i| *i < upgrade_started), "`{step}` finished everywhere before `setup-upgrade`");
    }
    let status = cluster.store.sandbox.run(&["status"]);
    status.code(0);
    assert!(status.stdout.contains("state    succeeded"), "{}", status.stdout);
    // The step × host grid: a row per step, a column per host.
    let row = |name: &str| -> Vec<String> {
        let line = status.stdout.lines().find(|l| l.starts_with(&format!("  {name}  "))).unwrap_or_default();
        line.trim_start().strip_prefix(name).unwrap_or_default().split_whitespace().map(str::to_owned).collect()
    };
    assert_eq!(row("step"), ["web1", "web2", "admin"], "{}", status.stdout);
    assert_eq!(row("setup-upgrade"), ["·", "·", "ok"], "{}", status.stdout);
    assert_eq!(row("composer-update"), ["ok", "ok", "ok"], "{}", status.stdout);
    assert_eq!(row("maintenance-off (finally)"), ["ok", "ok", "ok"], "{}", status.stdout);
    cluster.assert_no_token();
}

/// `injected-failure` (after `setup:upgrade`) fails on `web2` only: every
/// completed (step, host) pair is undone, newest first. Every host's
/// composer.json, composer.lock and vendor/ are as they were, the shared
/// database is restored byte for byte, maintenance is off everywhere, cron is
/// back on the cron node; exit 1.
fn a_late_failure_on_one_host_brings_every_host_back(db: &Db) {
    let cluster = Cluster::new(db, "store_fleet_fail", 104, &[("web2", "fail_after_upgrade = true")]);
    let dump = db.dump("store_fleet_fail");
    let before: Vec<_> = ["web1", "web2", "admin"]
        .iter()
        .map(|h| {
            let dir = cluster.root(h);
            (
                crate::examples::snapshot_tree(&dir.join("vendor")),
                std::fs::read(dir.join("composer.json")).unwrap(),
                std::fs::read(dir.join("composer.lock")).unwrap(),
            )
        })
        .collect();
    let run = cluster.upshift("run", &[]);
    run.code(1);
    assert!(
        run.stderr.contains("Failed injected-failure on `web2`: exit code 1: injected failure after setup:upgrade"),
        "{}",
        run.stderr
    );
    // The schema was upgraded before the failure: there was something to restore.
    assert!(run.stderr.contains("Finished setup-upgrade on `admin`"), "{}", run.stderr);
    assert!(cluster.started_on("cache-flush").is_empty(), "nothing started after the failure");
    assert_eq!(run.stderr.matches("Rolled back backup-db on `admin`").count(), 1, "{}", run.stderr);
    for host in ["web1", "web2", "admin"] {
        assert!(run.stderr.contains(&format!("Rolled back backup-code on `{host}`")), "{}", run.stderr);
    }
    assert_eq!(db.dump("store_fleet_fail"), dump, "the shared database is restored byte for byte");
    for (host, (vendor, json, lock)) in ["web1", "web2", "admin"].iter().zip(before) {
        let dir = cluster.root(host);
        assert_eq!(cluster.version(host), "1.0.0", "{host}");
        assert_eq!(std::fs::read(dir.join("composer.json")).unwrap(), json, "{host}");
        assert_eq!(std::fs::read(dir.join("composer.lock")).unwrap(), lock, "{host}");
        assert_eq!(crate::examples::snapshot_tree(&dir.join("vendor")), vendor, "vendor/ on {host} is as it was");
        assert!(!dir.join("var/.maintenance.flag").exists(), "maintenance is off on {host}");
        assert!(!dir.join("auth.json").exists(), "auth.json is gone on {host}");
        assert_eq!(dir.join("var/crontab").exists(), *host == "admin", "cron is back on the cron node only: {host}");
    }
    assert_eq!(cluster.started_on("setup-upgrade"), ["admin"]);
    cluster.assert_no_token();
}
