//! [`TemplateError`]: what is wrong with a template, and where.

use crate::limits::LimitExceeded;

/// A template that could not be parsed or is invalid.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}{message}{}", file_prefix(.file.as_deref()), location(*.line, *.column))]
pub struct TemplateError {
    /// The file it was read from (a repo's `.gitweave.yml`); `None` for a stored template.
    pub file: Option<String>,
    /// What is wrong, naming where (e.g. `jobs[1].script must not be empty`).
    pub message: String,
    /// 1-based line, for YAML syntax and type errors.
    pub line: Option<usize>,
    /// 1-based column, for YAML syntax and type errors.
    pub column: Option<usize>,
    /// Set when the template was refused for a size cap ([`crate::limits`]) rather than
    /// for its content.
    pub limit: Option<LimitExceeded>,
}

fn file_prefix(file: Option<&str>) -> String {
    file.map(|f| format!("{f}: ")).unwrap_or_default()
}

fn location(line: Option<usize>, column: Option<usize>) -> String {
    match (line, column) {
        (Some(l), Some(c)) => format!(" at line {l} column {c}"),
        (Some(l), None) => format!(" at line {l}"),
        _ => String::new(),
    }
}

impl TemplateError {
    pub(super) fn new(message: String) -> Self {
        TemplateError {
            file: None,
            message,
            line: None,
            column: None,
            limit: None,
        }
    }

    pub(super) fn from_yaml(err: &yaml_serde::Error) -> Self {
        let loc = err.location();
        let mut message = err.to_string();
        // The library appends the location to its message; it is kept in the fields
        // instead so it is not shown twice.
        if let Some(l) = &loc {
            let suffix = format!(" at line {} column {}", l.line(), l.column());
            if let Some(at) = message.find(&suffix) {
                message.replace_range(at..at + suffix.len(), "");
            }
        }
        // libyaml appends its context ("…, while parsing a block mapping at line 2 column
        // 1"); bracketing it keeps the location shown last unambiguous.
        if let Some(at) = message.find(", while ") {
            message = format!("{} ({})", &message[..at], &message[at + 2..]);
        }
        // serde quotes names with backticks; the rest of our messages use double quotes.
        let message = message.replace('`', "\"");
        TemplateError {
            file: None,
            message,
            line: loc.as_ref().map(|l| l.line()),
            column: loc.as_ref().map(|l| l.column()),
            limit: None,
        }
    }
}
