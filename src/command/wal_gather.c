/* wal_gather.c - a SQLite VFS that writes a commit's WAL frames in one system call (wal_gather.h).
 *
 * A WAL file opened through it is a gather_file: SQLite's handle for it, with the default
 * VFS's handle right behind it in the same allocation (szOsFile counts both). Any other file
 * is the default VFS's own handle, untouched. */
#include "command/wal_gather.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

/* The most a WAL file holds back: past it, the appends so far are written and a new run
 * starts. It is the most the default VFS writes in one call (os_unix.c's seekAndWriteFd keeps
 * only the length's low 17 bits), 31 frames of 4 KB pages: a batch of 14 creates writes 15. */
#define GATHER_MAX 0x1ffff

struct gather_file {
    sqlite3_file base;      /* pMethods: GATHER_METHODS */
    sqlite3_file *inner;    /* the default VFS's handle, right after this struct */
    unsigned char *pending; /* GATHER_MAX bytes, from the first append */
    size_t pending_len;
    sqlite3_int64 pending_at; /* the file offset of pending[0] */
};

static sqlite3_vfs gather_vfs;
static sqlite3_vfs *inner_vfs;

static struct gather_file *gather_of(sqlite3_file *file)
{
    return (struct gather_file *)file;
}

/* Writes what is held back, in one call: before any operation that could see the file. On
 * failure the bytes are dropped all the same, as a failed write's would be: SQLite fails the
 * transaction that wrote them and never counts them as committed. */
static int write_pending(struct gather_file *g)
{
    if (g->pending_len == 0) return SQLITE_OK;
    int rc = g->inner->pMethods->xWrite(g->inner, g->pending, (int)g->pending_len, g->pending_at);
    g->pending_len = 0;
    return rc;
}

static int hold_back(struct gather_file *g, const void *data, size_t len, sqlite3_int64 at)
{
    if (!g->pending && !(g->pending = malloc(GATHER_MAX))) return SQLITE_NOMEM;
    if (g->pending_len == 0) g->pending_at = at;
    memcpy(g->pending + g->pending_len, data, len);
    g->pending_len += len;
    return SQLITE_OK;
}

static int gather_write(sqlite3_file *file, const void *data, int amount, sqlite3_int64 offset)
{
    struct gather_file *g = gather_of(file);
    size_t len = (size_t)amount;
    int appends = g->pending_len > 0 && offset == g->pending_at + (sqlite3_int64)g->pending_len;
    if (!appends || g->pending_len + len > GATHER_MAX) {
        int rc = write_pending(g);
        if (rc != SQLITE_OK) return rc;
    }
    if (len > GATHER_MAX) return g->inner->pMethods->xWrite(g->inner, data, amount, offset);
    return hold_back(g, data, len, offset);
}

static int gather_close(sqlite3_file *file)
{
    struct gather_file *g = gather_of(file);
    int rc = write_pending(g);
    int closed = g->inner->pMethods->xClose(g->inner);
    free(g->pending);
    g->pending = NULL;
    return rc != SQLITE_OK ? rc : closed;
}

static int gather_read(sqlite3_file *file, void *out, int amount, sqlite3_int64 offset)
{
    struct gather_file *g = gather_of(file);
    int rc = write_pending(g);
    return rc != SQLITE_OK ? rc : g->inner->pMethods->xRead(g->inner, out, amount, offset);
}

static int gather_truncate(sqlite3_file *file, sqlite3_int64 size)
{
    struct gather_file *g = gather_of(file);
    int rc = write_pending(g);
    return rc != SQLITE_OK ? rc : g->inner->pMethods->xTruncate(g->inner, size);
}

static int gather_sync(sqlite3_file *file, int flags)
{
    struct gather_file *g = gather_of(file);
    int rc = write_pending(g);
    return rc != SQLITE_OK ? rc : g->inner->pMethods->xSync(g->inner, flags);
}

static int gather_file_size(sqlite3_file *file, sqlite3_int64 *size)
{
    struct gather_file *g = gather_of(file);
    int rc = write_pending(g);
    return rc != SQLITE_OK ? rc : g->inner->pMethods->xFileSize(g->inner, size);
}

static int gather_file_control(sqlite3_file *file, int op, void *arg)
{
    struct gather_file *g = gather_of(file);
    int rc = write_pending(g);
    return rc != SQLITE_OK ? rc : g->inner->pMethods->xFileControl(g->inner, op, arg);
}

/* A WAL file takes no locks of its own (they live in the wal-index), but SQLite's contract
 * asks for the methods, and the default VFS's answer is the right one. */
static int gather_lock(sqlite3_file *file, int level)
{
    struct gather_file *g = gather_of(file);
    return g->inner->pMethods->xLock(g->inner, level);
}

static int gather_unlock(sqlite3_file *file, int level)
{
    struct gather_file *g = gather_of(file);
    return g->inner->pMethods->xUnlock(g->inner, level);
}

static int gather_check_reserved_lock(sqlite3_file *file, int *out)
{
    struct gather_file *g = gather_of(file);
    return g->inner->pMethods->xCheckReservedLock(g->inner, out);
}

static int gather_sector_size(sqlite3_file *file)
{
    struct gather_file *g = gather_of(file);
    return g->inner->pMethods->xSectorSize(g->inner);
}

static int gather_device_characteristics(sqlite3_file *file)
{
    struct gather_file *g = gather_of(file);
    return g->inner->pMethods->xDeviceCharacteristics(g->inner);
}

/* Version 1: the shared-memory and mmap methods belong to the database file, never the WAL. */
static const sqlite3_io_methods GATHER_METHODS = {
    .iVersion = 1,
    .xClose = gather_close,
    .xRead = gather_read,
    .xWrite = gather_write,
    .xTruncate = gather_truncate,
    .xSync = gather_sync,
    .xFileSize = gather_file_size,
    .xLock = gather_lock,
    .xUnlock = gather_unlock,
    .xCheckReservedLock = gather_check_reserved_lock,
    .xFileControl = gather_file_control,
    .xSectorSize = gather_sector_size,
    .xDeviceCharacteristics = gather_device_characteristics,
};

static int gather_open(sqlite3_vfs *vfs, const char *name, sqlite3_file *file, int flags,
                       int *out_flags)
{
    (void)vfs;
    if (!(flags & SQLITE_OPEN_WAL))
        return inner_vfs->xOpen(inner_vfs, name, file, flags, out_flags);
    struct gather_file *g = gather_of(file);
    memset(g, 0, (size_t)gather_vfs.szOsFile);
    g->inner = (sqlite3_file *)(g + 1);
    int rc = inner_vfs->xOpen(inner_vfs, name, g->inner, flags, out_flags);
    /* SQLite closes a handle whose pMethods is set, even after a failed open. */
    g->base.pMethods = g->inner->pMethods ? &GATHER_METHODS : NULL;
    return rc;
}

static int registered;

static void register_once(void)
{
    inner_vfs = sqlite3_vfs_find(NULL);
    if (!inner_vfs) return;
    /* Every other method is the default VFS's own: they read only what is copied here (its
     * app data, its longest path). */
    gather_vfs = *inner_vfs;
    gather_vfs.pNext = NULL;
    gather_vfs.zName = "catalogd-wal-gather";
    gather_vfs.szOsFile = (int)sizeof(struct gather_file) + inner_vfs->szOsFile;
    gather_vfs.xOpen = gather_open;
    registered = sqlite3_vfs_register(&gather_vfs, 0) == SQLITE_OK;
}

const char *wal_gather_vfs(void)
{
    static pthread_once_t once = PTHREAD_ONCE_INIT;
    pthread_once(&once, register_once);
    return registered ? gather_vfs.zName : NULL;
}

int wal_gather_fits(sqlite3 *db)
{
    sqlite3_file *file = NULL;
    if (sqlite3_file_control(db, "main", SQLITE_FCNTL_FILE_POINTER, &file) != SQLITE_OK || !file ||
        !file->pMethods)
        return 0;
    return (file->pMethods->xDeviceCharacteristics(file) & SQLITE_IOCAP_POWERSAFE_OVERWRITE) != 0;
}
