//! The shell, as far as quoting needs it: a small lexer for POSIX `sh` (and
//! the bash, zsh and ksh additions that change quoting) that says, for each
//! interpolated value in a script, which context it lands in (a bare word,
//! `"…"`, `'…'`, `$'…'`, a here-document body, a comment, or a place where no
//! quoting is safe), and the quoting that keeps a value data in each context.
//!
//! Values are *holes*: byte ranges of the script the lexer never reads (their
//! text may be anything), each standing for one value that will be spliced in,
//! quoted for its context, as one part of a word. The module is pure: it
//! neither renders templates nor runs anything, and it knows nothing of
//! playbooks.

use std::ops::Range;

/// The family of shell a script is written for: it decides how the script is
/// read (`$'…'`, arrays, arithmetic tests).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Dialect {
    /// POSIX `sh`, `dash`, `ash`, `posh`, `yash`.
    Posix,
    /// GNU bash.
    Bash,
    /// zsh.
    Zsh,
    /// The Korn shells (`ksh`, `ksh93`, `mksh`, `pdksh`, `oksh`, `lksh`).
    Ksh,
    /// Anything else (`fish`, `python3`, `pwsh`, …): no quoting is known.
    Other,
}

impl Dialect {
    /// The dialect of a shell named by program (`bash`, `/bin/sh`, `zsh`).
    pub(crate) fn of(shell: &str) -> Dialect {
        match shell.rsplit('/').next().unwrap_or(shell) {
            "sh" | "dash" | "ash" | "posh" | "yash" => Dialect::Posix,
            "bash" => Dialect::Bash,
            "zsh" => Dialect::Zsh,
            "ksh" | "ksh93" | "mksh" | "pdksh" | "oksh" | "lksh" => Dialect::Ksh,
            _ => Dialect::Other,
        }
    }

    /// Does this shell read `$'…'` as ANSI-C quoting, everywhere it is installed?
    fn ansi_c(self) -> bool {
        matches!(self, Dialect::Bash | Dialect::Zsh | Dialect::Ksh)
    }

    /// Does this shell have arrays (whose subscripts are arithmetic)?
    fn arrays(self) -> bool {
        matches!(self, Dialect::Bash | Dialect::Zsh | Dialect::Ksh)
    }
}

/// Where a value lands in a script.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Context {
    /// Part of an unquoted word: a command's name or argument, an assignment,
    /// a redirection target, a `case` pattern, a here-string.
    Word,
    /// A word of a `[[ … ]]` test: always quoted, so that it cannot read as an
    /// operator (`-n`, `!`, `(`) and a pattern matches literally.
    TestOperand,
    /// Inside `"…"`.
    DoubleQuoted,
    /// Inside `'…'`.
    SingleQuoted,
    /// Inside `$'…'` (bash, zsh, ksh).
    AnsiC,
    /// In the body of the here-document `heredoc` (an index into
    /// [`Lexed::heredocs`]); `expands` unless its delimiter was quoted.
    Heredoc { expands: bool, heredoc: usize },
    /// In a comment: inert, unless a newline ends it.
    Comment,
    /// Somewhere no quoting is safe.
    Unsafe(Unsafe),
}

/// Places where no quoting keeps a value data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Unsafe {
    /// Inside `` `…` ``: the shell unescapes the text before it parses it.
    Backticks,
    /// Inside `$((…))`, `((…))`, `$[…]` or `let`: arithmetic evaluates text as code.
    Arithmetic,
    /// An operand of `[[ … -eq … ]]` (or ksh's `test -eq`): evaluated as arithmetic.
    ArithmeticTest,
    /// An array subscript in an assignment: arithmetic.
    Subscript,
    /// Inside `${…}`: every shell reads quotes there its own way.
    Parameter,
    /// In a here-document's delimiter word.
    HeredocDelimiter,
    /// Inside `$"…"`: the text is looked up in a translation catalog.
    Locale,
    /// Inside `$'…'` for a plain `sh`, which may or may not read it as bash does.
    AnsiCInSh,
    /// After a `$'…\'…'` for a plain `sh`: dash and bash end it at different places.
    AfterAnsiCInSh,
    /// Right after an unquoted `\`, which would escape the value's first character.
    AfterBackslash,
    /// Right after a `$`.
    AfterDollar,
    /// Right after `$NAME`, which the value would extend.
    GluedToName(String),
    /// In a word that another shell reads again as a script: an argument of
    /// `eval`, the script of `sh -c`, a remote command of `ssh`, the input of
    /// `bash <<EOF`. Allowed when the value was quoted for that shell (`| quote`).
    Reparsed(String),
    /// A script this lexer could not follow to the value.
    Unparsed,
    /// A shell whose quoting upshift does not know.
    UnknownShell,
}

impl Unsafe {
    /// Where the value is, after "cannot be quoted".
    pub(crate) fn place(&self) -> String {
        match self {
            Unsafe::Backticks => "inside backticks".to_owned(),
            Unsafe::Arithmetic => "in arithmetic (`$((…))`, `((…))`, `let`)".to_owned(),
            Unsafe::ArithmeticTest => "as an operand of an arithmetic test (`-eq`, `-lt`, …)".to_owned(),
            Unsafe::Subscript => "in an array subscript".to_owned(),
            Unsafe::Parameter => "inside a parameter expansion `${…}`".to_owned(),
            Unsafe::HeredocDelimiter => "in a here-document's delimiter".to_owned(),
            Unsafe::Locale => "inside a translated string `$\"…\"`".to_owned(),
            Unsafe::AnsiCInSh => "inside `$'…'`, which `sh` does not read the same everywhere".to_owned(),
            Unsafe::AfterAnsiCInSh => "after a `$'…\\'…'`, which dash and bash end at different places".to_owned(),
            Unsafe::AfterBackslash => "right after a `\\`".to_owned(),
            Unsafe::AfterDollar => "right after a `$`".to_owned(),
            Unsafe::GluedToName(name) => format!("right after `${name}`"),
            Unsafe::Reparsed(by) => format!("where `{by}` reads it again as a script"),
            Unsafe::Unparsed => "where upshift cannot tell how the shell reads it".to_owned(),
            Unsafe::UnknownShell => "for a shell upshift does not know".to_owned(),
        }
    }

    /// The problem with `what` (a value, or the `{{ … }}` that writes it) here.
    pub(crate) fn message(&self, what: &str) -> String {
        match self {
            Unsafe::Reparsed(by) => format!("{what} would be read again as a script by `{by}`"),
            _ => format!("{what} cannot be quoted {}", self.place()),
        }
    }

    /// A few words under the value, in a diagnostic.
    pub(crate) fn label(&self) -> String {
        match self {
            Unsafe::Reparsed(by) => format!("quoted once only, `{by}` would run what is in it"),
            _ => "no quoting keeps a value data here".to_owned(),
        }
    }

    /// What to write instead.
    pub(crate) fn help(&self) -> String {
        match self {
            Unsafe::Backticks => "write `$(…)` instead of backticks: values inside it are quoted".to_owned(),
            Unsafe::Arithmetic | Unsafe::ArithmeticTest | Unsafe::Subscript => {
                "arithmetic evaluates text as code: assign the value to a shell variable and check that it is a \
                 number first, or write `| safe` if the text is yours"
                    .to_owned()
            }
            Unsafe::Parameter => {
                "assign the value to a shell variable first: `d={{ x }}; echo \"${v:-$d}\"`".to_owned()
            }
            Unsafe::HeredocDelimiter => {
                "write the delimiter literally (`<<'EOF'`); values belong in the body".to_owned()
            }
            Unsafe::Locale => "write `\"…\"` instead".to_owned(),
            Unsafe::AnsiCInSh | Unsafe::AfterAnsiCInSh => {
                "write `'…'` or `\"…\"` instead, or set `shell = \"bash\"`".to_owned()
            }
            Unsafe::AfterBackslash => "remove the `\\`: the value is quoted for you".to_owned(),
            Unsafe::AfterDollar => "write `\\$` for a literal `$` before the value".to_owned(),
            Unsafe::GluedToName(name) => format!("write `${{{name}}}`, so the value cannot extend the name"),
            Unsafe::Reparsed(_) => "write `| quote` to quote the value for that shell too, or pass it as an argument: \
                                    `sh -c '… \"$1\"' sh {{ x }}`"
                .to_owned(),
            Unsafe::Unparsed => "write `| safe` if the text is yours, or simplify the command".to_owned(),
            Unsafe::UnknownShell => {
                "use `sh`, `bash`, `zsh` or `ksh`, or write `| safe` and quote the value yourself".to_owned()
            }
        }
    }
}

/// A here-document found in a script.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Heredoc {
    /// Its body: the lines between the operator's line and the delimiter line.
    pub(crate) body: Range<usize>,
    /// The delimiter, after quote removal.
    pub(crate) delimiter: String,
    /// `<<-`: leading tabs are stripped from each line.
    pub(crate) strip_tabs: bool,
    /// The delimiter is unquoted: the body expands, and a line ending in `\`
    /// goes on on the next one (also for finding the delimiter).
    pub(crate) expands: bool,
}

impl Heredoc {
    /// Would this (logical) line end the here-document?
    pub(crate) fn ends_at(&self, line: &str) -> bool {
        let line = if self.strip_tabs { line.trim_start_matches('\t') } else { line };
        line == self.delimiter
    }

    /// The logical lines of a body as the shell reads them to find the
    /// delimiter: each with its text and its range in `body`.
    pub(crate) fn lines(&self, body: &str) -> Vec<(String, Range<usize>)> {
        let mut lines = Vec::new();
        let mut start = 0;
        let mut text = String::new();
        for (offset, line) in body.split_inclusive('\n').scan(0, |at, line| {
            let offset = *at;
            *at += line.len();
            Some((offset, line))
        }) {
            let content = line.strip_suffix('\n').unwrap_or(line);
            let trailing = content.len() - content.trim_end_matches('\\').len();
            if self.expands && trailing % 2 == 1 && line.ends_with('\n') {
                text.push_str(&content[..content.len() - 1]);
                continue;
            }
            text.push_str(content);
            lines.push((std::mem::take(&mut text), start..offset + content.len()));
            start = offset + line.len();
        }
        if !text.is_empty() {
            lines.push((text, start..body.len()));
        }
        lines
    }
}

/// What the lexer found: one context per hole, and the here-documents.
#[derive(Debug)]
pub(crate) struct Lexed {
    pub(crate) contexts: Vec<Context>,
    /// For each hole, the command that reads it again as a script, if any
    /// (the context is then where it lands for this shell).
    pub(crate) reparsed: Vec<Option<String>>,
    pub(crate) heredocs: Vec<Heredoc>,
}

/// Reads `script` in `dialect` and says where each hole lands. Holes are
/// sorted, disjoint byte ranges of `script`; their text is never read.
pub(crate) fn lex(script: &str, holes: &[Range<usize>], dialect: Dialect) -> Lexed {
    debug_assert!(holes.windows(2).all(|w| w[0].end <= w[1].start), "holes are sorted and disjoint");
    let mut lexer = Lexer {
        text: script.as_bytes(),
        end: script.len(),
        holes,
        dialect,
        contexts: vec![None; holes.len()],
        reparsed: vec![None; holes.len()],
        reparsing: None,
        diverged: None,
        depth: 0,
        heredocs: Vec::new(),
    };
    lexer.command(0, Close::End, false, &None);
    let contexts = lexer.contexts.into_iter().map(|c| c.unwrap_or(Context::Unsafe(Unsafe::Unparsed))).collect();
    Lexed { contexts, reparsed: lexer.reparsed, heredocs: lexer.heredocs }
}

/// Why a value cannot be written where it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Refused {
    /// The place has no safe quoting.
    Unsafe(Unsafe),
    /// A comment holds the value, and the value has a newline.
    NewlineInComment,
}

/// The value as text that, written at its place, the shell reads back as
/// exactly `value`. `before` and `after` are the script's bytes around the
/// hole (a bare word must not become a redirection such as `2>`, nor a
/// `~user` expansion).
pub(crate) fn quote(value: &str, context: &Context, before: Option<u8>, after: Option<u8>) -> Result<String, Refused> {
    Ok(match context {
        Context::Word => {
            let digits_before_redirect =
                value.bytes().all(|b| b.is_ascii_digit()) && matches!(after, Some(b'<' | b'>'));
            if is_bare(value) && !digits_before_redirect && before != Some(b'~') {
                value.to_owned()
            } else {
                single_quote(value)
            }
        }
        Context::TestOperand => single_quote(value),
        Context::DoubleQuoted => escape(value, b"\\\"$`"),
        Context::SingleQuoted => value.replace('\'', "'\\''"),
        Context::AnsiC => escape(value, b"\\'"),
        Context::Heredoc { expands: true, .. } => escape(value, b"\\$`"),
        Context::Heredoc { expands: false, .. } => value.to_owned(),
        Context::Comment if value.contains('\n') => return Err(Refused::NewlineInComment),
        Context::Comment => value.to_owned(),
        Context::Unsafe(why) => return Err(Refused::Unsafe(why.clone())),
    })
}

/// `value` as one single-quoted shell word.
pub(crate) fn single_quote(value: &str) -> String {
    format!("'{}'", value.replace('\'', "'\\''"))
}

/// Can `value` stand as a word with no quotes at all?
fn is_bare(value: &str) -> bool {
    const RESERVED: [&str; 16] = [
        "if", "then", "else", "elif", "fi", "do", "done", "case", "esac", "while", "until", "for", "in", "function",
        "select", "time",
    ];
    !value.is_empty()
        && value.bytes().all(|b| b.is_ascii_alphanumeric() || b"_-./,:@+".contains(&b))
        && !RESERVED.contains(&value)
}

/// `value` with a backslash before each byte of `special`.
fn escape(value: &str, special: &[u8]) -> String {
    let mut out = String::with_capacity(value.len() + 8);
    for c in value.chars() {
        if c.is_ascii() && special.contains(&(c as u8)) {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// The arguments of an argv that a shell reads as a script, with the shell's
/// dialect: the script of `sh -c SCRIPT` (also `bash -euc`, `env X=1 zsh -c`,
/// `sudo -u u sh -c`), the remote command of `ssh HOST …`, the script of `su -c`.
pub(crate) fn scripts_in_argv(argv: &[&str]) -> Vec<(usize, Dialect)> {
    let Some(program) = argv.first().filter(|p| !p.contains('{')) else {
        return Vec::new();
    };
    let mut reader = Reader::of(program);
    let mut arith = false;
    let mut scripts = Vec::new();
    for (i, arg) in argv.iter().enumerate().skip(1) {
        let option = arg.len() > 1 && (arg.starts_with('-') || arg.starts_with('+'));
        if reader.reads_word(option).is_some() {
            let dialect = match &reader {
                Reader::Shell { name, .. } => Dialect::of(name),
                _ => Dialect::Posix,
            };
            scripts.push((i, dialect));
        }
        reader.next(Some(arg), &mut arith);
    }
    scripts
}

/// What ends a list of commands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Close {
    /// The end of the text.
    End,
    /// A `)` (command and process substitutions, subshells).
    Paren,
}

/// After a `$`: which constructs are read there.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Place {
    /// Unquoted: `$'…'` and `$"…"` are quotes.
    Word,
    /// Inside `"…"` or a here-document body.
    Quoted,
}

/// The end of an arithmetic expression.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Closer {
    Parens,
    Bracket,
}

/// Where a `case` command is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Case {
    /// The word after `case`.
    Subject,
    /// Waiting for `in`.
    In,
    /// Reading a pattern list up to `)`; `first` until a word was read.
    Pattern { first: bool },
    /// Reading the commands of an item.
    Body,
}

/// An open `[[ … ]]` (or ksh's `test`/`[`).
#[derive(Debug, Default)]
struct Test {
    /// `[[`: ends at `]]`, not at the end of the command.
    double: bool,
    /// An arithmetic operator (`-eq`, …) was seen.
    arith: bool,
    /// Holes among its operands.
    holes: Vec<usize>,
}

/// A here-document whose body starts after the next newline.
#[derive(Debug)]
struct Pending {
    delimiter: String,
    strip_tabs: bool,
    expands: bool,
    /// The command that reads the body as a script (`bash <<EOF`).
    reparsed: Option<String>,
}

/// How a command treats its words: which of them another shell reads again.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Reader {
    /// Nothing of this command is read again (or it is not known yet).
    Nothing,
    /// `sudo`, `env`, `nice`, …: the command they run comes later. `skip`
    /// words are option arguments or operands (`timeout 10`) still to pass.
    Wrapper { skip: usize, sudo: bool },
    /// `eval`: every argument.
    Eval,
    /// A shell: with `-c`, its first operand is a script; without, it reads stdin.
    Shell { name: String, command: bool, skip: usize, operands: bool },
    /// `ssh`: the words after the destination are a remote command.
    Ssh { skip: usize, destination: bool, command: bool },
    /// `su`: the word after `-c`, or stdin.
    Su { script_next: bool, command: bool },
    /// `declare -i` and friends: a later `-i` makes assignments arithmetic.
    Declare,
}

impl Reader {
    /// The reader for a command named `word` (a plain word in command position).
    fn of(word: &str) -> Reader {
        let name = word.rsplit('/').next().unwrap_or(word);
        match name {
            "sudo" | "doas" => Reader::Wrapper { skip: 0, sudo: true },
            "env" | "nice" | "nohup" | "setsid" | "exec" | "command" | "builtin" | "stdbuf" => {
                Reader::Wrapper { skip: 0, sudo: false }
            }
            "timeout" | "chroot" => Reader::Wrapper { skip: 1, sudo: false },
            "eval" => Reader::Eval,
            "ssh" => Reader::Ssh { skip: 0, destination: false, command: false },
            "su" => Reader::Su { script_next: false, command: false },
            "declare" | "typeset" | "local" | "readonly" => Reader::Declare,
            _ if Dialect::of(name) != Dialect::Other => {
                Reader::Shell { name: name.to_owned(), command: false, skip: 0, operands: false }
            }
            _ => Reader::Nothing,
        }
    }

    /// Does the command read the word now being read (not an option) as a script?
    fn reads_word(&self, option: bool) -> Option<String> {
        match self {
            Reader::Eval => Some("eval".to_owned()),
            Reader::Shell { name, command: true, skip: 0, operands: false } if !option => Some(format!("{name} -c")),
            Reader::Ssh { skip: 0, destination: true, .. } => Some("ssh".to_owned()),
            Reader::Su { script_next: true, .. } => Some("su -c".to_owned()),
            _ => None,
        }
    }

    /// Does the command read its standard input as a script?
    fn reads_input(&self) -> Option<String> {
        match self {
            Reader::Shell { name, command: false, .. } => Some(name.clone()),
            Reader::Ssh { destination: true, command: false, .. } => Some("ssh".to_owned()),
            Reader::Su { command: false, .. } => Some("su".to_owned()),
            _ => None,
        }
    }

    /// A word of the command ended (`word` when it is plain text).
    fn next(&mut self, word: Option<&str>, arith: &mut bool) {
        let option = word.is_some_and(|w| w.len() > 1 && (w.starts_with('-') || w.starts_with('+')));
        match self {
            Reader::Nothing | Reader::Eval => {}
            Reader::Wrapper { skip, sudo } => {
                if *skip > 0 {
                    *skip -= 1;
                } else if option || word.is_some_and(|w| w.contains('=')) {
                    let takes = ["-u", "-g", "-C", "-D", "-h", "-p", "-r", "-t", "-U", "-n"];
                    if word.is_some_and(|w| takes.contains(&w) && (*sudo || w == "-n" || w == "-u")) {
                        *skip = 1;
                    }
                } else {
                    *self = word.map_or(Reader::Nothing, Reader::of);
                }
            }
            Reader::Shell { command, skip, operands, .. } => {
                if *skip > 0 {
                    *skip -= 1;
                } else if *operands {
                } else if option {
                    let w = word.unwrap_or_default();
                    if let Some(long) = w.strip_prefix("--") {
                        *skip = usize::from(["rcfile", "init-file"].contains(&long));
                    } else {
                        *command |= w.starts_with('-') && w[1..].contains('c');
                        *skip = usize::from(w.ends_with('o') || w.ends_with('O'));
                    }
                } else {
                    *operands = true;
                }
            }
            Reader::Ssh { skip, destination, command } => {
                if *skip > 0 {
                    *skip -= 1;
                } else if *destination {
                    *command = true;
                } else if option {
                    let w = word.unwrap_or_default();
                    let takes = b"BbcDEeFIiJLlmOoPpQRSWw";
                    *skip = usize::from(w.len() == 2 && w.starts_with('-') && takes.contains(&w.as_bytes()[1]));
                } else {
                    *destination = true;
                }
            }
            Reader::Su { script_next, command } => {
                if *script_next {
                    *script_next = false;
                } else if matches!(word, Some("-c" | "--command")) {
                    *script_next = true;
                    *command = true;
                }
            }
            Reader::Declare => {
                if option && word.is_some_and(|w| w.starts_with('-') && w.contains('i')) {
                    *arith = true;
                }
            }
        }
    }
}

/// The state of one list of commands.
#[derive(Debug)]
struct Words {
    /// Inside a word.
    in_word: bool,
    /// The word so far is literal text (no quotes, expansions or holes).
    plain: bool,
    /// The word's literal text before its first quote, expansion or hole.
    lead: Vec<u8>,
    /// The next word is in command position (reserved words count there).
    start: bool,
    case: Vec<Case>,
    test: Option<Test>,
    /// Inside `let`'s arguments (or after `declare -i`).
    arith: bool,
    pending: Vec<Pending>,
    /// What the current command does with its words.
    reader: Reader,
    /// The word is the target of a redirection, not an argument.
    redirect: bool,
    /// The word follows `<<<`: the command's standard input.
    herestring: bool,
}

impl Words {
    fn new() -> Words {
        Words {
            in_word: false,
            plain: true,
            lead: Vec::new(),
            start: true,
            case: Vec::new(),
            test: None,
            arith: false,
            pending: Vec::new(),
            reader: Reader::Nothing,
            redirect: false,
            herestring: false,
        }
    }

    /// The command that reads the current word again as a script, if any.
    fn reparsed_by(&self) -> Option<String> {
        if self.herestring {
            return self.reader.reads_input();
        }
        if self.redirect {
            return None;
        }
        let option = self.plain && matches!(self.lead.first(), Some(b'-' | b'+'));
        self.reader.reads_word(option)
    }

    /// A literal byte of the word.
    fn push(&mut self, byte: u8) {
        if !self.in_word {
            self.in_word = true;
        }
        if self.plain {
            self.lead.push(byte);
        }
    }

    /// A quote, expansion or hole in the word.
    fn mark(&mut self) {
        self.in_word = true;
        self.plain = false;
    }
}

/// Keywords after which the next word is again in command position.
const KEEP_START: [&str; 10] = ["if", "then", "else", "elif", "while", "until", "do", "!", "{", "time"];
/// Operators that make a test arithmetic.
const ARITH_OPS: [&str; 6] = ["-eq", "-ne", "-lt", "-le", "-gt", "-ge"];

struct Lexer<'a> {
    text: &'a [u8],
    /// Where reading stops (the end of a here-document body while it is read).
    end: usize,
    holes: &'a [Range<usize>],
    dialect: Dialect,
    contexts: Vec<Option<Context>>,
    reparsed: Vec<Option<String>>,
    /// The command that reads the text being lexed again, if any.
    reparsing: Option<String>,
    /// How deep the readers are nested.
    depth: usize,
    /// Set once the text reads differently in the shells a dialect covers
    /// (`$'\''` in a plain `sh`): no context after it is certain.
    diverged: Option<Unsafe>,
    heredocs: Vec<Heredoc>,
}

impl Lexer<'_> {
    /// The hole starting at `pos`, if any.
    fn hole(&self, pos: usize) -> Option<usize> {
        if pos >= self.end {
            return None;
        }
        self.holes.binary_search_by_key(&pos, |h| h.start).ok()
    }

    /// The byte at `pos`, unless it is the end or the start of a hole.
    fn at(&self, pos: usize) -> Option<u8> {
        (pos < self.end && self.hole(pos).is_none()).then(|| self.text[pos])
    }

    /// Records a hole's context (an enclosing unsafe place wins); returns its end.
    fn record(&mut self, hole: usize, context: Context, outer: &Option<Unsafe>) -> usize {
        let context = match (&self.diverged, outer) {
            (Some(why), _) | (None, Some(why)) => Context::Unsafe(why.clone()),
            (None, None) => context,
        };
        if self.contexts[hole].is_none() {
            self.contexts[hole] = Some(context);
            self.reparsed[hole] = self.reparsing.clone();
        }
        self.holes[hole].end
    }

    /// A list of commands from `pos` (the elements of `NAME=(…)` when
    /// `array`); returns the position after its end.
    fn command(&mut self, pos: usize, close: Close, array: bool, outer: &Option<Unsafe>) -> usize {
        self.nested(|lexer| lexer.command_list(pos, close, array, outer))
    }

    /// Runs a nested reader, unless the nesting is deeper than any script
    /// needs: then nothing after is read (its values are refused as unparsed).
    fn nested(&mut self, read: impl FnOnce(&mut Self) -> usize) -> usize {
        const MAX_DEPTH: usize = 200;
        if self.depth >= MAX_DEPTH {
            return self.end;
        }
        self.depth += 1;
        let end = read(self);
        self.depth -= 1;
        end
    }

    fn command_list(&mut self, mut pos: usize, close: Close, array: bool, outer: &Option<Unsafe>) -> usize {
        let inherited = self.reparsing.clone();
        let mut w = Words::new();
        while pos < self.end {
            self.reparsing = inherited.clone().or_else(|| w.reparsed_by());
            if let Some(hole) = self.hole(pos) {
                let subscript = if array { open_element_subscript(&w.lead) } else { open_subscript(&w.lead) };
                let context = if w.arith {
                    Context::Unsafe(Unsafe::Arithmetic)
                } else if (w.start || array) && w.plain && self.dialect.arrays() && subscript {
                    Context::Unsafe(Unsafe::Subscript)
                } else if w.test.as_ref().is_some_and(|t| t.double) {
                    Context::TestOperand
                } else {
                    Context::Word
                };
                if let Some(test) = &mut w.test {
                    test.holes.push(hole);
                }
                pos = self.record(hole, context, outer);
                w.mark();
                continue;
            }
            let byte = self.text[pos];
            match byte {
                b' ' | b'\t' => {
                    self.end_word(&mut w);
                    pos += 1;
                }
                b'\n' => {
                    self.end_word(&mut w);
                    self.boundary(&mut w);
                    pos += 1;
                    if !w.pending.is_empty() {
                        let pending = std::mem::take(&mut w.pending);
                        pos = self.bodies(pos, pending, outer);
                    }
                }
                b'#' if !w.in_word => {
                    while pos < self.end {
                        if let Some(hole) = self.hole(pos) {
                            pos = self.record(hole, Context::Comment, outer);
                        } else if self.text[pos] == b'\n' {
                            break;
                        } else {
                            pos += 1;
                        }
                    }
                }
                b'\\' => {
                    if let Some(hole) = self.hole(pos + 1) {
                        pos = self.record(hole, Context::Unsafe(Unsafe::AfterBackslash), outer);
                        w.mark();
                    } else if self.at(pos + 1) == Some(b'\n') {
                        pos += 2;
                    } else {
                        w.mark();
                        pos += 2;
                    }
                }
                b'\'' => {
                    w.mark();
                    pos = self.single_quoted(pos + 1, outer);
                }
                b'"' => {
                    w.mark();
                    pos = self.double_quoted(pos + 1, false, outer);
                }
                b'`' => {
                    w.mark();
                    pos = self.backticks(pos + 1, outer);
                }
                b'$' => {
                    w.mark();
                    pos = self.dollar(pos, Place::Word, outer);
                }
                b'(' => {
                    if w.test.as_ref().is_some_and(|t| t.double) {
                        self.end_word(&mut w);
                        pos += 1;
                    } else if matches!(w.case.last(), Some(Case::Pattern { first: true })) && !w.in_word {
                        pos += 1;
                    } else if !w.in_word && self.at(pos + 1) == Some(b'(') {
                        // `((…))`, also `for ((…))`: arithmetic.
                        pos = self.arith(pos + 2, Closer::Parens, outer);
                        w.start = false;
                    } else if w.in_word {
                        // `a=(…)`, `@(…)`, `f()`: words inside, part of this word.
                        let array = w.plain && w.lead.ends_with(b"=");
                        pos = self.command(pos + 1, Close::Paren, array, outer);
                        w.mark();
                    } else {
                        pos = self.command(pos + 1, Close::Paren, false, outer);
                        w.start = true;
                    }
                }
                b')' => {
                    self.end_word(&mut w);
                    if w.test.as_ref().is_some_and(|t| t.double) {
                        pos += 1;
                    } else if let Some(case @ Case::Pattern { .. }) = w.case.last_mut() {
                        *case = Case::Body;
                        w.start = true;
                        pos += 1;
                    } else if close == Close::Paren {
                        self.finish(&mut w);
                        self.reparsing = inherited;
                        return pos + 1;
                    } else {
                        pos += 1;
                    }
                }
                b';' => {
                    self.end_word(&mut w);
                    let next = self.at(pos + 1);
                    if next == Some(b';') {
                        pos += 2;
                        if self.at(pos) == Some(b'&') {
                            pos += 1;
                        }
                        next_item(&mut w);
                    } else if next == Some(b'&') || (next == Some(b'|') && self.dialect == Dialect::Zsh) {
                        pos += 2;
                        next_item(&mut w);
                    } else {
                        pos += 1;
                    }
                    self.boundary(&mut w);
                }
                b'|' if matches!(w.case.last(), Some(Case::Pattern { .. })) => {
                    self.end_word(&mut w);
                    pos += 1;
                }
                b'&' | b'|' => {
                    self.end_word(&mut w);
                    let next = self.at(pos + 1);
                    if byte == b'&' && next == Some(b'>') {
                        pos += 2;
                        if self.at(pos) == Some(b'>') {
                            pos += 1;
                        }
                        w.redirect = true;
                        continue;
                    }
                    pos += 1;
                    if next == Some(byte) || (byte == b'|' && next == Some(b'&')) {
                        pos += 1;
                    }
                    self.boundary(&mut w);
                }
                b'<' | b'>' => {
                    // A number right before is the file descriptor, not an argument.
                    if w.in_word && w.plain && w.lead.iter().all(u8::is_ascii_digit) {
                        w.in_word = false;
                        w.lead.clear();
                    }
                    self.end_word(&mut w);
                    let next = self.at(pos + 1);
                    if byte == b'<' && next == Some(b'<') {
                        if self.at(pos + 2) == Some(b'<') {
                            pos += 3;
                            w.herestring = true;
                        } else {
                            let strip_tabs = self.at(pos + 2) == Some(b'-');
                            self.reparsing = inherited.clone();
                            pos = self.heredoc_word(pos + 2 + usize::from(strip_tabs), strip_tabs, &mut w, outer);
                        }
                    } else if next == Some(b'(') {
                        pos = self.command(pos + 2, Close::Paren, false, outer);
                    } else {
                        let pair = matches!((byte, next), (b'>', Some(b'>' | b'&' | b'|')) | (b'<', Some(b'&' | b'>')));
                        pos += 1 + usize::from(pair);
                        w.redirect = true;
                    }
                }
                other => {
                    w.push(other);
                    pos += 1;
                }
            }
        }
        self.finish(&mut w);
        self.reparsing = inherited;
        pos
    }

    /// The end of a list of commands: the last word and any open test.
    fn finish(&mut self, w: &mut Words) {
        self.end_word(w);
        if let Some(test) = w.test.take() {
            self.finish_test(test);
        }
    }

    /// `;`, `&`, `|`, a newline: the next word is a command again.
    fn boundary(&mut self, w: &mut Words) {
        if w.test.as_ref().is_some_and(|t| t.double) {
            return;
        }
        if let Some(test) = w.test.take() {
            self.finish_test(test);
        }
        w.arith = false;
        w.start = true;
        w.reader = Reader::Nothing;
    }

    fn finish_test(&mut self, test: Test) {
        if !test.arith {
            return;
        }
        for hole in test.holes {
            if matches!(self.contexts[hole], Some(Context::Word | Context::TestOperand)) {
                self.contexts[hole] = Some(Context::Unsafe(Unsafe::ArithmeticTest));
            }
        }
    }

    /// A word ended: reserved words move `case`, `[[` and `let` along.
    fn end_word(&mut self, w: &mut Words) {
        if !w.in_word {
            return;
        }
        w.in_word = false;
        let lead = std::mem::take(&mut w.lead);
        let plain = std::mem::replace(&mut w.plain, true);
        let word = if plain { std::str::from_utf8(&lead).ok() } else { None };
        if std::mem::take(&mut w.redirect) | std::mem::take(&mut w.herestring) {
            return;
        }
        if !w.start {
            w.reader.next(word, &mut w.arith);
        }
        if let Some(test) = &mut w.test {
            if test.double && word == Some("]]") {
                if let Some(test) = w.test.take() {
                    self.finish_test(test);
                }
                w.start = false;
            } else if word.is_some_and(|op| ARITH_OPS.contains(&op)) {
                test.arith = true;
            }
            return;
        }
        match w.case.last_mut() {
            Some(case @ Case::Subject) => {
                *case = Case::In;
                return;
            }
            Some(case @ Case::In) => {
                if word == Some("in") {
                    *case = Case::Pattern { first: true };
                }
                return;
            }
            Some(Case::Pattern { first }) => {
                if *first && word == Some("esac") {
                    w.case.pop();
                    w.start = false;
                } else {
                    *first = false;
                }
                return;
            }
            _ => {}
        }
        if !w.start {
            return;
        }
        match word {
            Some("case") => {
                w.case.push(Case::Subject);
                w.start = false;
            }
            Some("esac") if w.case.last() == Some(&Case::Body) => {
                w.case.pop();
                w.start = false;
            }
            Some("[[") => {
                w.test = Some(Test { double: true, ..Test::default() });
                w.start = false;
            }
            Some("[" | "test") if self.dialect == Dialect::Ksh => {
                w.test = Some(Test::default());
                w.start = false;
            }
            Some("let") => {
                w.arith = true;
                w.start = false;
            }
            Some(keyword) if KEEP_START.contains(&keyword) => {}
            _ if is_assignment(&lead) => {}
            _ => {
                w.start = false;
                w.reader = word.map_or(Reader::Nothing, Reader::of);
            }
        }
    }

    /// The delimiter word after `<<` or `<<-`.
    fn heredoc_word(&mut self, mut pos: usize, strip_tabs: bool, w: &mut Words, outer: &Option<Unsafe>) -> usize {
        while matches!(self.at(pos), Some(b' ' | b'\t')) {
            pos += 1;
        }
        let mut delimiter = Vec::new();
        let mut quoted = false;
        let refuse = Context::Unsafe(Unsafe::HeredocDelimiter);
        let mut has_hole = false;
        while pos < self.end {
            if let Some(hole) = self.hole(pos) {
                pos = self.record(hole, refuse.clone(), outer);
                has_hole = true;
                continue;
            }
            match self.text[pos] {
                b' ' | b'\t' | b'\n' | b';' | b'&' | b'|' | b'<' | b'>' | b'(' | b')' => break,
                b'\'' => {
                    quoted = true;
                    pos += 1;
                    while pos < self.end {
                        if let Some(hole) = self.hole(pos) {
                            pos = self.record(hole, refuse.clone(), outer);
                            has_hole = true;
                        } else if self.text[pos] == b'\'' {
                            pos += 1;
                            break;
                        } else {
                            delimiter.push(self.text[pos]);
                            pos += 1;
                        }
                    }
                }
                b'"' => {
                    quoted = true;
                    pos += 1;
                    while pos < self.end {
                        if let Some(hole) = self.hole(pos) {
                            pos = self.record(hole, refuse.clone(), outer);
                            has_hole = true;
                        } else if self.text[pos] == b'"' {
                            pos += 1;
                            break;
                        } else if self.text[pos] == b'\\'
                            && matches!(self.at(pos + 1), Some(b'\\' | b'"' | b'$' | b'`'))
                        {
                            delimiter.push(self.text[pos + 1]);
                            pos += 2;
                        } else {
                            delimiter.push(self.text[pos]);
                            pos += 1;
                        }
                    }
                }
                b'\\' => {
                    quoted = true;
                    if let Some(byte) = self.at(pos + 1) {
                        delimiter.push(byte);
                    }
                    pos += 2;
                }
                byte => {
                    delimiter.push(byte);
                    pos += 1;
                }
            }
        }
        if !has_hole && !delimiter.is_empty() {
            w.pending.push(Pending {
                delimiter: String::from_utf8_lossy(&delimiter).into_owned(),
                strip_tabs,
                expands: !quoted,
                reparsed: self.reparsing.clone().or_else(|| w.reader.reads_input()),
            });
        }
        pos.min(self.end)
    }

    /// The bodies of the pending here-documents, from `pos` (after a newline).
    fn bodies(&mut self, mut pos: usize, pending: Vec<Pending>, outer: &Option<Unsafe>) -> usize {
        for here in pending {
            let start = pos;
            let mut body_end = self.end;
            let mut next = self.end;
            let heredoc = Heredoc {
                body: 0..0,
                delimiter: here.delimiter.clone(),
                strip_tabs: here.strip_tabs,
                expands: here.expands,
            };
            let mut line = pos;
            while line < self.end {
                // One logical line: in an unquoted body a line ending in `\` goes on.
                let mut text = Vec::new();
                let mut has_hole = false;
                let mut eol = line;
                loop {
                    let mut trailing = 0usize;
                    while eol < self.end {
                        if let Some(hole) = self.hole(eol) {
                            has_hole = true;
                            trailing = 0;
                            eol = self.holes[hole].end;
                        } else if self.text[eol] == b'\n' {
                            break;
                        } else {
                            trailing = if self.text[eol] == b'\\' { trailing + 1 } else { 0 };
                            text.push(self.text[eol]);
                            eol += 1;
                        }
                    }
                    if here.expands && trailing % 2 == 1 && eol < self.end {
                        text.pop();
                        eol += 1;
                        continue;
                    }
                    break;
                }
                if !has_hole && heredoc.ends_at(&String::from_utf8_lossy(&text)) {
                    body_end = line;
                    next = (eol + 1).min(self.end);
                    break;
                }
                line = eol + 1;
            }
            let index = self.heredocs.len();
            self.heredocs.push(Heredoc { body: start..body_end, ..heredoc });
            let saved = self.end;
            self.end = body_end;
            let reparsing = std::mem::replace(&mut self.reparsing, here.reparsed.clone());
            if here.expands {
                self.heredoc_body(start, index, outer);
            } else {
                let mut at = start;
                while at < self.end {
                    match self.hole(at) {
                        Some(hole) => {
                            at = self.record(hole, Context::Heredoc { expands: false, heredoc: index }, outer)
                        }
                        None => at += 1,
                    }
                }
            }
            self.end = saved;
            self.reparsing = reparsing;
            pos = next;
        }
        pos
    }

    /// An unquoted here-document's body: like `"…"`, but `"` is a plain character.
    fn heredoc_body(&mut self, mut pos: usize, heredoc: usize, outer: &Option<Unsafe>) {
        while pos < self.end {
            if let Some(hole) = self.hole(pos) {
                pos = self.record(hole, Context::Heredoc { expands: true, heredoc }, outer);
                continue;
            }
            match self.text[pos] {
                b'\\' => pos = self.backslash(pos, outer),
                b'$' => pos = self.dollar(pos, Place::Quoted, outer),
                b'`' => pos = self.backticks(pos + 1, outer),
                _ => pos += 1,
            }
        }
    }

    /// A `\` inside quotes: it escapes the next byte; before a hole it is refused.
    fn backslash(&mut self, pos: usize, outer: &Option<Unsafe>) -> usize {
        match self.hole(pos + 1) {
            Some(hole) => self.record(hole, Context::Unsafe(Unsafe::AfterBackslash), outer),
            None => (pos + 2).min(self.end),
        }
    }

    /// After an opening `'`.
    fn single_quoted(&mut self, mut pos: usize, outer: &Option<Unsafe>) -> usize {
        while pos < self.end {
            if let Some(hole) = self.hole(pos) {
                pos = self.record(hole, Context::SingleQuoted, outer);
            } else if self.text[pos] == b'\'' {
                return pos + 1;
            } else {
                pos += 1;
            }
        }
        pos
    }

    /// After an opening `"` (or `$"` when `locale`).
    fn double_quoted(&mut self, pos: usize, locale: bool, outer: &Option<Unsafe>) -> usize {
        self.nested(|lexer| lexer.double_quoted_text(pos, locale, outer))
    }

    fn double_quoted_text(&mut self, mut pos: usize, locale: bool, outer: &Option<Unsafe>) -> usize {
        let context = if locale { Context::Unsafe(Unsafe::Locale) } else { Context::DoubleQuoted };
        while pos < self.end {
            if let Some(hole) = self.hole(pos) {
                pos = self.record(hole, context.clone(), outer);
                continue;
            }
            match self.text[pos] {
                b'"' => return pos + 1,
                b'\\' => pos = self.backslash(pos, outer),
                b'$' => pos = self.dollar(pos, Place::Quoted, outer),
                b'`' => pos = self.backticks(pos + 1, outer),
                _ => pos += 1,
            }
        }
        pos
    }

    /// After an opening `$'`. A plain `sh` may read it as `$` and `'…'`
    /// (dash does): when the two readings end it at different places, nothing
    /// after it is certain.
    fn ansi_c(&mut self, mut pos: usize, outer: &Option<Unsafe>) -> usize {
        let context = if self.dialect.ansi_c() { Context::AnsiC } else { Context::Unsafe(Unsafe::AnsiCInSh) };
        let mut escaped_quote = false;
        while pos < self.end {
            if let Some(hole) = self.hole(pos) {
                pos = self.record(hole, context.clone(), outer);
                continue;
            }
            match self.text[pos] {
                b'\'' => {
                    if escaped_quote && !self.dialect.ansi_c() {
                        self.diverged = Some(Unsafe::AfterAnsiCInSh);
                    }
                    return pos + 1;
                }
                b'\\' => {
                    escaped_quote |= self.at(pos + 1) == Some(b'\'');
                    pos = self.backslash(pos, outer);
                }
                _ => pos += 1,
            }
        }
        pos
    }

    /// After an opening backtick: read flat to the closing one; every value inside is refused.
    fn backticks(&mut self, mut pos: usize, outer: &Option<Unsafe>) -> usize {
        let inner = Some(outer.clone().unwrap_or(Unsafe::Backticks));
        while pos < self.end {
            if let Some(hole) = self.hole(pos) {
                pos = self.record(hole, Context::Unsafe(Unsafe::Backticks), &inner);
                continue;
            }
            match self.text[pos] {
                b'`' => return pos + 1,
                b'\\' => pos = self.backslash(pos, &inner),
                _ => pos += 1,
            }
        }
        pos
    }

    /// A `$` at `pos`: an expansion, or a plain `$`.
    fn dollar(&mut self, pos: usize, place: Place, outer: &Option<Unsafe>) -> usize {
        let next = pos + 1;
        if let Some(hole) = self.hole(next) {
            return self.record(hole, Context::Unsafe(Unsafe::AfterDollar), outer);
        }
        match self.at(next) {
            Some(b'(') if self.at(next + 1) == Some(b'(') => self.arith(next + 2, Closer::Parens, outer),
            Some(b'(') => self.command(next + 1, Close::Paren, false, outer),
            Some(b'{') => self.parameter(next + 1, outer),
            Some(b'[') => self.arith(next + 1, Closer::Bracket, outer),
            Some(b'\'') if place == Place::Word => self.ansi_c(next + 1, outer),
            Some(b'"') if place == Place::Word => self.double_quoted(next + 1, true, outer),
            Some(byte) if byte == b'_' || byte.is_ascii_alphabetic() => {
                let mut end = next;
                while self.at(end).is_some_and(|b| b == b'_' || b.is_ascii_alphanumeric()) {
                    end += 1;
                }
                match self.hole(end) {
                    Some(hole) => {
                        let name = String::from_utf8_lossy(&self.text[next..end]).into_owned();
                        self.record(hole, Context::Unsafe(Unsafe::GluedToName(name)), outer)
                    }
                    None => end,
                }
            }
            Some(byte) if byte.is_ascii_digit() || b"@*#?-$!".contains(&byte) => next + 1,
            _ => next,
        }
    }

    /// After `${`: to the matching `}`; every value inside is refused.
    fn parameter(&mut self, pos: usize, outer: &Option<Unsafe>) -> usize {
        self.nested(|lexer| lexer.parameter_text(pos, outer))
    }

    fn parameter_text(&mut self, mut pos: usize, outer: &Option<Unsafe>) -> usize {
        let inner = Some(outer.clone().unwrap_or(Unsafe::Parameter));
        while pos < self.end {
            if let Some(hole) = self.hole(pos) {
                pos = self.record(hole, Context::Unsafe(Unsafe::Parameter), &inner);
                continue;
            }
            match self.text[pos] {
                b'}' => return pos + 1,
                b'\\' => pos = self.backslash(pos, &inner),
                b'\'' => pos = self.single_quoted(pos + 1, &inner),
                b'"' => pos = self.double_quoted(pos + 1, false, &inner),
                b'`' => pos = self.backticks(pos + 1, &inner),
                b'$' => pos = self.dollar(pos, Place::Word, &inner),
                _ => pos += 1,
            }
        }
        pos
    }

    /// Inside arithmetic, to its closer; every value inside is refused.
    fn arith(&mut self, pos: usize, closer: Closer, outer: &Option<Unsafe>) -> usize {
        self.nested(|lexer| lexer.arith_text(pos, closer, outer))
    }

    fn arith_text(&mut self, mut pos: usize, closer: Closer, outer: &Option<Unsafe>) -> usize {
        let inner = Some(outer.clone().unwrap_or(Unsafe::Arithmetic));
        let mut depth = 0usize;
        while pos < self.end {
            if let Some(hole) = self.hole(pos) {
                pos = self.record(hole, Context::Unsafe(Unsafe::Arithmetic), &inner);
                continue;
            }
            match self.text[pos] {
                b'(' => {
                    depth += 1;
                    pos += 1;
                }
                b')' if depth > 0 => {
                    depth -= 1;
                    pos += 1;
                }
                b')' if closer == Closer::Parens => {
                    return if self.at(pos + 1) == Some(b')') { pos + 2 } else { pos + 1 };
                }
                b']' if closer == Closer::Bracket && depth == 0 => return pos + 1,
                b'\\' => pos = self.backslash(pos, &inner),
                b'\'' => pos = self.single_quoted(pos + 1, &inner),
                b'"' => pos = self.double_quoted(pos + 1, false, &inner),
                b'`' => pos = self.backticks(pos + 1, &inner),
                b'$' => pos = self.dollar(pos, Place::Word, &inner),
                _ => pos += 1,
            }
        }
        pos
    }
}

/// `;;`, `;&`, `;;&`: the next `case` item starts with patterns.
fn next_item(w: &mut Words) {
    if let Some(case @ Case::Body) = w.case.last_mut() {
        *case = Case::Pattern { first: true };
    }
}

/// `NAME=…`, `NAME+=…`, `NAME[…]=…`: an assignment before a command.
fn is_assignment(lead: &[u8]) -> bool {
    let Some(eq) = lead.iter().position(|b| *b == b'=') else {
        return false;
    };
    let name = &lead[..eq];
    let name = name.strip_suffix(b"+").unwrap_or(name);
    let name = match name.iter().position(|b| *b == b'[') {
        Some(open) if name.ends_with(b"]") => &name[..open],
        Some(_) => return false,
        None => name,
    };
    is_name(name)
}

/// `NAME[` with no `]` yet: inside an array subscript.
fn open_subscript(lead: &[u8]) -> bool {
    match lead.iter().position(|b| *b == b'[') {
        Some(open) => is_name(&lead[..open]) && !lead[open..].contains(&b']'),
        None => false,
    }
}

/// `[…` with no `]` yet, as an element of `NAME=(…)`: an array subscript.
fn open_element_subscript(lead: &[u8]) -> bool {
    lead.first() == Some(&b'[') && !lead.contains(&b']')
}

fn is_name(name: &[u8]) -> bool {
    name.first().is_some_and(|b| *b == b'_' || b.is_ascii_alphabetic())
        && name.iter().all(|b| *b == b'_' || b.is_ascii_alphanumeric())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Lexes `script` with each `@` as a one-byte hole.
    fn contexts_in(script: &str, dialect: Dialect) -> Vec<Context> {
        let holes: Vec<Range<usize>> = script.match_indices('@').map(|(i, _)| i..i + 1).collect();
        lex(script, &holes, dialect).contexts
    }

    fn contexts(script: &str) -> Vec<Context> {
        contexts_in(script, Dialect::Posix)
    }

    fn one(script: &str) -> Context {
        let found = contexts(script);
        assert_eq!(found.len(), 1, "{script}");
        found[0].clone()
    }

    fn refused(script: &str) -> Unsafe {
        match one(script) {
            Context::Unsafe(why) => why,
            other => panic!("{script}: {other:?}"),
        }
    }

    use Context::{AnsiC, Comment, DoubleQuoted, SingleQuoted, Word};

    #[test]
    fn words_and_quotes() {
        assert_eq!(contexts("echo @ @/cache x@y"), vec![Word, Word, Word]);
        assert_eq!(contexts("ls -d \"@/cache\" '@;' \"it's @\""), vec![DoubleQuoted, SingleQuoted, DoubleQuoted]);
        assert_eq!(contexts("echo 'a\"b' @ \"x'y\" @"), vec![Word, Word]);
        assert_eq!(contexts("echo \\\" @ \\' @"), vec![Word, Word]);
        assert_eq!(contexts("echo \"a\\\"b @\""), vec![DoubleQuoted]);
        assert_eq!(contexts("FOO=@ BAR=\"@\" cmd @ > @ 2>&1 <<< @"), vec![Word, DoubleQuoted, Word, Word, Word]);
        assert_eq!(contexts("a | b @ && c @ || d; e @ & f\n g @"), vec![Word, Word, Word, Word]);
    }

    #[test]
    fn substitutions_reset_the_context() {
        assert_eq!(contexts("echo \"$(ls @ \"@\" '@')\""), vec![Word, DoubleQuoted, SingleQuoted]);
        assert_eq!(contexts("echo \"a $(echo \"$(echo @)\") b @\""), vec![Word, DoubleQuoted]);
        assert_eq!(contexts("x=$( (cd @ && ls) ) @"), vec![Word, Word]);
        assert_eq!(contexts("diff <(sort @) >(cat @)"), vec![Word, Word]);
        assert_eq!(contexts("echo $(case @ in a) echo @;; (b|@) x;; esac) @"), vec![Word, Word, Word, Word]);
        assert_eq!(
            contexts("case @ in\n  *.tar) tar xf @ ;;\n  @|x) : ;;\nesac\necho \"@\""),
            vec![Word, Word, Word, DoubleQuoted]
        );
    }

    #[test]
    fn unsafe_places_are_named() {
        assert_eq!(refused("echo `ls @`"), Unsafe::Backticks);
        assert_eq!(refused("echo \"`ls \"@\"`\""), Unsafe::Backticks);
        assert_eq!(refused("echo $(( @ + 1 ))"), Unsafe::Arithmetic);
        assert_eq!(refused("(( n = @ ))"), Unsafe::Arithmetic);
        assert_eq!(refused("echo $[ @ ]"), Unsafe::Arithmetic);
        assert_eq!(refused("let n=@"), Unsafe::Arithmetic);
        assert_eq!(refused("echo ${x:-@}"), Unsafe::Parameter);
        assert_eq!(refused("echo \"${x:-\"@\"}\""), Unsafe::Parameter);
        assert_eq!(refused("echo ${x:-$(ls @)}"), Unsafe::Parameter);
        assert_eq!(refused("cat <<@\nx\n"), Unsafe::HeredocDelimiter);
        assert_eq!(refused("cat <<'E@'\nx\n"), Unsafe::HeredocDelimiter);
        assert_eq!(refused("echo $\"@\""), Unsafe::Locale);
        assert_eq!(refused("echo $'@'"), Unsafe::AnsiCInSh);
        assert_eq!(refused("echo \\@"), Unsafe::AfterBackslash);
        assert_eq!(refused("echo \"\\@\""), Unsafe::AfterBackslash);
        assert_eq!(refused("echo $@"), Unsafe::AfterDollar);
        assert_eq!(refused("echo \"$HOME@\""), Unsafe::GluedToName("HOME".into()));
        assert_eq!(refused("echo $x_1@"), Unsafe::GluedToName("x_1".into()));
        assert_eq!(contexts("echo $1@ ${HOME}@ $HOME/@ \\$@"), vec![Word, Word, Word, Word]);
        assert_eq!(
            contexts("[[ @ -eq 1 ]] && [[ -f @ ]] @"),
            vec![Context::Unsafe(Unsafe::ArithmeticTest), Context::TestOperand, Word]
        );
        assert_eq!(quote("-n", &Context::TestOperand, None, None).unwrap(), "'-n'");
        assert_eq!(contexts("[ @ -eq 1 ]"), vec![Word]);
        assert_eq!(contexts_in("[ @ -eq 1 ]", Dialect::Ksh), vec![Context::Unsafe(Unsafe::ArithmeticTest)]);
        assert_eq!(contexts_in("a[@]=1; b=@", Dialect::Bash), vec![Context::Unsafe(Unsafe::Subscript), Word]);
    }

    /// Which holes another shell reads again, and by what.
    fn reparsed(script: &str) -> Vec<Option<String>> {
        let holes: Vec<Range<usize>> = script.match_indices('@').map(|(i, _)| i..i + 1).collect();
        lex(script, &holes, Dialect::Bash).reparsed
    }

    #[test]
    fn commands_that_read_a_value_again_are_found() {
        let by = |s: &str| Some(s.to_owned());
        assert_eq!(reparsed("eval echo @ \"@\""), vec![by("eval"), by("eval")]);
        assert_eq!(reparsed("sh -c \"echo @\" sh @ > @"), vec![by("sh -c"), None, None]);
        assert_eq!(reparsed("bash -eu -o pipefail -c 'x @' @; echo @"), vec![by("bash -c"), None, None]);
        assert_eq!(reparsed("sudo -u deploy env A=1 bash -c \"$(cat @)\" 2>@"), vec![by("bash -c"), None]);
        assert_eq!(reparsed("ssh -p 22 -t @ ls @ 2>&1 >@"), vec![None, by("ssh"), None]);
        assert_eq!(reparsed("su -c @ @"), vec![by("su -c"), None]);
        assert_eq!(reparsed("bash <<EOF\necho @\nEOF\ncat <<EOF\n@\nEOF\n"), vec![by("bash"), None]);
        assert_eq!(
            reparsed("ssh @ <<'EOF'\n@\nEOF\nbash <<< @; sh script.sh @"),
            vec![None, by("ssh"), by("bash"), None]
        );
        assert_eq!(reparsed("timeout 10 sh -c @ && echo @ | sh"), vec![by("sh -c"), None]);
        assert_eq!(
            contexts_in("declare -i n=@; declare m=@", Dialect::Bash),
            vec![Context::Unsafe(Unsafe::Arithmetic), Word]
        );
        assert_eq!(
            contexts_in("a=([@]=x @); for ((i=0; i<@; i++)); do :; done", Dialect::Bash),
            vec![Context::Unsafe(Unsafe::Subscript), Word, Context::Unsafe(Unsafe::Arithmetic)]
        );
    }

    #[test]
    fn ansi_c_quotes_follow_the_dialect() {
        assert_eq!(contexts_in("echo $'a\\'@' @", Dialect::Bash), vec![AnsiC, Word]);
        assert_eq!(contexts_in("echo $'@'", Dialect::Zsh), vec![AnsiC]);
        assert_eq!(contexts("echo \"$'@'\""), vec![DoubleQuoted]);
        // dash reads `$'\''` as `$`, `'\'` and an open quote: what follows is uncertain.
        assert_eq!(contexts("echo $'a\\'' @"), vec![Context::Unsafe(Unsafe::AfterAnsiCInSh)]);
        assert_eq!(contexts_in("echo $'a\\'' @", Dialect::Bash), vec![Word]);
    }

    #[test]
    fn comments_start_words_only() {
        assert_eq!(contexts("echo a#@ # note @\necho @"), vec![Word, Comment, Word]);
        assert_eq!(contexts("echo @#x ${#x} $# @"), vec![Word, Word]);
        assert_eq!(contexts("x=$(echo # ) @\n@)"), vec![Comment, Word]);
    }

    #[test]
    fn heredocs() {
        let script = "cat <<EOF >a; cat <<'Q' <<-T\nhi @ \"@\" $(echo @) ${x:-@}\nEOF\n@ $x\nQ\n\t@\n\tT\necho @\n";
        let lexed = lex(script, &script.match_indices('@').map(|(i, _)| i..i + 1).collect::<Vec<_>>(), Dialect::Posix);
        use Context::Heredoc as H;
        assert_eq!(
            lexed.contexts,
            vec![
                H { expands: true, heredoc: 0 },
                H { expands: true, heredoc: 0 },
                Word,
                Context::Unsafe(Unsafe::Parameter),
                H { expands: false, heredoc: 1 },
                H { expands: true, heredoc: 2 },
                Word,
            ]
        );
        assert_eq!(lexed.heredocs[0].delimiter, "EOF");
        assert_eq!(&script[lexed.heredocs[1].body.clone()], "@ $x\n");
        assert!(lexed.heredocs[2].strip_tabs && lexed.heredocs[2].ends_at("\t\tT"));
        // Inside a command substitution, and a delimiter line that holds a value is body.
        assert_eq!(contexts("x=$(cat <<E\n@\nE\n) @"), vec![H { expands: true, heredoc: 0 }, Word]);
        assert_eq!(contexts("cat <<E\nE@\nE\n"), vec![H { expands: true, heredoc: 0 }]);
        // A line ending in `\` goes on: `x\` + `E` is no delimiter line, unless quoted.
        assert_eq!(contexts("cat <<E\nx\\\nE\n@\nE\n@"), vec![H { expands: true, heredoc: 0 }, Word]);
        assert_eq!(contexts("cat <<'E'\nx\\\nE\n@\nE\n@"), vec![Word, Word]);
        assert_eq!(contexts("cat <<E\nx\\\\\nE\n@"), vec![Word]);
        let heredoc = Heredoc { body: 0..0, delimiter: "E".into(), strip_tabs: false, expands: true };
        let lines: Vec<String> = heredoc.lines("a\\\nE\nb\\\\\nE\n").into_iter().map(|(l, _)| l).collect();
        assert_eq!(lines, ["aE", "b\\\\", "E"]);
    }

    #[test]
    fn deep_nesting_is_refused_not_a_crash() {
        let script = format!("{}@{}", "$(".repeat(100_000), ")".repeat(100_000));
        assert_eq!(contexts(&script), vec![Context::Unsafe(Unsafe::Unparsed)]);
        let script = format!("{}@{}", "\"$(".repeat(150), ")\"".repeat(150));
        assert_eq!(contexts(&script), vec![Context::Unsafe(Unsafe::Unparsed)]);
        let script = format!("{}@{}", "$(".repeat(50), ")".repeat(50));
        assert_eq!(contexts(&script), vec![Word]);
    }

    #[test]
    fn quoting_per_context() {
        let payload = "a'b\"c$(d)`e`\\f\ng";
        let quoted = |context: Context| quote(payload, &context, None, None).unwrap();
        assert_eq!(quoted(Word), "'a'\\''b\"c$(d)`e`\\f\ng'");
        assert_eq!(quoted(DoubleQuoted), "a'b\\\"c\\$(d)\\`e\\`\\\\f\ng");
        assert_eq!(quoted(SingleQuoted), "a'\\''b\"c$(d)`e`\\f\ng");
        assert_eq!(quoted(AnsiC), "a\\'b\"c$(d)`e`\\\\f\ng");
        assert_eq!(quoted(Context::Heredoc { expands: true, heredoc: 0 }), "a'b\"c\\$(d)\\`e\\`\\\\f\ng");
        assert_eq!(quoted(Context::Heredoc { expands: false, heredoc: 0 }), payload);
        assert_eq!(quote(payload, &Comment, None, None), Err(Refused::NewlineInComment));
        assert_eq!(quote("x", &Comment, None, None).unwrap(), "x");
        assert_eq!(
            quote("x", &Context::Unsafe(Unsafe::Backticks), None, None),
            Err(Refused::Unsafe(Unsafe::Backticks))
        );
    }

    #[test]
    fn bare_words_only_when_nothing_can_change_them() {
        let word = |value: &str, before: Option<u8>, after: Option<u8>| quote(value, &Word, before, after).unwrap();
        assert_eq!(word("php", None, None), "php");
        assert_eq!(word("/var/www/shop-2.4.7_x:1,a@b+c", None, None), "/var/www/shop-2.4.7_x:1,a@b+c");
        for value in ["", "a b", "*", "a=b", "{a,b}", "~", "!", "if", "done", "%1", "é", "a\rb"] {
            assert_eq!(word(value, None, None), single_quote(value), "{value:?}");
        }
        assert_eq!(word("2", None, Some(b'>')), "'2'");
        assert_eq!(word("2", None, Some(b' ')), "2");
        assert_eq!(word("root", Some(b'~'), None), "'root'");
    }

    #[test]
    fn shells_are_found_in_argv() {
        assert_eq!(scripts_in_argv(&["sh", "-c", "x", "sh", "y"]), vec![(2, Dialect::Posix)]);
        assert_eq!(scripts_in_argv(&["/bin/bash", "-euo", "pipefail", "-c", "x"]), vec![(4, Dialect::Bash)]);
        assert_eq!(scripts_in_argv(&["bash", "-ec", "x"]), vec![(2, Dialect::Bash)]);
        assert_eq!(scripts_in_argv(&["env", "LC_ALL=C", "zsh", "-c", "x"]), vec![(4, Dialect::Zsh)]);
        assert_eq!(scripts_in_argv(&["sudo", "-u", "www", "sh", "-c", "x"]), vec![(5, Dialect::Posix)]);
        assert_eq!(scripts_in_argv(&["bash", "--norc", "-c", "--", "x"]), vec![(4, Dialect::Bash)]);
        assert_eq!(
            scripts_in_argv(&["ssh", "-p", "22", "host", "ls", "x"]),
            vec![(4, Dialect::Posix), (5, Dialect::Posix)]
        );
        assert_eq!(scripts_in_argv(&["su", "-", "www", "-c", "x"]), vec![(4, Dialect::Posix)]);
        assert!(scripts_in_argv(&["sh", "script.sh", "-c"]).is_empty());
        assert!(scripts_in_argv(&["python3", "-c", "x"]).is_empty());
        assert!(scripts_in_argv(&["{{ shell }}", "-c", "x"]).is_empty());
        assert_eq!(Dialect::of("/usr/bin/fish"), Dialect::Other);
        assert_eq!(Dialect::of("mksh"), Dialect::Ksh);
    }
}
