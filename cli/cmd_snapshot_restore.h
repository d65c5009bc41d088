/* cmd_snapshot_restore.h — `keel snapshot restore` (cmd_snapshot_restore.c):
 * builds a keeld data directory from a saved snapshot file, offline.
 */
#ifndef KEEL_CMD_SNAPSHOT_RESTORE_H
#define KEEL_CMD_SNAPSHOT_RESTORE_H

/* Usage line and help text (for keel --help and the command table). */
extern const char cli_snapshot_restore_usage[];
extern const char cli_snapshot_restore_help[];

/* 1 if argv's first two words (skipping flags and the values of the global
 * flags that take one) are "snapshot restore". */
int cli_snapshot_restore_wanted(int argc, char **argv);

/* Runs the command on the whole argv; returns the exit status: 0 restored,
 * 1 failed (file missing sha256 trailer, corrupt, not a keel snapshot, I/O),
 * 2 usage (bad flag, data dir exists), 3 FILE not found. */
int cli_snapshot_restore_main(int argc, char **argv);

#endif
