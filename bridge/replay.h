/* replay.h - the commands that work on the dead-letter topic:
 * `webhook-bridge replay` runs dead letters through the current provider
 * descriptions and routing and produces what now passes to its topic (the
 * same id and receivedat, attribute replayedfrom); `webhook-bridge
 * deadletters` says what the topic holds. */
#ifndef WB_REPLAY_H
#define WB_REPLAY_H

/* argv[0] is the command's name ("replay" or "deadletters"); env the
 * environment the configuration reads. Returns the exit status: 0 when
 * everything selected was replayed or reported as still failing, 1 on a
 * Kafka or configuration error, 2 on a usage error. */
int wb_replay_main(int argc, char **argv, char *const *env);

#endif
