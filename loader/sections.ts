// Section name → program type and expected attach type, following libbpf's
// section-name conventions (libbpf's sec_defs table, `SEC("...")` in C).
// Only exact names or the listed prefixes are accepted: an unknown section is
// an error naming it, never a guess.

// Numeric values are the kernel's uapi enums (linux/bpf.h); kept here so the
// spec layer needs no native addon.
export const Prog = {
  SOCKET_FILTER: 1,
  SCHED_CLS: 3,
  SCHED_ACT: 4,
  XDP: 6,
  CGROUP_SKB: 8,
  CGROUP_SOCK: 9,
  SOCK_OPS: 13,
  SK_SKB: 14,
  SK_MSG: 16,
  CGROUP_SOCK_ADDR: 18,
  SK_LOOKUP: 30,
} as const;

export const Attach = {
  NONE: 0,
  CGROUP_INET_INGRESS: 0,
  CGROUP_INET_EGRESS: 1,
  CGROUP_INET_SOCK_CREATE: 2,
  CGROUP_SOCK_OPS: 3,
  SK_SKB_STREAM_PARSER: 4,
  SK_SKB_STREAM_VERDICT: 5,
  SK_MSG_VERDICT: 7,
  CGROUP_INET4_BIND: 8,
  CGROUP_INET6_BIND: 9,
  CGROUP_INET4_CONNECT: 10,
  CGROUP_INET6_CONNECT: 11,
  CGROUP_INET4_POST_BIND: 12,
  CGROUP_INET6_POST_BIND: 13,
  CGROUP_UDP4_SENDMSG: 14,
  CGROUP_UDP6_SENDMSG: 15,
  CGROUP_UDP4_RECVMSG: 19,
  CGROUP_UDP6_RECVMSG: 20,
  CGROUP_INET4_GETPEERNAME: 29,
  CGROUP_INET6_GETPEERNAME: 30,
  CGROUP_INET4_GETSOCKNAME: 31,
  CGROUP_INET6_GETSOCKNAME: 32,
  CGROUP_INET_SOCK_RELEASE: 34,
  SK_LOOKUP: 36,
  XDP: 37,
  TCX_INGRESS: 46,
  TCX_EGRESS: 47,
} as const;

export interface SectionKind {
  /** BPF_PROG_TYPE_* */
  progType: number;
  /** BPF_* attach type passed as expected_attach_type at load (0 when none). */
  attachType: number;
  /** A short human name for listings: 'xdp', 'tc', 'tcx/ingress', ... */
  kind: string;
}

const exact: Record<string, SectionKind> = {
  xdp: { progType: Prog.XDP, attachType: Attach.XDP, kind: 'xdp' },
  'xdp.frags': { progType: Prog.XDP, attachType: Attach.XDP, kind: 'xdp' },
  tc: { progType: Prog.SCHED_CLS, attachType: 0, kind: 'tc' },
  classifier: { progType: Prog.SCHED_CLS, attachType: 0, kind: 'tc' },
  action: { progType: Prog.SCHED_ACT, attachType: 0, kind: 'tc-action' },
  'tcx/ingress': { progType: Prog.SCHED_CLS, attachType: Attach.TCX_INGRESS, kind: 'tcx/ingress' },
  'tcx/egress': { progType: Prog.SCHED_CLS, attachType: Attach.TCX_EGRESS, kind: 'tcx/egress' },
  // libbpf ≥ 1.3 treats these as aliases of tcx/*.
  'tc/ingress': { progType: Prog.SCHED_CLS, attachType: Attach.TCX_INGRESS, kind: 'tcx/ingress' },
  'tc/egress': { progType: Prog.SCHED_CLS, attachType: Attach.TCX_EGRESS, kind: 'tcx/egress' },
  socket: { progType: Prog.SOCKET_FILTER, attachType: 0, kind: 'socket' },
  sockops: { progType: Prog.SOCK_OPS, attachType: Attach.CGROUP_SOCK_OPS, kind: 'sockops' },
  sk_lookup: { progType: Prog.SK_LOOKUP, attachType: Attach.SK_LOOKUP, kind: 'sk_lookup' },
  sk_msg: { progType: Prog.SK_MSG, attachType: Attach.SK_MSG_VERDICT, kind: 'sk_msg' },
  'sk_skb/stream_parser': { progType: Prog.SK_SKB, attachType: Attach.SK_SKB_STREAM_PARSER, kind: 'sk_skb' },
  'sk_skb/stream_verdict': { progType: Prog.SK_SKB, attachType: Attach.SK_SKB_STREAM_VERDICT, kind: 'sk_skb' },
  'cgroup/skb': { progType: Prog.CGROUP_SKB, attachType: 0, kind: 'cgroup_skb' },
  'cgroup_skb/ingress': { progType: Prog.CGROUP_SKB, attachType: Attach.CGROUP_INET_INGRESS, kind: 'cgroup_skb/ingress' },
  'cgroup_skb/egress': { progType: Prog.CGROUP_SKB, attachType: Attach.CGROUP_INET_EGRESS, kind: 'cgroup_skb/egress' },
  'cgroup/sock_create': { progType: Prog.CGROUP_SOCK, attachType: Attach.CGROUP_INET_SOCK_CREATE, kind: 'cgroup/sock_create' },
  'cgroup/sock_release': { progType: Prog.CGROUP_SOCK, attachType: Attach.CGROUP_INET_SOCK_RELEASE, kind: 'cgroup/sock_release' },
  'cgroup/post_bind4': { progType: Prog.CGROUP_SOCK, attachType: Attach.CGROUP_INET4_POST_BIND, kind: 'cgroup/post_bind4' },
  'cgroup/post_bind6': { progType: Prog.CGROUP_SOCK, attachType: Attach.CGROUP_INET6_POST_BIND, kind: 'cgroup/post_bind6' },
};

const sockAddr: Record<string, number> = {
  bind4: Attach.CGROUP_INET4_BIND,
  bind6: Attach.CGROUP_INET6_BIND,
  connect4: Attach.CGROUP_INET4_CONNECT,
  connect6: Attach.CGROUP_INET6_CONNECT,
  sendmsg4: Attach.CGROUP_UDP4_SENDMSG,
  sendmsg6: Attach.CGROUP_UDP6_SENDMSG,
  recvmsg4: Attach.CGROUP_UDP4_RECVMSG,
  recvmsg6: Attach.CGROUP_UDP6_RECVMSG,
  getpeername4: Attach.CGROUP_INET4_GETPEERNAME,
  getpeername6: Attach.CGROUP_INET6_GETPEERNAME,
  getsockname4: Attach.CGROUP_INET4_GETSOCKNAME,
  getsockname6: Attach.CGROUP_INET6_GETSOCKNAME,
};
for (const [hook, attachType] of Object.entries(sockAddr)) {
  exact[`cgroup/${hook}`] = { progType: Prog.CGROUP_SOCK_ADDR, attachType, kind: `cgroup/${hook}` };
}

/** Sections that hold programs are executable; this maps their names. */
export function sectionKind(name: string): SectionKind | undefined {
  if (Object.prototype.hasOwnProperty.call(exact, name)) return exact[name];
  return undefined;
}

export function knownSections(): string[] {
  return Object.keys(exact).sort();
}
