import { describe, expect, it } from 'vitest';
import { JsonSyntaxError, parseStrictJson } from './strict-json.js';

describe('parseStrictJson', () => {
  it('parses JSON exactly as JSON.parse does', () => {
    const text = '{"a":[1,{"b":null,"c":"\\u00e9"}],"d":{"a":2},"e":-0.5e3,"__proto__":1}';
    expect(parseStrictJson(text)).toEqual(JSON.parse(text));
    expect(parseStrictJson('"x"')).toBe('x');
    expect(parseStrictJson('[]')).toEqual([]);
  });

  it('allows one key in sibling and nested objects', () => {
    expect(parseStrictJson('[{"a":1},{"a":2}]')).toEqual([{ a: 1 }, { a: 2 }]);
    expect(parseStrictJson('{"a":{"a":{"a":1}}}')).toEqual({ a: { a: { a: 1 } } });
  });

  it.each([
    ['at the top', '{"a":1,"a":2}', '"a"'],
    ['written with an escape', '{"Action":"kms:Decrypt","\\u0041ction":"kms:*"}', '"Action"'],
    ['deep inside', '{"x":[{"y":{"k":1,"k":1}}]}', '"k"'],
    ['after a nested object with the same key', '{"a":{"b":1},"b":2,"b":3}', '"b"'],
    ['empty', '{"":1,"":2}', '""'],
  ])('refuses a key repeated %s', (_where, text, key) => {
    expect(() => parseStrictJson(text)).toThrow(JsonSyntaxError);
    expect(() => parseStrictJson(text)).toThrow(`key ${key} appears twice`);
  });

  it('refuses what is not JSON, comments and trailing commas included', () => {
    for (const text of ['', '{', '{"a":1,}', '{"a":1 /* c */}', "{'a':1}", '[1,]', 'NaN']) {
      expect(() => parseStrictJson(text), text).toThrow('not valid JSON');
    }
  });

  it('bounds nesting, without exhausting the stack on a hostile document', () => {
    expect(parseStrictJson('[[[1]]]', 3)).toEqual([[[1]]]);
    expect(() => parseStrictJson('[[[[1]]]]', 3)).toThrow('nested deeper than 3 levels');
    const deep = '['.repeat(200_000) + ']'.repeat(200_000);
    expect(() => parseStrictJson(deep)).toThrow(JsonSyntaxError);
  });
});
