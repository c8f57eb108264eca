/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "crc32c.h"

static void test_check_values(void **state) {
        /* The standard check value, and vectors from RFC 3720 (iSCSI) appendix B.4. */
        uint8_t zeros[32] = {}, ones[32], inc[32], dec[32];

        memset(ones, 0xff, sizeof(ones));
        for (int i = 0; i < 32; i++) {
                inc[i] = (uint8_t) i;
                dec[i] = (uint8_t) (31 - i);
        }
        assert_int_equal(crc32c(0, "123456789", 9), 0xe3069283u);
        assert_int_equal(crc32c(0, zeros, 32), 0x8a9136aau);
        assert_int_equal(crc32c(0, ones, 32), 0x62a8ab43u);
        assert_int_equal(crc32c(0, inc, 32), 0x46dd794eu);
        assert_int_equal(crc32c(0, dec, 32), 0x113fdb5cu);
        assert_int_equal(crc32c(0, "", 0), 0);
        assert_int_equal(crc32c_portable(0, "123456789", 9), 0xe3069283u);
}

static void test_incremental_and_portable_agree(void **state) {
        uint8_t buf[4099];

        for (size_t i = 0; i < sizeof(buf); i++)
                buf[i] = (uint8_t) (i * 131 + 7);
        /* Every length and misalignment, split at every point of a short prefix. */
        for (size_t off = 0; off < 9; off++)
                for (size_t len = 0; len + off <= 300; len++) {
                        uint32_t whole = crc32c(0, buf + off, len);
                        assert_int_equal(whole, crc32c_portable(0, buf + off, len));
                        for (size_t cut = 0; cut <= len; cut += 37)
                                assert_int_equal(crc32c(crc32c(0, buf + off, cut), buf + off + cut, len - cut), whole);
                }
        assert_int_equal(crc32c(0, buf, sizeof(buf)), crc32c_portable(0, buf, sizeof(buf)));
}

static void test_detects_flips(void **state) {
        uint8_t buf[100];
        uint32_t c;

        memset(buf, 'a', sizeof(buf));
        c = crc32c(0, buf, sizeof(buf));
        for (size_t i = 0; i < sizeof(buf); i++)
                for (int bit = 0; bit < 8; bit++) {
                        buf[i] ^= (uint8_t) (1 << bit);
                        assert_int_not_equal(crc32c(0, buf, sizeof(buf)), c);
                        buf[i] ^= (uint8_t) (1 << bit);
                }
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_check_values),
                cmocka_unit_test(test_incremental_and_portable_agree),
                cmocka_unit_test(test_detects_flips),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
