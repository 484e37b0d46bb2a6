//! Property test: `check` never panics, whatever the text. Mutations of the
//! real example playbooks (deleted, duplicated and swapped lines, replaced
//! characters, truncation) must load or fail with diagnostics, never panic.

use proptest::prelude::*;

fn seeds() -> Vec<String> {
    [
        "playbooks/quickstart/upgrade.toml",
        "playbooks/magento2/upgrade.toml",
        "tests/fixtures/invalid/many-problems.toml",
    ]
    .iter()
    .map(|p| std::fs::read_to_string(crate::root().join(p)).unwrap())
    .collect()
}

#[derive(Debug, Clone)]
enum Mutation {
    DeleteLine(usize),
    DuplicateLine(usize),
    SwapLines(usize, usize),
    ReplaceChar(usize, char),
    Truncate(usize),
    InsertText(usize, String),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        any::<usize>().prop_map(Mutation::DeleteLine),
        any::<usize>().prop_map(Mutation::DuplicateLine),
        (any::<usize>(), any::<usize>()).prop_map(|(a, b)| Mutation::SwapLines(a, b)),
        (any::<usize>(), prop::sample::select(vec!['{', '}', '"', '\'', '[', ']', '=', '\n', '.', '|', '%', '#', 'é']))
            .prop_map(|(i, c)| Mutation::ReplaceChar(i, c)),
        any::<usize>().prop_map(Mutation::Truncate),
        (
            any::<usize>(),
            prop::sample::select(vec![
                "{{ ".to_owned(),
                "}}".to_owned(),
                "{% if %}".to_owned(),
                "\n[[step]]\n".to_owned(),
                "\nid = \"x\"\n".to_owned(),
                "\nrollback = true\n".to_owned(),
                "\ninclude = \"upgrade.toml\"\n".to_owned(),
                "\nwhen = \"steps.\"\n".to_owned(),
                "\n[version]\n".to_owned(),
                "\ntimeout = \"-1s\"\n".to_owned(),
                "\u{1F4A5}".to_owned(),
            ])
        )
            .prop_map(|(i, s)| Mutation::InsertText(i, s)),
    ]
}

fn apply(text: &str, mutation: &Mutation) -> String {
    let mut lines: Vec<&str> = text.lines().collect();
    let n = lines.len().max(1);
    match mutation {
        Mutation::DeleteLine(i) => {
            if !lines.is_empty() {
                lines.remove(i % n);
            }
            lines.join("\n")
        }
        Mutation::DuplicateLine(i) => {
            if !lines.is_empty() {
                let line = lines[i % n];
                lines.insert(i % n, line);
            }
            lines.join("\n")
        }
        Mutation::SwapLines(a, b) => {
            if !lines.is_empty() {
                lines.swap(a % n, b % n);
            }
            lines.join("\n")
        }
        Mutation::ReplaceChar(i, c) => {
            let chars: Vec<char> = text.chars().collect();
            let at = i % chars.len().max(1);
            chars.iter().enumerate().map(|(j, x)| if j == at { *c } else { *x }).collect()
        }
        Mutation::Truncate(i) => text.chars().take(i % (text.chars().count() + 1)).collect(),
        Mutation::InsertText(i, s) => {
            let chars: Vec<char> = text.chars().collect();
            let at = i % (chars.len() + 1);
            let mut out: String = chars[..at].iter().collect();
            out.push_str(s);
            out.extend(&chars[at..]);
            out
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 3000, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn check_never_panics(seed in 0usize..3, mutations in prop::collection::vec(mutation(), 1..4)) {
        let seeds = seeds();
        let mut text = seeds[seed].clone();
        for m in &mutations {
            text = apply(&text, m);
        }
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("upgrade.toml");
        std::fs::write(&path, &text).unwrap();
        match upshift::load(&path, &upshift::Inputs::default()) {
            Ok(playbook) => { let _ = format!("{playbook:?}"); }
            Err(diagnostics) => {
                prop_assert!(!diagnostics.is_empty());
                for diagnostic in &diagnostics {
                    let _ = format!("{diagnostic:?}");
                }
            }
        }
    }
}
