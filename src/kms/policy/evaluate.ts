// Evaluates a parsed key policy against one request, with AWS's rules: an explicit Deny wins, otherwise some
// matching Allow is needed, otherwise the request is (implicitly) denied. An empty policy therefore denies.
import type { Condition, Decision, KeyPolicy, RequestContext, Statement } from './types.js';

/** Decides one request. Never throws: anything it cannot decide does not match an Allow. */
export function evaluatePolicy(policy: KeyPolicy, req: RequestContext): Decision {
  let allowed = false;
  for (const s of policy.statements) {
    if (!statementMatches(s, req)) continue;
    if (s.effect === 'Deny') return 'explicit-deny';
    allowed = true;
  }
  return allowed ? 'allow' : 'implicit-deny';
}

function statementMatches(s: Statement, req: RequestContext): boolean {
  if (s.principals !== '*' && !s.principals.includes(req.principalArn)) return false;
  const action = req.action.toLowerCase();
  if (!s.actions.some((p) => wildcardMatch(p, action))) return false;
  if (!s.resources.some((p) => wildcardMatch(p, req.resourceArn))) return false;
  return s.conditions.every((c) => conditionHolds(c, req.conditions.get(c.key)));
}

/** One condition against the request's values for its key (undefined = key absent from the request). */
export function conditionHolds(c: Condition, values: readonly string[] | undefined): boolean {
  if (c.op === 'Null') return (values === undefined || values.length === 0) === (c.values[0] === 'true');
  const negated = c.op.includes('Not');
  const matchesAny = (v: string): boolean => c.values.some((p) => valueMatches(c.op, p, v));
  if (c.qualifier === 'ForAnyValue') {
    if (!values || values.length === 0) return false;
    return values.some((v) => (negated ? !matchesAny(v) : matchesAny(v)));
  }
  if (c.qualifier === 'ForAllValues') {
    if (!values || values.length === 0) return true;
    return values.every((v) => (negated ? !matchesAny(v) : matchesAny(v)));
  }
  // single-valued key: absent → positive operators fail, negated ones hold (AWS semantics)
  const v = values?.[0];
  if (v === undefined) return negated;
  return negated ? !matchesAny(v) : matchesAny(v);
}

function valueMatches(op: Condition['op'], pattern: string, value: string): boolean {
  switch (op) {
    case 'StringEquals':
    case 'StringNotEquals':
      return pattern === value;
    case 'StringEqualsIgnoreCase':
    case 'StringNotEqualsIgnoreCase':
      return pattern.toLowerCase() === value.toLowerCase();
    case 'StringLike':
    case 'StringNotLike':
      return wildcardMatch(pattern, value);
    case 'Bool':
      return pattern === value.toLowerCase();
    case 'Null':
      return false;
  }
}

/** `*` = any run of characters, `?` = exactly one; everything else literal. Case-sensitive. */
export function wildcardMatch(pattern: string, value: string): boolean {
  // Linear-time glob matching (`*` any run, `?` one character), with backtracking only to the last `*`: a
  // regular expression built from a policy's pattern backtracks exponentially on inputs a caller controls
  // ("*a*a*a*b" against "aaaa…" froze the server for seconds), and both sides come from callers.
  let p = 0;
  let v = 0;
  let star = -1;
  let mark = 0;
  while (v < value.length) {
    if (p < pattern.length && (pattern[p] === '?' || pattern[p] === value[v])) {
      p++;
      v++;
    } else if (p < pattern.length && pattern[p] === '*') {
      star = p++;
      mark = v;
    } else if (star >= 0) {
      p = star + 1;
      v = ++mark;
    } else {
      return false;
    }
  }
  while (p < pattern.length && pattern[p] === '*') p++;
  return p === pattern.length;
}
