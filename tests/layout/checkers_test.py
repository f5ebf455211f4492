#!/usr/bin/env python3
"""The layering and unit-size checkers fail on a tree that breaks their rule.

Builds small trees in a temporary directory (a CMakeLists.txt with two
libraries, a header each) and runs scripts/layering and scripts/unit-sizes
on them: a tree that keeps the rules passes, one forbidden include, one
cycle, one function of 121 lines and one class of 301 lines each fail,
naming the file, the line and the rule.
"""

import os
import subprocess
import sys
import tempfile

ROOT = os.path.abspath(sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), "..", ".."))
LAYERING = os.path.join(ROOT, "scripts", "layering")
UNIT_SIZES = os.path.join(ROOT, "scripts", "unit-sizes")
failures = []


def write(root, path, text):
    full = os.path.join(root, path)
    os.makedirs(os.path.dirname(full), exist_ok=True)
    with open(full, "w") as f:
        f.write(text)


def run(cmd, cwd=None):
    p = subprocess.run(cmd, capture_output=True, text=True, cwd=cwd)
    return p.returncode, p.stdout + p.stderr


def expect(name, ok, detail):
    if not ok:
        failures.append(f"{name}: {detail}")
    print(("ok   " if ok else "FAIL ") + name)


def layered_tree(root, low_includes_high=False, high_links_low=True, low_links_high=False):
    write(root, "CMakeLists.txt", "add_subdirectory(agent)\n")
    write(root, "agent/CMakeLists.txt",
          "setdiag_library(setdiag_agent_low SOURCES low/low.cc"
          + (" DEPS setdiag_agent_high" if low_links_high else "") + ")\n"
          "setdiag_library(setdiag_agent_high SOURCES high/high.cc"
          + (" DEPS setdiag_agent_low" if high_links_low else "") + ")\n")
    write(root, "agent/low/low.h", "#pragma once\n")
    write(root, "agent/low/low.cc",
          '#include "agent/low/low.h"\n' + ('#include "agent/high/high.h"\n' if low_includes_high else ""))
    write(root, "agent/high/high.h", '#pragma once\n#include "agent/low/low.h"\n')
    write(root, "agent/high/high.cc", '#include "agent/high/high.h"\n')


with tempfile.TemporaryDirectory() as d:
    layered_tree(d)
    rc, out = run([sys.executable, LAYERING, "--root", d])
    expect("layering passes a tree that keeps its rules", rc == 0, out)

with tempfile.TemporaryDirectory() as d:
    layered_tree(d, low_includes_high=True)
    rc, out = run([sys.executable, LAYERING, "--root", d])
    expect("layering refuses an include of a library not linked",
           rc == 1 and "agent/low/low.cc:2: includes agent/high/high.h of setdiag_agent_high" in out
           and "setdiag_agent_low does not link it" in out, out)

with tempfile.TemporaryDirectory() as d:
    layered_tree(d, low_links_high=True)
    rc, out = run([sys.executable, LAYERING, "--root", d])
    expect("layering refuses a cycle", rc == 1 and "links itself" in out, out)

with tempfile.TemporaryDirectory() as d:
    body = "\n".join(f"  x += {i};" for i in range(117))
    write(d, "agent/long.cc", "int Short() { return 1; }\n\nint Long() {\n  int x = 0;\n" + body + "\n}\n")
    rc, out = run([sys.executable, UNIT_SIZES, "--check", os.path.join(d, "agent")], cwd=d)
    expect("unit-sizes passes a function of 120 lines", rc == 0, out)
    write(d, "agent/long.cc",
          "int Long() {\n  int x = 0;\n" + body + "\n  x += 1;\n}\n")
    rc, out = run([sys.executable, UNIT_SIZES, "--check", os.path.join(d, "agent")], cwd=d)
    expect("unit-sizes refuses a function of 121 lines",
           rc == 1 and "function Long is 121 lines, over 120" in out, out)
    members = "\n".join(f"  int m{i} = {i};" for i in range(299))
    write(d, "agent/big.h", "class Big {\n" + members + "\n};\n")
    rc, out = run([sys.executable, UNIT_SIZES, "--check", os.path.join(d, "agent")], cwd=d)
    expect("unit-sizes refuses a class body of 301 lines",
           rc == 1 and "class Big is 301 lines, over 300" in out, out)

# The thread safety analysis as scripts/thread-safety runs it: a member
# ABSL_GUARDED_BY a common/mutex.h Mutex, written without the lock, fails;
# with a MutexLock it passes.
clang = None
for c in ("clang++", "clang++-14"):
    if subprocess.run(["which", c], capture_output=True).returncode == 0:
        clang = c
        break
if clang is None:
    expect("clang++ for the thread safety analysis", False, "clang++ is not installed")
else:
    with tempfile.TemporaryDirectory() as d:
        def unit(locked):
            write(d, "unit.cc", '#include "common/mutex.h"\n'
                  "class Counter {\n public:\n  void Add() {\n"
                  + ("    setdiag::MutexLock lock(&mu_);\n" if locked else "")
                  + "    ++n_;\n  }\n private:\n  setdiag::Mutex mu_;\n"
                  "  int n_ ABSL_GUARDED_BY(mu_) = 0;\n};\n"
                  "void Use() { Counter c; c.Add(); }\n")
            return run([clang, "-std=c++20", "-fsyntax-only", "-Wthread-safety",
                        "-Werror=thread-safety", "-I", ROOT, os.path.join(d, "unit.cc")])
        rc, out = unit(locked=True)
        expect("the analysis passes a guarded member written under its lock", rc == 0, out)
        rc, out = unit(locked=False)
        expect("the analysis refuses a guarded member written without its lock",
               rc != 0 and "requires holding mutex 'mu_'" in out, out)

if failures:
    print("\n".join(failures), file=sys.stderr)
    sys.exit(1)
