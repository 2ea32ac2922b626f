#!/usr/bin/env python3
"""Fails when a crate's modules import each other in a circle.

Reads the production code of each `src` folder given (test modules left out), takes every
`crate::…` and `super::…` path as an edge from the module that names it to the deepest module
the path reaches, leaves out edges between a module and its own ancestors or descendants
(a parent re-exporting its child is structure, not a circle), and reports every cycle.

Usage: python3 scripts/import_cycles.py api/src core/src operator/src bench/src
"""
import os
import re
import sys
from collections import defaultdict


def modules(src):
    found = {}
    for root, _, files in os.walk(src):
        for name in files:
            if not name.endswith(".rs"):
                continue
            path = os.path.join(root, name)
            parts = os.path.relpath(path, src)[:-3].split(os.sep)
            if parts[-1] in ("mod", "lib", "main"):
                parts = parts[:-1]
            if parts and parts[-1] == "tests":
                continue
            found[tuple(parts)] = path
    return found


def deepest(mods, path):
    for n in range(len(path), -1, -1):
        if tuple(path[:n]) in mods:
            return tuple(path[:n])
    return ()


def imports(src):
    mods = modules(src)
    graph = defaultdict(set)
    for module, path in mods.items():
        with open(path, encoding="utf-8") as file:
            text = file.read()
        text = text.split("#[cfg(test)]")[0]
        text = re.sub(r"//[^\n]*", "", text)
        parent = list(module[:-1])
        for named in re.findall(r"crate::((?:\w+::)*\w+)", text):
            graph[module].add(deepest(mods, named.split("::")))
        for named in re.findall(r"\bsuper::((?:\w+::)*\w+)", text):
            graph[module].add(deepest(mods, parent + named.split("::")))
        for group in re.findall(r"\bsuper::\{([^}]*)\}", text):
            for item in group.split(","):
                item = item.strip().split("::")[0].split(" ")[0]
                if item:
                    graph[module].add(deepest(mods, parent + [item]))

    def related(a, b):
        return a[: len(b)] == b or b[: len(a)] == a

    return mods, {a: {b for b in targets if not related(a, b)} for a, targets in graph.items()}


def cycles(mods, graph):
    seen, stack, on_stack, found = set(), [], set(), []

    def visit(node):
        seen.add(node)
        stack.append(node)
        on_stack.add(node)
        for target in sorted(graph.get(node, ())):
            if target in on_stack:
                found.append(stack[stack.index(target):] + [target])
            elif target not in seen:
                visit(target)
        stack.pop()
        on_stack.discard(node)

    for node in sorted(mods):
        if node not in seen:
            visit(node)
    return found


def main(sources):
    failed = False
    for src in sources:
        for cycle in cycles(*imports(src)):
            failed = True
            names = " -> ".join("::".join(module) or "crate" for module in cycle)
            print(f"{src}: import circle: {names}")
    if failed:
        return 1
    print(f"no import circle in {', '.join(sources)}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
