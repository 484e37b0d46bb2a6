//! The shell, as far as quoting needs it: a small lexer for POSIX `sh` (and
//! the bash, zsh and ksh additions that change quoting) that says, for each
//! interpolated value in a script, which context it lands in (a bare word,
//! `"…"`, `'…'`, `$'…'`, a here-document body, a comment, or a place where no
//! quoting is safe), and the quoting that keeps a value data in each context.
//! Where another shell reads a word again (`sh -c`, `eval`, `ssh`), the lexer
//! reads that word's text as the second shell will, to say where the value
//! lands there too. Where dash and bash read a script differently, or the
//! lexer cannot be sure how it reads, every value after is refused.
//!
//! Values are *holes*: byte ranges of the script the lexer never reads (their
//! text may be anything), each standing for one value that will be spliced in,
//! quoted for its context, as one part of a word. The module is pure: it
//! neither renders templates nor runs anything, and it knows nothing of
//! playbooks. What commands do with their words is `readers`.

use std::collections::{HashMap, HashSet};
use std::ops::Range;

use crate::readers::{self, Input, Reader, Role, Skip, ValueKind, WordView};

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
    /// Part of an unquoted word after a `{`, which brace expansion (bash,
    /// zsh, ksh, and bash as `sh`) may split at a `,` or a `..` of the value.
    Braced,
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

impl Context {
    /// Where this is, for a message ("inside `\"…\"`").
    fn place(&self) -> String {
        match self {
            Context::Word | Context::Braced => "as a word".to_owned(),
            Context::TestOperand => "in a `[[ … ]]` test".to_owned(),
            Context::DoubleQuoted => "inside `\"…\"`".to_owned(),
            Context::SingleQuoted => "inside `'…'`".to_owned(),
            Context::AnsiC => "inside `$'…'`".to_owned(),
            Context::Heredoc { .. } => "in a here-document".to_owned(),
            Context::Comment => "in a comment".to_owned(),
            Context::Unsafe(why) => why.place(),
        }
    }
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
    /// Where a builtin takes a variable name (`read NAME`, `printf -v NAME`,
    /// `declare NAME=…`): bash evaluates `a[…]` subscripts in it.
    Name(String),
    /// In a variable the shell expands again when it uses it (`PS4`, `PROMPT_COMMAND`).
    Prompt(String),
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
    /// After something the shells read differently, or that upshift cannot follow.
    Uncertain(Uncertain),
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
    /// Quoted for the shell that reads it again (`| quote`), but that shell
    /// reads it somewhere a word is not (`by`, and where).
    ReparsedIn { by: String, place: String },
    /// Read again by a second shell (`by`), and once more by a third inside it.
    ReparsedTwice { by: String, again: String },
    /// Inside a command substitution whose output another shell reads as a script.
    ReparsedOutput(String),
    /// In an ssh option that ssh runs through a shell (`ProxyCommand`).
    SshCommand(String),
    /// In the name of an ssh option (`-o {{ x }}`).
    SshOption,
    /// After an option of a wrapper upshift does not know: it cannot tell which command runs.
    Lost(String),
    /// A script this lexer could not follow to the value.
    Unparsed,
    /// A shell whose quoting upshift does not know.
    UnknownShell,
}

/// What the shells read differently, or the lexer cannot follow: every value after it is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Uncertain {
    /// A here-document opened inside `$(…)` or `<(…)` that closes on the same
    /// line: dash gives it an empty body, bash reads its body after the line.
    HeredocInSubstitution,
    /// A delimiter written `$'…'` or `$"…"`: dash reads `$EOF`, bash `EOF`.
    DelimiterQuoting,
    /// A body line inside `$(…)` that starts with the delimiter and has a `)`:
    /// bash ends the document there, dash reads on.
    DelimiterCut,
    /// The rest of a line where bash ended a here-document inside `$(…)`
    /// (`EOF)"; …`): bash reads it again, and changes some bytes of it.
    RestOfCut,
    /// A `$(…)` (or `${…}`, backticks) in a here-document body that runs past
    /// the delimiter line: bash ends the body at that line, dash after the `)`.
    BodySubstitution,
}

impl Unsafe {
    /// Where the value is, after "cannot be quoted".
    pub(crate) fn place(&self) -> String {
        match self {
            Unsafe::Backticks => "inside backticks".to_owned(),
            Unsafe::Arithmetic => "in arithmetic (`$((…))`, `((…))`, `let`)".to_owned(),
            Unsafe::ArithmeticTest => "as an operand of an arithmetic test (`-eq`, `-lt`, …)".to_owned(),
            Unsafe::Subscript => "in an array subscript".to_owned(),
            Unsafe::Name(by) => format!("where `{by}` takes a variable name"),
            Unsafe::Prompt(name) => format!("in `{name}`, which the shell expands again when it uses it"),
            Unsafe::Parameter => "inside a parameter expansion `${…}`".to_owned(),
            Unsafe::HeredocDelimiter => "in a here-document's delimiter".to_owned(),
            Unsafe::Locale => "inside a translated string `$\"…\"`".to_owned(),
            Unsafe::AnsiCInSh => "inside `$'…'`, which `sh` does not read the same everywhere".to_owned(),
            Unsafe::AfterAnsiCInSh => "after a `$'…\\'…'`, which dash and bash end at different places".to_owned(),
            Unsafe::Uncertain(why) => match why {
                Uncertain::HeredocInSubstitution => {
                    "after a here-document opened in `$(…)` or `<(…)` that closes on the same line (dash and bash \
                     read its body differently)"
                        .to_owned()
                }
                Uncertain::DelimiterQuoting => {
                    "after a here-document delimiter written `$'…'` or `$\"…\"` (dash and bash end it at \
                     different lines)"
                        .to_owned()
                }
                Uncertain::DelimiterCut => {
                    "after a here-document line that starts with its delimiter and has a `)` (bash ends the \
                     document there, dash does not)"
                        .to_owned()
                }
                Uncertain::BodySubstitution => {
                    "after a `$(…)` in a here-document body that runs past the delimiter line (dash and bash end \
                     the body at different lines)"
                        .to_owned()
                }
                Uncertain::RestOfCut => {
                    "on the line where bash ends a here-document at its delimiter and a `)` (bash reads the rest \
                     of that line again, and changes bytes of it)"
                        .to_owned()
                }
            },
            Unsafe::AfterBackslash => "right after a `\\`".to_owned(),
            Unsafe::AfterDollar => "right after a `$`".to_owned(),
            Unsafe::GluedToName(name) => format!("right after `${name}`"),
            Unsafe::Reparsed(by) => format!("where `{by}` reads it again as a script"),
            Unsafe::ReparsedIn { by, place } => format!("where `{by}` reads it again as a script, {place} there"),
            Unsafe::ReparsedTwice { by, again } => {
                format!("where `{by}` reads it again as a script, and `{again}` once more inside it")
            }
            Unsafe::ReparsedOutput(by) => {
                format!("inside a command substitution whose output `{by}` reads as a script")
            }
            Unsafe::SshCommand(option) => format!("in ssh's `{option}`, which ssh runs through a shell here"),
            Unsafe::SshOption => "in the name of an ssh option".to_owned(),
            Unsafe::Lost(after) => format!("after {after}, where upshift cannot tell which command runs"),
            Unsafe::Unparsed => "where upshift cannot tell how the shell reads it".to_owned(),
            Unsafe::UnknownShell => "for a shell upshift does not know".to_owned(),
        }
    }

    /// The problem with `what` (a value, or the `{{ … }}` that writes it) here.
    pub(crate) fn message(&self, what: &str) -> String {
        match self {
            Unsafe::Reparsed(by) => format!("{what} would be read again as a script by `{by}`"),
            Unsafe::ReparsedIn { by, place } => {
                format!("{what} would be read again as a script by `{by}`, {place} there")
            }
            Unsafe::ReparsedTwice { by, again } => {
                format!("{what} would be read again as a script by `{by}`, and once more by `{again}` inside it")
            }
            _ => format!("{what} cannot be quoted {}", self.place()),
        }
    }

    /// A few words under the value, in a diagnostic.
    pub(crate) fn label(&self) -> String {
        match self {
            Unsafe::Reparsed(by) => format!("quoted once only, `{by}` would run what is in it"),
            Unsafe::ReparsedIn { by, .. } => format!("`| quote` writes a word, and `{by}` does not read a word here"),
            Unsafe::ReparsedTwice { .. } => "`| quote` quotes for one more shell only".to_owned(),
            Unsafe::Name(_) => "bash evaluates `a[…]` subscripts in names as arithmetic".to_owned(),
            Unsafe::Uncertain(_) | Unsafe::Lost(_) => "upshift cannot tell how this is read".to_owned(),
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
            Unsafe::Name(_) => {
                "write the variable's name yourself and pass the value as data (`read -r line`, `printf -v out \
                 '%s' {{ x }}`)"
                    .to_owned()
            }
            Unsafe::Prompt(name) => format!("leave values out of `{name}`, or write `| safe` if the text is yours"),
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
            Unsafe::Uncertain(why) => match why {
                Uncertain::HeredocInSubstitution => {
                    "end the here-document inside the `$(…)`: put the `)` on a line after its delimiter".to_owned()
                }
                Uncertain::DelimiterQuoting => "write the delimiter `'EOF'` or `\"EOF\"`".to_owned(),
                Uncertain::DelimiterCut => "end the here-document with its delimiter alone on a line".to_owned(),
                Uncertain::BodySubstitution => {
                    "close each `$(…)` of a here-document body before its delimiter line".to_owned()
                }
                Uncertain::RestOfCut => "put the value on a line after the one that ends the here-document".to_owned(),
            },
            Unsafe::AfterBackslash => "remove the `\\`: the value is quoted for you".to_owned(),
            Unsafe::AfterDollar => "write `\\$` for a literal `$` before the value".to_owned(),
            Unsafe::GluedToName(name) => format!("write `${{{name}}}`, so the value cannot extend the name"),
            Unsafe::Reparsed(_) => "write `| quote` to quote the value for that shell too, or pass it as an argument: \
                                    `sh -c '… \"$1\"' sh {{ x }}`"
                .to_owned(),
            Unsafe::ReparsedIn { .. } => "put the value where that shell reads a word of its own, or pass it as an \
                                          argument: `sh -c '… \"$1\"' sh {{ x | quote }}`"
                .to_owned(),
            Unsafe::ReparsedTwice { .. } => "pass the value as an argument of the innermost shell (`sh -c '… \
                                             \"$1\"' sh {{ x | quote }}`), or through a file"
                .to_owned(),
            Unsafe::ReparsedOutput(_) => {
                "pass the value as an argument or through the environment, not through a command's output".to_owned()
            }
            Unsafe::SshCommand(_) => {
                "use `-J` (ProxyJump) for a bastion, or a `Host` entry of an ssh config".to_owned()
            }
            Unsafe::SshOption => "write the option's name yourself: `-o User={{ user }}`".to_owned(),
            Unsafe::Lost(_) => {
                "write the wrapper's options as the format reference lists them, or set the value in `env` and use \
                 `\"$NAME\"`"
                    .to_owned()
            }
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
    /// Opened inside `$(…)`: bash also ends it at a line that starts with
    /// the delimiter and has a `)` after it.
    pub(crate) in_substitution: bool,
}

impl Heredoc {
    /// Would this (logical) line end the here-document?
    pub(crate) fn ends_at(&self, line: &str) -> bool {
        let line = if self.strip_tabs { line.trim_start_matches('\t') } else { line };
        line == self.delimiter
    }

    /// Would bash end the here-document at this line (inside `$(…)`)?
    pub(crate) fn cuts_at(&self, line: &str) -> bool {
        let line = if self.strip_tabs { line.trim_start_matches('\t') } else { line };
        self.in_substitution && line.strip_prefix(self.delimiter.as_str()).is_some_and(|rest| rest.contains(')'))
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

/// A value another shell reads again as a script: that command, where the
/// value lands in the text it reads, and a third shell inside it that reads
/// the value once more.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Reread {
    pub(crate) by: String,
    pub(crate) inner: Context,
    pub(crate) again: Option<String>,
}

/// What the lexer found: one context per hole, and the here-documents.
#[derive(Debug)]
pub(crate) struct Lexed {
    pub(crate) contexts: Vec<Context>,
    /// For each hole, the command that reads it again as a script, if any
    /// (the context is then where it lands for this shell).
    pub(crate) rereads: Vec<Option<Reread>>,
    pub(crate) heredocs: Vec<Heredoc>,
}

impl Lexed {
    /// Where hole `hole` can be written: the context to quote it for, or why
    /// nothing is safe. `requoted`: the value was quoted for one more shell
    /// (`| quote`), which is what a shell that reads it again needs, when it
    /// reads it as a word of its own.
    pub(crate) fn settle(&self, hole: usize, requoted: bool) -> Result<Context, Unsafe> {
        let context = self.contexts[hole].clone();
        if let Context::Unsafe(why) = context {
            return Err(why);
        }
        let Some(reread) = &self.rereads[hole] else {
            return Ok(context);
        };
        if !requoted {
            return Err(Unsafe::Reparsed(reread.by.clone()));
        }
        if let Some(again) = &reread.again {
            return Err(Unsafe::ReparsedTwice { by: reread.by.clone(), again: again.clone() });
        }
        match &reread.inner {
            Context::Word | Context::Braced => Ok(context),
            Context::Unsafe(
                why @ (Unsafe::ReparsedOutput(_) | Unsafe::Uncertain(_) | Unsafe::Lost(_) | Unsafe::Unparsed),
            ) => Err(why.clone()),
            inner => Err(Unsafe::ReparsedIn { by: reread.by.clone(), place: inner.place() }),
        }
    }
}

/// Reads `script` in `dialect` and says where each hole lands. Holes are
/// sorted, disjoint byte ranges of `script`; their text is never read.
pub(crate) fn lex(script: &str, holes: &[Range<usize>], dialect: Dialect) -> Lexed {
    lex_nested(script.as_bytes(), holes, dialect, 0)
}

/// How many shells deep a value is followed (`eval "eval '…'"`).
const MAX_REREAD: usize = 8;

fn lex_nested(script: &[u8], holes: &[Range<usize>], dialect: Dialect, depth: usize) -> Lexed {
    debug_assert!(holes.windows(2).all(|w| w[0].end <= w[1].start), "holes are sorted and disjoint");
    let mut lexer = Lexer::new(script, holes, dialect);
    lexer.command(0, Close::End, false, &None);
    let rereads = lexer.reread(depth);
    let contexts = lexer.contexts.into_iter().map(|c| c.unwrap_or(Context::Unsafe(Unsafe::Unparsed))).collect();
    Lexed { contexts, rereads, heredocs: lexer.heredocs }
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
        Context::Word | Context::Braced => {
            let digits_before_redirect =
                value.bytes().all(|b| b.is_ascii_digit()) && matches!(after, Some(b'<' | b'>'));
            let splits = *context == Context::Braced && (value.contains(',') || value.contains(".."));
            if is_bare(value) && !digits_before_redirect && before != Some(b'~') && !splits {
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

/// `value` as one shell word for a shell that reads it again (`| quote`):
/// bare only where no context could change it (no digits alone, which a
/// `>` after would make a redirection; no `,` or `..`, which braces split).
pub(crate) fn quote_word(value: &str) -> String {
    let plain =
        is_bare(value) && !value.bytes().all(|b| b.is_ascii_digit()) && !value.contains(',') && !value.contains("..");
    if plain { value.to_owned() } else { single_quote(value) }
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

pub(crate) use readers::scripts_in_argv;

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
    /// The next word is the operand of `-v`: a variable name.
    name_next: bool,
    /// Holes among its operands.
    holes: Vec<usize>,
}

/// A here-document whose body starts after the next newline.
#[derive(Debug)]
struct Pending {
    delimiter: String,
    strip_tabs: bool,
    expands: bool,
    /// Opened inside `$(…)`.
    in_substitution: bool,
    /// The shell that reads the text it is in again, if any.
    inherited: Option<String>,
    /// What its command does with its input, once the command has ended.
    input: Option<Input>,
}

/// A text another shell reads as a script: words of one command (joined by
/// spaces), or a here-document body.
#[derive(Debug)]
struct Unit {
    by: String,
    dialect: Dialect,
    parts: Vec<UnitPart>,
}

#[derive(Debug)]
enum UnitPart {
    Word { range: Range<usize>, skip: Skip },
    Body { range: Range<usize>, expands: bool },
}

/// How quotes are removed from a text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// A word.
    Word,
    /// A here-document body (expanding, or as it is).
    Body { expands: bool },
}

/// A word (or body) after the shell's quote removal, as far as it is known.
#[derive(Debug)]
struct Dequoted {
    /// The text; each value is as many `\x01` bytes as its text, each
    /// expansion one `\0` (what it gives is known only when it runs).
    text: Vec<u8>,
    /// Each hole in it: its index, its range in `text`, and whether it is
    /// the value itself (false: inside an expansion, whose output lands here).
    holes: Vec<(usize, Range<usize>, bool)>,
    /// No expansion and no value: `text` is exactly the word.
    known: bool,
}

/// The state of one list of commands.
#[derive(Debug)]
struct Words {
    /// Inside a word.
    in_word: bool,
    /// Where the current word started.
    word_start: usize,
    /// The word so far is literal text (no quotes, expansions or holes).
    plain: bool,
    /// The word's literal text before its first quote, expansion or hole.
    lead: Vec<u8>,
    /// An unquoted `{` is in the word: brace expansion may split it.
    braced: bool,
    /// The next word is in command position (reserved words count there).
    start: bool,
    case: Vec<Case>,
    test: Option<Test>,
    pending: Vec<Pending>,
    /// What the current command does with its words.
    reader: Reader,
    /// The text another shell reads, of the current command (`eval a b`).
    unit: Option<usize>,
    /// The word is the target of a redirection, not an argument.
    redirect: bool,
    /// The word follows `<<<`: the command's standard input.
    herestring: bool,
}

impl Words {
    fn new() -> Words {
        Words {
            in_word: false,
            word_start: 0,
            plain: true,
            lead: Vec::new(),
            braced: false,
            start: true,
            case: Vec::new(),
            test: None,
            pending: Vec::new(),
            reader: Reader::Nothing,
            unit: None,
            redirect: false,
            herestring: false,
        }
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
    /// For each hole, the command that reads it again, if any.
    reparsed: Vec<Option<String>>,
    /// The command that reads the text being lexed again (a here-document body's).
    reparsing: Option<String>,
    /// How deep the readers are nested.
    depth: usize,
    /// Set once the text reads differently in the shells a dialect covers
    /// (`$'\''` in a plain `sh`): no context after it is certain.
    diverged: Option<Unsafe>,
    heredocs: Vec<Heredoc>,
    /// How many `$(…)` and `<(…)` the text being read is inside.
    substitution: usize,
    /// Here-documents still pending when a `)` closed their list.
    leftover: Vec<Pending>,
    /// A construct ran out of text before its closer.
    unclosed: bool,
    /// Texts other shells read.
    units: Vec<Unit>,
    /// Variables declared integer (`declare -i n`): assigning to them is arithmetic.
    integers: HashSet<String>,
    /// Values before this position are refused for this reason (the rest of
    /// a line bash reads again).
    tainted: Option<(usize, Unsafe)>,
    /// Where each expansion read so far (`$x`, `$(…)`, `${…}`, backticks,
    /// `<(…)`) ends, by where it starts.
    expansions: HashMap<usize, usize>,
}

impl<'a> Lexer<'a> {
    fn new(text: &'a [u8], holes: &'a [Range<usize>], dialect: Dialect) -> Lexer<'a> {
        Lexer {
            text,
            end: text.len(),
            holes,
            dialect,
            contexts: vec![None; holes.len()],
            reparsed: vec![None; holes.len()],
            reparsing: None,
            depth: 0,
            diverged: None,
            heredocs: Vec::new(),
            substitution: 0,
            leftover: Vec::new(),
            unclosed: false,
            units: Vec::new(),
            integers: HashSet::new(),
            tainted: None,
            expansions: HashMap::new(),
        }
    }
}

impl Lexer<'_> {
    /// The hole starting at `pos`, if any.
    fn hole(&self, pos: usize) -> Option<usize> {
        if pos >= self.end {
            return None;
        }
        self.holes.binary_search_by_key(&pos, |h| h.start).ok()
    }

    /// The holes that start in `range`.
    fn holes_in(&self, range: &Range<usize>) -> Range<usize> {
        let first = self.holes.partition_point(|h| h.start < range.start);
        let last = self.holes.partition_point(|h| h.start < range.end);
        first..last.max(first)
    }

    /// The byte at `pos`, unless it is the end or the start of a hole.
    fn at(&self, pos: usize) -> Option<u8> {
        (pos < self.end && self.hole(pos).is_none()).then(|| self.text[pos])
    }

    /// Records a hole's context (an enclosing unsafe place wins); returns its end.
    fn record(&mut self, hole: usize, context: Context, outer: &Option<Unsafe>) -> usize {
        let tainted = self.tainted.as_ref().filter(|(end, _)| self.holes[hole].start < *end).map(|(_, why)| why);
        let context = match (&self.diverged, outer, tainted) {
            (Some(why), _, _) | (None, Some(why), _) | (None, None, Some(why)) => Context::Unsafe(why.clone()),
            (None, None, None) => context,
        };
        if self.contexts[hole].is_none() {
            self.contexts[hole] = Some(context);
            self.reparsed[hole] = self.reparsing.clone();
        }
        self.holes[hole].end
    }

    /// A hole turns out to be somewhere no quoting is safe (a word's role,
    /// known once the word has ended); an earlier reason stays.
    fn refuse(&mut self, hole: usize, why: Unsafe) {
        if !matches!(self.contexts[hole], Some(Context::Unsafe(_))) {
            self.contexts[hole] = Some(Context::Unsafe(why));
        }
    }

    /// From here on, no context is certain.
    fn diverge(&mut self, why: Uncertain) {
        if self.diverged.is_none() {
            self.diverged = Some(Unsafe::Uncertain(why));
        }
    }

    /// A list of commands from `pos` (the elements of `NAME=(…)` when
    /// `array`); returns the position after its end.
    fn command(&mut self, pos: usize, close: Close, array: bool, outer: &Option<Unsafe>) -> usize {
        self.nested(|lexer| lexer.command_list(pos, close, array, outer))
    }

    /// `$(…)`, `<(…)`, `>(…)` from `pos` (after the `(`). A here-document
    /// still open at its `)` makes the rest uncertain: dash gives it an empty
    /// body, bash reads its body from the lines after.
    fn substitution(&mut self, pos: usize, outer: &Option<Unsafe>) -> usize {
        self.substitution += 1;
        let end = self.command(pos, Close::Paren, false, outer);
        self.substitution -= 1;
        if !std::mem::take(&mut self.leftover).is_empty() {
            self.diverge(Uncertain::HeredocInSubstitution);
        }
        end
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
            self.reparsing = inherited.clone();
            if !w.in_word {
                w.word_start = pos;
            }
            if let Some(hole) = self.hole(pos) {
                let subscript = if array { open_element_subscript(&w.lead) } else { open_subscript(&w.lead) };
                let context = if (w.start || array) && w.plain && self.dialect.arrays() && subscript {
                    Context::Unsafe(Unsafe::Subscript)
                } else if w.test.as_ref().is_some_and(|t| t.double) {
                    Context::TestOperand
                } else if w.braced {
                    Context::Braced
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
                    self.end_word(&mut w, pos);
                    pos += 1;
                }
                b'\n' => {
                    self.end_word(&mut w, pos);
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
                        self.end_word(&mut w, pos);
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
                        if !std::mem::take(&mut self.leftover).is_empty() {
                            self.diverge(Uncertain::HeredocInSubstitution);
                        }
                        w.mark();
                    } else {
                        // A subshell: a here-document opened in it and still
                        // open at its `)` reads its body after the next newline.
                        pos = self.command(pos + 1, Close::Paren, false, outer);
                        let carried = std::mem::take(&mut self.leftover);
                        w.pending.extend(carried);
                        w.start = true;
                    }
                }
                b')' => {
                    self.end_word(&mut w, pos);
                    if w.test.as_ref().is_some_and(|t| t.double) {
                        pos += 1;
                    } else if let Some(case @ Case::Pattern { .. }) = w.case.last_mut() {
                        *case = Case::Body;
                        w.start = true;
                        pos += 1;
                    } else if close == Close::Paren {
                        self.finish(&mut w, pos);
                        self.leftover = std::mem::take(&mut w.pending);
                        self.reparsing = inherited;
                        return pos + 1;
                    } else {
                        pos += 1;
                    }
                }
                b';' => {
                    self.end_word(&mut w, pos);
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
                    self.end_word(&mut w, pos);
                    pos += 1;
                }
                b'&' | b'|' => {
                    self.end_word(&mut w, pos);
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
                b'<' | b'>' if self.at(pos + 1) == Some(b'(') => {
                    // A process substitution: part of a word (its output is a file name).
                    w.mark();
                    let start = pos;
                    pos = self.substitution(pos + 2, outer);
                    self.expansions.insert(start, pos);
                }
                b'<' | b'>' => {
                    // A number right before is the file descriptor, not an argument.
                    if w.in_word && w.plain && w.lead.iter().all(u8::is_ascii_digit) {
                        w.in_word = false;
                        w.lead.clear();
                    }
                    self.end_word(&mut w, pos);
                    let next = self.at(pos + 1);
                    if byte == b'<' && next == Some(b'<') {
                        if self.at(pos + 2) == Some(b'<') {
                            pos += 3;
                            w.herestring = true;
                        } else {
                            let strip_tabs = self.at(pos + 2) == Some(b'-');
                            pos = self.heredoc_word(pos + 2 + usize::from(strip_tabs), strip_tabs, &mut w, outer);
                        }
                    } else {
                        let pair = matches!((byte, next), (b'>', Some(b'>' | b'&' | b'|')) | (b'<', Some(b'&' | b'>')));
                        pos += 1 + usize::from(pair);
                        w.redirect = true;
                    }
                }
                other => {
                    if other == b'{' {
                        w.braced = true;
                    }
                    w.push(other);
                    pos += 1;
                }
            }
        }
        self.finish(&mut w, pos);
        if close == Close::Paren {
            self.unclosed = true;
            self.leftover = std::mem::take(&mut w.pending);
        }
        self.reparsing = inherited;
        pos
    }

    /// The end of a list of commands: the last word and any open test.
    fn finish(&mut self, w: &mut Words, pos: usize) {
        self.end_word(w, pos);
        resolve(w);
        if let Some(test) = w.test.take() {
            self.finish_test(test);
        }
    }

    /// `;`, `&`, `|`, a newline: the next word is a command again.
    fn boundary(&mut self, w: &mut Words) {
        if w.test.as_ref().is_some_and(|t| t.double) {
            return;
        }
        resolve(w);
        if let Some(test) = w.test.take() {
            self.finish_test(test);
        }
        w.start = true;
        w.reader = Reader::Nothing;
        w.unit = None;
    }

    fn finish_test(&mut self, test: Test) {
        if !test.arith {
            return;
        }
        for hole in test.holes {
            if matches!(self.contexts[hole], Some(Context::Word | Context::TestOperand | Context::Braced)) {
                self.contexts[hole] = Some(Context::Unsafe(Unsafe::ArithmeticTest));
            }
        }
    }

    /// A word ended at `end`: its command reads it (which may read it again
    /// as a script, or take it as a name); reserved words move `case`, `[[`
    /// along.
    fn end_word(&mut self, w: &mut Words, end: usize) {
        if !w.in_word {
            return;
        }
        w.in_word = false;
        let lead = String::from_utf8(std::mem::take(&mut w.lead))
            .unwrap_or_else(|error| String::from_utf8_lossy(error.as_bytes()).into_owned());
        let plain = std::mem::replace(&mut w.plain, true);
        w.braced = false;
        let redirect = std::mem::take(&mut w.redirect);
        let herestring = std::mem::take(&mut w.herestring);
        let range = w.word_start..end.max(w.word_start);
        let dequoted = (!plain).then(|| self.dequote(range.clone(), Mode::Word));
        let known: Option<std::borrow::Cow<'_, str>> = match &dequoted {
            None => Some(std::borrow::Cow::Borrowed(lead.as_str())),
            Some(d) if d.known => Some(String::from_utf8_lossy(&d.text)),
            Some(_) => None,
        };
        let word = if plain { Some(lead.as_str()) } else { None };
        if herestring {
            let role = match w.reader.input() {
                Input::Script(by, dialect) => Role::Script { by, dialect, skip: Skip::At(0) },
                Input::Lost(reason) => Role::Lost(reason),
                Input::Data => Role::Plain,
            };
            self.apply(role, &range, dequoted.as_ref(), &lead, w);
            return;
        }
        if redirect {
            return;
        }
        let raw = String::from_utf8_lossy(&self.text[range.clone()]);
        if !w.start {
            let view = WordView { text: known.as_deref(), lead: &lead, raw: &raw };
            let role = w.reader.word(view, self.dialect);
            self.apply(role, &range, dequoted.as_ref(), &lead, w);
        }
        if let Some(test) = &mut w.test {
            if std::mem::take(&mut test.name_next) {
                let by = if test.double { "[[ -v ]]" } else { "test -v" };
                self.apply(Role::Name { by: by.to_owned(), skip: 0 }, &range, dequoted.as_ref(), &lead, w);
            }
            let Some(test) = &mut w.test else {
                return;
            };
            if test.double && word == Some("]]") {
                if let Some(test) = w.test.take() {
                    self.finish_test(test);
                }
                w.start = false;
            } else if word.is_some_and(|op| ARITH_OPS.contains(&op)) {
                test.arith = true;
            } else if matches!(word, Some("-v" | "-R")) {
                test.name_next = true;
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
            Some(keyword) if KEEP_START.contains(&keyword) => {}
            _ if readers::is_assignment(&lead) => {
                // `NAME=VALUE` before a command: `PS4=…`, an integer's.
                let role = Role::Assignment { by: String::new(), value: ValueKind::Data };
                self.apply(role, &range, dequoted.as_ref(), &lead, w);
            }
            _ => {
                w.start = false;
                w.reader = match &known {
                    Some(name) => Reader::of(name),
                    None => Reader::unknown(&raw),
                };
            }
        }
    }

    /// Gives the holes of a word what its role implies.
    fn apply(&mut self, role: Role, range: &Range<usize>, dequoted: Option<&Dequoted>, lead: &str, w: &mut Words) {
        if role == Role::Plain {
            return;
        }
        let holes: Vec<(usize, usize, bool)> = dequoted
            .map(|d| d.holes.iter().map(|(hole, at, exact)| (*hole, at.start, *exact)).collect())
            .unwrap_or_default();
        let text: &[u8] = dequoted.map_or(lead.as_bytes(), |d| &d.text);
        match role {
            Role::Plain => {}
            Role::Script { by, dialect, skip } => {
                let from = match skip {
                    Skip::At(at) => at,
                    Skip::AfterEquals => match text.iter().position(|b| *b == b'=') {
                        Some(eq) => eq + 1,
                        // `alias name`: prints it.
                        None => return,
                    },
                };
                for (hole, at, _) in &holes {
                    if *at < from {
                        self.refuse(*hole, Unsafe::Unparsed);
                    } else if self.reparsed[*hole].is_none() {
                        self.reparsed[*hole] = Some(by.clone());
                    }
                }
                let part = UnitPart::Word { range: range.clone(), skip: Skip::At(from) };
                match w.unit {
                    Some(unit) if self.units[unit].by == by => self.units[unit].parts.push(part),
                    _ => {
                        self.units.push(Unit { by, dialect, parts: vec![part] });
                        w.unit = Some(self.units.len() - 1);
                    }
                }
            }
            Role::Name { by, skip } => {
                for (hole, at, _) in holes {
                    if at >= skip {
                        self.refuse(hole, Unsafe::Name(by.clone()));
                    }
                }
            }
            Role::Assignment { by, value } => {
                let eq = text.iter().position(|b| *b == b'=');
                let name = match eq {
                    Some(eq) => readers::assigned_name(&String::from_utf8_lossy(&text[..=eq])).map(str::to_owned),
                    None => {
                        let whole = String::from_utf8_lossy(text).into_owned();
                        readers::is_name(&whole).then_some(whole)
                    }
                };
                if value == ValueKind::Arith
                    && let Some(name) = &name
                {
                    self.integers.insert(name.clone());
                }
                for (hole, at, _) in holes {
                    let in_value = eq.is_some_and(|eq| at > eq);
                    let why = if !in_value {
                        Unsafe::Name(by.clone())
                    } else if let Some(prompt) = name.as_deref().filter(|n| readers::PROMPTS.contains(n)) {
                        Unsafe::Prompt(prompt.to_owned())
                    } else if value == ValueKind::Arith || name.as_ref().is_some_and(|n| self.integers.contains(n)) {
                        Unsafe::Arithmetic
                    } else if value == ValueKind::Name {
                        Unsafe::Name(format!("{by} -n"))
                    } else {
                        continue;
                    };
                    self.refuse(hole, why);
                }
            }
            Role::Arith => {
                for (hole, _, _) in holes {
                    self.refuse(hole, Unsafe::Arithmetic);
                }
            }
            Role::SshOption { skip } => {
                for (hole, at, _) in holes {
                    let before = String::from_utf8_lossy(&text[skip.min(at)..at]).into_owned();
                    let before = before.trim_start();
                    let why = match before.find(['=', ' ', '\t']) {
                        None => Some(Unsafe::SshOption),
                        Some(end) if before[..end].contains(['\0', '\x01']) => Some(Unsafe::SshOption),
                        Some(end) if readers::ssh_runs(&before[..end]) => {
                            Some(Unsafe::SshCommand(before[..end].to_owned()))
                        }
                        Some(_) => None,
                    };
                    if let Some(why) = why {
                        self.refuse(hole, why);
                    }
                }
            }
            Role::Lost(reason) => {
                for (hole, _, _) in holes {
                    self.refuse(hole, Unsafe::Lost(reason.clone()));
                }
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
                b'$' if matches!(self.at(pos + 1), Some(b'\'' | b'"')) => {
                    // bash reads `$'EOF'` and `$"EOF"` as `EOF`, dash as `$EOF`.
                    quoted = true;
                    if self.dialect != Dialect::Bash {
                        self.diverge(Uncertain::DelimiterQuoting);
                    }
                    let close = self.text[pos + 1];
                    pos += 2;
                    while pos < self.end {
                        if let Some(hole) = self.hole(pos) {
                            pos = self.record(hole, refuse.clone(), outer);
                            has_hole = true;
                            continue;
                        }
                        let byte = self.text[pos];
                        pos += 1;
                        if byte == close {
                            break;
                        }
                        if byte == b'\\' || (close == b'"' && matches!(byte, b'$' | b'`')) {
                            // An escape or expansion bash reads its own way.
                            self.diverge(Uncertain::DelimiterQuoting);
                        }
                        delimiter.push(byte);
                    }
                }
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
        // An empty delimiter (`<<''`) ends the body at the first empty line.
        if !has_hole && (quoted || !delimiter.is_empty()) {
            w.pending.push(Pending {
                delimiter: String::from_utf8_lossy(&delimiter).into_owned(),
                strip_tabs,
                expands: !quoted,
                in_substitution: self.substitution > 0,
                inherited: self.reparsing.clone(),
                input: None,
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
                in_substitution: here.in_substitution,
            };
            let mut line = pos;
            while line < self.end {
                // One logical line: in an unquoted body a line ending in `\` goes on.
                let mut text = Vec::new();
                // The text before the line's first value.
                let mut prefix: Option<usize> = None;
                let mut has_hole = false;
                let mut continued = false;
                let mut eol = line;
                loop {
                    let mut trailing = 0usize;
                    while eol < self.end {
                        if let Some(hole) = self.hole(eol) {
                            has_hole = true;
                            prefix.get_or_insert(text.len());
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
                        continued = true;
                        continue;
                    }
                    break;
                }
                let before = String::from_utf8_lossy(&text[..prefix.unwrap_or(text.len())]).into_owned();
                if !has_hole && heredoc.ends_at(&before) {
                    body_end = line;
                    next = (eol + 1).min(self.end);
                    break;
                }
                // A `)` before the line's first value is enough (a value's own
                // lines are checked when the value is known).
                if heredoc.cuts_at(&before) {
                    if self.dialect == Dialect::Bash && !continued {
                        // bash ends the document here and reads on after the delimiter.
                        body_end = line;
                        let tabs =
                            if here.strip_tabs { before.len() - before.trim_start_matches('\t').len() } else { 0 };
                        next = line + tabs + here.delimiter.len();
                        // It reads the rest of the line again, and changes
                        // bytes of it (`\x01`, `\x7f` come out doubled).
                        self.tainted = Some((eol, Unsafe::Uncertain(Uncertain::RestOfCut)));
                        break;
                    }
                    self.diverge(Uncertain::DelimiterCut);
                }
                line = eol + 1;
            }
            let index = self.heredocs.len();
            self.heredocs.push(Heredoc { body: start..body_end, ..heredoc });
            let saved = self.end;
            self.end = body_end;
            let input = here.input.unwrap_or(Input::Data);
            let (reparsing, body_outer) = match (&here.inherited, input) {
                (Some(by), _) => (Some(by.clone()), outer.clone()),
                (None, Input::Script(by, dialect)) => {
                    let part = UnitPart::Body { range: start..body_end, expands: here.expands };
                    self.units.push(Unit { by: by.clone(), dialect, parts: vec![part] });
                    (Some(by), outer.clone())
                }
                (None, Input::Lost(reason)) => (None, Some(outer.clone().unwrap_or(Unsafe::Lost(reason)))),
                (None, Input::Data) => (None, outer.clone()),
            };
            let reparsing = std::mem::replace(&mut self.reparsing, reparsing);
            let unclosed = std::mem::take(&mut self.unclosed);
            if here.expands {
                self.heredoc_body(start, index, &body_outer);
            } else {
                let mut at = start;
                while at < self.end {
                    match self.hole(at) {
                        Some(hole) => {
                            at = self.record(hole, Context::Heredoc { expands: false, heredoc: index }, &body_outer)
                        }
                        None => at += 1,
                    }
                }
            }
            if self.unclosed && body_end < saved {
                self.diverge(Uncertain::BodySubstitution);
            }
            self.unclosed = unclosed;
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
        self.unclosed = true;
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
        self.unclosed = true;
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
        self.unclosed = true;
        pos
    }

    /// After an opening backtick: read flat to the closing one; every value inside is refused.
    fn backticks(&mut self, pos: usize, outer: &Option<Unsafe>) -> usize {
        let end = self.backticks_text(pos, outer);
        self.expansions.insert(pos - 1, end);
        end
    }

    fn backticks_text(&mut self, mut pos: usize, outer: &Option<Unsafe>) -> usize {
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
        self.unclosed = true;
        pos
    }

    /// A `$` at `pos`: an expansion, or a plain `$`.
    fn dollar(&mut self, pos: usize, place: Place, outer: &Option<Unsafe>) -> usize {
        let end = self.dollar_text(pos, place, outer);
        let quote = matches!(self.at(pos + 1), Some(b'\'' | b'"')) && place == Place::Word;
        if end > pos + 1 && !quote {
            self.expansions.insert(pos, end);
        }
        end
    }

    fn dollar_text(&mut self, pos: usize, place: Place, outer: &Option<Unsafe>) -> usize {
        let next = pos + 1;
        if let Some(hole) = self.hole(next) {
            return self.record(hole, Context::Unsafe(Unsafe::AfterDollar), outer);
        }
        match self.at(next) {
            Some(b'(') if self.at(next + 1) == Some(b'(') => self.arith(next + 2, Closer::Parens, outer),
            Some(b'(') => self.substitution(next + 1, outer),
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
        self.unclosed = true;
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
        self.unclosed = true;
        pos
    }

    /// The text of `range` after the shell's quote removal (`mode`).
    fn dequote(&self, range: Range<usize>, mode: Mode) -> Dequoted {
        let mut out = Dequoted { text: Vec::with_capacity(range.len()), holes: Vec::new(), known: true };
        let end = range.end.min(self.text.len());
        let mut pos = range.start;
        // `None` unquoted; `'`, `"`, `a` (`$'…'`) inside those quotes; `h` in an expanding body.
        let mut quote = match mode {
            Mode::Word => None,
            Mode::Body { expands: true } => Some(b'h'),
            Mode::Body { expands: false } => {
                while pos < end {
                    if let Some(hole) = self.hole_before(pos, end) {
                        pos = self.dequoted_hole(hole, &mut out);
                    } else {
                        out.text.push(self.text[pos]);
                        pos += 1;
                    }
                }
                return out;
            }
        };
        let byte_at = |at: usize| (at < end && self.hole_before(at, end).is_none()).then(|| self.text[at]);
        while pos < end {
            if let Some(hole) = self.hole_before(pos, end) {
                pos = self.dequoted_hole(hole, &mut out);
                continue;
            }
            let byte = self.text[pos];
            match (quote, byte) {
                (Some(b'\''), b'\'') | (Some(b'"'), b'"') | (Some(b'a'), b'\'') => {
                    quote = None;
                    pos += 1;
                }
                (Some(b'\''), _) => {
                    out.text.push(byte);
                    pos += 1;
                }
                (Some(b'a'), b'\\') => pos = self.ansi_escape(pos, end, &mut out),
                (None, b'\\') => {
                    match byte_at(pos + 1) {
                        Some(b'\n') => {}
                        Some(next) => out.text.push(next),
                        None => {}
                    }
                    pos += 2;
                }
                (Some(b'"' | b'h'), b'\\') => match byte_at(pos + 1) {
                    Some(b'\n') => pos += 2,
                    Some(next @ (b'$' | b'`' | b'\\')) => {
                        out.text.push(next);
                        pos += 2;
                    }
                    Some(b'"') if quote == Some(b'"') => {
                        out.text.push(b'"');
                        pos += 2;
                    }
                    _ => {
                        out.text.push(b'\\');
                        pos += 1;
                    }
                },
                (None, b'\'') => {
                    quote = Some(b'\'');
                    pos += 1;
                }
                (None, b'"') => {
                    quote = Some(b'"');
                    pos += 1;
                }
                (None | Some(b'"' | b'h'), b'$') => match byte_at(pos + 1) {
                    Some(b'\'') if quote.is_none() && self.dialect.ansi_c() => {
                        quote = Some(b'a');
                        pos += 2;
                    }
                    Some(b'"') if quote.is_none() => {
                        quote = Some(b'"');
                        pos += 2;
                    }
                    _ => match self.expansions.get(&pos) {
                        Some(after) => pos = self.dequoted_expansion(pos, *after, end, &mut out),
                        None => {
                            out.text.push(b'$');
                            pos += 1;
                        }
                    },
                },
                (None | Some(b'"' | b'h'), b'`' | b'<' | b'>') if self.expansions.contains_key(&pos) => {
                    let after = self.expansions[&pos];
                    pos = self.dequoted_expansion(pos, after, end, &mut out);
                }
                _ => {
                    out.text.push(byte);
                    pos += 1;
                }
            }
        }
        out
    }

    /// The hole at `pos`, when it starts before `end`.
    fn hole_before(&self, pos: usize, end: usize) -> Option<usize> {
        if pos >= end {
            return None;
        }
        self.holes.binary_search_by_key(&pos, |h| h.start).ok()
    }

    fn dequoted_hole(&self, hole: usize, out: &mut Dequoted) -> usize {
        let range = self.holes[hole].clone();
        let start = out.text.len();
        out.text.extend(std::iter::repeat_n(1u8, range.len().max(1)));
        out.holes.push((hole, start..out.text.len(), true));
        out.known = false;
        range.end
    }

    /// An expansion from `pos` to `after`: one `\0` in the text, and the
    /// holes inside it as not the value itself.
    fn dequoted_expansion(&self, pos: usize, after: usize, end: usize, out: &mut Dequoted) -> usize {
        let after = after.clamp(pos + 1, end.max(pos + 1));
        let at = out.text.len();
        out.text.push(0);
        for hole in self.holes_in(&(pos..after)) {
            out.holes.push((hole, at..at + 1, false));
        }
        out.known = false;
        after
    }

    /// A `\` escape inside `$'…'`, as bash decodes it.
    fn ansi_escape(&self, pos: usize, end: usize, out: &mut Dequoted) -> usize {
        let at = |i: usize| (i < end && self.hole_before(i, end).is_none()).then(|| self.text[i]);
        let Some(letter) = at(pos + 1) else {
            out.text.push(b'\\');
            return pos + 1;
        };
        let simple = match letter {
            b'a' => Some(7),
            b'b' => Some(8),
            b'e' | b'E' => Some(27),
            b'f' => Some(12),
            b'n' => Some(b'\n'),
            b'r' => Some(b'\r'),
            b't' => Some(b'\t'),
            b'v' => Some(11),
            b'\\' | b'\'' | b'"' | b'?' => Some(letter),
            _ => None,
        };
        if let Some(byte) = simple {
            out.text.push(byte);
            return pos + 2;
        }
        let digits = |from: usize, max: usize, radix: u32| -> (u32, usize) {
            let mut value = 0u32;
            let mut count = 0;
            while count < max
                && let Some(digit) = at(from + count).and_then(|b| char::from(b).to_digit(radix))
            {
                value = value * radix + digit;
                count += 1;
            }
            (value, count)
        };
        match letter {
            b'0'..=b'7' => {
                let (value, count) = digits(pos + 1, 3, 8);
                out.text.push((value & 0xff) as u8);
                pos + 1 + count
            }
            b'x' => {
                let (value, count) = digits(pos + 2, 2, 16);
                if count == 0 {
                    out.text.extend_from_slice(b"\\x");
                } else {
                    out.text.push((value & 0xff) as u8);
                }
                pos + 2 + count
            }
            b'c' => {
                if let Some(control) = at(pos + 2) {
                    out.text.push(control & 0x1f);
                }
                pos + 3
            }
            _ => {
                // `\u…` and the rest: what it gives, upshift does not work out.
                out.text.push(0);
                out.known = false;
                pos + 2
            }
        }
    }

    /// Where each value another shell reads again lands in that shell's text.
    fn reread(&mut self, depth: usize) -> Vec<Option<Reread>> {
        let mut out: Vec<Option<Reread>> = vec![None; self.holes.len()];
        for unit in std::mem::take(&mut self.units) {
            let mut text: Vec<u8> = Vec::new();
            let mut mapped: Vec<(usize, Range<usize>)> = Vec::new();
            let mut unmapped: Vec<usize> = Vec::new();
            for (k, part) in unit.parts.iter().enumerate() {
                let (range, mode, skip) = match part {
                    UnitPart::Word { range, skip } => (range.clone(), Mode::Word, *skip),
                    UnitPart::Body { range, expands } => (range.clone(), Mode::Body { expands: *expands }, Skip::At(0)),
                };
                let dequoted = self.dequote(range, mode);
                let from = match skip {
                    Skip::At(at) => at.min(dequoted.text.len()),
                    Skip::AfterEquals => dequoted.text.iter().position(|b| *b == b'=').map_or(0, |eq| eq + 1),
                };
                if k > 0 {
                    text.push(b' ');
                }
                let offset = text.len();
                text.extend_from_slice(&dequoted.text[from..]);
                for (hole, at, exact) in dequoted.holes {
                    if at.start < from {
                        continue;
                    }
                    if exact {
                        mapped.push((hole, at.start - from + offset..at.end - from + offset));
                    } else {
                        unmapped.push(hole);
                    }
                }
            }
            if mapped.is_empty() && unmapped.is_empty() {
                continue;
            }
            let ranges: Vec<Range<usize>> = mapped.iter().map(|(_, range)| range.clone()).collect();
            let inner = (depth < MAX_REREAD).then(|| lex_nested(&text, &ranges, unit.dialect, depth + 1));
            for (j, (hole, _)) in mapped.iter().enumerate() {
                let (context, again) = match &inner {
                    Some(inner) => (inner.contexts[j].clone(), inner.rereads[j].as_ref().map(|r| r.by.clone())),
                    None => (Context::Unsafe(Unsafe::Unparsed), None),
                };
                out[*hole].get_or_insert(Reread { by: unit.by.clone(), inner: context, again });
            }
            for hole in unmapped {
                let inner = Context::Unsafe(Unsafe::ReparsedOutput(unit.by.clone()));
                out[hole].get_or_insert(Reread { by: unit.by.clone(), inner, again: None });
            }
        }
        for (hole, by) in self.reparsed.iter().enumerate() {
            if let Some(by) = by
                && out[hole].is_none()
            {
                out[hole] = Some(Reread { by: by.clone(), inner: Context::Unsafe(Unsafe::Unparsed), again: None });
            }
        }
        out
    }
}

/// The here-documents of a command that has ended learn what reads their body.
fn resolve(w: &mut Words) {
    for pending in &mut w.pending {
        if pending.input.is_none() {
            pending.input = Some(w.reader.input());
        }
    }
}

/// `;;`, `;&`, `;;&`: the next `case` item starts with patterns.
fn next_item(w: &mut Words) {
    if let Some(case @ Case::Body) = w.case.last_mut() {
        *case = Case::Pattern { first: true };
    }
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
        lex(script, &holes, Dialect::Bash).rereads.into_iter().map(|r| r.map(|r| r.by)).collect()
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
        let heredoc =
            Heredoc { body: 0..0, delimiter: "E".into(), strip_tabs: false, expands: true, in_substitution: false };
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
        let scripts = |argv: &[&str]| scripts_in_argv(argv).scripts;
        assert_eq!(scripts(&["sh", "-c", "x", "sh", "y"]), vec![(2, Dialect::Posix)]);
        assert_eq!(scripts(&["/bin/bash", "-euo", "pipefail", "-c", "x"]), vec![(4, Dialect::Bash)]);
        assert_eq!(scripts(&["bash", "-ec", "x"]), vec![(2, Dialect::Bash)]);
        assert_eq!(scripts(&["env", "LC_ALL=C", "zsh", "-c", "x"]), vec![(4, Dialect::Zsh)]);
        assert_eq!(scripts(&["sudo", "-u", "www", "sh", "-c", "x"]), vec![(5, Dialect::Posix)]);
        assert_eq!(scripts(&["bash", "--norc", "-c", "--", "x"]), vec![(4, Dialect::Bash)]);
        assert_eq!(scripts(&["ssh", "-p", "22", "host", "ls", "x"]), vec![(4, Dialect::Posix), (5, Dialect::Posix)]);
        assert_eq!(scripts(&["su", "-", "www", "-c", "x"]), vec![(4, Dialect::Posix)]);
        assert!(scripts(&["sh", "script.sh", "-c"]).is_empty());
        assert!(scripts(&["python3", "-c", "x"]).is_empty());
        // A program upshift cannot know: a script next to `-c` is one for a POSIX shell.
        assert_eq!(scripts(&["{{ shell }}", "-c", "x"]), vec![(2, Dialect::Posix)]);
        let ssh = scripts_in_argv(&["ssh", "-o", "ProxyCommand=nc {{ h }} 22", "-oUser={{ u }}", "-o", "{{ o }}", "h"]);
        assert_eq!(ssh.ssh_commands, vec![(2, Some("ProxyCommand".to_owned())), (5, None)]);
        assert_eq!(Dialect::of("/usr/bin/fish"), Dialect::Other);
        assert_eq!(Dialect::of("mksh"), Dialect::Ksh);
    }

    fn bash(script: &str) -> Vec<Context> {
        contexts_in(script, Dialect::Bash)
    }

    fn uncertain(why: Uncertain) -> Context {
        Context::Unsafe(Unsafe::Uncertain(why))
    }

    #[test]
    fn heredocs_opened_in_nested_lists() {
        use Context::Heredoc as H;
        // A subshell's here-document reads its body after the next newline, in dash and bash.
        assert_eq!(contexts("(cat <<EOF) | wc -l\n@\nEOF\necho @"), vec![H { expands: true, heredoc: 0 }, Word]);
        assert_eq!(contexts("( (cat <<'E') )\n@\nE\n@"), vec![H { expands: false, heredoc: 0 }, Word]);
        // In `$(…)` or `<(…)` that closes on the same line: dash gives it an
        // empty body, bash reads on; nothing after is certain.
        let refused = uncertain(Uncertain::HeredocInSubstitution);
        assert_eq!(contexts("x=$(cat <<EOF)\n@\nEOF\n@"), vec![refused.clone(), refused.clone()]);
        assert_eq!(bash("echo \"$(cat <<EOF)\"\n@\nEOF"), vec![refused.clone()]);
        assert_eq!(bash("diff <(cat <<EOF) /dev/null\n@\nEOF"), vec![refused]);
        // Closed inside: fine.
        assert_eq!(bash("x=$(cat <<E\n@\nE\n) @"), vec![H { expands: true, heredoc: 0 }, Word]);
    }

    #[test]
    fn heredoc_delimiters_as_the_shells_read_them() {
        use Context::Heredoc as H;
        // bash reads `$'EOF'` and `$"EOF"` as `EOF`; dash as `$EOF`.
        assert_eq!(bash("cat <<$'EOF'\n@\nEOF\necho @"), vec![H { expands: false, heredoc: 0 }, Word]);
        assert_eq!(bash("cat <<$\"EOF\"\nx\nEOF\necho @"), vec![Word]);
        assert_eq!(contexts("cat <<$'EOF'\nx\nEOF\necho @"), vec![uncertain(Uncertain::DelimiterQuoting)]);
        assert_eq!(bash("cat <<$'E\\x4f'\nx\nEO\necho @"), vec![uncertain(Uncertain::DelimiterQuoting)]);
        // An empty delimiter ends the body at the first empty line.
        let script = "cat <<''\n@\n\necho @";
        let lexed = lex(script, &script.match_indices('@').map(|(i, _)| i..i + 1).collect::<Vec<_>>(), Dialect::Posix);
        assert_eq!(lexed.contexts, vec![H { expands: false, heredoc: 0 }, Word]);
        assert!(lexed.heredocs[0].ends_at(""));
    }

    #[test]
    fn bash_ends_a_heredoc_inside_a_substitution_at_its_delimiter_and_a_paren() {
        // `EOF)`, `EOF )`, `EOF x)`: bash ends the document and reads the rest.
        assert_eq!(bash("echo \"$(cat <<EOF\nx\nEOF)\"\necho @"), vec![Word]);
        assert_eq!(bash("x=\"$( cat <<-EOF\n\tx\n\tEOF )\"\necho @"), vec![Word]);
        assert_eq!(bash("x=$(cat <<EOF\nEOF x)\necho @"), vec![Word]);
        // The rest of that line bash reads again (and doubles `\x01` bytes in it).
        assert_eq!(bash("x=\"$(cat <<EOF\nx\nEOF)\"; echo @\n@"), vec![uncertain(Uncertain::RestOfCut), Word]);
        // Not without a `)`, nor outside a substitution.
        assert_eq!(bash("x=$(cat <<EOF\nEOF;\n@\nEOF\n)"), vec![Context::Heredoc { expands: true, heredoc: 0 }]);
        assert_eq!(bash("(cat <<EOF\nEOF)\n@\nEOF\n)"), vec![Context::Heredoc { expands: true, heredoc: 0 }]);
        // dash reads on: for `sh`, what follows is uncertain.
        assert_eq!(contexts("echo \"$(cat <<EOF\nx\nEOF)\"\necho @"), vec![uncertain(Uncertain::DelimiterCut)]);
        let heredoc =
            Heredoc { body: 0..0, delimiter: "EOF".into(), strip_tabs: true, expands: true, in_substitution: true };
        assert!(heredoc.cuts_at("\tEOF x)") && !heredoc.cuts_at("EOF x") && !heredoc.cuts_at("xEOF)"));
    }

    #[test]
    fn a_substitution_that_runs_past_the_delimiter_line_is_uncertain() {
        // dash reads `$(…)` in the body first (its own `EOF` line is inside);
        // bash ends the body at the first `EOF` line.
        let script = "cat <<EOF\n$( echo \"$(cat <<EOF\nx\nEOF\n)\" )\nEOF\n[ \"@\" = x ]";
        assert_eq!(contexts(script), vec![uncertain(Uncertain::BodySubstitution)]);
        assert_eq!(contexts("cat <<EOF\n$(echo a\necho @)\nEOF\n"), vec![Word]);
    }

    #[test]
    fn wrappers_lead_to_the_command_after_their_options() {
        let by = |s: &str| Some(s.to_owned());
        for script in [
            "timeout -s KILL 30 sh -c @",
            "timeout --signal=KILL 30 sh -c @",
            "timeout --sig KILL -k 5 30 sh -c @",
            "sudo -iu root sh -c @",
            "sudo -Eu root -- sh -c @",
            "sudo --user=root VAR=1 sh -c @",
            "env -C . -u X A=1 sh -c @",
            "env --chdir=. - sh -c @",
            "nice -n 5 ionice -c 3 nohup setsid -f stdbuf -oL sh -c @",
            "nice -10 chroot --userspec=a:b /srv sh -c @",
            "exec -a name sh -c @",
            "command -p sh -c @",
        ] {
            assert_eq!(reparsed(script), vec![by("sh -c")], "{script}");
        }
        // An option upshift does not know: it cannot tell what runs.
        let lost = |script: &str| contexts_in(script, Dialect::Posix);
        assert_eq!(lost("timeout -x 5 sh -c @"), vec![Context::Unsafe(Unsafe::Lost("`timeout -x`".into()))]);
        assert_eq!(lost("env -S 'sh -c' @"), vec![Context::Unsafe(Unsafe::Lost("`env -S`".into()))]);
        assert_eq!(
            lost("sudo --frobnicate sh <<EOF\n@\nEOF"),
            vec![Context::Unsafe(Unsafe::Lost("`sudo --frobnicate`".into()))]
        );
        // Values as option arguments and commands are data.
        assert_eq!(reparsed("sudo -u @ ls @; timeout @ sh -c 'x' @"), vec![None, None, None, None]);
        assert_eq!(contexts("sudo -u @ ls; env @=1 ls"), vec![Word, Word]);
        // `command -v`, `sudo -l`: nothing runs.
        assert_eq!(reparsed("command -v sh -c @"), vec![None]);
    }

    #[test]
    fn shells_started_other_ways_are_found() {
        let by = |s: &str| Some(s.to_owned());
        assert_eq!(reparsed("trap \"rm @\" EXIT; trap - @"), vec![by("trap"), None]);
        assert_eq!(reparsed("alias ll=\"ls @\"; alias @"), vec![by("alias"), None]);
        assert_eq!(reparsed(". /dev/stdin <<EOF\n@\nEOF\nsource ./x.sh <<EOF\n@\nEOF"), vec![by(". /dev/stdin"), None]);
        assert_eq!(reparsed("source <(echo @)"), vec![by("source <(…)")]);
        assert_eq!(reparsed("sudo -s <<EOF\n@\nEOF\nsudo -u x -i <<< @"), vec![by("sudo -s"), by("sudo -i")]);
        assert_eq!(
            reparsed("su --command=\"ls @\" root; su -c'ls @'; su -l root <<EOF\n@\nEOF"),
            vec![by("su -c"), by("su -c"), by("su")]
        );
        // A command whose name upshift cannot know: a script after `-c` is one for a shell.
        assert_eq!(
            reparsed("$SHELL -c \"ls @\"; \"$php\" -r @; @ -ec @"),
            vec![by("$SHELL -c"), None, None, by("@ -c")]
        );
        assert_eq!(reparsed("$GIT commit -c @"), vec![None]);
        // Not a shell's input: a script file's.
        assert_eq!(reparsed("bash script.sh <<EOF\n@\nEOF\nbash -s x <<EOF\n@\nEOF"), vec![None, by("bash")]);
    }

    #[test]
    fn ssh_options_that_run_commands_are_refused() {
        let ssh = |option: &str| contexts(&format!("ssh {option} host true"));
        let command = |name: &str| Context::Unsafe(Unsafe::SshCommand(name.into()));
        assert_eq!(ssh("-o ProxyCommand=\"nc @ 22\""), vec![command("ProxyCommand")]);
        assert_eq!(ssh("-o \"proxycommand nc @ 22\""), vec![command("proxycommand")]);
        assert_eq!(ssh("-oLocalCommand=@ -o PermitLocalCommand=yes"), vec![command("LocalCommand")]);
        assert_eq!(ssh("-vo RemoteCommand=@"), vec![command("RemoteCommand")]);
        assert_eq!(ssh("-o @"), vec![Context::Unsafe(Unsafe::SshOption)]);
        assert_eq!(ssh("-o \"$OPT=@\""), vec![Context::Unsafe(Unsafe::SshOption)]);
        assert_eq!(ssh("-o User=@ -o \"IdentityFile @\" -p @ -l@"), vec![Word, DoubleQuoted, Word, Word]);
    }

    #[test]
    fn builtins_that_take_variable_names() {
        let name = |by: &str| Context::Unsafe(Unsafe::Name(by.into()));
        assert_eq!(bash("declare @; declare x=@; local -r @=1"), vec![name("declare"), Word, name("local")]);
        assert_eq!(bash("declare -n r=@; typeset -n @"), vec![name("declare -n"), name("typeset")]);
        assert_eq!(
            bash("printf -v \"a[@]\" x; printf -v@ x; printf '%s' @"),
            vec![name("printf -v"), name("printf -v"), Word]
        );
        assert_eq!(bash("read -r \"a[@]\"; read -a @; read -p @ line"), vec![name("read"), name("read -a"), Word]);
        assert_eq!(
            bash("mapfile -t @; unset @; getopts ab @ @"),
            vec![name("mapfile"), name("unset"), name("getopts"), Word]
        );
        assert_eq!(
            bash("test -v \"a[@]\"; [ -v @ ]; [[ -v @ ]]"),
            vec![name("test -v"), name("test -v"), name("[[ -v ]]")]
        );
        // Integers: their assignments are arithmetic, also later ones.
        let arith = Context::Unsafe(Unsafe::Arithmetic);
        assert_eq!(bash("declare -i n; n=@; m=@; export n=@"), vec![arith.clone(), Word, arith.clone()]);
        assert_eq!(bash("let \"n = @\"; declare -i m=\"@\""), vec![arith.clone(), arith]);
        // Prompts are expanded again when the shell uses them.
        let prompt = |name: &str| Context::Unsafe(Unsafe::Prompt(name.into()));
        assert_eq!(
            bash("PS4=\"+ @\" cmd; export PROMPT_COMMAND=@; BASH_ENV=@ bash x"),
            vec![prompt("PS4"), prompt("PROMPT_COMMAND"), prompt("BASH_ENV")]
        );
        assert_eq!(contexts("env PS4=@ bash -xc true"), vec![prompt("PS4")]);
    }

    #[test]
    fn brace_expansion_never_splits_a_value() {
        assert_eq!(bash("mkdir -p d/{log,@} {@} @,{x}"), vec![Context::Braced, Context::Braced, Word]);
        let braced = |value: &str| quote(value, &Context::Braced, None, None).unwrap();
        assert_eq!(braced("a,b"), "'a,b'");
        assert_eq!(braced("1..3"), "'1..3'");
        assert_eq!(braced("3"), "3");
        assert_eq!(quote_word("a,b"), "'a,b'");
        assert_eq!(quote_word("2"), "'2'");
        assert_eq!(quote_word("/srv/x"), "/srv/x");
    }

    /// How a value quoted for another shell (`| quote`) settles.
    fn settled(script: &str, dialect: Dialect) -> Vec<Result<Context, Unsafe>> {
        let holes: Vec<Range<usize>> = script.match_indices('@').map(|(i, _)| i..i + 1).collect();
        let lexed = lex(script, &holes, dialect);
        (0..holes.len()).map(|i| lexed.settle(i, true)).collect()
    }

    #[test]
    fn a_value_quoted_once_more_must_land_as_a_word_of_the_second_shell() {
        assert_eq!(
            settled("ssh host \"printf '%s' @ > @/x\"", Dialect::Posix),
            vec![Ok(DoubleQuoted), Ok(DoubleQuoted)]
        );
        assert_eq!(
            settled("eval printf \"'%s'\" @; sh <<E\nls @\nE", Dialect::Posix),
            vec![Ok(Word), Ok(Context::Heredoc { expands: true, heredoc: 0 })]
        );
        let twice = |by: &str, again: &str| Err(Unsafe::ReparsedTwice { by: by.into(), again: again.into() });
        assert_eq!(settled("ssh host \"sh -c 'echo @'\"", Dialect::Posix), vec![twice("ssh", "sh -c")]);
        assert_eq!(settled("ssh h sudo sh -c \"'echo @'\"", Dialect::Posix), vec![twice("ssh", "sh -c")]);
        assert_eq!(settled("eval \"eval 'echo @'\"", Dialect::Bash), vec![twice("eval", "eval")]);
        let inside = |place: &str| Err(Unsafe::ReparsedIn { by: "ssh".into(), place: place.into() });
        assert_eq!(settled("ssh host \"echo '@'\"", Dialect::Posix), vec![inside("inside `'…'`")]);
        assert_eq!(settled("ssh host 'echo \"@\"'", Dialect::Posix), vec![inside("inside `\"…\"`")]);
        assert_eq!(settled("ssh host 'echo `@`'", Dialect::Posix), vec![inside("inside backticks")]);
        // Through a command's output: what it prints, upshift cannot follow.
        assert_eq!(settled("eval \"$(echo @)\"", Dialect::Posix), vec![Err(Unsafe::ReparsedOutput("eval".into()))]);
    }
}
