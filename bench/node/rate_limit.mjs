// Workloads 12 and 13 in Node, with bottleneck 2.19.5 and p-throttle 8.1.1 (the same two
// workloads as bench/lua/rate_limit.lua; neither has GCRA's smooth spacing, so each gets the
// same average rate as windows of 100 ms):
//   IMPL bottleneck-waiting | p-throttle-waiting   N concurrent calls at 20,000 a second
//       (bottleneck: reservoir 2000, refilled to 2000 every 100 ms; p-throttle: limit 2000 per
//       100 ms interval). Reported: process CPU time (user + system) per call, from the first
//       call until the last one is done.
//   IMPL bottleneck-rate | p-throttle-rate   N async callers call again and again for D seconds
//       (2; 0.2 for N < 1000) at 5,000 a second (500 per 100 ms). Reported: the calls that ran
//       within the D seconds (ops) and `expected` = rate * D: their ratio. (A window limiter
//       lets a window's worth through at once, as dike's burst; counted against rate * D alone,
//       a ratio above 1 shows that burst.)
import Bottleneck from 'bottleneck';
import pThrottle from 'p-throttle';
import { args, now, check, report } from './common.mjs';

const { impl, n } = args('rate_limit.mjs bottleneck-waiting|p-throttle-waiting|bottleneck-rate|p-throttle-rate N');
const [peer, kind] = impl.split(/-(?=waiting$|rate$)/);

function limiterFor(perWindow) {
  if (peer === 'bottleneck') {
    const b = new Bottleneck({ reservoir: perWindow, reservoirRefreshAmount: perWindow,
                               reservoirRefreshInterval: 100 });
    return { call: (f, ...a) => b.schedule(f, ...a), stop: () => b.stop({ dropWaitingJobs: false }) };
  }
  if (peer === 'p-throttle') {
    const throttle = pThrottle({ limit: perWindow, interval: 100 });
    const cache = new Map();
    return {
      call: (f, ...a) => {
        let t = cache.get(f);
        if (!t) { t = throttle(f); cache.set(f, t); }
        return t(...a);
      },
      stop: () => {},
    };
  }
  throw new Error(`rate_limit.mjs: unknown IMPL ${impl}`);
}

function cpuSeconds() {
  const u = process.cpuUsage();
  return (u.user + u.system) * 1e-6;
}

if (kind === 'waiting') {
  const limiter = limiterFor(2000);
  const f = (i) => i;
  let done = 0;
  const cpu0 = cpuSeconds();
  const t0 = now();
  const all = new Array(n);
  for (let i = 1; i <= n; i++) all[i - 1] = limiter.call(f, i).then((r) => { if (r === i) done++; });
  await Promise.all(all);
  const cpu = cpuSeconds() - cpu0;
  const wall = now() - t0;
  await limiter.stop();
  check('callers done', done, n);
  report({ ops: n, seconds: cpu, wall });
} else if (kind === 'rate') {
  const RATE = 5000;
  const D = n >= 1000 ? 2 : 0.2;
  const limiter = limiterFor(RATE / 10);
  let admitted = 0;
  let late = 0;
  const deadline = now() + D;
  const f = () => { if (now() <= deadline) admitted++; else late++; };
  async function caller() {
    while (now() < deadline) await limiter.call(f);
  }
  const cpu0 = cpuSeconds();
  const all = new Array(n);
  for (let i = 0; i < n; i++) all[i] = caller();
  await Promise.all(all);
  await limiter.stop();
  const expected = RATE * D;
  report({ ops: admitted, seconds: D, expected, ratio: admitted / expected, late, cpu: cpuSeconds() - cpu0 });
} else {
  throw new Error(`rate_limit.mjs: unknown IMPL ${impl}`);
}
