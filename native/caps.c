/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "caps.h"

#include <errno.h>
#include <linux/capability.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>

int cap_last(void)
{
	static int last = -1;
	if (last >= 0)
		return last;
	int c = 0;
	while (c < 63 && prctl(PR_CAPBSET_READ, (unsigned long)(c + 1), 0, 0, 0) >= 0)
		c++;
	last = c;
	return last;
}

int caps_drop_bounding(uint64_t keep, struct merr *e)
{
	int last = cap_last();
	for (int c = 0; c <= last; c++) {
		if (keep & (1ULL << c))
			continue;
		if (prctl(PR_CAPBSET_DROP, (unsigned long)c, 0, 0, 0) < 0)
			return merr_sys(e, "prctl", "", "failed to drop capability %d from the bounding set", c);
	}
	return 0;
}

int caps_set(uint64_t keep, struct merr *e)
{
	return caps_set_sets(keep, keep, e);
}

int caps_set_sets(uint64_t keep, uint64_t inheritable, struct merr *e)
{
	int last = cap_last();
	uint64_t mask = last >= 63 ? ~0ULL : ((1ULL << (last + 1)) - 1);
	keep &= mask;
	inheritable &= mask;
	struct __user_cap_header_struct h = { _LINUX_CAPABILITY_VERSION_3, 0 };
	struct __user_cap_data_struct d[2];
	/* A capability we do not hold cannot be granted: keep only what is permitted now. */
	if (syscall(SYS_capget, &h, d) < 0)
		return merr_sys(e, "capget", "", "failed to read the capabilities");
	uint64_t held = (uint64_t)d[0].permitted | ((uint64_t)d[1].permitted << 32);
	keep &= held;
	inheritable &= held;
	h.version = _LINUX_CAPABILITY_VERSION_3;
	h.pid = 0;
	for (int i = 0; i < 2; i++) {
		uint32_t v = (uint32_t)(keep >> (32 * i));
		d[i].effective = d[i].permitted = v;
		d[i].inheritable = (uint32_t)(inheritable >> (32 * i));
	}
	if (syscall(SYS_capset, &h, d) < 0)
		return merr_sys(e, "capset", "", "failed to set capabilities (0x%llx)", (unsigned long long)keep);
	return 0;
}

int caps_raise_ambient(uint64_t ambient, struct merr *e)
{
	int last = cap_last();
	if (prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0) < 0 && ambient)
		return merr_sys(e, "prctl", "", "failed to clear the ambient capabilities");
	for (int c = 0; c <= last; c++) {
		if (!(ambient & (1ULL << c)))
			continue;
		if (prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_RAISE, (unsigned long)c, 0, 0) < 0)
			return merr_sys(e, "prctl", "", "failed to raise ambient capability %d", c);
	}
	return 0;
}
