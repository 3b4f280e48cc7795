import { describe, expect, it } from 'vitest';
import { directIoSetting, parseListen } from './config.js';

describe('configuration values', () => {
  it('COFFER_DIRECT_IO: auto (unset), on, off; anything else is refused', () => {
    expect(directIoSetting(undefined)).toBeUndefined();
    expect(directIoSetting('auto')).toBeUndefined();
    expect(directIoSetting(' ON ')).toBe(true);
    expect(directIoSetting('off')).toBe(false);
    for (const bad of ['1', 'yes', 'true', 'direct']) expect(() => directIoSetting(bad)).toThrow(expect.objectContaining({ code: 'INVALID_ARGUMENT' }));
  });

  it('listen addresses', () => {
    expect(parseListen('127.0.0.1:7700')).toEqual({ host: '127.0.0.1', port: 7700 });
    expect(parseListen('[::1]:0')).toEqual({ host: '::1', port: 0 });
    for (const bad of ['7700', 'host:', 'host:99999', ':80']) expect(() => parseListen(bad)).toThrow(expect.objectContaining({ code: 'INVALID_ARGUMENT' }));
  });
});
