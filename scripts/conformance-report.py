#!/usr/bin/env python3
"""Writes CONFORMANCE.md (to stdout) from scripts/conformance.sh's JUnit
reports, one section per suite (scheduling, dra):
target/conformance/<suite>/<run>/junit.xml for the first run of each of
berth, kube-scheduler and none (no scheduler at all), and
.../<run>/rerun-<n>/junit.xml for the reruns of the tests a scheduler
failed. First runs and reruns are shown in separate columns, so a rerun
never hides a first-run failure. A suite with no reports keeps its section
from the previous report (PREVIOUS, usually CONFORMANCE.md itself).

    conformance-report.py [DIR [PREVIOUS]]    # the report, to stdout
    conformance-report.py --failed JUNIT      # the failed tests of one report, as a
                                              # ginkgo focus regular expression (empty if none)
    conformance-report.py --shard K N JUNIT   # the K-th of N shares of the tests a report
                                              # lists (a dry run's), as a focus expression
"""

import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import re

SCHEDULERS = ["berth", "kube-scheduler"]
NONE = "none"
TITLE = {"berth": "Berth", "kube-scheduler": "kube-scheduler", NONE: "no scheduler"}


class Suite:
    """A set of upstream's e2e tests, chosen by ginkgo focus (conformance.sh's suite_focus)."""

    def __init__(self, key, marker, focus, skip, title, about):
        self.key, self.marker, self.focus, self.skip, self.title = key, marker, focus, skip, title
        self.about = about


SUITES = [
    Suite(
        "scheduling",
        "[sig-scheduling]",
        "\\[sig-scheduling\\]",
        "Disruptive|Flaky",
        "Upstream's scheduling e2e tests",
        "the scheduling SIG's tests",
    ),
    Suite(
        "dra",
        "[DRA] control plane",
        "\\[DRA\\] control plane",
        "Disruptive|Flaky|FeatureGate:DRAResourcePoolStatus",
        "Upstream's dynamic resource allocation e2e tests that need no kubelet",
        "the `control plane` contexts of `test/e2e/dra`: upstream's test driver publishes the"
        " ResourceSlices for the nodes and no kubelet plugin runs. Skipped: the tests of the API server's"
        " ResourcePoolStatusRequest (alpha gate DRAResourcePoolStatus, off here), which no scheduler takes part in",
    ),
]
# Any test name carries one of these; a report holds no others (a shard's skips aside).
MARKERS = [s.marker for s in SUITES]


def short(name):
    """The test's name without ginkgo's `[It] ` and its trailing label list."""
    name = name.removeprefix("[It] ")
    cut = name.rfind(" [sig-")
    if cut > 0:
        name = name[:cut]
    return name


def outcomes(path):
    """name -> (outcome, first line of the failure), or None when there is no report"""
    result = {}
    if not path.exists():
        return None
    for case in ET.parse(path).getroot().iter("testcase"):
        name = case.get("name", "")
        if not any(m in name for m in MARKERS):
            continue
        name = short(name)
        failure = case.find("failure")
        if failure is None:
            failure = case.find("error")
        if failure is not None:
            message = (failure.get("message") or failure.text or "").strip().splitlines()
            result[name] = ("failed", message[0][:200] if message else "")
        elif case.find("skipped") is not None:
            result[name] = ("skipped", "")
        else:
            result[name] = ("passed", "")
    return result


def focus(names):
    """A Go regular expression matching exactly these tests' names (as ginkgo's --focus)."""
    special = set("\\.+*?()|[]{}^$")
    escaped = ["".join("\\" + c if c in special else c for c in n) for n in sorted(names)]
    return "|".join(escaped)


# Why Berth fails tests that kube-scheduler passes, where the cause is known
# and is work still to do: (a substring of the test's name, the reason).
KNOWN_GAPS = []


def known_gap(name):
    return next((why for part, why in KNOWN_GAPS if part in name), None)


def release(run_dir):
    """The Kubernetes release a run used (written by conformance.sh)."""
    f = run_dir / "kubernetes-version"
    return f.read_text().strip() if f.exists() else "unknown"


def reruns(run_dir):
    dirs = [d for d in run_dir.glob("rerun-*") if d.is_dir()]
    return sorted(dirs, key=lambda d: int(d.name.split("-")[1]))


class Run:
    """One scheduler's first run and the reruns of its failures."""

    def __init__(self, run_dir):
        self.first = outcomes(run_dir / "junit.xml")
        self.version = release(run_dir)
        # A run split into shards (the no-scheduler run): their union.
        shards = sorted(run_dir.glob("shard-*/junit.xml"))
        if self.first is None and shards:
            self.first = {}
            for junit in shards:
                # A shard reports the tests outside its share as skipped.
                for name, outcome in (outcomes(junit) or {}).items():
                    if outcome[0] != "skipped" or name not in self.first:
                        self.first[name] = outcome
            self.version = release(shards[0].parent)
        # name -> outcome of each rerun of that test, in order
        self.reruns = {}
        self.rerun_count = 0
        for d in reruns(run_dir):
            later = outcomes(d / "junit.xml")
            if later is None or self.first is None:
                continue
            self.rerun_count += 1
            for name, outcome in later.items():
                # A rerun's focus may match a test that had passed; only failures are rerun.
                if outcome[0] != "skipped" and self.first.get(name, ("",))[0] != "passed":
                    self.reruns.setdefault(name, []).append(outcome)

    def final(self, name):
        """The outcome after the reruns: passed if the first run or any rerun passed."""
        first = (self.first or {}).get(name, ("not run", ""))
        if first[0] == "passed":
            return first
        later = self.reruns.get(name, [])
        return next((o for o in later if o[0] == "passed"), later[-1] if later else first)

    def first_cell(self, name):
        return (self.first or {}).get(name, ("not run", ""))[0]

    def rerun_cell(self, name):
        later = self.reruns.get(name)
        if not later:
            return "-"
        return ", ".join(o[0] for o in later)

    def counts(self, names, pick):
        values = [pick(n) for n in names]
        passed = sum(1 for v in values if v == "passed")
        failed = sum(1 for v in values if v == "failed")
        return passed, failed


def section(suite, out):
    """The suite's section of the report, from its runs under `out`."""
    runs = {s: Run(out / s) for s in SCHEDULERS + [NONE]}
    present = [s for s in runs if runs[s].first is not None]
    print(f"## {suite.title}\n")
    print(f"Run with `--ginkgo.focus='{suite.focus}' --ginkgo.skip='{suite.skip}'`: {suite.about}.\n")
    releases = sorted({runs[s].version for s in present})
    print(f"Kubernetes release (control plane and e2e.test): {', '.join(releases) or 'none'}.\n")
    missing = [TITLE[s] for s in runs if s not in present]
    if missing:
        print(f"Not run in this report: {', '.join(missing)}.\n")
    names = sorted(set().union(*[runs[s].first.keys() for s in present]))
    for s in SCHEDULERS:
        r = runs[s]
        if r.first is None:
            continue
        p1, f1 = r.counts(names, r.first_cell)
        pf, ff = r.counts(names, lambda n: r.final(n)[0])
        print(
            f"- **{TITLE[s]}**: first run {p1} passed, {f1} failed; "
            f"after {r.rerun_count} rerun(s) of the failures: {pf} passed, {ff} failed."
        )
    none = runs[NONE]
    proves_nothing = []
    if none.first is not None:
        proves_nothing = [n for n in names if none.first_cell(n) == "passed"]
        p, f = none.counts(names, none.first_cell)
        print(f"- **no scheduler**: {p} passed, {f} failed.")
    print()
    if proves_nothing:
        print(f"{len(proves_nothing)} of the {len(names)} tests pass with no scheduler in the cluster: they")
        print("test the API server or the controllers, and prove nothing about a scheduler. They are")
        print("marked *(no scheduler needed)* below.\n")
    berth, kube = runs["berth"], runs["kube-scheduler"]
    if berth.first is not None and kube.first is not None:
        first_gaps = [n for n in names if kube.first_cell(n) == "passed" and berth.first_cell(n) != "passed"]
        final_gaps = [n for n in names if kube.final(n)[0] == "passed" and berth.final(n)[0] != "passed"]
        if final_gaps:
            print("### Passing with kube-scheduler, not with Berth (after reruns)\n")
            for n in final_gaps:
                why = known_gap(n)
                failure = berth.final(n)[1] or berth.final(n)[0]
                print(f"- {n}: {failure}" + (f" **Why:** {why}." if why else ""))
            print()
        else:
            print("After reruns, every test that passes with kube-scheduler passes with Berth.\n")
        if first_gaps:
            print("On the first run, these passed with kube-scheduler and not with Berth:\n")
            for n in first_gaps:
                print(f"- {n}: `{(berth.first or {}).get(n, ('', 'not run'))[1]}`")
            print()
        else:
            print("On the first run too, every test that passed with kube-scheduler passed with Berth.\n")
    print("### Every test\n")
    print("| test | Berth, first run | Berth, reruns | kube-scheduler, first run | kube-scheduler, reruns | no scheduler |")
    print("|---|---|---|---|---|---|")
    for n in names:
        label = n.replace("|", "/") + (" *(no scheduler needed)*" if n in proves_nothing else "")
        cells = [
            berth.first_cell(n),
            berth.rerun_cell(n),
            kube.first_cell(n),
            kube.rerun_cell(n),
            none.first_cell(n) if none.first is not None else "not run",
        ]
        print(f"| {label} | " + " | ".join(cells) + " |")
    for s in SCHEDULERS:
        r = runs[s]
        failures = [(n, r.first[n][1]) for n in names if r.first and r.first.get(n, ("",))[0] == "failed"]
        if failures:
            print(f"\n### {TITLE[s]}'s first-run failures, first line\n")
            for n, m in failures:
                print(f"- {n}: `{m}`")


def kept_sections(previous):
    """suite key -> its section in an earlier report (between the markers)."""
    if previous is None or not Path(previous).exists():
        return {}
    text = Path(previous).read_text()
    found = re.findall(r"<!-- suite: (\S+) -->\n(.*?)<!-- end of suite -->\n", text, re.S)
    return dict(found)


def main(out, previous=None):
    import contextlib
    import io

    out = Path(out)
    kept = kept_sections(previous)
    print("# Upstream's end-to-end tests: Berth, kube-scheduler, and no scheduler\n")
    print("Generated by `scripts/conformance.sh` (do not edit): upstream's `e2e.test`, built from")
    print("the pinned `k8s.io/kubernetes` module, run against the test environment (kube-apiserver,")
    print("kube-controller-manager, etcd, four KWOK nodes in two zones): once with each scheduler")
    print("as the cluster's only one, and once with no scheduler at all. Each scheduler's failed")
    print("tests are then run again, the same number of times for both; the first run and the")
    print("reruns are separate columns, so a rerun never hides a first-run failure. Each suite's")
    print("section comes from its own run of the script (`CONFORMANCE_SUITES=<suite>`).\n")
    for suite in SUITES:
        print(f"<!-- suite: {suite.key} -->")
        if (out / suite.key).is_dir():
            text = io.StringIO()
            with contextlib.redirect_stdout(text):
                section(suite, out / suite.key)
            print(text.getvalue().rstrip("\n") + "\n")
        elif suite.key in kept:
            print(kept[suite.key], end="")
        else:
            print(f"## {suite.title}\n\nNot run yet.\n")
        print("<!-- end of suite -->")


if __name__ == "__main__":
    if len(sys.argv) == 5 and sys.argv[1] == "--shard":
        k, n = int(sys.argv[2]), int(sys.argv[3])
        # A dry run reports the tests it would run as passed, the others skipped.
        names = sorted(n for n, (o, _) in (outcomes(Path(sys.argv[4])) or {}).items() if o == "passed")
        print(focus(name for i, name in enumerate(names) if i % n == k))
    elif len(sys.argv) == 3 and sys.argv[1] == "--failed":
        found = outcomes(Path(sys.argv[2])) or {}
        print(focus(n for n, (o, _) in found.items() if o == "failed"))
    else:
        main(sys.argv[1] if len(sys.argv) > 1 else "target/conformance", sys.argv[2] if len(sys.argv) > 2 else None)
