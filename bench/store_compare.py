#!/usr/bin/env python3
"""Side-by-side table of NATS JetStream (file storage) and `clawnet bench store`.

Usage: store_compare.py NATS_JSON CLAWNET_STORE_JSON

NATS_JSON is ../shared/bench/peers/results/nats-latest.json (written by nats/run.js;
per-repetition data under "reps", JetStream keys "jetstream_p1" / "jetstream_p2": 32 publishes
in flight from 1 or 2 publisher processes). The JetStream reference is the configuration with
the higher median acked/s (the Node client is the bottleneck with one process).
CLAWNET_STORE_JSON is the document printed by `clawnet bench store` (per backend, per-repetition
data under backends.<backend>.reps.<scenario>: "closed", "open_<rate>", "open_half").
The optional `memory` backend (a baseline without durability) gets a column too.
Medians are taken here over the repetitions of each file, the same way for both.
"""
import json
import sys

from report_lib import fmt, get, med, median, num

BACKENDS = [("sqlite", "SQLite"), ("sqlite-full", "SQLite FULL"), ("postgres", "PostgreSQL"),
            ("memory", "memory (not durable)")]
P99_TARGET_MS = 5.0


def ratio(a, js):
    if a is None or js is None or js == 0:
        return ""
    return f"{a / js:.2f}x"


def main():
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    nats = json.load(open(sys.argv[1]))
    cn = json.load(open(sys.argv[2]))
    nreps = nats.get("reps", [])
    js_keys = sorted({k for r in nreps for k in r if k.startswith("jetstream_p")})
    if not js_keys:
        sys.exit(f"{sys.argv[1]}: no jetstream_p* scenario in reps")
    js_key = max(js_keys, key=lambda k: med([r.get(k, {}) for r in nreps], "ackedPerSec") or 0)
    js = [r[js_key] for r in nreps if js_key in r]
    js_rate = med(js, "ackedPerSec")
    backends = cn.get("backends", {})
    present = [(k, label) for k, label in BACKENDS if k in backends]

    def cn_reps(b, scen):
        return backends.get(b, {}).get("reps", {}).get(scen, [])

    out = []
    w = out.append
    cfg = cn.get("config", {})
    env = cn.get("env", {})
    w("# Durable acknowledged sends: NATS JetStream (file storage) vs clawnet stores\n")
    w(f"JetStream reference: `{js_key}` ({get(js[0], 'inflightTotal') if js else '?'} publishes in flight "
      f"over {get(js[0], 'pubProcs') if js else '?'} Node process(es), `js.publish` with msgID, "
      f"{len(js)} rep(s); {nats.get('env', {}).get('nats-server', 'nats-server ?')}; acks are not "
      f"fsynced (2.9 has no sync_always)).  ")
    w(f"clawnet: {cfg.get('senders')} senders x {cfg.get('window')} unacked = {cfg.get('inflight_total')} "
      f"in flight, each to its own room, unique dedupe_key, {cfg.get('payload_bytes')}-byte text, "
      f"{cfg.get('reps')} rep(s) of {cfg.get('warmup_ms')} ms warm-up + {cfg.get('duration_ms')} ms; "
      f"hub killed with SIGKILL under load after each run and the store read directly. "
      f"Data dir fs: {env.get('data_dir_fs')}; PostgreSQL: "
      f"{json.dumps(env.get('postgres')) if env.get('postgres') else 'n/a'}.\n")
    for k, label in BACKENDS:
        if k in backends and "skipped" in backends[k]:
            w(f"**{label} skipped:** {backends[k]['skipped']}\n")
        for n in backends.get(k, {}).get("notes", []):
            w(f"_{label}: {n}_\n")

    head = "| metric | JetStream | " + " | ".join(f"{label} | x JS" for _, label in present) + " |"
    sep = "|---|---:|" + "---:|---:|" * len(present)

    def row(metric, js_val, path, scen="closed", scale=1.0, with_ratio=True):
        cells = [metric, fmt(js_val)]
        for b, _ in present:
            v = med(cn_reps(b, scen), path, scale) if path is not None else None
            cells += [fmt(v), ratio(v, js_val) if with_ratio else ""]
        w("| " + " | ".join(cells) + " |")

    w("## Closed loop (throughput)\n")
    w(head)
    w(sep)
    row("acked sends/s (higher is better)", js_rate, "acked_per_sec")
    for p in ["p50", "p90", "p99", "max"]:
        row(f"send->ACK {p}, ms", med(js, f"ackLatencyMs.{p}"), f"ack_latency_ms.{p}")
    row("in flight (total)", med(js, "inflightTotal"), "inflight_total", with_ratio=False)
    row("server CPU, % of 1 core (hub / nats-server)", med(js, "serverCpuPct"), "usage.hub_cpu_pct")
    row("PostgreSQL processes CPU, % of 1 core", None, "db_cpu_pct", with_ratio=False)
    row("load generator CPU, % of 1 core", med(js, "pubCpuPct"), "usage.loadgen_cpu_pct")
    row("machine busy, % of 2 cores", med(js, "machineBusyPct"), "usage.machine_busy_pct")
    row("server peak RSS, MiB", med(js, "serverPeakRssMiB"), "usage.hub_peak_rss_kib", scale=1 / 1024)
    row("VM stalls >= 50 ms in window", med(js, "stallCount"), "stalls.count", with_ratio=False)
    row("timer gaps >= 25 ms in window", None, "stalls_25ms.count", with_ratio=False)
    row("errors (median)", med(js, "errors"), "ack_errors", with_ratio=False)
    w("")
    per_rep = lambda reps, path: ", ".join(fmt(get(r, path)) for r in reps)  # noqa: E731
    w(f"Per repetition, acked sends/s: JetStream {per_rep(js, 'ackedPerSec')}; "
      + "; ".join(f"{label} {per_rep(cn_reps(b, 'closed'), 'acked_per_sec')}" for b, label in present)
      + ". JetStream machine busy % per repetition: " + per_rep(js, "machineBusyPct")
      + " (a disturbed repetition shows up here; the peer has no noise retry).\n")

    # Open-loop scenarios (clawnet only; the peer has no open-loop JetStream scenario).
    scen_keys = []
    for b, _ in present:
        for k in backends[b].get("reps", {}):
            if k.startswith("open") and k not in scen_keys:
                scen_keys.append(k)
    for k in scen_keys:
        w(f"## Open loop `{k}` (latency at a fixed rate; no JetStream figure)\n")
        w(head)
        w(sep)
        row("offered sends/s", None, "offered_rate", scen=k, with_ratio=False)
        row("acked sends/s", None, "acked_per_sec", scen=k, with_ratio=False)
        for p in ["p50", "p90", "p99", "max"]:
            row(f"send->ACK {p}, ms", None, f"ack_latency_ms.{p}", scen=k, with_ratio=False)
        row("window sends without ACK before the kill", None, "window_sends_without_ok_ack", scen=k,
            with_ratio=False)
        row("max schedule backlog, msgs", None, "max_schedule_backlog_msgs", scen=k, with_ratio=False)
        row("hub CPU, % of 1 core", None, "usage.hub_cpu_pct", scen=k, with_ratio=False)
        row("PostgreSQL processes CPU, % of 1 core", None, "db_cpu_pct", scen=k, with_ratio=False)
        row("VM stalls >= 50 ms in window", None, "stalls.count", scen=k, with_ratio=False)
        w("")

    # Durability check over every run.
    w("## ACK-after-commit check (SIGKILL under load, store read directly), all runs\n")
    w("| backend | runs | runs ok | ACKed | stored | lost ACKed | seq gaps | stored beyond sent | in flight at kill (sum) |")
    w("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for b, label in present:
        if b == "memory":
            continue
        runs = [r for reps in backends[b].get("reps", {}).values() for r in reps]
        d = [r.get("durability", {}) for r in runs]
        s = lambda key: sum(get(x, key) or 0 for x in d)  # noqa: E731
        w(f"| {label} | {len(runs)} | {sum(1 for x in d if x.get('ok') is True)} | {s('acked_ok'):,} | "
          f"{s('stored'):,} | {s('lost_acked')} | {s('seq_gaps')} | {s('stored_beyond_sent')} | "
          f"{s('in_flight_at_kill'):,} |")
    w("")

    # Targets.
    w("## Targets\n")
    sq = med(cn_reps("sqlite", "closed"), "acked_per_sec")
    if sq is not None and js_rate:
        verdict = "met" if sq >= js_rate else "NOT met"
        w(f"* SQLite closed-loop acked sends/s >= JetStream: {fmt(sq)} vs {fmt(js_rate)} "
          f"({ratio(sq, js_rate)}): **{verdict}**")
    if js_rate:
        half = js_rate / 2
        for b, label in present:
            best = None
            for k in backends[b].get("reps", {}):
                if not k.startswith("open"):
                    continue
                rate = med(cn_reps(b, k), "offered_rate")
                if rate is None:
                    continue
                if best is None or abs(rate - half) < abs(best[1] - half):
                    best = (k, rate)
            if best is None:
                continue
            k, rate = best
            p99 = med(cn_reps(b, k), "ack_latency_ms.p99")
            missing = med(cn_reps(b, k), "window_sends_without_ok_ack")
            ok = p99 is not None and p99 <= P99_TARGET_MS and not missing
            note = "" if abs(rate - half) <= 0.05 * half else f" (nearest run: {fmt(rate)}/s; half of JetStream is {fmt(half)}/s)"
            w(f"* {label}: send->ACK p99 at {fmt(rate)}/s (`{k}`) = {fmt(p99)} ms, target <= "
              f"{P99_TARGET_MS:g} ms{note}: **{'met' if ok else 'NOT met'}**")
    all_ok = all(r.get("durability", {}).get("ok") is True
                 for b, _ in present if b != "memory"
                 for reps in backends[b].get("reps", {}).values() for r in reps)
    w(f"* ACK-after-commit (no ACKed message missing after SIGKILL, no seq gap), every run: "
      f"**{'yes' if all_ok else 'NO'}**")
    print("\n".join(out))


if __name__ == "__main__":
    main()
