//! Tidiness of the source tree, checked on every test run (as TigerBeetle's `tidy.zig`):
//! no function outside the tests is longer than `FUNCTION_LINES_MAX` lines, and the documents
//! and comments speak of the project, not of how it was made.

use std::path::{Path, PathBuf};

/// A function spans at most this many lines, from its `fn` line to its closing brace.
const FUNCTION_LINES_MAX: usize = 70;

/// The trees whose Rust files are checked (test files and `#[cfg(test)]` items aside for
/// the function length; their comments are checked too).
const SOURCE_DIRS: [&str; 4] = ["src", "engine", "net", "bench"];

/// The documents whose words are checked.
const DOCUMENTS: [&str; 5] = [
    "README.md",
    "BENCHMARKS.md",
    "perf/README.md",
    "deploy/README.md",
    "engine/FORMAT.md",
];

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Every `.rs` file under `dir`, build output aside, sorted.
fn rust_files(dir: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(dir) = pending.pop() {
        let entries = std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
        for entry in entries {
            let path = entry.unwrap().path();
            if path.is_dir() {
                if path.file_name().is_some_and(|n| n != "target") {
                    pending.push(path);
                }
            } else if path.extension().is_some_and(|e| e == "rs") {
                found.push(path);
            }
        }
    }
    found.sort();
    found
}

/// A test file: under a `tests` directory, or a `tests.rs` module.
fn is_test_file(relative: &Path) -> bool {
    relative.components().any(|c| c.as_os_str() == "tests")
        || relative.file_name().is_some_and(|n| n == "tests.rs")
}

fn relative(path: &Path) -> PathBuf {
    path.strip_prefix(root()).unwrap_or(path).to_path_buf()
}

/// Rust source split in two, byte for byte (newlines kept in both): the code with every
/// comment and literal blanked, and the comments alone.
struct Scanned {
    code: Vec<u8>,
    comments: Vec<u8>,
}

fn scan(source: &str) -> Scanned {
    let bytes = source.as_bytes();
    let mut code = bytes.to_vec();
    let mut comments = bytes.iter().map(|&b| blank(b)).collect::<Vec<u8>>();
    let mut at = 0;
    while at < bytes.len() {
        let (end, is_comment) = match literal_or_comment(bytes, at) {
            Some(found) => found,
            None => {
                at += 1;
                continue;
            }
        };
        if is_comment {
            comments[at..end].copy_from_slice(&bytes[at..end]);
        }
        for byte in &mut code[at..end] {
            *byte = blank(*byte);
        }
        at = end;
    }
    Scanned { code, comments }
}

fn blank(byte: u8) -> u8 {
    if byte == b'\n' { b'\n' } else { b' ' }
}

fn is_ident(byte: u8) -> bool {
    byte.is_ascii_alphanumeric() || byte == b'_'
}

/// A comment, string or character literal starting at `at`: its end, and whether it is a
/// comment.
fn literal_or_comment(bytes: &[u8], at: usize) -> Option<(usize, bool)> {
    let rest = &bytes[at..];
    let after_ident = at > 0 && is_ident(bytes[at - 1]);
    if rest.starts_with(b"//") {
        let end = rest.iter().position(|&b| b == b'\n').unwrap_or(rest.len());
        return Some((at + end, true));
    }
    if rest.starts_with(b"/*") {
        return Some((at + block_comment_len(rest), true));
    }
    if after_ident {
        return None;
    }
    let prefix = match rest {
        [b'b', b'r', ..] | [b'c', b'r', ..] => 2,
        [b'r', ..] => 1,
        _ => 0,
    };
    let hashes = rest[prefix..].iter().take_while(|&&b| b == b'#').count();
    if prefix > 0 && rest.get(prefix + hashes) == Some(&b'"') {
        let open = prefix + hashes + 1;
        let mut close = vec![b'"'];
        close.extend(std::iter::repeat_n(b'#', hashes));
        let end = find(&rest[open..], &close).expect("a raw string ends") + close.len();
        return Some((at + open + end, false));
    }
    let quoted = match rest {
        [b'b' | b'c', b'"', ..] => 1,
        [b'"', ..] => 0,
        [b'b', b'\'', ..] => return Some((at + 1 + char_literal_len(&rest[1..])?, false)),
        [b'\'', ..] => return char_literal_len(rest).map(|len| (at + len, false)),
        _ => return None,
    };
    Some((at + quoted + string_len(&rest[quoted..]), false))
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// Length of a (nested) block comment at the start of `rest`.
fn block_comment_len(rest: &[u8]) -> usize {
    let mut depth = 0;
    let mut i = 0;
    while i < rest.len() {
        if rest[i..].starts_with(b"/*") {
            depth += 1;
            i += 2;
        } else if rest[i..].starts_with(b"*/") {
            depth -= 1;
            i += 2;
            if depth == 0 {
                return i;
            }
        } else {
            i += 1;
        }
    }
    rest.len()
}

/// Length of a `"..."` string at the start of `rest` (escapes skipped).
fn string_len(rest: &[u8]) -> usize {
    let mut i = 1;
    while i < rest.len() && rest[i] != b'"' {
        i += if rest[i] == b'\\' { 2 } else { 1 };
    }
    (i + 1).min(rest.len())
}

/// Length of a character literal at the start of `rest`; None for a lifetime or a label.
fn char_literal_len(rest: &[u8]) -> Option<usize> {
    if rest.get(1) == Some(&b'\\') {
        let close = rest.get(3..)?.iter().position(|&b| b == b'\'')?;
        return Some(close + 4);
    }
    let text = std::str::from_utf8(&rest[1..rest.len().min(6)]).unwrap_or_else(|e| {
        std::str::from_utf8(&rest[1..1 + e.valid_up_to()]).expect("valid prefix")
    });
    let first = text.chars().next()?;
    let len = first.len_utf8();
    (rest.get(1 + len) == Some(&b'\'')).then_some(len + 2)
}

/// The index of the brace closing the one at `open`.
fn matching_brace(code: &[u8], open: usize) -> usize {
    assert_eq!(code[open], b'{');
    let mut depth = 0usize;
    for (i, &b) in code.iter().enumerate().skip(open) {
        match b {
            b'{' => depth += 1,
            b'}' => {
                depth -= 1;
                if depth == 0 {
                    return i;
                }
            }
            _ => {}
        }
    }
    panic!("unbalanced braces from byte {open}");
}

/// Blanks every `#[cfg(test)]` item (a test module, a test-only function).
fn drop_test_items(code: &mut [u8]) {
    let marker = b"#[cfg(test)]";
    let mut from = 0;
    while let Some(found) = find(&code[from..], marker) {
        let start = from + found;
        let mut end = start + marker.len();
        while end < code.len() && code[end] != b'{' && code[end] != b';' {
            end += 1;
        }
        if end < code.len() && code[end] == b'{' {
            end = matching_brace(code, end);
        }
        let end = end.min(code.len() - 1);
        for byte in &mut code[start..=end] {
            *byte = blank(*byte);
        }
        from = end + 1;
    }
}

struct Function {
    name: String,
    line: usize,
    lines: usize,
}

/// Every function with a body in `code` (comments and literals blanked), nested ones too.
fn functions(code: &[u8]) -> Vec<Function> {
    let line_of = |at: usize| code[..at].iter().filter(|&&b| b == b'\n').count() + 1;
    let mut found = Vec::new();
    let mut at = 0;
    while let Some(offset) = find(&code[at..], b"fn ") {
        let start = at + offset;
        at = start + 3;
        if start > 0 && is_ident(code[start - 1]) {
            continue;
        }
        let name_start = at
            + code[at..]
                .iter()
                .take_while(|b| b.is_ascii_whitespace())
                .count();
        let name_len = code[name_start..]
            .iter()
            .take_while(|&&b| is_ident(b))
            .count();
        if name_len == 0 {
            continue;
        }
        let Some(open) = body_start(code, name_start + name_len) else {
            continue;
        };
        let close = matching_brace(code, open);
        let line = line_of(start);
        found.push(Function {
            name: String::from_utf8_lossy(&code[name_start..name_start + name_len]).into(),
            line,
            lines: line_of(close) - line + 1,
        });
    }
    found
}

/// The `{` opening the body of a function whose signature goes on from `from`; None for a
/// declaration without a body (`;`).
fn body_start(code: &[u8], from: usize) -> Option<usize> {
    let mut nesting = 0i32;
    for (i, &b) in code.iter().enumerate().skip(from) {
        match b {
            b'(' | b'[' => nesting += 1,
            b')' | b']' => nesting -= 1,
            b';' if nesting == 0 => return None,
            b'{' if nesting == 0 => return Some(i),
            _ => {}
        }
    }
    None
}

/// Words (lowercase) that speak of how the project was made: alone, or (`NUMBERED_WORDS`)
/// followed by a number.
const MAKING_WORDS: [&str; 7] = [
    "session",
    "sessions",
    "sitting",
    "sittings",
    "yesterday",
    "worktree",
    "worktrees",
];
const NUMBERED_WORDS: [&str; 4] = ["phase", "issue", "ticket", "branch"];

fn is_number(word: &str) -> bool {
    let digits = word.trim_start_matches('#');
    !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit())
}

/// A name made like a branch's (`i`, digits, at most one letter, maybe after `wt-`), not a
/// Rust integer type.
fn is_branch_name(word: &str) -> bool {
    let word = word.strip_prefix("wt-").unwrap_or(word);
    let Some(rest) = word.strip_prefix('i') else {
        return false;
    };
    let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
    let suffix = &rest[digits..];
    let integer_type = ["8", "16", "32", "64", "128"].contains(&rest);
    digits > 0
        && suffix.len() <= 1
        && suffix.bytes().all(|b| b.is_ascii_lowercase())
        && !integer_type
}

/// What in `text` speaks of how the project was made, as `line: words`.
fn making_words(text: &str) -> Vec<String> {
    let mut found = Vec::new();
    for (index, line) in text.lines().enumerate() {
        let words: Vec<String> = line
            .split(|c: char| !(c.is_alphanumeric() || c == '#' || c == '-'))
            .filter(|w| !w.is_empty())
            .map(str::to_lowercase)
            .collect();
        for (i, word) in words.iter().enumerate() {
            let next = words.get(i + 1).map(String::as_str).unwrap_or("");
            let hit = MAKING_WORDS.contains(&word.as_str())
                || (NUMBERED_WORDS.contains(&word.as_str()) && is_number(next))
                || (word == "we" && next == "tried")
                || is_branch_name(word);
            if hit {
                found.push(format!("{}: {word} {next}", index + 1));
            }
        }
    }
    found
}

fn source_files() -> Vec<PathBuf> {
    SOURCE_DIRS
        .iter()
        .flat_map(|dir| rust_files(&root().join(dir)))
        .collect()
}

// Proves no function outside the tests is longer than FUNCTION_LINES_MAX lines: each one
// that is fails the run with its file, line and name.
#[test]
fn functions_are_at_most_70_lines() {
    let mut long = Vec::new();
    let files = source_files();
    assert!(
        files.len() > 50,
        "the scan found only {} files",
        files.len()
    );
    for path in files {
        let relative = relative(&path);
        if is_test_file(&relative) {
            continue;
        }
        let source = std::fs::read_to_string(&path).unwrap();
        let mut code = scan(&source).code;
        drop_test_items(&mut code);
        for function in functions(&code) {
            if function.lines > FUNCTION_LINES_MAX {
                long.push(format!(
                    "{}:{}: fn {} is {} lines",
                    relative.display(),
                    function.line,
                    function.name,
                    function.lines
                ));
            }
        }
    }
    assert!(
        long.is_empty(),
        "functions over {FUNCTION_LINES_MAX} lines:\n{}",
        long.join("\n")
    );
}

// Proves the documents and the comments of the code speak of the project only: a word about
// how it was made fails the run with its file and line.
#[test]
fn documents_and_comments_speak_of_the_project() {
    let mut found = Vec::new();
    for document in DOCUMENTS {
        let text = std::fs::read_to_string(root().join(document)).unwrap();
        found.extend(
            making_words(&text)
                .into_iter()
                .map(|w| format!("{document}:{w}")),
        );
    }
    let test_files = rust_files(&root().join("tests"));
    for path in source_files().into_iter().chain(test_files) {
        let source = std::fs::read_to_string(&path).unwrap();
        let comments = String::from_utf8(scan(&source).comments).expect("comments are UTF-8");
        let relative = relative(&path);
        let hits = making_words(&comments).into_iter();
        found.extend(hits.map(|w| format!("{}:{w}", relative.display())));
    }
    assert!(
        found.is_empty(),
        "words about how the project was made:\n{}",
        found.join("\n")
    );
}

// Proves the scanner itself: comments and literals (raw strings, lifetimes, chars holding a
// brace) do not confuse the brace matching, test items are left out, declarations without a
// body are not functions, and the word check tells the project's words from the others.
#[test]
fn the_checks_see_what_they_should() {
    let source = r####"
fn short() { let _ = "}"; let _ = '{'; let _ = '\''; }
// fn commented() {
fn long<'a>(x: &'a str) -> &'a str {
    let _ = r#"{ "# ;
    /* } */
    x
}
trait T { fn declared(&self); }
#[cfg(test)]
mod tests { fn hidden() {} }
"####;
    let mut code = scan(source).code;
    drop_test_items(&mut code);
    let found: Vec<(String, usize)> = functions(&code)
        .into_iter()
        .map(|f| (f.name, f.lines))
        .collect();
    assert_eq!(
        found,
        vec![("short".to_string(), 1), ("long".to_string(), 5)]
    );
    let comments = String::from_utf8(scan(source).comments).unwrap();
    assert!(comments.contains("fn commented") && !comments.contains("short"));
    assert_eq!(
        making_words("a volume of i64 keys, phase two, issue tracker").len(),
        0
    );
    let made = "as the last sesSion said; Phase 3; issue #12; see wt-i11b; branch i7";
    assert_eq!(making_words(made).len(), 5, "{:?}", making_words(made));
}
