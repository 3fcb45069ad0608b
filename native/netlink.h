/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* net_* records (SPEC.md "Networking"): the container's main veth, created by the supervisor
 * over rtnetlink after each clone — the peer directly in the child's network namespace, which
 * may be owned by the container's user namespace — and addressed/routed as the TypeScript side
 * decided (src/net/plan.ts helperNetOps). Pure execution: names, MACs, addresses come from the spec. */
#pragma once
#include <stddef.h>
#include <sys/types.h>
#include "error.h"

enum net_kind { NET_VETH, NET_ADDR, NET_UP, NET_MASTER, NET_ROUTE, NET_SYSCTL, NET_MACVLAN };

struct net_op {
	int kind;         /* enum net_kind */
	int container;    /* 1 = in the child's network namespace, 0 = the supervisor's */
	const char *a[4]; /* the record's arguments after SIDE */
};

struct net_spec {
	struct net_op *ops;
	size_t n_ops;
	const char *veth_host; /* net_veth HOST: deleted when the container is gone */
};

/* Parse one of net_veth net_addr net_up net_master net_route net_sysctl (a = arguments).
 * 0, -ENOMEM, or -EINVAL with *bad naming the malformed argument. */
int net_parse_record(struct net_spec *ns, const char *name, const char **a, size_t n, const char **bad);
void net_spec_free(struct net_spec *ns);

/* Supervisor, after each clone, before the child is released: carry out the ops in order. */
int net_setup(const struct net_spec *ns, pid_t child, struct merr *e);
/* Supervisor, once the container is gone (and on setup failures): delete the veth (both ends). */
void net_cleanup(const struct net_spec *ns);

/* Whether nftables has table NAME of FAMILY (ip, ip6 or inet) in the caller's network namespace:
 * 1, 0, or -errno (-EAFNOSUPPORT for another family name). One NFT_MSG_GETTABLE: no transaction. */
int nft_table_exists(const char *family, const char *name);
/* The nftables family number of "ip", "ip6", "inet"; -1 for anything else. */
int nft_family(const char *family);

/* Exposed for tests: "aa:bb:cc:dd:ee:ff" -> 6 bytes; "ADDR/PREFIX" -> family, bytes, prefix. */
int net_parse_mac(const char *s, unsigned char mac[6]);
int net_parse_prefix(const char *s, int *family, unsigned char addr[16], int *prefix);
