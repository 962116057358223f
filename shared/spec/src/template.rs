//! Parser for the original toolkit's template files: `export KEY="value"` lines and `#` comments.
//!
//! The parser is tolerant of the markdown the templates are often printed in:
//!
//! - leading and trailing whitespace (markdown's two-space line breaks) and `\r` are ignored;
//! - lines starting with `#` or with the markdown-escaped `\#` are comments;
//! - HTML tags wrapped around a line (`<span style="color:red">export X="y"</span>`) are removed;
//! - values may be double-quoted (with the shell's `\"`, `\\`, `\$` and `` \` `` escapes), single-quoted or
//!   bare (up to the first whitespace); `#comment` after the value is ignored;
//! - `KEY=value` without `export` is accepted too;
//! - any other line (prose) is a warning, never an error.
//!
//! Nothing is expanded: `${VAR}` stays as written. A key set twice keeps the last value, with a warning
//! naming both lines. An unterminated quote is an error. Diagnostics never repeat a value, since values
//! may be secrets.

use std::collections::HashMap;

use crate::Diagnostic;

/// One effective `KEY=value` assignment of a template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Assignment {
    /// The key, e.g. `NO_WEBSERVERS`.
    pub key: String,
    /// The value with quotes removed and escapes resolved.
    pub value: String,
    /// The 1-based line it was read from.
    pub line: usize,
}

/// A parsed template: the effective assignments (last one wins) of one file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Template {
    name: String,
    assignments: Vec<Assignment>,
    index: HashMap<String, usize>,
}

impl Template {
    /// Parses `text`, naming it `name` in diagnostics. Never fails: problems come back as diagnostics
    /// (unterminated quotes are errors, the rest warnings).
    pub fn parse(name: impl Into<String>, text: &str) -> (Self, Vec<Diagnostic>) {
        let name = name.into();
        let mut template = Self {
            name,
            assignments: Vec::new(),
            index: HashMap::new(),
        };
        let mut diagnostics = Vec::new();
        // Editors on some systems start a file with a byte-order mark; it is not part of the first key.
        let text = text.strip_prefix('\u{feff}').unwrap_or(text);
        for (i, raw) in text.lines().enumerate() {
            let line = i + 1;
            let content = strip_markup(raw.trim());
            if content.is_empty() || content.starts_with('#') || content.starts_with("\\#") {
                continue;
            }
            match parse_line(content) {
                Line::Assignment { key, value, trailing } => {
                    if trailing {
                        diagnostics.push(
                            Diagnostic::warning(&template.name, "unexpected text after the value; ignored")
                                .at_line(Some(line))
                                .with_key(key),
                        );
                    }
                    template.insert(
                        Assignment {
                            key: key.to_owned(),
                            value,
                            line,
                        },
                        &mut diagnostics,
                    );
                }
                Line::Unterminated { key, quote } => diagnostics.push(
                    Diagnostic::error(&template.name, format!("unterminated {quote} quote in the value"))
                        .at_line(Some(line))
                        .with_key(key),
                ),
                Line::Other => diagnostics.push(
                    Diagnostic::warning(&template.name, "not an `export KEY=\"value\"` line; ignored")
                        .at_line(Some(line)),
                ),
            }
        }
        (template, diagnostics)
    }

    fn insert(&mut self, assignment: Assignment, diagnostics: &mut Vec<Diagnostic>) {
        match self.index.get(&assignment.key) {
            Some(&i) => {
                let previous = &mut self.assignments[i];
                diagnostics.push(
                    Diagnostic::warning(
                        &self.name,
                        format!(
                            "set more than once (lines {} and {}); the value from line {} is used",
                            previous.line, assignment.line, assignment.line
                        ),
                    )
                    .at_line(Some(assignment.line))
                    .with_key(assignment.key.clone()),
                );
                *previous = assignment;
            }
            None => {
                self.index.insert(assignment.key.clone(), self.assignments.len());
                self.assignments.push(assignment);
            }
        }
    }

    /// The name given to [`Template::parse`].
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The effective assignment of `key`.
    pub fn get(&self, key: &str) -> Option<&Assignment> {
        self.index.get(key).and_then(|&i| self.assignments.get(i))
    }

    /// The effective value of `key`.
    pub fn value(&self, key: &str) -> Option<&str> {
        self.get(key).map(|a| a.value.as_str())
    }

    /// Every effective assignment, in order of first appearance.
    pub fn assignments(&self) -> &[Assignment] {
        &self.assignments
    }
}

enum Line<'a> {
    Assignment {
        key: &'a str,
        value: String,
        trailing: bool,
    },
    Unterminated {
        key: &'a str,
        quote: &'static str,
    },
    Other,
}

/// Removes HTML tags wrapped around the line: leading `<tag ...>`s and trailing `</tag>`s.
fn strip_markup(mut s: &str) -> &str {
    while s.starts_with('<') && s[1..].starts_with(|c: char| c.is_ascii_alphabetic()) {
        match s.find('>') {
            Some(end) => s = s[end + 1..].trim_start(),
            None => break,
        }
    }
    while s.ends_with('>') {
        let Some(start) = s.rfind("</") else { break };
        let name = &s[start + 2..s.len() - 1];
        if name.is_empty() || !name.bytes().all(|b| b.is_ascii_alphanumeric()) {
            break;
        }
        s = s[..start].trim_end();
    }
    s
}

fn parse_line(line: &str) -> Line<'_> {
    let rest = match line.strip_prefix("export") {
        Some(rest) if rest.starts_with(char::is_whitespace) => rest.trim_start(),
        _ => line,
    };
    let key_len = rest
        .bytes()
        .take_while(|b| b.is_ascii_alphanumeric() || *b == b'_')
        .count();
    let key = &rest[..key_len];
    if key.is_empty() || key.starts_with(|c: char| c.is_ascii_digit()) || !rest[key_len..].starts_with('=') {
        return Line::Other;
    }
    let after = &rest[key_len + 1..];
    let (value, remainder) = if let Some(body) = after.strip_prefix('"') {
        match double_quoted(body) {
            Some(parsed) => parsed,
            None => return Line::Unterminated { key, quote: "double" },
        }
    } else if let Some(body) = after.strip_prefix('\'') {
        match body.find('\'') {
            Some(end) => (body[..end].to_owned(), &body[end + 1..]),
            None => return Line::Unterminated { key, quote: "single" },
        }
    } else {
        let end = after.find(char::is_whitespace).unwrap_or(after.len());
        (after[..end].to_owned(), &after[end..])
    };
    let remainder = remainder.trim();
    let trailing = !remainder.is_empty() && !remainder.starts_with('#');
    Line::Assignment { key, value, trailing }
}

/// Reads a double-quoted shell string whose opening quote is already consumed; returns the value and the
/// text after the closing quote, or `None` when there is no closing quote.
fn double_quoted(body: &str) -> Option<(String, &str)> {
    let mut value = String::new();
    let mut chars = body.char_indices();
    while let Some((i, c)) = chars.next() {
        match c {
            '"' => return Some((value, &body[i + 1..])),
            '\\' => match chars.next() {
                Some((_, e @ ('"' | '\\' | '$' | '`'))) => value.push(e),
                Some((_, other)) => {
                    value.push('\\');
                    value.push(other);
                }
                None => value.push('\\'),
            },
            _ => value.push(c),
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> (Template, Vec<Diagnostic>) {
        Template::parse("t.tmpl", text)
    }

    #[test]
    fn markdown_wrapped_lines() {
        let text = "\\#####Settings####  \n\
                    export APPLICATION=\"joomla\"  #MANDATORY  \n\
                    <span style=\"color:red\"> export REGION=\"gb-lon\"</span>   \n\
                    <span style=\"color:red\">export BUILD_IDENTIFIER=\"test-gb-lon\"  </span>  \n\
                    export S3_LOCATION='US' # comment\r\n\
                    export BARE=value\n\
                    EMPTY=\n\
                    export ESCAPED=\"a\\\"b\\\\c \\d\"\n";
        let (t, diags) = parse(text);
        assert!(diags.is_empty(), "{diags:?}");
        assert_eq!(t.value("APPLICATION"), Some("joomla"));
        assert_eq!(t.value("REGION"), Some("gb-lon"));
        assert_eq!(t.get("REGION").map(|a| a.line), Some(3));
        assert_eq!(t.value("BUILD_IDENTIFIER"), Some("test-gb-lon"));
        assert_eq!(t.value("S3_LOCATION"), Some("US"));
        assert_eq!(t.value("BARE"), Some("value"));
        assert_eq!(t.value("EMPTY"), Some(""));
        assert_eq!(t.value("ESCAPED"), Some("a\"b\\c \\d"));
    }

    #[test]
    fn duplicates_prose_and_unterminated_quotes() {
        let text = "export A=\"1\"\nSome prose here.\nexport A=\"2\"\nexport B=\"open\nexport C=\"x\" junk\n";
        let (t, diags) = parse(text);
        assert_eq!(t.value("A"), Some("2"));
        assert_eq!(t.value("B"), None);
        let rendered: Vec<String> = diags.iter().map(ToString::to_string).collect();
        assert_eq!(
            rendered,
            [
                "t.tmpl:2: warning: not an `export KEY=\"value\"` line; ignored",
                "t.tmpl:3: warning: A: set more than once (lines 1 and 3); the value from line 3 is used",
                "t.tmpl:4: B: unterminated double quote in the value",
                "t.tmpl:5: warning: C: unexpected text after the value; ignored",
            ]
        );
    }
}
