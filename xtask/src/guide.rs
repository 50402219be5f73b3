//! Checks that the user guide's (`docs/guide.md`) Rust examples are the compiled ones: each
//! ```` ```rust ```` block names an example program and a region (`// PATH: NAME`) and must
//! equal the lines between `// guide: NAME` and `// guide: end` in that program, which
//! `cargo test -p manta-client` builds.

use std::path::Path;

/// A Rust block of the guide: the file and region it claims, and its body.
#[derive(Debug)]
pub(crate) struct Block {
    pub(crate) file: String,
    pub(crate) region: String,
    pub(crate) body: String,
}

/// The guide's ```` ```rust ```` blocks; a block without a `// PATH: REGION` first line is an
/// error (every example must be compiled somewhere).
pub(crate) fn rust_blocks(guide: &str) -> Result<Vec<Block>, String> {
    let mut blocks = Vec::new();
    let mut lines = guide.lines();
    while let Some(line) = lines.next() {
        if line.trim() != "```rust" {
            continue;
        }
        let head = lines.next().unwrap_or_default();
        let (file, region) = head
            .strip_prefix("// ")
            .and_then(|h| h.split_once(".rs: "))
            .ok_or_else(|| {
                format!("a rust block starts with {head:?}, not `// crates/...rs: REGION`")
            })?;
        let body: Vec<&str> = lines.by_ref().take_while(|l| l.trim() != "```").collect();
        blocks.push(Block {
            file: format!("{file}.rs"),
            region: region.trim().to_owned(),
            body: body.join("\n"),
        });
    }
    Ok(blocks)
}

/// The lines between `// guide: REGION` and the next `// guide: end`, without their common
/// indentation.
pub(crate) fn region(source: &str, name: &str) -> Option<String> {
    let start = format!("// guide: {name}");
    let mut lines = source.lines().skip_while(|l| l.trim() != start);
    lines.next()?;
    let body: Vec<&str> = lines.take_while(|l| l.trim() != "// guide: end").collect();
    let indent = body
        .iter()
        .filter(|l| !l.trim().is_empty())
        .map(|l| l.len() - l.trim_start().len())
        .min()
        .unwrap_or(0);
    Some(
        body.iter()
            .map(|l| l.get(indent..).unwrap_or_default())
            .collect::<Vec<_>>()
            .join("\n"),
    )
}

/// Every mismatch between the guide at `root` and the example programs.
pub(crate) fn mismatches(root: &Path) -> Vec<String> {
    let guide = match std::fs::read_to_string(root.join("docs/guide.md")) {
        Ok(g) => g,
        Err(e) => return vec![format!("docs/guide.md: {e}")],
    };
    let blocks = match rust_blocks(&guide) {
        Ok(b) => b,
        Err(e) => return vec![e],
    };
    let mut problems = Vec::new();
    for b in &blocks {
        let source = match std::fs::read_to_string(root.join(&b.file)) {
            Ok(s) => s,
            Err(e) => {
                problems.push(format!("{}: {e}", b.file));
                continue;
            }
        };
        match region(&source, &b.region) {
            None => problems.push(format!("{} has no `// guide: {}` region", b.file, b.region)),
            Some(code) if code != b.body => problems.push(format!(
                "docs/guide.md's block {}: {} differs from the program; copy the region \
                 into the guide\n--- guide\n{}\n--- program\n{code}",
                b.file, b.region, b.body
            )),
            Some(_) => {}
        }
    }
    if blocks.is_empty() {
        problems.push("docs/guide.md has no rust example".into());
    }
    problems
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_guide_shows_the_compiled_examples() {
        let problems = mismatches(&crate::workspace_root());
        assert!(problems.is_empty(), "{}", problems.join("\n\n"));
    }

    #[test]
    fn an_edited_block_or_an_unnamed_one_is_caught() {
        let source = "fn main() {\n    // guide: a\n    let x = 1;\n    // guide: end\n}\n";
        assert_eq!(region(source, "a").as_deref(), Some("let x = 1;"));
        assert_eq!(region(source, "b"), None);
        let guide = "text\n```rust\n// crates/c/examples/e.rs: a\nlet x = 2;\n```\n";
        let blocks = rust_blocks(guide).unwrap();
        assert_eq!(blocks[0].file, "crates/c/examples/e.rs");
        assert_eq!(blocks[0].region, "a");
        assert_ne!(Some(blocks[0].body.clone()), region(source, "a"));
        let err = rust_blocks("```rust\nlet x = 1;\n```\n").unwrap_err();
        assert!(err.contains("not `// crates/"), "{err}");
    }
}
