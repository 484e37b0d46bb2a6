"""Answers every parametrized vector of packaging's own tests with packaging.

Usage: generate.py SDIST_DIR RELEASE > tests/fixtures/pep440-packaging.json

Each vector becomes one of: `version` (parse and read the parts), `compare`
(two versions and an operator), `contains` (a SpecifierSet and a version),
`filter` (a SpecifierSet and a list), `specifier` (is it valid, does it name a
pre-release), or `skipped` with the reason upshift has no counterpart.
"""

import json
import operator
import sys

sys.path.insert(0, sys.argv[1])
sys.path.insert(0, __import__("os").path.dirname(__file__))

import collect  # noqa: E402

collect.install_stand_in()

from packaging.specifiers import InvalidSpecifier, Specifier, SpecifierSet  # noqa: E402
from packaging.version import InvalidVersion, Version  # noqa: E402

SPEC_KEYS = ("spec_str", "specifier", "spec", "specifiers")


def text(value):
    return value if isinstance(value, str) else str(value)


def version_answer(value):
    try:
        v = Version(value)
    except (InvalidVersion, ValueError, TypeError) as error:
        return {"error": type(error).__name__}
    return {
        "ok": {
            "epoch": v.epoch,
            "release": list(v.release),
            "pre": list(v.pre) if v.pre else None,
            "post": v.post,
            "dev": v.dev,
            "local": v.local,
            "is_prerelease": v.is_prerelease,
            "str": str(v),
        }
    }


def guarded(function):
    try:
        return {"ok": function()}
    except (InvalidSpecifier, InvalidVersion, ValueError, TypeError) as error:
        return {"error": type(error).__name__}


def spec_of(args):
    for key in SPEC_KEYS:
        if key in args and isinstance(args[key], str):
            return args[key]
    return None


def classify(test, args):
    """One or more fixture rows for a parametrized combination."""
    spec = spec_of(args)
    keys = set(args)
    if any(not isinstance(args.get(k), (str, type(None))) for k in ("version", *SPEC_KEYS) if k in args):
        return [("skipped", "an argument that is not a string")]
    if "installed" in keys and args["installed"]:
        return [("skipped", "`installed=True` has no counterpart in upshift")]
    for key in ("spec_pre", "specifier_prereleases", "spec_prereleases", "initial_prereleases", "configured"):
        if args.get(key) is not None:
            return [("skipped", f"a specifier-level `prereleases` ({key}) has no counterpart in upshift")]
    if "set_prereleases" in keys:
        return [("skipped", "setting `prereleases` on a specifier has no counterpart in upshift")]
    prereleases = args.get("prereleases", args.get("contains_pre", args.get("contains_prereleases")))
    if test.startswith("test_version.") or test.startswith("test_") and "." not in test and "version" in keys and spec is None:
        if keys & {"left", "right"}:
            pass
        elif isinstance(args.get("version"), str):
            return [("version", {"input": args["version"], "answer": version_answer(args["version"])})]
    if keys >= {"left", "right", "op"} and test.startswith("test_version"):
        left, right = args["left"], args["right"]

        def sign():
            a, b = Version(left), Version(right)
            return -1 if a < b else (1 if a > b else 0)

        return [("compare", {"left": left, "right": right, "answer": guarded(sign)})]
    if "TestSpecifierSet.test_empty_specifier" == test.split(".", 1)[1] if "." in test else False:
        spec = ""
    if spec is not None and test.endswith("test_specifier_prereleases_detection"):
        return [("specifier", {"input": spec, "answer": guarded(lambda: Specifier(spec).prereleases)})]
    if spec is not None and (test.endswith("test_specifiers_valid") or test.endswith("test_specifiers_invalid")):
        return [("specifier", {"input": spec, "answer": guarded(lambda: SpecifierSet(spec).prereleases)})]
    version = args.get("version", args.get("version_str"))
    if spec is not None and isinstance(version, str):
        return [("contains", {"specifier": spec, "version": version, "prereleases": prereleases,
                              "answer": guarded(lambda: SpecifierSet(spec).contains(version, prereleases=prereleases))})]
    items = args.get("input", args.get("versions") if "expected" in keys or test.endswith("ordering_with_arbitrary") else None)
    if test.endswith("test_empty_specifier_arbitrary_string") or test.endswith("test_empty_specifier_ordering_with_arbitrary"):
        spec = ""
    if spec is not None and isinstance(items, list) and "key" not in keys:
        items = [text(i) for i in items]

        def run():
            kept = list(SpecifierSet(spec).filter(items, prereleases=prereleases))
            mask, remaining = [], list(kept)
            for item in items:
                if remaining and remaining[0] == item:
                    remaining.pop(0)
                    mask.append(True)
                else:
                    mask.append(False)
            assert not remaining, (spec, items, kept)
            return mask

        return [("filter", {"specifier": spec, "input": items, "prereleases": prereleases, "answer": guarded(run)})]
    listed = args.get("test_versions", args.get("versions"))
    if spec is not None and isinstance(listed, list):
        return [("contains", {"specifier": spec, "version": text(v), "prereleases": None,
                              "answer": guarded(lambda v=v: SpecifierSet(spec).contains(text(v)))}) for v in listed]
    return [("skipped", f"{test.rsplit('.', 1)[-1]} ({', '.join(sorted(keys))}) tests an API upshift has no counterpart for")]


def main():
    sdist, release = sys.argv[1], sys.argv[2]
    rows = []
    seen = set()
    for module in ("tests.test_version", "tests.test_specifiers"):
        for name, args in collect.vectors(module):
            test = f"{module[6:]}.{name}"
            for kind, payload in classify(test, args):
                if kind == "compare":
                    # Every ordered pair once: the comparison tests cover each pair with several operators.
                    pair = (payload["left"], payload["right"])
                    if pair in seen:
                        continue
                    seen.add(pair)
                row = {"kind": kind, "test": test}
                if kind == "skipped":
                    row["reason"] = payload
                    row["args"] = {k: repr(v) for k, v in args.items()}
                else:
                    row.update(payload)
                rows.append(row)
    head = {"generated_by": f"tests/pep440/generate: packaging {release} and its own tests",
            "library": f"packaging {release}"}
    out = json.dumps(head)[:-1] + ', "vectors": [\n'
    out += ",\n".join(json.dumps(row, separators=(",", ":")) for row in rows)
    sys.stdout.write(out + "\n]}\n")


main()
