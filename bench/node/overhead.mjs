// Workloads 2, 3 and 7 in Node: N sequential awaited calls of a trivial function through
// p-limit (concurrency 10), p-retry (retries 2: three attempts, as dike's attempts = 3), or a
// rate limiter whose limit is never reached (every call admitted at once): bottleneck with a
// reservoir of 1e12, p-throttle with a limit of 1e12 per second. N/10 untimed calls first, as
// in bench/lua/overhead.lua.
import Bottleneck from 'bottleneck';
import pLimit from 'p-limit';
import pRetry from 'p-retry';
import pThrottle from 'p-throttle';
import { args, now, check, report } from './common.mjs';

const { impl, n } = args('overhead.mjs p-limit|p-retry|bottleneck|p-throttle N');
const f = (x) => x + 1;

let call;
if (impl === 'p-limit') {
  const limit = pLimit(10);
  call = (i) => limit(f, i);
} else if (impl === 'p-retry') {
  call = (i) => pRetry(() => f(i), { retries: 2 });
} else if (impl === 'bottleneck') {
  const limiter = new Bottleneck({ reservoir: 1e12 });
  call = (i) => limiter.schedule(f, i);
} else if (impl === 'p-throttle') {
  call = pThrottle({ limit: 1e12, interval: 1000 })(f);
} else {
  throw new Error(`overhead.mjs: unknown IMPL ${impl}`);
}

async function loop(m) {
  let acc = 0;
  for (let i = 1; i <= m; i++) acc += await call(i);
  return acc;
}

const warm = Math.max(1, Math.floor(n / 10));
check('warm-up sum', await loop(warm), (warm * (warm + 1)) / 2 + warm);
const t0 = now();
const acc = await loop(n);
const seconds = now() - t0;
check('sum of results', acc, (n * (n + 1)) / 2 + n);
report({ ops: n, seconds });
