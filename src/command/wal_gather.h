/* wal_gather.h - a SQLite VFS that writes a commit's WAL frames in one system call.
 *
 * SQLite writes each WAL frame as two pwrite calls, its 24-byte header and then its page: a
 * commit of 14 creates is about 29 calls. This VFS wraps the default one and, for WAL files
 * only, gathers the appends in memory and writes them at once when SQLite syncs the WAL, just
 * before the fsync that makes the commit durable. Every other operation on the WAL (a read, a
 * write elsewhere, a truncate, the size, a file control, the close) writes the gathered bytes
 * first, so SQLite never sees the file differ from what it wrote.
 *
 * It is only correct where every commit syncs the WAL after its last frame, that is PRAGMA
 * synchronous=FULL (and see wal_gather_fits): other connections learn of a commit from the
 * wal-index, which SQLite updates after that sync. With synchronous=NORMAL a commit does not
 * sync, so the writer must not use it. */
#ifndef CATALOGD_WAL_GATHER_H
#define CATALOGD_WAL_GATHER_H

#include <sqlite3.h>

/* The VFS's name for sqlite3_open_v2, registered over the default VFS (not as the default)
 * on the first call, from any thread; NULL if SQLite refused it: then use the default VFS. */
const char *wal_gather_vfs(void);

/* Whether connection "db" may use the VFS: 1 unless its database file lacks powersafe
 * overwrite (a "psow=0" URI). Then SQLite pads each commit up to a sector boundary with
 * frames it writes after the sync and publishes without another, so nothing would write
 * what they leave held back: open that database with the default VFS. */
int wal_gather_fits(sqlite3 *db);

#endif
