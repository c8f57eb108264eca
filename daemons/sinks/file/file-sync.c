/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "file-sync.h"
#include "macro.h"

typedef struct SyncJob SyncJob;
struct SyncJob {
        SyncJob *next;
        uint64_t token;
        int fd, dir_fd;
        int error;
};

struct FileSync {
        pthread_t thread;
        bool thread_started;
        pthread_mutex_t lock;
        pthread_cond_t cond;
        bool stop;
        SyncJob *todo_head, *todo_tail; /* loop -> thread */
        SyncJob *done_head, *done_tail; /* thread -> loop */

        int efd;
        sd_event_source *io;
        file_sync_done_t done;
        void *userdata;
};

static void job_free(SyncJob *j) {
        safe_close(j->fd);
        safe_close(j->dir_fd);
        free(j);
}

static void job_list_free(SyncJob *j) {
        while (j) {
                SyncJob *next = j->next;
                job_free(j);
                j = next;
        }
}

static void *file_sync_thread(void *userdata) {
        FileSync *f = userdata;

        pthread_mutex_lock(&f->lock);
        for (;;) {
                SyncJob *j;
                uint64_t one = 1;

                while (!f->stop && !f->todo_head)
                        pthread_cond_wait(&f->cond, &f->lock);
                if (f->stop)
                        break;
                j = f->todo_head;
                f->todo_head = j->next;
                if (!f->todo_head)
                        f->todo_tail = NULL;
                pthread_mutex_unlock(&f->lock);

                j->error = 0;
                if (fdatasync(j->fd) < 0)
                        j->error = -errno;
                else if (j->dir_fd >= 0 && fsync(j->dir_fd) < 0)
                        j->error = -errno;

                pthread_mutex_lock(&f->lock);
                j->next = NULL;
                if (f->done_tail)
                        f->done_tail->next = j;
                else
                        f->done_head = j;
                f->done_tail = j;
                (void) !write(f->efd, &one, sizeof(one));
        }
        pthread_mutex_unlock(&f->lock);
        return NULL;
}

static int file_sync_io(sd_event_source *es, int fd, uint32_t revents, void *userdata) {
        FileSync *f = userdata;
        SyncJob *done;
        uint64_t n;

        (void) !read(fd, &n, sizeof(n));
        pthread_mutex_lock(&f->lock);
        done = f->done_head;
        f->done_head = f->done_tail = NULL;
        pthread_mutex_unlock(&f->lock);

        while (done) {
                SyncJob *next = done->next;

                f->done(done->token, done->error, f->userdata);
                job_free(done);
                done = next;
        }
        return 0;
}

int file_sync_new(sd_event *e, file_sync_done_t done, void *userdata, FileSync **ret) {
        FileSync *f;
        int r;

        f = calloc(1, sizeof(FileSync));
        if (!f)
                return -ENOMEM;
        f->done = done;
        f->userdata = userdata;
        pthread_mutex_init(&f->lock, NULL);
        pthread_cond_init(&f->cond, NULL);
        f->efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
        if (f->efd < 0) {
                r = -errno;
                goto fail;
        }
        r = sd_event_add_io(e, &f->io, f->efd, EPOLLIN, file_sync_io, f);
        if (r < 0)
                goto fail;
        r = -pthread_create(&f->thread, NULL, file_sync_thread, f);
        if (r < 0)
                goto fail;
        f->thread_started = true;
        *ret = f;
        return 0;
fail:
        file_sync_free(f);
        return r;
}

FileSync *file_sync_free(FileSync *f) {
        if (!f)
                return NULL;
        if (f->thread_started) {
                pthread_mutex_lock(&f->lock);
                f->stop = true;
                pthread_cond_signal(&f->cond);
                pthread_mutex_unlock(&f->lock);
                pthread_join(f->thread, NULL);
        }
        job_list_free(f->todo_head);
        job_list_free(f->done_head);
        sd_event_source_disable_unref(f->io);
        safe_close(f->efd);
        pthread_cond_destroy(&f->cond);
        pthread_mutex_destroy(&f->lock);
        free(f);
        return NULL;
}

int file_sync_submit(FileSync *f, uint64_t token, int fd, int dir_fd) {
        SyncJob *j = calloc(1, sizeof(SyncJob));

        if (!j) {
                safe_close(fd);
                safe_close(dir_fd);
                return -ENOMEM;
        }
        j->token = token;
        j->fd = fd;
        j->dir_fd = dir_fd;
        pthread_mutex_lock(&f->lock);
        if (f->todo_tail)
                f->todo_tail->next = j;
        else
                f->todo_head = j;
        f->todo_tail = j;
        pthread_cond_signal(&f->cond);
        pthread_mutex_unlock(&f->lock);
        return 0;
}
