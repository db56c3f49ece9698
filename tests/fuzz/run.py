#!/usr/bin/env python3
"""Run one coverage-guided fuzz target (atheris/libFuzzer), or replay inputs through it.

    python3 tests/fuzz/run.py NAME [--runs N] [--seconds S] [--workdir DIR] [-- LIBFUZZER ARGS]
    python3 tests/fuzz/run.py NAME --replay FILE_OR_DIR... [--coverage]
    python3 tests/fuzz/run.py --list

NAME is a module in ``tests/fuzz/targets/`` (or a path to a ``.py`` file with the same
shape, which the harness's own tests use). A target module defines:

* ``fuzz_one(data: bytes)``: feed one input to the product and check what it does;
* ``REJECTIONS``: the tuple of exceptions the product documents for bad input and that
  ``fuzz_one`` lets escape (anything else is a finding and stops the fuzzer);
* ``COVERS``: the product files whose line coverage ``--coverage`` reports;
* optionally ``MAX_LEN`` (default 4096), the largest input libFuzzer generates.

Fuzzing mode instruments the target and every ``tunrelay`` module it imports (not
libraries: instrumenting PyYAML made the config target seven times slower). New
inputs go to ``WORKDIR/corpus``; the committed seeds in ``tests/fuzz/corpus/NAME`` are
read, never written. A finding is written to ``WORKDIR/crash-*`` and the exit status is
non-zero (libFuzzer's 77 for an exception).

Replay mode runs each file through ``fuzz_one`` without atheris: to reproduce a crash
file, or, with ``--coverage`` (needs the ``coverage`` package), to measure the line
coverage a corpus reaches.
"""

import argparse
import importlib
import os
import sys
import tempfile
import traceback

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
CORPUS = os.path.join(HERE, "corpus")
DICTIONARIES = os.path.join(HERE, "dict")
INSTRUMENTED = ["tunrelay"]
# Straight-line arithmetic (BLAKE2s HMAC, HChaCha20 rounds): nothing to steer by, and
# instrumenting it would only slow down every handshake the wg_core target builds.
NOT_INSTRUMENTED = ["tunrelay.crypto.primitives"]

if sys.path[0] != ROOT:
    sys.path.insert(0, ROOT)   # the work tree's tunrelay, not an installed copy


def target_names():
    folder = os.path.join(HERE, "targets")
    return sorted(name[:-3] for name in os.listdir(folder)
                  if name.endswith(".py") and not name.startswith("_"))


def module_name(name):
    """The import name of a target given by name or by the path of its file."""
    if name.endswith(".py"):
        folder, file_name = os.path.split(os.path.abspath(name))
        if folder not in sys.path:
            sys.path.insert(1, folder)
        return file_name[:-3]
    return "tests.fuzz.targets." + name


def load_target(name):
    return importlib.import_module(module_name(name))


def checked(target):
    """``fuzz_one`` with the target's documented rejections swallowed."""
    rejections = tuple(target.REJECTIONS)
    fuzz_one = target.fuzz_one

    def test_one_input(data):
        try:
            fuzz_one(data)
        except rejections:
            pass

    return test_one_input


def fuzz(name, options, libfuzzer_args):
    import atheris

    # The product and the target itself: comparisons in a target's input builder steer
    # the fuzzer through its choices just as those in the product do.
    with atheris.instrument_imports(include=INSTRUMENTED + [module_name(name)], exclude=NOT_INSTRUMENTED):
        target = load_target(name)
    workdir = options.workdir or tempfile.mkdtemp(prefix="fuzz-%s-" % os.path.basename(name))
    generated = os.path.join(workdir, "corpus")
    os.makedirs(generated, exist_ok=True)
    # libFuzzer re-runs argv[0] through the shell for -merge=1 and -fork: name the target there.
    argv = ["%s %s --" % (os.path.abspath(__file__), name), "-max_len=%d" % getattr(target, "MAX_LEN", 4096),
            "-artifact_prefix=%s/" % workdir, "-print_final_stats=1"]
    if options.runs is not None:
        argv.append("-runs=%d" % options.runs)
    if options.seconds is not None:
        argv.append("-max_total_time=%d" % options.seconds)
    short_name = os.path.basename(name)[:-3] if name.endswith(".py") else name
    dictionary = os.path.join(DICTIONARIES, short_name + ".dict")
    if os.path.exists(dictionary):
        argv.append("-dict=" + dictionary)
    argv += libfuzzer_args
    argv.append(generated)   # libFuzzer writes new inputs to the first corpus directory only
    seeds = os.path.join(CORPUS, short_name)
    if os.path.isdir(seeds):
        argv.append(seeds)
    print("fuzz: %s, workdir %s" % (short_name, workdir), file=sys.stderr, flush=True)
    atheris.Setup(argv, checked(target))
    atheris.Fuzz()


def _inputs(paths):
    for path in paths:
        if os.path.isdir(path):
            for entry in sorted(os.listdir(path)):
                yield os.path.join(path, entry)
        else:
            yield path


def replay(name, paths, measure_coverage=False, show_missing=False):
    coverage = None
    if measure_coverage:
        import coverage as coverage_module
        coverage = coverage_module.Coverage(source=[os.path.join(ROOT, "tunrelay")])
        coverage.start()
    target = load_target(name)
    test_one_input = checked(target)
    failures = count = 0
    for path in _inputs(paths):
        with open(path, "rb") as stream:
            data = stream.read()
        count += 1
        try:
            test_one_input(data)
        except Exception:
            failures += 1
            print("FAILED: %s" % path, file=sys.stderr)
            traceback.print_exc()
    print("replayed %d inputs, %d failed" % (count, failures))
    if coverage is not None:
        coverage.stop()
        files = [os.path.join(ROOT, path) for path in target.COVERS]
        coverage.report(include=files, show_missing=show_missing, file=sys.stdout)
    return 1 if failures else 0


def main(argv):
    if "--" in argv:
        cut = argv.index("--")
        argv, libfuzzer_args = argv[:cut], argv[cut + 1:]
    else:
        libfuzzer_args = []
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("target", nargs="?")
    parser.add_argument("--list", action="store_true", help="print the target names")
    parser.add_argument("--runs", type=int, help="stop after this many inputs")
    parser.add_argument("--seconds", type=int, help="stop after this many seconds")
    parser.add_argument("--workdir", help="for generated inputs and findings (default: a new temporary folder)")
    parser.add_argument("--replay", nargs="+", metavar="PATH", help="run these inputs once, without atheris")
    parser.add_argument("--coverage", action="store_true", help="with --replay: report line coverage")
    parser.add_argument("--show-missing", action="store_true", help="with --coverage: list uncovered lines")
    options = parser.parse_args(argv)
    if options.list:
        print("\n".join(target_names()))
        return 0
    if not options.target:
        parser.error("name a target (--list shows them)")
    if options.replay:
        return replay(options.target, options.replay, options.coverage, options.show_missing)
    fuzz(options.target, options, libfuzzer_args)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
