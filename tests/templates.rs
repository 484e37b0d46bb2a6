//! Templates where authors need them: `expect` bounds and regexes, line
//! edits (templated regex, what happens when nothing matches), TOML and JSON
//! edits that keep comments and types, and `step.*` / `run.resumed` across
//! retries and a crash.

use serde_json::json;

use crate::Sandbox;

#[test]
fn expect_bounds_and_regexes_are_templates() {
    let sandbox = Sandbox::new();
    let playbook = sandbox.write(
        "p.toml",
        r#"format = 1
name = "expect"

[vars]
min_free = 100
max_load = 4
release = "2.4.7+build"
pattern = "[a-z]+[0-9]+"

[[check]]
name = "in range"
run = "echo 150"
expect = { min = "{{ min_free }}", max = "{{ min_free * 2 }}" }

[[check]]
name = "too high"
run = "echo 'load 9.5'"
expect = { max = "{{ max_load }}" }

[[check]]
name = "too low"
run = "echo 3"
expect = { min = 3.5 }

[[check]]
name = "literal value"
run = "echo 'v2.4.7+build'"
expect = { regex = "^v{{ release }}$" }

[[check]]
name = "no regex from a value"
run = "echo 'v2.4.77build'"
expect = { regex = "^v{{ release }}$" }

[[check]]
name = "a pattern on purpose"
run = "echo abc123"
expect = { regex = "^{{ pattern | safe }}$", equals = "abc{{ 100 + 23 }}", contains = "{{ 'c1' }}" }
"#,
    );
    let run = sandbox.run(&["plan", &playbook.to_string_lossy()]);
    run.code(3);
    for line in [
        "ok     in range: 150 (between 100 and 200)",
        "FAILED too high: 9.5 (needs at most 4)",
        "FAILED too low: 3 (needs at least 3.5)",
        "ok     literal value: v2.4.7+build",
        r"FAILED no regex from a value: v2.4.77build (does not match `^v2\.4\.7\+build$`)",
        "ok     a pattern on purpose: abc123",
    ] {
        assert!(run.stdout.contains(line), "{line}\n{}", run.stdout);
    }
    assert!(run.stderr.contains("error: not ready: 3 readiness checks failed"), "{}", run.stderr);

    // A bound that does not render to a number is an error at its place.
    let broken = sandbox.write(
        "q.toml",
        "format = 1\nname = \"q\"\n[vars]\nfree = \"lots\"\n[[check]]\nname = \"space\"\nrun = \"echo 1\"\nexpect = { min = \"{{ free }}\" }\n",
    );
    let run = sandbox.run(&["plan", &broken.to_string_lossy()]);
    run.code(2);
    assert!(run.stderr.contains("error: `{{ free }}` renders to `lots`, which is not a number"), "{}", run.stderr);
    assert!(run.stderr.contains("--> q.toml:8:18"), "{}", run.stderr);
}

#[test]
fn a_wrong_key_inside_expect_is_a_key_of_expect() {
    let sandbox = Sandbox::new();
    let playbook = sandbox.write(
        "p.toml",
        "format = 1\nname = \"k\"\n[[check]]\nname = \"c\"\nrun = \"true\"\nexpect = { maximum = 3 }\n[[step]]\nid = \"s\"\nrun = \"true\"\nrollback = { run = \"true\", timout = \"5m\" }\n",
    );
    let run = sandbox.run(&["validate", &playbook.to_string_lossy()]);
    run.code(2);
    assert!(run.stderr.contains("error: unknown key `maximum` in `expect`"), "{}", run.stderr);
    assert!(run.stderr.contains("help: did you mean `max`?"), "{}", run.stderr);
    assert!(!run.stderr.contains("`exec`"), "{}", run.stderr);
    assert!(run.stderr.contains("error: unknown key `timout` in `rollback`"), "{}", run.stderr);
    assert!(run.stderr.contains("help: did you mean `timeout`?"), "{}", run.stderr);
}

const REQUIREMENTS: &str = "requests==2.32.3\n";

fn line_edit(missing: &str) -> String {
    format!(
        r#"format = 1
name = "pin"

[vars]
package = "Django"
django = "5.1.4"
password = "pa$1word"

[[step]]
id = "pin"
edit = {{ path = "requirements.txt", line = {{ regex = '^{{{{ package }}}}==', replace = "{{{{ package }}}}=={{{{ django }}}}"{missing} }} }}

[[step]]
id = "after"
run = "echo after >> log"
"#
    )
}

#[test]
fn a_line_edit_that_matches_nothing_fails_unless_told() {
    let sandbox = Sandbox::new();
    sandbox.write("requirements.txt", REQUIREMENTS);
    let playbook = sandbox.write("p.toml", &line_edit(""));
    let p = playbook.to_string_lossy();
    let plan = sandbox.run(&["plan", &p]);
    plan.code(0);
    assert!(plan.stdout.contains("cannot apply: no line matches `^Django==`"), "{}", plan.stdout);
    let run = sandbox.run(&["run", &p]);
    run.code(1);
    assert!(run.stderr.contains("Failed pin: no line matches `^Django==`"), "{}", run.stderr);
    assert_eq!(sandbox.read("requirements.txt"), REQUIREMENTS);
    assert!(!sandbox.path().join("log").exists(), "the run stopped at the edit");

    // `missing = "append"`: the line is added, once.
    std::fs::write(&playbook, line_edit(", missing = \"append\"")).unwrap();
    let plan = sandbox.run(&["plan", &p]);
    assert!(plan.stdout.contains("become `Django==5.1.4` (appended when none does)"), "{}", plan.stdout);
    assert!(plan.stdout.contains("+Django==5.1.4"), "{}", plan.stdout);
    sandbox.run(&["run", &p]).code(0);
    assert_eq!(sandbox.read("requirements.txt"), "requests==2.32.3\nDjango==5.1.4\n");
    sandbox.run(&["run", &p, "--var", "django=5.1.5"]).code(0);
    assert_eq!(sandbox.read("requirements.txt"), "requests==2.32.3\nDjango==5.1.5\n");

    // `missing = "ignore"`: nothing changes, the run goes on.
    sandbox.write("requirements.txt", REQUIREMENTS);
    std::fs::write(&playbook, line_edit(", missing = \"ignore\"")).unwrap();
    sandbox.run(&["run", &p]).code(0);
    assert_eq!(sandbox.read("requirements.txt"), REQUIREMENTS);

    // A `$` in a value is text, not a capture group; a value in the regex matches literally.
    std::fs::write(&playbook, line_edit("").replace("{{ package }}=={{ django }}\"", "PASSWORD={{ password }}\""))
        .unwrap();
    sandbox.write("requirements.txt", "DjangoX==5.0\nDjango.==1\n");
    sandbox.run(&["run", &p, "--var", "package=Django."]).code(0);
    assert_eq!(sandbox.read("requirements.txt"), "DjangoX==5.0\nPASSWORD=pa$1word\n");
}

#[test]
fn structured_edits_keep_comments_and_value_types() {
    let sandbox = Sandbox::new();
    let toml = "# Gunicorn\n[server]\nworkers = 2  # one per core\ndebug = true\nbind = \"0.0.0.0:8000\"\n";
    let json = "{\n  \"port\": 8000,\n  \"debug\": true,\n  \"name\": \"shop\"\n}\n";
    sandbox.write("app.toml", toml);
    sandbox.write("app.json", json);
    let playbook = sandbox.write(
        "p.toml",
        r#"format = 1
name = "edits"

[vars]
workers = 4
debug = false
port = 8080

[[step]]
id = "toml"
edit = { path = "app.toml", toml = { "server.workers" = "{{ workers }}", "server.debug" = "{{ debug }}", "server.bind" = "0.0.0.0:{{ port }}", "server.timeout" = "{{ 30 }}" } }

[[step]]
id = "json"
edit = { path = "app.json", json = { "/port" = "{{ port }}", "/debug" = "{{ 'true' if debug else 'false' }}", "/workers" = "{{ workers }}" } }
"#,
    );
    let p = playbook.to_string_lossy();
    sandbox.run(&["run", &p]).code(0);
    assert_eq!(
        sandbox.read("app.toml"),
        "# Gunicorn\n[server]\nworkers = 4  # one per core\ndebug = false\nbind = \"0.0.0.0:8080\"\ntimeout = 30\n"
    );
    let edited: serde_json::Value = serde_json::from_str(&sandbox.read("app.json")).unwrap();
    assert_eq!(edited, json!({ "port": 8080, "debug": false, "name": "shop", "workers": 4 }));
    assert!(sandbox.read("app.json").starts_with("{\n  \"port\": 8080,\n  \"debug\": false,"), "layout kept");
    // Text that cannot be the file's type is an error, not a silent change of type.
    let other = sandbox.write(
        "q.toml",
        "format = 1\nname = \"q\"\n[[step]]\nid = \"json\"\nedit = { path = \"app.json\", json = { \"/port\" = \"http\" } }\n",
    );
    let run = sandbox.run(&["plan", &other.to_string_lossy()]);
    assert!(
        run.stdout.contains("cannot apply: `/port` is an integer in the file, and `http` is not"),
        "{}",
        run.stdout
    );
    let run = sandbox.run(&["run", &other.to_string_lossy()]);
    run.code(1);
    assert_eq!(serde_json::from_str::<serde_json::Value>(&sandbox.read("app.json")).unwrap()["port"], 8080);
}

#[test]
fn step_attempt_counts_retries_and_plan_shows_the_first() {
    let sandbox = Sandbox::new();
    let playbook = sandbox.write(
        "p.toml",
        r#"format = 1
name = "retries"

[[step]]
id = "flaky"
run = "echo {{ step.id }} {{ step.attempt }} {{ step.interrupted }} {{ run.resumed }} >> log; test {{ step.attempt }} -ge 3"
retries = 3
retry_delay = "10ms"
rollback = "echo undo {{ step.id }} {{ step.attempt }} >> log"

[[step]]
id = "fails"
run = "exit 1"
"#,
    );
    let p = playbook.to_string_lossy();
    let plan = sandbox.run(&["plan", &p]);
    plan.code(0);
    assert!(plan.stdout.contains("run       echo flaky 1 false false >> log; test 1 -ge 3"), "{}", plan.stdout);
    let run = sandbox.run(&["run", &p, "--format", "json"]);
    run.code(1);
    assert_eq!(sandbox.read("log"), "flaky 1 false false\nflaky 2 false false\nflaky 3 false false\nundo flaky 1\n");
    // Each try is announced with what it runs.
    let started: Vec<serde_json::Value> = run
        .stdout
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .filter(|e| e["event"] == "step_started" && e["step"] == "flaky" && e["phase"] == "step")
        .collect();
    let attempts: Vec<(i64, String)> =
        started.iter().map(|e| (e["attempt"].as_i64().unwrap(), e["action"].as_str().unwrap().to_owned())).collect();
    assert_eq!(attempts.len(), 3, "{}", run.stdout);
    assert_eq!(attempts[2], (3, "echo flaky 3 false false >> log; test 3 -ge 3".to_owned()));
}

#[test]
fn a_step_resumed_after_a_crash_knows_it_was_interrupted() {
    let sandbox = Sandbox::new();
    let playbook = sandbox.write(
        "p.toml",
        r#"format = 1
name = "crash"

[[step]]
id = "before"
run = "echo before {{ step.attempt }} {{ run.resumed }} >> log"

[[step]]
id = "venv"
idempotent = true
run = "echo venv {{ step.attempt }} {{ step.interrupted }} {{ run.resumed }} >> log; {% if step.interrupted %}echo repair >> log{% else %}touch started; sleep 30{% endif %}"

[[step]]
id = "after"
run = "echo after {{ step.attempt }} {{ step.interrupted }} {{ run.resumed }} >> log"
"#,
    );
    let child = crate::engine::spawn(&sandbox, &["run", &playbook.to_string_lossy()]);
    crate::engine::wait_for(&sandbox.path().join("started"));
    crate::engine::signal(&child, "KILL");
    let _ = child.wait_with_output();
    crate::kill_processes_in(sandbox.path());
    assert_eq!(sandbox.read("log"), "before 1 false\nvenv 1 false false\n");
    // The completed step reads `run.resumed`, and is still the same step on resume.
    let resume = sandbox.run(&["resume"]);
    resume.code(0);
    assert!(!resume.stderr.contains("changed since it ran"), "{}", resume.stderr);
    assert_eq!(
        sandbox.read("log"),
        "before 1 false\nvenv 1 false false\nvenv 2 true true\nrepair\nafter 1 false true\n"
    );
}

#[test]
fn the_rollback_of_a_step_cut_short_knows_it_was_interrupted() {
    let sandbox = Sandbox::new();
    let playbook = sandbox.write(
        "p.toml",
        r#"format = 1
name = "crash"

[[step]]
id = "before"
run = "echo before >> log"
rollback = "echo undo {{ step.id }} {{ step.attempt }} {{ step.interrupted }} >> log"

[[step]]
id = "venv"
idempotent = true
run = "touch started; sleep 30"
rollback = "echo undo {{ step.id }} {{ step.attempt }} {{ step.interrupted }} >> log"
"#,
    );
    let child = crate::engine::spawn(&sandbox, &["run", &playbook.to_string_lossy()]);
    crate::engine::wait_for(&sandbox.path().join("started"));
    crate::engine::signal(&child, "KILL");
    let _ = child.wait_with_output();
    crate::kill_processes_in(sandbox.path());
    let rollback = sandbox.run(&["rollback"]);
    rollback.code(0);
    // `venv` may have run in part: its rollback knows, and can repair what it left.
    assert_eq!(sandbox.read("log"), "before\nundo venv 1 true\nundo before 1 false\n");
}
