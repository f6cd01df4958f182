#!/usr/bin/env python3
"""Side-by-side table of BullMQ on Redis and `clawnet bench tasks`.

Usage: tasks_compare.py BULLMQ_JSON CLAWNET_TASKS_JSON [MODE [BULLMQ_E2E_JSON]]

BULLMQ_JSON is ../shared/bench/peers/results/bullmq-latest.json (written by bullmq/run.js;
per-repetition data under "reps", each with "mode" = "volatile" or "aof"). MODE (default
"aof": Redis AOF everysec) picks the repetitions used. Keys read: "drain_c<C>" (queue
prefilled, one worker process at concurrency C: "jobsPerSec"), "drain_multi" (2 worker
processes x 50), "latency" (open loop at RATE jobs/s, worker concurrency 10:
"dispatchToPickupMs", "dispatchToCompletedEventMs", "dispatchToAddAckMs"), "enqueueSingle".
CLAWNET_TASKS_JSON is the document printed by `clawnet bench tasks` (per backend,
per-repetition data under backends.<backend>.reps.<scenario>: "closed_c<C>", "drain_c<C>",
"open_<rate>").
BULLMQ_E2E_JSON (optional) is written by bench/bullmq-e2e/run.js: BullMQ end to end, a
producer keeping jobs in flight while the worker runs ("reps", each with "closed_c<C>":
"completedPerSec"), the counterpart of clawnet's closed loop.
Medians are taken here over the repetitions of each file, the same way for both.
"""
import json
import re
import sys

from report_lib import fmt, get, med, median, num

BACKENDS = [("sqlite", "SQLite"), ("sqlite-full", "SQLite FULL"), ("memory", "memory (not durable)")]
THROUGHPUT_TARGET = 2.0  # x BullMQ (AOF) at worker concurrency 50
P99_TARGET_MS = 5.0
REF_CONC = 50


def ratio(a, b):
    if a is None or b is None or b == 0:
        return ""
    return f"{a / b:.2f}x"


def conc_keys(keys, prefix):
    out = []
    for k in keys:
        m = re.fullmatch(prefix + r"_c(\d+)", k)
        if m:
            out.append(int(m.group(1)))
    return sorted(set(out))


def main():
    if len(sys.argv) not in (3, 4, 5):
        sys.exit(__doc__)
    bq = json.load(open(sys.argv[1]))
    cn = json.load(open(sys.argv[2]))
    mode = sys.argv[3] if len(sys.argv) >= 4 else "aof"
    e2e_reps = []
    if len(sys.argv) == 5:
        try:
            e2e_reps = [r for r in json.load(open(sys.argv[4])).get("reps", []) if r.get("mode") == mode]
        except FileNotFoundError:
            # tasks-compare.sh passes it even with SKIP_PEER=1, when no run wrote it yet.
            print(f"{sys.argv[4]}: not found; the table has no BullMQ end-to-end figures", file=sys.stderr)
    breps = [r for r in bq.get("reps", []) if r.get("mode") == mode]
    if not breps:
        sys.exit(f"{sys.argv[1]}: no repetition with mode '{mode}'")
    bcfg = bq.get("config", {})
    backends = cn.get("backends", {})
    present = [(k, label) for k, label in BACKENDS if k in backends]
    cfg = cn.get("config", {})
    env = cn.get("env", {})

    def b_sec(key):
        return [r[key] for r in breps if isinstance(r.get(key), dict)]

    def cn_reps(b, scen):
        return backends.get(b, {}).get("reps", {}).get(scen, [])

    out = []
    w = out.append
    w(f"# Tasks: BullMQ on Redis ({mode}) vs clawnet\n")
    w(f"BullMQ {bq.get('env', {}).get('bullmq', '?')} on {bq.get('env', {}).get('redis', 'redis ?')}, "
      f"mode `{mode}` ({' '.join(bcfg.get('redisArgs', {}).get(mode, [])[-4:])}), {len(breps)} rep(s); "
      f"producer and worker are separate Node processes; no-op processor.  ")
    w(f"clawnet: {cfg.get('workers')} worker agents (one WebSocket each, `connect` with "
      f"`worker: true, concurrency: C`), {cfg.get('dispatchers')} dispatcher connections, no-op worker "
      f"(`task.result ok: true` at once), {cfg.get('payload_bytes')}-byte text, {cfg.get('reps')} rep(s); "
      f"closed/open loops {cfg.get('warmup_ms')} ms warm-up + {cfg.get('duration_ms')} ms window; "
      f"hub settings {', '.join(cfg.get('hub_set', []))}. Data dir fs: {env.get('data_dir_fs')}. "
      f"Both load generators share the 2 vCPUs with the server.\n")
    w("Concurrency: BullMQ's `concurrency` is per worker process (one process here: C jobs at once); "
      "clawnet's is per worker connection, so 20 workers at C hold up to 20 x C tasks (`slots`).\n")

    ref = med(b_sec(f"drain_c{REF_CONC}"), "jobsPerSec")

    # --- drain: the same scenario on both sides -------------------------------
    bconcs = conc_keys({k for r in breps for k in r}, "drain")
    cconcs = sorted({c for b, _ in present for c in conc_keys(backends[b].get("reps", {}).keys(), "drain")})
    concs = sorted(set(bconcs) | set(cconcs))
    head = "| metric | BullMQ | " + " | ".join(f"clawnet {label} | x BullMQ" for _, label in present) + " |"
    sep = "|---|---:|" + "---:|---:|" * len(present)

    def row(metric, bval, scen, path, scale=1.0, with_ratio=True, vs=None):
        cells = [metric, fmt(bval)]
        base = bval if vs is None else vs
        for b, _ in present:
            v = med(cn_reps(b, scen), path, scale) if scen and path else None
            cells += [fmt(v), ratio(v, base) if with_ratio else ""]
        w("| " + " | ".join(cells) + " |")

    if concs:
        w(f"## Drain: queue prefilled with {bcfg.get('DRAIN_TOTAL', '?')} (BullMQ) / "
          f"{cfg.get('drain_total', '?')} (clawnet) tasks, then the workers; tasks/s from the first "
          f"completion until empty or {cfg.get('drain_max_ms', '?')} ms (x BullMQ: at the same concurrency)\n")
        w(head)
        w(sep)
        for c in concs:
            bs = b_sec(f"drain_c{c}")
            row(f"**concurrency {c}: tasks/s** (clawnet: {c * (cfg.get('workers') or 0)} slots)",
                med(bs, "jobsPerSec"), f"drain_c{c}", "completed_per_sec")
            row(f"c={c}: server CPU, % of 1 core (redis / hub)", med(bs, "redisCpuPct"), f"drain_c{c}",
                "usage.hub_cpu_pct", with_ratio=False)
            row(f"c={c}: worker CPU (BullMQ worker / clawnet load generator)", med(bs, "workerCpuPct"),
                f"drain_c{c}", "usage.loadgen_cpu_pct", with_ratio=False)
            row(f"c={c}: machine busy, % of 2 cores", med(bs, "machineBusyPct"), f"drain_c{c}",
                "usage.machine_busy_pct", with_ratio=False)
            row(f"c={c}: seconds measured", med(bs, "secs"), f"drain_c{c}", "secs", with_ratio=False)
        multi = b_sec("drain_multi")
        if multi:
            row("BullMQ 2 worker processes x 50: tasks/s", med(multi, "jobsPerSec"), None, None, with_ratio=False)
        w("")
        w("Per repetition, tasks/s: " + "; ".join(
            f"BullMQ c={c} " + ", ".join(fmt(get(r, "jobsPerSec")) for r in b_sec(f"drain_c{c}"))
            for c in bconcs) + "; " + "; ".join(
            f"{label} c={c} " + ", ".join(fmt(get(r, "completed_per_sec")) for r in cn_reps(b, f"drain_c{c}"))
            for b, label in present for c in cconcs) + ".\n")

    # --- end to end: dispatching while processing --------------------------------
    def bullmq_e2e_runs(c):
        return [r[f"closed_c{c}"] for r in e2e_reps if isinstance(r.get(f"closed_c{c}"), dict)]

    econcs = sorted({c for b, _ in present for c in conc_keys(backends[b].get("reps", {}).keys(), "closed")})
    if econcs:
        w(f"## End to end: dispatch -> worker -> result -> succeeded, dispatching while processing "
          f"(BullMQ: bench/bullmq-e2e, a producer keeping the same number of jobs in flight, completions "
          f"learnt from QueueEvents; x BullMQ at the same concurrency, and x BullMQ's drain at "
          f"concurrency {REF_CONC}: {fmt(ref)} jobs/s)\n")
        w("| metric | BullMQ | " + " | ".join(f"clawnet {label} | x BullMQ | x BullMQ drain c={REF_CONC}"
                                           for _, label in present) + " |")
        w("|---|---:|" + "---:|---:|---:|" * len(present))

        def erow(metric, bval, scen, path, scale=1.0, with_ratio=False):
            cells = [metric, fmt(bval)]
            for b, _ in present:
                v = med(cn_reps(b, scen), path, scale)
                cells += [fmt(v), ratio(v, bval) if with_ratio else "", ratio(v, ref) if with_ratio else ""]
            w("| " + " | ".join(cells) + " |")

        for c in econcs:
            s = f"closed_c{c}"
            be = bullmq_e2e_runs(c)
            infl = next((get(r, "inflight") for b, _ in present for r in cn_reps(b, s)), None)
            erow(f"**concurrency {c} ({c * (cfg.get('workers') or 0)} slots, {fmt(infl)} tasks in flight): "
                 f"succeeded tasks/s**", med(be, "completedPerSec"), s, "completed_per_sec", with_ratio=True)
            erow(f"c={c}: dispatch->completed event at the dispatcher p50, ms", med(be, "dispatchToCompletedEventMs.p50"),
                 s, "dispatch_to_completed_event_ms.p50")
            erow(f"c={c}: dispatch->start p99, ms (clawnet)", None, s, "dispatch_to_start_ms.p99")
            erow(f"c={c}: server CPU, % of 1 core (redis / hub)", med(be, "redisCpuPct"), s, "usage.hub_cpu_pct")
            erow(f"c={c}: load generator CPU, % of 1 core (BullMQ producer + worker / clawnet)",
                 (med(be, "producerCpuPct") or 0) + (med(be, "workerCpuPct") or 0) if be else None,
                 s, "usage.loadgen_cpu_pct")
            erow(f"c={c}: hub peak RSS, MiB", None, s, "usage.hub_peak_rss_kib", scale=1 / 1024)
            erow(f"c={c}: dispatch errors (BullMQ: add errors)", med(be, "addErrors"), s, "dispatch_errors")
            erow(f"c={c}: result errors", None, s, "result_errors")
        w("")

    # --- latency at a fixed rate ----------------------------------------------
    lat = b_sec("latency")
    rate = bcfg.get("RATE")
    okeys = []
    for b, _ in present:
        for k in backends[b].get("reps", {}):
            if k.startswith("open_") and k not in okeys:
                okeys.append(k)
    okeys.sort(key=lambda k: abs(int(k.split("_")[1]) - (rate or 500)))
    for k in okeys:
        r = int(k.split("_")[1])
        bl = lat if r == rate else []
        w(f"## Open loop at {r} tasks/s: dispatch -> start latency "
          f"(BullMQ: worker concurrency {bcfg.get('LIVE_CONC', '?')}"
          f"{'' if bl else ', no BullMQ run at this rate'}; clawnet: {cfg.get('open_concurrency')} per worker)\n")
        w(head)
        w(sep)
        for p in ["p50", "p90", "p99", "max"]:
            row(f"**dispatch->start (worker pickup) {p}, ms**", med(bl, f"dispatchToPickupMs.{p}"), k,
                f"dispatch_to_start_ms.{p}")
        for p in ["p50", "p99"]:
            row(f"dispatch->ACK (queue.add / task.dispatch response) {p}, ms", med(bl, f"dispatchToAddAckMs.{p}"),
                k, f"dispatch_ack_ms.{p}")
        for p in ["p50", "p99"]:
            row(f"dispatch->completed event at the dispatcher {p}, ms", med(bl, f"dispatchToCompletedEventMs.{p}"),
                k, f"dispatch_to_completed_event_ms.{p}")
        row("dispatch->succeeded (clawnet: task.result response at the worker) p99, ms", None, k,
            "dispatch_to_succeeded_ms.p99", with_ratio=False)
        row("tasks of the window not started / without completed event", med(bl, "missing"), k,
            "window_tasks_not_started", with_ratio=False)
        row("server CPU, % of 1 core (redis / hub)", med(bl, "redisCpuPct"), k, "usage.hub_cpu_pct", with_ratio=False)
        row("machine busy, % of 2 cores", med(bl, "machineBusyPct"), k, "usage.machine_busy_pct", with_ratio=False)
        row("VM stalls >= 50 ms in window", med(bl, "stallCount"), k, "stalls.count", with_ratio=False)
        row("longest VM stall in window, ms", med(bl, "stallMaxMs"), k, "stalls.max_ms", with_ratio=False)
        w("")

    # --- enqueue ----------------------------------------------------------------
    enq = b_sec("enqueueSingle")
    if enq and cconcs:
        w(f"## Enqueue (BullMQ `queue.add` x{bcfg.get('TOTAL', '?')}, {bcfg.get('ADD_CONC', '?')} in flight; "
          f"clawnet: the drain prefill, `task.dispatch` with {cfg.get('prefill_inflight')} in flight, "
          f"median over all drain runs)\n")
        w(head)
        w(sep)
        cells = ["dispatches/s", fmt(med(enq, "jobsPerSec"))]
        for b, _ in present:
            runs = [r for c in cconcs for r in cn_reps(b, f"drain_c{c}")]
            v = med(runs, "prefill_dispatch_per_sec")
            cells += [fmt(v), ratio(v, med(enq, "jobsPerSec"))]
        w("| " + " | ".join(cells) + " |")
        w("")

    # --- checks -------------------------------------------------------------------
    w("## Problems and store check\n")
    problems = []
    for b, label in present:
        for scen, reps in backends[b].get("reps", {}).items():
            for r in reps:
                tag = f"{label} {scen} rep {r.get('rep')}"
                for key in ["dispatch_errors", "prefill_errors", "result_errors", "disconnect_count",
                            "write_errors_count", "window_tasks_not_started", "unreadable_frames"]:
                    v = get(r, key)
                    if v:
                        problems.append(f"{tag}: {key} = {fmt(v)}")
                if r.get("store_check", {}).get("ok") is False:
                    problems.append(f"{tag}: store check failed: {json.dumps(r.get('store_check'))}")
                if r.get("disturbed"):
                    problems.append(f"{tag}: disturbed ({fmt(get(r, 'outside_cpu_pct'))}% of a core used outside)")
    w("\n".join(f"* {p}" for p in problems) if problems else "* none")
    w("")

    # --- targets -------------------------------------------------------------------
    w("## Targets\n")
    if ref:
        for b, label in present:
            if b == "memory":
                continue
            for scen_prefix, what, peer in [("closed", "end to end", bullmq_e2e_runs), ("drain", "drain", None)]:
                best = None
                for c in conc_keys(backends[b].get("reps", {}).keys(), scen_prefix):
                    v = med(cn_reps(b, f"{scen_prefix}_c{c}"), "completed_per_sec")
                    if v is not None and (best is None or v > best[1]):
                        best = (c, v)
                if best is None:
                    continue
                c, v = best
                ok = v >= THROUGHPUT_TARGET * ref
                w(f"* {label} {what}, best concurrency ({c}): {fmt(v)} tasks/s vs BullMQ's drain c={REF_CONC} "
                  f"{fmt(ref)} ({ratio(v, ref)}), target >= {THROUGHPUT_TARGET:g}x: **{'met' if ok else 'NOT met'}**")
                pconcs = conc_keys({k for r in e2e_reps for k in r}, "closed") if peer else []
                pbest = max((med(peer(pc), "completedPerSec") or 0 for pc in pconcs), default=0)
                if pbest:
                    ok = v >= THROUGHPUT_TARGET * pbest
                    w(f"* {label} {what}, best concurrency ({c}): {fmt(v)} tasks/s vs BullMQ end to end, best "
                      f"concurrency, {fmt(pbest)} ({ratio(v, pbest)}), target >= {THROUGHPUT_TARGET:g}x: "
                      f"**{'met' if ok else 'NOT met'}**")
    for k in okeys:
        r = int(k.split("_")[1])
        for b, label in present:
            if b == "memory":
                continue
            p99 = med(cn_reps(b, k), "dispatch_to_start_ms.p99")
            ok = p99 is not None and p99 <= P99_TARGET_MS
            bp99 = med(lat, "dispatchToPickupMs.p99") if r == rate else None
            w(f"* {label} dispatch->start p99 at {r}/s = {fmt(p99)} ms (BullMQ pickup p99 {fmt(bp99)} ms), "
              f"target <= {P99_TARGET_MS:g} ms: **{'met' if ok else 'NOT met'}**")
    all_ok = all(r.get("store_check", {}).get("ok") is not False
                 for b, _ in present for reps in backends[b].get("reps", {}).values() for r in reps)
    w(f"* every task a worker saw `succeeded` is stored `succeeded` (SQLite read after each run): "
      f"**{'yes' if all_ok else 'NO'}**")
    print("\n".join(out))


if __name__ == "__main__":
    main()
