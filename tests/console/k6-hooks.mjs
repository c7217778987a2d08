// k6-hooks.mjs — module hooks for k6.test.mjs: `k6`, `k6/http`, `k6/ws`,
// `k6/metrics` and `k6/x/sse` resolve to stand-ins that call
// globalThis.__k6, which the test fills in.

const NAMES = {
  k6: ['check', 'sleep', 'group', 'fail'],
  'k6/http': ['default'],
  'k6/ws': ['default'],
  'k6/x/sse': ['default'],
  'k6/metrics': ['Counter', 'Trend', 'Rate', 'Gauge'],
};

export async function resolve(specifier, context, next) {
  if (Object.hasOwn(NAMES, specifier)) return { url: `k6-stub:${specifier}`, shortCircuit: true };
  return next(specifier, context);
}

export async function load(url, context, next) {
  if (url.startsWith('k6-stub:')) {
    const name = url.slice('k6-stub:'.length);
    const source = NAMES[name]
      .map((n) => (n === 'default'
        ? `export default globalThis.__k6.modules[${JSON.stringify(name)}];`
        : `export const ${n} = globalThis.__k6.modules[${JSON.stringify(name)}].${n};`))
      .join('\n');
    return { format: 'module', source, shortCircuit: true };
  }
  return next(url, context);
}
