// Helpers shared by the MetadataStore contract suite's files (fixtures and error assertions).
import { expect } from 'vitest';
import { CofferError, type ErrorCode } from '../errors.js';
import { ROOT_ID, type MetadataStore, type TreeNode } from './types.js';

export interface ContractTarget {
  store: MetadataStore;
  cleanup: () => Promise<void>;
}

/** Asserts that `p` rejects with a CofferError of `code`. */
export async function expectCode(p: Promise<unknown>, code: ErrorCode): Promise<CofferError> {
  const e = await p.then(
    () => undefined,
    (err: unknown) => err,
  );
  expect(e, `expected ${code}`).toBeInstanceOf(CofferError);
  expect((e as CofferError).code).toBe(code);
  return e as CofferError;
}

export const T0 = new Date('2024-03-04T05:06:07.089Z');

export function mkNode(over: Partial<TreeNode> & Pick<TreeNode, 'id' | 'name'>): TreeNode {
  return {
    parentId: ROOT_ID, type: 'dir', blobId: null, size: 0, owner: 'alice', createdAt: T0, modifiedAt: T0, version: 1,
    ...over,
  };
}

/** Byte order of the UTF-8 encodings: the order both adapters must list names in. */
export function byteOrder(a: string, b: string): number {
  return Buffer.compare(Buffer.from(a, 'utf8'), Buffer.from(b, 'utf8'));
}
