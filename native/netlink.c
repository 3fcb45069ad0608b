/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The container's main veth over rtnetlink (see netlink.h). */
#include "netlink.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/if_link.h>
#include <linux/neighbour.h>
#include <linux/netfilter.h>
#include <linux/netfilter/nf_tables.h>
#include <linux/netfilter/nfnetlink.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <linux/veth.h>
#include <net/if.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include "util.h"

int net_parse_mac(const char *s, unsigned char mac[6])
{
	unsigned v[6];
	char end;
	if (sscanf(s, "%2x:%2x:%2x:%2x:%2x:%2x%c", &v[0], &v[1], &v[2], &v[3], &v[4], &v[5], &end) != 6)
		return -EINVAL;
	for (int i = 0; i < 6; i++)
		mac[i] = (unsigned char)v[i];
	return 0;
}

int net_parse_prefix(const char *s, int *family, unsigned char addr[16], int *prefix)
{
	char buf[64];
	const char *slash = strchr(s, '/');
	size_t len = slash ? (size_t)(slash - s) : strlen(s);
	if (len == 0 || len >= sizeof buf)
		return -EINVAL;
	memcpy(buf, s, len);
	buf[len] = 0;
	*family = strchr(buf, ':') ? AF_INET6 : AF_INET;
	if (inet_pton(*family, buf, addr) != 1)
		return -EINVAL;
	int max = *family == AF_INET6 ? 128 : 32;
	if (!slash) {
		*prefix = max;
		return 0;
	}
	char *end;
	long p = strtol(slash + 1, &end, 10);
	if (!slash[1] || *end || p < 0 || p > max)
		return -EINVAL;
	*prefix = (int)p;
	return 0;
}

static int valid_ifname(const char *s)
{
	size_t n = strlen(s);
	return n > 0 && n < IFNAMSIZ && !strchr(s, '/') && !strchr(s, ' ') && strcmp(s, ".") && strcmp(s, "..");
}

/* A link record's arguments, each an interface name ('i') or a MAC ('m') as `kinds` says; the
 * first that is not gets its label in *bad. */
static int check_link_args(const char **a, const char *kinds, const char *const labels[], const char **bad)
{
	unsigned char mac[6];
	for (size_t i = 0; kinds[i]; i++) {
		if (kinds[i] == 'i' ? valid_ifname(a[i]) : !net_parse_mac(a[i], mac))
			continue;
		*bad = labels[i];
		return -EINVAL;
	}
	return 0;
}

int net_parse_record(struct net_spec *ns, const char *name, const char **a, size_t n, const char **bad)
{
	struct net_op op = { 0 };
	unsigned char addr[16];
	int fam, pfx;
	size_t first = 0;
	if (!strcmp(name, "net_veth")) {
		if (n != 4) {
			*bad = "HOST HOSTMAC PEER PEERMAC";
			return -EINVAL;
		}
		if (ns->veth_host) {
			*bad = "net_veth (once)";
			return -EINVAL;
		}
		static const char *const labels[] = { "HOST", "HOSTMAC", "PEER", "PEERMAC" };
		if (check_link_args(a, "imim", labels, bad) < 0)
			return -EINVAL;
		op.kind = NET_VETH;
		ns->veth_host = a[0];
	} else if (!strcmp(name, "net_macvlan")) {
		if (n != 3) {
			*bad = "PARENT NAME MAC";
			return -EINVAL;
		}
		static const char *const labels[] = { "PARENT", "NAME", "MAC" };
		if (check_link_args(a, "iim", labels, bad) < 0)
			return -EINVAL;
		op.kind = NET_MACVLAN;
	} else if (!strcmp(name, "net_sysctl")) {
		if (n != 2) {
			*bad = "KEY VALUE";
			return -EINVAL;
		}
		if (a[0][0] == '/' || strstr(a[0], "..") || !a[0][0]) {
			*bad = "KEY (relative to /proc/sys)";
			return -EINVAL;
		}
		op.kind = NET_SYSCTL;
	} else {
		/* SIDE first */
		if (n < 1 || (strcmp(a[0], "host") && strcmp(a[0], "container"))) {
			*bad = "SIDE (host or container)";
			return -EINVAL;
		}
		op.container = !strcmp(a[0], "container");
		first = 1;
		if (!strcmp(name, "net_addr")) {
			if (n != 3 || !valid_ifname(a[1])) {
				*bad = "SIDE IF ADDR/PREFIX";
				return -EINVAL;
			}
			if (net_parse_prefix(a[2], &fam, addr, &pfx)) {
				*bad = "ADDR/PREFIX";
				return -EINVAL;
			}
			op.kind = NET_ADDR;
		} else if (!strcmp(name, "net_up")) {
			if (n != 2 || !valid_ifname(a[1])) {
				*bad = "SIDE IF";
				return -EINVAL;
			}
			op.kind = NET_UP;
		} else if (!strcmp(name, "net_master")) {
			if (n != 3 || !valid_ifname(a[1]) || !valid_ifname(a[2])) {
				*bad = "SIDE IF BRIDGE";
				return -EINVAL;
			}
			op.kind = NET_MASTER;
		} else if (!strcmp(name, "net_route")) {
			if (n != 3 || !valid_ifname(a[1])) {
				*bad = "SIDE IF GATEWAY";
				return -EINVAL;
			}
			if (net_parse_prefix(a[2], &fam, addr, &pfx) || strchr(a[2], '/')) {
				*bad = "GATEWAY";
				return -EINVAL;
			}
			op.kind = NET_ROUTE;
		} else {
			*bad = "record";
			return -EINVAL;
		}
	}
	for (size_t i = first; i < n && i - first < 4; i++)
		op.a[i - first] = a[i];
	struct net_op *p = realloc(ns->ops, (ns->n_ops + 1) * sizeof *p);
	if (!p)
		return -ENOMEM;
	ns->ops = p;
	ns->ops[ns->n_ops++] = op;
	return 0;
}

void net_spec_free(struct net_spec *ns)
{
	free(ns->ops);
	ns->ops = NULL;
	ns->n_ops = 0;
}

/* ---- a tiny rtnetlink request builder ---- */

struct req {
	union {
		struct nlmsghdr h;
		char buf[1024];
	};
};

static void *tail(struct req *r)
{
	return r->buf + NLMSG_ALIGN(r->h.nlmsg_len);
}

static struct rtattr *attr(struct req *r, unsigned short type, const void *data, size_t len)
{
	struct rtattr *a = tail(r);
	a->rta_type = type;
	a->rta_len = (unsigned short)RTA_LENGTH(len);
	if (len)
		memcpy(RTA_DATA(a), data, len);
	r->h.nlmsg_len = NLMSG_ALIGN(r->h.nlmsg_len) + RTA_ALIGN(a->rta_len);
	return a;
}

static struct rtattr *nest(struct req *r, unsigned short type)
{
	return attr(r, type, NULL, 0);
}

static void nest_end(struct req *r, struct rtattr *a)
{
	a->rta_len = (unsigned short)((char *)tail(r) - (char *)a);
}

static void *body(struct req *r, unsigned short type, unsigned short flags, size_t len)
{
	memset(r, 0, sizeof *r);
	r->h.nlmsg_type = type;
	r->h.nlmsg_flags = NLM_F_REQUEST | NLM_F_ACK | flags;
	r->h.nlmsg_len = (unsigned)NLMSG_LENGTH(len);
	return NLMSG_DATA(&r->h);
}

/* Send one request, read its ack: 0 or -errno. */
static int talk(int fd, struct req *r)
{
	static unsigned seq;
	r->h.nlmsg_seq = ++seq;
	if (send(fd, r, r->h.nlmsg_len, 0) < 0)
		return -errno;
	char buf[4096];
	for (;;) {
		ssize_t n = recv(fd, buf, sizeof buf, 0);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		for (struct nlmsghdr *h = (struct nlmsghdr *)buf; NLMSG_OK(h, (unsigned)n); h = NLMSG_NEXT(h, n)) {
			if (h->nlmsg_seq != r->h.nlmsg_seq)
				continue;
			if (h->nlmsg_type == NLMSG_ERROR)
				return ((struct nlmsgerr *)NLMSG_DATA(h))->error;
		}
	}
}

static int nl_socket_of(int protocol)
{
	int fd = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, protocol);
	if (fd < 0)
		return -errno;
	struct sockaddr_nl sa = { .nl_family = AF_NETLINK };
	if (bind(fd, (struct sockaddr *)&sa, sizeof sa) < 0) {
		int r = -errno;
		close(fd);
		return r;
	}
	return fd;
}

static int nl_socket(void)
{
	return nl_socket_of(NETLINK_ROUTE);
}

int nft_family(const char *family)
{
	return !strcmp(family, "inet") ? NFPROTO_INET : !strcmp(family, "ip") ? NFPROTO_IPV4 : !strcmp(family, "ip6") ? NFPROTO_IPV6 : -1;
}

int nft_table_exists(const char *family, const char *name)
{
	int fam = nft_family(family);
	if (fam < 0)
		return -EAFNOSUPPORT;
	size_t len = strlen(name) + 1;
	if (len > 256)
		return -ENAMETOOLONG;
	int fd = nl_socket_of(NETLINK_NETFILTER);
	if (fd < 0)
		return fd;
	struct req r;
	struct nfgenmsg *g = body(&r, (NFNL_SUBSYS_NFTABLES << 8) | NFT_MSG_GETTABLE, 0, sizeof *g);
	g->nfgen_family = (unsigned char)fam;
	g->version = NFNETLINK_V0;
	attr(&r, NFTA_TABLE_NAME, name, len);
	/* the table (NFT_MSG_NEWTABLE), then the ack; or only an error */
	int st = talk(fd, &r);
	close(fd);
	return st == 0 ? 1 : st == -ENOENT ? 0 : st;
}

/* ifindex in the socket's namespace (the ioctl goes to the netlink socket's netns). */
static int ifindex(int fd, const char *name)
{
	struct ifreq ifr = { 0 };
	snprintf(ifr.ifr_name, sizeof ifr.ifr_name, "%s", name);
	if (ioctl(fd, SIOCGIFINDEX, &ifr) < 0)
		return -errno;
	return ifr.ifr_ifindex;
}

static int do_veth(int fd, const struct net_op *op, pid_t child)
{
	struct req r;
	unsigned char hmac[6], pmac[6];
	(void)net_parse_mac(op->a[1], hmac);
	(void)net_parse_mac(op->a[3], pmac);
	struct ifinfomsg *ifi = body(&r, RTM_NEWLINK, NLM_F_CREATE | NLM_F_EXCL, sizeof *ifi);
	ifi->ifi_family = AF_UNSPEC;
	attr(&r, IFLA_IFNAME, op->a[0], strlen(op->a[0]) + 1);
	attr(&r, IFLA_ADDRESS, hmac, 6);
	struct rtattr *li = nest(&r, IFLA_LINKINFO);
	attr(&r, IFLA_INFO_KIND, "veth", 4);
	struct rtattr *data = nest(&r, IFLA_INFO_DATA);
	struct rtattr *peer = nest(&r, VETH_INFO_PEER);
	struct ifinfomsg *pi = tail(&r);
	memset(pi, 0, sizeof *pi);
	pi->ifi_family = AF_UNSPEC;
	r.h.nlmsg_len += NLMSG_ALIGN(sizeof *pi);
	attr(&r, IFLA_IFNAME, op->a[2], strlen(op->a[2]) + 1);
	attr(&r, IFLA_ADDRESS, pmac, 6);
	uint32_t p = (uint32_t)child;
	attr(&r, IFLA_NET_NS_PID, &p, sizeof p);
	nest_end(&r, peer);
	nest_end(&r, data);
	nest_end(&r, li);
	return talk(fd, &r);
}

/* A macvlan (mode bridge) on the host's PARENT, made straight in the child's network namespace
 * under NAME with MAC (so NAME never exists on the host). */
static int do_macvlan(int fd, const struct net_op *op, pid_t child)
{
	int parent = ifindex(fd, op->a[0]);
	if (parent < 0)
		return parent;
	struct req r;
	unsigned char mac[6];
	(void)net_parse_mac(op->a[2], mac);
	struct ifinfomsg *ifi = body(&r, RTM_NEWLINK, NLM_F_CREATE | NLM_F_EXCL, sizeof *ifi);
	ifi->ifi_family = AF_UNSPEC;
	uint32_t link = (uint32_t)parent;
	attr(&r, IFLA_LINK, &link, sizeof link);
	attr(&r, IFLA_IFNAME, op->a[1], strlen(op->a[1]) + 1);
	attr(&r, IFLA_ADDRESS, mac, 6);
	uint32_t p = (uint32_t)child;
	attr(&r, IFLA_NET_NS_PID, &p, sizeof p);
	struct rtattr *li = nest(&r, IFLA_LINKINFO);
	attr(&r, IFLA_INFO_KIND, "macvlan", 7);
	struct rtattr *data = nest(&r, IFLA_INFO_DATA);
	uint32_t mode = MACVLAN_MODE_BRIDGE;
	attr(&r, IFLA_MACVLAN_MODE, &mode, sizeof mode);
	nest_end(&r, data);
	nest_end(&r, li);
	return talk(fd, &r);
}

static int do_addr(int fd, const struct net_op *op)
{
	struct req r;
	unsigned char addr[16];
	int fam, pfx;
	(void)net_parse_prefix(op->a[1], &fam, addr, &pfx);
	int idx = ifindex(fd, op->a[0]);
	if (idx < 0)
		return idx;
	struct ifaddrmsg *ifa = body(&r, RTM_NEWADDR, NLM_F_CREATE | NLM_F_EXCL, sizeof *ifa);
	ifa->ifa_family = (unsigned char)fam;
	ifa->ifa_prefixlen = (unsigned char)pfx;
	ifa->ifa_flags = fam == AF_INET6 ? IFA_F_NODAD : 0;
	ifa->ifa_scope = RT_SCOPE_UNIVERSE;
	ifa->ifa_index = (unsigned)idx;
	size_t len = fam == AF_INET6 ? 16 : 4;
	attr(&r, IFA_LOCAL, addr, len);
	attr(&r, IFA_ADDRESS, addr, len);
	return talk(fd, &r);
}

static int do_link(int fd, const char *name, const char *master)
{
	struct req r;
	int idx = ifindex(fd, name);
	if (idx < 0)
		return idx;
	struct ifinfomsg *ifi = body(&r, RTM_NEWLINK, 0, sizeof *ifi);
	ifi->ifi_family = AF_UNSPEC;
	ifi->ifi_index = idx;
	if (master) {
		int m = ifindex(fd, master);
		if (m < 0)
			return m;
		uint32_t mi = (uint32_t)m;
		attr(&r, IFLA_MASTER, &mi, sizeof mi);
	} else {
		ifi->ifi_flags = IFF_UP;
		ifi->ifi_change = IFF_UP;
	}
	return talk(fd, &r);
}

static int do_route(int fd, const struct net_op *op)
{
	struct req r;
	unsigned char gw[16];
	int fam, pfx;
	(void)net_parse_prefix(op->a[1], &fam, gw, &pfx);
	int idx = ifindex(fd, op->a[0]);
	if (idx < 0)
		return idx;
	struct rtmsg *rt = body(&r, RTM_NEWROUTE, NLM_F_CREATE | NLM_F_EXCL, sizeof *rt);
	rt->rtm_family = (unsigned char)fam;
	rt->rtm_table = RT_TABLE_MAIN;
	rt->rtm_protocol = RTPROT_BOOT;
	rt->rtm_scope = RT_SCOPE_UNIVERSE;
	rt->rtm_type = RTN_UNICAST;
	rt->rtm_flags = RTNH_F_ONLINK;
	attr(&r, RTA_GATEWAY, gw, fam == AF_INET6 ? 16 : 4);
	uint32_t oif = (uint32_t)idx;
	attr(&r, RTA_OIF, &oif, sizeof oif);
	return talk(fd, &r);
}

static int do_sysctl(const struct net_op *op)
{
	char path[256];
	snprintf(path, sizeof path, "/proc/sys/%s", op->a[0]);
	int fd = open(path, O_WRONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	int r = write_all(fd, op->a[1], strlen(op->a[1]));
	close(fd);
	return r;
}

static const char *const kind_names[] = { "net_veth", "net_addr", "net_up", "net_master", "net_route", "net_sysctl", "net_macvlan" };

int net_setup(const struct net_spec *ns, pid_t child, struct merr *e)
{
	if (!ns->n_ops)
		return 0;
	int r = 0;
	int hfd = nl_socket(), cfd = -1;
	if (hfd < 0)
		return merr_set(e, -hfd, "socket", "", "failed to open a netlink socket");
	for (size_t i = 0; i < ns->n_ops && r == 0; i++) {
		const struct net_op *op = &ns->ops[i];
		if (op->container && cfd < 0) {
			/* A netlink socket opened in the child's namespace stays bound to it. */
			char p[64];
			snprintf(p, sizeof p, "/proc/%d/ns/net", (int)child);
			int nsfd = open(p, O_RDONLY | O_CLOEXEC);
			int self = open("/proc/self/ns/net", O_RDONLY | O_CLOEXEC);
			if (nsfd < 0 || self < 0 || setns(nsfd, CLONE_NEWNET) < 0) {
				r = merr_sys(e, "setns", p, "failed to join the container's network namespace");
			} else {
				cfd = nl_socket();
				if (setns(self, CLONE_NEWNET) < 0)
					_exit(1); /* never go on in the container's network namespace */
				if (cfd < 0)
					r = merr_set(e, -cfd, "socket", "",
						     "failed to open a netlink socket in the container's network namespace");
			}
			if (nsfd >= 0)
				close(nsfd);
			if (self >= 0)
				close(self);
			if (r)
				break;
		}
		int fd = op->container ? cfd : hfd;
		int rc = 0;
		switch (op->kind) {
		case NET_VETH: rc = do_veth(fd, op, child); break;
		case NET_MACVLAN: rc = do_macvlan(fd, op, child); break;
		case NET_ADDR: rc = do_addr(fd, op); break;
		case NET_UP: rc = do_link(fd, op->a[0], NULL); break;
		case NET_MASTER: rc = do_link(fd, op->a[0], op->a[1]); break;
		case NET_ROUTE: rc = do_route(fd, op); break;
		case NET_SYSCTL: rc = do_sysctl(op); break;
		}
		if (rc < 0)
			r = merr_set(e, -rc, "netlink", op->a[0], "%s %s%s %s %s failed", kind_names[op->kind],
				     op->kind == NET_VETH || op->kind == NET_SYSCTL || op->kind == NET_MACVLAN ? ""
				     : op->container                                                           ? "container "
													       : "host ",
				     op->a[0], op->a[1] ? op->a[1] : "", op->a[2] ? op->a[2] : "");
	}
	close(hfd);
	if (cfd >= 0)
		close(cfd);
	return r;
}

void net_cleanup(const struct net_spec *ns)
{
	if (!ns->veth_host)
		return;
	int fd = nl_socket();
	if (fd < 0)
		return;
	struct req r;
	struct ifinfomsg *ifi = body(&r, RTM_DELLINK, 0, sizeof *ifi);
	ifi->ifi_family = AF_UNSPEC;
	attr(&r, IFLA_IFNAME, ns->veth_host, strlen(ns->veth_host) + 1);
	(void)talk(fd, &r); /* ENODEV: gone with the container's namespace already */
	close(fd);
}
