//! Values are never executed and arrive as written: an injection corpus pushed
//! through every place a value can be interpolated, in every shell quoting
//! context, on the real `sh` (dash) and `bash`; the issue's own cases; and the
//! places where no quoting is safe, refused at `validate` or before anything runs.

use std::path::Path;

use crate::Sandbox;

/// Payloads that try to run `touch PWNED`, or to change how a command reads,
/// or that are merely awkward (empty, long, binary-ish, unicode).
fn corpus() -> Vec<String> {
    let mut payloads: Vec<String> = [
        "plain",
        "",
        " ",
        "/var/www/my shop",
        "it's",
        "\"quoted\"",
        "'",
        "\"",
        "'\\''",
        "\"'\"'\"'",
        "$(touch PWNED)",
        "`touch PWNED`",
        "${HOME}",
        "$HOME",
        "${x:-$(touch PWNED)}",
        "$1",
        "$",
        "$$",
        "\\",
        "a\\",
        "\\$(touch PWNED)",
        "\\\"; touch PWNED; \\\"",
        "'; touch PWNED; '",
        "\"; touch PWNED; \"",
        "; touch PWNED",
        "& touch PWNED &",
        "| touch PWNED",
        "&& touch PWNED",
        "|| touch PWNED",
        "> PWNED",
        ">> PWNED",
        "< /etc/passwd",
        "a\nb",
        "\n",
        "line\n",
        "x\ntouch PWNED\n",
        "x'\ntouch PWNED\n'",
        "\r\n",
        "\ttab",
        "*",
        "?",
        "[a-z]*",
        "{a,b}",
        "!",
        "~",
        "~root",
        "~/x",
        "-n",
        "--help",
        "-e touch PWNED",
        "-",
        "2",
        "#",
        "# touch PWNED",
        "a=b",
        "=",
        "%",
        "^",
        "if",
        "then",
        "esac",
        ")",
        "(",
        "((1))",
        "$((1+1))",
        "$[1]",
        "EOF",
        "\u{1}\u{7}\u{1b}[31mred\u{1b}[0m\u{7f}",
        "héllo wörld ✓ 💥 \u{202e}rtl\u{202c} zero\u{200b}width",
        "\u{E000}000000000000000000000000000000000000000:0\u{E001}",
        "{{ x }}",
        "{% raw %}",
        "{# c #}",
    ]
    .map(String::from)
    .to_vec();
    payloads.push("long ".repeat(4000) + "$(touch PWNED)");
    payloads
}

/// `text` as a TOML string.
fn toml(text: &str) -> String {
    toml::Value::String(text.to_owned()).to_string()
}

/// One line of a script per payload: `{}` is the payload's index.
fn lines(n: usize, line: &str) -> String {
    (0..n).map(|i| line.replace("{}", &i.to_string())).collect::<Vec<_>>().join("\n")
}

/// Payloads usable as a file name.
fn file_names(payloads: &[String]) -> Vec<usize> {
    (0..payloads.len())
        .filter(|i| {
            let p = &payloads[*i];
            !p.is_empty() && !p.contains('/') && p != "." && p != ".." && p.len() < 200
        })
        .collect()
}

/// Any file named `PWNED` anywhere in the sandbox: a payload ran.
fn pwned(dir: &Path) -> Vec<std::path::PathBuf> {
    crate::examples::snapshot_tree(dir)
        .into_iter()
        .map(|(path, _)| path)
        .filter(|path| path.file_name().is_some_and(|n| n == "PWNED"))
        .collect()
}

/// The corpus as vars: a third in the playbook (those that do not read as
/// template syntax), a third through `--var-file`, a third through `--var`.
/// Returns the `[vars]` table and the arguments.
fn bind(sandbox: &Sandbox, payloads: &[String], out: &Path) -> (String, Vec<String>) {
    let mut vars = String::from("[vars]\n");
    let mut file = format!("out = {}\n", toml(&out.display().to_string()));
    let mut args = Vec::new();
    vars.push_str("out = \"unset\"\n");
    for (i, payload) in payloads.iter().enumerate() {
        // `[vars]` values are templates: text that reads as template syntax
        // goes where values are data.
        let template_like = ["{{", "{%", "{#"].iter().any(|t| payload.contains(t));
        match i % 3 {
            0 if !template_like => vars.push_str(&format!("p{i} = {}\n", toml(payload))),
            0 | 1 => {
                vars.push_str(&format!("p{i} = \"unset\"\n"));
                file.push_str(&format!("p{i} = {}\n", toml(payload)));
            }
            _ => {
                vars.push_str(&format!("p{i} = \"unset\"\n"));
                args.push(format!("--var=p{i}={payload}"));
            }
        }
    }
    let var_file = sandbox.write("corpus-vars.toml", &file);
    args.push(format!("--var-file={}", var_file.display()));
    (vars, args)
}

/// The same corpus lands intact in every context of every place that takes a
/// value, and nothing in it runs.
#[test]
fn the_injection_corpus_arrives_intact_everywhere_and_never_runs() {
    // An `ssh` that runs its remote command here, joined as the real one does.
    let bin = tempfile::tempdir().unwrap();
    let ssh = bin.path().join("ssh");
    std::fs::write(&ssh, "#!/bin/sh\n[ \"$1\" = -p ] && shift 2\nshift\nexec sh -c \"$*\"\n").unwrap();
    std::fs::set_permissions(&ssh, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let sandbox = Sandbox::new().with_path(bin.path().to_path_buf());
    let payloads = corpus();
    let n = payloads.len();
    let out = sandbox.path().join("out");
    std::fs::create_dir_all(out.join("dirs")).unwrap();
    std::fs::create_dir_all(out.join("made")).unwrap();
    std::fs::write(out.join("data.json"), "{}\n").unwrap();
    let names = file_names(&payloads);
    for i in &names {
        std::fs::create_dir_all(out.join("dirs").join(&payloads[*i])).unwrap();
        std::fs::write(out.join("made").join(&payloads[*i]), "").unwrap();
    }
    let (mut vars, args) = bind(&sandbox, &payloads, &out);
    vars.push_str("shell = \"sh\"\n");

    // Each place and context: its steps, and what each payload must become.
    let sh = [
        ("word", "printf '%s' {{ p{} }} > {{ out }}/word-{}"),
        ("tight", "printf '%s' {{ p{} }}>{{ out }}/tight-{}"),
        ("glued", "printf '%s' x{{ p{} }}y > {{ out }}/glued-{}"),
        ("dq", "printf '%s' \"{{ p{} }}\" > \"{{ out }}/dq-{}\""),
        ("sq", "printf '%s' '{{ p{} }}' > '{{ out }}/sq-{}'"),
        (
            "subst",
            "v=\"$(printf '%s.' \"{{ p{} }}\")\"; w=$(printf '%s.' {{ p{} }}); [ \"$v\" = \"$w\" ] && printf '%s' \"${v%.}\" > {{ out }}/subst-{}",
        ),
        ("assign", "v={{ p{} }}; printf '%s' \"$v\" > {{ out }}/assign-{}"),
        (
            "case",
            "case {{ p{} }} in {{ p{} }}) printf '%s' {{ p{} }} > {{ out }}/case-{};; *) : > {{ out }}/case-{};; esac",
        ),
        ("here", "cat > {{ out }}/here-{} <<PAYLOAD_END\n{{ p{} }}\nPAYLOAD_END"),
        ("qhere", "cat > {{ out }}/qhere-{} <<'PAYLOAD_END'\n{{ p{} }}\nPAYLOAD_END"),
        // Another shell reads these again: `| quote` quotes for it, then for where it lands.
        ("evalq", "eval printf \"'%s'\" {{ p{} | quote }} > {{ out }}/evalq-{}"),
        ("shcq", "sh -c \"printf '%s' {{ p{} | quote }}\" > {{ out }}/shcq-{}"),
        ("stdin", "sh > {{ out }}/stdin-{} <<PAYLOAD_END\nprintf '%s' {{ p{} | quote }}\nPAYLOAD_END"),
        ("sshq", "ssh host \"printf '%s' {{ p{} | quote }} > {{ out | quote }}/sshq-{}\""),
        // A here-document opened in a subshell reads its body after the line.
        ("subhere", "(cat > {{ out }}/subhere-{} <<PAYLOAD_END)\n{{ p{} }}\nPAYLOAD_END"),
        // Wrappers with options still lead to the shell they start.
        ("wrapq", "timeout -s KILL 30 env -u X sh -c \"printf '%s' {{ p{} | quote }}\" > {{ out }}/wrapq-{}"),
        ("trapq", "(trap \"printf '%s' {{ p{} | quote }} > {{ out | quote }}/trapq-{}\" EXIT)"),
        ("dotq", ". /dev/stdin > {{ out }}/dotq-{} <<PAYLOAD_END\nprintf '%s' {{ p{} | quote }}\nPAYLOAD_END"),
    ];
    let bash = [
        ("ansi", "printf '%s' $'{{ p{} }}' > {{ out }}/ansi-{}"),
        ("hstr", "cat > {{ out }}/hstr-{} <<< {{ p{} }}"),
        ("dbl", "[[ {{ p{} }} == {{ p{} }} ]] && printf '%s' \"{{ p{} }}\" > {{ out }}/dbl-{}"),
        // Brace expansion never splits a value.
        ("braces", "printf '%s|' {a,{{ p{} }}} > {{ out }}/braces-{}"),
        // bash ends a here-document inside `$(…)` at `PAYLOAD_END)`: what follows is a word again.
        ("cut", "x=\"$(cat <<PAYLOAD_END\nx\nPAYLOAD_END)\"\nprintf '%s' {{ p{} }} > {{ out }}/cut-{}"),
    ];
    let mut playbook = format!(
        "format = 1\nname = \"corpus\"\n{vars}\n[version]\ncurrent = {{ run = {}, regex = '(\\d+\\.\\d+\\.\\d+)' }}\navailable = {{ list = [\"1.0.0\", \"1.1.0\"] }}\ntarget = \"*\"\n\n[[check]]\nname = \"corpus\"\nrun = {}\n",
        toml(&(lines(n, "printf '%s' {{ p{} }} > {{ out }}/probe-{}") + "\necho 1.0.0")),
        toml(&lines(n, "printf '%s' \"{{ p{} }}\" > {{ out }}/check-{}")),
    );
    for (name, line) in sh {
        playbook.push_str(&format!("\n[[step]]\nid = \"{name}\"\nrun = {}\n", toml(&lines(n, line))));
    }
    for (name, line) in bash {
        playbook.push_str(&format!("\n[[step]]\nid = \"{name}\"\nshell = \"bash\"\nrun = {}\n", toml(&lines(n, line))));
    }
    let exec_script = lines(n, "printf '%s' \"{{ p{} }}\" '{{ p{} }}' > {{ out }}/exec-{}");
    playbook.push_str(&format!("\n[[step]]\nid = \"exec\"\nexec = [\"sh\", \"-c\", {}]\n", toml(&exec_script)));
    let exec_script = lines(n, "printf '%s' $'{{ p{} }}' > {{ out }}/execbash-{}");
    playbook.push_str(&format!(
        "\n[[step]]\nid = \"exec-bash\"\nexec = [\"/usr/bin/env\", \"LC_ALL=C\", \"bash\", \"-euc\", {}]\n",
        toml(&exec_script)
    ));
    // A wrapper with options, and a program upshift cannot know, before `-c`.
    let exec_script = lines(n, "printf '%s' {{ p{} }} > {{ out }}/execwrap-{}");
    playbook.push_str(&format!(
        "\n[[step]]\nid = \"exec-wrap\"\nexec = [\"timeout\", \"-s\", \"KILL\", \"30\", \"sh\", \"-c\", {}]\n",
        toml(&exec_script)
    ));
    let exec_script = lines(n, "printf '%s' {{ p{} }} > {{ out }}/execvar-{}");
    playbook.push_str(&format!(
        "\n[[step]]\nid = \"exec-var\"\nexec = [\"{{{{ shell }}}}\", \"-c\", {}]\n",
        toml(&exec_script)
    ));
    let ssh_script = lines(n, "printf '%s' {{ p{} }} > {{ out }}/sshexec-{}");
    playbook.push_str(&format!(
        "\n[[step]]\nid = \"exec-ssh\"\nexec = [\"ssh\", \"-p\", \"22\", \"host\", {}]\n",
        toml(&ssh_script)
    ));
    let env: Vec<String> = (0..n).map(|i| format!("P{i} = {}", toml(&format!("{{{{ p{i} }}}}")))).collect();
    playbook.push_str(&format!(
        "\n[[step]]\nid = \"env\"\nenv = {{ {} }}\nrun = {}\n",
        env.join(", "),
        toml(&lines(n, "printf '%s' \"$P{}\" > {{ out }}/env-{}"))
    ));
    let separator = "\n--8<--\n";
    sandbox.write("corpus.j2", &(0..n).map(|i| format!("{{{{ p{i} }}}}")).collect::<Vec<_>>().join(separator));
    playbook
        .push_str("\n[[step]]\nid = \"template\"\ntemplate = { src = \"corpus.j2\", dest = \"{{ out }}/template\" }\n");
    // Values in keys are data too: a `/` or `~` stays in one JSON key, a `.` in one TOML key.
    let edits: Vec<String> = (0..n)
        .map(|i| {
            let value = toml(&format!("{{{{ p{i} }}}}"));
            format!("\"/p{i}\" = {value}, \"/k{i}-{{{{ p{i} }}}}\" = {value}")
        })
        .collect();
    playbook.push_str(&format!(
        "\n[[step]]\nid = \"edit\"\nedit = {{ path = \"{{{{ out }}}}/data.json\", json = {{ {} }} }}\n",
        edits.join(", ")
    ));
    std::fs::write(out.join("data.toml"), "[keys]\n").unwrap();
    let edits: Vec<String> = (0..n).map(|i| format!("\"keys.k{i}-{{{{ p{i} }}}}\" = \"{i}\"")).collect();
    playbook.push_str(&format!(
        "\n[[step]]\nid = \"edit-toml\"\nedit = {{ path = \"{{{{ out }}}}/data.toml\", toml = {{ {} }} }}\n",
        edits.join(", ")
    ));
    for i in &names {
        playbook.push_str(&format!(
            "\n[[step]]\nid = \"cwd-{i}\"\ncwd = \"{{{{ out }}}}/dirs/{{{{ p{i} }}}}\"\nrun = \"printf '%s' \\\"${{PWD##*/}}\\\" > {{{{ out }}}}/cwd-{i}\"\n\n[[step]]\nid = \"creates-{i}\"\ncreates = \"{{{{ out }}}}/made/{{{{ p{i} }}}}\"\nrun = \"touch {{{{ out }}}}/creates-ran-{i}\"\n"
        ));
    }
    let path = sandbox.write("corpus.toml", &playbook);

    let mut argv: Vec<String> = vec!["run".into(), path.display().to_string()];
    argv.extend(args);
    let argv: Vec<&str> = argv.iter().map(String::as_str).collect();
    sandbox.run(&argv).code(0);

    assert_eq!(pwned(sandbox.path()), Vec::<std::path::PathBuf>::new(), "a payload ran");
    let read = |name: String| std::fs::read(out.join(&name)).unwrap_or_else(|e| panic!("{name}: {e}"));
    for (i, payload) in payloads.iter().enumerate() {
        let exact = payload.as_bytes().to_vec();
        let line = format!("{payload}\n").into_bytes();
        let places =
            ["word", "tight", "dq", "sq", "subst", "assign", "case", "evalq", "shcq", "stdin", "sshq", "sshexec"];
        let places = places.into_iter().chain(["ansi", "dbl", "wrapq", "trapq", "dotq", "cut", "execwrap", "execvar"]);
        for place in places.chain(["check", "probe"]) {
            assert_eq!(read(format!("{place}-{i}")), exact, "{place}: payload {i} {payload:?}");
        }
        assert_eq!(read(format!("exec-{i}")), [exact.clone(), exact.clone()].concat(), "exec: {payload:?}");
        for place in ["execbash", "env"] {
            assert_eq!(read(format!("{place}-{i}")), exact, "{place}: payload {i} {payload:?}");
        }
        assert_eq!(read(format!("glued-{i}")), format!("x{payload}y").into_bytes(), "glued: {payload:?}");
        assert_eq!(read(format!("braces-{i}")), format!("a|{payload}|").into_bytes(), "braces: {payload:?}");
        for place in ["here", "qhere", "hstr", "subhere"] {
            assert_eq!(read(format!("{place}-{i}")), line, "{place}: payload {i} {payload:?}");
        }
    }
    let template = String::from_utf8(read("template".into())).unwrap();
    assert_eq!(template, payloads.join(separator), "template files");
    let data: serde_json::Value = serde_json::from_slice(&read("data.json".into())).unwrap();
    for (i, payload) in payloads.iter().enumerate() {
        assert_eq!(data[format!("p{i}")], serde_json::Value::String(payload.clone()), "edit: {payload:?}");
        assert_eq!(data[format!("k{i}-{payload}")], serde_json::Value::String(payload.clone()), "key: {payload:?}");
    }
    let keys: toml::Table = String::from_utf8(read("data.toml".into())).unwrap().parse().unwrap();
    for (i, payload) in payloads.iter().enumerate() {
        assert_eq!(keys["keys"][&format!("k{i}-{payload}")].as_str(), Some(i.to_string().as_str()), "{payload:?}");
    }
    for i in &names {
        assert_eq!(read(format!("cwd-{i}")), payloads[*i].as_bytes(), "cwd: {:?}", payloads[*i]);
        assert!(!out.join(format!("creates-ran-{i}")).exists(), "creates: {:?}", payloads[*i]);
    }
}

/// Rollback commands (a string, and a table with its own shell) quote like steps.
#[test]
fn the_corpus_arrives_intact_in_rollbacks() {
    let sandbox = Sandbox::new();
    let payloads = corpus();
    let n = payloads.len();
    let out = sandbox.path().join("out");
    std::fs::create_dir_all(&out).unwrap();
    let (vars, args) = bind(&sandbox, &payloads, &out);
    let playbook = format!(
        "format = 1\nname = \"rollbacks\"\n{vars}\n[[step]]\nid = \"one\"\nrun = \"true\"\nrollback = {}\n\n[[step]]\nid = \"two\"\nrun = \"true\"\nrollback = {{ run = {}, shell = \"bash\" }}\n\n[[step]]\nid = \"boom\"\nrun = \"exit 3\"\n",
        toml(&lines(n, "printf '%s' {{ p{} }} > {{ out }}/rb-{}")),
        toml(&lines(n, "printf '%s' \"{{ p{} }}\"$'{{ p{} }}' > {{ out }}/rbt-{}")),
    );
    let path = sandbox.write("rollbacks.toml", &playbook);
    let mut argv: Vec<String> = vec!["run".into(), path.display().to_string()];
    argv.extend(args);
    let argv: Vec<&str> = argv.iter().map(String::as_str).collect();
    sandbox.run(&argv).code(1);
    assert_eq!(pwned(sandbox.path()), Vec::<std::path::PathBuf>::new(), "a payload ran");
    for (i, payload) in payloads.iter().enumerate() {
        assert_eq!(std::fs::read(out.join(format!("rb-{i}"))).unwrap(), payload.as_bytes(), "{payload:?}");
        assert_eq!(std::fs::read(out.join(format!("rbt-{i}"))).unwrap(), payload.repeat(2).as_bytes(), "{payload:?}");
    }
}

/// The issue's own cases, and what `plan` shows for them.
#[test]
fn the_issue_cases_run_nothing_and_keep_harmless_values_as_written() {
    let sandbox = Sandbox::new();
    let playbook = sandbox.write(
        "p.toml",
        r#"format = 1
name = "issue-8"

[vars]
dir = "/var/www/my shop"
v = "x"

[[step]]
id = "dq"
run = "ls -d \"{{ dir }}/cache\" > dq.txt 2>&1; printf '%s' \"{{ dir }}/cache\" > dq-value.txt"

[[step]]
id = "sq"
run = "printf '%s' '{{ v }}' > sq.txt"

[[step]]
id = "heredoc"
run = """
cat > here.txt <<EOF
value: {{ v }}
EOF"""

[[step]]
id = "json"
run = "printf '%s' {{ v | tojson }} > json.txt"
"#,
    );
    let path = playbook.to_string_lossy();
    // A harmless path with a space arrives as the author meant: no literal quotes.
    let run = sandbox.run(&["plan", &path]);
    run.code(0);
    assert!(run.stdout.contains(r#"ls -d "/var/www/my shop/cache" > dq.txt 2>&1"#), "{}", run.stdout);
    sandbox.run(&["run", &path]).code(0);
    assert_eq!(sandbox.read("dq-value.txt"), "/var/www/my shop/cache");

    for (dir, v) in [
        ("$(touch PWNED)", "; touch PWNED; & touch PWNED &\ntouch PWNED\n'$(touch PWNED)'"),
        ("`touch PWNED`", "x\nEOF2\n$(touch PWNED)"),
    ] {
        let run = sandbox.run(&["plan", &path, "--var", &format!("dir={dir}"), "--var", &format!("v={v}")]);
        run.code(0);
        if dir.starts_with('$') {
            assert!(run.stdout.contains(r#"ls -d "\$(touch PWNED)/cache""#), "{}", run.stdout);
        }
        sandbox.run(&["run", &path, "--var", &format!("dir={dir}"), "--var", &format!("v={v}")]).code(0);
        assert!(pwned(sandbox.path()).is_empty(), "a payload ran: {dir:?} {v:?}");
        assert_eq!(sandbox.read("dq-value.txt"), format!("{dir}/cache"));
        assert_eq!(sandbox.read("sq.txt"), v);
        assert_eq!(sandbox.read("here.txt"), format!("value: {v}\n"));
        assert_eq!(serde_json::from_str::<String>(&sandbox.read("json.txt")).unwrap(), v);
    }
}

/// Where a value cannot be written safely (it would end its here-document or
/// its comment), nothing runs: `run` refuses the plan when the value is known
/// up front (exit 2), and stops before the step's command starts when the
/// value is only known at run time.
#[test]
fn values_that_would_break_out_are_refused_before_anything_runs() {
    let sandbox = Sandbox::new();
    let playbook = sandbox.write(
        "p.toml",
        r#"format = 1
name = "refused"

[vars]
v = "x"

[[step]]
id = "first"
run = "touch first-ran; printf '%s' {{ v }}"
rollback = "rm first-ran; touch rolled-back"

[[step]]
id = "heredoc"
run = """
touch heredoc-ran
cat > out.txt <<EOF
{{ steps.first.stdout }}
EOF"""
"#,
    );
    let path = playbook.to_string_lossy();
    let payload = "v=a\nEOF\ntouch PWNED";
    let run = sandbox.run(&["run", &path, "--var", payload]);
    // A template that fails mid-run stops the run where it is (the engine's rule
    // for every render failure): nothing of the step ran, and `rollback` undoes the rest.
    run.code(4);
    assert!(
        run.stderr.contains(
            "the value of `{{ steps.first.stdout }}` makes a line `EOF` in the here-document, which would end it early"
        ),
        "{}",
        run.stderr
    );
    assert!(pwned(sandbox.path()).is_empty());
    assert!(!sandbox.path().join("heredoc-ran").exists(), "the refused step started");
    sandbox.run(&["rollback", &path]).code(0);
    assert!(sandbox.path().join("rolled-back").exists(), "the run rolled back");

    // Known up front: the run is refused whole, before its first step.
    let known = sandbox.write(
        "k.toml",
        "format = 1\nname = \"k\"\n[vars]\nv = \"x\"\n[[step]]\nid = \"first\"\nrun = \"touch k-ran\"\n[[step]]\nid = \"c\"\nrun = \"true # {{ v }}\"\n",
    );
    let path = known.to_string_lossy();
    sandbox.run(&["run", &path]).code(0);
    assert!(sandbox.path().join("k-ran").exists(), "a value in a comment is fine without a newline");
    std::fs::remove_file(sandbox.path().join("k-ran")).unwrap();
    let run = sandbox.run(&["run", &path, "--var", "v=x\ntouch PWNED"]);
    run.code(2);
    assert!(
        run.stderr.contains("the value of `{{ v }}` has a newline, which would end the comment it is in"),
        "{}",
        run.stderr
    );
    assert!(run.stderr.contains("k.toml:10:15"), "{}", run.stderr);
    assert!(pwned(sandbox.path()).is_empty() && !sandbox.path().join("k-ran").exists());
}

/// `validate` names every interpolation with no safe quoting, at its place,
/// and `plan` refuses the playbook before running anything.
#[test]
fn unquotable_places_are_refused_by_validate_with_their_place() {
    let sandbox = Sandbox::new();
    let playbook = sandbox.write(
        "p.toml",
        r#"format = 1
name = "unquotable"

[vars]
v = "x"

[[step]]
id = "probe"
read_only = true
run = "touch probe-ran"

[[step]]
id = "ticks"
run = "echo `ls {{ v }}`"
"#,
    );
    let run = sandbox.run(&["validate", &playbook.to_string_lossy()]);
    run.code(2);
    assert!(run.stderr.contains("error: `{{ v }}` cannot be quoted inside backticks"), "{}", run.stderr);
    assert!(run.stderr.contains("p.toml:14:17"), "{}", run.stderr);
    assert!(run.stderr.contains("help: write `$(…)` instead of backticks"), "{}", run.stderr);
    sandbox.run(&["plan", &playbook.to_string_lossy()]).code(2);
    assert!(!sandbox.path().join("probe-ran").exists());
}

/// Where a shell reads a value again in a way one `| quote` cannot serve, or
/// dash and bash read the script differently, `validate` refuses each value
/// at its place, with the reason; nothing runs.
#[test]
fn values_the_shells_read_again_or_differently_are_refused_with_their_reason() {
    let cases: &[(&str, &str, &str)] = &[
        ("sh", "x=$(cat <<EOF)\n{{ v }}\nEOF", "after a here-document opened in `$(…)`"),
        ("sh", "cat <<$'EOF'\nx\nEOF\necho {{ v }}", "after a here-document delimiter written `$'…'`"),
        ("sh", "echo \"$(cat <<EOF\nx\nEOF)\"\necho {{ v }}", "starts with its delimiter and has a `)`"),
        (
            "sh",
            "cat <<EOF\n$( echo \"$(cat <<EOF\nx\nEOF\n)\" )\nEOF\n[ \"{{ v }}\" = x ]",
            "runs past the delimiter line",
        ),
        ("bash", "x=\"$(cat <<EOF\nx\nEOF)\"; echo {{ v }}", "bash reads the rest of that line again"),
        (
            "sh",
            "timeout -x 5 sh -c \"echo {{ v }}\"",
            "after `timeout -x`, where upshift cannot tell which command runs",
        ),
        ("sh", "timeout -s KILL 30 sudo -Eu root sh -c \"echo {{ v }}\"", "read again as a script by `sh -c`"),
        ("sh", "trap \"rm {{ v }}\" EXIT", "read again as a script by `trap`"),
        ("sh", "alias ll=\"ls {{ v }}\"", "read again as a script by `alias`"),
        ("bash", "PS4=\"+ {{ v }} \"; set -x", "in `PS4`, which the shell expands again"),
        ("sh", "sudo -s <<EOF\necho {{ v }}\nEOF", "read again as a script by `sudo -s`"),
        ("sh", ". /dev/stdin <<EOF\necho {{ v }}\nEOF", "read again as a script by `. /dev/stdin`"),
        ("sh", "ssh -o ProxyCommand=\"nc {{ v }} 22\" db true", "in ssh's `ProxyCommand`"),
        ("sh", "su --command=\"echo {{ v }}\" root", "read again as a script by `su -c`"),
        ("sh", "ssh host \"sh -c 'echo {{ v | quote }}'\"", "by `ssh`, and once more by `sh -c` inside it"),
        ("sh", "ssh host \"echo '{{ v | quote }}'\"", "by `ssh`, inside `'…'` there"),
        ("sh", "{{ shell }} -c \"echo {{ v }}\"", "read again as a script by `{{ shell }} -c`"),
        ("bash", "declare {{ v }}", "where `declare` takes a variable name"),
        ("bash", "read \"a[{{ v }}]\"", "where `read` takes a variable name"),
        ("bash", "[[ -v {{ v }} ]]", "where `[[ -v ]]` takes a variable name"),
        ("bash", "declare -i n; n={{ v }}", "in arithmetic"),
    ];
    let sandbox = Sandbox::new();
    let mut playbook = String::from(
        "format = 1\nname = \"again\"\n[vars]\nv = \"x\"\nshell = \"sh\"\n\n[[step]]\nid = \"probe\"\nread_only = true\nrun = \"touch probe-ran\"\n",
    );
    for (i, (shell, script, _)) in cases.iter().enumerate() {
        playbook.push_str(&format!("\n[[step]]\nid = \"s{i}\"\nshell = {}\nrun = {}\n", toml(shell), toml(script)));
    }
    playbook
        .push_str("\n[[step]]\nid = \"exec\"\nexec = [\"timeout\", \"-x\", \"5\", \"sh\", \"-c\", \"echo {{ v }}\"]\n");
    let path = sandbox.write("p.toml", &playbook);
    let run = sandbox.run(&["validate", &path.to_string_lossy()]);
    run.code(2);
    let errors: Vec<&str> = run.stderr.lines().filter(|l| l.starts_with("error: ")).collect();
    for (shell, script, reason) in cases {
        assert!(
            errors.iter().any(|e| e.contains(reason)),
            "{shell}: {script:?} is not refused for `{reason}`:\n{}",
            run.stderr
        );
    }
    assert!(run.stderr.contains("p.toml:"), "{}", run.stderr);
    assert_eq!(errors.len(), cases.len() + 1 + 1, "one error per case, the exec's, and the count:\n{}", run.stderr);
    sandbox.run(&["plan", &path.to_string_lossy()]).code(2);
    assert!(!sandbox.path().join("probe-ran").exists());
}
