/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include "dpiped-def-file.h"
#include "json-util.h"
#include "utf8.h"
#include "util.h"

#define DROPIN_SUFFIX ".conf"
#define WHITESPACE " \t"

static void closedirp_(DIR **d) {
        if (*d)
                (void) closedir(*d);
}

static bool has_suffix(const char *s, const char *suffix, size_t *ret_stem) {
        size_t n = strlen(s), k = strlen(suffix);

        if (n <= k || !streq(s + n - k, suffix))
                return false;
        if (ret_stem)
                *ret_stem = n - k;
        return true;
}

/* systemd's rule: an empty file, or a symlink to /dev/null, masks. */
static bool file_is_masked(const char *path) {
        struct stat st;
        char target[16];
        ssize_t n;

        n = readlink(path, target, sizeof(target) - 1);
        if (n > 0) {
                target[n] = 0;
                if (streq(target, "/dev/null"))
                        return true;
        }
        if (stat(path, &st) < 0)
                return false;
        if (S_ISCHR(st.st_mode) && st.st_rdev == makedev(1, 3))
                return true;
        return S_ISREG(st.st_mode) && st.st_size == 0;
}

/* ---- the files of one definition ----------------------------------------------------------------- */

int def_files_set(DefFiles *d, const char *fragment, char *const *dropins) {
        char *f = NULL, **l = NULL;
        size_t n = 0;

        while (dropins && dropins[n])
                n++;
        f = strdup(fragment);
        l = calloc(n + 1, sizeof(char *));
        if (!f || !l)
                goto oom;
        for (size_t i = 0; i < n; i++) {
                l[i] = strdup(dropins[i]);
                if (!l[i])
                        goto oom;
        }
        def_files_done(d);
        d->fragment_path = f;
        d->dropin_paths = l;
        return 0;
oom:
        strv_free(l);
        free(f);
        return -ENOMEM;
}

void def_files_done(DefFiles *d) {
        free(d->fragment_path);
        strv_free(d->dropin_paths);
        *d = (DefFiles) {};
}

bool def_files_equal(const DefFiles *d, const char *fragment, char *const *dropins) {
        char *const *a = d->dropin_paths;
        size_t i;

        if (!streq_ptr(d->fragment_path, fragment))
                return false;
        for (i = 0; a && dropins && a[i] && dropins[i]; i++)
                if (!streq(a[i], dropins[i]))
                        return false;
        return (!a || !a[i]) && (!dropins || !dropins[i]);
}

const char *def_files_describe(const DefFiles *d, char *buf, size_t size) {
        size_t n = 0;

        while (d->dropin_paths && d->dropin_paths[n])
                n++;
        if (n == 0)
                snprintf(buf, size, "%s", d->fragment_path);
        else
                snprintf(buf, size, "%s and %zu drop-in%s", d->fragment_path, n, n == 1 ? "" : "s");
        return buf;
}

/* ---- listing the directories --------------------------------------------------------------------- */

typedef struct Seen {
        char *key;  /* the name, or "NAME/DROPIN.conf" */
        char *path; /* NULL when masked */
} Seen;

typedef struct SeenSet {
        Seen *items;
        size_t n;
} SeenSet;

static Seen *seen_find(SeenSet *s, const char *key) {
        for (size_t i = 0; i < s->n; i++)
                if (streq(s->items[i].key, key))
                        return &s->items[i];
        return NULL;
}

/* Records key → path unless a higher directory had it already (first wins). */
static int seen_add(SeenSet *s, const char *key, const char *path, bool masked) {
        Seen *l;

        if (seen_find(s, key))
                return 0;
        l = realloc(s->items, (s->n + 1) * sizeof(Seen));
        if (!l)
                return -ENOMEM;
        s->items = l;
        l[s->n] = (Seen) { .key = strdup(key), .path = masked ? NULL : strdup(path) };
        if (!l[s->n].key || (!masked && !l[s->n].path)) {
                free(l[s->n].key);
                free(l[s->n].path);
                return -ENOMEM;
        }
        s->n++;
        return 0;
}

static void seen_done(SeenSet *s) {
        for (size_t i = 0; i < s->n; i++) {
                free(s->items[i].key);
                free(s->items[i].path);
        }
        free(s->items);
        *s = (SeenSet) {};
}

static void problem_report(DefFileProblem problem, void *userdata, const char *path, const char *fmt, ...) {
        char reason[256];
        va_list ap;

        if (!problem)
                return;
        va_start(ap, fmt);
        vsnprintf(reason, sizeof(reason), fmt, ap);
        va_end(ap);
        problem(path, reason, userdata);
}

static int scan_dropin_dir(const char *dir, const char *name, SeenSet *dropins, DefFileProblem problem,
                           void *userdata) {
        _cleanup_(closedirp_) DIR *d = NULL;
        struct dirent *de;
        int r;

        d = opendir(dir);
        if (!d) {
                if (errno != ENOENT && errno != ENOTDIR)
                        problem_report(problem, userdata, dir, "cannot read the directory: %s", strerror(errno));
                return 0;
        }
        while ((errno = 0, de = readdir(d))) {
                _cleanup_free_ char *path = NULL, *key = NULL;

                if (de->d_name[0] == '.' || !has_suffix(de->d_name, DROPIN_SUFFIX, NULL))
                        continue;
                path = path_join(dir, de->d_name);
                if (!path || asprintf(&key, "%s/%s", name, de->d_name) < 0)
                        return -ENOMEM;
                r = seen_add(dropins, key, path, file_is_masked(path));
                if (r < 0)
                        return r;
        }
        return 0;
}

static int scan_dir(const DefFileKind *kind, const char *dir, SeenSet *fragments, SeenSet *dropins, DefFileProblem problem,
                    void *userdata) {
        _cleanup_(closedirp_) DIR *d = NULL;
        char suffix[32], dropin_suffix[32];
        struct dirent *de;
        int r;

        snprintf(suffix, sizeof(suffix), ".%s", kind->what);
        snprintf(dropin_suffix, sizeof(dropin_suffix), ".%s.d", kind->what);
        d = opendir(dir);
        if (!d) {
                if (errno != ENOENT)
                        problem_report(problem, userdata, dir, "cannot read the directory: %s", strerror(errno));
                return 0;
        }
        while ((errno = 0, de = readdir(d))) {
                _cleanup_free_ char *path = NULL, *name = NULL;
                size_t stem;

                if (de->d_name[0] == '.')
                        continue;
                path = path_join(dir, de->d_name);
                if (!path)
                        return -ENOMEM;
                if (has_suffix(de->d_name, suffix, &stem)) {
                        name = strndup(de->d_name, stem);
                        if (!name)
                                return -ENOMEM;
                        if (!kind->name_is_valid(name)) {
                                if (!seen_find(fragments, name))
                                        problem_report(problem, userdata, path,
                                                       "\"%s\" is not a valid %s name (%s), ignoring the file",
                                                       name, kind->what, kind->name_rule);
                                continue;
                        }
                        r = seen_add(fragments, name, path, file_is_masked(path));
                } else if (has_suffix(de->d_name, dropin_suffix, &stem)) {
                        name = strndup(de->d_name, stem);
                        if (!name)
                                return -ENOMEM;
                        if (!kind->name_is_valid(name))
                                continue;
                        r = scan_dropin_dir(path, name, dropins, problem, userdata);
                } else
                        continue;
                if (r < 0)
                        return r;
        }
        return 0;
}

static int entry_cmp(const void *a, const void *b) {
        return strcmp(((const DefFileEntry *) a)->name, ((const DefFileEntry *) b)->name);
}

static int string_cmp(const void *a, const void *b) {
        return strcmp(*(char *const *) a, *(char *const *) b);
}

void def_file_entries_free(DefFileEntry *l, size_t n) {
        for (size_t i = 0; i < n; i++) {
                free(l[i].name);
                free(l[i].path);
                for (size_t j = 0; j < l[i].n_dropins; j++)
                        free(l[i].dropins[j]);
                free(l[i].dropins);
        }
        free(l);
}

int def_files_enumerate(const DefFileKind *kind, char *const *dirs, DefFileProblem problem, void *userdata, DefFileEntry **ret,
                           size_t *ret_n) {
        SeenSet fragments = {}, dropins = {};
        DefFileEntry *l = NULL;
        size_t n = 0;
        int r = 0;

        for (size_t i = 0; dirs && dirs[i]; i++) {
                r = scan_dir(kind, dirs[i], &fragments, &dropins, problem, userdata);
                if (r < 0)
                        goto finish;
        }

        l = calloc(fragments.n + 1, sizeof(DefFileEntry));
        if (!l) {
                r = -ENOMEM;
                goto finish;
        }
        for (size_t i = 0; i < fragments.n; i++) {
                DefFileEntry *e;
                size_t klen = strlen(fragments.items[i].key);

                if (!fragments.items[i].path)
                        continue; /* masked */
                e = &l[n++];
                e->name = strdup(fragments.items[i].key);
                e->path = strdup(fragments.items[i].path);
                if (!e->name || !e->path) {
                        r = -ENOMEM;
                        goto finish;
                }
                /* The drop-ins of this name, sorted by their file names: the keys are
                 * "NAME/FILE.conf", so sorting the paths by key sorts them by file name. */
                char **keys = NULL;
                size_t nk = 0;
                for (size_t j = 0; j < dropins.n; j++) {
                        if (!dropins.items[j].path || strncmp(dropins.items[j].key, e->name, klen) != 0 ||
                            dropins.items[j].key[klen] != '/')
                                continue;
                        char **k = realloc(keys, (nk + 1) * sizeof(char *));
                        if (!k) {
                                free(keys);
                                r = -ENOMEM;
                                goto finish;
                        }
                        keys = k;
                        keys[nk++] = dropins.items[j].key;
                }
                if (nk > 0)
                        qsort(keys, nk, sizeof(char *), string_cmp);
                e->dropins = calloc(nk + 1, sizeof(char *));
                if (!e->dropins) {
                        free(keys);
                        r = -ENOMEM;
                        goto finish;
                }
                for (size_t j = 0; j < nk; j++) {
                        e->dropins[j] = strdup(seen_find(&dropins, keys[j])->path);
                        if (!e->dropins[j]) {
                                free(keys);
                                r = -ENOMEM;
                                goto finish;
                        }
                        e->n_dropins++;
                }
                free(keys);
        }
        qsort(l, n, sizeof(DefFileEntry), entry_cmp);
        *ret = TAKE_PTR(l);
        *ret_n = n;
        r = 0;
finish:
        if (l)
                def_file_entries_free(l, n);
        seen_done(&fragments);
        seen_done(&dropins);
        return r;
}

/* ---- parsing ------------------------------------------------------------------------------------- */

DefFile *def_file_free(DefFile *f) {
        if (!f)
                return NULL;
        free(f->name);
        free(f->path);
        strv_free(f->dropins);
        free(f->type);
        free(f->type_location);
        json_object_put(f->options);
        json_object_put(f->locations);
        free(f);
        return NULL;
}

static int set_error(char *error, size_t size, int r, const char *path, unsigned line, const char *fmt, ...) {
        char reason[256];
        va_list ap;

        va_start(ap, fmt);
        vsnprintf(reason, sizeof(reason), fmt, ap);
        va_end(ap);
        if (line > 0)
                snprintf(error, size, "%s:%u: %s", path, line, reason);
        else
                snprintf(error, size, "%s: %s", path, reason);
        return r;
}

static char *strip(char *s) {
        char *end;

        s += strspn(s, WHITESPACE);
        end = s + strlen(s);
        while (end > s && strchr(WHITESPACE, end[-1]))
                *--end = 0;
        return s;
}

static int location_set(struct json_object *locations, const char *key, const char *path, unsigned line) {
        char buf[PATH_MAX + 32];

        snprintf(buf, sizeof(buf), "%s:%u", path, line);
        return json_object_object_add(locations, key, json_object_new_string(buf)) < 0 ? -ENOMEM : 0;
}

static int def_file_assign(DefFile *f, const char *path, unsigned line, const char *key, const char *value,
                              char *error, size_t error_size) {
        char loc[PATH_MAX + 32];

        if (streq(key, "Type")) {
                char *t = NULL;

                if (!isempty(value)) {
                        if (!f->kind->type_is_valid(value))
                                return set_error(error, error_size, -EINVAL, path, line, "invalid Type=\"%.80s\": %s",
                                                 value, f->kind->type_hint);
                        t = strdup(value);
                        if (!t)
                                return -ENOMEM;
                }
                free(f->type);
                f->type = t;
                snprintf(loc, sizeof(loc), "%s:%u", path, line);
                free(f->type_location);
                f->type_location = strdup(loc);
                return f->type_location ? 0 : -ENOMEM;
        }
        if (streq(key, "Address")) {
                if (isempty(value)) {
                        json_object_object_del(f->options, "address");
                        return 0;
                }
                if (json_object_object_add(f->options, "address", json_object_new_string(value)) < 0)
                        return -ENOMEM;
                return location_set(f->locations, "address", path, line);
        }
        if (streq(key, "Option")) {
                _cleanup_free_ char *k = NULL;
                const char *eq;

                if (isempty(value)) {
                        /* An empty assignment resets the list, as systemd does for list settings;
                         * Address= is a setting of its own and stays. */
                        struct json_object *address = NULL;

                        if (json_object_object_get_ex(f->options, "address", &address))
                                json_object_get(address);
                        json_object_put(f->options);
                        f->options = json_object_new_object();
                        if (!f->options || (address && json_object_object_add(f->options, "address", address) < 0))
                                return -ENOMEM;
                        return 0;
                }
                eq = strchr(value, '=');
                if (!eq || eq == value)
                        return set_error(error, error_size, -EINVAL, path, line,
                                         "Option= takes KEY=VALUE, not \"%.80s\"", value);
                k = strndup(value, (size_t) (eq - value));
                if (!k)
                        return -ENOMEM;
                if (streq(k, "address"))
                        return set_error(error, error_size, -EINVAL, path, line,
                                         "the address is set with Address=, not Option=address=");
                /* The value is kept verbatim: '=', ';', quotes and blanks inside it are its own (a
                 * transform program is full of them). */
                if (json_object_object_add(f->options, k, json_object_new_string(eq + 1)) < 0)
                        return -ENOMEM;
                return location_set(f->locations, k, path, line);
        }
        if (strncmp(key, "X-", 2) == 0)
                return 0; /* systemd's convention: extensions for other tools, ignored */
        return set_error(error, error_size, -EINVAL, path, line,
                         "unknown setting \"%.64s\" in [%s] (known: Type=, Address=, Option=)", key,
                         f->kind->section);
}

int def_file_parse(DefFile *f, const char *path, const char *text, size_t size, char *error,
                      size_t error_size) {
        _cleanup_free_ char *buf = NULL, *joined = NULL;
        enum { SECTION_NONE, SECTION_OURS, SECTION_IGNORED } section = SECTION_NONE;
        size_t joined_len = 0;
        unsigned line_no = 0, start_line = 0;
        char *p, *next;
        int r;

        if (!f->options)
                f->options = json_object_new_object();
        if (!f->locations)
                f->locations = json_object_new_object();
        if (!f->options || !f->locations)
                return -ENOMEM;
        if (memchr(text, 0, size))
                return set_error(error, error_size, -EBADMSG, path, 0, "the file contains a NUL byte");
        if (!utf8_is_valid_n(text, size))
                return set_error(error, error_size, -EBADMSG, path, 0, "the file is not UTF-8 text");
        buf = strndup(text, size);
        if (!buf)
                return -ENOMEM;

        for (p = buf; p; p = next) {
                char *l, *eq, *key, *value;
                bool continued;
                size_t n;

                next = strchr(p, '\n');
                if (next)
                        *next++ = 0;
                line_no++;
                n = strlen(p);
                if (n > 0 && p[n - 1] == '\r')
                        p[--n] = 0;

                l = p + strspn(p, WHITESPACE);
                /* Comment lines are dropped, also in the middle of a continued line (as systemd). */
                if (*l == '#' || *l == ';')
                        continue;

                continued = n > 0 && p[n - 1] == '\\';
                if (continued)
                        p[--n] = 0;
                if (joined || continued) {
                        char *j = realloc(joined, joined_len + n + 2);
                        if (!j)
                                return -ENOMEM;
                        joined = j;
                        if (joined_len == 0)
                                start_line = line_no;
                        memcpy(joined + joined_len, p, n);
                        joined_len += n;
                        if (continued) {
                                /* The backslash becomes a blank, as in systemd's unit files. */
                                joined[joined_len++] = ' ';
                                joined[joined_len] = 0;
                                if (next)
                                        continue;
                        }
                        joined[joined_len] = 0;
                        l = joined;
                } else
                        start_line = line_no;

                l = strip(l);
                if (*l == 0)
                        goto next_line;
                if (*l == '[') {
                        size_t k = strlen(l);
                        if (l[k - 1] != ']')
                                return set_error(error, error_size, -EBADMSG, path, start_line,
                                                 "a section header must end with ']'");
                        l[k - 1] = 0;
                        if (streq(l + 1, f->kind->section))
                                section = SECTION_OURS;
                        else if (strncmp(l + 1, "X-", 2) == 0)
                                section = SECTION_IGNORED;
                        else
                                return set_error(error, error_size, -EBADMSG, path, start_line,
                                                 "unknown section [%.64s] (%s knows [%s])", l + 1, f->kind->man,
                                                 f->kind->section);
                        goto next_line;
                }
                eq = strchr(l, '=');
                if (!eq)
                        return set_error(error, error_size, -EBADMSG, path, start_line,
                                         "expected KEY=VALUE, a [Section] or a comment, not \"%.64s\"", l);
                *eq = 0;
                key = strip(l);
                value = strip(eq + 1);
                if (section == SECTION_NONE)
                        return set_error(error, error_size, -EBADMSG, path, start_line,
                                         "%s= before any section: begin the file with [%s]", key,
                                         f->kind->section);
                if (section == SECTION_OURS) {
                        r = def_file_assign(f, path, start_line, key, value, error, error_size);
                        if (r < 0)
                                return r;
                }
        next_line:
                free(joined);
                joined = NULL;
                joined_len = 0;
        }
        return 0;
}

/* Checks each setting on its own first, so that a refusal names the line that made it. */
static int def_file_check(DefFile *f, char *error, size_t error_size) {
        _cleanup_json_ struct json_object *normalized = NULL;
        const char *address = json_get_string(f->options, "address");
        char reason[256];
        int r;

        if (!f->type)
                return set_error(error, error_size, -EINVAL, f->path, 0, "Type= is missing in [%s]", f->kind->section);
        if (!address)
                return set_error(error, error_size, -EINVAL, f->path, 0, "Address= is missing in [%s]",
                                 f->kind->section);

        json_object_object_foreach(f->options, key, value) {
                _cleanup_json_ struct json_object *one = json_object_new_object(), *out = NULL;
                const char *where = json_get_string(f->locations, key);

                if (!one || json_object_object_add(one, "address", json_object_new_string(address)) < 0 ||
                    json_object_object_add(one, key, json_object_get(value)) < 0)
                        return -ENOMEM;
                r = f->kind->normalize(f->type, one, &out, reason, sizeof(reason));
                if (r == -ENOMEM)
                        return r;
                if (r < 0) {
                        snprintf(error, error_size, "%s: %s", where ?: f->path, reason);
                        return -EINVAL;
                }
        }
        r = f->kind->normalize(f->type, f->options, &normalized, reason, sizeof(reason));
        if (r == -ENOMEM)
                return r;
        if (r < 0)
                return set_error(error, error_size, -EINVAL, f->path, 0, "%s", reason);
        json_object_put(f->options);
        f->options = TAKE_PTR(normalized);
        return 0;
}

int def_file_load(const DefFileKind *kind, const DefFileEntry *e, DefFile **ret, char *error, size_t error_size) {
        _cleanup_(def_file_freep) DefFile *f = NULL;
        int r;

        f = calloc(1, sizeof(DefFile));
        if (!f)
                return -ENOMEM;
        f->kind = kind;
        f->name = strdup(e->name);
        f->path = strdup(e->path);
        f->dropins = calloc(e->n_dropins + 1, sizeof(char *));
        if (!f->name || !f->path || !f->dropins)
                return -ENOMEM;
        for (size_t i = 0; i < e->n_dropins; i++) {
                f->dropins[i] = strdup(e->dropins[i]);
                if (!f->dropins[i])
                        return -ENOMEM;
        }

        for (size_t i = 0; i <= e->n_dropins; i++) {
                _cleanup_free_ char *text = NULL;
                const char *path = i == 0 ? e->path : e->dropins[i - 1];
                size_t size;

                r = read_file(path, DEF_FILE_SIZE_MAX, &text, &size);
                if (r == -ENOMEM)
                        return r;
                if (r < 0)
                        return set_error(error, error_size, r, path, 0, "cannot read the file: %s", strerror(-r));
                r = def_file_parse(f, path, text, size, error, error_size);
                if (r < 0)
                        return r;
        }
        r = def_file_check(f, error, error_size);
        if (r < 0)
                return r;
        *ret = TAKE_PTR(f);
        return 0;
}
