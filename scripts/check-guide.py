#!/usr/bin/env python3
"""Follows a Markdown guide the way a reader would, and fails if it does not work.

Fenced blocks are taken in order:
  ```sh                  commands, run in one bash session (cd, exports and
                         background jobs carry over), stopping at the first error
  ```text                output the sh block just before prints: its lines, in order and
                         next to each other, are whole lines of that output (leading and
                         trailing spaces aside); `…` in a line stands for anything (a time)
  ```<lang> file=PATH    a file to write, relative to the current directory
Other blocks are ignored. The session starts in a fresh directory (argument
--workdir) with BERTH set to the repository; a test environment the guide
starts (testenv/up) lives in that directory and is stopped at the end.

Usage: scripts/check-guide.py docs/plugins.md [--workdir DIR]
"""
import argparse
import os
import re
import shlex
import subprocess
import sys
import tempfile

FENCE = re.compile(r"^```(\S*)(.*)$")


def blocks(text):
    out, cur, info = [], None, None
    for line in text.splitlines():
        m = FENCE.match(line)
        if cur is None and m:
            cur, info = [], (m.group(1), m.group(2).strip())
        elif cur is not None and line.startswith("```"):
            out.append((info[0], info[1], "\n".join(cur) + "\n"))
            cur = None
        elif cur is not None:
            cur.append(line)
    return out


def script(guide_blocks, logdir):
    # Each sh block runs in this shell (cd, exports and jobs carry over) with
    # its output going to a file; errexit stays in force, and on failure the
    # EXIT trap shows the failing step's output and stops the jobs it started.
    lines = [
        "set -euo pipefail",
        "exec 3>&1 4>&2",
        "step_out=/dev/null",
        "on_exit() { s=$?; exec 1>&3 2>&4; if [ $s -ne 0 ]; then cat \"$step_out\"; echo \"guide: failed ($s)\"; fi; "
        "for j in $(jobs -p); do kill \"$j\" 2>/dev/null || true; done; }",
        "trap on_exit EXIT",
        'echo "guide: starting in $PWD"',
    ]
    step = 0
    for lang, attrs, body in guide_blocks:
        file = re.search(r"file=(\S+)", attrs)
        if file:
            path = file.group(1)
            lines.append(f"mkdir -p \"$(dirname {shlex.quote(path)})\"")
            lines.append(f"cat > {shlex.quote(path)} <<'GUIDE_EOF'\n{body}GUIDE_EOF")
            lines.append(f"echo 'guide: wrote {path}'")
        elif lang == "sh":
            step += 1
            out = shlex.quote(os.path.join(logdir, f"step{step}.out"))
            shown = body.strip().splitlines()[0]
            lines.append(f"echo {shlex.quote(f'guide: step {step}: {shown}')}")
            lines.append(f"step_out={out}; exec >{out} 2>&1")
            lines.append(body)
            lines.append(f"exec 1>&3 2>&4; cat {out}")
        elif lang == "text" and step > 0:
            out = os.path.join(logdir, f"step{step}.out")
            want = os.path.join(logdir, f"step{step}.want")
            with open(want, "w") as f:
                f.write(body)
            lines.append(
                f"python3 {shlex.quote(os.path.abspath(__file__))} --match {shlex.quote(want)} {shlex.quote(out)} || "
                f"{{ echo {shlex.quote(f'guide: step {step} does not print what the guide shows')}; exit 1; }}"
            )
    lines.append("echo 'guide: every step worked'")
    return "\n".join(lines) + "\n"


def matches(want_lines, out_lines):
    """Whether the wanted lines are consecutive whole lines of the output."""
    pats = [re.compile(".*".join(re.escape(part) for part in w.strip().split("…"))) for w in want_lines]
    got = [o.strip() for o in out_lines]
    return any(all(p.fullmatch(got[i + k]) for k, p in enumerate(pats)) for i in range(len(got) - len(pats) + 1))


def match_main(want_file, out_file):
    want = open(want_file).read().splitlines()
    while want and not want[0].strip():
        want.pop(0)
    while want and not want[-1].strip():
        want.pop()
    out = open(out_file).read().splitlines()
    if matches(want, out):
        return 0
    print("the guide shows:")
    print("\n".join("  " + w for w in want))
    print("the command printed:")
    print("\n".join("  " + o for o in out))
    return 1


def main():
    if len(sys.argv) == 4 and sys.argv[1] == "--match":
        sys.exit(match_main(sys.argv[2], sys.argv[3]))
    ap = argparse.ArgumentParser()
    ap.add_argument("guide")
    ap.add_argument("--workdir")
    args = ap.parse_args()
    repo = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    workdir = args.workdir or tempfile.mkdtemp(prefix="berth-guide-")
    os.makedirs(workdir, exist_ok=True)
    logdir = tempfile.mkdtemp(prefix="berth-guide-logs-")
    with open(args.guide) as f:
        text = script(blocks(f.read()), logdir)
    env = dict(os.environ, BERTH=repo)
    # The reader's shell has no test environment of ours: the guide starts
    # its own, in a state folder of the work directory, stopped whatever happens.
    for var in ("KUBECONFIG", "BERTH_TEST_KUBECONFIG"):
        env.pop(var, None)
    # Its build and its control plane's state go under our target folder,
    # not the work directory: a temporary folder may be small (a CI run once
    # had etcd fail to create its WAL there), and the reader's crate builds
    # much faster on Berth's already compiled dependencies. The steps the
    # reader runs are the same.
    target = os.path.join(repo, "target")
    env.setdefault("CARGO_TARGET_DIR", target)
    env["BERTH_TESTENV_DIR"] = os.path.join(target, "testenv-guide")
    try:
        r = subprocess.run(["bash", "-c", text], cwd=workdir, env=env)
    finally:
        subprocess.run([os.path.join(repo, "testenv", "down")], env=env, stdout=subprocess.DEVNULL)
    sys.exit(r.returncode)


if __name__ == "__main__":
    main()
