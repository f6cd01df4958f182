'use strict';
// Closed-loop BullMQ producer (forked by run.js, driven over IPC): keeps `inflight` jobs
// added and not yet completed, learns completions from QueueEvents (as a BullMQ producer
// does), and counts the completions inside the measured window. The mirror of the
// dispatchers of `clawnet bench tasks --scenarios closed`.
const path = require('path');
const PEERS = process.env.PEERS_DIR;
const { Queue, QueueEvents } = require(path.join(PEERS, 'node_modules', 'bullmq'));
const { now, sleep, Hist, serveIpc } = require(path.join(PEERS, 'lib', 'common'));

const connection = { host: '127.0.0.1', port: Number(process.env.REDIS_PORT || 16379) };
// The peer scripts' job data and options (bullmq/producer.js), so a job weighs the same.
const PAD = 'x'.repeat(100);
const JOB_OPTS = { removeOnComplete: { count: 1000 }, removeOnFail: { count: 5000 } };
const data = (i) => ({ agent: `agent-${i % 20}`, kind: 'task', i, pad: PAD, ts: now() });
const phase = (p) => process.send({ type: 'phase', phase: p, t: now() });

async function closed({ queue, inflight, warmupMs, durationMs }) {
  const Q = new Queue(queue, { connection, defaultJobOptions: JOB_OPTS });
  const qe = new QueueEvents(queue, { connection });
  await Promise.all([Q.waitUntilReady(), qe.waitUntilReady()]);
  const e2e = new Hist();
  let next = 0, outstanding = 0, added = 0, completed = 0, inWindow = 0, addErrors = 0, stop = false;
  let lastCompletion = now(), longestGapMs = 0;
  const pump = () => {
    while (!stop && outstanding < inflight) {
      outstanding++;
      Q.add('task', data(next++)).then(() => { added++; }, () => { addErrors++; outstanding--; });
    }
  };
  const t0 = now(), mStart = t0 + warmupMs, mEnd = mStart + durationMs;
  qe.on('completed', ({ returnvalue }) => {
    const t = now();
    completed++; outstanding--;
    longestGapMs = Math.max(longestGapMs, t - lastCompletion); lastCompletion = t;
    if (t >= mStart && t < mEnd) {
      inWindow++;
      let rv = returnvalue; if (typeof rv === 'string') { try { rv = JSON.parse(rv); } catch {} }
      if (rv && typeof rv.ts === 'number') e2e.record(t - rv.ts);
    }
    pump();
  });
  pump();
  await sleep(mStart - now()); phase('measure_start');
  await sleep(mEnd - now()); phase('measure_end');
  stop = true;
  await sleep(500);
  await qe.close(); await Q.close();
  return { inflight, added, completed, inWindow, addErrors, windowSec: durationMs / 1000,
    completedPerSec: inWindow / (durationMs / 1000), dispatchToCompletedEventMs: e2e.stats(),
    longestGapBetweenCompletionsMs: longestGapMs };
}

serveIpc({ closed });
process.send({ type: 'ready' });
