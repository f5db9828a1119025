//! A lexical scan of PostgreSQL SQL: where one statement of a multi-statement string ends
//! and the next begins, and what its first keywords are.
//!
//! It knows exactly what decides where a `;` counts: single-quoted strings (with `''`, and
//! backslash escapes in `E'…'`), double-quoted identifiers, dollar-quoted strings
//! (`$tag$…$tag$`, but not the parameter `$1`), `--` and nested `/* */` comments,
//! parentheses, and the `BEGIN ATOMIC … END` bodies of SQL-standard functions. It works on
//! bytes, so any ASCII-compatible client encoding scans the same. It assumes
//! `standard_conforming_strings = on`, PostgreSQL's default since 9.1.

use std::ops::Range;

/// The byte ranges of the statements in `sql`, each without its `;` and without surrounding
/// whitespace; empty statements (`;;`, or comments only) are left out.
pub fn split_statements(sql: &[u8]) -> Vec<Range<usize>> {
    match plain_statement(sql) {
        Some(range) if range.is_empty() => Vec::new(),
        Some(range) => vec![range],
        None => split_scanned(sql),
    }
}

/// The statement of `sql` when there is nothing in it for the scanner to decide: no quote,
/// comment, parenthesis or dollar sign, and no `;` but one at the very end. That is the
/// shape of most statements sent with their literals inlined (pgbench's `-S` query, say),
/// which differ from one execution to the next and so are scanned every time; this finds
/// the same range as the scan in one pass over the bytes.
pub fn plain_statement(sql: &[u8]) -> Option<Range<usize>> {
    let text = sql.trim_ascii_end();
    let text = text.strip_suffix(b";").unwrap_or(text);
    let plain = text
        .iter()
        .all(|b| !matches!(b, b';' | b'\'' | b'"' | b'$' | b'-' | b'/' | b'(' | b')'));
    if !plain {
        return None;
    }
    let start = text.len() - text.trim_ascii_start().len();
    Some(start..text.trim_ascii_end().len().max(start))
}

/// [`split_statements`] by a full lexical scan.
fn split_scanned(sql: &[u8]) -> Vec<Range<usize>> {
    let mut statements = Vec::new();
    let mut scanner = Scanner::new(sql);
    let mut start = 0;
    let mut depth = 0usize;
    // BEGIN ATOMIC … END nesting inside CREATE FUNCTION / PROCEDURE, where `;` ends the
    // body's statements rather than the CREATE.
    let mut atomic_depth = 0usize;
    let mut in_create = None;
    let mut previous_was_begin = false;
    while let Some(token) = scanner.next_token() {
        match token {
            Token::Punct(b'(') => depth += 1,
            Token::Punct(b')') => depth = depth.saturating_sub(1),
            Token::Punct(b';') if depth == 0 && atomic_depth == 0 => {
                push_trimmed(&mut statements, sql, start..scanner.pos - 1);
                start = scanner.pos;
                in_create = None;
            }
            Token::Word(range) => {
                let word = &sql[range];
                let in_create = *in_create.get_or_insert(word.eq_ignore_ascii_case(b"CREATE"));
                if in_create {
                    let opens = (word.eq_ignore_ascii_case(b"ATOMIC") && previous_was_begin)
                        || (atomic_depth > 0 && word.eq_ignore_ascii_case(b"CASE"));
                    if opens {
                        atomic_depth += 1;
                    } else if atomic_depth > 0 && word.eq_ignore_ascii_case(b"END") {
                        atomic_depth -= 1;
                    }
                }
                previous_was_begin = word.eq_ignore_ascii_case(b"BEGIN");
                continue;
            }
            _ => {}
        }
        previous_was_begin = false;
    }
    push_trimmed(&mut statements, sql, start..sql.len());
    statements
}

fn push_trimmed(statements: &mut Vec<Range<usize>>, sql: &[u8], range: Range<usize>) {
    // Trim by tokens, not bytes, so that a statement made only of comments is dropped.
    let mut scanner = Scanner::new(&sql[range.clone()]);
    let mut first = None;
    let mut last = 0;
    while scanner.next_token().is_some() {
        first.get_or_insert(scanner.token_start);
        last = scanner.pos;
    }
    if let Some(first) = first {
        statements.push(range.start + first..range.start + last);
    }
}

/// The first three keywords or identifiers of a statement (empty where there are fewer);
/// comments are skipped and anything else (a parenthesis, a string) ends the list.
pub fn leading_words(sql: &[u8]) -> [&[u8]; 3] {
    let mut words: [&[u8]; 3] = [b""; 3];
    let mut scanner = Scanner::new(sql);
    for word in &mut words {
        match scanner.next_token() {
            Some(Token::Word(range)) => *word = &sql[range],
            _ => break,
        }
    }
    words
}

/// Whether any of `words` (upper-case) appears in `sql` as a keyword or unquoted
/// identifier, outside strings, quoted identifiers and comments.
pub fn contains_word(sql: &[u8], words: &[&str]) -> bool {
    let mut scanner = Scanner::new(sql);
    while let Some(token) = scanner.next_token() {
        if let Token::Word(range) = token {
            let word = &sql[range];
            if words
                .iter()
                .any(|w| w.as_bytes().eq_ignore_ascii_case(word))
            {
                return true;
            }
        }
    }
    false
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Token {
    /// A keyword or unquoted identifier.
    Word(Range<usize>),
    /// A string, quoted identifier, number, parameter or operator.
    Other,
    /// `(`, `)` or `;`.
    Punct(u8),
}

struct Scanner<'a> {
    sql: &'a [u8],
    pos: usize,
    token_start: usize,
}

fn is_ident_start(b: u8) -> bool {
    b.is_ascii_alphabetic() || b == b'_' || b >= 0x80
}

fn is_ident_char(b: u8) -> bool {
    is_ident_start(b) || b.is_ascii_digit() || b == b'$'
}

impl<'a> Scanner<'a> {
    fn new(sql: &'a [u8]) -> Self {
        Scanner {
            sql,
            pos: 0,
            token_start: 0,
        }
    }

    fn peek(&self, offset: usize) -> Option<u8> {
        self.sql.get(self.pos + offset).copied()
    }

    fn next_token(&mut self) -> Option<Token> {
        loop {
            let b = self.peek(0)?;
            self.token_start = self.pos;
            match b {
                b if b.is_ascii_whitespace() => self.pos += 1,
                b'-' if self.peek(1) == Some(b'-') => self.skip_line_comment(),
                b'/' if self.peek(1) == Some(b'*') => self.skip_block_comment(),
                b'(' | b')' | b';' => {
                    self.pos += 1;
                    return Some(Token::Punct(b));
                }
                b'\'' => {
                    self.skip_string(false);
                    return Some(Token::Other);
                }
                b'"' => {
                    self.skip_quoted(b'"');
                    return Some(Token::Other);
                }
                b'$' => {
                    if !self.skip_dollar_string() {
                        // `$1` and the like, or a lone `$`.
                        self.pos += 1;
                        while self.peek(0).is_some_and(|c| c.is_ascii_digit()) {
                            self.pos += 1;
                        }
                    }
                    return Some(Token::Other);
                }
                b'e' | b'E' if self.peek(1) == Some(b'\'') => {
                    self.pos += 1;
                    self.skip_string(true);
                    return Some(Token::Other);
                }
                // B'…', X'…', N'…' and U&'…' are ordinary strings after their prefix.
                b'b' | b'B' | b'x' | b'X' | b'n' | b'N' if self.peek(1) == Some(b'\'') => {
                    self.pos += 1;
                    self.skip_string(false);
                    return Some(Token::Other);
                }
                b'u' | b'U' if self.peek(1) == Some(b'&') && self.peek(2) == Some(b'\'') => {
                    self.pos += 2;
                    self.skip_string(false);
                    return Some(Token::Other);
                }
                b'u' | b'U' if self.peek(1) == Some(b'&') && self.peek(2) == Some(b'"') => {
                    self.pos += 2;
                    self.skip_quoted(b'"');
                    return Some(Token::Other);
                }
                b if is_ident_start(b) => {
                    let start = self.pos;
                    while self.peek(0).is_some_and(is_ident_char) {
                        self.pos += 1;
                    }
                    return Some(Token::Word(start..self.pos));
                }
                _ => {
                    self.pos += 1;
                    return Some(Token::Other);
                }
            }
        }
    }

    fn skip_line_comment(&mut self) {
        while let Some(b) = self.peek(0) {
            self.pos += 1;
            if b == b'\n' {
                break;
            }
        }
    }

    fn skip_block_comment(&mut self) {
        // PostgreSQL block comments nest.
        let mut depth = 0usize;
        while let Some(b) = self.peek(0) {
            if b == b'/' && self.peek(1) == Some(b'*') {
                depth += 1;
                self.pos += 2;
            } else if b == b'*' && self.peek(1) == Some(b'/') {
                self.pos += 2;
                depth -= 1;
                if depth == 0 {
                    return;
                }
            } else {
                self.pos += 1;
            }
        }
    }

    /// From an opening `'`: to just past the closing one. `''` is a quote inside the
    /// string; with `backslash_escapes`, so is `\'`.
    fn skip_string(&mut self, backslash_escapes: bool) {
        self.pos += 1;
        while let Some(b) = self.peek(0) {
            self.pos += 1;
            match b {
                b'\\' if backslash_escapes => self.pos += 1,
                b'\'' if self.peek(0) == Some(b'\'') => self.pos += 1,
                b'\'' => return,
                _ => {}
            }
        }
        self.pos = self.pos.min(self.sql.len());
    }

    /// From an opening `quote` to just past the closing one, doubling as an escape.
    fn skip_quoted(&mut self, quote: u8) {
        self.pos += 1;
        while let Some(b) = self.peek(0) {
            self.pos += 1;
            if b == quote {
                if self.peek(0) == Some(quote) {
                    self.pos += 1;
                } else {
                    return;
                }
            }
        }
    }

    /// At a `$`: skips a dollar-quoted string and returns true, or returns false if this
    /// `$` does not open one.
    fn skip_dollar_string(&mut self) -> bool {
        // A `$` inside an identifier (`a$b`) never gets here: identifiers consume it.
        let mut end = self.pos + 1;
        if let Some(&first) = self.sql.get(end)
            && is_ident_start(first)
        {
            while self
                .sql
                .get(end)
                .is_some_and(|&c| is_ident_char(c) && c != b'$')
            {
                end += 1;
            }
        }
        if self.sql.get(end) != Some(&b'$') {
            return false;
        }
        let tag = &self.sql[self.pos..=end];
        let body_start = end + 1;
        match find(&self.sql[body_start..], tag) {
            Some(offset) => self.pos = body_start + offset + tag.len(),
            None => self.pos = self.sql.len(),
        }
        true
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pieces(sql: &str) -> Vec<&str> {
        split_statements(sql.as_bytes())
            .into_iter()
            .map(|r| &sql[r])
            .collect()
    }

    #[test]
    fn splits_at_top_level_semicolons_only() {
        assert_eq!(
            pieces("BEGIN; UPDATE t SET x = 1 ;COMMIT"),
            vec!["BEGIN", "UPDATE t SET x = 1", "COMMIT"]
        );
        assert_eq!(
            pieces("SELECT ';', \"a;b\" FROM t"),
            vec!["SELECT ';', \"a;b\" FROM t"]
        );
        assert_eq!(
            pieces("SELECT 'it''s; fine'; SELECT 2"),
            vec!["SELECT 'it''s; fine'", "SELECT 2"]
        );
        assert_eq!(
            pieces(r"SELECT E'a\';b'; SELECT 2"),
            vec![r"SELECT E'a\';b'", "SELECT 2"]
        );
        assert_eq!(
            pieces("DO $$ BEGIN PERFORM 1; END $$; SELECT 2"),
            vec!["DO $$ BEGIN PERFORM 1; END $$", "SELECT 2"]
        );
        assert_eq!(
            pieces("SELECT $fn$ ; $x$ ; $fn$; SELECT $1"),
            vec!["SELECT $fn$ ; $x$ ; $fn$", "SELECT $1"]
        );
        assert_eq!(
            pieces("SELECT 1 -- a; comment\n; /* x; /* nested; */ y; */ SELECT 2"),
            vec!["SELECT 1", "SELECT 2"]
        );
    }

    #[test]
    fn plain_statements_are_found_as_the_scan_finds_them() {
        // Random strings over the bytes that matter to the scan, fast path against full
        // scan; the fast path must take a good share of them to be tested at all.
        const BYTES: &[u8] =
            b"SELECT abalance FROM t WHERE aid = 42 \t\n\r\x0c\xc3\xa9;;*+<>E'\"--//**()$1";
        let mut seed = 0x2545_f491_4f6c_dd1d_u64;
        let mut accepted = 0;
        for _ in 0..20_000 {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            let len = (seed % 24) as usize;
            let sql: Vec<u8> = (0..len)
                .map(|i| BYTES[((seed >> (i % 8 * 8)) as usize + i * 7) % BYTES.len()])
                .collect();
            if plain_statement(&sql).is_some() {
                accepted += 1;
            }
            assert_eq!(
                split_statements(&sql),
                split_scanned(&sql),
                "{:?}",
                String::from_utf8_lossy(&sql)
            );
        }
        assert!(
            accepted > 1_000,
            "the fast path took only {accepted} strings"
        );
        for sql in [
            "",
            " ",
            ";",
            " ; ",
            "\n;\n",
            "SELECT 1",
            "  SELECT 1 ;  \n",
            "SELECT 1;",
            "SELECT abalance FROM pgbench_accounts WHERE aid = 12345;",
            "é;",
            "SELECT 1;;",
        ] {
            assert_eq!(
                split_statements(sql.as_bytes()),
                split_scanned(sql.as_bytes()),
                "{sql:?}"
            );
        }
        assert_eq!(
            plain_statement(b" SELECT 1 ; "),
            Some(1..9),
            "the fast path takes a trailing semicolon"
        );
        assert_eq!(plain_statement(b"SELECT 1; SELECT 2"), None);
        assert_eq!(plain_statement(b"SELECT '1';"), None);
    }

    #[test]
    fn drops_empty_statements() {
        assert_eq!(
            pieces(";; SELECT 1;;  ; -- only a comment\n"),
            vec!["SELECT 1"]
        );
        assert!(pieces("").is_empty());
        assert!(pieces("  /* nothing */ ").is_empty());
    }

    #[test]
    fn keeps_sql_standard_function_bodies_whole() {
        let sql = "CREATE FUNCTION f() RETURNS int LANGUAGE sql BEGIN ATOMIC SELECT 1; SELECT CASE WHEN true THEN 2 END; END; COMMIT";
        assert_eq!(
            pieces(sql),
            vec![
                "CREATE FUNCTION f() RETURNS int LANGUAGE sql BEGIN ATOMIC SELECT 1; SELECT CASE WHEN true THEN 2 END; END",
                "COMMIT"
            ]
        );
    }

    #[test]
    fn identifiers_with_dollars_are_not_dollar_quotes() {
        assert_eq!(
            pieces("SELECT a$b$ FROM t; SELECT 2"),
            vec!["SELECT a$b$ FROM t", "SELECT 2"]
        );
    }

    #[test]
    fn unterminated_quotes_swallow_the_rest() {
        assert_eq!(
            pieces("SELECT 'open; SELECT 2"),
            vec!["SELECT 'open; SELECT 2"]
        );
    }

    #[test]
    fn reads_leading_words_past_comments() {
        assert_eq!(
            leading_words(b"/* hi */ commit -- x\n work"),
            [&b"commit"[..], b"work", b""]
        );
        assert_eq!(
            leading_words(b"rollback to savepoint a"),
            [&b"rollback"[..], b"to", b"savepoint"]
        );
        assert!(contains_word(
            b"WITH x AS (DELETE FROM t RETURNING *) SELECT 1",
            &["DELETE"]
        ));
        assert!(!contains_word(
            b"SELECT 'delete' AS \"update\"",
            &["DELETE", "UPDATE"]
        ));
    }
}
