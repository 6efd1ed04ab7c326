//! The `${{ inputs.NAME }}` expression syntax: splitting text into literal pieces and input
//! references.
//!
//! Both the template parser (which rejects bad expressions and collects the inputs a
//! template uses) and [`crate::expand`] (which substitutes them) read text through
//! [`segments`]; it lives here so neither depends on the other for it.

use crate::names::{InputName, quoted};

/// A piece of template text: literal text or an input reference.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Segment<'a> {
    /// Text copied as is.
    Text(&'a str),
    /// `${{ inputs.NAME }}`, holding a name that follows the [`InputName`] rule.
    Input(&'a str),
}

pub(crate) const OPEN: &str = "${{";
const CLOSE: &str = "}}";

/// Splits `s` into literal text and input references, or explains the first bad
/// expression.
pub(crate) fn segments(s: &str) -> Result<Vec<Segment<'_>>, String> {
    let mut out = Vec::new();
    let mut rest = s;
    while let Some(start) = rest.find(OPEN) {
        if start > 0 {
            out.push(Segment::Text(&rest[..start]));
        }
        let after_open = &rest[start + OPEN.len()..];
        let Some(len) = after_open.find(CLOSE) else {
            return Err(format!(
                "unterminated expression {}: \"${{{{\" has no closing \"}}}}\"",
                quoted(&rest[start..])
            ));
        };
        let whole = &rest[start..start + OPEN.len() + len + CLOSE.len()];
        let inner = after_open[..len].trim();
        let Some(name) = inner.strip_prefix("inputs.") else {
            return Err(format!(
                "unsupported expression {}: only ${{{{ inputs.NAME }}}} is supported",
                quoted(whole)
            ));
        };
        if let Err(e) = InputName::parse(name) {
            return Err(format!(
                "invalid input name {} in expression {}: must match {}",
                quoted(name),
                quoted(whole),
                e.rule
            ));
        }
        out.push(Segment::Input(name));
        rest = &rest[start + whole.len()..];
    }
    if !rest.is_empty() {
        out.push(Segment::Text(rest));
    }
    Ok(out)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use crate::expr::{Segment, segments};
    use proptest::prelude::*;

    #[test]
    fn segments_split_text_and_references() {
        assert_eq!(
            segments("a ${{ inputs.x }}b${{inputs.y}}").unwrap(),
            vec![
                Segment::Text("a "),
                Segment::Input("x"),
                Segment::Text("b"),
                Segment::Input("y")
            ]
        );
        assert_eq!(segments("").unwrap(), vec![]);
        assert_eq!(
            segments("$x ${x} }}").unwrap(),
            vec![Segment::Text("$x ${x} }}")]
        );
        assert_eq!(
            segments("${{\tinputs.a-b\n}}}").unwrap(),
            vec![Segment::Input("a-b"), Segment::Text("}")]
        );
    }

    #[test]
    fn segments_reject_other_expressions() {
        let e = segments("x ${{ secrets.TOKEN }}").unwrap_err();
        assert_eq!(
            e,
            r#"unsupported expression "${{ secrets.TOKEN }}": only ${{ inputs.NAME }} is supported"#
        );
        let e = segments("echo ${{ inputs.x").unwrap_err();
        assert!(
            e.starts_with(r#"unterminated expression "${{ inputs.x""#),
            "{e}"
        );
        let e = segments("${{ inputs.1x }}").unwrap_err();
        assert!(e.contains(r#"invalid input name "1x""#), "{e}");
        let e = segments("${{ inputs.a b }}").unwrap_err();
        assert!(e.contains(r#"invalid input name "a b""#), "{e}");
        assert!(segments("${{ inputs. x }}").is_err());
        assert!(segments("${{ }}").is_err());
        assert!(segments("${{ INPUTS.x }}").is_err());
    }

    proptest! {
        #[test]
        fn segments_never_panic_and_reassemble(s in "(\\$|\\{|\\}|inputs\\.|[a-z ]){0,30}") {
            if let Ok(segs) = segments(&s) {
                let texts: usize = segs.iter().map(|g| match g {
                    Segment::Text(t) => t.len(),
                    Segment::Input(_) => 0,
                }).sum();
                prop_assert!(texts <= s.len());
                if !s.contains("${{") {
                    prop_assert_eq!(segs.len(), usize::from(!s.is_empty()));
                }
            }
        }
    }
}
