#!/usr/bin/env python3
"""Side-by-side table of the Socket.IO peer benchmark and `clawnet bench chat`.

Usage: compare.py SOCKETIO_JSON CLAWNET_JSON [RATE [CLAWNET_VARIANT_JSON]]

SOCKETIO_JSON is ../shared/bench/peers/results/socketio-latest.json (written by
socketio/run.js: per-repetition data under "reps", scenario keys "open<RATE>",
"closed_p1", "idle"); CLAWNET_JSON is the document printed by
`clawnet bench chat` (per-repetition data under "reps", scenario keys
"closed_loop", "latency", "idle"). CLAWNET_VARIANT_JSON, if given, is another
clawnet run (e.g. closed loop only with a larger ws.outbound_queue) shown in
extra columns. Medians are taken here over the
repetitions of each file, the same way for both.
"""
import json
import os
import sys

from report_lib import fmt, median


def get(obj, path):
    for p in path.split("."):
        if not isinstance(obj, dict) or p not in obj:
            return None
        obj = obj[p]
    return obj if isinstance(obj, (int, float)) and not isinstance(obj, bool) else None


def med(doc, path, scale=1.0):
    """Median over repetitions of a dotted path, or of a function of one repetition."""
    f = path if callable(path) else (lambda r: get(r, path))
    m = median(f(r) for r in doc.get("reps", []))
    return None if m is None else m * scale


def residual_cpu(key, busy_path, server_path, loadgen_path):
    """Machine CPU outside the server and the load generator, in % of one core: tick-based
    /proc/stat busy time (all cores) minus both processes. It is interrupt work (loopback TCP,
    some % of a core) plus anything else running, also short-lived processes such as a
    concurrent build, which the per-process sums miss. Far above ~10: a disturbed run."""
    def f(r):
        busy = get(r, f"{key}.{busy_path}")
        srv = get(r, f"{key}.{server_path}")
        lg = get(r, f"{key}.{loadgen_path}")
        if busy is None or srv is None or lg is None:
            return None
        return max(0.0, busy * (os.cpu_count() or 1) - srv - lg)
    return f


def other_cpu_sio(key):
    return residual_cpu(key, "usage.procStatBusyPct", "serverCpuPct", "loadgenCpuPct")


def other_cpu_cn(key):
    return residual_cpu(key, "usage.machine_busy_pct", "usage.hub_cpu_pct", "usage.loadgen_cpu_pct")


def ratio(a, b, higher):
    if a is None or b is None or a == 0:
        return "n/a"
    r = b / a
    mark = ""
    if higher is True:
        mark = " (better)" if r > 1.05 else (" (worse)" if r < 0.95 else "")
    elif higher is False:
        mark = " (better)" if r < 0.95 else (" (worse)" if r > 1.05 else "")
    return f"{r:.2f}x{mark}"


def main():
    if len(sys.argv) < 3:
        sys.exit(__doc__)
    sio = json.load(open(sys.argv[1]))
    cn = json.load(open(sys.argv[2]))
    rate = int(sys.argv[3]) if len(sys.argv) > 3 else int(cn.get("config", {}).get("rate", 2000))
    var = json.load(open(sys.argv[4])) if len(sys.argv) > 4 else None
    var_label = None
    if var is not None:
        sets = var.get("config", {}).get("hub_set") or []
        var_label = "clawnet " + (" ".join(sets) if sets else "variant")
    o = f"open{rate}"
    kib_to_mib = 1 / 1024
    # (section, metric, unit, higher_is_better, socket.io path, clawnet path, scale)
    rows = [
        ("closed loop", "sends acked", "msg/s", True, "closed_p1.ackedPerSec", "closed_loop.acks_per_sec", 1),
        ("closed loop", "deliveries (sum over recipients)", "msg/s", True, "closed_p1.deliveredPerSec", "closed_loop.deliveries_per_sec", 1),
        ("closed loop", "send->receive p50", "ms", False, "closed_p1.latencyMs.p50", "closed_loop.latency_ms.p50", 1),
        ("closed loop", "send->receive p99", "ms", False, "closed_p1.latencyMs.p99", "closed_loop.latency_ms.p99", 1),
        ("closed loop", "missing deliveries (window sends)", "count", False, "closed_p1.missingForWindowSends", "closed_loop.missing_for_window_sends", 1),
        ("closed loop", "server CPU", "% of 1 core", None, "closed_p1.serverCpuPct", "closed_loop.usage.hub_cpu_pct", 1),
        ("closed loop", "load generator CPU", "% of 1 core", None, "closed_p1.loadgenCpuPct", "closed_loop.usage.loadgen_cpu_pct", 1),
        ("closed loop", "server peak RSS", "MiB", False, "closed_p1.usage.procs.server.peakRssKiB", "closed_loop.usage.hub_peak_rss_kib", kib_to_mib),
        ("closed loop", "machine CPU outside server+loadgen (irq + noise)", "% of 1 core", None, other_cpu_sio("closed_p1"), other_cpu_cn("closed_loop"), 1),
        ("closed loop", "VM stalls >=50 ms in window", "count", None, "closed_p1.stalls.count", "closed_loop.stalls.count", 1),
        (f"open loop {rate}/s", "sends acked", "msg/s", True, f"{o}.ackedPerSec", "latency.acks_per_sec", 1),
        (f"open loop {rate}/s", "deliveries (sum over recipients)", "msg/s", True, f"{o}.deliveredPerSec", "latency.deliveries_per_sec", 1),
        (f"open loop {rate}/s", "send->receive p50", "ms", False, f"{o}.latencyMs.p50", "latency.latency_ms.p50", 1),
        (f"open loop {rate}/s", "send->receive p90", "ms", False, f"{o}.latencyMs.p90", "latency.latency_ms.p90", 1),
        (f"open loop {rate}/s", "send->receive p99", "ms", False, f"{o}.latencyMs.p99", "latency.latency_ms.p99", 1),
        (f"open loop {rate}/s", "send->receive max", "ms", False, f"{o}.latencyMs.max", "latency.latency_ms.max", 1),
        (f"open loop {rate}/s", "send->ack p50", "ms", False, f"{o}.ackLatencyMs.p50", "latency.ack_latency_ms.p50", 1),
        (f"open loop {rate}/s", "send->ack p99", "ms", False, f"{o}.ackLatencyMs.p99", "latency.ack_latency_ms.p99", 1),
        (f"open loop {rate}/s", "missing deliveries (window sends)", "count", False, f"{o}.missingForWindowSends", "latency.missing_for_window_sends", 1),
        (f"open loop {rate}/s", "server CPU", "% of 1 core", False, f"{o}.serverCpuPct", "latency.usage.hub_cpu_pct", 1),
        (f"open loop {rate}/s", "load generator CPU", "% of 1 core", None, f"{o}.loadgenCpuPct", "latency.usage.loadgen_cpu_pct", 1),
        (f"open loop {rate}/s", "server peak RSS", "MiB", False, f"{o}.usage.procs.server.peakRssKiB", "latency.usage.hub_peak_rss_kib", kib_to_mib),
        (f"open loop {rate}/s", "machine CPU outside server+loadgen (irq + noise)", "% of 1 core", None, other_cpu_sio(o), other_cpu_cn("latency"), 1),
        (f"open loop {rate}/s", "VM stalls >=50 ms in window", "count", None, f"{o}.stalls.count", "latency.stalls.count", 1),
        (f"open loop {rate}/s", "longest VM stall in window", "ms", None, f"{o}.stalls.maxMs", "latency.stalls.max_ms", 1),
        ("idle", "server RSS, 0 clients", "MiB", False, "idle.rss0.rssKiB", "idle.rss0_kib", kib_to_mib),
        ("idle", "server RSS, 1000 idle clients", "MiB", False, "idle.rss1.rssKiB", "idle.rss1_kib", kib_to_mib),
        ("idle", "RSS per idle connection", "KiB", False, "idle.rssPerConnKiB", "idle.rss_per_conn_kib", 1),
        ("idle", "time to connect 1000 (batches of 50)", "ms", False, "idle.connect.ms", "idle.connect_ms", 1),
    ]
    sio_reps = len(sio.get("reps", []))
    cn_reps = len(cn.get("reps", []))
    print(f"# clawnet vs Socket.IO chat relay (medians; socket.io reps={sio_reps}, clawnet reps={cn_reps})\n")
    sc = sio.get("config", {})
    cc = cn.get("config", {})
    print(f"socket.io config: {json.dumps(sc)}  ")
    print(f"clawnet config: {json.dumps(cc)}  ")
    print(f"socket.io run: {sio.get('env', {}).get('date', '?')}; clawnet hub: {cn.get('env', {}).get('hub_version', '?')}\n")
    head = "| scenario | metric | unit | socket.io | clawnet | clawnet / socket.io |"
    sep = "|---|---|---|---:|---:|---:|"
    if var is not None:
        head += f" {var_label} | variant / socket.io |"
        sep += "---:|---:|"
    print(head)
    print(sep)
    for section, metric, unit, higher, sp, cp, scale in rows:
        a = med(sio, sp, scale)
        b = med(cn, cp, scale)
        line = f"| {section} | {metric} | {unit} | {fmt(a)} | {fmt(b)} | {ratio(a, b, higher)} |"
        if var is not None:
            c = med(var, cp, scale)
            line += f" {fmt(c) if c is not None else ''} | {ratio(a, c, higher) if c is not None else ''} |"
        print(line)
    # Things that should be zero on clawnet's side.
    problems = []
    runs = [("clawnet", cn)] + ([(var_label, var)] if var is not None else [])
    for label, doc in runs:
        for i, r in enumerate(doc.get("reps", []), 1):
            for s in ("closed_loop", "latency"):
                x = r.get(s)
                if not x:
                    continue
                if x.get("disconnect_count"):
                    whys = sorted({d.get("why", "?") for d in x.get("disconnects", [])})
                    problems.append(f"{label} rep {i} {s}: {x['disconnect_count']} agent connection(s) ended early ({'; '.join(whys)})")
                if x.get("ack_errors"):
                    problems.append(f"{label} rep {i} {s}: {x['ack_errors']} error response(s), first: {x.get('first_ack_error')}")
                if x.get("missing_for_window_sends"):
                    problems.append(f"{label} rep {i} {s}: {x['missing_for_window_sends']:,} of {x.get('expected_deliveries_for_window_sends', 0):,} deliveries missing")
            x = r.get("idle")
            if x and (x.get("failed") or x.get("dropped_connections")):
                problems.append(f"{label} rep {i} idle: failed={x.get('failed')} dropped={x.get('dropped_connections')} {x.get('first_failure') or ''}")
    noisy = []
    checks = [("socket.io", sio, [("closed_p1", other_cpu_sio("closed_p1")), (o, other_cpu_sio(o))]),
              ("clawnet", cn, [("closed_loop", other_cpu_cn("closed_loop")), ("latency", other_cpu_cn("latency"))])]
    if var is not None:
        checks.append((var_label, var, [("closed_loop", other_cpu_cn("closed_loop"))]))
    for label, doc, keys in checks:
        for i, r in enumerate(doc.get("reps", []), 1):
            for key, f in keys:
                v = f(r)
                if v is not None and v > 35:
                    noisy.append(f"{label} rep {i} {key}: {v:.0f}% of a core used outside server and load generator")
    if noisy:
        print("\nDisturbed repetitions (something else was running; compare with care):\n")
        for n in noisy:
            print(f"* {n}")
    if problems:
        print("\nProblems seen on the clawnet side:\n")
        for p in problems:
            print(f"* {p}")


if __name__ == "__main__":
    main()
