import { describe, expect, it } from 'vitest';
import { containerCommand } from '../../control/lab/runtime.js';

describe('lab runtime: what a container runs', () => {
  const pod = { name: 'a', namespace: 'x', ip: '10.244.1.5' };
  const portsOf = (argv: string[]) => argv.flatMap((a, i) => (argv[i - 1] === '--port' ? [a] : []));

  it('weir/echo gets each containerPort once, even when declared for TCP and UDP', () => {
    const argv = containerCommand(
      { name: 'c', image: 'weir/echo', ports: [{ containerPort: 80, protocol: 'TCP' }, { containerPort: 80, protocol: 'UDP' }, { containerPort: 81 }] },
      pod,
    );
    expect(portsOf(argv)).toEqual(['80', '81']);
    expect(argv).toEqual(expect.arrayContaining(['--pod', 'a', '--namespace', 'x', '--ip', '10.244.1.5']));
  });

  it('weir/echo without ports serves 8080', () => {
    expect(portsOf(containerCommand({ name: 'c', image: 'weir/echo:1' }, pod))).toEqual(['8080']);
  });
});
