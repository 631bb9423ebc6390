//! A scanner for the built-in access-log lines: nginx `combined` and Apache
//! `common`/`combined` (`client ident user [time] "request" status size`,
//! optionally followed by `"referer" "agent"`). It finds the fields as they
//! are written; typing them is the caller's job.
//!
//! It accepts exactly the lines, and finds exactly the fields, of the
//! regular expression these lines were first parsed with (its property tests
//! hold it to that regex):
//!
//! ```text
//! ^(?<client>\S+) - (?<user>\S+) \[(?<ts>[^\]]+)\] "(?<request>(?:[^"\\]|\\.)*)"
//!  (?<status>\d{3}) (?<size>\d+|-)(?: "(?<referer>(?:[^"\\]|\\.)*)" "(?<agent>(?:[^"\\]|\\.)*)")?$
//! ```
//!
//! with `(?<client>\S+) (?<ident>\S+) (?<user>\S+)` at the start for Apache,
//! and the regex crate's Unicode classes: `\S` is any character but Unicode
//! white space, `\d` any Unicode decimal digit, `.` anything but a newline,
//! `$` the very end of the text. Every field ends at the first character
//! that cannot belong to it and must then meet the text that follows it, so
//! one left-to-right pass with no backtracking is the only reading of a line.

use memchr::{memchr, memchr2};
use regex::Regex;
use std::sync::LazyLock;

/// The fields of an access line, as they are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AccessLine<'a> {
    pub client: &'a str,
    pub user: &'a str,
    /// Between the brackets.
    pub time: &'a str,
    /// Between the quotes, escapes as written.
    pub request: &'a str,
    /// Three digits.
    pub status: &'a str,
    /// Digits, or `-`.
    pub size: &'a str,
    /// The quoted referer and user agent of the combined form, escapes as
    /// written.
    pub referer_agent: Option<(&'a str, &'a str)>,
}

/// What stands between the client and the user.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Head {
    /// nginx: a dash.
    Nginx,
    /// Apache: any word (`%l`, the identd name), which is not kept.
    Apache,
}

/// The fields of `line`, or `None` when it is not such a line.
pub fn scan(line: &str, head: Head) -> Option<AccessLine<'_>> {
    let mut c = Cursor { line, pos: 0 };
    let client = c.word()?;
    match head {
        Head::Nginx => c.eat(b" - ")?,
        Head::Apache => {
            c.eat(b" ")?;
            c.word()?;
            c.eat(b" ")?;
        }
    }
    let user = c.word()?;
    c.eat(b" [")?;
    let time = c.until_bracket()?;
    c.eat(b"] \"")?;
    let request = c.quoted()?;
    c.eat(b"\" ")?;
    let status = c.digits(3, 3)?;
    c.eat(b" ")?;
    let size = match c.eat(b"-") {
        Some(()) => "-",
        None => c.digits(1, usize::MAX)?,
    };
    let referer_agent = if c.at_end() {
        None
    } else {
        c.eat(b" \"")?;
        let referer = c.quoted()?;
        c.eat(b"\" \"")?;
        let agent = c.quoted()?;
        c.eat(b"\"")?;
        if !c.at_end() {
            return None;
        }
        Some((referer, agent))
    };
    Some(AccessLine {
        client,
        user,
        time,
        request,
        status,
        size,
        referer_agent,
    })
}

struct Cursor<'a> {
    line: &'a str,
    /// Always at a character boundary.
    pos: usize,
}

impl<'a> Cursor<'a> {
    fn rest(&self) -> &'a [u8] {
        &self.line.as_bytes()[self.pos..]
    }

    fn at_end(&self) -> bool {
        self.pos == self.line.len()
    }

    /// Steps over `text` (ASCII), if it comes next.
    #[inline]
    fn eat(&mut self, text: &[u8]) -> Option<()> {
        if !self.rest().starts_with(text) {
            return None;
        }
        self.pos += text.len();
        Some(())
    }

    /// The next character, decoded.
    fn char_at(&self) -> Option<char> {
        self.line.get(self.pos..)?.chars().next()
    }

    /// `\S+`: up to the first white space character, at least one character.
    fn word(&mut self) -> Option<&'a str> {
        let start = self.pos;
        while let Some(&b) = self.rest().first() {
            if b.is_ascii() {
                // Unicode white space in ASCII, vertical tab included.
                if matches!(b, b'\t'..=b'\r' | b' ') {
                    break;
                }
                self.pos += 1;
            } else {
                match self.char_at() {
                    Some(c) if !c.is_whitespace() => self.pos += c.len_utf8(),
                    _ => break,
                }
            }
        }
        (self.pos > start).then(|| &self.line[start..self.pos])
    }

    /// `[^\]]+`: up to the next `]`, at least one character.
    fn until_bracket(&mut self) -> Option<&'a str> {
        let len = memchr(b']', self.rest())?;
        let start = self.pos;
        self.pos += len;
        (len > 0).then(|| &self.line[start..self.pos])
    }

    /// `(?:[^"\\]|\\.)*`: up to the first quote that no backslash escapes
    /// (a backslash escapes any character but a newline). A quote or a
    /// backslash is never part of a multi-byte character, so the bytes
    /// after the lead byte of an escaped one read as plain text.
    fn quoted(&mut self) -> Option<&'a str> {
        let start = self.pos;
        loop {
            let rest = self.rest();
            let at = memchr2(b'"', b'\\', rest)?;
            match rest[at] {
                b'"' => {
                    self.pos += at;
                    return Some(&self.line[start..self.pos]);
                }
                _ => match rest.get(at + 1)? {
                    b'\n' => return None,
                    _ => self.pos += at + 2,
                },
            }
        }
    }

    /// `\d{min,max}` taken greedily: ASCII digits, or any other Unicode
    /// decimal digit (`٣`), as the regex took them.
    fn digits(&mut self, min: usize, max: usize) -> Option<&'a str> {
        let start = self.pos;
        let mut n = 0;
        while n < max {
            match self.rest().first() {
                Some(b'0'..=b'9') => self.pos += 1,
                Some(b) if !b.is_ascii() => match self.char_at() {
                    Some(c) if is_unicode_digit(c) => self.pos += c.len_utf8(),
                    _ => break,
                },
                _ => break,
            }
            n += 1;
        }
        (n >= min).then(|| &self.line[start..self.pos])
    }
}

/// Whether a non-ASCII character is a decimal digit in the regex crate's
/// Unicode tables (the same tables as the regex this scanner replaces). No
/// integer parse takes such a digit, so the line still fails (with "bad
/// status" or "bad size", as before); this only keeps that error text. A
/// log line almost never gets here.
fn is_unicode_digit(c: char) -> bool {
    static DIGIT: LazyLock<Regex> = LazyLock::new(|| {
        Regex::new(r"^\d$").unwrap_or_else(|e| panic!("built-in pattern is invalid: {e}"))
    });
    DIGIT.is_match(c.encode_utf8(&mut [0; 4]))
}

/// The regexes this scanner replaced, kept as the oracle of the property
/// tests (here and in `parse_formats`), and generators of access lines.
#[cfg(test)]
pub(super) mod oracle {
    use proptest::prelude::*;
    use regex::Regex;
    use std::sync::LazyLock;

    fn re(pattern: &str) -> Regex {
        Regex::new(pattern).unwrap_or_else(|e| panic!("oracle pattern is invalid: {e}"))
    }

    pub static NGINX_COMBINED: LazyLock<Regex> = LazyLock::new(|| {
        re(
            r#"^(?<client>\S+) - (?<user>\S+) \[(?<ts>[^\]]+)\] "(?<request>(?:[^"\\]|\\.)*)" (?<status>\d{3}) (?<size>\d+|-)(?: "(?<referer>(?:[^"\\]|\\.)*)" "(?<agent>(?:[^"\\]|\\.)*)")?$"#,
        )
    });
    pub static APACHE_COMMON: LazyLock<Regex> = LazyLock::new(|| {
        re(
            r#"^(?<client>\S+) (?<ident>\S+) (?<user>\S+) \[(?<ts>[^\]]+)\] "(?<request>(?:[^"\\]|\\.)*)" (?<status>\d{3}) (?<size>\d+|-)(?: "(?<referer>(?:[^"\\]|\\.)*)" "(?<agent>(?:[^"\\]|\\.)*)")?$"#,
        )
    });

    /// Characters that matter to the grammar, beside ordinary text: white
    /// space of all kinds (vertical tab, NEL, no-break and ideographic
    /// spaces), quotes, backslashes, brackets, newlines, digits of other
    /// scripts (`٣` is a decimal digit, `²` and `Ⅻ` are not) and multi-byte
    /// letters.
    const TRICKY: &str = "ab-.:/ \t\u{b}\u{c}\r\n\u{85}\u{a0}\u{2028}\u{3000}\"\\[]09٣²Ⅻé€😀";

    fn one_of(chars: &'static str) -> impl Strategy<Value = char> {
        let chars: Vec<char> = chars.chars().collect();
        proptest::sample::select(chars)
    }

    /// A `\S+` word, now and then with a character that ends it early.
    fn word() -> impl Strategy<Value = String> {
        prop_oneof![
            16 => "[a-zA-Z0-9.:_\\-\\[\\]\"\\\\é€]{1,12}",
            3 => Just("-".to_owned()),
            1 => proptest::collection::vec(one_of(TRICKY), 0..6)
                .prop_map(|c| c.into_iter().collect()),
        ]
    }

    fn time() -> impl Strategy<Value = String> {
        prop_oneof![
            16 => (1u32..32, 0usize..12, 1990u32..2100, 0u32..25, 0u32..61, 0u32..61, "[+-](0[0-9]|1[0-4])(00|30|45)")
                .prop_map(|(d, m, y, h, mi, s, z)| {
                    const MONTHS: [&str; 12] = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];
                    format!("{d:02}/{}/{y}:{h:02}:{mi:02}:{s:02} {z}", MONTHS[m])
                }),
            1 => proptest::collection::vec(one_of(TRICKY), 0..8)
                .prop_map(|c| c.into_iter().collect()),
        ]
    }

    /// The text between quotes: plain characters, spaces and escapes
    /// (`\"`, `\\`, a backslash before a line feed, which the regex
    /// refuses), now and then a bare quote.
    fn quoted() -> impl Strategy<Value = String> {
        let piece = prop_oneof![
            8 => "[a-zA-Z0-9/?=&;(). -]{1,6}",
            2 => one_of(TRICKY).prop_filter("no bare quote", |c| *c != '"')
                .prop_map(String::from),
            2 => one_of(TRICKY).prop_map(|c| format!("\\{c}")),
        ];
        let text = proptest::collection::vec(piece, 0..10).prop_map(|p| p.concat());
        prop_oneof![
            2 => Just("-".to_owned()),
            16 => text.clone(),
            1 => (text.clone(), text).prop_map(|(a, b)| format!("{a}\"{b}")),
        ]
    }

    fn status() -> impl Strategy<Value = String> {
        prop_oneof![
            16 => "[1-5][0-9]{2}",
            1 => "[0-9٣²x]{1,4}",
        ]
    }

    fn size() -> impl Strategy<Value = String> {
        prop_oneof![
            12 => "[0-9]{1,6}",
            4 => Just("-".to_owned()),
            1 => "[0-9]{18,21}",
            1 => "[0-9٣²x-]{1,4}",
        ]
    }

    /// Lines of the access-log shape with random fields: the nginx or the
    /// Apache head, with or without referer and agent, now and then with
    /// something after them or a line feed at the end.
    pub fn access_line() -> impl Strategy<Value = String> {
        let head = prop_oneof![
            (word(), word()).prop_map(|(client, user)| format!("{client} - {user}")),
            (word(), word(), word()).prop_map(|(c, i, u)| format!("{c} {i} {u}")),
        ];
        let tail = prop_oneof![
            2 => Just(String::new()),
            4 => (quoted(), quoted()).prop_map(|(r, a)| format!(" \"{r}\" \"{a}\"")),
            1 => (quoted(), quoted(), "( [0-9.]{1,5}| |\n|\r\n)")
                .prop_map(|(r, a, more)| format!(" \"{r}\" \"{a}\"{more}")),
        ];
        (head, time(), quoted(), status(), size(), tail).prop_map(
            |(head, time, request, status, size, tail)| {
                format!("{head} [{time}] \"{request}\" {status} {size}{tail}")
            },
        )
    }

    /// An edit of a line: a character deleted, one inserted, or the line
    /// cut short, at a place given as a fraction of its length.
    #[derive(Debug, Clone)]
    pub enum Edit {
        Delete(f64),
        Insert(f64, char),
        Truncate(f64),
    }

    pub fn edits() -> impl Strategy<Value = Vec<Edit>> {
        let edit = prop_oneof![
            (0.0..1.0).prop_map(Edit::Delete),
            (0.0..1.0, one_of(TRICKY)).prop_map(|(at, c)| Edit::Insert(at, c)),
            (0.0..1.0).prop_map(Edit::Truncate),
        ];
        proptest::collection::vec(edit, 1..4)
    }

    pub fn apply(line: &str, edits: &[Edit]) -> String {
        let mut chars: Vec<char> = line.chars().collect();
        let place = |at: f64, len: usize| ((at * len as f64) as usize).min(len);
        for edit in edits {
            match *edit {
                Edit::Delete(at) if !chars.is_empty() => {
                    let i = place(at, chars.len() - 1);
                    chars.remove(i);
                }
                Edit::Delete(_) => {}
                Edit::Insert(at, c) => {
                    let i = place(at, chars.len());
                    chars.insert(i, c);
                }
                Edit::Truncate(at) => {
                    let i = place(at, chars.len());
                    chars.truncate(i);
                }
            }
        }
        chars.into_iter().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::oracle::{access_line, apply, edits, APACHE_COMMON, NGINX_COMBINED};
    use super::*;
    use proptest::prelude::*;

    /// The fields the regex found, in the scanner's shape.
    fn by_regex<'a>(re: &Regex, line: &'a str) -> Option<AccessLine<'a>> {
        let c = re.captures(line)?;
        let field = |name: &str| c.name(name).map_or("", |m| m.as_str());
        Some(AccessLine {
            client: field("client"),
            user: field("user"),
            time: field("ts"),
            request: field("request"),
            status: field("status"),
            size: field("size"),
            referer_agent: c.name("agent").map(|_| (field("referer"), field("agent"))),
        })
    }

    fn agrees_with_regex(line: &str) -> Result<(), TestCaseError> {
        prop_assert_eq!(scan(line, Head::Nginx), by_regex(&NGINX_COMBINED, line));
        prop_assert_eq!(scan(line, Head::Apache), by_regex(&APACHE_COMMON, line));
        Ok(())
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 3_000, ..ProptestConfig::default() })]

        #[test]
        fn scanner_finds_the_fields_the_regex_found(line in access_line()) {
            agrees_with_regex(&line)?;
        }

        #[test]
        fn scanner_and_regex_agree_on_edited_lines(line in access_line(), edits in edits()) {
            agrees_with_regex(&apply(&line, &edits))?;
        }
    }

    #[test]
    fn generated_lines_are_mostly_lines_of_the_format() {
        // The property tests above prove little if most lines fail both ways.
        use proptest::strategy::ValueTree;
        let mut runner = proptest::test_runner::TestRunner::deterministic();
        let strategy = access_line();
        let (mut nginx, mut apache, mut combined) = (0, 0, 0);
        for _ in 0..1_000 {
            let line = strategy
                .new_tree(&mut runner)
                .map(|t| t.current())
                .unwrap_or_default();
            nginx += usize::from(NGINX_COMBINED.is_match(&line));
            apache += usize::from(APACHE_COMMON.is_match(&line));
            combined += usize::from(
                APACHE_COMMON
                    .captures(&line)
                    .is_some_and(|c| c.name("agent").is_some()),
            );
        }
        assert!(
            nginx > 250 && apache > 450 && combined > 250,
            "{nginx} {apache} {combined}"
        );
    }

    #[test]
    fn white_space_beyond_ascii_ends_a_word() {
        for ws in ["\u{b}", "\u{85}", "\u{a0}", "\u{2028}", "\u{3000}"] {
            let line = format!("10.0.0.1{ws}x - - [t] \"GET /\" 200 5");
            assert_eq!(scan(&line, Head::Nginx), None, "{ws:?}");
            assert!(!NGINX_COMBINED.is_match(&line));
        }
        let line = "10.0.0.1€ - - [t] \"GET /\" 200 5";
        assert_eq!(scan(line, Head::Nginx).map(|l| l.client), Some("10.0.0.1€"));
    }

    #[test]
    fn escapes_keep_quotes_inside_and_a_backslash_before_a_line_feed_fails() {
        let line = r#"h - - [t] "a \"b\" \\" 200 - "\é" "c \\\" d""#;
        let l = scan(line, Head::Nginx).unwrap_or_else(|| panic!("no match"));
        assert_eq!(l.request, r#"a \"b\" \\"#);
        assert_eq!(l.referer_agent, Some((r"\é", r#"c \\\" d"#)));
        assert_eq!(scan("h - - [t] \"a\\\nb\" 200 -", Head::Nginx), None);
        assert_eq!(
            scan("h - - [t] \"a\nb\" 200 -", Head::Nginx).map(|l| l.request),
            Some("a\nb")
        );
    }

    #[test]
    fn decimal_digits_of_other_scripts_count_as_digits() {
        let l = scan("h - - [t] \"r\" 2٣0 ٣", Head::Nginx);
        assert_eq!(l.map(|l| (l.status, l.size)), Some(("2٣0", "٣")));
        assert_eq!(scan("h - - [t] \"r\" 2²0 1", Head::Nginx), None);
        assert_eq!(scan("h - - [t] \"r\" 2000 1", Head::Nginx), None);
    }

    #[test]
    fn a_line_feed_at_the_end_or_trailing_text_is_not_a_line() {
        assert!(scan("h - - [t] \"r\" 200 1", Head::Nginx).is_some());
        assert_eq!(scan("h - - [t] \"r\" 200 1\n", Head::Nginx), None);
        assert_eq!(
            scan("h - - [t] \"r\" 200 1 \"-\" \"a\" 0.1", Head::Nginx),
            None
        );
        assert_eq!(scan("h x - [t] \"r\" 200 1", Head::Nginx), None);
        assert!(scan("h x - [t] \"r\" 200 1", Head::Apache).is_some());
    }
}
