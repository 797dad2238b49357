#!/usr/bin/env python3
"""Checks that the modules of every crate import downward only: no import cycles. Run by CI.

    python3 scripts/check_layers.py [--root DIR] [--verbose] [--graph CRATE]

Why: a layered crate can be read, tested and split bottom-up. A cycle means two parts can only
be understood, and changed, together.

For every crate `crates/*/src` (`src/lib.rs` and/or `src/main.rs` is the root) it builds the
module tree from the files (`mod x;` is `x.rs` or `x/mod.rs`; an inline `mod x { ... }` counts
as part of its file) and finds every reference from a module's code to another module of the
same crate: `use crate::..`, `use super::..`, `use self::..` (nested braces, `self`, globs,
`as`) and paths written in code (`crate::a::f()`, `super::X`, and `m::f()` where `m` is a child
module or a name a `use` bound). Comments, string and char literals, `macro_rules!` bodies and
test code (`#[cfg(test)]` items and the files of `#[cfg(test)] mod tests;`) are skipped.

A path goes to the module that DEFINES the item: it is followed through `use` bindings (`pub
use` re-exports, and private ones, which is how `super::X` reaches X) recursively; what cannot
be followed further goes to the deepest module named on the path. A module's `mod child;`
declarations and its re-exports of its own descendants are its facade, not edges. A
re-export of something from OUTSIDE its subtree is an edge: the facade depends on it.

It exits 1 on a cycle at either of two levels:
  * modules: the directed graph of modules (files) must be acyclic;
  * siblings: for every module with children (the crate root too), with each child's whole
    subtree collapsed into one node, the edges between children must be acyclic. This catches
    `schedule` and `cluster` importing each other from files deep inside the two folders.
Every edge of every cycle is printed with one example reference (file:line and the path).

One exception, announced every run: edges out of a module named `error` are not checked. An
error module names the data its variants carry (a chunk index, a memory report), while every
module returns its errors.
"""
import argparse
import os
import re
import sys
from collections import defaultdict
from pathlib import Path

TOKEN = re.compile(r'''
    (?P<ws>\s+) | (?P<line>//[^\n]*) | (?P<block>/\*)
  | (?P<raw>[bc]?r(?P<hashes>\#*)")
  | (?P<str>[bc]?"(?:\\.|[^"\\])*")
  | (?P<chr>b?'(?:\\(?:u\{[0-9a-fA-F_]+\}|x[0-9a-fA-F]{2}|.)|[^\\'])')
  | (?P<life>'[A-Za-z_]\w*)
  | (?P<id>(?:r\#)?[A-Za-z_]\w*)
  | (?P<num>\d\w*)
  | (?P<p>::|.)''', re.X | re.S)
ITEM_KW = {'fn', 'struct', 'enum', 'trait', 'type', 'const', 'static', 'union'}
PATH_KW = {'crate', 'super', 'self'}
COMMENT_EDGE = re.compile(r'/\*|\*/')
EOF = ('eof', '', 0)
OPEN, CLOSE = ('(', '[', '{'), (')', ']', '}')


def tokenize(src):
    """Tokens (kind, text, line): kinds id, rid (raw identifier), lit (strings and chars, text
    kept for #[path]), num, life, p (punctuation, `::` as one). Comments are dropped."""
    toks, i, line = [], 0, 1
    while i < len(src):
        m = TOKEN.match(src, i)
        kind, end = m.lastgroup, m.end()
        if kind == 'block':  # block comments nest
            depth, end = 1, len(src)
            for edge in COMMENT_EDGE.finditer(src, m.end()):
                depth += 1 if edge.group() == '/*' else -1
                if depth == 0:
                    end = edge.end()
                    break
        elif kind == 'raw':
            close = src.find('"' + m.group('hashes'), end)
            end = len(src) if close < 0 else close + 1 + len(m.group('hashes'))
        text = src[i:end]
        if kind in ('raw', 'str', 'chr'):
            toks.append(('lit', text, line))
        elif kind == 'id':
            toks.append(('rid', text[2:], line) if text.startswith('r#') else ('id', text, line))
        elif kind in ('num', 'life', 'p'):
            toks.append((kind, text, line))
        line += text.count('\n')
        i = end
    return toks + [EOF] * 4


def closing(toks, i):
    """Index of the bracket closing the one at toks[i]."""
    depth = 0
    for j in range(i, len(toks)):
        depth += (toks[j][1] in OPEN) - (toks[j][1] in CLOSE)  # literals keep their quotes
        if depth == 0:
            return j
    return len(toks) - 1


def skip_item(toks, i):
    """Index after the item starting at toks[i] (a `use` ends at `;`, others at `;` or their
    brace block); stops before a closing bracket it did not open (a field in a struct)."""
    j = i
    while toks[j][1] in ('#', 'pub'):  # past attributes and visibility
        paren = toks[j][1] == '#' or toks[j + 1][1] == '('
        j = closing(toks, j + 1) + 1 if paren else j + 1
    use, depth = toks[j][1] == 'use', 0
    for i in range(i, len(toks)):
        t = toks[i][1]
        if depth == 0 and (t == ';' or t == '{' and not use):
            return i + 1 if t == ';' else closing(toks, i) + 1
        if depth == 0 and t in CLOSE:
            return i
        depth += (t in OPEN) - (t in CLOSE)
    return len(toks) - 1


def is_test_cfg(attr):
    return attr == 'cfg(test)' or (attr.startswith('cfg(all(') and 'not(test' not in attr
                                   and re.search(r'[(,]test[,)]', attr) is not None)


class Mod:
    def __init__(self, path, file, owner, child_dir):
        self.path, self.file, self.owner, self.child_dir = path, file, owner, child_dir
        self.children = {}  # name -> module path (file or inline child)
        self.uses = {}      # name -> path segments, relative to this module, bound by a `use` here
        self.globs = []     # segments of `use ...::*` here
        self.items = set()  # names of items defined here
        self.refs = []      # (segments, line, is_reexport) written in this module's code
        self.decls = []     # (name, line, #[path] value or None) of `mod name;`


def parse_use_tree(toks, i, prefix, out):
    """Parses one use tree at toks[i], appending leaves (segments, alias, is_glob) to out."""
    segs = list(prefix)
    if toks[i][1] == '::':
        i += 1
    while True:
        kind, t, _ = toks[i]
        if t == '{' and kind == 'p':
            i += 1
            while toks[i][1] != '}' and toks[i] is not EOF:
                i = parse_use_tree(toks, i, segs, out)
                if toks[i][1] == ',':
                    i += 1
            return i + 1
        if t == '*':
            out.append((segs, None, True))
            return i + 1
        if kind not in ('id', 'rid'):
            return i
        if not (t == 'self' and segs and toks[i + 1][1] != '::'):  # `a::{self}` names a
            segs = segs + [t]
        i += 1
        if toks[i][1] == '::':
            i += 1
            continue
        alias = None
        if toks[i][1] == 'as':
            alias, i = toks[i + 1][1], i + 2
        out.append((segs, alias, False))
        return i


def parse_block(toks, i, mod, crate):
    """Walks one module's body from toks[i] to its closing `}` (or the end of the file),
    filling mod; returns the index after it. Inline modules recurse."""
    depth, vis = 0, False
    while toks[i] is not EOF:
        kind, t, line = toks[i]
        public, vis = vis, False
        if kind == 'p' and t == '#':  # attribute: #[...] or #![...]
            inner = toks[i + 1][1] == '!'
            j = i + 2 if inner else i + 1
            if toks[j][1] != '[':
                i += 1
                continue
            end = closing(toks, j)
            attr = ''.join(x[1] for x in toks[j + 1:end])
            i = end + 1
            if is_test_cfg(attr):
                if inner:  # #![cfg(test)]: the whole module is test code
                    return len(toks) - 1
                i = skip_item(toks, i)
            elif attr.startswith('path='):
                crate.pending_path = toks[j + 3][1].strip('"')
                crate.warn(f"{mod.file}:{line}: #[path]: the module's file is taken relative to this one")
            continue
        if t == '}' and depth == 0:
            return i + 1
        depth += (t == '{') - (t == '}')
        if kind != 'id':
            i += 1
            continue
        nxt = toks[i + 1]
        if t == 'pub':
            vis = True
            i += 1
            if toks[i][1] == '(':
                vis = toks[i + 1][1] != 'self'
                i = closing(toks, i) + 1
            continue
        if t == 'macro_rules' and nxt[1] == '!':
            mod.items.add(toks[i + 2][1])
            i = skip_item(toks, i + 3)
            continue
        if t == 'mod' and nxt[0] in ('id', 'rid') and depth == 0:
            name, after = nxt[1], toks[i + 2][1]
            path_attr, crate.pending_path = crate.pending_path, None
            if after == ';':
                mod.decls.append((name, line, path_attr))
                i += 3
            elif after == '{':
                child = crate.add(mod.path + (name,), mod.file, mod.owner, mod.child_dir / name)
                mod.children[name] = child.path
                i = parse_block(toks, i + 3, child, crate)
            else:
                i += 1
            continue
        if t == 'use':
            leaves = []
            i = parse_use_tree(toks, i + 1, [], leaves)
            for segs, alias, glob in leaves:
                mod.refs.append((segs, line, public and depth == 0))
                if depth == 0 and glob:
                    mod.globs.append(segs)
                elif depth == 0 and alias != '_' and segs[-1] not in PATH_KW:
                    mod.uses[alias or segs[-1]] = segs
            continue
        if t in ITEM_KW and depth == 0 and nxt[0] in ('id', 'rid'):
            mod.items.add(nxt[1])
        prev = toks[i - 1][1] if i else ''
        if prev not in ('::', '.') and (t in PATH_KW or nxt[1] == '::'):
            segs, j = [t], i + 1
            while toks[j][1] == '::' and toks[j + 1][0] in ('id', 'rid'):
                segs.append(toks[j + 1][1])
                j += 2
            if len(segs) > 1:
                mod.refs.append((segs, line, False))
            i = j
            continue
        i += 1
    return i


class Crate:
    def __init__(self, name, root_file, base):
        self.name, self.base = name, base
        self.mods, self.warnings, self.pending_path = {}, [], None
        self.load((), root_file)

    def warn(self, msg):
        self.warnings.append(f'warning: {self.name}: {msg}')

    def add(self, path, file, owner, child_dir):
        self.mods[path] = Mod(path, file, owner, child_dir)
        return self.mods[path]

    def load(self, path, file):
        is_dir_owner = file.name in ('lib.rs', 'main.rs', 'mod.rs')
        child_dir = file.parent if is_dir_owner else file.parent / file.stem
        mod = self.add(path, os.path.relpath(file, self.base), path, child_dir)
        parse_block(tokenize(file.read_text(encoding='utf-8', errors='replace')), 0, mod, self)
        for m in [m for m in self.mods.values() if m.owner == path]:  # the file and its inline mods
            for name, line, path_attr in m.decls:
                if path_attr:
                    options = [file.parent / path_attr]
                else:
                    options = [m.child_dir / f'{name}.rs', m.child_dir / name / 'mod.rs']
                found = next((f for f in options if f.is_file()), None)
                m.children[name] = m.path + (name,)
                if found:
                    self.load(m.path + (name,), found)
                else:
                    self.warn(f'{m.file}:{line}: no file for `mod {name};`')
                    self.add(m.path + (name,), m.file, m.path + (name,), m.child_dir / name)

    # -- resolution ---------------------------------------------------------------------
    def resolve(self, ctx, segs, seen=frozenset()):
        """The (module, item) a path written in module ctx refers to; None when outside the
        crate (std, other crates, local names). item is None when the path names a module."""
        m, s = ctx, list(segs)
        if s[0] == 'crate':
            m, s = (), s[1:]
        elif s[0] in ('self', 'super'):
            while s and s[0] in ('self', 'super'):
                if s[0] == 'super':
                    if not m:
                        return None
                    m = m[:-1]
                s = s[1:]
        elif s[0] not in self.mods[ctx].children and self.mods[ctx].uses.get(s[0], s[:1]) == s[:1]:
            return None  # not ours, or `use other_crate;`
        return self.walk(m, s, seen)

    def walk(self, m, s, seen):
        for k, seg in enumerate(s):
            mod = self.mods[m]
            if seg in mod.children:
                m = mod.children[seg]
                continue
            rest, key = s[k + 1:], (m, seg)
            if seg in mod.items or key in seen:
                return m, seg
            if seg in mod.uses:
                return self.resolve(m, mod.uses[seg] + rest, seen | {key})
            for glob in mod.globs:
                target = self.resolve(m, glob, seen | {key})
                there = target and target[1] is None and self.mods[target[0]]
                if there and (seg in there.children or seg in there.uses or seg in there.items):
                    return self.walk(target[0], [seg] + rest, seen | {key})
            return m, seg
        return m, None

    def edges(self):
        """{(src, dst): (file, line, text)} between file modules; and how many edges out of
        error modules were ignored."""
        edges, ignored = {}, set()
        for mod in sorted(self.mods.values(), key=lambda m: m.path):
            for segs, line, reexport in mod.refs:
                target = self.resolve(mod.path, segs)
                if target is None:
                    continue
                src, dst = mod.owner, self.mods[target[0]].owner
                if src == dst or (reexport and dst[:len(src)] == src):
                    continue
                if src[-1:] == ('error',):
                    ignored.add((src, dst))
                    continue
                verb = 're-exports' if reexport else 'uses'
                edges.setdefault((src, dst), (mod.file, line, f"{verb} {'::'.join(segs)}"))
        return edges, len(ignored)


def cycles(succ):
    """Shortest cycles that together cover every edge lying on a cycle: for each edge u -> v
    not yet shown, the shortest way back from v to u (breadth-first)."""
    found, covered = [], set()
    for u in sorted(succ):
        for v in sorted(succ[u]):
            if (u, v) in covered:
                continue
            prev, queue = {v: None}, [v]
            for x in queue:
                for y in sorted(succ.get(x, ())):
                    if y not in prev:
                        prev[y] = x
                        queue.append(y)
            if u not in prev:
                continue
            back, x = [], u
            while x is not None:
                back.append(x)
                x = prev[x]
            cycle = [u] + back[::-1]
            covered.update(zip(cycle, cycle[1:]))
            found.append(cycle)
    return found


def name(path, base=()):
    return '::'.join(path[len(base):]) or 'crate'


def sibling_edges(edges, parent):
    """{(child, child): example}: the edges between the children of parent, each child's
    subtree collapsed into it."""
    n, out = len(parent), {}
    for (src, dst), example in sorted(edges.items()):
        if src[:n] == parent == dst[:n] and len(src) > n and len(dst) > n and src[n] != dst[n]:
            out.setdefault((src[:n + 1], dst[:n + 1]), example)
    return out


def check(crate, verbose):
    """Prints the crate's cycles; returns (how many, a summary line, edges out of error modules)."""
    edges, ignored = crate.edges()
    if verbose:
        for (src, dst), (file, line, text) in sorted(edges.items()):
            print(f'{crate.name}: {name(src)} -> {name(dst)}  ({file}:{line} {text})')
    nodes = sorted({m.owner for m in crate.mods.values()})
    shown, count = set(), 0
    levels = [('cycle among modules', (), edges)]
    levels += [(f'cycle among children of {name(p)}', p, sibling_edges(edges, p)) for p in nodes]
    for title, base, level in levels:
        succ = defaultdict(set)
        for src, dst in level:
            succ[src].add(dst)
        for cycle in cycles(succ):
            pairs = list(zip(cycle, cycle[1:]))
            if frozenset(pairs) in shown:  # children that are single files: shown as modules
                continue
            shown.add(frozenset(pairs))
            count += 1
            print(f"{crate.name}: {title}: {' -> '.join(name(p, base) for p in cycle)}")
            for a, b in pairs:
                file, line, text = level[(a, b)]
                print(f'    {name(a, base)} -> {name(b, base)}: {file}:{line} {text}')
    status = 'acyclic' if count == 0 else f'{count} cycle{"s" * (count != 1)}'
    return count, f'{crate.name}: {len(nodes)} modules, {len(edges)} edges, {status}', ignored


def load_crates(root):
    crates = []
    for src in sorted(root.glob('crates/*/src')):
        roots = [f for f in (src / 'lib.rs', src / 'main.rs') if f.is_file()]
        for f in roots:
            label = src.parent.name + (' (bin)' if f.name == 'main.rs' and len(roots) > 1 else '')
            crates.append(Crate(label, f, root))
    return crates


def main():
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--root', type=Path, default=Path(__file__).resolve().parent.parent,
                    help='directory holding crates/*/src (default: this repository)')
    ap.add_argument('--verbose', action='store_true', help='print every module-level edge')
    ap.add_argument('--graph', metavar='CRATE', help="print the edges between the crate root's children")
    args = ap.parse_args()
    crates = load_crates(args.root.resolve())
    if not crates:
        sys.exit(f'no crates/*/src/lib.rs or main.rs under {args.root}')
    for crate in crates:
        for w in crate.warnings:
            print(w, file=sys.stderr)
    if args.graph:
        chosen = [c for c in crates if c.name == args.graph]
        if not chosen:
            sys.exit(f"no crate {args.graph!r}; crates: {', '.join(c.name for c in crates)}")
        for (a, b), (file, line, text) in sorted(sibling_edges(chosen[0].edges()[0], ()).items()):
            print(f'{name(a)} -> {name(b)}  (e.g. {file}:{line} {text})')
        return 0
    total, summaries, notes = 0, [], []
    for crate in crates:
        count, summary, ignored = check(crate, args.verbose)
        total += count
        summaries.append(summary)
        if any(m.path and m.path[-1] == 'error' and m.owner == m.path for m in crate.mods.values()):
            notes.append(f'{ignored} ignored in {crate.name}')
    print('\n'.join(summaries))
    print(f"note: edges out of error modules are not checked ({', '.join(notes) or 'none found'})")
    return 1 if total else 0


if __name__ == '__main__':
    sys.exit(main())
