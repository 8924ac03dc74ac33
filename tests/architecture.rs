//! Architecture tests: they read every file under `src/`, walking the folders so that a file is covered the day it is
//! added, and hold the code to the shape ARCHITECTURE.md describes.
//!
//! - [`the_domain_does_no_io_reads_no_clock_and_draws_no_randomness`]: no file of `src/domain/` names tokio, tonic,
//!   prost, `std::fs`, `metrics`, a clock or a random source ([`purity::FORBIDDEN`]).
//! - [`imports_point_down_the_layers`]: every import goes to a file of the same top-level module or of a lower layer
//!   ([`layers::LAYERS`]).
//! - [`no_import_cycle_between_files`]: the graph of imports between the files of `src/` has no cycle.
//!
//! The reader is a small Rust lexer, not a compiler. [`source`] blanks comments and literals, cuts out test items and
//! tokenizes; [`parse`] expands `use` trees and finds the paths written inline; [`tree`] places each file in the module
//! tree; [`resolve`] walks a path to the file that defines its item, following re-exports; [`graph`] finds cycles.
//!
//! Test code is left out of every check: files named `*_tests.rs` or `testkit.rs`, files under a `tests/` folder,
//! modules declared `#[cfg(test)] mod name;` and every item marked `#[cfg(test)]` (the usual `mod tests { .. }`).
//! A test may reach across layers, and a test module's `use super::*` is not a dependency of the code it tests.
//!
//! What the reader does not follow (none of it occurs outside test code today): `#[path]` attributes, `include!`,
//! paths that macros assemble from pieces, and a name that reaches a file only through a glob import of a glob
//! import. A `use` inside a function counts as if it were at the top of its file.

use tree::SourceTree;

#[test]
fn the_domain_does_no_io_reads_no_clock_and_draws_no_randomness() {
    let tree = SourceTree::read_crate();
    assert!(tree.files.keys().any(|path| path.starts_with("domain/")), "found no file under src/domain/");
    let problems = purity::violations(&tree);
    assert!(
        problems.is_empty(),
        "the domain must do no I/O, read no clock and draw no randomness (time and seeds are inputs):\n{}",
        problems.join("\n")
    );
}

#[test]
fn imports_point_down_the_layers() {
    let tree = SourceTree::read_crate();
    let edges = resolve::edges(&tree);
    assert!(!edges.is_empty(), "found no import between the files of src/: the reader is broken");
    let problems = layers::violations(&tree, &edges);
    assert!(
        problems.is_empty(),
        "imports must point down main → server → grpc → auth → engine → {{storage, domain}} (see LAYERS in \
         tests/architecture.rs):\n{}",
        problems.join("\n")
    );
}

#[test]
fn no_import_cycle_between_files() {
    let tree = SourceTree::read_crate();
    let edges = resolve::edges(&tree);
    assert!(!edges.is_empty(), "found no import between the files of src/: the reader is broken");
    let cycles = graph::cycles(&edges);
    assert!(cycles.is_empty(), "the files of src/ import each other in a circle:\n{}", cycles.join("\n"));
}

mod source {
    //! Reading one file of Rust: comments and literals blanked, `#[cfg(test)]` items cut out, then tokens.

    /// An identifier, keyword or number (`$crate` is one token), `::`, or any other single character.
    #[derive(Clone, Debug, PartialEq, Eq)]
    pub(crate) struct Token {
        /// The characters of the token.
        pub(crate) text: String,
        /// The line it is on, from 1.
        pub(crate) line: usize,
        /// Index of its first character in the file's characters.
        start: usize,
        /// Index just past its last character.
        end: usize,
    }

    /// The code of one file, without comments, literals and test items.
    pub(crate) struct Code {
        /// The text with comments, literals and test items blanked to spaces; newlines are kept, so lines still count.
        pub(crate) text: String,
        /// The tokens of what is left.
        pub(crate) tokens: Vec<Token>,
        /// Names of the child modules declared `#[cfg(test)] mod name;`.
        pub(crate) test_modules: Vec<String>,
        /// The file opens with `#![cfg(test)]`.
        pub(crate) test_only: bool,
    }

    /// Reads the code of one file.
    pub(crate) fn read(text: &str) -> Code {
        const TEST_ITEM: [&str; 7] = ["#", "[", "cfg", "(", "test", ")", "]"];
        const TEST_FILE: [&str; 8] = ["#", "!", "[", "cfg", "(", "test", ")", "]"];
        let mut characters = blank_comments_and_literals(text);
        let tokens = tokenize(&characters);
        let mut code = Code { text: String::new(), tokens: Vec::new(), test_modules: Vec::new(), test_only: false };
        let mut index = 0;
        while index < tokens.len() {
            code.test_only |= starts_with(&tokens[index..], &TEST_FILE);
            if starts_with(&tokens[index..], &TEST_ITEM) {
                let end = item_end(&tokens, index + TEST_ITEM.len());
                code.test_modules.extend(declared_module(&tokens[index + TEST_ITEM.len()..end]));
                blank(&mut characters, tokens[index].start, tokens[end - 1].end);
                index = end;
            } else {
                code.tokens.push(tokens[index].clone());
                index += 1;
            }
        }
        code.text = characters.into_iter().collect();
        code
    }

    /// Whether a character may be part of an identifier or a number.
    pub(crate) fn is_identifier_character(character: char) -> bool {
        character.is_alphanumeric() || character == '_'
    }

    /// The characters of `text`, with every comment and string, byte-string or character literal turned to spaces.
    fn blank_comments_and_literals(text: &str) -> Vec<char> {
        let mut characters: Vec<char> = text.chars().collect();
        let mut index = 0;
        while index < characters.len() {
            match comment_or_literal_end(&characters, index) {
                Some(end) => {
                    blank(&mut characters, index, end);
                    index = end;
                }
                None => index += 1,
            }
        }
        characters
    }

    /// Where the comment or literal that starts at `index` ends (exclusive), or `None` if none starts there.
    fn comment_or_literal_end(characters: &[char], index: usize) -> Option<usize> {
        let follows_identifier = index > 0 && is_identifier_character(characters[index - 1]);
        match (characters[index], characters.get(index + 1)) {
            ('/', Some('/')) => Some(find(characters, index, '\n').unwrap_or(characters.len())),
            ('/', Some('*')) => Some(block_comment_end(characters, index)),
            ('"', _) => Some(string_end(characters, index + 1)),
            ('\'', _) => character_literal_end(characters, index),
            ('r' | 'b' | 'c', _) if !follows_identifier => prefixed_literal_end(characters, index),
            _ => None,
        }
    }

    /// The end of a block comment starting at `index`; block comments nest.
    fn block_comment_end(characters: &[char], index: usize) -> usize {
        let mut depth = 0;
        let mut cursor = index;
        while cursor + 1 < characters.len() {
            match (characters[cursor], characters[cursor + 1]) {
                ('/', '*') => depth += 1,
                ('*', '/') => depth -= 1,
                _ => {
                    cursor += 1;
                    continue;
                }
            }
            cursor += 2;
            if depth == 0 {
                return cursor;
            }
        }
        characters.len()
    }

    /// The end of a string whose contents start at `from`, honouring backslash escapes.
    fn string_end(characters: &[char], from: usize) -> usize {
        let mut cursor = from;
        while cursor < characters.len() {
            match characters[cursor] {
                '\\' => cursor += 2,
                '"' => return cursor + 1,
                _ => cursor += 1,
            }
        }
        characters.len()
    }

    /// The end of a character literal at `index`, or `None` when the quote starts a lifetime (`'a`).
    fn character_literal_end(characters: &[char], index: usize) -> Option<usize> {
        match (characters.get(index + 1), characters.get(index + 2)) {
            (Some('\\'), _) => find(characters, index + 3, '\'').map(|end| end + 1),
            (Some(_), Some('\'')) => Some(index + 3),
            _ => None,
        }
    }

    /// The end of `b"…"`, `b'…'`, `c"…"`, `r"…"`, `r#"…"#` or `br#"…"#` at `index`, or `None` for an identifier.
    fn prefixed_literal_end(characters: &[char], index: usize) -> Option<usize> {
        let cursor = if matches!(characters[index], 'b' | 'c') { index + 1 } else { index };
        match characters.get(cursor) {
            Some('\'') if cursor > index => character_literal_end(characters, cursor),
            Some('"') if cursor > index => Some(string_end(characters, cursor + 1)),
            Some('r') => raw_string_end(characters, cursor + 1),
            _ => None,
        }
    }

    /// The end of a raw string whose hashes start at `from`, or `None` when no quote follows them (`r#ident`).
    fn raw_string_end(characters: &[char], from: usize) -> Option<usize> {
        let hashes = characters[from..].iter().take_while(|&&character| character == '#').count();
        if characters.get(from + hashes) != Some(&'"') {
            return None;
        }
        let closing: Vec<char> = std::iter::once('"').chain(std::iter::repeat_n('#', hashes)).collect();
        let body = from + hashes + 1;
        let end = characters[body..].windows(closing.len()).position(|window| window == closing.as_slice());
        Some(end.map_or(characters.len(), |offset| body + offset + closing.len()))
    }

    /// Splits blanked text into tokens, counting lines.
    fn tokenize(characters: &[char]) -> Vec<Token> {
        let mut tokens = Vec::new();
        let mut line = 1;
        let mut index = 0;
        while index < characters.len() {
            let character = characters[index];
            if character.is_whitespace() {
                line += usize::from(character == '\n');
                index += 1;
                continue;
            }
            let next = characters.get(index + 1).copied();
            let end = if is_identifier_character(character)
                || (character == '$' && next.is_some_and(is_identifier_character))
            {
                index + 1 + characters[index + 1..].iter().take_while(|&&next| is_identifier_character(next)).count()
            } else if character == ':' && next == Some(':') {
                index + 2
            } else {
                index + 1
            };
            tokens.push(Token { text: characters[index..end].iter().collect(), line, start: index, end });
            index = end;
        }
        tokens
    }

    /// The end (exclusive token index) of the item that starts at `from`: its `;`, or its matching `}`.
    fn item_end(tokens: &[Token], from: usize) -> usize {
        let mut index = skip_attributes(tokens, from);
        let mut depth = 0_usize;
        while index < tokens.len() {
            match tokens[index].text.as_str() {
                "(" | "[" => depth += 1,
                ")" | "]" => depth = depth.saturating_sub(1),
                ";" if depth == 0 => return index + 1,
                "{" if depth == 0 => return matching(tokens, index, "{", "}") + 1,
                _ => {}
            }
            index += 1;
        }
        tokens.len()
    }

    /// The name in `mod name;` (after attributes and visibility), if the item is one.
    fn declared_module(item: &[Token]) -> Option<String> {
        let mut index = skip_attributes(item, 0);
        if item.get(index).is_some_and(|token| token.text == "pub") {
            index += 1;
            if item.get(index).is_some_and(|token| token.text == "(") {
                index = matching(item, index, "(", ")") + 1;
            }
        }
        match item.get(index..index + 3) {
            Some([keyword, name, end]) if keyword.text == "mod" && end.text == ";" => Some(name.text.clone()),
            _ => None,
        }
    }

    /// The index of the first token after the `#[…]` attributes that start at `from`.
    fn skip_attributes(tokens: &[Token], from: usize) -> usize {
        let mut index = from;
        while starts_with(&tokens[index.min(tokens.len())..], &["#", "["]) {
            index = matching(tokens, index + 1, "[", "]") + 1;
        }
        index
    }

    /// The index of the token that closes the one at `open_index`, or the last token if none does.
    fn matching(tokens: &[Token], open_index: usize, open: &str, close: &str) -> usize {
        let mut depth = 0_usize;
        for (index, token) in tokens.iter().enumerate().skip(open_index) {
            if token.text == open {
                depth += 1;
            } else if token.text == close {
                depth -= 1;
                if depth == 0 {
                    return index;
                }
            }
        }
        tokens.len() - 1
    }

    fn starts_with(tokens: &[Token], texts: &[&str]) -> bool {
        tokens.len() >= texts.len() && tokens.iter().zip(texts).all(|(token, text)| token.text == *text)
    }

    fn find(characters: &[char], from: usize, wanted: char) -> Option<usize> {
        characters.get(from..)?.iter().position(|&character| character == wanted).map(|offset| from + offset)
    }

    /// Turns the characters in `start..end` to spaces, keeping newlines.
    fn blank(characters: &mut [char], start: usize, end: usize) {
        let end = end.min(characters.len());
        for character in &mut characters[start..end] {
            if *character != '\n' {
                *character = ' ';
            }
        }
    }
}

mod parse {
    //! The paths a file names: the leaves of its `use` trees, and the paths written inline in the rest of its code.

    use super::source::{Token, is_identifier_character};

    /// One leaf of a `use` tree.
    #[derive(Clone, Debug, PartialEq, Eq)]
    pub(crate) struct Import {
        /// The segments, as written (`["super", "book", "BookRules"]`); for a glob, the path before `*`. A leading
        /// `::` (an external crate) is kept as a `::` segment.
        pub(crate) path: Vec<String>,
        /// The name the import binds in its file: the last segment or the `as` name; `None` for a glob or `as _`.
        pub(crate) binding: Option<String>,
        /// `use path::*`.
        pub(crate) glob: bool,
        /// The line of the leaf.
        pub(crate) line: usize,
    }

    /// A path of two or more segments written in code, such as `crate::domain::command::Command::Hold`.
    #[derive(Clone, Debug, PartialEq, Eq)]
    pub(crate) struct Reference {
        /// The segments, generic arguments left out.
        pub(crate) path: Vec<String>,
        /// The line it starts on.
        pub(crate) line: usize,
    }

    /// The imports of a file and the paths written in the rest of its code.
    pub(crate) fn paths(tokens: &[Token]) -> (Vec<Import>, Vec<Reference>) {
        let mut imports = Vec::new();
        let mut references = Vec::new();
        let mut index = 0;
        while index < tokens.len() {
            if tokens[index].text == "use" && !follows_path_separator(tokens, index) {
                index = parse_use(tokens, index + 1, &mut imports);
            } else if let Some((reference, end)) = inline_path(tokens, index) {
                references.push(reference);
                index = end;
            } else {
                index += 1;
            }
        }
        (imports, references)
    }

    /// Parses the use tree that starts at `from`; returns the index after its `;`.
    fn parse_use(tokens: &[Token], from: usize, imports: &mut Vec<Import>) -> usize {
        let mut parser = UseTree { tokens, position: from, imports };
        parser.tree(&mut Vec::new());
        let rest = &tokens[parser.position.min(tokens.len())..];
        parser.position + rest.iter().position(|token| token.text == ";").map_or(rest.len(), |offset| offset + 1)
    }

    /// The path starting at `index` if one does (an identifier not after `::`, then `::` and an identifier), with the
    /// index after it.
    fn inline_path(tokens: &[Token], index: usize) -> Option<(Reference, usize)> {
        if !is_identifier(&tokens[index].text) || follows_path_separator(tokens, index) {
            return None;
        }
        let mut path = vec![tokens[index].text.clone()];
        let mut end = index + 1;
        while let Some([separator, segment]) = tokens.get(end..end + 2) {
            if separator.text != "::" || !is_identifier(&segment.text) {
                break;
            }
            path.push(segment.text.clone());
            end += 2;
        }
        (path.len() > 1).then(|| (Reference { path, line: tokens[index].line }, end))
    }

    /// A recursive-descent reader of one use tree: `path::{tree, tree as name, self, *}`.
    struct UseTree<'a> {
        tokens: &'a [Token],
        position: usize,
        imports: &'a mut Vec<Import>,
    }

    impl<'a> UseTree<'a> {
        /// Reads one tree below `prefix`: segments joined by `::`, ending in a leaf name, `*` or a `{…}` group. Pushes
        /// an import per leaf; `prefix` is as it was on return.
        fn tree(&mut self, prefix: &mut Vec<String>) {
            let depth = prefix.len();
            if self.peek() == Some("::") {
                prefix.push("::".to_owned());
                self.position += 1;
            }
            while let Some(segment) = self.peek().filter(|text| is_identifier(text)) {
                prefix.push(segment.to_owned());
                self.position += 1;
                if self.peek() != Some("::") {
                    self.leaf(prefix);
                    prefix.truncate(depth);
                    return;
                }
                self.position += 1;
            }
            match self.peek() {
                Some("{") => {
                    self.position += 1;
                    self.list(prefix);
                }
                Some("*") => {
                    self.position += 1;
                    self.push(prefix.clone(), None, true);
                }
                _ => {}
            }
            prefix.truncate(depth);
        }

        /// Reads the trees of a `{…}` group, up to and including its `}`.
        fn list(&mut self, prefix: &mut Vec<String>) {
            while let Some(text) = self.peek() {
                match text {
                    "}" => {
                        self.position += 1;
                        return;
                    }
                    ";" => return,
                    "," => self.position += 1,
                    _ => {
                        let before = self.position;
                        self.tree(prefix);
                        self.position = self.position.max(before + 1);
                    }
                }
            }
        }

        /// Pushes the import that ends at `path`, with its `as` name if one follows; `a::{self}` imports `a`.
        fn leaf(&mut self, path: &[String]) {
            let mut path = path.to_vec();
            if path.last().is_some_and(|last| last == "self") {
                path.pop();
            }
            let mut binding = path.last().cloned();
            if self.peek() == Some("as") {
                binding = self.tokens.get(self.position + 1).map(|token| token.text.clone()).filter(|name| name != "_");
                self.position += 2;
            }
            self.push(path, binding, false);
        }

        /// Records an import at the line of the token just read.
        fn push(&mut self, path: Vec<String>, binding: Option<String>, glob: bool) {
            let line = self.tokens[self.position - 1].line;
            self.imports.push(Import { path, binding, glob, line });
        }

        fn peek(&self) -> Option<&'a str> {
            self.tokens.get(self.position).map(|token| token.text.as_str())
        }
    }

    fn is_identifier(text: &str) -> bool {
        text.chars().next().is_some_and(|first| first == '$' || first == '_' || first.is_alphabetic())
            && text.chars().skip(1).all(is_identifier_character)
    }

    fn follows_path_separator(tokens: &[Token], index: usize) -> bool {
        index > 0 && tokens[index - 1].text == "::"
    }
}

mod tree {
    //! The files of `src/`: where each sits in the module tree, what it names, and which are test code.

    use super::parse::{self, Import, Reference};
    use super::source::{self, Token};
    use std::collections::{BTreeMap, BTreeSet};
    use std::path::Path;

    /// The crate a file belongs to: the library (rooted in `lib.rs`) or a binary (rooted in `main.rs`).
    #[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
    pub(crate) enum CrateRoot {
        /// `src/lib.rs` and the modules below it.
        Library,
        /// A binary, named by its root file; its modules are not followed (`main.rs` declares none).
        Binary(String),
    }

    /// One file of `src/`, read.
    pub(crate) struct SourceFile {
        /// The path below `src/`, with `/` between folders: `domain/book.rs`.
        pub(crate) path: String,
        /// The crate it belongs to.
        pub(crate) root: CrateRoot,
        /// The module it is, from its crate root: `["domain", "book"]`; empty for a crate root.
        pub(crate) module: Vec<String>,
        /// Test code: left out of every check.
        pub(crate) test_only: bool,
        /// The text without comments, literals and test items, lines kept.
        pub(crate) code: String,
        /// The leaves of its `use` declarations.
        pub(crate) imports: Vec<Import>,
        /// The paths written inline in its code.
        pub(crate) references: Vec<Reference>,
        /// The names of the items it defines (`fn`, `struct`, `enum`, `mod`, …).
        pub(crate) defined: BTreeSet<String>,
    }

    /// Every file of `src/`, by path.
    pub(crate) struct SourceTree {
        /// The library's name as code spells it (`antrean`), which binaries use in place of `crate`.
        pub(crate) crate_name: String,
        /// The files, by path below `src/`.
        pub(crate) files: BTreeMap<String, SourceFile>,
    }

    impl SourceTree {
        /// Reads every `.rs` file under this package's `src/`.
        pub(crate) fn read_crate() -> Self {
            let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
            let mut sources = Vec::new();
            collect(&root, &root, &mut sources);
            Self::from_sources(&env!("CARGO_PKG_NAME").replace('-', "_"), sources)
        }

        /// Builds the tree from `(path below src/, text)` pairs.
        pub(crate) fn from_sources(crate_name: &str, sources: impl IntoIterator<Item = (String, String)>) -> Self {
            let mut files = BTreeMap::new();
            let mut test_modules = BTreeSet::new();
            for (path, text) in sources {
                let code = source::read(&text);
                let (root, module) = place(&path);
                test_modules.extend(code.test_modules.iter().map(|name| (root.clone(), child(&module, name))));
                let (imports, references) = parse::paths(&code.tokens);
                let test_only = code.test_only || is_test_file_name(&path);
                let defined = defined_names(&code.tokens);
                let file = SourceFile {
                    path: path.clone(),
                    root,
                    module,
                    test_only,
                    code: code.text,
                    imports,
                    references,
                    defined,
                };
                files.insert(path, file);
            }
            for file in files.values_mut() {
                let mut prefixes =
                    (1..=file.module.len()).map(|length| (file.root.clone(), file.module[..length].to_vec()));
                file.test_only |= prefixes.any(|prefix| test_modules.contains(&prefix));
            }
            Self { crate_name: crate_name.to_owned(), files }
        }

        /// The file of a module: `name.rs` or `name/mod.rs` below the library root; a binary's root file.
        pub(crate) fn module_file(&self, root: &CrateRoot, module: &[String]) -> Option<&SourceFile> {
            match root {
                CrateRoot::Binary(path) => self.files.get(path).filter(|_| module.is_empty()),
                CrateRoot::Library if module.is_empty() => self.files.get("lib.rs"),
                CrateRoot::Library => {
                    let base = module.join("/");
                    [format!("{base}.rs"), format!("{base}/mod.rs")]
                        .iter()
                        .filter_map(|path| self.files.get(path))
                        .find(|file| file.root == CrateRoot::Library)
                }
            }
        }

        /// Whether `module` is a module with a file of its own.
        pub(crate) fn is_module(&self, root: &CrateRoot, module: &[String]) -> bool {
            self.module_file(root, module).is_some()
        }
    }

    /// `module` followed by `name`.
    pub(crate) fn child(module: &[String], name: &str) -> Vec<String> {
        let mut child = module.to_vec();
        child.push(name.to_owned());
        child
    }

    /// The crate and module a file is, from its path: `lib.rs` and `main.rs` are roots, `a/mod.rs` is `a`.
    fn place(path: &str) -> (CrateRoot, Vec<String>) {
        if path == "main.rs" || path.starts_with("bin/") {
            return (CrateRoot::Binary(path.to_owned()), Vec::new());
        }
        if path == "lib.rs" {
            return (CrateRoot::Library, Vec::new());
        }
        let mut module: Vec<String> = path.trim_end_matches(".rs").split('/').map(str::to_owned).collect();
        if module.last().is_some_and(|last| last == "mod") {
            module.pop();
        }
        (CrateRoot::Library, module)
    }

    /// Test code by its name: `*_tests.rs`, `testkit.rs`, or anything under a `tests/` folder.
    fn is_test_file_name(path: &str) -> bool {
        let (folders, name) = path.rsplit_once('/').unwrap_or(("", path));
        name.ends_with("_tests.rs") || name == "testkit.rs" || folders.split('/').any(|folder| folder == "tests")
    }

    /// The names that follow an item keyword (`fn name`, `struct name`, …, `macro_rules! name`).
    fn defined_names(tokens: &[Token]) -> BTreeSet<String> {
        const ITEM_KEYWORDS: [&str; 9] = ["fn", "struct", "enum", "union", "trait", "type", "const", "static", "mod"];
        let mut names = BTreeSet::new();
        for (index, token) in tokens.iter().enumerate() {
            let name = if ITEM_KEYWORDS.contains(&token.text.as_str()) {
                tokens.get(index + 1)
            } else if token.text == "macro_rules" {
                tokens.get(index + 2)
            } else {
                None
            };
            names.extend(name.map(|name| name.text.clone()));
        }
        names
    }

    /// Adds `(path below root, text)` for every `.rs` file under `folder`.
    fn collect(root: &Path, folder: &Path, sources: &mut Vec<(String, String)>) {
        let entries = std::fs::read_dir(folder).unwrap_or_else(|error| panic!("read {}: {error}", folder.display()));
        let mut paths: Vec<_> = entries.map(|entry| entry.expect("folder entry").path()).collect();
        paths.sort();
        for path in paths {
            if path.is_dir() {
                collect(root, &path, sources);
            } else if path.extension().is_some_and(|extension| extension == "rs") {
                let text =
                    std::fs::read_to_string(&path).unwrap_or_else(|error| panic!("read {}: {error}", path.display()));
                let relative = path.strip_prefix(root).expect("below src/");
                let parts: Vec<_> = relative.components().map(|part| part.as_os_str().to_string_lossy()).collect();
                sources.push((parts.join("/"), text));
            }
        }
    }
}

mod resolve {
    //! From a path a file names to the file that defines the item, and from there to the edges of the import graph.
    //!
    //! A path starts at its crate root (`crate::`, or the library's name in a binary), at the file's module (`self::`)
    //! or its parent (`super::`), at a child module of the file (`child::x`), or at the path a `use` of the file bound
    //! to its first name; any other start is outside the crate (std, tokio, a local enum). From there each segment that
    //! names a child module with a file (`x.rs` or `x/mod.rs`) descends. The first segment that does not is an item of
    //! the module reached: if that module's file binds the name with a `use` (a re-export such as `pub use
    //! child::Item`, or a glob `pub use child::*` whose module has the name), the bound path is followed from there;
    //! otherwise the module's file defines it.

    use super::tree::{CrateRoot, SourceFile, SourceTree, child};
    use std::collections::BTreeSet;

    /// Where a path leads.
    #[derive(Clone, Debug, PartialEq, Eq)]
    pub(crate) enum Target {
        /// An item defined in this file.
        File(String),
        /// A module as a whole (`use crate::domain;`, or the module of a glob), by its file.
        Module(String),
        /// Outside the crate, or not a path the reader follows.
        Outside,
    }

    /// An import of one file by another: a graph edge with the path that makes it.
    #[derive(Clone, Debug, PartialEq, Eq)]
    pub(crate) struct Edge {
        /// The importing file.
        pub(crate) from: String,
        /// The file that defines what it imports.
        pub(crate) to: String,
        /// The line of the import in `from`.
        pub(crate) line: usize,
        /// The import as written: `use crate::grpc::status::auth_status`, or an inline `crate::limits::SHARD_COUNT`.
        pub(crate) written: String,
    }

    /// How many bindings and re-exports one resolution follows before it gives up (a `use` may name itself).
    const FOLLOWED_MAX: usize = 16;

    /// Where `path`, named in `file`, leads.
    pub(crate) fn resolve(tree: &SourceTree, file: &SourceFile, path: &[String]) -> Target {
        resolve_from(tree, file, path, 0)
    }

    /// The edges of the import graph: for every file that is not test code, each import and inline path that leads to
    /// an item of another file, or a glob over another file's module. A module imported by name is no edge of its
    /// own: the paths written through that name are. Each `(from, to, written)` appears once.
    pub(crate) fn edges(tree: &SourceTree) -> Vec<Edge> {
        let mut edges = Vec::new();
        let mut seen = BTreeSet::new();
        for file in tree.files.values().filter(|file| !file.test_only) {
            let imports = file.imports.iter().map(|import| (&import.path, import.glob, import.line, "use "));
            let references = file.references.iter().map(|reference| (&reference.path, false, reference.line, ""));
            for (path, glob, line, keyword) in imports.chain(references) {
                let to = match resolve(tree, file, path) {
                    Target::File(to) => to,
                    Target::Module(to) if glob => to,
                    Target::Module(_) | Target::Outside => continue,
                };
                let written = format!("{keyword}{}{}", path.join("::"), if glob { "::*" } else { "" });
                let new = seen.insert((file.path.clone(), to.clone(), written.clone()));
                if new && to != file.path && !tree.files[&to].test_only {
                    edges.push(Edge { from: file.path.clone(), to, line, written });
                }
            }
        }
        edges
    }

    /// Resolves `path` as named in `file`, having followed `followed` bindings so far.
    fn resolve_from(tree: &SourceTree, file: &SourceFile, path: &[String], followed: usize) -> Target {
        let Some(first) = path.first() else { return Target::Outside };
        if followed > FOLLOWED_MAX {
            return Target::Outside;
        }
        let start = match first.as_str() {
            "crate" | "$crate" => (file.root.clone(), Vec::new()),
            "self" => (file.root.clone(), file.module.clone()),
            "super" => (file.root.clone(), file.module[..file.module.len().saturating_sub(1)].to_vec()),
            name if name == tree.crate_name => (CrateRoot::Library, Vec::new()),
            name if tree.is_module(&file.root, &child(&file.module, name)) => {
                (file.root.clone(), child(&file.module, name))
            }
            name => {
                return match binding(tree, file, name, followed) {
                    Some(bound) => resolve_from(tree, file, &[bound, path[1..].to_vec()].concat(), followed + 1),
                    None => Target::Outside,
                };
            }
        };
        walk(tree, start, &path[1..], followed)
    }

    /// Walks `rest` down from `module`: through child modules, then to the item the first other segment names.
    fn walk(tree: &SourceTree, start: (CrateRoot, Vec<String>), rest: &[String], followed: usize) -> Target {
        let (root, mut module) = start;
        for (index, segment) in rest.iter().enumerate() {
            match segment.as_str() {
                "self" => {}
                "super" => {
                    module.pop();
                }
                name if tree.is_module(&root, &child(&module, name)) => module.push(name.to_owned()),
                name => {
                    let Some(owner) = tree.module_file(&root, &module) else { return Target::Outside };
                    return match binding(tree, owner, name, followed) {
                        Some(bound) => {
                            resolve_from(tree, owner, &[bound, rest[index + 1..].to_vec()].concat(), followed + 1)
                        }
                        None => Target::File(owner.path.clone()),
                    };
                }
            }
        }
        tree.module_file(&root, &module).map_or(Target::Outside, |owner| Target::Module(owner.path.clone()))
    }

    /// The path that `name` stands for in `file` when one of its `use` declarations binds it: by name, or by a glob
    /// over a module that defines or binds it. `None` when the file defines the name itself or does not know it.
    fn binding(tree: &SourceTree, file: &SourceFile, name: &str, followed: usize) -> Option<Vec<String>> {
        let named = file.imports.iter().find(|import| !import.glob && import.binding.as_deref() == Some(name));
        if let Some(import) = named {
            return Some(import.path.clone());
        }
        if file.defined.contains(name) {
            return None;
        }
        file.imports.iter().filter(|import| import.glob).find_map(|import| {
            let Target::Module(target) = resolve_from(tree, file, &import.path, followed + 1) else { return None };
            let owner = &tree.files[&target];
            let knows = owner.defined.contains(name)
                || owner.imports.iter().any(|bound| bound.binding.as_deref() == Some(name));
            knows.then(|| [import.path.clone(), vec![name.to_owned()]].concat())
        })
    }
}

mod layers {
    //! The layers of the crate, and the imports that run back up them.

    use super::resolve::Edge;
    use super::tree::SourceTree;

    /// One top-level module of `src/` (`grpc` for `src/grpc/**`, `server` for `src/server.rs`) and its rank.
    pub(crate) struct Layer {
        /// The top-level module.
        pub(crate) module: &'static str,
        /// A file may import files of its own module and of modules of a lower rank. Modules of one rank are
        /// siblings: neither may import the other.
        pub(crate) rank: u8,
    }

    /// Every top-level module, from the top down. A new top-level module fails the check until it is placed here.
    pub(crate) const LAYERS: &[Layer] = &[
        // The library root declares the modules (`mod x;` is no import); nothing may import from it.
        Layer { module: "lib", rank: 9 },
        // The binary: flags, configuration, tracing, the metrics exporter, signals, then `server::run`.
        Layer { module: "main", rank: 8 },
        // Wiring: builds the engine, the gRPC services and their layers, and runs them until shutdown.
        Layer { module: "server", rank: 7 },
        // Thin tonic handlers. The demo release, called by the wiring, sits beside them.
        Layer { module: "grpc", rank: 6 },
        Layer { module: "demo", rank: 6 },
        // A published draw as a JSON file (fetched with the generated client, verified with the domain's algorithm),
        // for the binary's `get-draw` and `verify-draw`.
        Layer { module: "draw_file", rank: 6 },
        // `config` names domain, storage, auth and tls types to validate the settings, so it ranks above them;
        // only server and main read it. `proto`, the generated API, is for grpc and above.
        Layer { module: "config", rank: 5 },
        Layer { module: "proto", rank: 5 },
        // Callers and transport security: below grpc, above the engine.
        Layer { module: "auth", rank: 4 },
        Layer { module: "tls", rank: 4 },
        // The one thing the gRPC layer calls: validate, apply, log, await durability, reply.
        Layer { module: "engine", rank: 3 },
        // Metric names, for the engine and above; it implements storage's `WalObserver`, so it ranks above storage.
        Layer { module: "metrics", rank: 2 },
        // The cluster log on NATS JetStream (office logs, leases): it frames records as storage does and names
        // offices, so it sits above both; the engine or the wiring above may use it.
        Layer { module: "cluster", rank: 2 },
        // The two foundations, each unaware of the other: the pure domain and the byte-level storage.
        Layer { module: "domain", rank: 1 },
        Layer { module: "storage", rank: 1 },
        // Named maxima: a leaf that anyone may import.
        Layer { module: "limits", rank: 0 },
        // The tower plumbing every server layer shares (auth's and grpc's): knows nothing of the crate.
        Layer { module: "call_layer", rank: 0 },
    ];

    /// One line per file that has no layer and per import that runs up the layers or across to a sibling.
    pub(crate) fn violations(tree: &SourceTree, edges: &[Edge]) -> Vec<String> {
        let unplaced = tree.files.values().filter(|file| !file.test_only && layer(&file.path).is_none());
        let mut problems: Vec<String> = unplaced
            .map(|file| {
                let module = top_module(&file.path);
                format!("{}: the top-level module `{module}` has no layer: give it a rank in LAYERS", file.path)
            })
            .collect();
        for edge in edges {
            let (Some(from), Some(to)) = (layer(&edge.from), layer(&edge.to)) else { continue };
            if from.module != to.module && to.rank >= from.rank {
                problems.push(format!(
                    "{}:{}: {} (in {}): {}",
                    edge.from,
                    edge.line,
                    edge.written,
                    edge.to,
                    rule(from, to)
                ));
            }
        }
        problems
    }

    /// The rule an import from `from` to `to` breaks.
    fn rule(from: &Layer, to: &Layer) -> String {
        if from.rank == to.rank {
            format!(
                "`{}` and `{}` are siblings (rank {}) and must not import each other",
                from.module, to.module, to.rank
            )
        } else {
            format!(
                "`{}` (rank {}) must not import `{}` (rank {}), a higher layer",
                from.module, from.rank, to.module, to.rank
            )
        }
    }

    fn layer(path: &str) -> Option<&'static Layer> {
        let module = top_module(path);
        LAYERS.iter().find(|layer| layer.module == module)
    }

    /// `grpc` for `grpc/status.rs`, `server` for `server.rs`.
    fn top_module(path: &str) -> &str {
        let first = path.split('/').next().unwrap_or(path);
        first.strip_suffix(".rs").unwrap_or(first)
    }
}

mod graph {
    //! Cycles in the import graph: Tarjan's strongly connected components, each shown by short cycles through it.

    use super::resolve::Edge;
    use std::collections::{BTreeMap, BTreeSet, VecDeque};
    use std::fmt::Write as _;

    /// How many imports a report shows for one edge of a cycle; the first few are enough to find the rest.
    const REASONS_SHOWN_MAX: usize = 3;

    /// Each file and the files it imports.
    type Graph<'a> = BTreeMap<&'a str, BTreeSet<&'a str>>;

    /// One report per group of files that import each other in a circle (a strongly connected component of two or
    /// more files): its files, a shortest cycle through each of its edges, and the imports that make those edges.
    pub(crate) fn cycles(edges: &[Edge]) -> Vec<String> {
        let mut graph = Graph::new();
        for edge in edges {
            graph.entry(edge.from.as_str()).or_default().insert(edge.to.as_str());
            graph.entry(edge.to.as_str()).or_default();
        }
        let mut search = Tarjan {
            graph: &graph,
            order: BTreeMap::new(),
            lowest: BTreeMap::new(),
            stack: Vec::new(),
            on_stack: BTreeSet::new(),
            components: Vec::new(),
        };
        for &node in graph.keys() {
            if !search.order.contains_key(node) {
                search.visit(node);
            }
        }
        let components = search.components.into_iter().filter(|component| component.len() > 1);
        components.map(|component| describe(&graph, &component, edges)).collect()
    }

    /// The report of one component.
    fn describe(graph: &Graph<'_>, component: &[&str], edges: &[Edge]) -> String {
        let members: BTreeSet<&str> = component.iter().copied().collect();
        let mut loops = BTreeSet::new();
        for &from in component {
            for &to in graph[from].iter().filter(|to| members.contains(*to)) {
                let mut cycle = vec![from];
                cycle.extend(shortest_path(graph, &members, to, from));
                loops.insert(rotated(&cycle));
            }
        }
        let mut report = format!("cycle among {} files: {}\n", component.len(), component.join(", "));
        for cycle in &loops {
            writeln!(report, "  {}", cycle.join(" → ")).expect("write to a string");
        }
        report.push_str("  made by:\n");
        let mut reasons: BTreeMap<(&str, &str), Vec<String>> = BTreeMap::new();
        for edge in
            edges.iter().filter(|edge| members.contains(edge.from.as_str()) && members.contains(edge.to.as_str()))
        {
            let reason = format!("{} (line {})", edge.written, edge.line);
            reasons.entry((edge.from.as_str(), edge.to.as_str())).or_default().push(reason);
        }
        for ((from, to), reasons) in &reasons {
            let shown = reasons.iter().take(REASONS_SHOWN_MAX).cloned().collect::<Vec<_>>().join(", ");
            let more = reasons.len().saturating_sub(REASONS_SHOWN_MAX);
            let more = if more > 0 { format!(", and {more} more") } else { String::new() };
            writeln!(report, "    {from} → {to}: {shown}{more}").expect("write to a string");
        }
        report
    }

    /// A shortest path from `start` to `goal` inside `members`, both ends included; `goal` must be reachable.
    fn shortest_path<'a>(graph: &Graph<'a>, members: &BTreeSet<&str>, start: &'a str, goal: &'a str) -> Vec<&'a str> {
        let mut previous = BTreeMap::new();
        let mut queue = VecDeque::from([start]);
        let mut seen = BTreeSet::from([start]);
        while let Some(node) = queue.pop_front() {
            if node == goal {
                break;
            }
            for &next in graph[node].iter().filter(|next| members.contains(*next)) {
                if seen.insert(next) {
                    previous.insert(next, node);
                    queue.push_back(next);
                }
            }
        }
        let mut path = vec![goal];
        while let Some(&node) = path.last().and_then(|last| previous.get(last)) {
            path.push(node);
        }
        path.reverse();
        path
    }

    /// A closed cycle (`[a, b, a]`) turned to start and end at its smallest file, so rotations compare equal.
    fn rotated<'a>(cycle: &[&'a str]) -> Vec<&'a str> {
        let ring = &cycle[..cycle.len() - 1];
        let smallest = ring.iter().enumerate().min_by_key(|(_, node)| **node).map_or(0, |(index, _)| index);
        let mut rotated: Vec<&str> = ring[smallest..].iter().chain(&ring[..smallest]).copied().collect();
        rotated.push(ring[smallest]);
        rotated
    }

    /// Tarjan's algorithm: a depth-first search that closes a component when a node's lowest reachable index is its own.
    struct Tarjan<'a> {
        graph: &'a Graph<'a>,
        /// The order in which the search reached each node.
        order: BTreeMap<&'a str, usize>,
        /// The lowest order reachable from each node through the nodes still on the stack.
        lowest: BTreeMap<&'a str, usize>,
        stack: Vec<&'a str>,
        on_stack: BTreeSet<&'a str>,
        /// The components found, each sorted.
        components: Vec<Vec<&'a str>>,
    }

    impl<'a> Tarjan<'a> {
        fn visit(&mut self, node: &'a str) {
            let order = self.order.len();
            self.order.insert(node, order);
            self.lowest.insert(node, order);
            self.stack.push(node);
            self.on_stack.insert(node);
            for &next in &self.graph[node] {
                if !self.order.contains_key(next) {
                    self.visit(next);
                    self.lowest.insert(node, self.lowest[node].min(self.lowest[next]));
                } else if self.on_stack.contains(next) {
                    self.lowest.insert(node, self.lowest[node].min(self.order[next]));
                }
            }
            if self.lowest[node] == order {
                let mut component = Vec::new();
                while let Some(member) = self.stack.pop() {
                    self.on_stack.remove(member);
                    component.push(member);
                    if member == node {
                        break;
                    }
                }
                component.sort_unstable();
                self.components.push(component);
            }
        }
    }
}

mod purity {
    //! The words that would bring I/O, a clock or randomness into the domain.

    use super::tree::SourceTree;

    /// Words no domain file may contain outside comments, literals and test code. The first nine are those of the
    /// hand-kept check this file replaces; the rest name the other ways to a random source (`rand::` already covers
    /// `rand::rng` and `rand::thread_rng`). A seeded `rand_chacha` generator is allowed: the seed is an input.
    pub(crate) const FORBIDDEN: &[&str] = &[
        "tokio",
        "tonic",
        "prost",
        "std::fs",
        "metrics::",
        "SystemTime",
        "Instant::now",
        "rand::",
        "::now()",
        "thread_rng",
        "OsRng",
        "getrandom",
        "from_entropy",
        "from_os_rng",
    ];

    /// One line per forbidden word found in a file under `src/domain/` that is not test code.
    pub(crate) fn violations(tree: &SourceTree) -> Vec<String> {
        let mut problems = Vec::new();
        for file in tree.files.values().filter(|file| file.path.starts_with("domain/") && !file.test_only) {
            for (index, line) in file.code.lines().enumerate() {
                for word in FORBIDDEN.iter().filter(|word| line.contains(*word)) {
                    problems.push(format!("{}:{}: `{word}` in `{}`", file.path, index + 1, line.trim()));
                }
            }
        }
        problems
    }
}

mod reader_tests {
    //! The reader itself, on small inline crates: if it misread, the three checks above would pass on anything.

    use super::parse::{self, Import};
    use super::resolve::{self, Target};
    use super::tree::SourceTree;
    use super::{graph, layers, purity, source};

    /// A tree of the library `antrean` from `(path below src/, text)` pairs.
    fn tree(sources: &[(&str, &str)]) -> SourceTree {
        SourceTree::from_sources("antrean", sources.iter().map(|(path, text)| ((*path).to_owned(), (*text).to_owned())))
    }

    fn imports(text: &str) -> Vec<Import> {
        parse::paths(&source::read(text).tokens).0
    }

    fn import(path: &str, binding: Option<&str>, glob: bool, line: usize) -> Import {
        let path = path.split("::").map(str::to_owned).collect();
        Import { path, binding: binding.map(str::to_owned), glob, line }
    }

    /// Where `path` (written `a::b::c`) leads when named in the file at `from`.
    fn target(tree: &SourceTree, from: &str, path: &str) -> Target {
        let path: Vec<String> = path.split("::").map(str::to_owned).collect();
        resolve::resolve(tree, &tree.files[from], &path)
    }

    fn file(path: &str) -> Target {
        Target::File(path.to_owned())
    }

    #[test]
    fn a_multi_line_nested_use_gives_one_import_per_leaf() {
        let text = "pub(crate) use crate::domain::{\n    book::{BookRules, Book as Quota},\n    ids::*,\n    self,\n};\n\
                    pub use super::x as _;";
        let expected = [
            import("crate::domain::book::BookRules", Some("BookRules"), false, 2),
            import("crate::domain::book::Book", Some("Quota"), false, 2),
            import("crate::domain::ids", None, true, 3),
            import("crate::domain", Some("domain"), false, 4),
            import("super::x", None, false, 6),
        ];
        assert_eq!(imports(text), expected);
    }

    #[test]
    fn comments_literals_and_test_items_are_not_code() {
        let text = [
            "// use crate::a::A;",
            "/* outer /* nested */ use crate::b::B; */",
            r#"const TEXT: &str = "use crate::c::C;";"#,
            "const RAW: &str = r#\"use crate::d::D; \"quoted\"\"#;",
            r#"const QUOTE: char = '"';"#,
            "fn borrow<'a>(text: &'a str) -> &'a str { text }",
            "use crate::real::Real;",
            "#[cfg(test)]",
            "mod tests {",
            "    use crate::e::E;",
            "    fn f() { let _ = '}'; }",
            "}",
            "#[cfg(test)]",
            "mod testkit;",
        ]
        .join("\n");
        let code = source::read(&text);
        assert_eq!(parse::paths(&code.tokens).0, [import("crate::real::Real", Some("Real"), false, 7)]);
        assert_eq!(code.test_modules, ["testkit"]);
        assert!(!code.text.contains("crate::e") && !code.text.contains("crate::c"), "{}", code.text);
    }

    #[test]
    fn a_re_export_is_followed_to_the_file_that_defines_the_item() {
        let tree = tree(&[
            ("lib.rs", "pub mod auth;"),
            ("auth/mod.rs", "mod permissions;\nmod callers;\npub use permissions::Role;\npub use callers::*;"),
            ("auth/permissions.rs", "pub enum Role { Admin }"),
            ("auth/callers.rs", "pub struct Caller;"),
            ("auth/token.rs", "use super::Role;\nfn f() -> super::Caller { crate::auth::Role::Admin; todo!() }"),
        ]);
        assert_eq!(target(&tree, "auth/token.rs", "super::Role"), file("auth/permissions.rs"));
        assert_eq!(target(&tree, "auth/token.rs", "crate::auth::Role::Admin"), file("auth/permissions.rs"));
        assert_eq!(target(&tree, "auth/token.rs", "super::Caller"), file("auth/callers.rs"));
        assert_eq!(target(&tree, "auth/token.rs", "Role::Admin"), file("auth/permissions.rs"));
        assert_eq!(target(&tree, "auth/token.rs", "std::fmt::Debug"), Target::Outside);
        assert_eq!(target(&tree, "auth/token.rs", "crate::auth"), Target::Module("auth/mod.rs".to_owned()));
    }

    #[test]
    fn super_climbs_one_module_per_segment_and_a_child_name_descends() {
        let tree = tree(&[
            ("lib.rs", "pub mod domain;"),
            ("domain/mod.rs", "pub mod ids;\npub mod room;\nuse room::line::Line;"),
            ("domain/ids.rs", "pub struct TicketId;"),
            ("domain/room/mod.rs", "pub mod line;"),
            ("domain/room/line.rs", "use super::super::ids::TicketId;\npub struct Line;"),
        ]);
        assert_eq!(target(&tree, "domain/room/line.rs", "super::super::ids::TicketId"), file("domain/ids.rs"));
        assert_eq!(target(&tree, "domain/room/line.rs", "TicketId"), file("domain/ids.rs"));
        assert_eq!(target(&tree, "domain/mod.rs", "room::line::Line"), file("domain/room/line.rs"));
        assert_eq!(target(&tree, "domain/room/line.rs", "self::Line"), file("domain/room/line.rs"));
    }

    #[test]
    fn a_binary_names_the_library_by_its_crate_name() {
        let tree = tree(&[("lib.rs", "pub mod server;"), ("server.rs", "pub fn run() {}"), ("main.rs", "")]);
        assert_eq!(target(&tree, "main.rs", "antrean::server::run"), file("server.rs"));
    }

    #[test]
    fn a_cycle_is_reported_as_a_loop_of_files_with_the_imports_that_make_it() {
        let tree = tree(&[
            ("lib.rs", "pub mod a; pub mod b; pub mod c;"),
            ("a.rs", "use crate::b::B;\npub struct A;"),
            ("b.rs", "pub struct B(crate::c::C);"),
            ("c.rs", "pub struct C(Box<crate::a::A>);\n#[cfg(test)]\nmod tests { use crate::b::B; }"),
        ]);
        let cycles = graph::cycles(&resolve::edges(&tree));
        assert_eq!(cycles.len(), 1, "{cycles:?}");
        assert!(cycles[0].contains("  a.rs → b.rs → c.rs → a.rs\n"), "{}", cycles[0]);
        assert!(cycles[0].contains("a.rs → b.rs: use crate::b::B (line 1)"), "{}", cycles[0]);
        assert!(!cycles[0].contains("c.rs → b.rs"), "test code is no edge: {}", cycles[0]);
    }

    #[test]
    fn an_import_up_the_layers_is_reported_with_the_rule_it_breaks() {
        let tree = tree(&[
            ("lib.rs", "pub mod auth; pub mod grpc; pub mod gadgets;"),
            ("auth/mod.rs", "pub mod layer;"),
            ("auth/layer.rs", "use crate::grpc::status::auth_status;"),
            ("grpc/mod.rs", "pub mod status;"),
            ("grpc/status.rs", "pub fn auth_status() {}"),
            ("gadgets.rs", ""),
        ]);
        let problems = layers::violations(&tree, &resolve::edges(&tree));
        assert_eq!(
            problems,
            [
                "gadgets.rs: the top-level module `gadgets` has no layer: give it a rank in LAYERS",
                "auth/layer.rs:1: use crate::grpc::status::auth_status (in grpc/status.rs): `auth` (rank 4) must not \
                 import `grpc` (rank 6), a higher layer",
            ]
        );
    }

    #[test]
    fn a_domain_file_that_reads_the_clock_is_reported_and_prose_and_tests_are_not() {
        let tree = tree(&[
            ("domain/mod.rs", "//! No tokio here.\npub mod clock;"),
            ("domain/clock.rs", "let at = std::time::SystemTime::now();\nlet seeded = ChaCha8Rng::seed_from_u64(7);"),
            ("domain/book_tests.rs", "use tokio::time;"),
            ("domain/ids.rs", "#[cfg(test)]\nmod tests {\n    use tokio::time;\n}"),
        ]);
        let problems = purity::violations(&tree);
        let words: Vec<&str> = problems.iter().map(|problem| problem.split('`').nth(1).unwrap_or_default()).collect();
        assert_eq!(words, ["SystemTime", "::now()"], "{problems:#?}");
        assert!(problems[0].starts_with("domain/clock.rs:1: "), "{problems:#?}");
    }
}
