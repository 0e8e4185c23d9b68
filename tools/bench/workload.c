/* The benchmark workload: holds M MiB of touched, pseudo-random memory,
 * dirties it at R MiB/s, and takes a heartbeat every millisecond. The
 * downtime a migration causes is what the workload itself sees: the largest
 * gap between two heartbeats. Every gap over 20 ms is printed as
 * "gap_ms N" (the freeze of a checkpoint shows up as one such line after
 * the restore, also when it froze in the middle of a check, which beats
 * as it goes); "ready" is printed once the memory is touched.
 *
 * With --verify-every-ms T it also checks, every T ms, that every word of
 * its memory is exactly what its own record of the writes says it must be
 * (the initial pattern plus one increment per dirtying of the page), and
 * prints "verify ok WRITES" or "verify FAIL word I" -- what the tests use to
 * prove a migration carried the memory exactly. WRITES only grows.
 *
 * With --echo PORT it also serves TCP on PORT (every address), echoing
 * each connection's bytes back, one thread per connection: the service a
 * client holds a connection to across a migration (tools/bench/tcp-bench.sh).
 *
 *   bench-workload --mem-mib M [--dirty-mib-s R] [--verify-every-ms T] [--echo PORT]
 *
 * Built static: it runs in an image without libc. */
#include <netinet/in.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/socket.h>
#include <unistd.h>

static double nowMs(void) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);  /* one clock across hosts of one machine */
  return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

/* The initial content of word i: half-random pages (what compression sees
 * in a real heap), regenerated the same way by verify(). */
static uint64_t nextWord(size_t i, uint64_t* x) {
  if ((i / 512) % 2 == 0) {
    *x ^= *x << 13, *x ^= *x >> 7, *x ^= *x << 17;
    return *x;
  }
  return i;
}

static const uint64_t kSeed = 88172645463325252ull;

/* A heartbeat: prints the gap since *last when it is over 20 ms. */
static void beat(double* last) {
  double now = nowMs();
  if (now - *last > 20) {
    printf("gap_ms %.0f\n", now - *last);
    fflush(stdout);
  }
  *last = now;
}

/* Returns the index of the first word that is not what the writes made it,
 * or -1 when all are. Beats every 32 KiB it checks (microseconds apart), so
 * a freeze in the middle of a check shows as a gap like any other. */
static long verify(const uint64_t* mem, const uint32_t* gen, size_t words, double* last) {
  uint64_t x = kSeed;
  for (size_t i = 0; i < words; i++) {
    if (i % 4096 == 0) beat(last);
    uint64_t want = nextWord(i, &x) + (i % 512 == 0 ? gen[i / 512] : 0);
    if (mem[i] != want) return (long)i;
  }
  return -1;
}

static void* echoConnection(void* arg) {
  int c = (int)(long)arg;
  char buf[4096];
  ssize_t n;
  while ((n = read(c, buf, sizeof buf)) > 0) {
    for (ssize_t off = 0; off < n;) {
      ssize_t w = write(c, buf + off, (size_t)(n - off));
      if (w <= 0) goto done;
      off += w;
    }
  }
done:
  close(c);
  return NULL;
}

static void* echoServer(void* arg) {
  int port = (int)(long)arg, one = 1;
  int s = socket(AF_INET, SOCK_STREAM, 0);
  setsockopt(s, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
  if (s < 0 || bind(s, (struct sockaddr*)&a, sizeof a) != 0 || listen(s, 16) != 0) {
    printf("echo cannot listen on %d\n", port);
    fflush(stdout);
    return NULL;
  }
  for (;;) {
    int c = accept(s, NULL, NULL);
    if (c < 0) continue;
    pthread_t t;
    pthread_create(&t, NULL, echoConnection, (void*)(long)c);
    pthread_detach(t);
  }
}

int main(int argc, char** argv) {
  long mem_mib = 64, echo_port = 0;
  double dirty_mib_s = 0, verify_every_ms = 0;
  for (int i = 1; i < argc; i++) {
    if (!strcmp(argv[i], "--mem-mib") && i + 1 < argc) mem_mib = atol(argv[++i]);
    else if (!strcmp(argv[i], "--dirty-mib-s") && i + 1 < argc) dirty_mib_s = atof(argv[++i]);
    else if (!strcmp(argv[i], "--verify-every-ms") && i + 1 < argc) verify_every_ms = atof(argv[++i]);
    else if (!strcmp(argv[i], "--echo") && i + 1 < argc) echo_port = atol(argv[++i]);
    else {
      fprintf(stderr, "usage: bench-workload --mem-mib M [--dirty-mib-s R] [--verify-every-ms T] [--echo PORT]\n");
      return 2;
    }
  }
  size_t bytes = (size_t)mem_mib << 20;
  size_t pages = bytes / 4096, next_page = 0;
  uint64_t* mem = malloc(bytes ? bytes : 8);
  uint32_t* gen = calloc(pages ? pages : 1, sizeof *gen);
  if (!mem || !gen) {
    fprintf(stderr, "bench-workload: cannot allocate %ld MiB\n", mem_mib);
    return 1;
  }
  uint64_t x = kSeed;
  for (size_t i = 0; i < bytes / 8; i++) mem[i] = nextWord(i, &x);
  if (echo_port > 0) {
    pthread_t t;
    pthread_create(&t, NULL, echoServer, (void*)echo_port);
    pthread_detach(t);
  }
  printf("ready\n");
  fflush(stdout);
  double dirty_pages_per_ms = dirty_mib_s * 256.0 / 1000.0, owed = 0;
  unsigned long long writes = 0;
  double last = nowMs(), last_verify = last;
  struct timespec ms = {0, 1000000};
  for (;;) {
    nanosleep(&ms, NULL);
    beat(&last);
    double now = last;
    for (owed += dirty_pages_per_ms; owed >= 1 && pages; owed -= 1) {
      mem[next_page * 512] += 1;  /* one word per 4 KiB page */
      gen[next_page] += 1;
      writes++;
      next_page = (next_page + 1) % pages;
    }
    if (verify_every_ms > 0 && now - last_verify >= verify_every_ms) {
      long bad = verify(mem, gen, bytes / 8, &last);
      if (bad < 0)
        printf("verify ok %llu\n", writes);
      else
        printf("verify FAIL word %ld\n", bad);
      fflush(stdout);
      beat(&last);
      last_verify = last;
    }
  }
}
