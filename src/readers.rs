//! What a command does with its words, as far as quoting needs to know: which
//! word another shell reads again as a script (`sh -c SCRIPT`, `eval`, `ssh
//! HOST COMMAND…`, `su -c`, `trap ACTION`, `alias NAME=VALUE`), which it takes
//! as a variable name (`read NAME`, `printf -v NAME`, `declare NAME=…`, whose
//! `a[…]` subscripts bash evaluates as arithmetic), which are arithmetic
//! (`let`, `declare -i`), and what a wrapper (`sudo`, `env`, `timeout`, …)
//! runs after its options. Each command is a small state machine fed one word
//! at a time; where upshift cannot tell what a wrapper runs (an option it does
//! not know), the rest of the command is `Lost`, and values there are refused.
//!
//! The module knows commands, not text: the lexer (`shell`) splits words and
//! applies the roles these readers give them.

use crate::shell::Dialect;

/// One word of a command, as a reader sees it.
#[derive(Debug, Clone, Copy)]
pub(crate) struct WordView<'a> {
    /// The word after quote removal, when it has no expansion and no value.
    pub(crate) text: Option<&'a str>,
    /// Its literal text before the first quote, expansion or value.
    pub(crate) lead: &'a str,
    /// The word as written (for messages).
    pub(crate) raw: &'a str,
}

impl WordView<'_> {
    /// A word that starts like an option (`-x`, `--long`, `+o`).
    fn is_option(&self) -> bool {
        let start = self.text.unwrap_or(self.lead);
        start.len() > 1 && start.starts_with('-')
    }

    /// A process substitution (`<(…)`): its text is a command's output.
    fn is_process_substitution(&self) -> bool {
        self.raw.starts_with("<(") || self.raw.starts_with(">(")
    }
}

/// What a word is to its command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Role {
    /// Data: nothing reads it again.
    Plain,
    /// A script for another shell, from byte `skip` of its text on (after
    /// `--command=`); several such words of a command are joined by spaces.
    Script { by: String, dialect: Dialect, skip: Skip },
    /// A variable name, from byte `skip` of its text on (after `-v`).
    Name { by: String, skip: usize },
    /// `NAME=VALUE` given to `declare` and friends: a name, then a value.
    Assignment { by: String, value: ValueKind },
    /// Arithmetic (`let`).
    Arith,
    /// The argument of ssh's `-o` (from byte `skip`): `Option=value`.
    SshOption { skip: usize },
    /// Upshift cannot tell what this word is (after an unknown option).
    Lost(String),
}

/// Where a script starts in its word.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Skip {
    /// At this byte of the word's text.
    At(usize),
    /// After the first `=` (an alias's value).
    AfterEquals,
}

/// What the value of a `NAME=VALUE` is to the shell.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ValueKind {
    Data,
    /// A variable name (`declare -n`).
    Name,
    /// Arithmetic (`declare -i`).
    Arith,
}

/// What a command does with its standard input.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Input {
    /// Data (or nothing upshift knows of).
    Data,
    /// A shell reads it as a script.
    Script(String, Dialect),
    /// Upshift cannot tell which command reads it.
    Lost(String),
}

/// The options of a wrapper that runs a command after them.
#[derive(Debug)]
pub(crate) struct Spec {
    name: &'static str,
    /// Short options that take an argument.
    short_args: &'static str,
    /// Short options that do not.
    short_flags: &'static str,
    long_args: &'static [&'static str],
    long_flags: &'static [&'static str],
    /// Operands before the command (`timeout DURATION`, `chroot NEWROOT`).
    operands: usize,
    /// `NAME=VALUE` words before the command (`env`, `sudo`).
    assignments: bool,
    /// Numeric options (`nice -10`).
    numeric: bool,
    /// Options after which nothing runs (`command -v`, `sudo -l`).
    stops: &'static str,
    /// Options that start a shell reading its input when no command follows (`sudo -s`).
    shells: &'static str,
}

const fn spec(name: &'static str) -> Spec {
    Spec {
        name,
        short_args: "",
        short_flags: "",
        long_args: &[],
        long_flags: &[],
        operands: 0,
        assignments: false,
        numeric: false,
        stops: "",
        shells: "",
    }
}

/// Wrappers: commands that run the command after their options (sudo(8),
/// doas(1), GNU coreutils' env, nice, nohup, stdbuf, timeout, chroot;
/// util-linux's setsid, ionice; the shells' `exec`, `command`, `builtin`).
static WRAPPERS: [Spec; 15] = [
    Spec {
        short_args: "CDghpRrTtUu",
        short_flags: "AbBEHiKknPSsVv",
        long_args: &[
            "chdir",
            "chroot",
            "close-from",
            "command-timeout",
            "group",
            "host",
            "other-user",
            "prompt",
            "role",
            "type",
            "user",
        ],
        long_flags: &[
            "askpass",
            "background",
            "bell",
            "edit",
            "help",
            "list",
            "login",
            "non-interactive",
            "preserve-env",
            "preserve-groups",
            "remove-timestamp",
            "reset-timestamp",
            "set-home",
            "shell",
            "stdin",
            "validate",
            "version",
        ],
        assignments: true,
        stops: "elVvK",
        shells: "is",
        ..spec("sudo")
    },
    Spec { short_args: "uC", short_flags: "nsL", shells: "s", ..spec("doas") },
    Spec {
        short_args: "uCS",
        short_flags: "i0v",
        long_args: &["unset", "chdir", "split-string"],
        long_flags: &[
            "ignore-environment",
            "null",
            "debug",
            "list-signal-handling",
            "block-signal",
            "default-signal",
            "ignore-signal",
        ],
        assignments: true,
        ..spec("env")
    },
    Spec { short_args: "n", long_args: &["adjustment"], numeric: true, ..spec("nice") },
    spec("nohup"),
    Spec { short_flags: "cfw", long_flags: &["ctty", "fork", "wait"], ..spec("setsid") },
    Spec { short_args: "a", short_flags: "cl", ..spec("exec") },
    Spec { short_flags: "p", stops: "vV", ..spec("command") },
    spec("builtin"),
    Spec { short_args: "ioe", long_args: &["input", "output", "error"], ..spec("stdbuf") },
    Spec {
        short_args: "ks",
        short_flags: "fpv",
        long_args: &["kill-after", "signal"],
        long_flags: &["foreground", "preserve-status", "verbose"],
        operands: 1,
        ..spec("timeout")
    },
    Spec { long_args: &["userspec", "groups"], long_flags: &["skip-chdir"], operands: 1, ..spec("chroot") },
    Spec { short_args: "cn", short_flags: "t", stops: "pPu", ..spec("ionice") },
    spec("busybox"),
    Spec {
        short_args: "fo",
        short_flags: "apqv",
        long_args: &["format", "output"],
        long_flags: &["append", "portability", "verbose", "quiet"],
        ..spec("time")
    },
];

/// ssh(1): options that take an argument, and those that do not.
const SSH_ARGS: &str = "BbcDEeFIiJLlmOoPpQRSWw";
const SSH_FLAGS: &str = "46AaCfGgKkMNnqsTtVvXxYy";

/// What an option word is.
#[derive(Debug, PartialEq, Eq)]
enum Opt {
    /// Flags only (or a long option with its argument after `=`).
    Flags(String),
    /// The next word is the argument of this option letter (or long name).
    Arg(String),
    /// The argument is glued, from this byte of the word on (`-uroot`).
    Glued(String, usize),
    /// `--`: operands follow.
    End,
    /// Not an option upshift knows.
    Unknown,
}

/// Reads an option word; `complete` is false when only its start is known
/// (a value follows in the same word).
fn option(word: &str, complete: bool, short_args: &str, short_flags: &str, long: (&[&str], &[&str])) -> Opt {
    let (long_args, long_flags) = long;
    if word == "--" && complete {
        return Opt::End;
    }
    if let Some(name) = word.strip_prefix("--") {
        let (name, glued) = match name.split_once('=') {
            Some((name, _)) => (name, Some(2 + name.len() + 1)),
            None if !complete => return Opt::Unknown,
            None => (name, None),
        };
        // GNU getopt takes any unambiguous prefix of a long option.
        let find = |list: &[&str]| -> Vec<String> {
            match list.iter().find(|l| **l == name) {
                Some(exact) => vec![(*exact).to_owned()],
                None => {
                    list.iter().filter(|l| l.starts_with(name) && !name.is_empty()).map(|l| (*l).to_owned()).collect()
                }
            }
        };
        let (args, flags) = (find(long_args), find(long_flags));
        return match (args.as_slice(), flags.as_slice()) {
            ([arg], []) => match glued {
                Some(at) => Opt::Glued(arg.clone(), at),
                None => Opt::Arg(arg.clone()),
            },
            ([], [flag]) => Opt::Flags(flag.clone()),
            _ => Opt::Unknown,
        };
    }
    let Some(letters) = word.strip_prefix('-') else {
        return Opt::Unknown;
    };
    let mut seen = String::new();
    for (i, letter) in letters.char_indices() {
        seen.push(letter);
        if short_args.contains(letter) {
            let rest = 1 + i + letter.len_utf8();
            return if rest < word.len() || !complete { Opt::Glued(seen, rest) } else { Opt::Arg(seen) };
        }
        if !short_flags.contains(letter) {
            return Opt::Unknown;
        }
    }
    if complete { Opt::Flags(seen) } else { Opt::Unknown }
}

/// How a command treats its words: a state machine fed one word at a time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Reader {
    /// Nothing of this command is read again (or it is not known).
    Nothing,
    /// `sudo`, `env`, `timeout`, …: the command they run comes after their options.
    Wrapper { spec: &'static Spec, skip: usize, operands: usize, options: bool, shell: Option<char> },
    /// A command whose name is not known (`{{ shell }}`, `"$SHELL"`): after
    /// an option with `c`, its next operand may be a script for a shell.
    Unknown { shown: String, script_next: bool },
    /// `eval`: every argument, joined.
    Eval,
    /// A shell: with `-c`, its first operand is a script; without, it reads
    /// its input (or a script file).
    Shell { name: String, command: bool, skip: usize, operands: bool, stdin: bool },
    /// `ssh`: the words after the destination are a remote command.
    Ssh { next: Option<char>, destination: bool, command: bool },
    /// `su`: the word after `-c`, or its input, for `shell`.
    Su { next: Option<char>, command: bool, shell: String },
    /// `declare`, `typeset`, `local`, `readonly`, `export`.
    Declare { name: &'static str, arith: bool, nameref: bool, options: bool },
    /// `let`: every argument is arithmetic.
    Let,
    /// Commands whose operands or option arguments are variable names
    /// (`read`, `mapfile`, `unset`, `wait -p`, `printf -v`, `getopts`).
    Names { spec: &'static NamesSpec, next: Option<char>, options: bool, operand: usize },
    /// `trap ACTION SIGNAL…`: the action is a script.
    Trap { action: bool },
    /// `alias NAME=VALUE`: the value is a script.
    Alias,
    /// `.`/`source FILE`: reads `FILE` as a script (the input for `/dev/stdin`).
    Source { name: &'static str, operand: bool, stdin: bool },
    /// `[`/`test`: the operand of `-v` is a variable name.
    Test { name_next: bool },
    /// Upshift cannot tell what runs from here.
    Lost(String),
}

impl PartialEq for Spec {
    fn eq(&self, other: &Self) -> bool {
        self.name == other.name
    }
}

impl Eq for Spec {}

/// The options of a command that takes variable names.
#[derive(Debug)]
pub(crate) struct NamesSpec {
    name: &'static str,
    short_args: &'static str,
    short_flags: &'static str,
    /// Option letters whose argument is a variable name (`read -a`, `printf -v`).
    name_args: &'static str,
    /// Which operands are names: all (`read`), none (`printf`), or the one at this index (`getopts`).
    operands: Operands,
    /// Option letters whose argument is a command (`mapfile -C`).
    script_args: &'static str,
}

impl PartialEq for NamesSpec {
    fn eq(&self, other: &Self) -> bool {
        self.name == other.name
    }
}

impl Eq for NamesSpec {}

#[derive(Debug, Clone, Copy)]
enum Operands {
    All,
    None,
    At(usize),
}

static NAMES: [NamesSpec; 7] = [
    NamesSpec {
        name: "read",
        short_args: "adinNptu",
        short_flags: "ers",
        name_args: "a",
        operands: Operands::All,
        script_args: "",
    },
    NamesSpec {
        name: "mapfile",
        short_args: "dnOsuCc",
        short_flags: "t",
        name_args: "",
        operands: Operands::All,
        script_args: "C",
    },
    NamesSpec {
        name: "readarray",
        short_args: "dnOsuCc",
        short_flags: "t",
        name_args: "",
        operands: Operands::All,
        script_args: "C",
    },
    NamesSpec {
        name: "unset",
        short_args: "",
        short_flags: "fvn",
        name_args: "",
        operands: Operands::All,
        script_args: "",
    },
    NamesSpec {
        name: "wait",
        short_args: "p",
        short_flags: "fn",
        name_args: "p",
        operands: Operands::None,
        script_args: "",
    },
    NamesSpec {
        name: "printf",
        short_args: "v",
        short_flags: "",
        name_args: "v",
        operands: Operands::None,
        script_args: "",
    },
    NamesSpec {
        name: "getopts",
        short_args: "",
        short_flags: "",
        name_args: "",
        operands: Operands::At(1),
        script_args: "",
    },
];

/// Variables the shell expands (or runs) again when it uses them: a value
/// in them would run.
pub(crate) const PROMPTS: [&str; 8] = ["PS0", "PS1", "PS2", "PS3", "PS4", "PROMPT_COMMAND", "BASH_ENV", "ENV"];

/// ssh options whose value ssh runs through a shell.
const SSH_COMMANDS: [&str; 4] = ["proxycommand", "localcommand", "remotecommand", "knownhostscommand"];

/// Is `keyword` (an ssh option name) one whose value ssh runs as a command?
pub(crate) fn ssh_runs(keyword: &str) -> bool {
    SSH_COMMANDS.iter().any(|k| k.eq_ignore_ascii_case(keyword))
}

impl Reader {
    /// The reader for a command named `name` (a word in command position).
    pub(crate) fn of(name: &str) -> Reader {
        let base = name.rsplit('/').next().unwrap_or(name);
        if let Some(spec) = WRAPPERS.iter().find(|s| s.name == base) {
            return Reader::Wrapper { spec, skip: 0, operands: spec.operands, options: true, shell: None };
        }
        if let Some(spec) = NAMES.iter().find(|s| s.name == base) {
            return Reader::Names { spec, next: None, options: true, operand: 0 };
        }
        match base {
            "eval" => Reader::Eval,
            "ssh" => Reader::Ssh { next: None, destination: false, command: false },
            "su" => Reader::Su { next: None, command: false, shell: "sh".to_owned() },
            "declare" | "typeset" | "local" | "readonly" | "export" => {
                let name = ["declare", "typeset", "local", "readonly", "export"]
                    .into_iter()
                    .find(|n| *n == base)
                    .unwrap_or("declare");
                Reader::Declare { name, arith: false, nameref: false, options: true }
            }
            "let" => Reader::Let,
            "trap" => Reader::Trap { action: false },
            "alias" => Reader::Alias,
            "." => Reader::Source { name: ".", operand: false, stdin: false },
            "source" => Reader::Source { name: "source", operand: false, stdin: false },
            "[" | "test" => Reader::Test { name_next: false },
            _ if Dialect::of(base) != Dialect::Other => {
                Reader::Shell { name: base.to_owned(), command: false, skip: 0, operands: false, stdin: false }
            }
            _ => Reader::Nothing,
        }
    }

    /// The reader for a command word that is not known (it holds a value or an expansion).
    pub(crate) fn unknown(shown: &str) -> Reader {
        Reader::Unknown { shown: shown.to_owned(), script_next: false }
    }

    /// Takes the next word of the command and says what it is; `dialect` is
    /// the script's own.
    pub(crate) fn word(&mut self, word: WordView<'_>, dialect: Dialect) -> Role {
        let known = word.text;
        match self {
            Reader::Nothing => Role::Plain,
            Reader::Lost(reason) => Role::Lost(reason.clone()),
            Reader::Wrapper { .. } => self.wrapper_word(word),
            Reader::Unknown { shown, script_next } => {
                if *script_next {
                    let by = format!("{shown} -c");
                    *self = Reader::Nothing;
                    return Role::Script { by, dialect: Dialect::Posix, skip: Skip::At(0) };
                }
                match known {
                    Some(text) if text.len() > 1 && text.starts_with('-') => {
                        *script_next = !text.starts_with("--") && text[1..].contains('c');
                    }
                    _ if word.is_option() => {}
                    // A shell's options come before its operands: after one, no `-c`.
                    _ => *self = Reader::Nothing,
                }
                Role::Plain
            }
            Reader::Eval => Role::Script { by: "eval".to_owned(), dialect, skip: Skip::At(0) },
            Reader::Shell { name, command, skip, operands, stdin } => {
                if *skip > 0 {
                    *skip -= 1;
                    return Role::Plain;
                }
                if *operands {
                    return Role::Plain;
                }
                if word.is_option() || known.is_some_and(|k| k.len() > 1 && k.starts_with('+')) {
                    let w = known.unwrap_or(word.lead);
                    if let Some(long) = w.strip_prefix("--") {
                        *skip = usize::from(["rcfile", "init-file"].contains(&long));
                    } else {
                        *command |= w.starts_with('-') && w[1..].contains('c');
                        *stdin |= w.starts_with('-') && w[1..].contains('s');
                        *skip = usize::from(w.ends_with('o') || w.ends_with('O'));
                    }
                    return Role::Plain;
                }
                *operands = true;
                if *command {
                    return Role::Script { by: format!("{name} -c"), dialect: Dialect::of(name), skip: Skip::At(0) };
                }
                if word.is_process_substitution() {
                    return Role::Script {
                        by: format!("{name} <(…)"), dialect: Dialect::of(name), skip: Skip::At(0)
                    };
                }
                *stdin |= matches!(known, Some("-" | "/dev/stdin" | "/dev/fd/0" | "/proc/self/fd/0"));
                Role::Plain
            }
            Reader::Ssh { next, destination, command } => {
                if *destination {
                    *command = true;
                    return Role::Script { by: "ssh".to_owned(), dialect: Dialect::Posix, skip: Skip::At(0) };
                }
                if let Some(letter) = next.take() {
                    return if letter == 'o' { Role::SshOption { skip: 0 } } else { Role::Plain };
                }
                if word.is_option() {
                    let text = known.unwrap_or(word.lead);
                    return match option(text, known.is_some(), SSH_ARGS, SSH_FLAGS, (&[], &[])) {
                        Opt::Flags(_) | Opt::End => Role::Plain,
                        Opt::Arg(letters) => {
                            *next = letters.chars().last();
                            Role::Plain
                        }
                        Opt::Glued(letters, at) if letters.ends_with('o') => Role::SshOption { skip: at },
                        Opt::Glued(..) => Role::Plain,
                        Opt::Unknown => self.lose(format!("`ssh {}`", word.raw)),
                    };
                }
                *destination = true;
                Role::Plain
            }
            Reader::Su { next, command, shell } => {
                if let Some(letter) = next.take() {
                    return match letter {
                        'c' => {
                            *command = true;
                            Role::Script { by: "su -c".to_owned(), dialect: Dialect::of(shell), skip: Skip::At(0) }
                        }
                        's' => {
                            if let Some(name) = known {
                                name.clone_into(shell);
                            }
                            Role::Plain
                        }
                        _ => Role::Plain,
                    };
                }
                if known == Some("-") || !word.is_option() {
                    return Role::Plain;
                }
                let text = known.unwrap_or(word.lead);
                let long = text.starts_with("--");
                let long_args = ["command", "session-command", "group", "supp-group", "shell", "whitelist-environment"];
                let long_flags = ["login", "preserve-environment", "fast", "pty", "help", "version"];
                let is = |what: &str, letter: char, names: &[&str]| {
                    if long { names.contains(&what) } else { what.ends_with(letter) }
                };
                match option(text, known.is_some(), "cgGsw", "flmpP", (&long_args, &long_flags)) {
                    Opt::Flags(_) | Opt::End => Role::Plain,
                    Opt::Arg(what) => {
                        *next = if is(&what, 'c', &["command", "session-command"]) {
                            Some('c')
                        } else if is(&what, 's', &["shell"]) {
                            Some('s')
                        } else {
                            Some('g')
                        };
                        Role::Plain
                    }
                    Opt::Glued(what, at) if is(&what, 'c', &["command", "session-command"]) => {
                        *command = true;
                        Role::Script { by: "su -c".to_owned(), dialect: Dialect::of(shell), skip: Skip::At(at) }
                    }
                    Opt::Glued(what, at) if is(&what, 's', &["shell"]) => {
                        if let Some(name) = known {
                            name[at..].clone_into(shell);
                        }
                        Role::Plain
                    }
                    Opt::Glued(..) => Role::Plain,
                    Opt::Unknown => self.lose(format!("`su {}`", word.raw)),
                }
            }
            Reader::Declare { name, arith, nameref, options } => {
                let text = known.unwrap_or(word.lead);
                if *options && text == "--" {
                    *options = false;
                    return Role::Plain;
                }
                if *options && text.len() > 1 && (text.starts_with('-') || text.starts_with('+')) {
                    if known.is_none() {
                        // `declare -{{ flags }}`: which attributes, upshift cannot tell.
                        let reason = format!("`{name} {}`", word.raw);
                        return self.lose(reason);
                    }
                    if text.starts_with('-') {
                        *arith |= text.contains('i');
                        *nameref |= text.contains('n');
                    }
                    return Role::Plain;
                }
                *options = false;
                let value = if *nameref {
                    ValueKind::Name
                } else if *arith {
                    ValueKind::Arith
                } else {
                    ValueKind::Data
                };
                Role::Assignment { by: (*name).to_owned(), value }
            }
            Reader::Let => Role::Arith,
            Reader::Names { spec, next, options, operand } => {
                if let Some(letter) = next.take() {
                    return if spec.name_args.contains(letter) {
                        Role::Name { by: format!("{} -{letter}", spec.name), skip: 0 }
                    } else if spec.script_args.contains(letter) {
                        Role::Script { by: format!("{} -{letter}", spec.name), dialect, skip: Skip::At(0) }
                    } else {
                        Role::Plain
                    };
                }
                if *options && word.is_option() {
                    let text = known.unwrap_or(word.lead);
                    return match option(text, known.is_some(), spec.short_args, spec.short_flags, (&[], &[])) {
                        Opt::Flags(_) => Role::Plain,
                        Opt::End => {
                            *options = false;
                            Role::Plain
                        }
                        Opt::Arg(letters) => {
                            *next = letters.chars().last();
                            Role::Plain
                        }
                        Opt::Glued(letters, at) => {
                            let letter = letters.chars().last().unwrap_or('-');
                            if spec.name_args.contains(letter) {
                                Role::Name { by: format!("{} -{letter}", spec.name), skip: at }
                            } else if spec.script_args.contains(letter) {
                                Role::Script { by: format!("{} -{letter}", spec.name), dialect, skip: Skip::At(at) }
                            } else {
                                Role::Plain
                            }
                        }
                        // A value or an option upshift does not know: the operands
                        // may be names; refuse values there.
                        Opt::Unknown => {
                            let reason = format!("`{} {}`", spec.name, word.raw);
                            self.lose(reason)
                        }
                    };
                }
                *options = false;
                let index = *operand;
                *operand += 1;
                let name = match spec.operands {
                    Operands::All => true,
                    Operands::None => false,
                    Operands::At(at) => at == index,
                };
                if name { Role::Name { by: spec.name.to_owned(), skip: 0 } } else { Role::Plain }
            }
            Reader::Trap { action } => {
                if *action {
                    return Role::Plain;
                }
                if matches!(known, Some("-p" | "-l" | "-P" | "--")) {
                    return Role::Plain;
                }
                *action = true;
                Role::Script { by: "trap".to_owned(), dialect, skip: Skip::At(0) }
            }
            Reader::Alias => {
                if known == Some("-p") {
                    return Role::Plain;
                }
                Role::Script { by: "alias".to_owned(), dialect, skip: Skip::AfterEquals }
            }
            Reader::Source { name, operand, stdin } => {
                if *operand {
                    return Role::Plain;
                }
                *operand = true;
                if word.is_process_substitution() {
                    return Role::Script { by: format!("{name} <(…)"), dialect, skip: Skip::At(0) };
                }
                *stdin = matches!(known, Some("/dev/stdin" | "/dev/fd/0" | "/proc/self/fd/0"));
                Role::Plain
            }
            Reader::Test { name_next } => {
                if std::mem::take(name_next) {
                    return Role::Name { by: "test -v".to_owned(), skip: 0 };
                }
                *name_next = matches!(known, Some("-v" | "-R"));
                Role::Plain
            }
        }
    }

    /// From here on, values cannot be placed: the rest of the command is lost.
    fn lose(&mut self, reason: String) -> Role {
        *self = Reader::Lost(reason.clone());
        Role::Lost(reason)
    }

    fn wrapper_word(&mut self, word: WordView<'_>) -> Role {
        let Reader::Wrapper { spec, skip, operands, options, shell } = self else {
            return Role::Plain;
        };
        let spec: &'static Spec = spec;
        if *skip > 0 {
            *skip -= 1;
            return Role::Plain;
        }
        let known = word.text;
        if *options {
            let text = known.unwrap_or(word.lead);
            if spec.assignments && is_assignment(text) {
                return Role::Assignment { by: spec.name.to_owned(), value: ValueKind::Data };
            }
            if spec.name == "env" && known == Some("-") {
                return Role::Plain;
            }
            if word.is_option() {
                if spec.numeric && text[1..].bytes().all(|b| b.is_ascii_digit()) && known.is_some() {
                    return Role::Plain;
                }
                let long = (spec.long_args, spec.long_flags);
                let parsed = option(text, known.is_some(), spec.short_args, spec.short_flags, long);
                let letters = match &parsed {
                    Opt::Flags(l) | Opt::Arg(l) | Opt::Glued(l, _) => l.clone(),
                    _ => String::new(),
                };
                let short = !text.starts_with("--");
                if (short && letters.chars().any(|l| spec.stops.contains(l)))
                    || (letters == "edit" && spec.name == "sudo")
                {
                    *self = Reader::Nothing;
                    return Role::Plain;
                }
                if letters == "split-string" || (short && spec.name == "env" && letters.contains('S')) {
                    // `env -S STRING` splits a string of its own into the command.
                    return self.lose(format!("`env {}`", word.raw));
                }
                if short && let Some(letter) = letters.chars().find(|l| spec.shells.contains(*l)) {
                    *shell = Some(letter);
                } else if letters == "login" {
                    *shell = Some('i');
                } else if letters == "shell" {
                    *shell = Some('s');
                }
                return match parsed {
                    Opt::Flags(_) | Opt::Glued(..) => Role::Plain,
                    Opt::Arg(_) => {
                        *skip = 1;
                        Role::Plain
                    }
                    Opt::End => {
                        *options = false;
                        Role::Plain
                    }
                    Opt::Unknown => {
                        let name = spec.name;
                        self.lose(format!("`{name} {}`", word.raw))
                    }
                };
            }
        }
        if *operands > 0 {
            *operands -= 1;
            *options = true;
            return Role::Plain;
        }
        *self = match known {
            Some(name) => Reader::of(name),
            None => Reader::unknown(word.raw),
        };
        Role::Plain
    }

    /// What the command does with its standard input.
    pub(crate) fn input(&self) -> Input {
        match self {
            Reader::Shell { name, command: false, operands, stdin, .. } if !*operands || *stdin => {
                Input::Script(name.clone(), Dialect::of(name))
            }
            Reader::Ssh { destination: true, command: false, .. } => Input::Script("ssh".to_owned(), Dialect::Posix),
            Reader::Su { command: false, shell, .. } => Input::Script("su".to_owned(), Dialect::of(shell)),
            Reader::Wrapper { spec, shell: Some(letter), .. } => {
                Input::Script(format!("{} -{letter}", spec.name), Dialect::Posix)
            }
            Reader::Source { name, stdin: true, .. } => Input::Script(format!("{name} /dev/stdin"), Dialect::Posix),
            Reader::Lost(reason) => Input::Lost(reason.clone()),
            _ => Input::Data,
        }
    }
}

/// `NAME=…`, `NAME+=…`, `NAME[…]=…`.
pub(crate) fn is_assignment(text: &str) -> bool {
    assigned_name(text).is_some()
}

/// The name a `NAME=…` word assigns (without `+` or a subscript).
pub(crate) fn assigned_name(text: &str) -> Option<&str> {
    let eq = text.find('=')?;
    let name = &text[..eq];
    let name = name.strip_suffix('+').unwrap_or(name);
    let name = match name.find('[') {
        Some(open) if name.ends_with(']') => &name[..open],
        Some(_) => return None,
        None => name,
    };
    is_name(name).then_some(name)
}

pub(crate) fn is_name(name: &str) -> bool {
    let bytes = name.as_bytes();
    bytes.first().is_some_and(|b| *b == b'_' || b.is_ascii_alphabetic())
        && bytes.iter().all(|b| *b == b'_' || b.is_ascii_alphanumeric())
}

/// The scripts in an argv (an `exec`): for each element a shell reads as a
/// script, its index and the shell's dialect; and the first element from
/// which upshift cannot tell what runs (after an option it does not know).
/// Elements that hold a template (`{{ … }}`) are words upshift cannot read.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct ArgvScripts {
    pub(crate) scripts: Vec<(usize, Dialect)>,
    pub(crate) lost: Option<(usize, String)>,
    /// ssh options whose value ssh runs through a shell (`ProxyCommand=…`),
    /// or whose name a value would write: the element, and the option's name
    /// (`None` when a value writes it).
    pub(crate) ssh_commands: Vec<(usize, Option<String>)>,
}

pub(crate) fn scripts_in_argv(argv: &[&str]) -> ArgvScripts {
    let mut found = ArgvScripts::default();
    let Some(program) = argv.first() else {
        return found;
    };
    fn known(arg: &str) -> Option<&str> {
        (!arg.contains('{')).then_some(arg)
    }
    let mut reader = match known(program) {
        Some(name) => Reader::of(name),
        None => Reader::unknown(program),
    };
    for (i, arg) in argv.iter().enumerate().skip(1) {
        let lead = arg.find('{').map_or(*arg, |at| &arg[..at]);
        let view = WordView { text: known(arg), lead, raw: arg };
        match reader.word(view, Dialect::Posix) {
            Role::Script { dialect, .. } => found.scripts.push((i, dialect)),
            Role::SshOption { skip } if arg.contains('{') => {
                let before = arg[skip.min(lead.len())..lead.len()].trim_start();
                match before.find(['=', ' ', '\t']) {
                    None => found.ssh_commands.push((i, None)),
                    Some(end) if ssh_runs(&before[..end]) => {
                        found.ssh_commands.push((i, Some(before[..end].to_owned())))
                    }
                    Some(_) => {}
                }
            }
            Role::Lost(reason) if found.lost.is_none() => found.lost = Some((i, reason)),
            _ => {}
        }
        if let Reader::Lost(reason) = &reader
            && found.lost.is_none()
        {
            found.lost = Some((i + 1, reason.clone()));
        }
    }
    found
}
