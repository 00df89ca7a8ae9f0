/* The SQLite reference for bench/mq: one plain loop doing the transactions clutch's embedded
 * queue does, on the same file and schema: claim BATCH visible messages (select and hide them in
 * one BEGIN IMMEDIATE), then acknowledge them (delete them in a second), until COUNT are gone.
 * No handler, no processes: the floor for the file. Prints messages/s.
 *   plain_sqlite_consumer DB COUNT BATCH */
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec + ts.tv_nsec / 1e9;
}

static long long now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int main(int argc, char** argv) {
  if (argc != 4) return 2;
  long count = atol(argv[2]);
  int batch = atoi(argv[3]);
  sqlite3* db;
  if (sqlite3_open(argv[1], &db) != SQLITE_OK) return 1;
  sqlite3_busy_timeout(db, 5000);
  sqlite3_exec(db, "PRAGMA journal_mode=WAL", 0, 0, 0);
  sqlite3_exec(db, "PRAGMA synchronous=NORMAL", 0, 0, 0);
  sqlite3_stmt *select, *hide, *del;
  if (sqlite3_prepare_v2(
          db, "SELECT id, body, attempts FROM messages WHERE visible_at <= ? ORDER BY id LIMIT ?",
          -1, &select, 0) ||
      sqlite3_prepare_v2(db, "UPDATE messages SET visible_at = ? WHERE id = ?", -1, &hide, 0) ||
      sqlite3_prepare_v2(db, "DELETE FROM messages WHERE id = ?", -1, &del, 0))
    return 1;
  long long* ids = malloc(sizeof(long long) * batch);
  long done = 0;
  double t0 = now_s();
  while (done < count) {
    long long now = now_ms();
    int n = 0;
    sqlite3_exec(db, "BEGIN IMMEDIATE", 0, 0, 0);
    sqlite3_bind_int64(select, 1, now);
    sqlite3_bind_int(select, 2, batch);
    while (sqlite3_step(select) == SQLITE_ROW) {
      ids[n++] = sqlite3_column_int64(select, 0);
      (void)sqlite3_column_blob(select, 1);
    }
    sqlite3_reset(select);
    for (int i = 0; i < n; ++i) {
      sqlite3_bind_int64(hide, 1, now + 30000);
      sqlite3_bind_int64(hide, 2, ids[i]);
      sqlite3_step(hide);
      sqlite3_reset(hide);
    }
    sqlite3_exec(db, "COMMIT", 0, 0, 0);
    if (n == 0) return 1; /* the file ran dry before COUNT */
    sqlite3_exec(db, "BEGIN IMMEDIATE", 0, 0, 0);
    for (int i = 0; i < n; ++i) {
      sqlite3_bind_int64(del, 1, ids[i]);
      sqlite3_step(del);
      sqlite3_reset(del);
    }
    sqlite3_exec(db, "COMMIT", 0, 0, 0);
    done += n;
  }
  printf("%.0f\n", done / (now_s() - t0));
  sqlite3_close(db);
  return 0;
}
