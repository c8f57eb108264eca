/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <stdbool.h>

/* Pipes our stdout into a pager when stdout is a terminal, like systemctl: the first of
 * $DPIPE_PAGER, $SYSTEMD_PAGER and $PAGER that is set (run by /bin/sh -c), else less(1) with
 * LESS=FRSXMK ($SYSTEMD_LESS) unless $LESS is set, so that short output just prints and colours
 * pass through. There is deliberately no fallback to more(1): without less the output is printed
 * directly. Does nothing when disabled (--no-pager), when stdout is not a terminal, or when the
 * chosen variable is empty or "cat". */
void pager_open(bool disabled);
/* Waits for the pager to finish; safe to call when none was started. */
void pager_close(void);
/* The pager command that pager_open() would run; NULL for none. */
const char *pager_command(void);
