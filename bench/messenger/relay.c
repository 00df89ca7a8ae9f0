/* The raw floor for the messenger benchmark: messages from A through a middle process M to B over
 * AF_UNIX stream socketpairs, as clutch routes agent -> master -> worker.
 *
 *   relay throughput SIZE COUNT BATCH   A writes BATCH messages per write; M forwards what each
 *                                       read returns (BATCH=1: M splits and writes one message per
 *                                       write, like a naive router); prints messages/s
 *   relay roundtrip SIZE COUNT          A -> M -> B -> M -> A, one at a time; prints p50 and p99 us
 *   relay fanout SIZE COUNT BATCH N     A writes BATCH messages per write; M writes each read's
 *                                       bytes to N readers (as send_to_app reaches N workers);
 *                                       prints deliveries/s (messages x N)
 */
#define _GNU_SOURCE
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec + ts.tv_nsec / 1e9;
}

static void write_all(int fd, const char* p, size_t n) {
  while (n > 0) {
    ssize_t w = write(fd, p, n);
    if (w <= 0) {
      perror("write");
      exit(1);
    }
    p += w;
    n -= (size_t)w;
  }
}

static void read_all(int fd, char* p, size_t n) {
  while (n > 0) {
    ssize_t r = read(fd, p, n);
    if (r <= 0) {
      perror("read");
      exit(1);
    }
    p += r;
    n -= (size_t)r;
  }
}

/* M: forwards from `in` to `out`; with split = message size, one write per message. */
static void middle(int in, int out, size_t split, size_t total) {
  /* Room for two whole messages when they are large (a router holds a message before it
   * forwards it). */
  size_t cap = split > (1u << 17) ? 2 * split : 1u << 18, have = 0, done = 0;
  char* buf = malloc(cap);
  while (done < total) {
    ssize_t r = read(in, buf + have, cap - have);
    if (r <= 0) break;
    have += (size_t)r;
    if (split == 0) {
      write_all(out, buf, have);
      done += have;
      have = 0;
    } else {
      size_t at = 0;
      for (; at + split <= have; at += split) write_all(out, buf + at, split);
      memmove(buf, buf + at, have - at);
      done += at;
      have -= at;
    }
  }
  free(buf);
}

/* A: COUNT messages of SIZE bytes, BATCH per write (msg holds 64 messages). */
static void send_batches(int fd, const char* msg, size_t size, size_t count, size_t batch) {
  if (batch < 1) batch = 1;
  if (batch > 64) batch = 64;
  for (size_t sent = 0; sent < count; sent += batch) {
    size_t n = count - sent < batch ? count - sent : batch;
    write_all(fd, msg, n * size);
  }
}

/* A reader child: takes `total` bytes, then exits (1 if the stream ended early). */
static void read_total_and_exit(int fd, size_t total) {
  char* buf = malloc(1 << 18);
  size_t got = 0;
  while (got < total) {
    ssize_t r = read(fd, buf, 1 << 18);
    if (r <= 0) _exit(1);
    got += (size_t)r;
  }
  _exit(0);
}

static int cmp_double(const void* a, const void* b) {
  double x = *(const double*)a, y = *(const double*)b;
  return x < y ? -1 : x > y;
}

int main(int argc, char** argv) {
  if (argc < 4) {
    fprintf(stderr,
            "usage: relay throughput SIZE COUNT BATCH | relay roundtrip SIZE COUNT | relay fanout "
            "SIZE COUNT BATCH READERS\n");
    return 2;
  }
  size_t size = strtoul(argv[2], 0, 10), count = strtoul(argv[3], 0, 10);
  int am[2], mb[2];
  socketpair(AF_UNIX, SOCK_STREAM, 0, am);
  socketpair(AF_UNIX, SOCK_STREAM, 0, mb);
  char* msg = calloc(1, size * 64);

  if (strcmp(argv[1], "throughput") == 0) {
    size_t batch = argc > 4 ? strtoul(argv[4], 0, 10) : 1;
    size_t total = size * count;
    pid_t m = fork();
    if (m == 0) {
      middle(am[1], mb[0], batch == 1 ? size : 0, total);
      _exit(0);
    }
    pid_t b = fork();
    if (b == 0) read_total_and_exit(mb[1], total);
    double t0 = now_s();
    send_batches(am[0], msg, size, count, batch);
    waitpid(b, 0, 0); /* B exits once it has read everything */
    double elapsed = now_s() - t0;
    waitpid(m, 0, 0);
    printf("%.0f\n", count / elapsed);
    return 0;
  }

  if (strcmp(argv[1], "fanout") == 0) {
    size_t batch = argc > 4 ? strtoul(argv[4], 0, 10) : 64;
    size_t readers = argc > 5 ? strtoul(argv[5], 0, 10) : 4;
    if (readers < 1 || readers > 16) readers = 4;
    size_t total = size * count;
    int out[16][2];
    for (size_t i = 0; i < readers; ++i) socketpair(AF_UNIX, SOCK_STREAM, 0, out[i]);
    pid_t m = fork();
    if (m == 0) {
      /* The same bytes to every reader: one buffer, a write per reader. */
      char* buf = malloc(1 << 18);
      size_t done = 0;
      while (done < total) {
        ssize_t r = read(am[1], buf, 1 << 18);
        if (r <= 0) break;
        for (size_t i = 0; i < readers; ++i) write_all(out[i][0], buf, (size_t)r);
        done += (size_t)r;
      }
      _exit(0);
    }
    pid_t reader[16];
    for (size_t i = 0; i < readers; ++i) {
      reader[i] = fork();
      if (reader[i] == 0) read_total_and_exit(out[i][1], total);
    }
    double t0 = now_s();
    send_batches(am[0], msg, size, count, batch);
    for (size_t i = 0; i < readers; ++i) waitpid(reader[i], 0, 0);
    double elapsed = now_s() - t0;
    waitpid(m, 0, 0);
    printf("%.0f\n", (double)count * (double)readers / elapsed);
    return 0;
  }

  /* Round trip: M relays both ways; B echoes. */
  pid_t m = fork();
  if (m == 0) {
    char* buf = malloc(size);
    for (size_t i = 0; i < count; ++i) {
      read_all(am[1], buf, size);
      write_all(mb[0], buf, size);
      read_all(mb[0], buf, size);
      write_all(am[1], buf, size);
    }
    _exit(0);
  }
  pid_t b = fork();
  if (b == 0) {
    char* buf = malloc(size);
    for (size_t i = 0; i < count; ++i) {
      read_all(mb[1], buf, size);
      write_all(mb[1], buf, size);
    }
    _exit(0);
  }
  double* rtt = malloc(sizeof(double) * count);
  char* buf = malloc(size);
  for (size_t i = 0; i < count; ++i) {
    double t0 = now_s();
    write_all(am[0], msg, size);
    read_all(am[0], buf, size);
    rtt[i] = (now_s() - t0) * 1e6;
  }
  waitpid(m, 0, 0);
  waitpid(b, 0, 0);
  qsort(rtt, count, sizeof(double), cmp_double);
  printf("%.1f %.1f\n", rtt[count / 2], rtt[count * 99 / 100]);
  return 0;
}
