// Workload 7 in Node: N sequential awaited calls of a trivial function through a closed
// circuit breaker, every call succeeding at once (as bench/lua/overhead.lua's breaker IMPL):
//   opossum    new CircuitBreaker(f, { timeout: false }).fire(i): 50% errors over a 10 s
//              rolling window, reset after 30 s (its defaults); its per-call timeout (a timer
//              per call, 10 s by default) is off, since dike.circuit_breaker has none
//   cockatiel  circuitBreaker(handleAll, { halfOpenAfter: 30 s, breaker: new CountBreaker({
//              threshold: 0.5, size: 20, minimumNumberOfCalls: 10 }) }).execute(() => f(i)):
//              the same count window as dike's defaults
// N/10 untimed calls first, as in bench/lua/overhead.lua.
import CircuitBreaker from 'opossum';
import { circuitBreaker, handleAll, CountBreaker } from 'cockatiel';
import { args, now, check, report } from './common.mjs';

const { impl, n } = args('breaker.mjs opossum|cockatiel N');
const f = (x) => x + 1;

let call;
if (impl === 'opossum') {
  const breaker = new CircuitBreaker(f, { timeout: false });
  call = (i) => breaker.fire(i);
} else if (impl === 'cockatiel') {
  const policy = circuitBreaker(handleAll, {
    halfOpenAfter: 30_000,
    breaker: new CountBreaker({ threshold: 0.5, size: 20, minimumNumberOfCalls: 10 }),
  });
  call = (i) => policy.execute(() => f(i));
} else {
  throw new Error(`breaker.mjs: unknown IMPL ${impl}`);
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
