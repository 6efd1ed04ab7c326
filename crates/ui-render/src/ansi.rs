//! One log line with ANSI escape sequences → escaped HTML.
//!
//! Kept: SGR (`ESC [ … m`) foreground colours 30–37 and 90–97, 39 (default colour), bold (1)
//! and its end (22), and reset (0 or nothing). Every other SGR code is ignored (with the
//! arguments of 38/48 extended colours), and every other escape sequence is dropped whole:
//! other CSI sequences (cursor moves, erase), OSC/DCS/PM/APC strings (window titles,
//! hyperlinks) up to their terminator, two-byte escapes and charset selections. C0 and C1
//! control characters are dropped except the tab; a carriage return followed by more text
//! starts the line over, as a terminal shows a progress bar (only its last state is kept).
//!
//! The style carries over from one line to the next ([`Style`] is passed in and out), as a
//! terminal carries it. Output is `<span class="c1 b">…</span>` around styled text, plain
//! escaped text elsewhere; nothing from the input ever becomes markup.

use crate::escape_into;

/// The style in force: a foreground colour (0–7 normal, 8–15 bright) and bold.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Style {
    /// Colour index 0–15, `None` for the default.
    pub fg: Option<u8>,
    /// Bold (SGR 1).
    pub bold: bool,
}

impl Style {
    fn is_plain(self) -> bool {
        self.fg.is_none() && !self.bold
    }

    /// Applies one SGR parameter list (the text between `ESC [` and `m`).
    fn apply_sgr(&mut self, params: &str) {
        let mut codes = params.split(';');
        while let Some(raw) = codes.next() {
            // A sub-parameter form (`38:5:196`) is one code with colons: never ours.
            if raw.contains(':') {
                continue;
            }
            let code: u32 = if raw.is_empty() {
                0
            } else {
                match raw.parse() {
                    Ok(n) => n,
                    Err(_) => continue,
                }
            };
            match code {
                0 => *self = Style::default(),
                1 => self.bold = true,
                22 => self.bold = false,
                30..=37 => self.fg = Some((code - 30) as u8),
                39 => self.fg = None,
                90..=97 => self.fg = Some((code - 90 + 8) as u8),
                // Extended colours: skip their arguments (`5;n` or `2;r;g;b`).
                38 | 48 | 58 => match codes.next() {
                    Some("5") => {
                        codes.next();
                    }
                    Some("2") => {
                        codes.next();
                        codes.next();
                        codes.next();
                    }
                    _ => {}
                },
                _ => {}
            }
        }
    }
}

/// A run of text in one style.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Span {
    /// Its style.
    pub style: Style,
    /// Its text, without escape sequences or control characters.
    pub text: String,
}

/// The visible spans of `line` (no newline in it), starting in `style` and leaving `style` as
/// the line ends.
pub fn spans(line: &str, style: &mut Style) -> Vec<Span> {
    let mut out: Vec<Span> = Vec::new();
    let mut pending_cr = false;
    let mut chars = line.chars().peekable();
    let push = |out: &mut Vec<Span>, style: Style, c: char, pending_cr: &mut bool| {
        if std::mem::take(pending_cr) {
            out.clear();
        }
        match out.last_mut() {
            Some(last) if last.style == style => last.text.push(c),
            _ => out.push(Span {
                style,
                text: c.to_string(),
            }),
        }
    };
    while let Some(c) = chars.next() {
        match c {
            '\u{1b}' => match chars.next() {
                Some('[') => {
                    let mut params = String::new();
                    let mut final_byte = None;
                    while let Some(&n) = chars.peek() {
                        match n {
                            '\u{30}'..='\u{3f}' | '\u{20}'..='\u{2f}' => {
                                if params.len() < 256 {
                                    params.push(n);
                                }
                                chars.next();
                            }
                            '\u{40}'..='\u{7e}' => {
                                final_byte = Some(n);
                                chars.next();
                                break;
                            }
                            // Not part of a CSI: the sequence is cut here and `n` is text.
                            _ => break,
                        }
                    }
                    if final_byte == Some('m')
                        && params
                            .bytes()
                            .all(|b| b.is_ascii_digit() || b == b';' || b == b':')
                    {
                        style.apply_sgr(&params);
                    }
                }
                // String sequences: OSC, DCS, SOS, PM, APC, up to BEL or ST (`ESC \`).
                Some(']' | 'P' | 'X' | '^' | '_') => {
                    while let Some(n) = chars.next() {
                        if n == '\u{7}' || n == '\u{9c}' {
                            break;
                        }
                        if n == '\u{1b}' {
                            if chars.peek() == Some(&'\\') {
                                chars.next();
                            }
                            break;
                        }
                    }
                }
                // `ESC ( B` and other intermediates: skip them and the final byte.
                Some('\u{20}'..='\u{2f}') => {
                    while let Some(&n) = chars.peek() {
                        chars.next();
                        if !('\u{20}'..='\u{2f}').contains(&n) {
                            break;
                        }
                    }
                }
                // Any other two-byte escape (`ESC 7`, `ESC M`, …), or ESC at the end.
                _ => {}
            },
            '\t' => push(&mut out, *style, c, &mut pending_cr),
            '\r' => pending_cr = true,
            c if c.is_control() => {}
            c => push(&mut out, *style, c, &mut pending_cr),
        }
    }
    out
}

/// Appends `line` as HTML to `out`: escaped text, styled runs in `<span class="…">`.
/// Classes: `c0`…`c15` for the colour, `b` for bold.
pub fn render_into(out: &mut String, line: &str, style: &mut Style) {
    for span in spans(line, style) {
        if span.style.is_plain() {
            escape_into(out, &span.text);
            continue;
        }
        out.push_str("<span class=\"");
        if let Some(fg) = span.style.fg {
            out.push('c');
            out.push_str(&fg.to_string());
        }
        if span.style.bold {
            if span.style.fg.is_some() {
                out.push(' ');
            }
            out.push('b');
        }
        out.push_str("\">");
        escape_into(out, &span.text);
        out.push_str("</span>");
    }
}

/// `line` as HTML (see [`render_into`]).
pub fn render(line: &str, style: &mut Style) -> String {
    let mut out = String::with_capacity(line.len() + 16);
    render_into(&mut out, line, style);
    out
}

/// `line` without escape sequences or control characters: what the user sees, for search.
pub fn plain(line: &str) -> String {
    let mut style = Style::default();
    spans(line, &mut style)
        .into_iter()
        .map(|s| s.text)
        .collect()
}

/// Checks that `html` (an output of [`render`]) is only escaped text and our own span tags,
/// balanced. Used by the property tests and the fuzz target.
pub fn is_safe_markup(html: &str) -> bool {
    let mut rest = html;
    let mut open = 0_i64;
    while let Some(i) = rest.find(['<', '>']) {
        let tail = &rest[i..];
        if let Some(after) = tail.strip_prefix("</span>") {
            open -= 1;
            if open < 0 {
                return false;
            }
            rest = after;
        } else if let Some(after) = tail.strip_prefix("<span class=\"") {
            let Some(end) = after.find("\">") else {
                return false;
            };
            let classes = &after[..end];
            let ok = classes.split(' ').all(|c| {
                c == "b"
                    || c.strip_prefix('c').is_some_and(|n| {
                        !n.is_empty()
                            && n.bytes().all(|b| b.is_ascii_digit())
                            && n.parse::<u8>().is_ok_and(|n| n < 16)
                    })
            });
            if !ok || open != 0 {
                return false;
            }
            open += 1;
            rest = &after[end + 2..];
        } else {
            return false;
        }
    }
    open == 0
}

#[cfg(test)]
mod tests {
    use super::{Style, is_safe_markup, plain, render};
    use proptest::prelude::*;

    fn r(line: &str) -> String {
        render(line, &mut Style::default())
    }

    #[test]
    fn colours_and_bold_become_classes_and_reset_ends_them() {
        assert_eq!(
            r("\x1b[31mred\x1b[0m plain"),
            "<span class=\"c1\">red</span> plain"
        );
        assert_eq!(
            r("\x1b[1;92mok\x1b[22m!"),
            "<span class=\"c10 b\">ok</span><span class=\"c10\">!</span>"
        );
        assert_eq!(r("\x1b[1mB\x1b[39mx\x1b[m"), "<span class=\"b\">Bx</span>");
    }

    #[test]
    fn markup_in_a_line_is_text() {
        assert_eq!(
            r("<script>alert('x')</script> & \"q\""),
            "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt; &amp; &quot;q&quot;"
        );
        assert_eq!(r("\x1b[31m<b>"), "<span class=\"c1\">&lt;b&gt;</span>");
    }

    #[test]
    fn other_sequences_are_dropped_whole() {
        // Cursor moves, erase, 256-colour and truecolour, OSC title and hyperlink, charset.
        assert_eq!(r("a\x1b[2Kb\x1b[10;5Hc"), "abc");
        assert_eq!(r("\x1b[38;5;196mx\x1b[48;2;1;2;3my"), "xy");
        assert_eq!(r("\x1b]0;title\x07t\x1b]8;;http://x\x1b\\link"), "tlink");
        assert_eq!(r("\x1b(Bq\x1b7\x1b8"), "q");
        assert_eq!(
            r("bell\x07 nul\0 del\x7f tab\tend"),
            "bell nul del tab\tend"
        );
    }

    #[test]
    fn a_carriage_return_keeps_the_last_state_of_a_progress_line() {
        assert_eq!(r("10%\r50%\r100%"), "100%");
        assert_eq!(r("done\r"), "done", "a CRLF line ends with its text");
    }

    #[test]
    fn the_style_carries_to_the_next_line() {
        let mut s = Style::default();
        assert_eq!(
            render("\x1b[33mwarn", &mut s),
            "<span class=\"c3\">warn</span>"
        );
        assert_eq!(render("still", &mut s), "<span class=\"c3\">still</span>");
    }

    #[test]
    fn the_safety_check_refuses_foreign_markup() {
        assert!(is_safe_markup("a <span class=\"c1 b\">x</span>"));
        assert!(!is_safe_markup("<script>"));
        assert!(!is_safe_markup("<span class=\"c1\">x"));
        assert!(!is_safe_markup("<span class=\"x\">x</span>"));
    }

    fn sgr() -> impl Strategy<Value = String> {
        prop_oneof![
            (0_u32..110).prop_map(|n| format!("\x1b[{n}m")),
            (0_u32..110, 0_u32..110).prop_map(|(a, b)| format!("\x1b[{a};{b}m")),
            Just("\x1b[m".to_owned()),
            Just("\x1b[2K".to_owned()),
            Just("\x1b]0;t\x07".to_owned()),
            Just("\x1b[38;5;12m".to_owned()),
        ]
    }

    proptest! {
        #[test]
        fn any_input_renders_to_safe_markup(line in any::<String>()) {
            let html = r(&line);
            prop_assert!(is_safe_markup(&html), "{html:?}");
        }

        #[test]
        fn sequences_between_text_leave_the_text_as_it_was(
            parts in proptest::collection::vec(("[ -~]{0,12}", sgr()), 0..8)
        ) {
            let mut line = String::new();
            let mut text = String::new();
            for (t, seq) in &parts {
                line.push_str(t);
                line.push_str(seq);
                text.push_str(t);
            }
            // Sequences cut text from their ESC to their final byte; the printable text
            // around them stays, byte for byte.
            prop_assert_eq!(plain(&line), text);
        }

        #[test]
        fn plain_text_is_only_escaped(line in "[^\\x00-\\x1f\\x7f-\\u{9f}]{0,64}") {
            let mut want = String::new();
            crate::escape_into(&mut want, &line);
            prop_assert_eq!(r(&line), want);
        }
    }
}
