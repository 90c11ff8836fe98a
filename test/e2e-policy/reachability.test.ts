// The truth-table helpers on their own (no lab): expect() sets exactly the
// cells it names, and compare() flags every differing cell, a probe answered
// by the wrong pod, and a refusal.
import { describe, expect, it } from 'vitest';
import { CHANNELS, PODS, Reachability, compare, type Observed } from './reachability.js';

function observe(allowed: (ch: string, c: string, s: string) => boolean): Observed {
  return Object.fromEntries(
    CHANNELS.map((ch) => [ch, Object.fromEntries(PODS.map((c) => [c, Object.fromEntries(PODS.map((s) => [s, allowed(ch, c, s) ? { verdict: 'allowed', server: s.split('/')[1] } : { verdict: 'denied' }]))]))]),
  );
}

describe('Reachability', () => {
  it('expect() narrows by namespace, pod, port and protocol; later calls win', () => {
    const r = new Reachability(true).expect('*', 'x/a', false).expect('y/*', 'x/a', true, { port: 81, proto: 'UDP' });
    expect(r.get('80/TCP', 'y/b', 'x/a')).toBe(false);
    expect(r.get('81/UDP', 'y/b', 'x/a')).toBe(true);
    expect(r.get('81/UDP', 'z/b', 'x/a')).toBe(false);
    expect(r.get('80/TCP', 'z/b', 'x/b')).toBe(true);
    expect(() => r.expect('q/a', '*', true)).toThrow(/q\/a/);
  });

  it('compare() passes an identical matrix and reports every differing cell with both tables', () => {
    const want = new Reachability(true).expect('*', 'x/*', false).allowLoopback();
    const same = observe((ch, c, s) => want.get(ch, c, s));
    expect(compare(want, same).ok).toBe(true);

    const off = observe((ch, c, s) => (c === 'z/c' && s === 'x/b' && ch === '81/UDP' ? true : want.get(ch, c, s)));
    const r = compare(want, off);
    expect(r.ok).toBe(false);
    expect(r.wrong).toEqual(['81/UDP z/c -> x/b: expected denied, got allowed']);
    expect(r.report).toContain('81/UDP expected');
    expect(r.report).toContain('81/UDP observed');
    expect(r.report).toMatch(/z\/c .*!/);
  });

  it('an answer from the wrong pod, or a refusal, is never a match', () => {
    const want = new Reachability(true);
    const wrongServer = observe(() => true);
    wrongServer['80/TCP']['x/a']['y/b'] = { verdict: 'allowed', server: 'c' };
    wrongServer['80/UDP']['x/a']['y/c'] = { verdict: 'refused' };
    const r = compare(want, wrongServer);
    expect(r.wrong).toEqual(['80/TCP x/a -> y/b: expected allowed, got allowed (answered by c)', '80/UDP x/a -> y/c: expected allowed, got refused']);
  });
});
