"""Tests of structure.py on small synthetic workspaces.

Run: python3 -m unittest discover -s tests/checks
"""

import subprocess
import sys
import tempfile
import textwrap
import unittest
from pathlib import Path

import structure

SCRIPT = Path(__file__).resolve().parent / "structure.py"


def cargo(name: str) -> str:
    return f'[package]\nname = "{name}"\nversion = "0.1.0"\nedition = "2021"\n'


class Workspace:
    """A temporary workspace: files written from a {relative path: text} map."""

    def __init__(self, files: dict[str, str]):
        self.tmp = tempfile.TemporaryDirectory()
        self.root = Path(self.tmp.name)
        (self.root / "Cargo.toml").write_text('[workspace]\nmembers = ["*"]\n')
        for rel, text in files.items():
            path = self.root / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(textwrap.dedent(text).lstrip("\n"))

    def run(self) -> tuple[int, str]:
        done = subprocess.run(
            [sys.executable, str(SCRIPT), str(self.root)],
            capture_output=True,
            text=True,
            timeout=60,
        )
        return done.returncode, done.stdout

    def close(self):
        self.tmp.cleanup()


class CheckCase(unittest.TestCase):
    def check(self, files: dict[str, str]) -> tuple[int, str]:
        ws = Workspace(files)
        self.addCleanup(ws.close)
        return ws.run()

    def assertPasses(self, files):
        code, out = self.check(files)
        self.assertEqual((code, out), (0, ""))

    def assertFails(self, files) -> str:
        code, out = self.check(files)
        self.assertEqual(code, 1, out)
        return out

    def deepest_arrows(self, files, label: str) -> dict[tuple[str, str], list[tuple[int, str]]]:
        """The arrows of crate `label` between the deepest modules, before lifting:
        {("a::x", "b::y"): [(line, what), ...]}."""
        ws = Workspace(files)
        self.addCleanup(ws.close)
        [crate] = [c for c in structure.find_crates(ws.root) if c.label == label]
        return {
            (structure.show(a), structure.show(b)): [(line, what) for _, line, what in places]
            for (a, b), places in crate.edges().items()
        }


class Cycles(CheckCase):
    def test_a_cycle_is_reported_with_the_lines_that_make_it(self):
        out = self.assertFails({
            "cyc/Cargo.toml": cargo("cyc"),
            "cyc/src/lib.rs": "pub mod a;\npub mod b;\n",
            "cyc/src/a.rs": """
                use crate::b::B;
                pub struct A;
                pub fn f(_: B) {}
            """,
            "cyc/src/b.rs": """
                //! B.
                use crate::{
                    a::A,
                };
                pub struct B(pub A);
            """,
        })
        lines = out.splitlines()
        self.assertEqual(lines[0], "cyc: cycle a -> b -> a")
        self.assertEqual(lines[1], "    a -> b: cyc/src/a.rs:1: use crate::b::B")
        self.assertEqual(lines[2], "    b -> a: cyc/src/b.rs:2: use crate::a::A")
        self.assertEqual(len(lines), 3)

    def test_no_cycle_passes(self):
        self.assertPasses({
            "ok/Cargo.toml": cargo("ok"),
            "ok/src/lib.rs": "pub mod a;\npub mod b;\n",
            "ok/src/a.rs": """
                use crate::b::B;
                pub struct A(pub B);
                pub fn g() { crate::b::f() }
            """,
            # Comments, strings, char literals and test code that name `a` are not uses.
            "ok/src/b.rs": r'''
                // use crate::a::A;
                /* crate::a::A /* nested */ crate::a::A */
                pub struct B;
                pub fn f() {
                    let _quote = '"'; let _s = "crate::a::A \" crate::a::A";
                    let _r = r#"crate::a::A"#;
                    fn _l<'a>(x: &'a str) -> &'a str { x }
                }
                #[cfg(test)]
                mod tests {
                    use crate::a::A;
                    fn t() { let _ = crate::a::g(); }
                }
                #[cfg(test)]
                fn helper() -> crate::a::A { todo!() }
            ''',
        })

    def test_an_item_reexported_from_another_subtree_used_by_a_sibling_is_no_cycle(self):
        # s uses `p::Thing` and more, which p re-exports from q (Thing through q's own facade,
        # from q::c); p itself uses s. Taken as a use of p, that would be the cycle
        # s -> p -> s; it is a use of q, which uses nothing. (An item p re-exports from its own
        # submodule is p's: with lifting, s -> p::c is s -> p.)
        files = {
            "re/Cargo.toml": cargo("re"),
            "re/src/lib.rs": "pub mod p;\npub mod q;\npub mod s;\n",
            "re/src/p/mod.rs": """
                pub use crate::q::{Thing, Third as Renamed};
                pub use super::q::d::Other;
                pub(crate) use crate::q::d::nested::{Deep};
                use crate::s::Helper;
                pub fn make() -> Helper { Helper }
            """,
            "re/src/q/mod.rs": "mod c;\npub mod d;\npub use c::Thing;\npub use self::d::Third;\n",
            "re/src/q/c.rs": "pub struct Thing;\n",
            "re/src/q/d/mod.rs": "pub mod nested;\npub struct Other;\npub struct Third;\n",
            "re/src/q/d/nested.rs": "pub struct Deep;\n",
            "re/src/s.rs": """
                use crate::p::{Thing, Renamed};
                use crate::p::Other;
                pub struct Helper;
                pub fn f(_: Thing, _: Other, _: Renamed, _: crate::p::Deep) {}
            """,
        }
        self.assertPasses(files)
        arrows = self.deepest_arrows(files, "re")
        self.assertEqual(sorted(arrows), [
            ("p", "s"), ("s", "q::c"), ("s", "q::d"), ("s", "q::d::nested"),
        ])

    def test_a_parent_using_a_reexported_child_item_the_child_uses_the_parent_is_no_cycle(self):
        # p -> p::c (the re-exported Thing, used in p) and p::c -> p (super::Core): a module and
        # its submodules are one unit, so neither arrow counts.
        self.assertPasses({
            "ru/Cargo.toml": cargo("ru"),
            "ru/src/lib.rs": "pub mod p;\n",
            "ru/src/p/mod.rs": """
                mod c;
                pub use c::Thing;
                pub struct Core { pub thing: Thing }
            """,
            "ru/src/p/c.rs": "use super::Core;\npub struct Thing;\npub fn f(_: &Core) {}\n",
        })

    def test_a_child_using_its_parent_while_the_parent_uses_the_child_is_no_cycle(self):
        # The parent's type has its `impl` in the child file; the parent names the child's type;
        # a module uses an item of the crate root, which names that module's type.
        self.assertPasses({
            "pc/Cargo.toml": cargo("pc"),
            "pc/src/lib.rs": """
                pub mod p;
                pub struct Settings;
                pub fn start() -> p::Core { p::Core::new(Settings) }
            """,
            "pc/src/p/mod.rs": """
                mod parts;
                use crate::Settings;
                pub struct Core { part: parts::Part, settings: Settings }
            """,
            "pc/src/p/parts.rs": """
                use super::Core;
                use crate::Settings;
                pub struct Part;
                impl Core {
                    pub fn new(settings: Settings) -> Core { Core { part: Part, settings } }
                    pub fn part(&self) -> &Part { &self.part }
                }
            """,
        })

    def test_children_of_sibling_subtrees_using_each_other_are_a_cycle(self):
        out = self.assertFails({
            "sib/Cargo.toml": cargo("sib"),
            "sib/src/lib.rs": "pub mod a;\npub mod b;\npub struct Root;\n",
            # arrows to ancestors and descendants around the cycle do not join it
            "sib/src/a/mod.rs": "pub mod x;\npub fn f() -> x::X { x::X }\n",
            "sib/src/a/x.rs": """
                use crate::b::y::Y;
                use crate::Root;
                pub struct X;
                pub fn g(_: Y, _: Root) { super::f(); }
            """,
            "sib/src/b/mod.rs": "pub mod y;\n",
            "sib/src/b/y.rs": "pub struct Y(pub crate::a::x::X);\n",
        })
        lines = out.splitlines()
        self.assertEqual(lines[0], "sib: cycle a -> b -> a")
        self.assertEqual(lines[1],
                         "    a -> b (a::x -> b::y): sib/src/a/x.rs:1: use crate::b::y::Y")
        self.assertEqual(lines[2], "    b -> a (b::y -> a::x): sib/src/b/y.rs:1: crate::a::x::X")
        self.assertEqual(len(lines), 3)

    def test_a_cycle_between_subtrees_through_different_children_is_reported_between_them(self):
        # a::x -> b::y and b::z -> a::w: no two of the four modules form a cycle, but a and b,
        # each one unit with its submodules, do.
        out = self.assertFails({
            "st/Cargo.toml": cargo("st"),
            "st/src/lib.rs": "pub mod a;\npub mod b;\n",
            "st/src/a/mod.rs": "pub mod w;\npub mod x;\n",
            "st/src/a/w.rs": "pub struct W;\n",
            "st/src/a/x.rs": "use crate::b::y::Y;\npub fn f(_: Y) {}\n",
            "st/src/b/mod.rs": "pub mod y;\npub mod z;\n",
            "st/src/b/y.rs": "pub struct Y;\n",
            "st/src/b/z.rs": "pub fn g(_: crate::a::w::W) {}\n",
        })
        self.assertEqual(out.splitlines(), [
            "st: cycle a -> b -> a",
            "    a -> b (a::x -> b::y): st/src/a/x.rs:1: use crate::b::y::Y",
            "    b -> a (b::z -> a::w): st/src/b/z.rs:1: crate::a::w::W",
        ])

    def test_a_cycle_inside_a_subtree_is_reported_between_the_children_of_the_common_ancestor(self):
        # a::p::q -> a::r is a::p -> a::r, and a::r -> a::p::s is a::r -> a::p; the cycle is
        # inside a, so it is not a -> ... but a::p -> a::r -> a::p. Several uses under one
        # arrow are counted.
        out = self.assertFails({
            "in/Cargo.toml": cargo("in"),
            "in/src/lib.rs": "pub mod a;\n",
            "in/src/a/mod.rs": "pub mod p;\npub mod r;\n",
            "in/src/a/p/mod.rs": "pub mod q;\npub mod s;\n",
            "in/src/a/p/q.rs": "use crate::a::r::R;\npub fn f(_: R) {}\n",
            "in/src/a/p/s.rs": "pub struct S;\npub fn g() { super::super::r::h(); }\n",
            "in/src/a/r.rs": "use super::p::s::S;\npub struct R(pub S);\npub fn h() {}\n",
        })
        self.assertEqual(out.splitlines(), [
            "in: cycle a::p -> a::r -> a::p",
            "    a::p -> a::r (a::p::q -> a::r): in/src/a/p/q.rs:1: use crate::a::r::R"
            " (and 1 more line(s))",
            "    a::r -> a::p (a::r -> a::p::s): in/src/a/r.rs:1: use super::p::s::S",
        ])

    def test_super_self_groups_and_paths_in_code(self):
        files = {
            "sp/Cargo.toml": cargo("sp"),
            "sp/src/lib.rs": "pub mod x;\npub mod y;\n",
            "sp/src/x/mod.rs": "pub mod deep;\npub fn top() {}\n",
            # deep reaches y with super::super::y::..., y reaches deep in code
            "sp/src/x/deep.rs": """
                pub fn f() {
                    super::super::y::g();
                }
            """,
            "sp/src/y.rs": """
                use crate::x::{self};
                pub fn g() {}
                pub fn h() { crate::x::deep::f(); x::top(); }
            """,
        }
        out = self.assertFails(files)
        self.assertIn("sp: cycle x -> y -> x\n", out)
        self.assertIn("x -> y (x::deep -> y): sp/src/x/deep.rs:2: super::super::y::g", out)
        self.assertIn("y -> x: sp/src/y.rs:1: use crate::x (and 1 more line(s))", out)
        # below the reported level: the path in code reaches x::deep, the group's `self` binds x
        arrows = self.deepest_arrows(files, "sp")
        self.assertEqual(arrows[("y", "x::deep")], [(3, "crate::x::deep::f")])
        self.assertEqual(arrows[("y", "x")], [(1, "use crate::x"), (3, "x::top")])

    def test_use_super_self_and_a_child_named_without_self(self):
        # m names its child k without `self::`, and k re-exports a function of the cousin
        # n::j; n::j reaches m with `super::super::m::{self, Config}`.
        out = self.assertFails({
            "us/Cargo.toml": cargo("us"),
            "us/src/lib.rs": "pub mod m;\npub mod n;\n",
            "us/src/m/mod.rs": """
                pub mod k;
                pub struct Config;
                pub fn go() { k::run() }
            """,
            "us/src/m/k.rs": "pub use crate::n::j::run;\n",
            "us/src/n/mod.rs": "pub mod j;\n",
            "us/src/n/j.rs": "use super::super::m::{self, Config};\npub fn run() { let _ = m::Config; }\n",
        })
        self.assertIn("us: cycle m -> n -> m\n", out)
        self.assertIn("m -> n (m -> n::j): us/src/m/mod.rs:3: k::run", out)
        self.assertIn("n -> m (n::j -> m): us/src/n/j.rs:1: use super::super::m"
                      " (and 1 more line(s))", out)

    def test_test_only_files_and_inline_test_modules_are_ignored(self):
        self.assertPasses({
            "to/Cargo.toml": cargo("to"),
            "to/src/lib.rs": "pub mod a;\npub mod b;\n#[cfg(test)]\nmod helpers;\n",
            "to/src/a.rs": """
                use crate::b::B;
                pub struct A(B);
                #[cfg(test)]
                #[path = "a_tests.rs"]
                mod tests;
            """,
            "to/src/a_tests.rs": "use crate::b::uses_a;\n",
            "to/src/helpers.rs": "use crate::a::A;\nuse crate::b::B;\n",
            "to/src/b.rs": """
                pub struct B;
                #[cfg(all(test, unix))]
                pub fn uses_a(_: crate::a::A) {}
            """,
        })

    def test_path_attributes_and_inline_modules(self):
        out = self.assertFails({
            "pa/Cargo.toml": cargo("pa"),
            "pa/src/lib.rs": """
                #[path = "impls/the_x.rs"]
                pub mod x;
                pub mod outer {
                    pub mod inner {
                        pub struct I(pub crate::x::X);
                    }
                }
            """,
            "pa/src/impls/the_x.rs": "use crate::outer::inner::I;\npub struct X;\npub fn f(_: I) {}\n",
        })
        self.assertIn("pa: cycle outer -> x -> outer\n", out)
        self.assertIn("outer -> x (outer::inner -> x): pa/src/lib.rs:5: crate::x::X", out)
        self.assertIn("x -> outer (x -> outer::inner): pa/src/impls/the_x.rs:1:"
                      " use crate::outer::inner::I", out)

    def test_a_binary_using_its_library_by_name_is_not_an_edge(self):
        self.assertPasses({
            "bin/Cargo.toml": cargo("my-bin"),
            "bin/src/lib.rs": "pub mod a;\n",
            "bin/src/a.rs": "pub fn run() {}\n",
            "bin/src/main.rs": "use my_bin::a;\nfn main() { a::run(); my_bin::a::run(); }\n",
        })


def numbered(count: int) -> str:
    return "".join(f"pub const C{i}: u32 = {i};\n" for i in range(count))


class Lengths(CheckCase):
    def test_601_lines_are_reported(self):
        out = self.assertFails({
            "big/Cargo.toml": cargo("big"),
            "big/src/lib.rs": "pub mod long;\n",
            "big/src/long.rs": numbered(601),
        })
        self.assertEqual(out, "big/src/long.rs: 601 lines of non-test code (limit 600)\n")

    def test_600_lines_and_a_large_test_module_pass(self):
        tests = "#[cfg(test)]\nmod tests {\n" + "    #[test]\n    fn t() {}\n" * 400 + "}\n"
        self.assertPasses({
            "big/Cargo.toml": cargo("big"),
            "big/src/lib.rs": "pub mod long;\n",
            "big/src/long.rs": numbered(600) + tests,
        })

    def test_test_files_benches_examples_and_the_e2e_crate_are_not_checked(self):
        self.assertPasses({
            "big/Cargo.toml": cargo("big"),
            "big/src/lib.rs": "#[cfg(test)]\n#[path = \"lib_tests.rs\"]\nmod tests;\n",
            "big/src/lib_tests.rs": numbered(700),
            "big/tests/flows.rs": numbered(700),
            "big/benches/b.rs": numbered(700),
            "big/examples/e.rs": numbered(700),
            "tests/Cargo.toml": cargo("e2e"),
            "tests/src/lib.rs": numbered(700),
            "fuzz/fuzz_targets/f.rs": numbered(700),
            "target/debug/build/x/out/gen.rs": numbered(700),
        })


class Parsing(unittest.TestCase):
    def test_strip_keeps_offsets_and_code(self):
        src = (
            "let a = '\"'; let b = '\\''; fn f<'a>(x: &'a str) {} // crate::x\n"
            "let s = b\"crate::y\"; let r = br##\"a \"# crate::z\"##; /* a /* b */ c */ crate::w::V"
        )
        out = structure.strip_comments_and_literals(src)
        self.assertEqual(len(out), len(src))
        self.assertEqual(out.count("\n"), 1)
        self.assertNotIn("crate::x", out)
        self.assertNotIn("crate::y", out)
        self.assertNotIn("crate::z", out)
        self.assertIn("crate::w::V", out)
        self.assertIn("fn f<'a>(x: &'a str) {}", out)

    def test_use_trees(self):
        body = "crate::{a::{self, X as Y}, b::*, c::{d::{E, F}, G}, r#type::H as _}"
        leaves = structure.parse_use_tree(body, 0)
        got = [("::".join(l.segments), l.name) for l in leaves]
        self.assertEqual(got, [
            ("crate::a", "a"),
            ("crate::a::X", "Y"),
            ("crate::b::*", None),
            ("crate::c::d::E", "E"),
            ("crate::c::d::F", "F"),
            ("crate::c::G", "G"),
            ("crate::type::H", None),
        ])
        leaves = structure.parse_use_tree("super::{self, x}", 0)
        self.assertEqual([("::".join(l.segments), l.name) for l in leaves],
                         [("super", None), ("super::x", "x")])

    def test_non_test_lines(self):
        self.assertEqual(structure.non_test_lines("a\nb\n    #[cfg(test)]\nc\n"), 2)
        self.assertEqual(structure.non_test_lines("a\nb\n"), 2)


if __name__ == "__main__":
    unittest.main()
