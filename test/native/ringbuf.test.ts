// RingBuffer: reading BPF ring buffer maps, synchronously (consume) and from
// the event loop (start). Records come from test/fixtures/ringbuf.c run with
// BPF_PROG_TEST_RUN: UDP dport 2 reserves+submits into `events`, dport 3
// writes into `events_b` with bpf_ringbuf_output; each record carries the
// program's global sequence number.
import { readdirSync, readFileSync, readlinkSync } from 'node:fs';
import { afterEach, describe, expect, it } from 'vitest';
import { Collection, loadCollectionSpec } from '../../loader/index.js';
import { BpfError, RingBuffer } from '../../native/index.js';
import { fixture } from '../lib/fixtures.js';
import { eth } from '../lib/packet.js';
import { requireKernel, u32 } from './helpers.js';

const enabled = requireKernel();
const gc = (globalThis as { gc?: () => void }).gc;
if (enabled && !gc && process.env.CI) throw new Error('vitest must run with --expose-gc (vitest.config.ts)');

const RING_BYTES = 4096 * 4;
const EVENT_SIZE = 16; // struct event
const RECORD_BYTES = 8 + EVENT_SIZE; // 8-byte ring header, records rounded up to 8

const packet = (dport: number) =>
  eth({ src: '02:00:00:00:00:01', dst: '02:00:00:00:00:02' })
    .ipv4({ src: '10.0.0.1', dst: '10.0.0.2' })
    .udp({ sport: 1, dport })
    .build();
const RESERVE = packet(2); // -> events (bpf_ringbuf_reserve/submit)
const OUTPUT = packet(3); // -> events_b (bpf_ringbuf_output)

interface Event {
  seq: number;
  len: number;
  tag: string;
  map: string;
}
function decode(data: Buffer, map: string): Event {
  expect(data.length).toBe(EVENT_SIZE);
  return {
    seq: data.readUInt32LE(0),
    len: data.readUInt32LE(4),
    tag: data.subarray(8, 16).toString('latin1').replace(/\0+$/, ''),
    map,
  };
}
const range = (from: number, n: number) => Array.from({ length: n }, (_, i) => from + i);

function counters(c: Collection): { nextSeq: number; reserveFailed: number; outputFailed: number } {
  const v = c.maps['.bss'].lookup(u32(0))!;
  return {
    nextSeq: v.readUInt32LE(0),
    reserveFailed: Number(v.readBigUInt64LE(8)),
    outputFailed: Number(v.readBigUInt64LE(16)),
  };
}

/** Resolves once cond() holds; rejects after `ms` (a bounded wait, never a hang). */
async function waitFor(cond: () => boolean, what: string, ms = 5000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}
/** Lets the event loop turn a few times (timers, I/O polls). */
const settle = (ms = 100) => new Promise((r) => setTimeout(r, ms));

function epollFds(): number {
  let n = 0;
  for (const fd of readdirSync('/proc/self/fd')) {
    try {
      if (readlinkSync(`/proc/self/fd/${fd}`) === 'anon_inode:[eventpoll]') n++;
    } catch {
      // raced with a close
    }
  }
  return n;
}
function bpfMapMappings(): number {
  return readFileSync('/proc/self/maps', 'utf8')
    .split('\n')
    .filter((l) => l.includes('anon_inode:bpf-map')).length;
}

describe.skipIf(!enabled)('RingBuffer', () => {
  const cleanup: Array<{ close(): void }> = [];
  const track = <T extends { close(): void }>(x: T): T => {
    cleanup.push(x);
    return x;
  };
  const load = async () => track(await loadCollectionSpec(fixture('ringbuf')).load());
  afterEach(() => {
    for (const x of cleanup.splice(0).reverse()) x.close();
  });

  const reader = (c: Collection, out: Event[], opts?: ConstructorParameters<typeof RingBuffer>[2]) =>
    track(new RingBuffer(c.maps.events, (d, m) => out.push(decode(d, m)), opts));

  it('consume() returns exactly the records there, in order, with their contents', async () => {
    const c = await load();
    const got: Event[] = [];
    const rb = reader(c, got);
    expect(rb.consume()).toBe(0);

    await c.programs.xdp_events.testRun({ data: RESERVE, repeat: 100 });
    expect(rb.consume()).toBe(100);
    expect(got).toEqual(range(0, 100).map((seq) => ({ seq, len: RESERVE.length, tag: 'reserve', map: 'events' })));
    expect(rb.consume()).toBe(0);

    await c.programs.xdp_events.testRun({ data: RESERVE, repeat: 7 });
    expect(rb.consume()).toBe(7);
    expect(got.map((e) => e.seq)).toEqual(range(0, 107));
    expect(rb.stats).toEqual({ records: 107, wakeups: 0, pending: 0 });
    expect(counters(c)).toEqual({ nextSeq: 107, reserveFailed: 0, outputFailed: 0 });
  });

  it('start() delivers asynchronously, without consume(), and stop() stops delivery', async () => {
    const c = await load();
    const got: Event[] = [];
    const rb = reader(c, got);
    rb.start();
    rb.start(); // idempotent
    expect(rb.running).toBe(true);

    await c.programs.xdp_events.testRun({ data: RESERVE, repeat: 50 });
    await waitFor(() => got.length === 50, '50 records');
    expect(got.map((e) => e.seq)).toEqual(range(0, 50));
    const wakeups = rb.stats.wakeups;
    expect(wakeups).toBeGreaterThanOrEqual(1);
    // Drained: the epoll fd is no longer readable, so an idle reader is not woken (no busy loop).
    await settle();
    expect(rb.stats.wakeups).toBe(wakeups);

    rb.stop();
    rb.stop(); // idempotent
    expect(rb.running).toBe(false);
    await c.programs.xdp_events.testRun({ data: RESERVE, repeat: 10 });
    await settle();
    expect(got.length).toBe(50);
    // They waited in the ring.
    expect(rb.consume()).toBe(10);
    expect(got.map((e) => e.seq)).toEqual(range(0, 60));

    // And start() again picks up new records.
    rb.start();
    await c.programs.xdp_events.testRun({ data: RESERVE, repeat: 5 });
    await waitFor(() => got.length === 65, '65 records');
    expect(got.map((e) => e.seq)).toEqual(range(0, 65));
  });

  it('stop() inside the callback: no further record is delivered in that pass', async () => {
    const c = await load();
    const got: Event[] = [];
    const rb: RingBuffer = track(
      new RingBuffer(c.maps.events, (d, m) => {
        got.push(decode(d, m));
        if (got.length === 3) rb.stop();
      }),
    );
    await c.programs.xdp_events.testRun({ data: RESERVE, repeat: 10 });
    rb.start();
    await waitFor(() => got.length >= 3, '3 records');
    await settle();
    expect(got.length).toBe(3);
    expect(rb.stats.pending).toBe(7);
    // The rest, in order, on the next consume().
    expect(rb.consume()).toBe(7);
    expect(got.map((e) => e.seq)).toEqual(range(0, 10));
  });

  it('reads two rings on one reader, in order per map, naming the map', async () => {
    const c = await load();
    const got: Event[] = [];
    const rb = reader(c, got);
    rb.add(c.maps.events_b);
    expect(rb.mapNames).toEqual(['events', 'events_b']);

    const run = (pkt: Buffer, repeat: number) => c.programs.xdp_events.testRun({ data: pkt, repeat });
    await run(RESERVE, 3); // seq 0..2
    await run(OUTPUT, 4); // seq 3..6
    await run(RESERVE, 2); // seq 7..8
    await run(OUTPUT, 1); // seq 9
    expect(rb.consume()).toBe(10);
    const of = (m: string) => got.filter((e) => e.map === m);
    expect(of('events')).toEqual([0, 1, 2, 7, 8].map((seq) => ({ seq, len: RESERVE.length, tag: 'reserve', map: 'events' })));
    expect(of('events_b')).toEqual([3, 4, 5, 6, 9].map((seq) => ({ seq, len: OUTPUT.length, tag: 'output', map: 'events_b' })));

    // Asynchronously too.
    got.length = 0;
    rb.start();
    await run(OUTPUT, 5); // 10..14
    await run(RESERVE, 5); // 15..19
    await waitFor(() => got.length === 10, '10 records from both rings');
    expect(of('events_b').map((e) => e.seq)).toEqual(range(10, 5));
    expect(of('events').map((e) => e.seq)).toEqual(range(15, 5));
  });

  it('refuses a map that is not a ring buffer, and anything that is not a map', async () => {
    const c = await load();
    const bss = c.maps['.bss'];
    let err: unknown;
    try {
      new RingBuffer(bss, () => {});
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(BpfError);
    expect(err).toMatchObject({ code: 'EINVAL', syscall: 'ring_buffer__new' });
    expect((err as Error).message).toMatch(/^RingBuffer: map \S+ \(id \d+\) has type ARRAY, not RINGBUF \(EINVAL\)$/);

    const rb = track(new RingBuffer(c.maps.events, () => {}));
    expect(() => rb.add(bss)).toThrow(expect.objectContaining({ code: 'EINVAL', syscall: 'ring_buffer__add' }));
    expect(rb.mapNames).toEqual(['events']);

    expect(() => new RingBuffer({ fd: 3 } as never, () => {})).toThrow(TypeError);
    expect(() => new RingBuffer(c.maps.events, 'nope' as never)).toThrow(TypeError);
    expect(() => new RingBuffer(c.maps.events, () => {}, { batch: 0 })).toThrow(RangeError);
    expect(() => new RingBuffer(c.maps.events, () => {}, { batch: 1.5 })).toThrow(TypeError);
  });

  it('a throwing callback: consume() rethrows, nothing is lost or repeated', async () => {
    const c = await load();
    const got: number[] = [];
    const boom = new Error('callback failed');
    let throwAt = 4;
    let nested: unknown;
    const rb: RingBuffer = track(
      new RingBuffer(c.maps.events, (d) => {
        const seq = d.readUInt32LE(0);
        got.push(seq);
        if (seq === 0) {
          try {
            rb.consume();
          } catch (e) {
            nested = e;
          }
        }
        if (seq === throwAt) throw boom;
      }),
    );
    await c.programs.xdp_events.testRun({ data: RESERVE, repeat: 10 });
    expect(() => rb.consume()).toThrow(boom);
    expect(String(nested)).toMatch(/consume\(\) called from inside its own record callback/);
    expect(got).toEqual(range(0, 5));
    expect(rb.stats).toMatchObject({ records: 5, pending: 5 });
    throwAt = -1;
    expect(rb.consume()).toBe(5);
    expect(got).toEqual(range(0, 10));
    expect(rb.stats).toMatchObject({ records: 10, pending: 0 });
  });

  it('a throwing callback after start(): the reader stops and onError gets the error; start() resumes', async () => {
    const c = await load();
    const got: number[] = [];
    const errors: unknown[] = [];
    const boom = new Error('callback failed');
    let throwAt = 2;
    const rb = track(
      new RingBuffer(
        c.maps.events,
        (d) => {
          const seq = d.readUInt32LE(0);
          got.push(seq);
          if (seq === throwAt) throw boom;
        },
        { onError: (e) => errors.push(e) },
      ),
    );
    rb.start();
    await c.programs.xdp_events.testRun({ data: RESERVE, repeat: 8 });
    await waitFor(() => errors.length > 0, 'onError');
    expect(errors).toEqual([boom]);
    expect(rb.running).toBe(false);
    expect(got).toEqual(range(0, 3));

    // Stopped: more records wait in the ring.
    await c.programs.xdp_events.testRun({ data: RESERVE, repeat: 2 });
    await settle();
    expect(got).toEqual(range(0, 3));

    // Resuming delivers the pending remainder first, then the ring, in order.
    throwAt = -1;
    rb.start();
    await waitFor(() => got.length === 10, 'the remaining records');
    expect(got).toEqual(range(0, 10));
    expect(errors.length).toBe(1);
  });

  it('without onError, an asynchronous callback error is an uncaught exception', async () => {
    const c = await load();
    const boom = new Error('nobody listens');
    const rb = track(
      new RingBuffer(c.maps.events, () => {
        throw boom;
      }),
    );
    const caught: unknown[] = [];
    const onUncaught = (e: unknown) => caught.push(e);
    // vitest's own listener would fail the run: take them all over for this test.
    const previous = process.listeners('uncaughtException');
    process.removeAllListeners('uncaughtException');
    process.on('uncaughtException', onUncaught);
    try {
      rb.start();
      await c.programs.xdp_events.testRun({ data: RESERVE, repeat: 1 });
      await waitFor(() => caught.length > 0, 'uncaughtException');
    } finally {
      process.off('uncaughtException', onUncaught);
      for (const l of previous) process.on('uncaughtException', l);
    }
    expect(caught).toEqual([boom]);
    expect(rb.running).toBe(false);
  });

  it('close() is idempotent and frees the epoll fd and the ring mappings', async () => {
    const c = await load();
    const epoll0 = epollFds();
    const maps0 = bpfMapMappings();
    const rb = new RingBuffer(c.maps.events, () => {});
    rb.add(c.maps.events_b);
    expect(epollFds()).toBe(epoll0 + 1);
    expect(bpfMapMappings()).toBeGreaterThan(maps0);
    rb.start();
    rb.close();
    expect(rb.closed).toBe(true);
    expect(rb.running).toBe(false);
    expect(epollFds()).toBe(epoll0);
    expect(bpfMapMappings()).toBe(maps0);
    rb.close();
    rb.stop();
    expect(() => rb.consume()).toThrow(expect.objectContaining({ code: 'EBADF' }));
    expect(() => rb.start()).toThrow(BpfError);
    expect(() => rb.add(c.maps.events)).toThrow(BpfError);
    expect(rb.stats.records).toBe(0);

    // close() from inside the callback, mid-pass: nothing more is delivered.
    let seen = 0;
    const rb2: RingBuffer = new RingBuffer(c.maps.events, () => {
      if (++seen === 2) rb2.close();
    });
    await c.programs.xdp_events.testRun({ data: RESERVE, repeat: 5 });
    rb2.start();
    await waitFor(() => rb2.closed, 'close from the callback');
    await settle();
    expect(seen).toBe(2);
    expect(epollFds()).toBe(epoll0);
  });

  it('the reader outlives the map handle it was made from', async () => {
    const c = await load();
    const events = c.maps.events.dup();
    const got: Event[] = [];
    const rb = track(new RingBuffer(events, (d, m) => got.push(decode(d, m))));
    events.close();
    await c.programs.xdp_events.testRun({ data: RESERVE, repeat: 3 });
    expect(rb.consume()).toBe(3);
  });

  it('a burst larger than batch is fully delivered, at most batch records per wakeup', async () => {
    const c = await load();
    const BATCH = 50;
    const N = 600; // fits in the ring: 600 * 24 bytes < 16 KiB
    const got: number[] = [];
    const passes: number[] = [];
    let inPass = 0;
    const rb = track(
      new RingBuffer(
        c.maps.events,
        (d) => {
          got.push(d.readUInt32LE(0));
          // Microtasks run when a pass hands control back to the event loop.
          if (inPass++ === 0)
            queueMicrotask(() => {
              passes.push(inPass);
              inPass = 0;
            });
        },
        { batch: BATCH },
      ),
    );
    await c.programs.xdp_events.testRun({ data: RESERVE, repeat: N });
    rb.start();
    await waitFor(() => got.length === N, `${N} records`);
    expect(got).toEqual(range(0, N));
    expect(Math.max(...passes)).toBeLessThanOrEqual(BATCH);
    expect(passes.reduce((a, b) => a + b, 0)).toBe(N);
    expect(rb.stats.wakeups).toBeGreaterThanOrEqual(N / BATCH);
    expect(rb.stats.records).toBe(N);

    // consume() drains everything in one call, whatever the batch.
    rb.stop();
    await c.programs.xdp_events.testRun({ data: RESERVE, repeat: N });
    expect(rb.consume()).toBe(N);
    expect(got).toEqual(range(0, 2 * N));
  });

  it('a full ring: the BPF side counts failed reserves/outputs, user space reads what fit', async () => {
    const c = await load();
    const RUNS = 2000;
    const fit = Math.floor(RING_BYTES / RECORD_BYTES); // 682 records of 24 bytes
    const got: Event[] = [];
    const rb = reader(c, got);
    rb.add(c.maps.events_b);

    await c.programs.xdp_events.testRun({ data: RESERVE, repeat: RUNS });
    expect(counters(c).reserveFailed).toBe(RUNS - fit);
    await c.programs.xdp_events.testRun({ data: OUTPUT, repeat: RUNS });
    expect(counters(c).outputFailed).toBe(RUNS - fit);

    expect(rb.consume()).toBe(2 * fit);
    // The first records fit; the rest were refused at the source.
    expect(got.filter((e) => e.map === 'events').map((e) => e.seq)).toEqual(range(0, fit));
    expect(got.filter((e) => e.map === 'events_b').map((e) => e.seq)).toEqual(range(RUNS, fit));

    // Drained: there is room again.
    await c.programs.xdp_events.testRun({ data: RESERVE, repeat: 1 });
    expect(counters(c).reserveFailed).toBe(RUNS - fit);
    expect(rb.consume()).toBe(1);
  });

  it.skipIf(!gc)('a reader dropped without close() is freed by the garbage collector', async () => {
    const c = await load();
    const epoll0 = epollFds();
    (() => {
      for (let i = 0; i < 10; i++) new RingBuffer(c.maps.events, () => {});
    })();
    expect(epollFds()).toBe(epoll0 + 10);
    for (let round = 0; round < 50 && epollFds() > epoll0; round++) {
      gc!();
      await new Promise((r) => setTimeout(r, 20));
    }
    expect(epollFds()).toBe(epoll0);
  });

  it('a started reader nobody references keeps delivering until stop()', async () => {
    const c = await load();
    const got: number[] = [];
    const ref = (() => {
      const rb = new RingBuffer(c.maps.events, (d) => got.push(d.readUInt32LE(0)));
      rb.start();
      return new WeakRef(rb);
    })();
    for (let i = 0; i < 3; i++) {
      gc?.();
      await settle(20);
    }
    await c.programs.xdp_events.testRun({ data: RESERVE, repeat: 4 });
    await waitFor(() => got.length === 4, '4 records');
    const rb = ref.deref();
    expect(rb?.running).toBe(true);
    rb!.close();
  });
});
