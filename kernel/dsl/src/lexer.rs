//! Splits source text into tokens, one at a time, on demand.
//!
//! The lexer never fails: a character that starts no token becomes [`Tok::Unexpected`] and an
//! unterminated block comment becomes [`Tok::UnterminatedComment`], so the parser reports them in
//! its usual `expected X, found Y` form. Keywords are not tokens of their own: every keyword of the
//! language is also a valid name (Dandelion's parser accepts a set called `left` or `all`), so the
//! parser decides from context which words are keywords.

use alloc::format;
use alloc::string::String;

use crate::ast::Pos;

/// What a token is. Words borrow their text from the source.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Tok<'a> {
    /// An ASCII identifier `[A-Za-z_][A-Za-z0-9_]*`; also every keyword.
    Word(&'a str),
    /// A run of letters, digits and `_` that is not an identifier: it starts with a digit or
    /// holds a non-ASCII letter.
    BadWord(&'a str),
    LParen,
    RParen,
    LBrace,
    RBrace,
    Comma,
    Semi,
    Eq,
    Arrow,
    /// A character that starts no token.
    Unexpected(char),
    /// `/*` without its `*/`; the lexer is at the end of input after it.
    UnterminatedComment,
    Eof,
}

#[derive(Clone, Copy, Debug)]
pub(crate) struct Token<'a> {
    pub kind: Tok<'a>,
    pub pos: Pos,
}

/// Longest word text quoted in a message, in characters, so a megabyte-long word does not make a
/// megabyte-long error.
const MAX_QUOTED_CHARS: usize = 40;

impl Tok<'_> {
    /// How a message names this token after "found".
    pub fn describe(self) -> String {
        match self {
            Tok::Word(w) | Tok::BadWord(w) => quote(w),
            Tok::LParen => "'('".into(),
            Tok::RParen => "')'".into(),
            Tok::LBrace => "'{'".into(),
            Tok::RBrace => "'}'".into(),
            Tok::Comma => "','".into(),
            Tok::Semi => "';'".into(),
            Tok::Eq => "'='".into(),
            Tok::Arrow => "'=>'".into(),
            Tok::Unexpected(c) => format!("'{}'", c.escape_debug()),
            Tok::UnterminatedComment => "an unterminated comment".into(),
            Tok::Eof => "end of input".into(),
        }
    }
}

fn quote(word: &str) -> String {
    match word.char_indices().nth(MAX_QUOTED_CHARS) {
        Some((cut, _)) => format!("'{}…'", &word[..cut]),
        None => format!("'{word}'"),
    }
}

/// Where the lexer is; cheap to copy, which is how the parser peeks one token further.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Lexer<'a> {
    src: &'a str,
    pos: Pos,
}

impl<'a> Lexer<'a> {
    /// Starts at the beginning of `src`, past a byte order mark if there is one (some editors
    /// write it; it is not whitespace to Unicode, so it would otherwise be an unexpected character).
    pub fn new(src: &'a str) -> Self {
        let offset = if src.starts_with('\u{feff}') { '\u{feff}'.len_utf8() } else { 0 };
        Self { src, pos: Pos { offset, ..Pos::START } }
    }

    fn rest(&self) -> &'a str {
        &self.src[self.pos.offset..]
    }

    fn peek_char(&self) -> Option<char> {
        self.rest().chars().next()
    }

    /// Moves past one character, keeping line and column (in characters) right.
    fn advance(&mut self, c: char) {
        self.pos.offset += c.len_utf8();
        if c == '\n' {
            self.pos.line = self.pos.line.saturating_add(1);
            self.pos.col = 1;
        } else {
            self.pos.col = self.pos.col.saturating_add(1);
        }
    }

    /// Moves past characters while `keep` holds.
    fn advance_while(&mut self, keep: impl Fn(char) -> bool) {
        while let Some(c) = self.peek_char() {
            if !keep(c) {
                break;
            }
            self.advance(c);
        }
    }

    /// Skips whitespace (Unicode, as Dandelion's parser does) and comments. A block comment with
    /// no end swallows the rest of the input; its start comes back as the error.
    fn skip_trivia(&mut self) -> Result<(), Pos> {
        loop {
            self.advance_while(char::is_whitespace);
            let rest = self.rest();
            if rest.starts_with("//") {
                self.advance_while(|c| c != '\n');
            } else if let Some(body) = rest.strip_prefix("/*") {
                let start = self.pos;
                let Some(end) = body.find("*/") else {
                    self.advance_while(|_| true);
                    return Err(start);
                };
                // Step over the comment character by character to keep lines counted.
                let stop = start.offset + 2 + end + 2;
                while self.pos.offset < stop {
                    let Some(c) = self.peek_char() else { break };
                    self.advance(c);
                }
            } else {
                return Ok(());
            }
        }
    }

    /// The next token; [`Tok::Eof`] forever once the input is used up.
    pub fn next_token(&mut self) -> Token<'a> {
        if let Err(pos) = self.skip_trivia() {
            return Token { kind: Tok::UnterminatedComment, pos };
        }
        let pos = self.pos;
        let Some(c) = self.peek_char() else {
            return Token { kind: Tok::Eof, pos };
        };
        let kind = if c.is_alphanumeric() || c == '_' {
            let start = self.pos.offset;
            self.advance_while(|c| c.is_alphanumeric() || c == '_');
            let word = &self.src[start..self.pos.offset];
            if word.is_ascii() && !word.starts_with(|c: char| c.is_ascii_digit()) {
                Tok::Word(word)
            } else {
                Tok::BadWord(word)
            }
        } else {
            self.advance(c);
            match c {
                '(' => Tok::LParen,
                ')' => Tok::RParen,
                '{' => Tok::LBrace,
                '}' => Tok::RBrace,
                ',' => Tok::Comma,
                ';' => Tok::Semi,
                '=' if self.peek_char() == Some('>') => {
                    self.advance('>');
                    Tok::Arrow
                }
                '=' => Tok::Eq,
                other => Tok::Unexpected(other),
            }
        };
        Token { kind, pos }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec::Vec;

    fn kinds(src: &str) -> Vec<Tok<'_>> {
        let mut lexer = Lexer::new(src);
        let mut out = Vec::new();
        loop {
            let t = lexer.next_token();
            out.push(t.kind);
            if t.kind == Tok::Eof {
                return out;
            }
        }
    }

    #[test]
    fn punctuation_and_words() {
        assert_eq!(
            kinds("f(a=all b)=>(c = d);{}, = >"),
            [
                Tok::Word("f"),
                Tok::LParen,
                Tok::Word("a"),
                Tok::Eq,
                Tok::Word("all"),
                Tok::Word("b"),
                Tok::RParen,
                Tok::Arrow,
                Tok::LParen,
                Tok::Word("c"),
                Tok::Eq,
                Tok::Word("d"),
                Tok::RParen,
                Tok::Semi,
                Tok::LBrace,
                Tok::RBrace,
                Tok::Comma,
                Tok::Eq,
                Tok::Unexpected('>'),
                Tok::Eof,
            ]
        );
    }

    #[test]
    fn bad_words_and_comments() {
        assert_eq!(
            kinds("1ab naïve _x9 // c\n/* x\n y */ z"),
            [Tok::BadWord("1ab"), Tok::BadWord("naïve"), Tok::Word("_x9"), Tok::Word("z"), Tok::Eof]
        );
    }

    #[test]
    fn positions_count_lines_and_characters() {
        let mut lexer = Lexer::new("é /* \n */\n  ab");
        let first = lexer.next_token();
        assert_eq!(first.pos, Pos { line: 1, col: 1, offset: 0 });
        let second = lexer.next_token();
        assert_eq!(second.kind, Tok::Word("ab"));
        assert_eq!(second.pos, Pos { line: 3, col: 3, offset: 13 });
    }

    #[test]
    fn leading_byte_order_mark_is_skipped() {
        let mut lexer = Lexer::new("\u{feff}function");
        let t = lexer.next_token();
        assert_eq!(t.kind, Tok::Word("function"));
        assert_eq!(t.pos, Pos { line: 1, col: 1, offset: 3 });
        assert_eq!(kinds("a\u{feff}"), [Tok::Word("a"), Tok::Unexpected('\u{feff}'), Tok::Eof]);
    }

    #[test]
    fn unterminated_comment_points_at_its_start() {
        let mut lexer = Lexer::new("a // x\n  /* b /* c");
        lexer.next_token();
        let t = lexer.next_token();
        assert_eq!(t.kind, Tok::UnterminatedComment);
        assert_eq!((t.pos.line, t.pos.col), (2, 3));
        assert_eq!(lexer.next_token().kind, Tok::Eof);
    }

    #[test]
    fn long_words_are_shortened_in_messages() {
        let long = "x".repeat(100);
        let described = Tok::Word(&long).describe();
        assert!(described.chars().count() < 50, "{described}");
    }
}
