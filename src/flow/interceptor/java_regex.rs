//! Java regular expressions (`java.util.regex.Pattern`, what Flume's interceptors compile)
//! on Rust engines: the one helper every interceptor that takes a regex uses.
//!
//! A pattern is first rewritten where the same text means something else to the `regex`
//! crate than to Java: `\d \w \s` (and `\D \W \S`, in and out of classes) are ASCII in Java
//! and become POSIX ASCII classes; `\h \v \H \V` are Java's horizontal and vertical
//! whitespace (to `regex`, `\v` is the vertical tab); `\Q...\E` quotes a literal. It then
//! runs on the `regex` crate (linear time) unless it uses what only a backtracking engine
//! has — lookahead, lookbehind, backreferences, atomic groups, possessive quantifiers —
//! in which case it runs on `fancy-regex`. Constructs neither engine runs as Java does
//! are a configuration error naming the construct, never a silent mismatch.

use crate::config::keys::Keys;
use crate::config::ConfigError;

#[derive(Debug, Clone)]
pub enum JavaRegex {
    Linear(regex::Regex),
    Backtracking(fancy_regex::Regex),
}

/// The spans of a match's groups (0 is the whole match); `None` for a group that did not
/// take part.
pub type Groups = Vec<Option<(usize, usize)>>;

impl JavaRegex {
    /// Compiles Java pattern `pattern` read from `key`; errors are located at that key.
    pub fn compile(keys: &Keys, key: &str, pattern: &str) -> Result<JavaRegex, ConfigError> {
        Self::new(pattern).map_err(|e| keys.invalid(key, e))
    }

    /// As `compile` for a pattern that must match a whole string (Java's `matches()`).
    pub fn compile_whole(keys: &Keys, key: &str, pattern: &str) -> Result<JavaRegex, ConfigError> {
        Self::new(pattern)
            .and_then(|_| Self::new(&format!("\\A(?:{pattern})\\z")))
            .map_err(|e| keys.invalid(key, e))
    }

    /// Compiles a Java pattern; the error names what cannot run.
    pub fn new(pattern: &str) -> Result<JavaRegex, String> {
        let t = translate(pattern)?;
        if t.backtracking {
            fancy_regex::Regex::new(&t.pattern)
                .map(JavaRegex::Backtracking)
                .map_err(|e| format!("regular expression '{pattern}' cannot be compiled: {e}"))
        } else {
            regex::Regex::new(&t.pattern)
                .map(JavaRegex::Linear)
                .map_err(|e| format!("regular expression '{pattern}' cannot be compiled: {e}"))
        }
    }

    /// Number of capturing groups, not counting the whole match (Java's `groupCount()`).
    pub fn group_count(&self) -> usize {
        match self {
            JavaRegex::Linear(r) => r.captures_len() - 1,
            JavaRegex::Backtracking(r) => r.captures_len() - 1,
        }
    }

    /// The number of the group called `name`.
    pub fn group_index(&self, name: &str) -> Option<usize> {
        match self {
            JavaRegex::Linear(r) => r.capture_names().position(|n| n == Some(name)),
            JavaRegex::Backtracking(r) => r.capture_names().position(|n| n == Some(name)),
        }
    }

    /// Whether the pattern matches somewhere in `text` (Java's `find()`). A backtracking
    /// pattern that exceeds its backtrack limit counts as no match.
    pub fn is_match(&self, text: &str) -> bool {
        match self {
            JavaRegex::Linear(r) => r.is_match(text),
            JavaRegex::Backtracking(r) => r.is_match(text).unwrap_or_else(|e| {
                tracing::debug!("regex {} gave up: {e}", r.as_str());
                false
            }),
        }
    }

    /// The groups of the first match in `text`.
    pub fn first(&self, text: &str) -> Option<Groups> {
        match self {
            JavaRegex::Linear(r) => r.captures(text).map(|c| {
                (0..c.len())
                    .map(|i| c.get(i).map(|m| (m.start(), m.end())))
                    .collect()
            }),
            JavaRegex::Backtracking(r) => r.captures(text).ok().flatten().map(|c| {
                (0..c.len())
                    .map(|i| c.get(i).map(|m| (m.start(), m.end())))
                    .collect()
            }),
        }
    }

    /// Calls `f` with each match's group spans, left to right, as Java's `find()` loop
    /// finds them: a search starts where the last match ended (one character further after
    /// an empty match), so an empty match right after a non-empty one counts, as in Java
    /// (the Rust engines' own iterators skip it).
    fn each_match(&self, text: &str, mut f: impl FnMut(&dyn Fn(usize) -> Option<(usize, usize)>)) {
        let mut pos = 0;
        while pos <= text.len() {
            let (s, e) = match self {
                JavaRegex::Linear(r) => {
                    let Some(c) = r.captures_at(text, pos) else {
                        break;
                    };
                    f(&|i| c.get(i).map(|m| (m.start(), m.end())));
                    let m = c.get(0).unwrap();
                    (m.start(), m.end())
                }
                JavaRegex::Backtracking(r) => {
                    let Ok(Some(c)) = r.captures_from_pos(text, pos) else {
                        break;
                    };
                    f(&|i| c.get(i).map(|m| (m.start(), m.end())));
                    let m = c.get(0).unwrap();
                    (m.start(), m.end())
                }
            };
            pos = if s == e {
                match text[e..].chars().next() {
                    Some(ch) => e + ch.len_utf8(),
                    None => break,
                }
            } else {
                e
            };
        }
    }

    /// Java's `matcher.replaceAll(replacement)`; `None` when nothing matched.
    pub fn replace_all(&self, text: &str, rep: &Replacement) -> Option<String> {
        let mut out = String::new();
        let mut last = 0;
        let mut any = false;
        self.each_match(text, |spans| {
            let (s, e) = spans(0).unwrap_or((last, last));
            out.push_str(&text[last..s]);
            for part in &rep.0 {
                match part {
                    Part::Literal(l) => out.push_str(l),
                    Part::Group(g) => {
                        if let Some((a, b)) = spans(*g) {
                            out.push_str(&text[a..b]);
                        }
                    }
                }
            }
            last = e;
            any = true;
        });
        if !any {
            return None;
        }
        out.push_str(&text[last..]);
        Some(out)
    }

    /// Java's `String.split(regex)`: no leading empty piece from a zero-width match at
    /// the start, trailing empty pieces removed.
    pub fn split<'t>(&self, text: &'t str) -> Vec<&'t str> {
        let mut out = Vec::new();
        let mut last = 0;
        self.each_match(text, |spans| {
            let Some((s, e)) = spans(0) else { return };
            if s == 0 && e == 0 {
                return;
            }
            out.push(&text[last..s]);
            last = e;
        });
        out.push(&text[last..]);
        while out.len() > 1 && out.last() == Some(&"") {
            out.pop();
        }
        if out == [""] && !text.is_empty() {
            out.clear();
        }
        out
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Part {
    Literal(String),
    Group(usize),
}

/// A parsed Java replacement string (`$n`, `${name}`, `\` escapes), checked against the
/// pattern's groups when the configuration loads (Java fails on each event instead).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Replacement(Vec<Part>);

impl Replacement {
    pub fn parse(rep: &str, re: &JavaRegex) -> Result<Replacement, String> {
        let mut parts = Vec::new();
        let mut lit = String::new();
        let mut chars = rep.chars().peekable();
        while let Some(c) = chars.next() {
            match c {
                '\\' => match chars.next() {
                    Some(n) => lit.push(n),
                    None => return Err("character to be escaped is missing (trailing \\)".into()),
                },
                '$' => {
                    let group = if chars.peek() == Some(&'{') {
                        chars.next();
                        let mut name = String::new();
                        loop {
                            match chars.next() {
                                Some('}') => break,
                                Some(ch) if ch.is_ascii_alphanumeric() => name.push(ch),
                                _ => {
                                    return Err(format!(
                                        "named capturing group reference '${{{name}' is not closed by '}}'"
                                    ))
                                }
                            }
                        }
                        re.group_index(&name)
                            .ok_or_else(|| format!("no group with name {{{name}}}"))?
                    } else {
                        // Java: the first digit always, more digits while the number
                        // stays a group of the pattern.
                        let Some(d) = chars.peek().and_then(|c| c.to_digit(10)) else {
                            return Err("illegal group reference: '$' must be followed by a group number or {name} (write \\$ for a dollar sign)".into());
                        };
                        chars.next();
                        let mut g = d as usize;
                        while let Some(d) = chars.peek().and_then(|c| c.to_digit(10)) {
                            let next = g * 10 + d as usize;
                            if next > re.group_count() {
                                break;
                            }
                            g = next;
                            chars.next();
                        }
                        if g > re.group_count() {
                            return Err(format!(
                                "no group {g}: the pattern has {} group(s)",
                                re.group_count()
                            ));
                        }
                        g
                    };
                    if !lit.is_empty() {
                        parts.push(Part::Literal(std::mem::take(&mut lit)));
                    }
                    parts.push(Part::Group(group));
                }
                c => lit.push(c),
            }
        }
        if !lit.is_empty() {
            parts.push(Part::Literal(lit));
        }
        Ok(Replacement(parts))
    }
}

struct Translated {
    pattern: String,
    backtracking: bool,
}

const SPACE: &str = "\\t\\n\\x0B\\x0C\\r ";
const HSPACE: &str = "\\t \\xA0\\x{1680}\\x{180E}\\x{2000}-\\x{200A}\\x{202F}\\x{205F}\\x{3000}";
const VSPACE: &str = "\\n\\x0B\\x0C\\r\\x{85}\\x{2028}\\x{2029}";

/// Rewrites a Java pattern for the Rust engines (see the module's comment).
fn translate(p: &str) -> Result<Translated, String> {
    let unsupported = |what: &str| {
        Err(format!(
            "regular expression '{p}' uses {what}, which flume-fast's regex engines cannot run as Java does"
        ))
    };
    let chars: Vec<char> = p.chars().collect();
    let mut out = String::with_capacity(p.len() + 8);
    let mut backtracking = false;
    let mut class = 0usize; // depth of [...] nesting
                            // Java's '.' stops at every line terminator, the regex crate's only at '\n'. Under an
                            // inline (?s) it matches everything in both; a pattern that sets s anywhere keeps its
                            // dots as written.
    let dotall = p.contains("(?") && has_inline_s(p);
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        match c {
            '\\' => {
                let Some(&n) = chars.get(i + 1) else {
                    return Err(format!("regular expression '{p}' ends with a lone '\\'"));
                };
                i += 2;
                let (inner, outer): (Option<String>, Option<String>) = match n {
                    'd' => (Some("[:digit:]".into()), Some("[[:digit:]]".into())),
                    'D' => (Some("[:^digit:]".into()), Some("[[:^digit:]]".into())),
                    'w' => (Some("[:word:]".into()), Some("[[:word:]]".into())),
                    'W' => (Some("[:^word:]".into()), Some("[[:^word:]]".into())),
                    's' => (Some(SPACE.into()), Some(format!("[{SPACE}]"))),
                    'S' => (None, Some(format!("[^{SPACE}]"))),
                    'h' => (Some(HSPACE.into()), Some(format!("[{HSPACE}]"))),
                    'H' => (None, Some(format!("[^{HSPACE}]"))),
                    'v' => (Some(VSPACE.into()), Some(format!("[{VSPACE}]"))),
                    'V' => (None, Some(format!("[^{VSPACE}]"))),
                    'Q' => {
                        let rest: String = chars[i..].iter().collect();
                        let (lit, used) = match rest.find("\\E") {
                            Some(end) => (&rest[..end], end + 2),
                            None => (&rest[..], rest.len()),
                        };
                        i += rest[..used].chars().count();
                        let escaped = regex::escape(lit);
                        (Some(escaped.clone()), Some(format!("(?:{escaped})")))
                    }
                    '1'..='9' | 'k' if class == 0 => {
                        backtracking = true;
                        (None, Some(format!("\\{n}")))
                    }
                    'G' => return unsupported("\\G (end of the previous match)"),
                    'Z' => {
                        return unsupported("\\Z (end of input but for a final line terminator)")
                    }
                    'R' => return unsupported("\\R (any line break)"),
                    'X' => return unsupported("\\X (extended grapheme cluster)"),
                    'c' => return unsupported("\\c (control character escape)"),
                    'p' | 'P' if chars.get(i).is_some_and(|c| *c == '{') => {
                        let end = chars[i..].iter().position(|c| *c == '}').map(|e| i + e);
                        let name: String = match end {
                            Some(e) => chars[i + 1..e].iter().collect(),
                            None => String::new(),
                        };
                        if name.starts_with("java") || name.starts_with("In") {
                            return unsupported(&format!("\\{n}{{{name}}}"));
                        }
                        match posix(&name) {
                            // Java's POSIX names are ASCII classes; to the regex crate
                            // some are Unicode properties.
                            Some(cls) => {
                                i = end.unwrap_or(i) + 1;
                                let neg = if n == 'P' { "^" } else { "" };
                                (
                                    Some(format!("[:{neg}{cls}:]")),
                                    Some(format!("[[:{neg}{cls}:]]")),
                                )
                            }
                            None => (None, None),
                        }
                    }
                    _ => (None, None),
                };
                let repl = if class > 0 { inner } else { outer };
                match repl {
                    Some(r) => out.push_str(&r),
                    None if class > 0 && matches!(n, 'S' | 'H' | 'V') => {
                        return unsupported(&format!("\\{n} inside a character class"))
                    }
                    None => {
                        out.push('\\');
                        out.push(n);
                    }
                }
                continue;
            }
            '[' => {
                class += 1;
                out.push('[');
                i += 1;
                // A ']' or '^]' right after '[' is a literal in both dialects.
                if chars.get(i) == Some(&'^') {
                    out.push('^');
                    i += 1;
                }
                if chars.get(i) == Some(&']') {
                    out.push_str("\\]");
                    i += 1;
                }
                continue;
            }
            ']' if class > 0 => class -= 1,
            '&' if class > 0 && chars.get(i + 1) == Some(&'&') => {
                // Java's intersection [a-z&&[^aeiou]] is the regex crate's too.
            }
            '(' if class == 0 && chars.get(i + 1) == Some(&'?') => {
                let rest: String = chars[i + 2..].iter().take(3).collect();
                if rest.starts_with('=')
                    || rest.starts_with('!')
                    || rest.starts_with("<=")
                    || rest.starts_with("<!")
                    || rest.starts_with('>')
                {
                    backtracking = true;
                } else if !rest.starts_with(':') && !rest.starts_with('<') {
                    // Inline flags (?flags) or (?flags:...): Java's d, u, U, c mean other
                    // things (or nothing) to the Rust engines.
                    let flags: String = chars[i + 2..]
                        .iter()
                        .take_while(|c| **c != ')' && **c != ':')
                        .collect();
                    if let Some(f) = flags.chars().find(|f| !"imsx-".contains(*f)) {
                        return unsupported(&format!("the inline flag '{f}' in (?{flags})"));
                    }
                }
            }
            '.' if class == 0 && !dotall => {
                out.push_str("[^\\n\\r\\x{85}\\x{2028}\\x{2029}]");
                i += 1;
                continue;
            }
            '+' if class == 0 && i > 0 && is_quantifier_end(&chars, i - 1) => {
                // A possessive quantifier (a*+, a++, a?+, a{2}+).
                backtracking = true;
            }
            _ => {}
        }
        out.push(c);
        i += 1;
    }
    Ok(Translated {
        pattern: out,
        backtracking,
    })
}

/// Whether an inline flag group (`(?s)`, `(?is:...)`) turns on DOTALL.
fn has_inline_s(p: &str) -> bool {
    p.match_indices("(?").any(|(i, _)| {
        p[i + 2..]
            .chars()
            .take_while(|c| c.is_ascii_alphabetic())
            .any(|c| c == 's')
    })
}

/// The ASCII class of a Java POSIX property name (`\p{Lower}`).
fn posix(name: &str) -> Option<&'static str> {
    Some(match name {
        "Lower" => "lower",
        "Upper" => "upper",
        "ASCII" => "ascii",
        "Alpha" => "alpha",
        "Digit" => "digit",
        "Alnum" => "alnum",
        "Punct" => "punct",
        "Graph" => "graph",
        "Print" => "print",
        "Blank" => "blank",
        "Cntrl" => "cntrl",
        "XDigit" => "xdigit",
        "Space" => "space",
        _ => return None,
    })
}

/// Whether `chars[i]` ends a quantifier (so a following `+` is possessive).
fn is_quantifier_end(chars: &[char], i: usize) -> bool {
    let escaped = i > 0 && chars[i - 1] == '\\' && !(i > 1 && chars[i - 2] == '\\');
    if escaped {
        return false;
    }
    match chars[i] {
        '*' | '?' => true,
        '+' => !(i > 0 && is_quantifier_end(chars, i - 1)),
        // {n}, {n,}, {n,m}; not the '}' of \p{...}
        '}' => chars[..i].iter().rposition(|c| *c == '{').is_some_and(|o| {
            o > 0
                && !matches!(chars[o - 1], 'p' | 'P' | 'k' | 'x')
                && chars[o + 1..i]
                    .iter()
                    .all(|c| c.is_ascii_digit() || *c == ',')
        }),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn re(p: &str) -> JavaRegex {
        JavaRegex::new(p).unwrap()
    }

    #[test]
    fn shorthand_classes_are_ascii_as_in_java() {
        assert!(!re("^\\d+$").is_match("١٢"));
        assert!(re("^\\d+$").is_match("12"));
        assert!(!re("^\\w$").is_match("é"));
        assert!(re("^[\\w.]+$").is_match("a.b_1"));
        assert!(re("^\\s$").is_match("\u{b}"));
        assert!(!re("^\\s$").is_match("\u{a0}"));
        assert!(re("^[^\\s]+$").is_match("abc"));
        assert!(re("\\v").is_match("a\nb"));
        assert!(re("^\\Qa.b\\E$").is_match("a.b") && !re("^\\Qa.b\\E$").is_match("axb"));
        // '.' stops at every Java line terminator, unless (?s).
        assert!(!re("^a.$").is_match("a\r") && re("^a.$").is_match("a\t"));
        assert!(re("(?s)^a.$").is_match("a\r"));
    }

    #[test]
    fn backtracking_constructs_run_on_fancy_regex() {
        for p in [
            "a(?=b)",
            "(?<!x)y",
            "(\\w)\\1",
            "(?>ab|a)c",
            "a++b",
            "(?<n>a)\\k<n>",
        ] {
            assert!(matches!(re(p), JavaRegex::Backtracking(_)), "{p}");
        }
        assert!(re("(\\w)\\1").is_match("xaay"));
        assert!(!re("a++a").is_match("aaa"));
        assert!(matches!(re("a+b*?c{2}"), JavaRegex::Linear(_)));
    }

    #[test]
    fn constructs_no_engine_runs_are_named() {
        for (p, what) in [
            ("\\Gx", "\\G"),
            ("x\\Z", "\\Z"),
            ("\\p{javaLowerCase}", "javaLowerCase"),
            ("(?U)a+", "inline flag 'U'"),
            ("(?d).", "inline flag 'd'"),
        ] {
            let e = JavaRegex::new(p).unwrap_err();
            assert!(e.contains(what), "{p}: {e}");
        }
    }

    /// Outputs of Java 17's `Pattern.compile(p).matcher(t).replaceAll(r)` and
    /// `t.split(p)`, recorded with a small Java program.
    #[test]
    fn replace_all_and_split_agree_with_java() {
        for (p, t, r, java) in [
            ("a*", "baaac", "X", "XbXXcX"),
            ("x*", "abc", "-", "-a-b-c-"),
            ("\\b", "hi there", "|", "|hi| |there|"),
            ("(?<=n=)(\\d+)", "n=1 n=22", "#$1", "n=#1 n=#22"),
            ("(a)|(b)", "ab", "[$1$2]", "[a][b]"),
            ("\\w+", "h\u{e9}llo w\u{f6}rld", "W", "W\u{e9}W W\u{f6}W"),
            ("(\\w)(\\w)", "abcd", "$21", "b1d1"),
        ] {
            let re = re(p);
            let rep = Replacement::parse(r, &re).unwrap();
            let got = re.replace_all(t, &rep).unwrap_or_else(|| t.to_string());
            assert_eq!(got, java, "{p} on {t:?}");
        }
        for (p, t, java) in [
            ("\\s*,\\s*", "a , b,,c,,", vec!["a", "b", "", "c"]),
            (",", ",", vec![]),
            ("", "abc", vec!["a", "b", "c"]),
            (",", ",a", vec!["", "a"]),
            ("x", "", vec![""]),
        ] {
            assert_eq!(re(p).split(t), java, "split {p} on {t:?}");
        }
    }

    #[test]
    fn replacement_follows_java() {
        let r = re("(\\w+)@(\\w+)");
        let rep = Replacement::parse("$2 at $1\\$ $10", &r).unwrap();
        assert_eq!(
            r.replace_all("joe@home, ann@work", &rep).unwrap(),
            "home at joe$ joe0, work at ann$ ann0"
        );
        assert!(Replacement::parse("$3", &r).is_err());
        assert!(Replacement::parse("$", &r).is_err());
        let named = re("(?<user>\\w+)@");
        let rep = Replacement::parse("${user}!", &named).unwrap();
        assert_eq!(named.replace_all("x@y", &rep).unwrap(), "x!y");
        assert_eq!(named.replace_all("none", &rep), None);
    }
}
