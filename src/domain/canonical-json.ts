/**
 * JSON with every object's keys sorted and undefined members left out, so that equal values give
 * equal text whatever order their keys came in (a client's JSON, or jsonb handing an object back
 * in its own order).
 */
export function canonicalJson(value: unknown): string {
  const sorted = (v: unknown): unknown => {
    if (Array.isArray(v)) return v.map(sorted);
    if (typeof v === 'object' && v !== null) {
      return Object.fromEntries(
        Object.entries(v)
          .filter(([, x]) => x !== undefined)
          .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
          .map(([k, x]) => [k, sorted(x)]),
      );
    }
    return v;
  };
  return JSON.stringify(sorted(value));
}
