// Section name → program type and expected attach type, following libbpf's
// section-name conventions (libbpf's sec_defs table, `SEC("...")` in C).
// Only exact names are accepted: an unknown section is an error naming it,
// never a guess.
import { AttachType, ProgFlags, ProgType } from '../native/index.js';

// The kernel's uapi numbers come from native/'s constants (importing them
// does not load the addon, so the spec layer works without a build).
const Prog = ProgType;
const Attach = AttachType;

export interface SectionKind {
  /** BPF_PROG_TYPE_* */
  progType: number;
  /** BPF_* attach type passed as expected_attach_type at load (0 when none). */
  attachType: number;
  /** A short human name for listings: 'xdp', 'tc', 'tcx/ingress', ... */
  kind: string;
  /** BPF_F_* program flags the section implies (e.g. XDP_HAS_FRAGS). */
  progFlags?: number;
}

const exact: Record<string, SectionKind> = {
  xdp: { progType: Prog.XDP, attachType: Attach.XDP, kind: 'xdp' },
  'xdp.frags': { progType: Prog.XDP, attachType: Attach.XDP, kind: 'xdp', progFlags: ProgFlags.XDP_HAS_FRAGS },
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
