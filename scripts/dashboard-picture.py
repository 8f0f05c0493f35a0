#!/usr/bin/env python3
"""Draws docs/dashboard.png: the Grafana dashboard of deploy/monitoring, its
panels filled from a live run on the test environment.

Starts a control plane (testenv/up) with 60 KWOK nodes, `berth run` (leader
election on, its metrics on a local port), and a real Prometheus (built from
the Go module proxy by testenv/build-prometheus) scraping Berth every 5 s
with the alerts of deploy/monitoring loaded. Then plays six minutes of
traffic: waves of pods, some that fit nowhere, higher-priority pods that
preempt, and a burst of deletions. Each panel's queries are asked of
Prometheus over the run (query_range, `$__rate_interval` as Grafana sets it
for a 5 s scrape: 20 s) and drawn where the dashboard's grid puts the panel.
Grafana itself is not used (AGPL); the picture is the dashboard's queries on
real data, laid out as the JSON lays them out.

    python3 scripts/dashboard-picture.py [--minutes 6] [--out docs/dashboard.png]
"""

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SCRAPE = 5  # seconds
RATE_INTERVAL = f"{4 * SCRAPE}s"


def run(cmd, **kw):
    return subprocess.run(cmd, check=True, text=True, capture_output=True, **kw).stdout


def last_line(cmd, env=None):
    out = subprocess.run(cmd, check=True, text=True, stdout=subprocess.PIPE, env=env).stdout
    return out.strip().splitlines()[-1]


def free_port():
    import socket

    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def matplotlib():
    """matplotlib from a virtual environment under target/ (pip from the package registry)."""
    venv = ROOT / "target/picture-venv"
    py = venv / "bin/python"
    if not py.exists():
        run([sys.executable, "-m", "venv", str(venv)])
        run([str(py), "-m", "pip", "install", "-q", "matplotlib"])
    return py


def wait(what, check, limit=120):
    deadline = time.time() + limit
    while time.time() < deadline:
        try:
            if check():
                return
        except Exception:
            pass
        time.sleep(0.5)
    sys.exit(f"timed out waiting for {what}")


def get(url):
    with urllib.request.urlopen(url, timeout=10) as r:
        return r.read().decode()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--minutes", type=float, default=6)
    ap.add_argument("--out", default=str(ROOT / "docs/dashboard.png"))
    args = ap.parse_args()

    py = matplotlib()
    run(["cargo", "build", "--release", "--locked", "-p", "berth"], cwd=ROOT)
    berth = ROOT / "target/release/berth"
    cp = Path(last_line([str(ROOT / "testenv/build")])) / "controlplane"
    prometheus = last_line([str(ROOT / "testenv/build-prometheus"), "prometheus"])

    work = Path(tempfile.mkdtemp(prefix="berth-picture-"))
    env = dict(os.environ, BERTH_TESTENV_DIR=str(ROOT / "target/testenv-picture"))
    procs = []

    def stop(*_):
        for p in procs:
            p.send_signal(signal.SIGTERM)
            try:
                p.wait(10)
            except subprocess.TimeoutExpired:
                p.kill()
        subprocess.run([str(ROOT / "testenv/down")], env=env, capture_output=True)
        shutil.rmtree(work, ignore_errors=True)

    try:
        kubeconfig = last_line([str(ROOT / "testenv/up")], env=env)

        def kubectl(*a, stdin=None):
            return subprocess.run([str(cp), "kubectl", "--kubeconfig", kubeconfig, *a], input=stdin, text=True, capture_output=True, check=True).stdout

        nodes = []
        for i in range(60):
            cpu = 16 if i < 10 else 8
            nodes.append({"apiVersion": "v1", "kind": "Node",
                          "metadata": {"name": f"node-{i:02}", "annotations": {"kwok.x-k8s.io/node": "fake"},
                                       "labels": {"kubernetes.io/hostname": f"node-{i:02}", "topology.kubernetes.io/zone": f"zone-{i % 3}"}},
                          "status": {"allocatable": {"cpu": str(cpu), "memory": "64Gi", "pods": "110"},
                                     "capacity": {"cpu": str(cpu), "memory": "64Gi", "pods": "110"}}})
        kubectl("apply", "-f", "-", stdin=json.dumps({"apiVersion": "v1", "kind": "List", "items": nodes}))
        kubectl("create", "namespace", "load")
        for name, value in [("low", 10), ("high", 1000)]:
            kubectl("apply", "-f", "-", stdin=json.dumps({"apiVersion": "scheduling.k8s.io/v1", "kind": "PriorityClass", "metadata": {"name": name}, "value": value}))

        metrics_port, prom_port = free_port(), free_port()
        config = work / "berth.yaml"
        config.write_text("apiVersion: kubescheduler.config.k8s.io/v1\nkind: KubeSchedulerConfiguration\n"
                          "leaderElection: {leaderElect: true, resourceName: berth, resourceNamespace: default}\n"
                          "profiles: [{schedulerName: berth}]\n")
        log = open(work / "berth.log", "w")
        procs.append(subprocess.Popen([str(berth), "run", "--kubeconfig", kubeconfig, "--config", str(config), "--secure-port", "0",
                                       "--http-address", f"127.0.0.1:{metrics_port}"], stdout=log, stderr=log))
        wait("Berth's metrics", lambda: "leader_election_master_status" in get(f"http://127.0.0.1:{metrics_port}/metrics"))
        rules = ROOT / "deploy/monitoring/berth.rules.yaml"
        (work / "prometheus.yml").write_text(json.dumps({
            "global": {"scrape_interval": f"{SCRAPE}s", "evaluation_interval": f"{SCRAPE}s"},
            "rule_files": [str(rules)],
            "scrape_configs": [{"job_name": "berth", "static_configs": [{"targets": [f"127.0.0.1:{metrics_port}"]}]}],
        }))
        plog = open(work / "prometheus.log", "w")
        procs.append(subprocess.Popen([prometheus, f"--config.file={work / 'prometheus.yml'}", f"--storage.tsdb.path={work / 'tsdb'}",
                                       f"--web.listen-address=127.0.0.1:{prom_port}"], stdout=plog, stderr=plog))
        api = f"http://127.0.0.1:{prom_port}/api/v1"
        wait("Prometheus to scrape Berth", lambda: json.loads(get(f"{api}/query?query=up"))["data"]["result"][0]["value"][1] == "1")
        start = time.time()

        def pods(prefix, n, cpu, priority=None):
            items = []
            for i in range(n):
                spec = {"schedulerName": "berth",
                        "containers": [{"name": "c", "image": "registry.k8s.io/pause:3.10", "resources": {"requests": {"cpu": cpu, "memory": "256Mi"}}}]}
                if priority:
                    spec["priorityClassName"] = priority
                items.append({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": f"{prefix}-{i}", "namespace": "load", "labels": {"wave": prefix}}, "spec": spec})
            kubectl("apply", "-f", "-", stdin=json.dumps({"apiVersion": "v1", "kind": "List", "items": items}))

        # The traffic: waves that fill the cluster, pods that fit nowhere,
        # high-priority pods that preempt, then deletions.
        end = start + args.minutes * 60
        wave = 0
        while time.time() < end:
            t = (time.time() - start) / (args.minutes * 60)
            if t < 0.45:
                pods(f"w{wave}", 60, "500m", "low")
            elif t < 0.55:
                pods(f"huge{wave}", 5, "64")
            elif t < 0.75:
                pods(f"urgent{wave}", 20, "2", "high")
            else:
                kubectl("delete", "pods", "-n", "load", "-l", f"wave=w{wave % 10}", "--wait=false")
                pods(f"late{wave}", 30, "250m")
            wave += 1
            time.sleep(10)
        time.sleep(2 * SCRAPE)
        stop_at = time.time()

        dashboard = json.loads((ROOT / "deploy/monitoring/berth-dashboard.json").read_text())
        data = {}
        step = SCRAPE
        for panel in dashboard["panels"]:
            for t in panel.get("targets", []):
                q = t["expr"].replace("$__rate_interval", RATE_INTERVAL).replace('job=~"$job"', 'job="berth"')
                url = f"{api}/query_range?" + urllib.parse.urlencode({"query": q, "start": start, "end": stop_at, "step": step})
                res = json.loads(get(url))
                if res.get("status") != "success":
                    sys.exit(f"panel {panel['title']!r}: {q}: {res}")
                data[t["expr"]] = res["data"]["result"]
        alerts = json.loads(get(f"{api}/alerts"))["data"]["alerts"]
        (work / "data.json").write_text(json.dumps({"dashboard": dashboard, "data": data, "start": start, "alerts": alerts}))
        subprocess.run([str(py), str(ROOT / "scripts/dashboard-draw.py"), str(work / "data.json"), args.out], check=True)
        print(f"wrote {args.out}")
    finally:
        stop()


if __name__ == "__main__":
    main()
