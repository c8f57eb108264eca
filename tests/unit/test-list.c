/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include <cmocka.h>

#include "list.h"

typedef struct Item Item;
struct Item {
        int value;
        LIST_FIELDS(Item, all);  /* on a head-only list */
        LIST_FIELDS(Item, fifo); /* and on a FIFO at the same time */
};

/* The values of the list from head, then checked backwards through the prev links. */
static int walk(Item *head, int *out, int max) {
        Item *last = NULL;
        int n = 0;

        LIST_FOREACH(all, i, head) {
                assert_true(n < max);
                assert_ptr_equal(i->all_prev, last);
                out[n++] = i->value;
                last = i;
        }
        return n;
}

static void test_prepend_remove(void **state) {
        Item items[4] = { { .value = 0 }, { .value = 1 }, { .value = 2 }, { .value = 3 } };
        Item *head = NULL;
        int v[8];

        for (int i = 0; i < 4; i++)
                LIST_PREPEND(all, head, &items[i]);
        assert_int_equal(walk(head, v, 8), 4);
        assert_int_equal(v[0], 3);
        assert_int_equal(v[3], 0);

        LIST_REMOVE(all, head, &items[3]); /* the head */
        LIST_REMOVE(all, head, &items[1]); /* the middle */
        LIST_REMOVE(all, head, &items[0]); /* the last */
        assert_null(items[1].all_next);
        assert_null(items[1].all_prev);
        assert_int_equal(walk(head, v, 8), 1);
        assert_int_equal(v[0], 2);
        LIST_REMOVE(all, head, &items[2]);
        assert_null(head);
        assert_int_equal(walk(head, v, 8), 0);
}

static void test_tail(void **state) {
        Item items[5];
        Item *head = NULL, *tail = NULL;
        int n = 0;

        for (int i = 0; i < 5; i++) {
                items[i] = (Item) { .value = i };
                LIST_APPEND_TAIL(fifo, head, tail, &items[i]);
        }
        assert_ptr_equal(head, &items[0]);
        assert_ptr_equal(tail, &items[4]);
        LIST_REMOVE_TAIL(fifo, head, tail, &items[4]);
        assert_ptr_equal(tail, &items[3]);
        LIST_REMOVE_TAIL(fifo, head, tail, &items[0]);
        assert_ptr_equal(head, &items[1]);
        LIST_REMOVE_TAIL(fifo, head, tail, &items[2]);
        LIST_FOREACH(fifo, i, head)
                assert_int_equal(i->value, n++ == 0 ? 1 : 3);
        assert_int_equal(n, 2);
        assert_ptr_equal(items[3].fifo_prev, &items[1]);
        LIST_REMOVE_TAIL(fifo, head, tail, &items[1]);
        LIST_REMOVE_TAIL(fifo, head, tail, &items[3]);
        assert_null(head);
        assert_null(tail);
        LIST_APPEND_TAIL(fifo, head, tail, &items[2]);
        assert_ptr_equal(head, &items[2]);
        assert_ptr_equal(tail, &items[2]);
}

/* Freeing each item while walking, as the daemons do when they drop clients. */
static void test_foreach_safe(void **state) {
        Item *head = NULL;
        int n = 0;

        for (int i = 0; i < 10; i++) {
                Item *it = calloc(1, sizeof(Item));
                assert_non_null(it);
                it->value = i;
                LIST_PREPEND(all, head, it);
        }
        LIST_FOREACH_SAFE(all, i, next, head)
                if (i->value % 2 == 0) {
                        LIST_REMOVE(all, head, i);
                        free(i);
                }
        LIST_FOREACH(all, i, head) {
                assert_true(i->value % 2 == 1);
                n++;
        }
        assert_int_equal(n, 5);
        LIST_FOREACH_SAFE(all, i, next, head) {
                LIST_REMOVE(all, head, i);
                free(i);
        }
        assert_null(head);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_prepend_remove),
                cmocka_unit_test(test_tail),
                cmocka_unit_test(test_foreach_safe),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
