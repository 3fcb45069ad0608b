/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Capabilities: bounding set, permitted/effective/inheritable (capset), ambient. No libcap. */
#pragma once
#include <stdint.h>

#include "error.h"

/* Highest capability number the kernel knows (probed with PR_CAPBSET_READ). */
int cap_last(void);
/* Drop every capability not in keep from the bounding set. */
int caps_drop_bounding(uint64_t keep, struct merr *e);
/* Set permitted = effective = inheritable = keep (masked to the kernel's caps). */
int caps_set(uint64_t keep, struct merr *e);
/* Set permitted = effective = keep and inheritable = inheritable (each masked to what is held). */
int caps_set_sets(uint64_t keep, uint64_t inheritable, struct merr *e);
/* Raise each capability in ambient (must be permitted and inheritable). */
int caps_raise_ambient(uint64_t ambient, struct merr *e);
