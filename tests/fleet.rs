//! Fleets over real OpenSSH: each test starts its own `sshd`s on loopback
//! addresses (127.0.0.x, free ports) with throwaway host and client keys and
//! their own known_hosts, so that each is a host. A host's identity is its
//! own directory (`root`, `state_dir`), given by host vars. Every sshd is
//! stopped when its test ends.

use std::path::{Path, PathBuf};
use std::process::Child;
use std::time::Duration;

use crate::Sandbox;
use crate::engine::{signal, spawn, wait_for};

/// One sshd: a host of the fleet.
pub(crate) struct Host {
    pub(crate) name: String,
    pub(crate) address: String,
    pub(crate) port: u16,
    /// The host's own directory (its `root`).
    pub(crate) root: PathBuf,
    sshd: Option<Child>,
    config: PathBuf,
}

impl Host {
    /// Stops this host's sshd and every connection it serves: the host is gone.
    pub(crate) fn kill(&mut self) {
        if let Some(mut sshd) = self.sshd.take() {
            let pid = sshd.id();
            // The listener's children serve the open connections.
            for child in descendants(pid) {
                let _ = std::process::Command::new("kill").args(["-s", "KILL", &child.to_string()]).status();
            }
            let _ = sshd.kill();
            let _ = sshd.wait();
        }
    }

    fn start(&mut self) {
        let sshd = std::process::Command::new("/usr/sbin/sshd")
            .args(["-D", "-e", "-f"])
            .arg(&self.config)
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("sshd starts");
        self.sshd = Some(sshd);
        for _ in 0..200 {
            if std::net::TcpStream::connect((self.address.as_str(), self.port)).is_ok() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!("sshd on {}:{} did not start", self.address, self.port);
    }

    /// The lines of the host's `log` (what steps wrote there).
    pub(crate) fn log(&self) -> Vec<String> {
        std::fs::read_to_string(self.root.join("log")).unwrap_or_default().lines().map(str::to_owned).collect()
    }
}

impl Drop for Host {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Every process below `pid` (children first found, then theirs).
fn descendants(pid: u32) -> Vec<u32> {
    let mut found = Vec::new();
    let mut frontier = vec![pid];
    while let Some(parent) = frontier.pop() {
        for entry in std::fs::read_dir("/proc").unwrap().flatten() {
            let Some(child) = entry.file_name().to_str().and_then(|n| n.parse::<u32>().ok()) else { continue };
            let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else { continue };
            let Some(close) = stat.rfind(')') else { continue };
            let ppid = stat[close + 2..].split(' ').nth(1).and_then(|p| p.parse::<u32>().ok());
            if ppid == Some(parent) {
                found.push(child);
                frontier.push(child);
            }
        }
    }
    found
}

fn keygen(path: &Path) {
    let status = std::process::Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-f"])
        .arg(path)
        .status()
        .expect("ssh-keygen runs");
    assert!(status.success());
}

/// Set on a host, it keeps bash (root's login shell here) from reading
/// `~/.bashrc` for each command over ssh (bash does that only at shell level
/// 1): a developer's rc file may start slow tools (pyenv: 0.3 s a command on a
/// busy machine), which a deploy account's plain shell would not.
pub(crate) const QUIET_SHELL: (&str, &str) = ("SHLVL", "1");

/// A few hosts, and an environment file naming them.
pub(crate) struct Fleet {
    pub(crate) hosts: Vec<Host>,
    pub(crate) dir: PathBuf,
}

impl Fleet {
    /// Starts `names.len()` sshds, each `(name, roles)`, on 127.0.0.{first}+.
    pub(crate) fn start(sandbox: &Sandbox, first: u8, names: &[(&str, &[&str])]) -> Fleet {
        Fleet::start_with(sandbox, first, names, &[])
    }

    /// As `start`, with variables every session on the hosts gets (sshd's
    /// `SetEnv`: what a host's own environment would say, `PATH` included).
    /// [`QUIET_SHELL`] among them keeps this machine's `~/.bashrc` out.
    pub(crate) fn start_with(
        sandbox: &Sandbox,
        first: u8,
        names: &[(&str, &[&str])],
        set_env: &[(&str, String)],
    ) -> Fleet {
        assert!(Path::new("/usr/sbin/sshd").exists(), "sshd is missing: run scripts/setup (openssh-server)");
        std::fs::create_dir_all("/run/sshd").expect("sshd's privilege separation directory");
        let dir = sandbox.path().join("fleet");
        std::fs::create_dir_all(&dir).unwrap();
        keygen(&dir.join("client"));
        let mut known_hosts = String::new();
        let mut hosts = Vec::new();
        for (i, (name, _)) in names.iter().enumerate() {
            let address = format!("127.0.0.{}", first as usize + i);
            let port = std::net::TcpListener::bind((address.as_str(), 0)).unwrap().local_addr().unwrap().port();
            let home = dir.join(name);
            std::fs::create_dir_all(home.join("root")).unwrap();
            keygen(&home.join("hostkey"));
            std::fs::copy(dir.join("client.pub"), home.join("authorized_keys")).unwrap();
            let config = home.join("sshd_config");
            let mut sshd_config = format!(
                "ListenAddress {address}:{port}\nHostKey {0}/hostkey\nPidFile {0}/sshd.pid\nAuthorizedKeysFile {0}/authorized_keys\nPermitRootLogin prohibit-password\nPasswordAuthentication no\nKbdInteractiveAuthentication no\nUsePAM no\nStrictModes no\nMaxSessions 50\nMaxStartups 100\nLogLevel ERROR\n",
                home.display()
            );
            if !set_env.is_empty() {
                let pairs: Vec<String> = set_env
                    .iter()
                    .map(|(key, value)| {
                        assert!(!value.contains(['"', ' ', '\n']), "{key}: a value without quotes or blanks");
                        format!("{key}={value}")
                    })
                    .collect();
                sshd_config.push_str(&format!("SetEnv {}\n", pairs.join(" ")));
            }
            std::fs::write(&config, sshd_config).unwrap();
            let key = std::fs::read_to_string(home.join("hostkey.pub")).unwrap();
            let key: Vec<&str> = key.split_whitespace().take(2).collect();
            known_hosts.push_str(&format!("[{address}]:{port} {}\n", key.join(" ")));
            let mut host =
                Host { name: (*name).to_owned(), address, port, root: home.join("root"), sshd: None, config };
            host.start();
            hosts.push(host);
        }
        std::fs::write(dir.join("known_hosts"), known_hosts).unwrap();
        std::fs::write(
            dir.join("ssh_config"),
            format!("Host *\n  IdentityFile {}/client\n  IdentitiesOnly yes\n", dir.display()),
        )
        .unwrap();
        Fleet { hosts, dir }
    }

    /// An environment file: `[hosts.*]` with roles and a `root` var each, `[ssh]`, `[fleet]`.
    pub(crate) fn environment(&self, roles: &[(&str, &[&str])], fleet: &str) -> String {
        self.environment_with(roles, fleet, &[])
    }

    /// As `environment`, with more host vars: `(host, "key = value, …")`.
    pub(crate) fn environment_with(&self, roles: &[(&str, &[&str])], fleet: &str, vars: &[(&str, &str)]) -> String {
        let mut text = String::new();
        for host in &self.hosts {
            let roles = roles.iter().find(|(n, _)| *n == host.name).map_or(&[][..], |(_, r)| *r);
            let roles: Vec<String> = roles.iter().map(|r| format!("\"{r}\"")).collect();
            let extra: String = vars.iter().filter(|(n, _)| *n == host.name).map(|(_, v)| format!(", {v}")).collect();
            text.push_str(&format!(
                "[hosts.{}]\nssh = \"root@{}:{}\"\nroles = [{}]\nstate_dir = \"{}/state\"\nvars = {{ root = \"{}\"{extra} }}\n\n",
                host.name,
                host.address,
                host.port,
                roles.join(", "),
                host.root.parent().unwrap().display(),
                host.root.display()
            ));
        }
        text.push_str(&format!(
            "[ssh]\nconfig = \"{0}/ssh_config\"\nknown_hosts = \"{0}/known_hosts\"\nconnect_timeout = \"5s\"\n\n{fleet}\n",
            self.dir.display()
        ));
        text
    }

    pub(crate) fn host(&self, name: &str) -> &Host {
        self.hosts.iter().find(|h| h.name == name).unwrap()
    }
}

const ROLES: [(&str, &[&str]); 3] = [("web1", &["web"]), ("web2", &["web"]), ("admin", &["admin", "cron"])];

/// A playbook over the fleet; `extra` goes at the end.
fn playbook(sandbox: &Sandbox, fleet: &Fleet, fleet_table: &str, body: &str) -> PathBuf {
    sandbox.write("fleet/playbook/environments/production.toml", &fleet.environment(&ROLES, fleet_table));
    sandbox.write(
        "fleet/playbook/upgrade.toml",
        &format!("format = 1\nname = \"fleet\"\n[vars]\nroot = \"/nowhere\"\n\n{body}"),
    )
}

fn run(sandbox: &Sandbox, playbook: &Path, args: &[&str]) -> crate::Run {
    let mut argv = vec!["run", playbook.to_str().unwrap(), "--env", "production"];
    argv.extend_from_slice(args);
    sandbox.run(&argv)
}

/// A step that logs `ID` into the host's `root/log`, and `undo-ID` on rollback.
fn logged(id: &str, extra: &str) -> String {
    format!(
        "[[step]]\nid = \"{id}\"\nrun = \"echo {id} >> {{{{ root }}}}/log\"\nrollback = \"echo undo-{id} >> {{{{ root }}}}/log\"\n{extra}\n"
    )
}

#[test]
fn a_playbook_runs_over_three_hosts_with_roles_and_once() {
    let sandbox = Sandbox::new();
    let fleet = Fleet::start(&sandbox, 71, &ROLES);
    let body = format!(
        "{}{}{}{}[[finally]]\nid = \"done\"\nrun = \"echo done-{{{{ host.name }}}} >> {{{{ root }}}}/log\"\n",
        logged("maintenance-on", ""),
        logged("code", "on = \"web\""),
        logged("setup-upgrade", "once = true\non = \"admin\""),
        logged("flush", "once = true"),
    );
    let playbook = playbook(&sandbox, &fleet, "[fleet]\nparallel = 3\n", &body);
    let plan = sandbox.run(&["plan", playbook.to_str().unwrap(), "--env", "production"]);
    plan.code(0);
    assert!(plan.stdout.contains("a fleet of 3 hosts"), "{}", plan.stdout);
    let run = run(&sandbox, &playbook, &[]);
    run.code(0);
    assert_eq!(fleet.host("web1").log(), ["maintenance-on", "code", "flush", "done-web1"]);
    assert_eq!(fleet.host("web2").log(), ["maintenance-on", "code", "done-web2"]);
    assert_eq!(fleet.host("admin").log(), ["maintenance-on", "setup-upgrade", "done-admin"]);
    assert!(run.stderr.contains("Finished code on `web2`"), "{}", run.stderr);
    let status = sandbox.run(&["status", "--format", "json"]);
    let json: serde_json::Value = serde_json::from_str(&status.stdout).unwrap();
    assert_eq!(json["runs"][0]["state"], "succeeded");
    // Each step's outcome names its host.
    let ran: Vec<(&str, &str)> = json["runs"][0]["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| (s["step"].as_str().unwrap(), s["host"].as_str().unwrap()))
        .collect();
    assert!(ran.contains(&("setup-upgrade", "admin")) && ran.contains(&("code", "web2")), "{ran:?}");
    assert_eq!(ran.iter().filter(|(step, _)| *step == "flush").count(), 1, "{ran:?}");
    let status = sandbox.run(&["status"]);
    // A step × host grid: `·` where a step did not run on a host.
    let grid = [
        "  step            web1         web2         admin",
        "  maintenance-on  ok           ok           ok",
        "  code            ok           ok           ·",
        "  setup-upgrade   ·            ·            ok",
        "  flush           ok           ·            ·",
        "  done (finally)  ok           ok           ok",
    ]
    .join("\n");
    assert!(status.stdout.contains(&grid), "{}", status.stdout);
}

#[test]
fn a_failure_on_one_host_rolls_back_every_host() {
    let sandbox = Sandbox::new();
    let fleet = Fleet::start(&sandbox, 74, &ROLES);
    let body = format!(
        "{}{}[[step]]\nid = \"boom\"\nrun = \"test {{{{ host.name }}}} != web2\"\n{}",
        logged("one", ""),
        logged("two", ""),
        logged("never", ""),
    );
    let playbook = playbook(&sandbox, &fleet, "", &body);
    let run = run(&sandbox, &playbook, &[]);
    run.code(1);
    for host in ["web1", "web2", "admin"] {
        assert_eq!(fleet.host(host).log(), ["one", "two", "undo-two", "undo-one"], "{host}: {}", run.stderr);
    }
    assert!(run.stderr.contains("Failed boom on `web2`"), "{}", run.stderr);
}

#[test]
fn an_unknown_host_key_is_a_readiness_failure_naming_the_host() {
    let sandbox = Sandbox::new();
    let fleet = Fleet::start(&sandbox, 77, &ROLES);
    let playbook = playbook(&sandbox, &fleet, "", &logged("one", ""));
    // Forget web2's key.
    let known = std::fs::read_to_string(fleet.dir.join("known_hosts")).unwrap();
    let web2 = fleet.host("web2");
    let kept: Vec<&str> = known.lines().filter(|l| !l.starts_with(&format!("[{}]", web2.address))).collect();
    std::fs::write(fleet.dir.join("known_hosts"), format!("{}\n", kept.join("\n"))).unwrap();
    let run = run(&sandbox, &playbook, &[]);
    run.code(3);
    assert!(
        run.stderr.contains("host `web2`") && run.stderr.contains("host key is not in known_hosts"),
        "{}",
        run.stderr
    );
    for host in &fleet.hosts {
        assert!(host.log().is_empty(), "nothing ran on {}", host.name);
    }
}

#[test]
fn rolling_batches_run_the_included_steps_batch_by_batch() {
    let sandbox = Sandbox::new();
    let fleet = Fleet::start(&sandbox, 80, &ROLES);
    sandbox
        .write("fleet/playbook/rolling.toml", &format!("format = 1\n{}{}", logged("drain", ""), logged("deploy", "")));
    let body = "[[step]]\nid = \"roll\"\ninclude = \"rolling.toml\"\nserial = 1\non = \"web\"\n";
    let playbook = playbook(&sandbox, &fleet, "", body);
    let run = run(&sandbox, &playbook, &["-v"]);
    run.code(0);
    let order: Vec<&str> = run
        .stderr
        .lines()
        .filter_map(|l| l.trim().strip_prefix("Finished "))
        .map(|l| l.split(" in ").next().unwrap())
        .collect();
    assert_eq!(
        order[..4],
        ["roll.drain on `web1`", "roll.deploy on `web1`", "roll.drain on `web2`", "roll.deploy on `web2`"],
        "{}",
        run.stderr
    );
    assert!(fleet.host("admin").log().is_empty());
}

#[test]
fn a_second_controller_is_refused_by_the_host_lock_and_the_marker() {
    let sandbox = Sandbox::new();
    let fleet = Fleet::start(&sandbox, 83, &ROLES);
    let body = format!(
        "{}[[step]]\nid = \"slow\"\nrun = \"touch {{{{ root }}}}/started; while [ ! -f {{{{ root }}}}/go ]; do sleep 0.1; done\"\n",
        logged("one", "")
    );
    let playbook = playbook(&sandbox, &fleet, "", &body);
    let p = playbook.to_string_lossy().into_owned();
    let child = spawn(&sandbox, &["run", &p, "--env", "production"]);
    wait_for(&fleet.host("admin").root.join("started"));
    // Another controller: its own state dir.
    let other = sandbox.run(&["--state-dir", "other-state", "run", &p, "--env", "production"]);
    other.code(5);
    assert!(other.stderr.contains("another upshift holds a host"), "{}", other.stderr);
    assert!(other.stderr.contains(&format!("pid {}", child.id())), "{}", other.stderr);
    // The first controller dies: its lock goes with it, its marker stays.
    signal(&child, "KILL");
    let _ = child.wait_with_output();
    std::thread::sleep(Duration::from_millis(500));
    let other = sandbox.run(&["--state-dir", "other-state", "run", &p, "--env", "production"]);
    other.code(5);
    assert!(other.stderr.contains("carries the marker of another unfinished run"), "{}", other.stderr);
    // Its own controller resumes it (stopping what still runs), and the markers go.
    for host in &fleet.hosts {
        std::fs::write(host.root.join("go"), "").unwrap();
    }
    let resume = sandbox.run(&["resume", "--kill-orphans", "--retry-interrupted"]);
    resume.code(0);
    for host in &fleet.hosts {
        assert_eq!(host.log(), ["one"], "`one` ran once on {}", host.name);
    }
    sandbox.run(&["--state-dir", "other-state", "run", &p, "--env", "production"]).code(0);

    // Killed again: the other controller may take over, naming the run it overrides.
    for host in &fleet.hosts {
        std::fs::remove_file(host.root.join("go")).unwrap();
        std::fs::remove_file(host.root.join("started")).unwrap();
    }
    let child = spawn(&sandbox, &["run", &p, "--env", "production"]);
    wait_for(&fleet.host("admin").root.join("started"));
    signal(&child, "KILL");
    let _ = child.wait_with_output();
    std::thread::sleep(Duration::from_millis(500));
    let status = sandbox.run(&["status", "--format", "json"]);
    let json: serde_json::Value = serde_json::from_str(&status.stdout).unwrap();
    let killed = json["runs"].as_array().unwrap().iter().find(|r| r["unfinished"] == true).unwrap()["run_id"]
        .as_str()
        .unwrap()
        .to_owned();
    for host in &fleet.hosts {
        std::fs::write(host.root.join("go"), "").unwrap();
    }
    let wrong = sandbox.run(&["--state-dir", "other-state", "run", &p, "--env", "production", "--override", "nope"]);
    wrong.code(5);
    assert!(wrong.stderr.contains(&format!("run {killed}")), "{}", wrong.stderr);
    sandbox.run(&["--state-dir", "other-state", "run", &p, "--env", "production", "--override", &killed]).code(0);
}

#[test]
fn a_host_that_dies_mid_run_fails_as_unreachable_and_the_fleet_rolls_back() {
    let sandbox = Sandbox::new();
    let mut fleet = Fleet::start(&sandbox, 86, &ROLES);
    let body = format!(
        "{}[[step]]\nid = \"hang\"\nrun = \"if [ {{{{ host.name }}}} = web2 ]; then touch {{{{ root }}}}/started; sleep 60; fi\"\ntimeout = \"40s\"\n{}",
        logged("one", ""),
        logged("never", "")
    );
    let playbook = playbook(&sandbox, &fleet, "", &body);
    let p = playbook.to_string_lossy().into_owned();
    let child = spawn(&sandbox, &["run", &p, "--env", "production"]);
    let started = fleet.host("web2").root.join("started");
    wait_for(&started);
    let since = std::time::Instant::now();
    fleet.hosts.iter_mut().find(|h| h.name == "web2").unwrap().kill();
    let output = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(since.elapsed() < Duration::from_secs(30), "it hung: {:?}\n{stderr}", since.elapsed());
    // web2 cannot be rolled back (it is gone): exit 4, naming it.
    assert_eq!(output.status.code(), Some(4), "{stderr}");
    assert!(stderr.contains("`web2` is unreachable"), "{stderr}");
    assert!(stderr.contains("left") && stderr.contains("web2"), "{stderr}");
    for host in ["web1", "admin"] {
        assert_eq!(fleet.host(host).log(), ["one", "undo-one"], "{host}: {stderr}");
    }
    assert_eq!(fleet.host("web2").log(), ["one"]);
}

#[test]
fn after_a_kill_resume_runs_only_the_unfinished_pairs() {
    let sandbox = Sandbox::new();
    let fleet = Fleet::start(&sandbox, 89, &ROLES);
    let body = format!(
        "{}[[step]]\nid = \"b\"\nrun = \"echo b >> {{{{ root }}}}/log; if [ {{{{ host.name }}}} = admin ]; then touch {{{{ root }}}}/started; while [ ! -f {{{{ root }}}}/go ]; do sleep 0.1; done; fi\"\nidempotent = true\n{}",
        logged("a", ""),
        logged("c", "")
    );
    let playbook = playbook(&sandbox, &fleet, "", &body);
    let p = playbook.to_string_lossy().into_owned();
    let child = spawn(&sandbox, &["run", &p, "--env", "production"]);
    wait_for(&fleet.host("admin").root.join("started"));
    std::thread::sleep(Duration::from_millis(500));
    signal(&child, "KILL");
    let _ = child.wait_with_output();
    // The remote step went with the lost connection: nothing is left running.
    std::fs::write(fleet.host("admin").root.join("go"), "").unwrap();
    let status = sandbox.run(&["status"]);
    assert!(status.stdout.contains("stopped during `b`"), "{}", status.stdout);
    let resume = sandbox.run(&["resume"]);
    resume.code(0);
    assert!(resume.stderr.contains("`b` on `admin` was interrupted; running it again"), "{}", resume.stderr);
    assert_eq!(fleet.host("web1").log(), ["a", "b", "c"]);
    assert_eq!(fleet.host("web2").log(), ["a", "b", "c"]);
    assert_eq!(fleet.host("admin").log(), ["a", "b", "b", "c"], "only the interrupted pair ran again");
}

#[test]
fn max_fail_lets_the_others_go_on_and_names_what_is_left() {
    let sandbox = Sandbox::new();
    let fleet = Fleet::start(&sandbox, 92, &ROLES);
    let body = format!(
        "{}[[step]]\nid = \"boom\"\nrun = \"test {{{{ host.name }}}} != web2\"\n{}",
        logged("one", ""),
        logged("two", "")
    );
    let playbook = playbook(&sandbox, &fleet, "[fleet]\nmax_fail = 1\n", &body);
    let run = run(&sandbox, &playbook, &["--format", "json"]);
    run.code(4);
    assert_eq!(fleet.host("web1").log(), ["one", "two"]);
    assert_eq!(fleet.host("admin").log(), ["one", "two"]);
    assert_eq!(fleet.host("web2").log(), ["one"], "nothing more ran on the failed host");
    let events: Vec<serde_json::Value> = run.stdout.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    let finished: Vec<(&str, &str, &str)> = events
        .iter()
        .filter(|e| e["event"] == "step_finished")
        .map(|e| (e["step"].as_str().unwrap(), e["host"].as_str().unwrap(), e["outcome"].as_str().unwrap()))
        .collect();
    assert!(finished.contains(&("boom", "web2", "failed")), "{finished:?}");
    assert!(finished.contains(&("two", "admin", "ok")), "{finished:?}");
    let end = events.last().unwrap();
    assert!(end["left"][0].as_str().unwrap().contains("host `web2` failed at `boom`"), "{end}");
}

#[test]
fn edits_and_templates_change_each_hosts_own_file_and_plan_groups_them() {
    let sandbox = Sandbox::new();
    let fleet = Fleet::start(&sandbox, 95, &ROLES);
    for host in &fleet.hosts {
        std::fs::write(host.root.join("app.json"), "{\n  \"version\": \"1.0.0\"\n}\n").unwrap();
    }
    // admin's file differs: its diff is shown apart.
    std::fs::write(fleet.host("admin").root.join("app.json"), "{\n  \"version\": \"0.9.0\"\n}\n").unwrap();
    sandbox.write("fleet/playbook/motd.j2", "on {{ host.name }}\n");
    let body = "[[step]]\nid = \"hello\"\nrun = \"echo hello\"\n\n[[step]]\nid = \"bump\"\nedit = { path = \"{{ root }}/app.json\", json = { \"/version\" = \"1.1.0\" } }\n\n[[step]]\nid = \"motd\"\ntemplate = { src = \"motd.j2\", dest = \"{{ root }}/motd\" }\n\n[[step]]\nid = \"fail\"\nrun = \"test -f {{ root }}/fail-here && exit 1 || true\"\n";
    let playbook = playbook(&sandbox, &fleet, "", body);
    let plan = sandbox.run(&["plan", playbook.to_str().unwrap(), "--env", "production"]);
    plan.code(0);
    assert!(
        plan.stdout.contains("\"version\": \"0.9.0\"") && plan.stdout.contains("\"version\": \"1.0.0\""),
        "{}",
        plan.stdout
    );
    assert!(
        plan.stdout.contains("on        web1, web2, admin\n      will run\n      run       echo hello"),
        "identical renderings are grouped: {}",
        plan.stdout
    );
    assert!(plan.stdout.contains("      on        admin\n"), "a host's own rendering is shown apart: {}", plan.stdout);
    run(&sandbox, &playbook, &[]).code(0);
    for host in &fleet.hosts {
        assert!(std::fs::read_to_string(host.root.join("app.json")).unwrap().contains("1.1.0"));
        assert_eq!(std::fs::read_to_string(host.root.join("motd")).unwrap(), format!("on {}\n", host.name));
    }
    // A second run fails on admin: every host's files go back.
    for host in &fleet.hosts {
        std::fs::write(host.root.join("app.json"), "{\n  \"version\": \"1.0.0\"\n}\n").unwrap();
        std::fs::remove_file(host.root.join("motd")).unwrap();
    }
    std::fs::write(fleet.host("admin").root.join("fail-here"), "").unwrap();
    run(&sandbox, &playbook, &[]).code(1);
    for host in &fleet.hosts {
        assert_eq!(std::fs::read_to_string(host.root.join("app.json")).unwrap(), "{\n  \"version\": \"1.0.0\"\n}\n");
        assert!(!host.root.join("motd").exists(), "{}", host.name);
    }
}

#[test]
fn a_saved_plan_runs_exactly_over_the_fleet_and_a_hosts_changed_file_refuses_it() {
    let sandbox = Sandbox::new();
    let fleet = Fleet::start(&sandbox, 98, &ROLES);
    for host in &fleet.hosts {
        std::fs::write(host.root.join("app.json"), "{\n  \"version\": \"1.0.0\"\n}\n").unwrap();
    }
    let body = format!(
        "{}[[step]]\nid = \"bump\"\nedit = {{ path = \"{{{{ root }}}}/app.json\", json = {{ \"/version\" = \"1.1.0\" }} }}\n",
        logged("code", "on = \"web\"")
    );
    let playbook = playbook(&sandbox, &fleet, "[fleet]\nparallel = 3\n", &body);
    let plan_file = sandbox.path().join("reviewed.json");
    let plan =
        sandbox.run(&["plan", playbook.to_str().unwrap(), "--env", "production", "--out", plan_file.to_str().unwrap()]);
    plan.code(0);
    let saved: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&plan_file).unwrap()).unwrap();
    let hosts: Vec<&str> = saved["files"].as_array().unwrap().iter().map(|f| f["host"].as_str().unwrap()).collect();
    assert_eq!(hosts, ["web1", "web2", "admin"], "each host's file is digested where it is");

    // admin's file changes after the review: the run is refused, naming the host.
    std::fs::write(fleet.host("admin").root.join("app.json"), "{\n  \"version\": \"0.9.0\"\n}\n").unwrap();
    let check = sandbox.run(&["plan", "--check", plan_file.to_str().unwrap()]);
    check.code(3);
    assert!(check.stderr.contains("app.json` on `admin` changed since the plan"), "{}", check.stderr);
    let refused = sandbox.run(&["run", "--plan", plan_file.to_str().unwrap()]);
    refused.code(3);
    assert!(refused.stderr.contains("on `admin` changed since the plan"), "{}", refused.stderr);
    for host in &fleet.hosts {
        assert!(host.log().is_empty(), "nothing ran on {}", host.name);
    }

    // Put back as reviewed: the plan runs, on every host, once.
    std::fs::write(fleet.host("admin").root.join("app.json"), "{\n  \"version\": \"1.0.0\"\n}\n").unwrap();
    sandbox.run(&["run", "--plan", plan_file.to_str().unwrap()]).code(0);
    assert_eq!(fleet.host("web1").log(), ["code"]);
    assert!(fleet.host("admin").log().is_empty());
    for host in &fleet.hosts {
        assert!(std::fs::read_to_string(host.root.join("app.json")).unwrap().contains("1.1.0"), "{}", host.name);
    }
    let again = sandbox.run(&["run", "--plan", plan_file.to_str().unwrap()]);
    again.code(5);
    assert!(again.stderr.contains("was applied already"), "{}", again.stderr);

    // The finished fleet run is undone on every host.
    let undo = sandbox.run(&["rollback", "--yes"]);
    undo.code(0);
    assert!(undo.stderr.contains("`bump` on `admin`: restore"), "{}", undo.stderr);
    assert_eq!(fleet.host("web1").log(), ["code", "undo-code"]);
    assert_eq!(fleet.host("web2").log(), ["code", "undo-code"]);
    for host in &fleet.hosts {
        assert_eq!(
            std::fs::read_to_string(host.root.join("app.json")).unwrap(),
            "{\n  \"version\": \"1.0.0\"\n}\n",
            "{}",
            host.name
        );
    }
}
