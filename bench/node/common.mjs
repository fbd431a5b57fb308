// Shared by the Node workloads: the same command line and result line as bench/lua/common.lua.
export function args(usage) {
  const [impl, nText, flag] = process.argv.slice(2);
  const n = Number(nText);
  if (!impl || !Number.isInteger(n) || n < 1 || (flag !== undefined && flag !== 'mem')) {
    throw new Error(`usage: ${usage}`);
  }
  return { impl, n, mem: flag === 'mem' };
}

export function now() {
  return Number(process.hrtime.bigint()) * 1e-9;
}

// Live JS heap in bytes after a full collection (needs node --expose-gc).
export function heapBytes() {
  global.gc();
  global.gc();
  return process.memoryUsage().heapUsed;
}

export function check(what, got, want) {
  if (got !== want) throw new Error(`${what}: got ${got}, want ${want}`);
}

export function report(fields) {
  const parts = ['result'];
  for (const k of Object.keys(fields).sort()) {
    const v = fields[k];
    parts.push(`${k}=${typeof v === 'number' ? Number(v.toPrecision(9)) : v}`);
  }
  process.stdout.write(parts.join(' ') + '\n');
}
