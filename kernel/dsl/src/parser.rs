//! Recursive-descent parser from tokens to the syntax tree in [`crate::ast`].
//!
//! The grammar nests only to a fixed depth (program, item, application, argument), so the parser
//! recurses no deeper than that whatever the input, and each step consumes a token or stops: the
//! work is linear in the input. Keywords are recognized by context (see [`crate::lexer`]), which
//! needs one token of lookahead, plus one more in the single place noted below.
//!
//! After a syntax error the parser skips to a likely restart point (the next `;` inside a
//! composition body, the next `function`/`composition` at the top) and goes on, so one run reports
//! several independent mistakes; it stops after [`MAX_PARSE_ERRORS`].

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;

use crate::ast::{
    Application, Argument, Composition, Distribution, FunctionDecl, Ident, JoinClause, JoinKind, OutputBinding, Pos,
    Program,
};
use crate::diagnostic::Diagnostic;
use crate::lexer::{Lexer, Tok, Token};

/// The most syntax errors one parse reports; later ones are likely consequences of earlier ones.
pub const MAX_PARSE_ERRORS: usize = 20;

type PResult<T> = Result<T, Diagnostic>;

/// What may follow `=` and `optional` in an argument.
const DISTRIBUTIONS: &str = "'all', 'each', 'keyed', 'anyEach' or 'anyKeyed'";
const OPTIONAL_OR_DISTRIBUTION: &str = "'optional', 'all', 'each', 'keyed', 'anyEach' or 'anyKeyed'";

/// What may follow a name in a `by` clause.
const AFTER_JOINED_NAME: &str = "a join kind ('inner', 'left', 'right', 'outer', 'full', 'cross') or ';'";

pub(crate) fn parse_program(src: &str) -> Result<Program, Vec<Diagnostic>> {
    let mut parser = Parser::new(src);
    let program = parser.program();
    if parser.errors.is_empty() { Ok(program) } else { Err(parser.errors) }
}

struct Parser<'a> {
    lexer: Lexer<'a>,
    tok: Token<'a>,
    errors: Vec<Diagnostic>,
}

impl<'a> Parser<'a> {
    fn new(src: &'a str) -> Self {
        let mut lexer = Lexer::new(src);
        let tok = lexer.next_token();
        Self { lexer, tok, errors: Vec::new() }
    }

    fn bump(&mut self) -> Token<'a> {
        let tok = self.tok;
        self.tok = self.lexer.next_token();
        tok
    }

    /// The token after the current one, without consuming anything.
    fn peek_next(&self) -> Tok<'a> {
        let mut lexer = self.lexer;
        lexer.next_token().kind
    }

    fn at_word(&self, word: &str) -> bool {
        self.tok.kind == Tok::Word(word)
    }

    /// The error for the current token when `what` was expected there.
    fn expected(&self, what: &str) -> Diagnostic {
        let found = self.tok.kind.describe();
        Diagnostic::error(self.tok.pos, format!("expected {what}, found {found}"))
    }

    fn expect(&mut self, kind: Tok<'static>, what: &str) -> PResult<Pos> {
        if self.tok.kind == kind { Ok(self.bump().pos) } else { Err(self.expected(what)) }
    }

    /// Any identifier, keywords included: they are reserved nowhere.
    fn name(&mut self) -> PResult<Ident> {
        match self.tok.kind {
            Tok::Word(w) => {
                let pos = self.bump().pos;
                Ok(Ident { name: String::from(w), pos })
            }
            Tok::BadWord(_) => {
                let d = self.expected("a name");
                Err(Diagnostic {
                    message: format!(
                        "{} (names are ASCII letters, digits and '_', not starting with a digit)",
                        d.message
                    ),
                    ..d
                })
            }
            _ => Err(self.expected("a name")),
        }
    }

    fn record(&mut self, error: Diagnostic) {
        if self.errors.len() < MAX_PARSE_ERRORS {
            self.errors.push(error);
        }
    }

    fn too_many_errors(&self) -> bool {
        self.errors.len() >= MAX_PARSE_ERRORS
    }

    /// `program = { function | composition }`
    fn program(&mut self) -> Program {
        let mut program = Program::default();
        loop {
            let start = self.tok.pos.offset;
            let result = match self.tok.kind {
                Tok::Eof => break,
                Tok::Word("function") => self.function().map(|f| program.functions.push(f)),
                Tok::Word("composition") => self.composition().map(|c| program.compositions.push(c)),
                _ => Err(self.expected("'function' or 'composition'")),
            };
            if let Err(error) = result {
                self.record(error);
                if self.too_many_errors() {
                    break;
                }
                // Always move on, then skip to the next item keyword.
                if self.tok.pos.offset == start && self.tok.kind != Tok::Eof {
                    self.bump();
                }
                while !matches!(self.tok.kind, Tok::Eof | Tok::Word("function" | "composition")) {
                    self.bump();
                }
            }
        }
        program
    }

    /// `"(" [ name { "," name } ] ")"`: empty lists are allowed, as in Dandelion; a trailing
    /// comma is not, as in Dandelion.
    fn name_list(&mut self) -> PResult<Vec<Ident>> {
        self.list(Self::name, "a name or ')'")
    }

    /// A parenthesized, comma-separated list of `item`s.
    fn list<T>(&mut self, mut item: impl FnMut(&mut Self) -> PResult<T>, first: &str) -> PResult<Vec<T>> {
        self.expect(Tok::LParen, "'('")?;
        let mut items = Vec::new();
        if self.tok.kind == Tok::RParen {
            self.bump();
            return Ok(items);
        }
        if !matches!(self.tok.kind, Tok::Word(_) | Tok::BadWord(_)) {
            return Err(self.expected(first));
        }
        loop {
            items.push(item(self)?);
            match self.tok.kind {
                Tok::Comma => {
                    self.bump();
                }
                Tok::RParen => {
                    self.bump();
                    return Ok(items);
                }
                _ => return Err(self.expected("',' or ')'")),
            }
        }
    }

    /// `signature = name_list "=>" name_list`
    fn signature(&mut self) -> PResult<(Vec<Ident>, Vec<Ident>)> {
        let inputs = self.name_list()?;
        self.expect(Tok::Arrow, "'=>'")?;
        let outputs = self.name_list()?;
        Ok((inputs, outputs))
    }

    /// `function = "function" name signature ";"`
    fn function(&mut self) -> PResult<FunctionDecl> {
        self.bump();
        let name = self.name()?;
        let (inputs, outputs) = self.signature()?;
        self.expect(Tok::Semi, "';'")?;
        Ok(FunctionDecl { name, inputs, outputs })
    }

    /// `composition = "composition" name signature "{" { application } "}"`
    fn composition(&mut self) -> PResult<Composition> {
        self.bump();
        let name = self.name()?;
        let (inputs, outputs) = self.signature()?;
        self.expect(Tok::LBrace, "'{'")?;
        let mut body = Vec::new();
        loop {
            match self.tok.kind {
                Tok::RBrace => {
                    self.bump();
                    break;
                }
                // `function f (` or `composition c (` here most likely means the `}` closing
                // this body is missing; an application reads `name (`. This is the one place
                // that looks two tokens ahead.
                Tok::Word("function" | "composition") if matches!(self.peek_next(), Tok::Word(_)) => {
                    return Err(self.expected("'}'"));
                }
                Tok::Word(_) | Tok::BadWord(_) => match self.application() {
                    Ok(app) => body.push(app),
                    Err(error) => {
                        self.record(error);
                        if self.too_many_errors() {
                            return Err(self.expected("'}'"));
                        }
                        self.skip_statement();
                    }
                },
                _ => return Err(self.expected("a function name or '}'")),
            }
        }
        Ok(Composition { name, inputs, outputs, body })
    }

    /// After an error in an application: skips past its `;`, or to the `}` or item keyword that
    /// shows the statement ended without one.
    fn skip_statement(&mut self) {
        loop {
            match self.tok.kind {
                Tok::Semi => {
                    self.bump();
                    return;
                }
                Tok::RBrace | Tok::Eof => return,
                Tok::Word("function" | "composition") if matches!(self.peek_next(), Tok::Word(_)) => return,
                _ => {
                    self.bump();
                }
            }
        }
    }

    /// `application = name args "=>" bindings [ join ] ";"`
    fn application(&mut self) -> PResult<Application> {
        let function = self.name()?;
        let args = self.list(Self::argument, "an input name or ')'")?;
        self.expect(Tok::Arrow, "'=>'")?;
        let outputs = self.list(Self::binding, "a set name or ')'")?;
        let join = match self.tok.kind {
            Tok::Word("by") => {
                self.bump();
                Some(self.join()?)
            }
            Tok::Semi => None,
            _ => return Err(self.expected("'by' or ';'")),
        };
        self.expect(Tok::Semi, "';'")?;
        Ok(Application { function, args, outputs, join })
    }

    /// `argument = name "=" [ "optional" ] distribution name`; `anyEach` and `anyKeyed` are
    /// spelled as Dandelion spells them (case matters).
    fn argument(&mut self) -> PResult<Argument> {
        let param = self.name()?;
        self.expect(Tok::Eq, "'='")?;
        let optional = self.at_word("optional");
        if optional {
            self.bump();
        }
        let distribution = match self.tok.kind {
            Tok::Word("all") => Distribution::All,
            Tok::Word("each") => Distribution::Each,
            Tok::Word("keyed") => Distribution::Keyed,
            Tok::Word("anyEach") => Distribution::AnyEach,
            Tok::Word("anyKeyed") => Distribution::AnyKeyed,
            _ if optional => return Err(self.expected(DISTRIBUTIONS)),
            _ => return Err(self.expected(OPTIONAL_OR_DISTRIBUTION)),
        };
        self.bump();
        let set = self.name()?;
        Ok(Argument { param, optional, distribution, set })
    }

    /// `binding = name "=" name`
    fn binding(&mut self) -> PResult<OutputBinding> {
        let set = self.name()?;
        self.expect(Tok::Eq, "'='")?;
        let param = self.name()?;
        Ok(OutputBinding { set, param })
    }

    /// `join = "by" name { join_kind name }`, `by` already consumed. Names and kinds alternate,
    /// so a set or input called `left` is read right.
    fn join(&mut self) -> PResult<JoinClause> {
        let first = self.name()?;
        let mut rest = Vec::new();
        loop {
            let kind = match self.tok.kind {
                Tok::Semi => return Ok(JoinClause { first, rest }),
                Tok::Word("inner") => JoinKind::Inner,
                Tok::Word("left") => JoinKind::Left,
                Tok::Word("right") => JoinKind::Right,
                Tok::Word("outer" | "full") => JoinKind::Outer,
                Tok::Word("cross") => JoinKind::Cross,
                _ => return Err(self.expected(AFTER_JOINED_NAME)),
            };
            self.bump();
            rest.push((kind, self.name()?));
        }
    }
}
