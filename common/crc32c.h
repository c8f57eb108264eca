/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* CRC-32C (Castagnoli, polynomial 0x1EDC6F41, reflected), as used by iSCSI, ext4 and btrfs. Uses
 * the SSE4.2 crc32 instruction when the CPU has it, a slicing-by-8 table otherwise. The check value
 * of "123456789" is 0xe3069283. */

#include <stddef.h>
#include <stdint.h>

/* Continues a running CRC: start with crc = 0; crc32c(crc32c(0, a), b) == crc32c(0, a ++ b). */
uint32_t crc32c(uint32_t crc, const void *data, size_t size);
/* The same without the CPU instruction (for tests and benchmarks). */
uint32_t crc32c_portable(uint32_t crc, const void *data, size_t size);
