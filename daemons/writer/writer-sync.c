/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The sync thread. fdatasync() of the active segment costs milliseconds (journal commit and a disk
 * cache flush); on the event loop it held up every connection meanwhile. Here it runs beside the
 * loop, which goes on reading and writing batches; the result comes back through an eventfd.
 *
 * State shared with the thread, all under the mutex: the job (fds), whether it was taken, its
 * result, the reservation and its result, the writeback hint, and the quit flag. At most one of
 * each exists at a time. */

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "writer-sync.h"

struct SyncThread {
        pthread_t thread;
        bool thread_started;
        pthread_mutex_t lock;
        pthread_cond_t cond; /* signals a new job or quit to the thread, and "done" to a waiter */

        int event_fd;
        sd_event_source *event_source;
        SyncDoneFunc done;
        SyncDoneFunc reserved;
        void *userdata;

        /* Under lock: */
        bool busy;    /* a job was handed over and its result not consumed yet */
        bool queued;  /* handed over, not yet taken by the thread */
        bool finished; /* the thread stored the result */
        bool quit;
        int sealed_fd, data_fd, dir_fd;
        int result;
        /* A writeback hint (sync_thread_writeback()): not a job, no result; a sync job goes first. */
        int wb_fd;
        uint64_t wb_offset, wb_length;
        /* A reservation (sync_thread_reserve()), after a sync job, before a hint: queued while
         * reserve_fd >= 0, its result waiting while reserve_finished. */
        int reserve_fd;
        uint64_t reserve_size;
        bool reserve_finished;
        int reserve_result;
};

/* The segment closed at a roll (sealed_fd) first: nothing after it counts as durable before it is. */
static int sync_run(int sealed_fd, int data_fd, int dir_fd) {
        int r = 0;

        if (sealed_fd >= 0 && fdatasync(sealed_fd) < 0)
                r = -errno;
        if (r == 0 && data_fd >= 0 && fdatasync(data_fd) < 0)
                r = -errno;
        if (r == 0 && dir_fd >= 0 && fsync(dir_fd) < 0)
                r = -errno;
        safe_close(sealed_fd);
        safe_close(data_fd);
        safe_close(dir_fd);
        return r;
}

static void *sync_thread_main(void *arg) {
        SyncThread *t = arg;

        pthread_mutex_lock(&t->lock);
        for (;;) {
                int sealed_fd, data_fd, dir_fd, r;

                while (!t->queued && t->reserve_fd < 0 && t->wb_fd < 0 && !t->quit)
                        pthread_cond_wait(&t->cond, &t->lock);
                if (!t->queued && t->reserve_fd >= 0 && !t->quit) {
                        int fd = TAKE_FD(t->reserve_fd);
                        uint64_t size = t->reserve_size;

                        pthread_mutex_unlock(&t->lock);
                        r = fallocate(fd, FALLOC_FL_KEEP_SIZE, 0, (off_t) size) < 0 ? -errno : 0;
                        safe_close(fd);
                        pthread_mutex_lock(&t->lock);
                        t->reserve_result = r;
                        t->reserve_finished = true;
                        (void) write(t->event_fd, &(uint64_t) { 1 }, sizeof(uint64_t));
                        continue;
                }
                if (!t->queued && t->wb_fd >= 0 && !t->quit) {
                        int fd = TAKE_FD(t->wb_fd);
                        uint64_t offset = t->wb_offset, length = t->wb_length;

                        pthread_mutex_unlock(&t->lock);
                        /* Best effort: a failure shows up again at the next fdatasync(). */
                        (void) sync_file_range(fd, (off_t) offset, (off_t) length, SYNC_FILE_RANGE_WRITE);
                        safe_close(fd);
                        pthread_mutex_lock(&t->lock);
                        continue;
                }
                /* A job handed over before quit still runs: its bytes are waiting for it. */
                if (!t->queued)
                        break;
                sealed_fd = TAKE_FD(t->sealed_fd);
                data_fd = TAKE_FD(t->data_fd);
                dir_fd = TAKE_FD(t->dir_fd);
                t->queued = false;
                pthread_mutex_unlock(&t->lock);

                r = sync_run(sealed_fd, data_fd, dir_fd);

                pthread_mutex_lock(&t->lock);
                t->result = r;
                t->finished = true;
                pthread_cond_broadcast(&t->cond);
                /* Wakes the loop; a counter that can not overflow at one job at a time. */
                (void) write(t->event_fd, &(uint64_t) { 1 }, sizeof(uint64_t));
        }
        pthread_mutex_unlock(&t->lock);
        return NULL;
}

static void sync_thread_drain(SyncThread *t) {
        uint64_t v;

        (void) read(t->event_fd, &v, sizeof(v));
}

/* Takes the result of a finished job; false if none finished. */
static bool sync_thread_take_result(SyncThread *t, int *ret) {
        bool finished;

        pthread_mutex_lock(&t->lock);
        finished = t->finished;
        if (finished) {
                *ret = t->result;
                t->finished = t->busy = false;
        }
        pthread_mutex_unlock(&t->lock);
        return finished;
}

static int on_sync_event(sd_event_source *s, int fd, uint32_t revents, void *userdata) {
        SyncThread *t = userdata;
        bool reserved;
        int r, reserve_result;

        sync_thread_drain(t);
        pthread_mutex_lock(&t->lock);
        reserved = t->reserve_finished;
        reserve_result = t->reserve_result;
        t->reserve_finished = false;
        pthread_mutex_unlock(&t->lock);
        if (reserved)
                t->reserved(t, reserve_result, t->userdata);
        if (sync_thread_take_result(t, &r))
                t->done(t, r, t->userdata);
        return 0;
}

int sync_thread_new(sd_event *event, SyncDoneFunc done, SyncDoneFunc reserved, void *userdata, SyncThread **ret) {
        _cleanup_(sync_thread_freep) SyncThread *t = NULL;
        sigset_t all, saved;
        int r;

        t = calloc(1, sizeof(SyncThread));
        if (!t)
                return -ENOMEM;
        t->sealed_fd = t->data_fd = t->dir_fd = t->wb_fd = t->reserve_fd = -EBADF;
        t->done = done;
        t->reserved = reserved;
        t->userdata = userdata;
        pthread_mutex_init(&t->lock, NULL);
        pthread_cond_init(&t->cond, NULL);

        t->event_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
        if (t->event_fd < 0)
                return -errno;
        r = sd_event_add_io(event, &t->event_source, t->event_fd, EPOLLIN, on_sync_event, t);
        if (r < 0)
                return r;

        /* Signals stay with the loop's signalfd: the thread blocks them all. */
        sigfillset(&all);
        r = -pthread_sigmask(SIG_SETMASK, &all, &saved);
        if (r < 0)
                return r;
        r = -pthread_create(&t->thread, NULL, sync_thread_main, t);
        (void) pthread_sigmask(SIG_SETMASK, &saved, NULL);
        if (r < 0)
                return r;
        t->thread_started = true;

        *ret = TAKE_PTR(t);
        return 0;
}

SyncThread *sync_thread_free(SyncThread *t) {
        if (!t)
                return NULL;
        if (t->thread_started) {
                pthread_mutex_lock(&t->lock);
                t->quit = true;
                pthread_cond_broadcast(&t->cond);
                pthread_mutex_unlock(&t->lock);
                (void) pthread_join(t->thread, NULL);
        }
        safe_close(t->sealed_fd);
        safe_close(t->data_fd);
        safe_close(t->dir_fd);
        safe_close(t->wb_fd);
        safe_close(t->reserve_fd);
        sd_event_source_disable_unref(t->event_source);
        safe_close(t->event_fd);
        pthread_cond_destroy(&t->cond);
        pthread_mutex_destroy(&t->lock);
        free(t);
        return NULL;
}

int sync_thread_start(SyncThread *t, int sealed_fd, int data_fd, int dir_fd) {
        pthread_mutex_lock(&t->lock);
        if (t->busy) {
                pthread_mutex_unlock(&t->lock);
                safe_close(sealed_fd);
                safe_close(data_fd);
                safe_close(dir_fd);
                return -EBUSY;
        }
        t->sealed_fd = sealed_fd;
        t->data_fd = data_fd;
        t->dir_fd = dir_fd;
        t->queued = t->busy = true;
        t->finished = false;
        pthread_cond_broadcast(&t->cond);
        pthread_mutex_unlock(&t->lock);
        return 0;
}

bool sync_thread_busy(SyncThread *t) {
        bool busy;

        pthread_mutex_lock(&t->lock);
        busy = t->busy;
        pthread_mutex_unlock(&t->lock);
        return busy;
}

int sync_thread_wait(SyncThread *t) {
        int r = 0;

        pthread_mutex_lock(&t->lock);
        while (t->busy && !t->finished)
                pthread_cond_wait(&t->cond, &t->lock);
        if (t->busy) {
                r = t->result;
                t->busy = t->finished = false;
        }
        pthread_mutex_unlock(&t->lock);
        sync_thread_drain(t);
        return r;
}

void sync_thread_writeback(SyncThread *t, int fd, uint64_t offset, uint64_t length) {
        int unused = -EBADF;

        pthread_mutex_lock(&t->lock);
        if (t->wb_fd >= 0 && offset == t->wb_offset + t->wb_length) {
                /* The next range of the same segment (a new segment starts at 0): one call. */
                t->wb_length += length;
                unused = fd;
        } else {
                unused = t->wb_fd;
                t->wb_fd = fd;
                t->wb_offset = offset;
                t->wb_length = length;
        }
        pthread_cond_broadcast(&t->cond);
        pthread_mutex_unlock(&t->lock);
        safe_close(unused);
}

int sync_thread_reserve(SyncThread *t, int fd, uint64_t size) {
        pthread_mutex_lock(&t->lock);
        if (t->reserve_fd >= 0 || t->reserve_finished) {
                pthread_mutex_unlock(&t->lock);
                safe_close(fd);
                return -EBUSY;
        }
        t->reserve_fd = fd;
        t->reserve_size = size;
        pthread_cond_broadcast(&t->cond);
        pthread_mutex_unlock(&t->lock);
        return 0;
}
