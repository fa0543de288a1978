#!/usr/bin/env python3
# Structure checks for the workspace's Rust sources; standard library only (Python 3.11+).
#
# 1. No non-test source file is over 600 lines: a file has one job, and a file that keeps
#    growing is doing several. The non-test part of a file is everything before its first
#    `#[cfg(test)]` line. Not checked: target/, fuzz/, the end-to-end crate tests/ at the
#    workspace root, a crate's tests/, benches/ and examples/, and files named *_tests.rs.
# 2. No module cycle in any crate: arrows between modules run one way, so a module can be read,
#    tested and changed without the ones that use it. Module A depends on module B when A's
#    non-test code names a path into B (`use crate::b::X`, `super::X`, `crate::b::f()`, ...);
#    a re-export (`pub use child::X`) is a facade, followed to where X is defined, and is only
#    an arrow when the re-exporting module's own code uses X. `mod b;` is ownership, not use.
#    An arrow between a module and one of its own ancestors or descendants (a child using
#    `super::X` from its parent, a parent using its child's type, any module using an item of
#    the crate root) is not counted: a module and its submodules form one unit whose root is
#    its facade. Rust places the `impl` blocks of a parent's type in child files, and a checker
#    that reads text cannot see method calls, so such arrows say more about style than about
#    structure. The cycles that make code hard to follow are between modules neither of which
#    contains the other: siblings such as `http.rs` <-> `web.rs` or `store.rs` <-> `writer.rs`,
#    or actors in different subtrees that import each other. Arrows between siblings, cousins
#    and any other pair where neither contains the other still count, and since a subtree is
#    one unit they count between the units: an arrow u -> v is lifted to run between the two
#    children of u's and v's lowest common ancestor that contain u and v (`a::x -> b::y` is
#    `a -> b`; `a::p::q -> a::r` is `a::p -> a::r`). So `a::x -> b::y` together with
#    `b::z -> a::w` is the cycle `a -> b -> a`, though no two of those four modules form one.
#    Lifted arrows always join siblings, so every cycle is among the children of one module,
#    and is reported at that level; each arrow of it cites one of the uses that make it, with
#    the deepest modules of that use when they differ (`a -> b (a::x -> b::y): ...`).
#
# Run from anywhere (exit status 1 and one line per violation when a rule fails):
#     python3 tests/checks/structure.py [WORKSPACE_ROOT]
# Its own tests: python3 -m unittest discover -s tests/checks

from __future__ import annotations

import bisect
import os
import re
import sys
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

LIMIT = 600
CFG_TEST_LINE = re.compile(r"^\s*#\[cfg\(test\)\]")
SKIPPED_DIRS = {"target", "fuzz"}  # anywhere in the tree
SKIPPED_CRATE_DIRS = {"tests", "benches", "examples"}  # directly under a crate
BUILTIN_CRATES = {"std", "core", "alloc", "proc_macro", "test"}

IDENT = r"(?:r#)?[A-Za-z_][A-Za-z0-9_]*"

# ---------------------------------------------------------------------------------------------
# Rule 1: file length


def non_test_lines(text: str) -> int:
    """Lines before the first `#[cfg(test)]` line (all of them when there is none)."""
    lines = text.splitlines()
    for number, line in enumerate(lines):
        if CFG_TEST_LINE.match(line):
            return number
    return len(lines)


def crate_dir_of(path: Path, root: Path) -> Path | None:
    """The nearest directory at or above `path`'s, up to `root`, that has a Cargo.toml."""
    directory = path.parent
    while True:
        if (directory / "Cargo.toml").is_file():
            return directory
        if directory == root or root not in directory.parents:
            return None
        directory = directory.parent


def length_checked_files(root: Path) -> list[Path]:
    files = []
    for dirpath, dirnames, filenames in os.walk(root):
        here = Path(dirpath)
        dirnames[:] = sorted(
            d
            for d in dirnames
            if not d.startswith(".")
            and d not in SKIPPED_DIRS
            # the end-to-end crate at the workspace root
            and not (here == root and d == "tests")
        )
        for name in sorted(filenames):
            if not name.endswith(".rs") or name.endswith("_tests.rs"):
                continue
            path = here / name
            crate = crate_dir_of(path, root)
            if crate is not None:
                first = path.relative_to(crate).parts[0]
                if first in SKIPPED_CRATE_DIRS:
                    continue
            files.append(path)
    return files


def check_lengths(root: Path) -> list[str]:
    problems = []
    for path in length_checked_files(root):
        count = non_test_lines(path.read_text(encoding="utf-8", errors="replace"))
        if count > LIMIT:
            problems.append(f"{rel(path, root)}: {count} lines of non-test code (limit {LIMIT})")
    return problems


# ---------------------------------------------------------------------------------------------
# Lexing: comments and literals out, test code out. Every function keeps offsets (and so line
# numbers): removed text becomes spaces, newlines stay.

RAW_STRING_START = re.compile(r'[bc]?r(#*)"')


def strip_comments_and_literals(src: str) -> str:
    """Blanks comments and the contents of string and char literals (the quotes stay)."""
    out = list(src)
    n = len(src)

    def blank(start: int, end: int) -> None:
        for k in range(start, min(end, n)):
            if out[k] != "\n":
                out[k] = " "

    i = 0
    while i < n:
        c = src[i]
        if c == "/" and src.startswith("//", i):
            end = src.find("\n", i)
            end = n if end < 0 else end
            blank(i, end)
            i = end
            continue
        if c == "/" and src.startswith("/*", i):
            depth, j = 1, i + 2
            while j < n and depth:
                if src.startswith("/*", j):
                    depth, j = depth + 1, j + 2
                elif src.startswith("*/", j):
                    depth, j = depth - 1, j + 2
                else:
                    j += 1
            blank(i, j)
            i = j
            continue
        if c in "bcr" and (i == 0 or not (src[i - 1].isalnum() or src[i - 1] in "_#$")):
            m = RAW_STRING_START.match(src, i)
            if m:
                closing = '"' + m.group(1)
                end = src.find(closing, m.end())
                end = n if end < 0 else end
                blank(m.end(), end)
                i = end + len(closing)
                continue
            if src.startswith(('b"', 'c"', "b'"), i):
                i += 1  # the literal itself is handled on the next turn
                continue
        if c == '"':
            j = i + 1
            while j < n and src[j] != '"':
                j += 2 if src[j] == "\\" else 1
            blank(i + 1, j)
            i = j + 1
            continue
        if c == "'":
            if i + 1 < n and src[i + 1] == "\\":  # '\n', '\'', '\\', '\u{..}'
                end = src.find("'", i + 3)
                end = n if end < 0 else end
                blank(i + 1, end)
                i = end + 1
                continue
            if i + 2 < n and src[i + 2] == "'" and src[i + 1] != "\n":  # 'x', '"'
                blank(i + 1, i + 2)
                i += 3
                continue
            i += 1  # a lifetime or a label: 'a, 'static, 'outer:
            continue
        i += 1
    return "".join(out)


def blank_range(chars: list[str], start: int, end: int) -> None:
    for k in range(start, end):
        if chars[k] != "\n":
            chars[k] = " "


def match_forward(text: str, open_at: int) -> int:
    """Index just past the bracket closing the one at `open_at` (literals already blanked)."""
    pairs = {"{": "}", "(": ")", "[": "]"}
    stack = []
    for j in range(open_at, len(text)):
        ch = text[j]
        if ch in pairs:
            stack.append(pairs[ch])
        elif ch in ")]}":
            if stack and stack[-1] == ch:
                stack.pop()
            if not stack:
                return j + 1
    return len(text)


def attributes_before(text: str, pos: int) -> list[tuple[int, str]]:
    """The outer attributes `#[...]` right before `pos`, nearest first: (start, inner text)."""
    found = []
    j = pos
    while True:
        k = j - 1
        while k >= 0 and text[k].isspace():
            k -= 1
        if k < 1 or text[k] != "]":
            return found
        depth, m = 0, k
        while m >= 0:
            if text[m] == "]":
                depth += 1
            elif text[m] == "[":
                depth -= 1
                if depth == 0:
                    break
            m -= 1
        if m < 1 or text[m - 1] != "#":
            return found
        found.append((m - 1, text[m + 1 : k]))
        j = m - 1


VISIBILITY_BEFORE = re.compile(r"\bpub\s*(?:\([^()]*\))?\s*$")


def item_start(text: str, pos: int) -> int:
    """Start of the item whose keyword is at `pos`: before its visibility and attributes."""
    m = VISIBILITY_BEFORE.search(text, max(0, pos - 80), pos)
    if m and (m.start() == 0 or not (text[m.start() - 1].isalnum() or text[m.start() - 1] == "_")):
        pos = m.start()
    attrs = attributes_before(text, pos)
    return attrs[-1][0] if attrs else pos


def item_start_keyword(code: str, pos: int) -> int:
    """`pos` moved back over a visibility, to where the attributes of a `mod` end."""
    m = VISIBILITY_BEFORE.search(code, max(0, pos - 80), pos)
    return m.start() if m else pos


def is_test_cfg(inner: str) -> bool:
    s = re.sub(r"\s+", "", inner)
    if s == "cfg(test)":
        return True
    if s.startswith("cfg(all(") and s.endswith("))"):
        return re.search(r"(?:^|[(,])test(?:[,)]|$)", s[len("cfg(all(") : -2]) is not None
    return False


OUTER_ATTRIBUTE = re.compile(r"#\s*\[")
INNER_TEST_ATTRIBUTE = re.compile(r"#!\s*\[\s*cfg\s*\(\s*test\s*\)\s*\]")


def blank_test_code(code: str) -> str:
    """Blanks every item (or statement) under `#[cfg(test)]`, with its other attributes."""
    if INNER_TEST_ATTRIBUTE.search(code):
        # `#![cfg(test)]`: the whole file is test code.
        return "".join("\n" if ch == "\n" else " " for ch in code)
    chars = list(code)
    pos = 0
    while True:
        m = OUTER_ATTRIBUTE.search(code, pos)
        if not m:
            break
        attr_end = match_forward(code, m.end() - 1)
        if not is_test_cfg(code[m.end() : attr_end - 1]):
            pos = attr_end
            continue
        # The item: skip its other attributes, then up to the first `;` or `{...}` at depth 0.
        j = attr_end
        while True:
            while j < len(code) and code[j].isspace():
                j += 1
            a = OUTER_ATTRIBUTE.match(code, j)
            if not a:
                break
            j = match_forward(code, a.end() - 1)
        end = len(code)
        depth = 0
        while j < len(code):
            ch = code[j]
            if ch in "([":
                depth += 1
            elif ch in ")]":
                depth -= 1
            elif depth <= 0 and ch == ";":
                end = j + 1
                break
            elif depth <= 0 and ch == "{":
                end = match_forward(code, j)
                break
            elif depth <= 0 and ch == "}":
                end = j
                break
            j += 1
        start = item_start(code, m.start())
        blank_range(chars, start, end)
        pos = end
    return "".join(chars)


# ---------------------------------------------------------------------------------------------
# Use trees

USE_TOKEN = re.compile(r"\s*(::|[{},*]|\$?" + IDENT + r")")


@dataclass
class UseLeaf:
    segments: list[str]  # the path, `self` in a group resolved away; may end with "*"
    name: str | None  # the name it binds (None for a glob or `as _`)
    offset: int  # offset of its last token in the file
    absolute: bool  # a leading `::` (an external crate)


def parse_use_tree(body: str, base: int) -> list[UseLeaf]:
    """Leaves of a use tree such as `crate::{a::X, b::{self, Y as Z}}`; `base` is its offset."""
    tokens = [(m.group(1), base + m.start(1)) for m in USE_TOKEN.finditer(body)]
    leaves: list[UseLeaf] = []
    absolute = bool(tokens) and tokens[0][0] == "::"
    if absolute:
        tokens = tokens[1:]

    def tree(pos: int, prefix: list[str]) -> int:
        segs: list[str] = []
        while pos < len(tokens):
            tok, at = tokens[pos]
            if tok == "{":
                pos += 1
                while pos < len(tokens) and tokens[pos][0] != "}":
                    if tokens[pos][0] == ",":
                        pos += 1
                        continue
                    pos = tree(pos, prefix + segs)
                return pos + 1
            if tok == "*":
                leaves.append(UseLeaf(prefix + segs + ["*"], None, at, absolute))
                return pos + 1
            if tok in ("::", ","):
                if tok == ",":
                    return pos
                pos += 1
                continue
            if tok == "}":
                return pos
            # an identifier
            segs.append(unraw(tok))
            pos += 1
            if pos < len(tokens) and tokens[pos][0] == "::":
                continue
            path = prefix + segs
            name = path[-1]
            if name == "self":
                path = path[:-1]
                name = path[-1] if path else None
            if pos + 1 < len(tokens) and tokens[pos][0] == "as":
                alias = unraw(tokens[pos + 1][0])
                name = None if alias == "_" else alias
                at = tokens[pos + 1][1]
                pos += 2
            if name in ("crate", "super", "self", "$crate"):
                name = None
            leaves.append(UseLeaf(path, name, at, absolute))
            return pos
        return pos

    pos = 0
    while pos < len(tokens):
        before = pos
        pos = tree(pos, [])
        if pos == before:
            pos += 1
    return leaves


def unraw(ident: str) -> str:
    return ident[2:] if ident.startswith("r#") else ident


# ---------------------------------------------------------------------------------------------
# Module trees

ModPath = tuple[str, ...]
EXTERNAL = ("<external>",)


@dataclass
class Module:
    path: ModPath
    file: Path
    start: int  # its text in `file`: the whole file for a file module
    end: int
    children: dict[str, ModPath] = field(default_factory=dict)
    imports: dict[str, tuple[str, ...]] = field(default_factory=dict)  # name -> absolute path
    globs: list[tuple[str, ...]] = field(default_factory=list)
    reexports: list[tuple[UseLeaf, int, int]] = field(default_factory=list)  # leaf, stmt span
    items: set[str] = field(default_factory=set)


@dataclass
class SourceFile:
    path: Path
    text: str  # the original
    code: str  # comments, literals and test code blanked
    line_starts: list[int]
    regions: list[tuple[int, int, ModPath]] = field(default_factory=list)  # innermost first
    uses: list[tuple[int, int, bool]] = field(default_factory=list)  # start, end, is pub

    def line_of(self, offset: int) -> int:
        return bisect.bisect_right(self.line_starts, offset)

    def module_at(self, offset: int) -> ModPath:
        for start, end, path in self.regions:
            if start <= offset < end:
                return path
        return self.regions[-1][2]


MOD_DECL = re.compile(r"(?<![\w#$])mod\s+(" + IDENT + r")\s*([;{])")
USE_START = re.compile(r"(?<![\w#$])use\s")
ITEM_DEF = re.compile(
    r"(?<![\w#$])(?:fn|struct|enum|trait|type|const|static|union)\s+(" + IDENT + r")"
    r"|macro_rules!\s*(" + IDENT + r")"
)
PUB_IN_BEFORE = re.compile(r"pub\s*\(\s*in\s+$")
PATH_IN_CODE = re.compile(r"(?<![\w$:.])((?:\$crate|" + IDENT + r")(?:\s*::\s*" + IDENT + r")+)")


def path_attribute(sf: SourceFile, attrs: list[tuple[int, str]]) -> str | None:
    for start, inner in attrs:
        m = re.match(r"\s*path\s*=\s*\"", inner)
        if m:
            # the literal's contents were blanked in `code`; read them from the original
            open_quote = sf.code.find('"', start)
            close = sf.code.find('"', open_quote + 1)
            return sf.text[open_quote + 1 : close]
    return None


class Crate:
    def __init__(self, label: str, root_file: Path, workspace: Path, externs: set[str]):
        self.label = label
        self.workspace = workspace
        self.externs = externs
        self.modules: dict[ModPath, Module] = {}
        self.files: dict[Path, SourceFile] = {}
        self.load(root_file, (), mod_rs=True)
        for sf in self.files.values():
            sf.regions.sort(key=lambda r: r[1] - r[0])
        self.collect_uses_and_items()

    # -- the tree -------------------------------------------------------------------------------

    def load(self, path: Path, modpath: ModPath, mod_rs: bool) -> None:
        path = path.resolve()
        if path in self.files or not path.is_file():
            return
        text = path.read_text(encoding="utf-8", errors="replace")
        code = blank_test_code(strip_comments_and_literals(text))
        starts = [0] + [m.end() for m in re.finditer("\n", text)]
        sf = SourceFile(path, text, code, starts)
        self.files[path] = sf
        self.modules[modpath] = Module(modpath, path, 0, len(code))
        sf.regions.append((0, len(code), modpath))
        self.scan_mods(sf, 0, len(code), modpath, [], mod_rs)

    def scan_mods(self, sf, start, end, modpath, inline, mod_rs) -> None:
        code = sf.code
        pos = start
        while True:
            m = MOD_DECL.search(code, pos, end)
            if not m:
                return
            name = unraw(m.group(1))
            child = modpath + (name,)
            self.modules[modpath].children[name] = child
            if m.group(2) == "{":
                block_end = match_forward(code, m.end() - 1)
                self.modules[child] = Module(child, sf.path, m.end(), block_end - 1)
                sf.regions.append((m.end(), block_end - 1, child))
                self.scan_mods(sf, m.end(), block_end - 1, child, inline + [name], mod_rs)
                pos = block_end
                continue
            pos = m.end()
            attrs = attributes_before(code, item_start_keyword(code, m.start()))
            explicit = path_attribute(sf, attrs)
            directory = sf.path.parent
            if not mod_rs:
                directory = directory / sf.path.stem
            if explicit is not None:
                base = sf.path.parent if not inline else directory.joinpath(*inline)
                self.load(base / explicit, child, mod_rs=True)
                continue
            base = directory.joinpath(*inline)
            if (base / f"{name}.rs").is_file():
                self.load(base / f"{name}.rs", child, mod_rs=False)
            else:
                self.load(base / name / "mod.rs", child, mod_rs=True)

    # -- names -----------------------------------------------------------------------------------

    def collect_uses_and_items(self) -> None:
        for sf in self.files.values():
            code = sf.code
            for m in USE_START.finditer(code):
                stmt_start = item_start(code, m.start())
                vis = VISIBILITY_BEFORE.search(code, max(0, m.start() - 80), m.start())
                is_pub = bool(vis) and vis.end() == m.start()
                end = code.find(";", m.end())
                end = len(code) if end < 0 else end + 1
                sf.uses.append((m.start() if not is_pub else vis.start(), end, is_pub))
                module = self.modules[sf.module_at(m.start())]
                for leaf in parse_use_tree(code[m.end() : end - 1], m.end()):
                    target = self.absolute(module, leaf.segments, leaf.absolute, in_use=True)
                    if leaf.segments and leaf.segments[-1] == "*":
                        if target is not EXTERNAL and target is not None:
                            module.globs.append(target[:-1])
                    elif leaf.name is not None and target is not None:
                        module.imports[leaf.name] = target
                    if is_pub:
                        module.reexports.append((leaf, stmt_start, end))
            for m in ITEM_DEF.finditer(code):
                name = unraw(m.group(1) or m.group(2))
                self.modules[sf.module_at(m.start())].items.add(name)

    def absolute(self, module: Module, segments, leading_colons=False, in_use=False):
        """The path from the crate root that `segments`, written in `module`, names; EXTERNAL
        for another crate; None when it is not a path into this crate (code paths only)."""
        if not segments or leading_colons:
            return EXTERNAL if segments else None
        first, rest = segments[0], list(segments[1:])
        if first in ("crate", "$crate"):
            base: ModPath = ()
        elif first == "self":
            base = module.path
        elif first == "super":
            base = module.path[:-1]
            while rest and rest[0] == "super":
                base, rest = base[:-1], rest[1:]
        elif first in module.children:
            base, rest = module.children[first], rest
        elif first in module.imports:
            target = module.imports[first]
            if target is EXTERNAL:
                return EXTERNAL if in_use else None
            if not in_use and not self.resolve(target)[1]:
                return None  # a type or a function: its `use` line is the edge
            return tuple(target) + tuple(rest)
        elif first in self.externs or first in BUILTIN_CRATES:
            return EXTERNAL if in_use else None
        elif in_use:
            base, rest = module.path, segments  # an item of this module (a macro_rules, ...)
            return tuple(base) + tuple(rest)
        else:
            return None  # a type, a variant, a local: not a module path
        return tuple(base) + tuple(rest)

    def resolve(self, segments, seen=frozenset()) -> tuple[ModPath | None, bool]:
        """The deepest module an absolute path leads into, following imports and re-exports
        to where an item is defined; and whether the whole path names a module."""
        if segments is EXTERNAL:
            return None, False
        cur: ModPath = ()
        for i, seg in enumerate(segments):
            if seg == "*":
                return cur, True
            module = self.modules.get(cur)
            if module is None:
                return cur, False
            if seg in module.children:
                cur = module.children[seg]
                continue
            key = (cur, seg)
            if seg in module.imports and key not in seen:
                target, whole = self.resolve(module.imports[seg], seen | {key})
                if target is None:
                    return None, False
                if whole:
                    cur = target
                    continue
                return target, False
            if seg not in module.items:
                for glob in module.globs:
                    g = self.resolve(glob, seen | {key})[0]
                    if g is not None and g != cur and g in self.modules:
                        gm = self.modules[g]
                        if seg in gm.items or seg in gm.children or seg in gm.imports:
                            return self.resolve(tuple(g) + tuple(segments[i:]), seen | {key})
            return cur, False
        return cur, True

    # -- arrows ----------------------------------------------------------------------------------

    def edges(self) -> dict[tuple[ModPath, ModPath], list[tuple[Path, int, str]]]:
        found: dict[tuple[ModPath, ModPath], list[tuple[Path, int, str]]] = {}

        def add(src: ModPath, dst, sf: SourceFile, offset: int, what: str) -> None:
            if dst is None or dst not in self.modules or contains(src, dst) or contains(dst, src):
                return  # a module and its ancestors and descendants are one unit (see the top)
            found.setdefault((src, dst), []).append((sf.path, sf.line_of(offset), what))

        for sf in self.files.values():
            code = sf.code
            # `use` declarations; a `pub use` is a re-export and is handled below
            for start, end, is_pub in sf.uses:
                if is_pub:
                    continue
                module = self.modules[sf.module_at(start)]
                keyword = USE_START.match(code, start)
                body_at = keyword.end() if keyword else start + 4
                for leaf in parse_use_tree(code[body_at : end - 1], body_at):
                    target = self.absolute(module, leaf.segments, leaf.absolute, in_use=True)
                    # cited at the line of the `use`, naming the one import that makes the arrow
                    what = "use " + ("::" if leaf.absolute else "") + "::".join(leaf.segments)
                    add(module.path, self.resolve(target)[0], sf, start, what)
            # paths in code
            in_use = [(s, e) for s, e, _ in sf.uses]
            for m in PATH_IN_CODE.finditer(code):
                if any(s <= m.start() < e for s, e in in_use):
                    continue
                if PUB_IN_BEFORE.search(code, max(0, m.start() - 20), m.start()):
                    continue  # `pub(in crate::a)` restricts visibility; it uses nothing
                module = self.modules[sf.module_at(m.start())]
                segments = [unraw(s) for s in re.split(r"\s*::\s*", m.group(1))]
                target = self.absolute(module, segments)
                if target is None or target is EXTERNAL:
                    continue
                add(module.path, self.resolve(target)[0], sf, m.start(), " ".join(m.group(1).split()))
        # a re-export is an arrow only when the module's own code uses the name
        for module in self.modules.values():
            sf = self.files[module.file]
            own = self.own_code(module, sf)
            for leaf, stmt_start, stmt_end in module.reexports:
                if leaf.name is None:
                    continue
                target = self.resolve(module.imports.get(leaf.name, EXTERNAL))[0]
                if target is None or target == module.path:
                    continue
                use = re.compile(
                    r"(?<![\w.$])(?<!::)" + re.escape(leaf.name) + r"(?![\w])(?!\s*:(?!:))"
                )
                for start, end in own:
                    m = use.search(sf.code, start, end)
                    if m:
                        line = sf.line_of(stmt_start)
                        add(module.path, target, sf, m.start(),
                            f"{leaf.name} (re-exported at line {line} and used here)")
                        break
        return found

    def own_code(self, module: Module, sf: SourceFile) -> list[tuple[int, int]]:
        """The spans of `module`'s own code: without its inline submodules and `use` items."""
        holes = [(s, e) for s, e, p in sf.regions if p != module.path and p[: len(module.path)] == module.path
                 and module.start <= s < module.end]
        holes += [(s, e) for s, e, _ in sf.uses if module.start <= s < module.end]
        holes.sort()
        spans, pos = [], module.start
        for s, e in holes:
            if s > pos:
                spans.append((pos, s))
            pos = max(pos, e)
        if pos < module.end:
            spans.append((pos, module.end))
        return spans


def contains(outer: ModPath, inner: ModPath) -> bool:
    """Whether `inner` is `outer` or one of its descendants (the crate root contains all)."""
    return inner[: len(outer)] == outer


def lifted(src: ModPath, dst: ModPath) -> tuple[ModPath, ModPath]:
    """The arrow `src -> dst` (neither containing the other) between the two children of their
    lowest common ancestor that contain them: `a::x -> b::y` is `a -> b`."""
    common = 0
    while src[common] == dst[common]:  # they differ before either ends
        common += 1
    return src[: common + 1], dst[: common + 1]


def lift(edges) -> dict[tuple[ModPath, ModPath], list[tuple[Path, int, str, ModPath, ModPath]]]:
    """The arrows between units: each use of `edges`, in the order found, under its lifted arrow
    and with the deepest modules it joins."""
    units: dict[tuple[ModPath, ModPath], list[tuple[Path, int, str, ModPath, ModPath]]] = {}
    for (src, dst), places in edges.items():
        units.setdefault(lifted(src, dst), []).extend((p, n, w, src, dst) for p, n, w in places)
    return units


def strongly_connected(nodes, edges) -> list[list]:
    """Tarjan's algorithm, iteratively; components with more than one node."""
    successors = {n: sorted({b for (a, b) in edges if a == n}) for n in nodes}
    index, low, on_stack, stack, result = {}, {}, set(), [], []
    counter = 0
    for root in sorted(nodes):
        if root in index:
            continue
        work = [(root, 0)]
        while work:
            node, i = work.pop()
            if i == 0:
                index[node] = low[node] = counter
                counter += 1
                stack.append(node)
                on_stack.add(node)
            recurse = False
            for j in range(i, len(successors[node])):
                nxt = successors[node][j]
                if nxt not in index:
                    work.append((node, j + 1))
                    work.append((nxt, 0))
                    recurse = True
                    break
                if nxt in on_stack:
                    low[node] = min(low[node], index[nxt])
            if recurse:
                continue
            if low[node] == index[node]:
                component = []
                while True:
                    w = stack.pop()
                    on_stack.discard(w)
                    component.append(w)
                    if w == node:
                        break
                if len(component) > 1:
                    result.append(sorted(component))
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[node])
    return sorted(result)


def closed_walk(component, edges) -> list:
    """A cycle through every module of a strongly connected component, starting at the first:
    shortest hops to the nearest module not yet visited, then back."""
    members = set(component)
    succ = {n: sorted(b for (a, b) in edges if a == n and b in members) for n in component}

    def shortest(src, goals):
        previous, queue = {src: None}, [src]
        for node in queue:
            if node in goals and node != src:
                path = [node]
                while previous[path[-1]] is not None:
                    path.append(previous[path[-1]])
                return path[::-1]
            for nxt in succ[node]:
                if nxt not in previous:
                    previous[nxt] = node
                    queue.append(nxt)
        return [src]

    walk = [component[0]]
    left = members - {component[0]}
    while left:
        hop = shortest(walk[-1], left)
        walk += hop[1:]
        left -= set(hop)
    walk += shortest(walk[-1], {component[0]})[1:]
    return walk


def show(path: ModPath) -> str:
    return "::".join(path) if path else "crate"


def check_cycles(crate: Crate) -> list[str]:
    edges = lift(crate.edges())
    problems = []
    for component in strongly_connected(list(crate.modules), edges):
        walk = closed_walk(component, edges)
        lines = [f"{crate.label}: cycle " + " -> ".join(show(p) for p in walk)]
        shown = set()
        for a, b in zip(walk, walk[1:]):
            shown.add((a, b))
            lines.append("    " + describe(crate, a, b, edges[(a, b)]))
        others = sorted(e for e in edges if e[0] in component and e[1] in component and e not in shown)
        for a, b in others:
            lines.append("    also " + describe(crate, a, b, edges[(a, b)]))
        problems.append("\n".join(lines))
    return problems


def describe(crate: Crate, a, b, places) -> str:
    """The arrow `a -> b`, citing the first use found that makes it (with the deepest modules
    of that use when they are not `a` and `b`) and counting the other lines."""
    path, line, what, src, dst = places[0]
    lines = {(p, n) for p, n, *_ in places}
    more = f" (and {len(lines) - 1} more line(s))" if len(lines) > 1 else ""
    deepest = f" ({show(src)} -> {show(dst)})" if (src, dst) != (a, b) else ""
    if len(what) > 100:
        what = what[:97] + "..."
    return f"{show(a)} -> {show(b)}{deepest}: {rel(path, crate.workspace)}:{line}: {what}{more}"


# ---------------------------------------------------------------------------------------------
# Crates


def find_crates(root: Path) -> list[Crate]:
    crates = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith(".") and d not in SKIPPED_DIRS)
        here = Path(dirpath)
        if "Cargo.toml" not in filenames:
            continue
        try:
            manifest = tomllib.loads((here / "Cargo.toml").read_text(encoding="utf-8"))
        except (tomllib.TOMLDecodeError, OSError):
            manifest = {}
        package = manifest.get("package", {})
        name = package.get("name", here.name)
        externs = set(BUILTIN_CRATES)
        for table in dependency_tables(manifest):
            externs |= {key.replace("-", "_") for key in table}
        lib_name = manifest.get("lib", {}).get("name", name).replace("-", "_")
        src = here / "src"
        if (src / "lib.rs").is_file():
            crates.append(Crate(name, src / "lib.rs", root, externs))
        bin_externs = externs | {lib_name}
        if (src / "main.rs").is_file():
            label = f"{name} (main.rs)" if (src / "lib.rs").is_file() else name
            crates.append(Crate(label, src / "main.rs", root, bin_externs))
        bins = src / "bin"
        if bins.is_dir():
            for entry in sorted(bins.iterdir()):
                main = entry if entry.suffix == ".rs" else entry / "main.rs"
                if main.is_file():
                    crates.append(Crate(f"{name} (bin {entry.stem})", main, root, bin_externs))
    return crates


def dependency_tables(manifest: dict):
    for key in ("dependencies", "dev-dependencies", "build-dependencies"):
        yield manifest.get(key, {})
    for target in manifest.get("target", {}).values():
        for key in ("dependencies", "dev-dependencies", "build-dependencies"):
            yield target.get(key, {})


def rel(path: Path, root: Path) -> str:
    try:
        return str(Path(path).resolve().relative_to(root.resolve()))
    except ValueError:
        return str(path)


def main(argv: list[str]) -> int:
    root = Path(argv[1]) if len(argv) > 1 else Path(__file__).resolve().parents[2]
    root = root.resolve()
    problems = check_lengths(root)
    crates = find_crates(root)
    for crate in crates:
        problems += check_cycles(crate)
    for problem in problems:
        print(problem)
    sys.stdout.flush()
    if problems:
        print(f"structure: {len(problems)} problem(s)", file=sys.stderr)
        return 1
    print(f"structure: ok ({len(crates)} module trees)", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
