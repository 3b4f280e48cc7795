// JSON.parse that refuses what it would otherwise resolve silently: a key repeated in one object (JSON.parse
// keeps the last, another parser may keep the first, so two readers of one request or policy could disagree),
// and nesting deeper than a bound. The duplicate scan is jsonc-parser's visitor in strict mode (no comments,
// no trailing commas); the value itself still comes from JSON.parse, so the accepted grammar is exactly JSON.
import { visit } from 'jsonc-parser';

export class JsonSyntaxError extends Error {
  override readonly name = 'JsonSyntaxError';
}

/** Deep enough for every document Coffer reads (a key policy is ~6 levels); bounds the scan's recursion. */
export const DEFAULT_MAX_DEPTH = 64;

/**
 * Parses `text` as JSON. @throws JsonSyntaxError when it is not JSON, an object repeats a key (compared after
 * unescaping: `"a"` and `"\u0061"` are the same key), or objects and arrays nest deeper than `maxDepth`.
 */
export function parseStrictJson(text: string, maxDepth = DEFAULT_MAX_DEPTH): unknown {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    throw new JsonSyntaxError('not valid JSON');
  }
  const keys: Array<Set<string> | null> = []; // one entry per open object or array (null for an array)
  const enter = (k: Set<string> | null): void => {
    if (keys.length >= maxDepth) throw new JsonSyntaxError(`nested deeper than ${maxDepth} levels`);
    keys.push(k);
  };
  visit(
    text,
    {
      onObjectBegin: () => enter(new Set()),
      onArrayBegin: () => enter(null),
      onObjectEnd: () => void keys.pop(),
      onArrayEnd: () => void keys.pop(),
      onObjectProperty: (name) => {
        const seen = keys[keys.length - 1];
        if (!seen) return;
        if (seen.has(name)) throw new JsonSyntaxError(`key ${JSON.stringify(name.slice(0, 64))} appears twice in one object`);
        seen.add(name);
      },
    },
    { disallowComments: true, allowTrailingComma: false },
  );
  return value;
}
