/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <stdbool.h>

/* Pipes our stdout into $DPIPE_PAGER, $PAGER or "less" when stdout is a terminal (like systemctl):
 * less gets LESS=FRSXMK unless set, so short output just prints and colours pass through.
 * Does nothing when disabled, when stdout is not a terminal, or when the pager is "cat" or "". */
void pager_open(bool disabled);
/* Waits for the pager to finish; safe to call when none was started. */
void pager_close(void);
