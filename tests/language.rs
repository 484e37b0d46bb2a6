//! The playbook language end to end: quoting, secrets, environments and
//! precedence, includes, guards, exit codes.

use crate::Sandbox;

const INJECTION: &str = "x'; touch pwned; echo '";

#[test]
fn an_injection_payload_in_a_var_stays_one_literal_argument() {
    let sandbox = Sandbox::new();
    let playbook = sandbox.write(
        "p.toml",
        r#"format = 1
name = "quoting"

[vars]
x = "safe"

[[step]]
id = "echo"
read_only = true
run = "printf '%s|' {{ x }} > out.txt"

[[step]]
id = "argv"
read_only = true
exec = ["sh", "-c", "printf '%s' \"$1\" > argv.txt", "sh", "{{ x }}"]
"#,
    );
    let var = format!("x={INJECTION}");
    let run = sandbox.run(&["plan", &playbook.to_string_lossy(), "--var", &var]);
    run.code(0);
    assert!(!sandbox.path().join("pwned").exists(), "the payload ran as a command");
    assert_eq!(sandbox.read("out.txt"), format!("{INJECTION}|"), "one argument, unchanged");
    assert_eq!(sandbox.read("argv.txt"), INJECTION, "exec elements are not quoted");
    assert!(
        run.stdout.contains(r#"run       printf '%s|' 'x'\''; touch pwned; echo '\''' > out.txt"#),
        "{}",
        run.stdout
    );
}

#[test]
fn safe_splices_raw_text_on_purpose() {
    let sandbox = Sandbox::new();
    let playbook = sandbox.write(
        "p.toml",
        "format = 1\nname = \"safe\"\n[vars]\nflags = \"-a -b\"\n[[step]]\nid = \"s\"\nrun = \"ls {{ flags | safe }} {{ flags }}\"\n",
    );
    let run = sandbox.run(&["plan", &playbook.to_string_lossy()]);
    run.code(0);
    assert!(run.stdout.contains("run       ls -a -b '-a -b'"), "{}", run.stdout);
}

const CANARY: &str = "canary-7f3a9c1e-secret-value";

#[test]
fn plan_never_resolves_or_shows_a_secret() {
    let sandbox = Sandbox::new().env("DEPLOY_TOKEN", CANARY);
    sandbox.write("token.txt", CANARY);
    let playbook = sandbox.write(
        "p.toml",
        r#"format = 1
name = "secrets"

[secrets.token]
env = "DEPLOY_TOKEN"

[secrets.from_file]
file = "token.txt"

[secrets.missing]
env = "NOT_SET_ANYWHERE"

[secrets.from_command]
command = ["sh", "-c", "touch command-ran; echo x"]

[[step]]
id = "read"
read_only = true
run = "echo token={{ secrets.token }}"
env = { TOKEN = "{{ secrets.from_file }}" }

[[step]]
id = "deploy"
run = "deploy --token {{ secrets.token }}"
"#,
    );
    for format in ["text", "json", "markdown"] {
        let run = sandbox.run(&["plan", &playbook.to_string_lossy(), "--format", format]);
        run.code(0);
        assert!(!run.stdout.contains(CANARY) && !run.stderr.contains(CANARY), "{format} leaked the secret");
        if format == "text" {
            assert!(run.stdout.contains("deploy --token '<secret:token>'"), "{}", run.stdout);
            assert!(run.stdout.contains("token         env DEPLOY_TOKEN  present"), "{}", run.stdout);
            assert!(run.stdout.contains("missing       env NOT_SET_ANYWHERE  missing"), "{}", run.stdout);
            assert!(
                run.stdout.contains("from_command  command sh -c 'touch command-ran; echo x'  resolved by `run`"),
                "{}",
                run.stdout
            );
            assert!(
                run.stdout.contains("will run: `plan` does not run it: it reads a secret, which only `run` reads"),
                "{}",
                run.stdout
            );
            assert!(!run.stdout.contains("output    token="), "{}", run.stdout);
        }
    }
    assert!(!sandbox.path().join("command-ran").exists(), "plan ran a secret's command");
    let state = sandbox.path().join(".state");
    assert!(
        !state.exists()
            || crate::examples::snapshot_tree(&state).iter().all(|(_, c)| !String::from_utf8_lossy(c).contains(CANARY))
    );
}

#[test]
fn variables_follow_their_precedence() {
    let sandbox = Sandbox::new();
    sandbox
        .write("environments/staging.toml", "[vars]\nfrom_env = \"env\"\nfrom_file = \"env\"\nfrom_flag = \"env\"\n");
    sandbox.write("vars.toml", "from_file = \"file\"\nfrom_flag = \"file\"\n");
    let playbook = sandbox.write(
        "p.toml",
        r#"format = 1
name = "precedence"

[vars]
base = "playbook"
from_env = "playbook"
from_file = "playbook"
from_flag = "playbook"

[[step]]
id = "show"
run = "echo {{ base }} {{ from_env }} {{ from_file }} {{ from_flag }} {{ env.name }}"
"#,
    );
    let run = sandbox.run(&[
        "plan",
        &playbook.to_string_lossy(),
        "--env",
        "staging",
        "--var-file",
        "vars.toml",
        "--var",
        "from_flag=flag",
    ]);
    run.code(0);
    assert!(run.stdout.contains("run       echo playbook env file flag staging"), "{}", run.stdout);
    // Without an environment the playbook's defaults apply.
    let run = sandbox.run(&["plan", &playbook.to_string_lossy()]);
    assert!(run.stdout.contains("run       echo playbook playbook playbook playbook ''"), "{}", run.stdout);
}

#[test]
fn unknown_environments_and_vars_are_usage_errors() {
    let sandbox = Sandbox::new();
    sandbox.write("environments/staging.toml", "[vars]\nroot = \"/srv\"\n");
    let playbook = sandbox.write(
        "p.toml",
        "format = 1\nname = \"p\"\n[vars]\nroot = \"/\"\n[[step]]\nid = \"a\"\nrun = \"ls {{ root }}\"\n",
    );
    let run = sandbox.run(&["plan", &playbook.to_string_lossy(), "--env", "stagign"]);
    run.code(2);
    assert!(
        run.stderr.contains("no environment `stagign`") && run.stderr.contains("did you mean `staging`?"),
        "{}",
        run.stderr
    );
    let run = sandbox.run(&["plan", &playbook.to_string_lossy(), "--var", "rot=/x"]);
    run.code(2);
    assert!(run.stderr.contains("`--var rot=…` names no variable of this playbook"), "{}", run.stderr);
}

#[test]
fn includes_get_prefixed_ids_params_and_the_outer_guard() {
    let sandbox = Sandbox::new();
    sandbox.write(
        "partials/cache.toml",
        "format = 1\n[params]\ndir = \"var/cache\"\nmode = \"soft\"\n[[step]]\nid = \"clean\"\nrun = \"rm -rf {{ dir }}/* # {{ mode }}\"\n[[step]]\nid = \"warm\"\nwhen = \"mode == 'hard'\"\nrun = \"warm {{ dir }}\"\n",
    );
    let playbook = sandbox.write(
        "p.toml",
        r#"format = 1
name = "includes"

[vars]
root = "/srv/app"
flush = true

[[step]]
id = "flush"
when = "flush"
include = "partials/cache.toml"
with = { dir = "{{ root }}/var/cache" }

[[step]]
id = "again"
when = "not flush"
include = "partials/cache.toml"
"#,
    );
    let run = sandbox.run(&["plan", &playbook.to_string_lossy(), "--format", "json"]);
    run.code(0);
    let plan: serde_json::Value = serde_json::from_str(&run.stdout).unwrap();
    let steps = plan["steps"].as_array().unwrap();
    let ids: Vec<&str> = steps.iter().map(|s| s["id"].as_str().unwrap()).collect();
    assert_eq!(ids, ["flush.clean", "flush.warm", "again.clean", "again.warm"]);
    assert_eq!(steps[0]["action"]["command"], "rm -rf /srv/app/var/cache/* # soft");
    assert_eq!(steps[0]["status"], "will-run");
    assert_eq!(steps[1]["status"], "skipped");
    assert_eq!(steps[1]["reason"], "`mode == 'hard'` is false");
    assert_eq!(steps[2]["status"], "skipped");
    assert_eq!(steps[2]["reason"], "`not flush` is false");
}

#[test]
fn a_guard_on_output_only_run_knows_is_decided_at_run_time() {
    let sandbox = Sandbox::new();
    let playbook = sandbox.write(
        "p.toml",
        r#"format = 1
name = "guards"

[[step]]
id = "probe"
read_only = true
run = "echo yes"

[[step]]
id = "change"
run = "echo changed"

[[step]]
id = "known"
when = "steps.probe.stdout == 'yes'"
run = "echo {{ steps.probe.stdout }}"

[[step]]
id = "unknown"
when = "steps.change.exit_code == 0"
run = "echo {{ steps.change.stdout }}"
"#,
    );
    let run = sandbox.run(&["plan", &playbook.to_string_lossy(), "--format", "json"]);
    run.code(0);
    let plan: serde_json::Value = serde_json::from_str(&run.stdout).unwrap();
    assert_eq!(plan["steps"][0]["output"]["stdout"], "yes");
    assert_eq!(plan["steps"][2]["status"], "will-run");
    assert_eq!(plan["steps"][2]["action"]["command"], "echo yes");
    assert_eq!(plan["steps"][3]["status"], "decided-at-run-time");
    assert_eq!(plan["steps"][3]["reason"], "`steps.change.exit_code == 0` reads `steps.change.exit_code`");
    assert_eq!(plan["steps"][3]["action"]["command"], "echo '<steps.change.stdout>'");
}

#[test]
fn failed_readiness_checks_exit_3_with_every_hint() {
    let sandbox = Sandbox::new();
    let playbook = sandbox.write(
        "p.toml",
        r#"format = 1
name = "readiness"

[[check]]
name = "passes"
run = "echo 8.2.7-1+deb12u1"
expect = { semver = ">=8.2, <8.4" }

[[check]]
name = "too old"
run = "echo 7.4.33"
expect = { semver = "~8.2.0 || ~8.3.0" }
hint = "upgrade PHP"

[[check]]
name = "exits 2"
run = "echo 'upgrade required'; exit 2"
hint = "run setup:upgrade first"

[[step]]
id = "a"
run = "touch changed"
"#,
    );
    let run = sandbox.run(&["plan", &playbook.to_string_lossy()]);
    run.code(3);
    assert!(run.stdout.contains("ok     passes: 8.2.7 (satisfies `>=8.2, <8.4`)"), "{}", run.stdout);
    assert!(run.stdout.contains("FAILED too old: 7.4.33 (needs `~8.2.0 || ~8.3.0`)"), "{}", run.stdout);
    assert!(run.stdout.contains("hint: upgrade PHP"), "{}", run.stdout);
    assert!(
        run.stdout.contains("FAILED exits 2: exit code 2 (expected exit code 0): upgrade required"),
        "{}",
        run.stdout
    );
    assert!(run.stdout.contains("hint: run setup:upgrade first"), "{}", run.stdout);
    assert!(run.stderr.contains("error: not ready: 2 readiness checks failed"), "{}", run.stderr);
    assert!(!sandbox.path().join("changed").exists());
}

#[test]
fn run_dry_run_is_plan() {
    let sandbox = Sandbox::new();
    let playbook = sandbox.write("p.toml", "format = 1\nname = \"p\"\n[[step]]\nid = \"a\"\nrun = \"echo hi\"\n");
    let plan = sandbox.run(&["plan", &playbook.to_string_lossy()]);
    let dry = sandbox.run(&["run", "--dry-run", &playbook.to_string_lossy()]);
    dry.code(0);
    assert_eq!(plan.stdout, dry.stdout);
}

#[test]
fn version_selection_errors_are_clear() {
    let sandbox = Sandbox::new();
    let playbook = sandbox.write(
        "p.toml",
        r#"format = 1
name = "versions"

[version]
scheme = "composer"
current = { run = "echo 'Magento CLI 2.4.6-p3'", regex = '(\d+\.\d+\.\d+(?:-p\d+)?)' }
available = { list = ["2.4.6", "2.4.6-p3", "2.4.6-p10", "2.4.7-beta1", "2.4.7"] }
target = "2.4.6.*"

[[step]]
id = "show"
run = "echo {{ version.current }} {{ version.target }} {{ version.target.patch_level }} {{ version.change }}"
"#,
    );
    let p = playbook.to_string_lossy();
    let run = sandbox.run(&["plan", &p]);
    run.code(0);
    assert!(run.stdout.contains("run       echo 2.4.6-p3 2.4.6-p10 10 patch"), "{}", run.stdout);
    assert!(run.stdout.contains("candidates   2.4.6-p10\n"), "{}", run.stdout);
    // Not available: what is published decides, as readiness does (exit 3).
    let run = sandbox.run(&["plan", &p, "--to", "2.4.8"]);
    run.code(3);
    assert!(run.stderr.contains("`--to 2.4.8` is not an available version"), "{}", run.stderr);
    let run = sandbox.run(&["plan", &p, "--to", "2.4.7"]);
    run.code(2);
    assert!(run.stderr.contains("does not satisfy the target `2.4.6.*`"), "{}", run.stderr);
    let run = sandbox.run(&["plan", &p, "--to", "2.4.7", "--force-version"]);
    run.code(0);
    let broken = sandbox.write(
        "q.toml",
        &std::fs::read_to_string(&playbook).unwrap().replace("echo 'Magento CLI 2.4.6-p3'", "echo 'no version here'"),
    );
    let run = sandbox.run(&["plan", &broken.to_string_lossy()]);
    run.code(3);
    assert!(
        run.stderr.contains("cannot read the current version") && run.stderr.contains("no version here"),
        "{}",
        run.stderr
    );
}
