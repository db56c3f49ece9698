#!/usr/bin/env python3
"""Planted-bug demos: show that a fuzz target finds a realistic bug, without touching the tree.

    python3 tests/fuzz/plant.py NAME... [--all] [--seconds S] [--seed N] [--empty] [--keep DIR]

For each NAME, ``tests/fuzz/planted/NAME.patch`` (a bug in the product code: an off-by-one
length check, a missing bounds or type check, a check that lost its second half) is applied
to a temporary copy of ``tunrelay/`` and ``tests/fuzz/``, and the target runs there with
atheris from its committed corpus (``--empty``: from an empty one) until it finds something
or ``--seconds`` pass. The finding is then replayed through the unpatched tree, which must
take it without complaint: what was found is the planted bug, not one of ours.

One line per target on standard output (a Markdown table row): the patch's one-line
description, whether it was found, the executions to find it (libFuzzer's count, the seed
corpus's first pass included), the seconds from start (seconds after the corpus was loaded
in brackets), and the exception with the product line that raised it. Exit status 0 if
every planted bug was found and none of the findings fails on the unpatched tree.
"""

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
PLANTED = os.path.join(HERE, "planted")
RUNNER = "tests/fuzz/run.py"

_EXECUTED = re.compile(r"^stat::number_of_executed_units: (\d+)", re.MULTILINE)
_LAST_STATUS = re.compile(r"^#(\d+)\s", re.MULTILINE)
_CRASH_FILE = re.compile(r"Test unit written to (\S+)")
_FRAME = re.compile(r'^\s*File "([^"]+)", line (\d+), in (\S+)', re.MULTILINE)


def planted_names():
    return sorted(name[:-len(".patch")] for name in os.listdir(PLANTED) if name.endswith(".patch"))


def description(name):
    """The patch's first line: ``# what the planted bug is``."""
    with open(os.path.join(PLANTED, name + ".patch")) as patch:
        first = patch.readline().strip()
    return first.lstrip("# ") if first.startswith("#") else "(no description)"


def _copy_tree(destination, empty_corpus_of=None):
    shutil.copytree(os.path.join(ROOT, "tunrelay"), os.path.join(destination, "tunrelay"),
                    ignore=shutil.ignore_patterns("__pycache__"))
    os.makedirs(os.path.join(destination, "tests"))
    shutil.copy(os.path.join(ROOT, "tests", "__init__.py"), os.path.join(destination, "tests"))
    shutil.copytree(HERE, os.path.join(destination, "tests", "fuzz"),
                    ignore=shutil.ignore_patterns("__pycache__"))
    if empty_corpus_of is not None:
        shutil.rmtree(os.path.join(destination, "tests", "fuzz", "corpus", empty_corpus_of), ignore_errors=True)


def _run_timed(command, cwd):
    """Run ``command``; return (stdout, stderr, seconds in all, seconds after libFuzzer's INITED)."""
    started = time.monotonic()
    process = subprocess.Popen(command, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               errors="replace")
    out = []
    reader = threading.Thread(target=lambda: out.append(process.stdout.read()))
    reader.start()
    errors, inited = [], None
    for line in process.stderr:   # libFuzzer's status lines: note when the seed corpus is in
        errors.append(line)
        if inited is None and "INITED" in line:
            inited = time.monotonic()
    process.wait()
    reader.join()
    ended = time.monotonic()
    return out[0] if out else "", "".join(errors), ended - started, (ended - inited) if inited else None


def _raised_at(stdout, name):
    """The exception atheris printed, and the deepest product (else target) frame it came from."""
    lines = stdout.splitlines()
    exception = next((line.strip() for line in lines[lines.index(" === Uncaught Python exception: ===") + 1:]
                      if line.strip()), "?") if " === Uncaught Python exception: ===" in lines else "?"
    frames = _FRAME.findall(stdout)
    product = [frame for frame in frames if "/tunrelay/" in frame[0]]
    target = [frame for frame in frames if frame[0].endswith("/targets/%s.py" % name)]
    frame = (product or target or frames or [None])[-1]
    if frame is None:
        return exception, "?"
    path = frame[0]
    for marker in ("/tunrelay/", "/tests/fuzz/"):
        if marker in path:
            path = marker.lstrip("/") + path.split(marker, 1)[1]
            break
    return exception, "%s:%s (%s)" % (path, frame[1], frame[2])


def demo(name, seconds, seed, empty, keep):
    work = tempfile.mkdtemp(prefix="plant-%s-" % name)
    try:
        _copy_tree(work, name if empty else None)
        subprocess.run(["git", "apply", os.path.join(PLANTED, name + ".patch")], cwd=work, check=True)
        command = [sys.executable, RUNNER, name, "--workdir", os.path.join(work, "run"), "--seconds", str(seconds),
                   "--", "-seed=%d" % seed]
        stdout, stderr, wall, after_init = _run_timed(command, work)
        executed = _EXECUTED.findall(stderr) or _LAST_STATUS.findall(stderr)
        crash = _CRASH_FILE.search(stderr)
        row = {"target": name, "bug": description(name), "found": crash is not None,
               "executions": int(executed[-1]) if executed else None, "seconds": wall, "after_init": after_init,
               "raised": "", "at": "", "unplanted": ""}
        if crash:
            row["raised"], row["at"] = _raised_at(stdout, name)
            replay = subprocess.run([sys.executable, os.path.join(ROOT, RUNNER), name, "--replay", crash.group(1)],
                                    cwd=ROOT, capture_output=True, text=True)
            row["unplanted"] = "passes" if replay.returncode == 0 else "FAILS TOO"
            if keep:
                os.makedirs(keep, exist_ok=True)
                shutil.copy(crash.group(1), os.path.join(keep, "%s-%s" % (name, os.path.basename(crash.group(1)))))
        elif keep:
            os.makedirs(keep, exist_ok=True)
            with open(os.path.join(keep, name + ".log"), "w") as log:
                log.write(stderr[-20000:])
        return row
    finally:
        shutil.rmtree(work, ignore_errors=True)


def main(argv):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("names", nargs="*", help="targets with a patch in tests/fuzz/planted/")
    parser.add_argument("--all", action="store_true", help="every planted patch, one after the other")
    parser.add_argument("--seconds", type=int, default=300, help="give up after this long (default 300)")
    parser.add_argument("--seed", type=int, default=1, help="libFuzzer's -seed (default 1)")
    parser.add_argument("--empty", action="store_true", help="start from an empty corpus, not the committed one")
    parser.add_argument("--keep", metavar="DIR", help="copy each finding (or the log of a miss) here")
    options = parser.parse_args(argv)
    names = planted_names() if options.all else options.names
    if not names:
        parser.error("name a target, or --all (planted: %s)" % ", ".join(planted_names()))
    print("| target | planted bug | found | executions | seconds (after corpus load) | raised at | unplanted tree |")
    print("|---|---|---|---|---|---|---|")
    failed = False
    for name in names:
        row = demo(name, options.seconds, options.seed, options.empty, options.keep)
        failed = failed or not row["found"] or row["unplanted"] != "passes"
        after = " (%.0f)" % row["after_init"] if row["after_init"] is not None else ""
        print("| %s | %s | %s | %s | %.0f%s | %s `%s` | %s |" % (
            row["target"], row["bug"], "yes" if row["found"] else "no (%d s)" % options.seconds,
            row["executions"] if row["executions"] is not None else "?", row["seconds"], after,
            row["at"], row["raised"], row["unplanted"]), flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
