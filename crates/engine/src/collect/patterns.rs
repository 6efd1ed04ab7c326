//! A job's `artifacts.paths`, compiled: which files they match, and which workspace paths to
//! export to find them all.

use globset::{GlobBuilder, GlobSet, GlobSetBuilder};

/// The characters that start a glob (`\` too: an escape makes the rest no plain path).
const META: &[char] = &['*', '?', '[', ']', '{', '}', '\\'];

/// The compiled `artifacts.paths` (SPEC §11), relative to the workspace. `*` and `?` never
/// cross a `/`, `**` (a whole component) does. Each pattern's literal prefix (its components
/// before the first with a glob character) is what to export: `dist/**` exports `dist`,
/// `target/release/app` that file alone, `*.txt` the whole workspace.
#[derive(Debug, Clone)]
pub struct Patterns {
    set: GlobSet,
    /// The patterns as written, in order (the set's indices).
    sources: Vec<String>,
    /// Each pattern's literal prefix, in components.
    prefixes: Vec<Vec<String>>,
}

impl Patterns {
    /// Compiles `paths`; an absolute path, a `.` or `..` component, an empty path or a bad
    /// glob is an error saying which.
    pub fn new(paths: &[String]) -> Result<Patterns, String> {
        let mut set = GlobSetBuilder::new();
        let mut prefixes = Vec::with_capacity(paths.len());
        for path in paths {
            if path.starts_with('/') {
                return Err(format!("artifact path {path:?} is absolute"));
            }
            let parts: Vec<&str> = path.split('/').filter(|p| !p.is_empty()).collect();
            if parts.is_empty() {
                return Err(format!("artifact path {path:?} is empty"));
            }
            if parts.iter().any(|p| *p == "." || *p == "..") {
                return Err(format!(
                    "artifact path {path:?} has a . or .. component; paths are relative to the workspace"
                ));
            }
            let glob = GlobBuilder::new(&parts.join("/"))
                .literal_separator(true)
                .build()
                .map_err(|e| format!("artifact path {path:?}: {e}"))?;
            set.add(glob);
            prefixes.push(
                parts
                    .iter()
                    .take_while(|p| !p.contains(META))
                    .map(|p| (*p).to_owned())
                    .collect(),
            );
        }
        let set = set.build().map_err(|e| e.to_string())?;
        Ok(Patterns {
            set,
            sources: paths.to_vec(),
            prefixes,
        })
    }

    /// Whether the file at `rel` (relative, `/`-separated) is an artifact.
    pub fn matches(&self, rel: &str) -> bool {
        self.set.is_match(rel)
    }

    /// Which patterns match `rel`, by index.
    pub(crate) fn matching(&self, rel: &str) -> Vec<usize> {
        self.set.matches(rel)
    }

    /// The patterns as written.
    pub fn sources(&self) -> &[String] {
        &self.sources
    }

    /// Whether some pattern could match a path strictly below `rel`: one whose literal prefix
    /// holds `rel` (or lies within it) and that has `**` or more components than `rel`. It
    /// says when a symlink to a directory is worth following; it may say yes in vain.
    pub(crate) fn may_match_below(&self, rel: &str) -> bool {
        let parts: Vec<&str> = rel.split('/').filter(|p| !p.is_empty()).collect();
        self.sources
            .iter()
            .zip(&self.prefixes)
            .any(|(source, prefix)| {
                let related = prefix.iter().zip(&parts).all(|(a, b)| a == b);
                let deeper = source.split('/').filter(|p| !p.is_empty()).count() > parts.len();
                related && (deeper || source.split('/').any(|p| p == "**"))
            })
    }

    /// The workspace paths to export (`""`: the workspace itself), each once: none lies
    /// within another, sorted.
    pub fn roots(&self) -> Vec<String> {
        let mut prefixes: Vec<&Vec<String>> = self.prefixes.iter().collect();
        prefixes.sort_by_key(|p| p.len());
        let mut roots: Vec<&Vec<String>> = Vec::new();
        for p in prefixes {
            if !roots.iter().any(|r| p.starts_with(r)) {
                roots.push(p);
            }
        }
        let mut roots: Vec<String> = roots.into_iter().map(|r| r.join("/")).collect();
        roots.sort();
        roots
    }
}

#[cfg(test)]
mod tests {
    use super::Patterns;
    use proptest::prelude::*;

    fn patterns(paths: &[&str]) -> Patterns {
        let paths: Vec<String> = paths.iter().map(|p| (*p).to_owned()).collect();
        Patterns::new(&paths).expect("valid patterns")
    }

    #[test]
    fn the_literal_prefix_is_what_is_exported() {
        assert_eq!(patterns(&["dist/**"]).roots(), ["dist"]);
        assert_eq!(
            patterns(&["target/release/app"]).roots(),
            ["target/release/app"]
        );
        assert_eq!(patterns(&["a/b/*.txt"]).roots(), ["a/b"]);
        assert_eq!(patterns(&["a/{b,c}/x"]).roots(), ["a"]);
        assert_eq!(patterns(&["a/b?/x"]).roots(), ["a"]);
        assert_eq!(patterns(&["*.txt"]).roots(), [""]);
        assert_eq!(patterns(&["**/*.so"]).roots(), [""]);
    }

    #[test]
    fn overlapping_roots_are_exported_once() {
        assert_eq!(
            patterns(&["dist/sub/x", "dist/**", "dist/a.txt", "other/y", "distx/z"]).roots(),
            ["dist", "distx/z", "other/y"]
        );
        assert_eq!(patterns(&["a/b", "*.md", "c/**"]).roots(), [""]);
        assert_eq!(patterns(&["a/**", "a/**"]).roots(), ["a"]);
    }

    #[test]
    fn a_star_stays_in_its_directory_and_a_double_star_crosses() {
        let p = patterns(&["dist/*.txt", "lib/**"]);
        assert!(p.matches("dist/a.txt"));
        assert!(!p.matches("dist/sub/a.txt"), "* does not cross /");
        assert!(!p.matches("dist/a.bin"));
        assert!(p.matches("lib/a"));
        assert!(p.matches("lib/x/y/z.so"));
        assert!(!p.matches("lib"), "lib/** is what is inside lib");
        assert!(!p.matches("other/lib/a"));
        let p = patterns(&["a/**/b"]);
        assert!(p.matches("a/b") && p.matches("a/x/b") && p.matches("a/x/y/b"));
        assert!(!p.matches("a/x/c"));
    }

    #[test]
    fn what_may_match_below_a_path() {
        let p = patterns(&["dist/*.txt", "lib/**/*.so", "bin/app"]);
        assert!(p.may_match_below("dist"));
        assert!(!p.may_match_below("dist/sub"), "* stays in dist");
        assert!(p.may_match_below("lib/x/y"));
        assert!(p.may_match_below("bin"));
        assert!(!p.may_match_below("bin/app"));
        assert!(!p.may_match_below("other"));
    }

    #[test]
    fn bad_paths_are_refused_with_the_reason() {
        for (bad, says) in [
            ("/etc/passwd", "absolute"),
            ("a/../b", ".."),
            ("./a", ". or .."),
            ("", "empty"),
            ("a/[b", "a/[b"),
        ] {
            let e = Patterns::new(&[bad.to_owned()]).expect_err(bad);
            assert!(e.contains(says), "{bad}: {e}");
        }
    }

    /// One component of a generated pattern.
    #[derive(Debug, Clone)]
    enum Part {
        Name(String),
        Star,
        Prefixed(String),
        Deep,
    }

    fn part() -> impl Strategy<Value = Part> {
        prop_oneof![
            3 => "[a-c]{1,2}".prop_map(Part::Name),
            1 => Just(Part::Star),
            1 => "[a-c]".prop_map(Part::Prefixed),
            1 => Just(Part::Deep),
        ]
    }

    fn pattern_and_path() -> impl Strategy<Value = (String, String)> {
        (
            prop::collection::vec(part(), 1..5),
            prop::collection::vec("[a-c]{1,2}", 12),
            0usize..3,
        )
            .prop_map(|(parts, fill, deep)| {
                let mut fill = fill.into_iter().cycle();
                let mut path: Vec<String> = Vec::new();
                let pattern: Vec<String> = parts
                    .iter()
                    .map(|p| match p {
                        Part::Name(n) => n.clone(),
                        Part::Star => "*".to_owned(),
                        Part::Prefixed(n) => format!("{n}*"),
                        Part::Deep => "**".to_owned(),
                    })
                    .collect();
                for (i, p) in parts.iter().enumerate() {
                    match p {
                        Part::Name(n) => path.push(n.clone()),
                        Part::Star => path.extend(fill.next()),
                        Part::Prefixed(n) => {
                            path.push(format!("{n}{}", fill.next().unwrap_or_default()))
                        }
                        Part::Deep => {
                            // A trailing `**` is what lies inside: at least one component.
                            let at_least = usize::from(i + 1 == parts.len());
                            for _ in 0..deep.max(at_least) {
                                path.extend(fill.next());
                            }
                        }
                    }
                }
                (pattern.join("/"), path.join("/"))
            })
    }

    proptest! {
        /// Whatever a pattern matches lies within one exported root, and no root lies within
        /// another.
        #[test]
        fn every_match_is_under_exactly_one_root(
            cases in prop::collection::vec(pattern_and_path(), 1..5),
        ) {
            let sources: Vec<String> = cases.iter().map(|(p, _)| p.clone()).collect();
            let p = Patterns::new(&sources).map_err(TestCaseError::fail)?;
            let roots = p.roots();
            let within = |path: &str, root: &str| {
                root.is_empty() || path == root || path.starts_with(&format!("{root}/"))
            };
            for (pattern, path) in &cases {
                prop_assert!(p.matches(path), "{pattern} does not match {path}");
                let holding = roots.iter().filter(|r| within(path, r)).count();
                prop_assert_eq!(holding, 1, "{} in roots {:?}", path, roots);
            }
            for a in &roots {
                for b in &roots {
                    prop_assert!(a == b || !within(a, b), "{a} lies within {b}");
                }
            }
        }
    }
}
