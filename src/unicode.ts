// Well-formed Unicode: a string with a UTF-16 surrogate missing its pair has no UTF-8 form, so it is stored or
// hashed as U+FFFD and two different strings become the same bytes. Names, paths and encryption contexts refuse it.

const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/;

export function isWellFormed(s: string): boolean {
  return !LONE_SURROGATE.test(s);
}
