'use strict';
// BullMQ end to end, closed loop: the peer's worker process (../shared/bench/peers/
// bullmq/worker.js, no-op processor, `startLive` at concurrency C) runs while a producer
// process keeps INFLIGHT jobs added and not yet completed. Completions/s counted by the
// producer in the window: the BullMQ counterpart of `clawnet bench tasks --scenarios
// closed`, where dispatching and processing also share the machine. The peer suite has
// no such scenario (its processing figure drains a prefilled queue), so it lives here.
//
// Env: PEERS_DIR (required) REPS=3 DURATION_MS=15000 WARMUP_MS=2000 CONCURRENCIES=10,50
//      WORKERS=20 (INFLIGHT per C = max(200, 2 x WORKERS x C), as clawnet's closed loop)
//      INFLIGHT (fixed instead) MODE=aof|volatile REDIS_PORT=16379 OUT=FILE.json
const fs = require('fs');
const path = require('path');
const PEERS = process.env.PEERS_DIR;
if (!PEERS) { console.error('PEERS_DIR is not set'); process.exit(2); }
const C = require(path.join(PEERS, 'lib', 'common'));
const { measured } = require(path.join(PEERS, 'lib', 'measure'));

const REPS = Number(process.env.REPS || 3);
const DURATION = Number(process.env.DURATION_MS || 15000);
const WARMUP = Number(process.env.WARMUP_MS || 2000);
const CONCS = (process.env.CONCURRENCIES || '10,50').split(',').map(Number);
const WORKERS = Number(process.env.WORKERS || 20);
const MODE = process.env.MODE || 'aof';
const PORT = Number(process.env.REDIS_PORT || 16379);
const OUT = process.env.OUT;
const inflightFor = (c) => Number(process.env.INFLIGHT || 0) || Math.max(200, 2 * WORKERS * c);

// The peer's Redis settings (redisArgs in bullmq/run.js, which runs when loaded, so it
// cannot be required).
const redisArgs = (dir) => ['--port', String(PORT), '--bind', '127.0.0.1', '--protected-mode', 'yes', '--dir', dir,
  '--save', '', '--maxmemory-policy', 'noeviction',
  ...(MODE === 'aof' ? ['--appendonly', 'yes', '--appendfsync', 'everysec'] : ['--appendonly', 'no'])];

async function child(name, script) {
  const env = { ...process.env, REDIS_PORT: String(PORT), PEERS_DIR: PEERS };
  const c = C.forkLogged(name, script, [], { env });
  await C.waitMessage(c, (m) => m && m.type === 'ready');
  return c;
}

async function oneRep(rep, probe) {
  const dir = path.join(C.ROOT, 'data', `redis-e2e-r${rep}`);
  fs.rmSync(dir, { recursive: true, force: true }); fs.mkdirSync(dir, { recursive: true });
  const redis = C.spawnLogged(`redis-e2e-r${rep}`, 'redis-server', redisArgs(dir));
  await C.waitPort(PORT);
  const prod = await child(`bullmq-e2e-producer-r${rep}`, path.join(__dirname, 'producer.js'));
  const work = await child(`bullmq-e2e-worker-r${rep}`, path.join(PEERS, 'bullmq', 'worker.js'));
  const pids = { redis: redis.pid, producer: prod.pid, worker: work.pid };
  const out = { mode: MODE, rep };
  try {
    for (const c of CONCS) {
      const queue = `e2e-c${c}`;
      await C.ipcRequest(work, { cmd: 'startLive', queue, concurrency: c });
      const r = await measured(prod, { cmd: 'closed', queue, inflight: inflightFor(c), warmupMs: WARMUP, durationMs: DURATION },
        pids, WARMUP + DURATION + 60000, probe);
      await C.ipcRequest(work, { cmd: 'stopLive' });
      const u = r.usage.procs;
      r.redisCpuPct = u.redis.cpuPct; r.producerCpuPct = u.producer.cpuPct; r.workerCpuPct = u.worker.cpuPct;
      r.machineBusyPct = r.usage.machineBusyPct;
      r.stallCount = r.stalls ? r.stalls.count : null;
      out[`closed_c${c}`] = r;
      console.log(`r${rep} ${MODE} closed c=${c} (${r.inflight} in flight): ${r.completedPerSec.toFixed(0)} jobs/s ` +
        `completed->event p50=${r.dispatchToCompletedEventMs.p50.toFixed(1)} ms; redis=${r.redisCpuPct.toFixed(0)}% ` +
        `producer=${r.producerCpuPct.toFixed(0)}% worker=${r.workerCpuPct.toFixed(0)}% machine=${r.machineBusyPct.toFixed(0)}% ` +
        `addErrors=${r.addErrors} longestGap=${r.longestGapBetweenCompletionsMs.toFixed(0)}ms`);
    }
  } finally {
    await C.killPid(work.pid); await C.killPid(prod.pid); await C.killPid(redis.pid);
    fs.rmSync(dir, { recursive: true, force: true });
  }
  return out;
}

(async () => {
  C.installExitHandlers();
  const probe = await C.startProbe();
  const reps = [];
  for (let rep = 1; rep <= REPS; rep++) reps.push(await oneRep(rep, probe));
  await C.killAllChildren();
  const doc = { config: { REPS, DURATION_MS: DURATION, WARMUP_MS: WARMUP, CONCURRENCIES: CONCS, WORKERS, MODE,
    inflight: Object.fromEntries(CONCS.map((c) => [c, inflightFor(c)])) },
    env: C.environment({ bullmq: C.pkgVersion('bullmq') }), reps };
  for (const c of CONCS) {
    const m = C.mmm(reps.map((r) => r[`closed_c${c}`].completedPerSec));
    console.log(`closed c=${c}: ${m.min.toFixed(0)} / ${m.median.toFixed(0)} / ${m.max.toFixed(0)} jobs/s (min / median / max)`);
  }
  if (OUT) fs.writeFileSync(OUT, JSON.stringify(doc, null, 2));
  process.exit(0);
})();
