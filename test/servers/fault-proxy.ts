// A small HTTP proxy in front of a test server that injects faults on demand: the next N requests answered with
// a 500 or 503 (an S3-style XML error body), or dropped (the connection destroyed before any answer). Everything
// else is forwarded unchanged, streaming both ways. For fault tests of the S3 chunk store and backup target.
import http from 'node:http';
import type { AddressInfo } from 'node:net';

export type Fault = 500 | 503 | 'drop';

export interface FaultProxy {
  url: string;
  /** Queues faults for the next requests, in order (optionally only for one HTTP method). */
  inject(fault: Fault, count?: number, method?: string): void;
  /** Every request after now fails with `fault` until cleared (an outage). */
  outage(fault: Fault | null): void;
  /** Requests seen (forwarded or faulted). */
  readonly requests: number;
  close(): Promise<void>;
}

export async function startFaultProxy(upstream: string): Promise<FaultProxy> {
  const target = new URL(upstream);
  const queue: Array<{ fault: Fault; method?: string }> = [];
  let outage: Fault | null = null;
  let requests = 0;
  const server = http.createServer((req, res) => {
    requests++;
    const i = queue.findIndex((q) => !q.method || q.method === req.method);
    const fault = outage ?? (i >= 0 ? (queue.splice(i, 1)[0] as { fault: Fault }).fault : null);
    if (fault === 'drop') {
      req.socket.destroy();
      return;
    }
    if (fault !== null) {
      req.resume();
      const code = fault === 503 ? 'SlowDown' : 'InternalError';
      res.writeHead(fault, { 'content-type': 'application/xml' });
      res.end(`<?xml version="1.0" encoding="UTF-8"?><Error><Code>${code}</Code><Message>injected fault</Message></Error>`);
      return;
    }
    const up = http.request({ host: target.hostname, port: target.port, method: req.method, path: req.url, headers: req.headers }, (upRes) => {
      res.writeHead(upRes.statusCode ?? 502, upRes.headers);
      upRes.pipe(res);
    });
    up.on('error', () => req.socket.destroy());
    req.pipe(up);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    inject(fault, count = 1, method) {
      for (let k = 0; k < count; k++) queue.push({ fault, method });
    },
    outage(fault) {
      outage = fault;
    },
    get requests() {
      return requests;
    },
    close: () => new Promise<void>((resolve) => {
      server.closeAllConnections();
      server.close(() => resolve());
    }),
  };
}
