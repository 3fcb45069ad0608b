/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once
#include "spec.h"

/* Run the container described by s; returns the supervisor's exit status (SPEC.md). */
int supervisor_run(struct spec *s);
