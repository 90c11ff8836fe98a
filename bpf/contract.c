/* Not a program. clang emits BTF only for types a program uses, so this
 * object names every map-contract type once; `make types` runs gen-types on
 * it to write control/datapath/types.gen.ts (the TypeScript side of the
 * contract, as bpf2go does for Go). */
#include "maps.h"

struct weir_contract {
	struct svc4_key svc4_key;
	struct svc_value svc_value;
	struct backend4 backend4;
	struct lb_slot_key lb_slot_key;
	struct revnat4 revnat4;
	struct affinity4_key affinity4_key;
	struct affinity_value affinity_value;
	struct ct4_key ct4_key;
	struct ct_entry ct_entry;
	struct endpoint4_key endpoint4_key;
	struct endpoint_info endpoint_info;
	struct tunnel4_key tunnel4_key;
	struct tunnel_info tunnel_info;
	struct node_addr_value node_addr_value;
	struct metrics_key metrics_key;
	struct metrics_value metrics_value;
	struct ipcache4_key ipcache4_key;
	struct ipcache_value ipcache_value;
	struct ep_policy ep_policy;
	struct policy4_key policy4_key;
	struct policy_value policy_value;
	struct policy_gen policy_gen;
	struct frag4_key frag4_key;
	struct frag_value frag_value;
	struct event event;
	struct event_limit event_limit;
	enum lb_algorithm lb_algorithm;
	enum svc_scope svc_scope;
	enum svc_flags svc_flags;
	enum backend_state backend_state;
	enum backend_flags backend_flags;
	enum ct_key_flags ct_key_flags;
	enum ct_flags ct_flags;
	enum ct_tcp_state ct_tcp_state;
	enum endpoint_flags endpoint_flags;
	enum weir_reason weir_reason;
	enum weir_dir weir_dir;
	enum weir_event_type weir_event_type;
	enum policy_identity policy_identity;
	enum policy_flags policy_flags;
	enum policy_match policy_match;
	enum frag_flags frag_flags;
};

const volatile struct weir_contract weir_contract = {};

char LICENSE[] SEC("license") = "GPL";
