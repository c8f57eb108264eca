/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <stdbool.h>
#include <string.h>

#include "crc32c.h"
#include "macro.h"

#define CRC32C_POLY_REFLECTED 0x82f63b78u

static uint32_t crc32c_table[8][256];
static bool crc32c_table_ready;

static void crc32c_table_init(void) {
        for (uint32_t i = 0; i < 256; i++) {
                uint32_t c = i;
                for (int k = 0; k < 8; k++)
                        c = (c & 1) ? (c >> 1) ^ CRC32C_POLY_REFLECTED : c >> 1;
                crc32c_table[0][i] = c;
        }
        for (uint32_t i = 0; i < 256; i++)
                for (int t = 1; t < 8; t++)
                        crc32c_table[t][i] = (crc32c_table[t - 1][i] >> 8) ^
                                             crc32c_table[0][crc32c_table[t - 1][i] & 0xff];
        crc32c_table_ready = true;
}

_unused_ static uint32_t crc32c_sw(uint32_t crc, const uint8_t *p, size_t n) {
        /* Benign race: the table is computed the same way by everyone, and we have no threads. */
        if (!crc32c_table_ready)
                crc32c_table_init();

        while (n > 0 && ((uintptr_t) p & 7) != 0) {
                crc = crc32c_table[0][(crc ^ *p++) & 0xff] ^ (crc >> 8);
                n--;
        }
        while (n >= 8) {
                uint64_t w;
                memcpy(&w, p, 8);
                w ^= crc; /* little-endian machines only reach this; see crc32c() */
                crc = crc32c_table[7][w & 0xff] ^ crc32c_table[6][(w >> 8) & 0xff] ^
                      crc32c_table[5][(w >> 16) & 0xff] ^ crc32c_table[4][(w >> 24) & 0xff] ^
                      crc32c_table[3][(w >> 32) & 0xff] ^ crc32c_table[2][(w >> 40) & 0xff] ^
                      crc32c_table[1][(w >> 48) & 0xff] ^ crc32c_table[0][w >> 56];
                p += 8;
                n -= 8;
        }
        while (n > 0) {
                crc = crc32c_table[0][(crc ^ *p++) & 0xff] ^ (crc >> 8);
                n--;
        }
        return crc;
}

_unused_ static uint32_t crc32c_bytewise(uint32_t crc, const uint8_t *p, size_t n) {
        if (!crc32c_table_ready)
                crc32c_table_init();
        while (n > 0) {
                crc = crc32c_table[0][(crc ^ *p++) & 0xff] ^ (crc >> 8);
                n--;
        }
        return crc;
}

#if defined(__x86_64__)
__attribute__((target("sse4.2"))) static uint32_t crc32c_hw(uint32_t crc, const uint8_t *p, size_t n) {
        uint64_t c = crc;

        while (n > 0 && ((uintptr_t) p & 7) != 0) {
                c = __builtin_ia32_crc32qi((uint32_t) c, *p++);
                n--;
        }
        while (n >= 8) {
                uint64_t w;
                memcpy(&w, p, 8);
                c = __builtin_ia32_crc32di(c, w);
                p += 8;
                n -= 8;
        }
        while (n > 0) {
                c = __builtin_ia32_crc32qi((uint32_t) c, *p++);
                n--;
        }
        return (uint32_t) c;
}
#endif

uint32_t crc32c(uint32_t crc, const void *data, size_t size) {
        static int have_hw = -1;
        const uint8_t *p = data;

        crc = ~crc;
#if defined(__x86_64__)
        if (have_hw < 0) {
                __builtin_cpu_init();
                have_hw = __builtin_cpu_supports("sse4.2");
        }
        if (have_hw)
                return ~crc32c_hw(crc, p, size);
#else
        (void) have_hw;
#endif
        return crc32c_portable(~crc, p, size);
}

uint32_t crc32c_portable(uint32_t crc, const void *data, size_t size) {
#if __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
        return ~crc32c_sw(~crc, data, size);
#else
        return ~crc32c_bytewise(~crc, data, size);
#endif
}
