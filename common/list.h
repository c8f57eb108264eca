/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* Intrusive doubly linked lists, in the spirit of systemd's src/basic/list.h: an item carries its
 * links as fields named after the list (LIST_FIELDS(Client, clients) gives clients_next and
 * clients_prev), so one item can be on several lists and nothing is allocated to link it. The
 * head is a plain pointer to the first item (NULL: empty). Lists that are appended to in order and
 * must stay cheap to append to (FIFOs) keep a tail pointer too and use the _TAIL variants; the two
 * kinds must not be mixed on one list.
 *
 * The one list of the tree: new code uses these instead of writing next/prev by hand. */

#define LIST_FIELDS(t, name) t *name##_next, *name##_prev

/* Puts item first. */
#define LIST_PREPEND(name, head, item)                                                                 \
        do {                                                                                           \
                __typeof__(*(head)) **_lh = &(head), *_li = (item);                                    \
                _li->name##_prev = NULL;                                                               \
                _li->name##_next = *_lh;                                                               \
                if (_li->name##_next)                                                                  \
                        _li->name##_next->name##_prev = _li;                                           \
                *_lh = _li;                                                                            \
        } while (0)

/* Takes item off the list it is on; its links are cleared. */
#define LIST_REMOVE(name, head, item)                                                                  \
        do {                                                                                           \
                __typeof__(*(head)) **_lh = &(head), *_li = (item);                                    \
                if (_li->name##_next)                                                                  \
                        _li->name##_next->name##_prev = _li->name##_prev;                              \
                if (_li->name##_prev)                                                                  \
                        _li->name##_prev->name##_next = _li->name##_next;                              \
                else                                                                                   \
                        *_lh = _li->name##_next;                                                       \
                _li->name##_next = _li->name##_prev = NULL;                                            \
        } while (0)

/* Puts item last, on a list that keeps its tail. */
#define LIST_APPEND_TAIL(name, head, tail, item)                                                       \
        do {                                                                                           \
                __typeof__(*(head)) **_lh = &(head), **_lt = &(tail), *_li = (item);                   \
                _li->name##_next = NULL;                                                               \
                _li->name##_prev = *_lt;                                                               \
                if (*_lt)                                                                              \
                        (*_lt)->name##_next = _li;                                                     \
                else                                                                                   \
                        *_lh = _li;                                                                    \
                *_lt = _li;                                                                            \
        } while (0)

/* Takes item off a list that keeps its tail. */
#define LIST_REMOVE_TAIL(name, head, tail, item)                                                       \
        do {                                                                                           \
                __typeof__(*(head)) **_lh = &(head), **_lt = &(tail), *_li = (item);                   \
                if (_li->name##_next)                                                                  \
                        _li->name##_next->name##_prev = _li->name##_prev;                              \
                else                                                                                   \
                        *_lt = _li->name##_prev;                                                       \
                if (_li->name##_prev)                                                                  \
                        _li->name##_prev->name##_next = _li->name##_next;                              \
                else                                                                                   \
                        *_lh = _li->name##_next;                                                       \
                _li->name##_next = _li->name##_prev = NULL;                                            \
        } while (0)

#define LIST_FOREACH(name, i, head) for (__typeof__(head) i = (head); i; i = i->name##_next)

/* The body may free i (but not the item after it). */
#define LIST_FOREACH_SAFE(name, i, n, head)                                                            \
        for (__typeof__(head) i = (head), n = i ? i->name##_next : NULL; i;                            \
             i = n, n = i ? i->name##_next : NULL)
