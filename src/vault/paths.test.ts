import { describe, expect, it } from 'vitest';
import { isCofferError } from '../errors.js';
import { formatPath, parsePath } from './paths.js';

function code(f: () => unknown): string | undefined {
  try {
    f();
    return undefined;
  } catch (e) {
    return isCofferError(e) ? e.code : 'NOT_COFFER';
  }
}

describe('parsePath', () => {
  it('accepts normal absolute paths and round-trips them', () => {
    expect(parsePath('/')).toEqual([]);
    expect(parsePath('/a/b c/ü.txt')).toEqual(['a', 'b c', 'ü.txt']);
    expect(parsePath('/a\\..\\b')).toEqual(['a\\..\\b']); // backslash is an ordinary character
    expect(parsePath('/...')).toEqual(['...']);
    expect(formatPath(parsePath('/x/y'))).toBe('/x/y');
  });

  it.each([
    ['relative', 'a/b'],
    ['empty', ''],
    ['double slash', '/a//b'],
    ['trailing slash', '/a/'],
    ['dot', '/a/./b'],
    ['dotdot', '/a/../b'],
    ['leading dotdot', '/..'],
    ['NUL', '/a\u0000b'],
    ['newline', '/a\nb'],
    ['DEL', '/a\u007fb'],
    ['segment too long', '/' + 'x'.repeat(256)],
    ['path too long', ('/' + 'x'.repeat(200)).repeat(21)],
  ])('refuses %s', (_name, p) => {
    expect(code(() => parsePath(p))).toBe('INVALID_PATH');
  });

  it('counts bytes, not characters', () => {
    expect(parsePath('/' + 'é'.repeat(127))).toHaveLength(1); // 254 bytes
    expect(code(() => parsePath('/' + 'é'.repeat(128)))).toBe('INVALID_PATH'); // 256 bytes
  });

  it('refuses non-strings', () => {
    expect(code(() => parsePath(undefined))).toBe('INVALID_PATH');
    expect(code(() => parsePath(42))).toBe('INVALID_PATH');
  });
});
