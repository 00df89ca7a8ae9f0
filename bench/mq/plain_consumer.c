/* The reference for bench/mq: one plain hiredis consumer of a Redis stream, XREADGROUP of BATCH
 * entries then one XACK of their ids, until COUNT entries are acknowledged. Prints messages/s.
 *   plain_consumer PORT STREAM GROUP COUNT BATCH */
#include <hiredis/hiredis.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec + ts.tv_nsec / 1e9;
}

int main(int argc, char** argv) {
  if (argc != 6) return 2;
  int port = atoi(argv[1]);
  const char *stream = argv[2], *group = argv[3];
  long count = atol(argv[4]), batch = atol(argv[5]);
  redisContext* c = redisConnect("127.0.0.1", port);
  if (!c || c->err) return 1;
  freeReplyObject(redisCommand(c, "XGROUP CREATE %s %s 0 MKSTREAM", stream, group));
  const char** args = malloc(sizeof(char*) * (batch + 3));
  size_t* lens = malloc(sizeof(size_t) * (batch + 3));
  long done = 0;
  double t0 = now_s();
  char batch_text[32];
  snprintf(batch_text, sizeof batch_text, "%ld", batch);
  while (done < count) {
    redisReply* r = redisCommand(c, "XREADGROUP GROUP %s plain COUNT %s STREAMS %s >", group,
                                 batch_text, stream);
    if (!r) return 1;
    if (r->type != REDIS_REPLY_ARRAY || r->elements == 0) {
      freeReplyObject(r);
      continue;
    }
    redisReply* entries = r->element[0]->element[1];
    args[0] = "XACK";
    args[1] = stream;
    args[2] = group;
    for (size_t i = 0; i < 3; ++i) lens[i] = strlen(args[i]);
    for (size_t i = 0; i < entries->elements; ++i) {
      args[3 + i] = entries->element[i]->element[0]->str;
      lens[3 + i] = entries->element[i]->element[0]->len;
    }
    freeReplyObject(redisCommandArgv(c, 3 + (int)entries->elements, args, lens));
    done += (long)entries->elements;
    freeReplyObject(r);
  }
  printf("%.0f\n", done / (now_s() - t0));
  return 0;
}
