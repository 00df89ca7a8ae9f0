/* The PostgreSQL reference for bench/mq: one plain libpq loop doing what clutch's postgres://
 * queue does, on the same table: claim BATCH visible rows (FOR UPDATE SKIP LOCKED, leased with
 * one UPDATE ... RETURNING), then acknowledge them (one DELETE ... = ANY), until COUNT are gone.
 * No handler, no processes: the floor for the table. Prints messages/s.
 *   plain_pg_consumer CONNINFO TABLE COUNT BATCH */
#include <libpq-fe.h>
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
  if (argc != 5) return 2;
  const char* table = argv[2];
  long count = atol(argv[3]);
  int batch = atoi(argv[4]);
  PGconn* conn = PQconnectdb(argv[1]);
  if (PQstatus(conn) != CONNECTION_OK) {
    fprintf(stderr, "%s", PQerrorMessage(conn));
    return 1;
  }
  char fetch[1024], ack[256], limit[16];
  snprintf(fetch, sizeof fetch,
           "WITH c AS (SELECT id FROM %s WHERE visible_at <= (extract(epoch from "
           "clock_timestamp()) * 1000)::bigint ORDER BY id LIMIT $1 FOR UPDATE SKIP LOCKED) "
           "UPDATE %s t SET visible_at = (extract(epoch from clock_timestamp()) * 1000)::bigint "
           "+ 30000, leased_by = 'plain' FROM c WHERE t.id = c.id RETURNING t.id, t.body, "
           "t.attempts",
           table, table);
  snprintf(ack, sizeof ack, "DELETE FROM %s WHERE id = ANY($1::bigint[])", table);
  snprintf(limit, sizeof limit, "%d", batch);
  PGresult* r = PQprepare(conn, "fetch", fetch, 1, NULL);
  PQclear(r);
  r = PQprepare(conn, "ack", ack, 1, NULL);
  PQclear(r);
  size_t cap = (size_t)batch * 24 + 8;
  char* ids = malloc(cap);
  long done = 0;
  double t0 = now_s();
  while (done < count) {
    const char* fetch_values[] = {limit};
    r = PQexecPrepared(conn, "fetch", 1, fetch_values, NULL, NULL, 0);
    if (PQresultStatus(r) != PGRES_TUPLES_OK) {
      fprintf(stderr, "%s", PQresultErrorMessage(r));
      return 1;
    }
    int n = PQntuples(r);
    size_t at = 0;
    ids[at++] = '{';
    for (int i = 0; i < n; ++i) {
      const char* id = PQgetvalue(r, i, 0);
      size_t len = strlen(id);
      if (i > 0) ids[at++] = ',';
      memcpy(ids + at, id, len);
      at += len;
    }
    ids[at++] = '}';
    ids[at] = '\0';
    PQclear(r);
    if (n == 0) continue;
    const char* ack_values[] = {ids};
    r = PQexecPrepared(conn, "ack", 1, ack_values, NULL, NULL, 0);
    PQclear(r);
    done += n;
  }
  printf("%.0f\n", done / (now_s() - t0));
  PQfinish(conn);
  return 0;
}
