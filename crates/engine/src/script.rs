//! Turns script lines into one `/bin/sh` program that stops at the first failing line and
//! echoes each line before running it, as GitLab CI does, so a log shows what ran.

/// Quotes `s` for a POSIX shell as one single-quoted word.
pub fn shell_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

/// The program run by `/bin/sh -c`.
pub fn render(lines: &[String]) -> String {
    let mut out = String::from("set -e\n");
    for line in lines {
        out.push_str("printf '$ %s\\n' ");
        out.push_str(&shell_quote(line));
        out.push('\n');
        out.push_str(line);
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quotes_single_quotes() {
        assert_eq!(shell_quote("it's"), r"'it'\''s'");
    }

    #[test]
    fn renders_set_e_and_echo() {
        let s = render(&["echo hi".into(), "false".into()]);
        assert_eq!(
            s,
            "set -e\nprintf '$ %s\\n' 'echo hi'\necho hi\nprintf '$ %s\\n' 'false'\nfalse\n"
        );
    }
}
