// Workload 8 in Node: N concurrent async callers each load one key through dataloader
// (maxBatchSize 100; the batch function returns its keys doubled), N keys drawn from 1,000
// distinct ones by the same Park-Miller sequence as bench/lua/dedup.lua.
//   IMPL cached    dataloader's default cache: a key is loaded once, in whichever batch first
//                  asks for it (dedup within and across batches)
//   IMPL uncached  cache: false: every load is a row of its batch
// Reports the rows the batch function received (rows_sent) beside the time.
import DataLoader from 'dataloader';
import { args, now, check, report } from './common.mjs';

const { impl, n } = args('dedup.mjs cached|uncached N');
if (impl !== 'cached' && impl !== 'uncached') throw new Error(`dedup.mjs: unknown IMPL ${impl}`);

const keys = new Array(n);
let state = 1;
for (let i = 0; i < n; i++) {
  state = (state * 16807) % 2147483647;
  keys[i] = state % 1000;
}
let rowsSent = 0;
const loader = new DataLoader(async (ks) => {
  rowsSent += ks.length;
  return ks.map((k) => k * 2);
}, { maxBatchSize: 100, cache: impl === 'cached' });
let sum = 0;
async function caller(i) {
  const r = await loader.load(keys[i]);
  sum += r;
}

let want = 0;
for (let i = 0; i < n; i++) want += 2 * keys[i];
const t0 = now();
const all = new Array(n);
for (let i = 0; i < n; i++) all[i] = caller(i);
await Promise.all(all);
const seconds = now() - t0;
check('sum of results', sum, want);
report({ ops: n, seconds, rows_sent: rowsSent });
