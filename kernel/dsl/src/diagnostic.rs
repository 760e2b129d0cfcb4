//! What the parser and the checker report: an error or a warning at a source position.
//!
//! Messages are plain text meant for the person who wrote the program (the kernel returns them in
//! the body of a 400 response), so they name the offending text and never a parser internal.

use alloc::string::String;
use core::fmt;

use crate::ast::Pos;

/// How bad a diagnostic is: errors make a program unusable, warnings do not.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Severity {
    Error,
    Warning,
}

/// One finding, with where it is. `Display` gives `line:col: message`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Diagnostic {
    pub severity: Severity,
    pub pos: Pos,
    pub message: String,
}

impl Diagnostic {
    pub fn error(pos: Pos, message: impl Into<String>) -> Self {
        Self { severity: Severity::Error, pos, message: message.into() }
    }

    pub fn warning(pos: Pos, message: impl Into<String>) -> Self {
        Self { severity: Severity::Warning, pos, message: message.into() }
    }

    pub fn is_error(&self) -> bool {
        self.severity == Severity::Error
    }
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}: {}", self.pos.line, self.pos.col, self.message)
    }
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Error => "error",
            Self::Warning => "warning",
        })
    }
}

/// Sorts diagnostics by where they are, keeping the order of those at the same place.
pub(crate) fn sort_by_pos(diags: &mut [Diagnostic]) {
    diags.sort_by_key(|d| (d.pos.offset, d.pos.line, d.pos.col));
}
