/* command.c - what a command owns. */
#include "command/command.h"

#include <stdlib.h>

void command_free(struct command *cmd)
{
    if (!cmd) return;
    free(cmd->replay.body);
    free(cmd);
}
