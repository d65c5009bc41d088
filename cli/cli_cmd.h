/* cli_cmd.h — what keel_cli.c lends to the command files that live beside
 * it (cmd_flag.c: `keel flag ...`, cmd_cluster.c: `keel cluster ...`).
 *
 * keel_cli.c owns the run: it parses argv, picks the command from its
 * table, checks the flags and argument counts, resolves the endpoints and
 * opens the client, then calls the command's function with its positional
 * arguments. A command file reaches the parsed flags, the output format,
 * the client and the common error paths only through the functions below,
 * so the exit codes and messages stay the same across every command
 * (docs/cli.md: 0 ok, 1 failed, 2 usage, 3 not found). */
#ifndef KEEL_CLI_CMD_H
#define KEEL_CLI_CMD_H

#include <stdint.h>

#include "cli_util.h"
#include "keel.h"

#define CLI_EXIT_FAIL 1
#define CLI_EXIT_USAGE 2
#define CLI_EXIT_NOTFOUND 3

enum cli_fmt { CLI_FMT_TABLE, CLI_FMT_SIMPLE, CLI_FMT_JSON, CLI_FMT_YAML };

/* The parsed command line (flags by id, every occurrence in order). */
const struct cli_args *cli_cmd_args(void);
/* -w / --write-out. */
enum cli_fmt cli_cmd_format(void);
/* --command-timeout in milliseconds (default 5000). */
uint64_t cli_cmd_timeout_ms(void);
/* The client keel_cli.c opened for a command whose table entry asks for
 * one (NULL otherwise). Its loop is keel_sync_loop(). */
keel_sync *cli_cmd_client(void);
/* The endpoint list in use, comma-separated, for messages. */
const char *cli_cmd_endpoints(void);

/* "keel: <message>" and a hint to run --help on stderr, exit 2. */
void cli_cmd_usage_error(const char *fmt, ...)
    __attribute__((noreturn, format(printf, 1, 2)));
/* "keel: <message>" on stderr, exit code. */
void cli_cmd_fatal(int code, const char *fmt, ...)
    __attribute__((noreturn, format(printf, 2, 3)));

/* Starts one asynchronous libkeel request on c with cb/ud (e.g.
 * keel_range(c, arg, NULL, cb, ud)); returns what that call returns. */
typedef int (*cli_cmd_start_fn)(keel_client *c, keel_cb cb, void *ud,
                                void *arg);
/* Runs start to completion on the client's loop. On success returns 0 and
 * *resp owns the response (keel_resp_free). On failure: with die = 1 prints
 * the same message the built-in commands print for that error (no endpoint
 * reachable, timed out, compacted at rev, outcome unknown ...) and exits 1
 * (3 for not found); with die = 0 returns the error and, when msg is not
 * NULL, the server's text in msg (msglen bytes). */
int cli_cmd_request(const char *what, int64_t rev, int die,
                    cli_cmd_start_fn start, void *arg, const void **resp,
                    char *msg, size_t msglen);

/* Fails the way die = 1 would have, for the last cli_cmd_request that
 * returned an error (after the caller handled the errors it knows): the
 * request is not sent again. */
void cli_cmd_fail_last(const char *what, int64_t rev) __attribute__((noreturn));

/* A malloc'd display-safe form of bytes (honours --hex); never NULL. */
char *cli_cmd_display(const uint8_t *b, size_t n);

/* A table printed with the same look as every other command's (at most 12
 * columns). heads are kept by pointer (string literals); cells are copied;
 * print frees the table. */
struct cli_cmd_table;
struct cli_cmd_table *cli_cmd_table_new(int ncols, const char *const *heads);
void cli_cmd_table_row(struct cli_cmd_table *t, const char *const *cells);
void cli_cmd_table_print(struct cli_cmd_table *t);

/* The commands, as entries of keel_cli.c's table: p holds the n arguments
 * after the command and subcommand words, and p[-1] is the subcommand. */
int cli_cmd_flag(const char **p, int n);
int cli_cmd_cluster(const char **p, int n);

#endif
