//! docs/tutorial.md shows the project's own code: each code block marked
//! `<!-- source: PATH -->` is lines of PATH, unchanged and in order. An
//! excerpt may leave lines out, each gap written as a line `// ...` (or
//! `# ...`) and may take one indentation off the whole block, never
//! change a line. Every Rust block carries a marker, and every example the
//! tutorial runs is in examples/, so cargo compiles it.

use std::collections::BTreeSet;
use std::path::Path;

const TUTORIAL: &str = "docs/tutorial.md";
const MARKER: (&str, &str) = ("<!-- source: ", " -->");

/// A fenced code block of the tutorial.
#[derive(Debug)]
struct Block {
    /// The line of its opening fence, from 1.
    line: usize,
    lang: String,
    /// The file its marker names, if it has one.
    source: Option<String>,
    /// Its lines, without the indentation of its fence.
    lines: Vec<String>,
}

/// Every code block of `markdown`, with the file each marker names; an
/// error for a marker that no block follows.
fn blocks(markdown: &str) -> Result<Vec<Block>, String> {
    let mut found = Vec::new();
    let mut marker: Option<(usize, String)> = None;
    let mut open: Option<(usize, Block)> = None;
    for (i, line) in markdown.lines().enumerate() {
        let trimmed = line.trim();
        if let Some((indent, block)) = open.as_mut() {
            if trimmed == "```" {
                found.extend(open.take().map(|(_, b)| b));
            } else {
                // Up to the fence's indentation comes off, as Markdown has it.
                let spaces = line.len() - line.trim_start_matches(' ').len();
                block.lines.push(line[spaces.min(*indent)..].to_string());
            }
            continue;
        }
        if let Some(fence) = trimmed.strip_prefix("```") {
            let source = marker.take().map(|(_, path)| path);
            let block = Block {
                line: i + 1,
                lang: fence.trim().to_string(),
                source,
                lines: Vec::new(),
            };
            open = Some((line.len() - line.trim_start().len(), block));
        } else if let Some(path) = trimmed
            .strip_prefix(MARKER.0)
            .and_then(|rest| rest.strip_suffix(MARKER.1))
        {
            marker = Some((i + 1, path.trim().to_string()));
        } else if let (Some((at, _)), false) = (&marker, trimmed.is_empty()) {
            return Err(format!("{TUTORIAL}:{at}: no code block follows the marker"));
        }
    }
    match (open, marker) {
        (Some((_, b)), _) => Err(format!("{TUTORIAL}:{}: a block never closed", b.line)),
        (_, Some((at, _))) => Err(format!("{TUTORIAL}:{at}: no code block follows the marker")),
        (None, None) => Ok(found),
    }
}

/// Whether `line` stands for lines left out.
fn elided(line: &str) -> bool {
    let t = line.trim_start();
    t.starts_with("// ...") || t.starts_with("# ...")
}

/// Checks that `shown` is an excerpt of `file`: its lines that are
/// neither blank nor an elision are lines of `file`, in the same order and
/// all with the same indentation taken off, and lines shown one after the
/// other follow each other in `file` too (blank lines aside) unless an
/// elision stands between them. Says which line is not, if one is not.
fn excerpt_of(shown: &[String], file: &str) -> Result<(), String> {
    // The runs of lines shown together, split where the block elides.
    let mut runs: Vec<Vec<&str>> = vec![Vec::new()];
    for line in shown.iter().map(|l| l.trim_end()) {
        if elided(line) {
            runs.push(Vec::new());
        } else if !line.is_empty() {
            runs.last_mut().into_iter().for_each(|run| run.push(line));
        }
    }
    runs.retain(|run| !run.is_empty());
    let Some(first) = runs.first().map(|run| run[0]) else {
        return Err("the block shows no line".to_string());
    };
    let lines: Vec<(usize, &str)> = file
        .lines()
        .map(str::trim_end)
        .enumerate()
        .filter(|(_, l)| !l.is_empty())
        .collect();
    // What the start that got furthest says: how far, and why it stopped.
    let mut best: Option<(usize, String)> = None;
    for (start, (_, line)) in lines.iter().enumerate() {
        match line.strip_suffix(first) {
            Some(indent) if indent.bytes().all(|b| b == b' ') => {
                match place(&runs, &lines, start, indent) {
                    Ok(()) => return Ok(()),
                    Err((got, why)) if best.as_ref().is_none_or(|(b, _)| got > *b) => {
                        best = Some((got, why));
                    }
                    Err(_) => {}
                }
            }
            _ => {}
        }
    }
    Err(best.map_or_else(|| format!("`{first}` is not in it"), |(_, why)| why))
}

/// Places each of `runs` in `lines` (the file's lines that are not blank),
/// the first at `start`, each later one at the first place after the one
/// before, every line with `indent` before it. Otherwise, how many lines
/// were placed and which one could not be.
fn place(
    runs: &[Vec<&str>],
    lines: &[(usize, &str)],
    start: usize,
    indent: &str,
) -> Result<(), (usize, String)> {
    // How many lines of `run` match from `at` on.
    let prefix = |run: &[&str], at: usize| {
        run.iter()
            .zip(lines.get(at..).unwrap_or_default())
            .take_while(|(want, (_, line))| line.strip_prefix(indent) == Some(**want))
            .count()
    };
    let mut placed = 0;
    let mut next = start;
    for (i, run) in runs.iter().enumerate() {
        let candidates = if i == 0 {
            start..start + 1
        } else {
            next..lines.len()
        };
        let (got, at) = candidates
            .map(|at| (prefix(run, at), at))
            .max_by_key(|&(got, at)| (got, std::cmp::Reverse(at)))
            .unwrap_or((0, next));
        if got == run.len() {
            placed += got;
            next = at + got;
            continue;
        }
        let why = match (got, lines.get(at + got)) {
            (0, _) => format!(
                "`{}` is not in it after line {}",
                run[0],
                lines.get(next.saturating_sub(1)).map_or(0, |(n, _)| n + 1)
            ),
            (_, Some((n, line))) => format!(
                "`{}` is not line {} (`{}`): changed, or lines left out without a `// ...`",
                run[got],
                n + 1,
                line.trim()
            ),
            (_, None) => format!("`{}` is past the end", run[got]),
        };
        return Err((placed + got, why));
    }
    Ok(())
}

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn tutorial() -> String {
    std::fs::read_to_string(root().join(TUTORIAL)).expect("read docs/tutorial.md")
}

#[test]
fn tutorial_shows_the_source() {
    let blocks = blocks(&tutorial()).unwrap();
    let mut wrong = Vec::new();
    let mut checked = 0;
    for block in &blocks {
        let Some(source) = &block.source else {
            if block.lang == "rust" {
                wrong.push(format!(
                    "{TUTORIAL}:{}: a Rust block without a `<!-- source: PATH -->` marker",
                    block.line
                ));
            }
            continue;
        };
        let file = match std::fs::read_to_string(root().join(source)) {
            Ok(file) => file,
            Err(e) => {
                wrong.push(format!("{TUTORIAL}:{}: {source}: {e}", block.line));
                continue;
            }
        };
        checked += 1;
        if let Err(e) = excerpt_of(&block.lines, &file) {
            wrong.push(format!("{TUTORIAL}:{}: {source}: {e}", block.line));
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
    // Not a pass by finding nothing: the tutorial quotes these at least.
    assert!(checked >= 8, "only {checked} marked blocks found");
}

/// `cargo run --example NAME` in the tutorial runs a file of examples/,
/// which cargo compiles with the tests.
#[test]
fn tutorial_examples_exist() {
    let text = tutorial();
    let words: Vec<&str> = text.split_whitespace().collect();
    let named: BTreeSet<&str> = words
        .windows(2)
        .filter(|pair| pair[0] == "--example")
        .filter_map(|pair| {
            let end = pair[1].find(|c: char| !c.is_alphanumeric() && c != '_');
            pair[1].get(..end.unwrap_or(pair[1].len()))
        })
        .collect();
    assert!(named.len() >= 3, "{named:?}");
    for name in named {
        let path = root().join("examples").join(format!("{name}.rs"));
        assert!(path.is_file(), "{TUTORIAL} runs {}", path.display());
    }
}

fn lines(text: &str) -> Vec<String> {
    text.lines().map(String::from).collect()
}

const FILE: &str = "\
fn main() {
    let a = 1;
    if a > 0 {
        println!(\"{a}\");
    }
    let b = 2;
}
";

#[test]
fn excerpts() {
    let whole = lines(FILE);
    assert_eq!(excerpt_of(&whole, FILE), Ok(()));
    // Lines left out where it says so, and one indentation off the whole
    // block.
    let shortened = lines("if a > 0 {\n    // ... prints it\n}\n\nlet b = 2;");
    assert_eq!(excerpt_of(&shortened, FILE), Ok(()));
    let elided = lines("let a = 1;\n// ...\nlet b = 2;");
    assert_eq!(excerpt_of(&elided, FILE), Ok(()));
    for (shown, why) in [
        ("let a = 2;", "a line changed"),
        ("let b = 2;\n// ...\nlet a = 1;", "out of order"),
        (
            "if a > 0 {\nprintln!(\"{a}\");\n}",
            "a line re-indented alone",
        ),
        ("let a = 1;\nlet b = 2;", "lines left out unsaid"),
        ("// ... nothing else", "nothing shown"),
    ] {
        assert!(excerpt_of(&lines(shown), FILE).is_err(), "{why}");
    }
    let err = excerpt_of(&lines("let a = 1;\nif a > 1 {"), FILE).unwrap_err();
    assert!(err.contains("`if a > 1 {` is not line 3"), "{err}");
    let err = excerpt_of(&lines("let a = 1;\n// ...\nlet c = 3;"), FILE).unwrap_err();
    assert!(
        err.contains("`let c = 3;` is not in it after line 2"),
        "{err}"
    );
}

#[test]
fn markers() {
    let md =
        "text\n<!-- source: src/x.rs -->\n\n  ```rust\n  let x;\n    y\n  ```\n```sh\nls\n```\n";
    let found = blocks(md).unwrap();
    assert_eq!(found.len(), 2);
    assert_eq!(found[0].source.as_deref(), Some("src/x.rs"));
    assert_eq!(found[0].lines, ["let x;", "  y"]);
    assert_eq!(
        (found[1].lang.as_str(), found[1].source.is_none()),
        ("sh", true)
    );
    assert!(blocks("<!-- source: a.rs -->\nprose\n```rust\n```\n").is_err());
    assert!(blocks("```rust\nx\n").is_err());
}
