/* Per-node settings the agent writes into .rodata before loading (the
 * loader's `constants`); frozen, so the verifier prunes what a node does not
 * use. Changing one means reloading the programs, which keeps every map. */
#pragma once
#include "common.h"

volatile const __be32 NODE_IP = 0;          /* this node's underlay address */
volatile const __u32 NODE_ID = 0;
volatile const __u32 UPLINK_IFINDEX = 0;
volatile const __u8 UPLINK_MAC[6] = {};
volatile const __be32 POD_CIDR = 0;         /* this node's pod CIDR (e.g. 10.244.1.0/24) */
volatile const __be32 POD_CIDR_MASK = 0;
volatile const __be32 CLUSTER_CIDR = 0;     /* all pods (e.g. 10.244.0.0/16) */
volatile const __be32 CLUSTER_CIDR_MASK = 0;
volatile const __be32 GATEWAY_IP = 0;       /* the address pods route via (answered by the node) */
volatile const __u32 VXLAN_VNI = 1;
volatile const __u16 VXLAN_PORT = 8472;     /* host order */
volatile const __u32 MAGLEV_M = 16381;
volatile const __u8 LB_DEFAULT_ALG = 0;     /* enum lb_algorithm */
volatile const __u32 EVENTS_PER_SEC = 1000; /* ring-buffer rate limit per CPU */
