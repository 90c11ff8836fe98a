// A kubeconfig for the lab API server (plain HTTP on loopback, no credentials), for kubectl and agents.
// Loopback only: the lab never exposes this server beyond the machine.

export function labKubeconfig(server: string, name = 'weir-lab'): string {
  if (!/^https?:\/\/[^\s"]+$/.test(server)) throw new Error(`lab kubeconfig: server must be an http(s) URL, got ${JSON.stringify(server)}`);
  return [
    'apiVersion: v1',
    'kind: Config',
    'clusters:',
    `- name: ${name}`,
    '  cluster:',
    `    server: "${server}"`,
    // @kubernetes/client-node refuses plain http:// unless TLS verification is off.
    '    insecure-skip-tls-verify: true',
    'users:',
    `- name: ${name}`,
    '  user: {}',
    'contexts:',
    `- name: ${name}`,
    '  context:',
    `    cluster: ${name}`,
    `    user: ${name}`,
    `current-context: ${name}`,
    '',
  ].join('\n');
}
