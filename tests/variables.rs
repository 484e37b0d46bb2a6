//! Variables end to end: types from their declarations (`--var`,
//! `--var-file`, environments, include parameters), how values render,
//! strict environment files, and variables built from other variables.

use serde_json::{Value, json};

use crate::{Run, Sandbox};

fn plan_json(sandbox: &Sandbox, args: &[&str]) -> Value {
    let mut all = vec!["plan", "--format", "json"];
    all.extend_from_slice(args);
    let run = sandbox.run(&all);
    run.code(0);
    serde_json::from_str(&run.stdout).expect("plan json")
}

const TYPED: &str = r#"format = 1
name = "typed"

[vars]
name = "app"
flag = true
workers = 2
ratio = 0.5
locales = ["en_US"]
db = { host = "localhost", port = 5432 }

[[step]]
id = "probe"
read_only = true
run = "touch probe-ran"

[[step]]
id = "one-way"
when = "flag"
run = "echo one-way"

[[step]]
id = "show"
exec = ["echo", "{{ name }}", "{{ flag }}", "{{ workers + 1 }}", "{{ ratio }}", "{{ locales | join(',') }}", "{{ db.host }}:{{ db.port + 1 }}"]
"#;

#[test]
fn a_var_flag_is_read_as_the_declared_type() {
    let sandbox = Sandbox::new();
    let playbook = sandbox.write("p.toml", TYPED);
    let p = playbook.to_string_lossy();
    let plan = plan_json(
        &sandbox,
        &[
            &p,
            "--var",
            "name=false",
            "--var",
            "flag=false",
            "--var",
            "workers=8",
            "--var",
            "ratio=2",
            "--var",
            r#"locales=["en_US", "de_DE"]"#,
            "--var",
            r#"db={ host = "db", port = 6543 }"#,
        ],
    );
    assert_eq!(plan["steps"][1]["status"], "skipped", "`--var flag=false` is false");
    assert_eq!(plan["steps"][1]["reason"], "`flag` is false");
    assert_eq!(
        plan["steps"][2]["action"]["argv"],
        json!(["echo", "false", "false", "9", "2.0", "en_US,de_DE", "db:6544"])
    );
    assert_eq!(
        plan["vars"],
        json!({
            "name": "false", "flag": false, "workers": 8, "ratio": 2.0,
            "locales": ["en_US", "de_DE"], "db": { "host": "db", "port": 6543 }
        })
    );
}

#[test]
fn a_var_flag_of_another_type_is_an_error_naming_the_flag() {
    let sandbox = Sandbox::new();
    let playbook = sandbox.write("p.toml", TYPED);
    let p = playbook.to_string_lossy();
    for (flag, message, help) in [
        ("flag=no", "`--var flag=no`: `flag` is a boolean, and `no` is not", "`--var flag=true` or `--var flag=false`"),
        ("flag=False", "`flag` is a boolean, and `False` is not", "`--var flag=true`"),
        ("workers=abc", "`--var workers=abc`: `workers` is an integer, and `abc` is not", "a whole number"),
        ("workers=1.5", "`workers` is an integer, and `1.5` is not", "`--var workers=4`"),
        ("ratio=half", "`--var ratio=half`: `ratio` is a float, and `half` is not", "a number"),
        ("locales=en_US", "`locales` is an array, and `en_US` is not", "a TOML array"),
        ("db=localhost", "`db` is a table, and `localhost` is not", "a TOML inline table"),
    ] {
        let run = sandbox.run(&["plan", &p, "--var", flag]);
        run.code(2);
        assert!(
            run.stderr.contains(&format!("error: {message}")) || run.stderr.contains(message),
            "{flag}: {}",
            run.stderr
        );
        assert!(run.stderr.contains(help), "{flag}: {}", run.stderr);
        assert!(run.stderr.contains("--> p.toml:"), "points at the declaration: {}", run.stderr);
    }
    assert!(!sandbox.path().join("probe-ran").exists(), "nothing ran");
}

#[test]
fn var_files_and_environments_must_give_the_declared_type() {
    let sandbox = Sandbox::new();
    let playbook = sandbox.write("p.toml", TYPED);
    let p = playbook.to_string_lossy();
    sandbox.write("vars.toml", "workers = 3\nflag = \"yes\"\n");
    let run = sandbox.run(&["plan", &p, "--var-file", "vars.toml"]);
    run.code(2);
    assert!(run.stderr.contains("error: `flag` is a boolean, and this is a string"), "{}", run.stderr);
    assert!(run.stderr.contains("--> vars.toml:2:8"), "{}", run.stderr);
    assert!(run.stderr.contains("note: `flag` is declared as a boolean at p.toml:6:8"), "{}", run.stderr);

    sandbox.write("environments/staging.toml", "[vars]\nworkers = 4.5\nratio = 1\n");
    let run = sandbox.run(&["plan", &p, "--env", "staging"]);
    run.code(2);
    assert!(run.stderr.contains("error: `workers` is an integer, and this is a float"), "{}", run.stderr);
    assert!(run.stderr.contains("--> environments/staging.toml:2:11"), "{}", run.stderr);
    // Without `--env`, `validate` checks every environment the same way.
    sandbox.run(&["validate", &p]).code(2);
    // An integer stands for a float, as in TOML.
    sandbox.write("environments/staging.toml", "[vars]\nworkers = 4\nratio = 1\n");
    let plan = plan_json(&sandbox, &[&p, "--env", "staging"]);
    assert_eq!(plan["vars"]["ratio"], json!(1.0));
    assert_eq!(plan["steps"][2]["action"]["argv"][4], "1.0");
}

#[test]
fn booleans_render_true_and_false_on_every_path() {
    let sandbox = Sandbox::new();
    sandbox.write(
        "partials/show.toml",
        "format = 1\n[params]\non = false\nliteral = true\n[[step]]\nid = \"show\"\nexec = [\"echo\", \"{{ on }}\", \"{{ literal }}\", \"{{ on and literal }}\"]\n",
    );
    let playbook = sandbox.write(
        "p.toml",
        r#"format = 1
name = "booleans"

[vars]
flag = true
list = [true, false, 1, "a"]
table = { on = true }

[[step]]
id = "paths"
exec = ["echo", "{{ flag }}", "{{ vars.flag }}", "{{ list }}", "{{ list[1] }}", "{{ table }}", "{{ table.on }}", "{{ flag | string }}", "{{ not flag }}"]

[[step]]
id = "run"
run = "echo {{ flag }} {{ list[0] }}"

[[step]]
id = "inc"
include = "partials/show.toml"
with = { on = "{{ flag }}", literal = false }
"#,
    );
    let p = playbook.to_string_lossy();
    let plan = plan_json(&sandbox, &[&p]);
    assert_eq!(
        plan["steps"][0]["action"]["argv"],
        json!(["echo", "true", "true", "[true, false, 1, \"a\"]", "false", "{\"on\": true}", "true", "true", "false"])
    );
    assert_eq!(plan["steps"][1]["action"]["command"], "echo true true");
    assert_eq!(plan["steps"][2]["action"]["argv"], json!(["echo", "true", "false", "false"]));
    let plan = plan_json(&sandbox, &[&p, "--var", "flag=false"]);
    assert_eq!(plan["steps"][0]["action"]["argv"][1], "false");
    assert_eq!(plan["steps"][0]["action"]["argv"][2], "false");
    assert_eq!(plan["steps"][2]["action"]["argv"], json!(["echo", "false", "false", "false"]));
}

#[test]
fn an_include_parameter_keeps_its_declared_type() {
    let sandbox = Sandbox::new();
    sandbox.write(
        "partials/gunicorn.toml",
        "format = 1\n[params]\nworkers = 2\n[[step]]\nid = \"restart\"\nexec = [\"restart\", \"--workers\", \"{{ workers * 2 }}\"]\n",
    );
    let playbook = sandbox.write(
        "p.toml",
        "format = 1\nname = \"params\"\n[vars]\ncpus = 3\nlabel = \"three\"\n[[step]]\nid = \"app\"\ninclude = \"partials/gunicorn.toml\"\nwith = { workers = \"{{ cpus }}\" }\n",
    );
    let p = playbook.to_string_lossy();
    let plan = plan_json(&sandbox, &[&p]);
    assert_eq!(plan["steps"][0]["action"]["argv"], json!(["restart", "--workers", "6"]));
    // A value that renders to another type fails where it is given.
    std::fs::write(&playbook, std::fs::read_to_string(&playbook).unwrap().replace("{{ cpus }}", "{{ label }}"))
        .unwrap();
    let run = sandbox.run(&["plan", &p]);
    run.code(2);
    assert!(
        run.stderr.contains("parameter `workers` is an integer, and its value renders to a string (`three`)"),
        "{}",
        run.stderr
    );
    assert!(run.stderr.contains("--> p.toml:8:11"), "at the include: {}", run.stderr);
}

fn validate(sandbox: &Sandbox, args: &[&str]) -> Run {
    let mut all = vec!["validate"];
    all.extend_from_slice(args);
    sandbox.run(&all)
}

#[test]
fn an_environment_may_not_set_what_nothing_reads() {
    let sandbox = Sandbox::new();
    let playbook = sandbox.write(
        "p.toml",
        "format = 1\nname = \"envs\"\n[vars]\nroot = \"/srv/app\"\n[[step]]\nid = \"ls\"\nrun = \"ls {{ root }} {{ extra }}\"\n",
    );
    let p = playbook.to_string_lossy();
    // A variable of the environment's own is fine when a template reads it.
    sandbox.write("environments/staging.toml", "[vars]\nroot = \"/srv/staging\"\nextra = \"-la\"\n");
    let plan = plan_json(&sandbox, &[&p, "--env", "staging"]);
    assert_eq!(plan["steps"][0]["action"]["command"], "ls /srv/staging -la");
    // A typo is not silently ignored (the default root would be used).
    sandbox.write("environments/staging.toml", "[vars]\nrot = \"/srv/staging\"\nextra = \"-la\"\n");
    for run in [validate(&sandbox, &[&p, "--env", "staging"]), validate(&sandbox, &[&p])] {
        run.code(2);
        assert!(run.stderr.contains("error: `rot` is not a variable of this playbook"), "{}", run.stderr);
        assert!(run.stderr.contains("--> environments/staging.toml:2:1"), "{}", run.stderr);
        assert!(run.stderr.contains("help: did you mean `root`?"), "{}", run.stderr);
    }
    // The same for secrets, reserved names and windows, chosen or not.
    sandbox.write(
        "environments/staging.toml",
        "[vars]\nextra = \"\"\nversion = \"1\"\n[secrets.tokn]\nenv = \"TOKEN\"\n[window]\ntimezone = \"Mars/Base\"\nallow = [\"sat 22:00-06:00\"]\n",
    );
    let run = validate(&sandbox, &[&p]);
    run.code(2);
    assert!(run.stderr.contains("`version` is a reserved name in templates"), "{}", run.stderr);
    assert!(run.stderr.contains("`tokn` is not a secret of this playbook"), "{}", run.stderr);
    assert!(run.stderr.contains("unknown time zone `Mars/Base`"), "{}", run.stderr);
}

#[test]
fn vars_are_templates_rendered_in_dependency_order() {
    let sandbox = Sandbox::new();
    let playbook = sandbox.write(
        "p.toml",
        r#"format = 1
name = "django"

[vars]
python = "{{ venv }}/bin/python"
venv = "{{ root }}/venv"
root = "/srv/app"
workers = 2
threads = "{{ workers * 2 }}"
label = "{{ env.name or 'default' }}:{{ vars.root }}"
paths = ["{{ root }}/static", "{{ root }}/media"]

[[step]]
id = "migrate"
exec = ["{{ python }}", "manage.py", "migrate", "--threads={{ threads + 1 }}", "{{ label }}"]
"#,
    );
    sandbox.write("environments/staging.toml", "[vars]\nroot = \"/srv/{{ env.name }}\"\nworkers = 3\n");
    let p = playbook.to_string_lossy();
    let plan = plan_json(&sandbox, &[&p]);
    assert_eq!(
        plan["steps"][0]["action"]["argv"],
        json!(["/srv/app/venv/bin/python", "manage.py", "migrate", "--threads=5", "default:/srv/app"])
    );
    assert_eq!(plan["vars"]["threads"], json!(4), "one expression keeps the value's type");
    assert_eq!(plan["vars"]["paths"], json!(["/srv/app/static", "/srv/app/media"]));
    // Rendered after every override: the environment's root and workers.
    let plan = plan_json(&sandbox, &[&p, "--env", "staging"]);
    assert_eq!(
        plan["steps"][0]["action"]["argv"],
        json!(["/srv/staging/venv/bin/python", "manage.py", "migrate", "--threads=7", "staging:/srv/staging"])
    );
    // `--var` values are data, never templates; they still feed the others.
    let plan = plan_json(&sandbox, &[&p, "--var", "root={{ nope }}", "--var", "workers=10"]);
    assert_eq!(plan["vars"]["venv"], "{{ nope }}/venv");
    assert_eq!(plan["vars"]["threads"], json!(20));
    let plan = plan_json(&sandbox, &[&p, "--var", "python=/usr/bin/python3"]);
    assert_eq!(plan["steps"][0]["action"]["argv"][0], "/usr/bin/python3");
    // A templated var is typed by what it renders to.
    let run = sandbox.run(&["plan", &p, "--var", "threads=many"]);
    run.code(2);
    assert!(run.stderr.contains("`--var threads=many`: `threads` is an integer"), "{}", run.stderr);
}

#[test]
fn var_templates_cannot_form_a_cycle_or_read_secrets() {
    let sandbox = Sandbox::new();
    let playbook = sandbox.write(
        "p.toml",
        "format = 1\nname = \"bad\"\n[vars]\na = \"{{ c }}\"\nb = \"{{ a }}\"\nc = \"x{{ b }}\"\nurl = \"{{ secrets.token }}@{{ version.target }}\"\n[secrets.token]\nenv = \"T\"\n[[step]]\nid = \"s\"\nrun = \"echo {{ a }}\"\n",
    );
    let run = sandbox.run(&["plan", &playbook.to_string_lossy()]);
    run.code(2);
    assert!(run.stderr.contains("error: variables form a cycle: `a` → `c` → `b` → `a`"), "{}", run.stderr);
    assert!(run.stderr.contains("--> p.toml:4:5"), "at the first variable: {}", run.stderr);
    assert!(run.stderr.contains("error: a variable cannot read `secrets`"), "{}", run.stderr);
    assert!(run.stderr.contains("error: a variable cannot read `version`"), "{}", run.stderr);
    assert!(run.stderr.contains("error: found 3 problems"), "{}", run.stderr);
}
