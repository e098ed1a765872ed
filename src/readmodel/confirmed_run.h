/* confirmed_run.h - which Redis process the read model is known whole in.
 *
 * A Redis can come back holding less than it held: restarted from a snapshot older than its
 * last writes, an AOF that lost its last second, a failover to a replica that lagged. Its
 * checkpoint is then behind events that commands already answered as applied, and until the
 * projector applies them again its views are older than what clients were told.
 *
 * Every Redis process has a run id of its own (INFO server's "run_id", 40 hex digits, new at
 * each start), and no snapshot, AOF or replica carries it over. The projector writes it into
 * {prefix}:confirmed-run once Redis holds every event the log had when that process began to
 * serve it (so every event any command could have answered as applied). Each query connection
 * reads its Redis' run id once, when it connects, and each query reads the key with the
 * generation: another run id, or none, and the query answers 503 instead of an older state. */
#ifndef CATALOGD_CONFIRMED_RUN_H
#define CATALOGD_CONFIRMED_RUN_H

#include <hiredis.h>
#include <stddef.h>

#define RUN_ID_LEN 40

/* What a connection says when Redis answers the INFO its run id comes from with "error" (the
 * reply, or a text that holds it): a user without the permission (NOPERM) is told which to
 * grant; anything else (NOAUTH, maxclients) is the session refused, whatever its command. */
#define RUN_ID_REFUSED "Redis refused INFO, which catalogd needs (grant +info)"
const char *run_id_refusal(const char *error);

/* Reads the run id out of "text" ("len" bytes, the reply to INFO server) into "out". Returns 0, or
 * -1 when the reply names none (not 40 hex digits on a line "run_id:"). */
int confirmed_run_parse(const char *text, size_t len, char out[RUN_ID_LEN + 1]);

/* 1 when "reply" (to a GET of {prefix}:confirmed-run) names "run_id", the run id of the
 * Redis that answered it; 0 otherwise, and always when "run_id" is "" (not known). */
int confirmed_run_is(const redisReply *reply, const char *run_id);

#endif
