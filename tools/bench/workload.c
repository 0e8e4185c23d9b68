/* The benchmark workload: holds M MiB of touched, pseudo-random memory,
 * dirties it at R MiB/s, and takes a heartbeat every millisecond. The
 * downtime a migration causes is what the workload itself sees: the largest
 * gap between two heartbeats. Every gap over 20 ms is printed as
 * "gap_ms N" (the freeze of a checkpoint shows up as one such line after
 * the restore); "ready" is printed once the memory is touched.
 *
 *   bench-workload --mem-mib M [--dirty-mib-s R]
 *
 * Built static: it runs in an image without libc. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static double nowMs(void) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);  /* one clock across hosts of one machine */
  return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

int main(int argc, char** argv) {
  long mem_mib = 64;
  double dirty_mib_s = 0;
  for (int i = 1; i < argc; i++) {
    if (!strcmp(argv[i], "--mem-mib") && i + 1 < argc) mem_mib = atol(argv[++i]);
    else if (!strcmp(argv[i], "--dirty-mib-s") && i + 1 < argc) dirty_mib_s = atof(argv[++i]);
    else {
      fprintf(stderr, "usage: bench-workload --mem-mib M [--dirty-mib-s R]\n");
      return 2;
    }
  }
  size_t bytes = (size_t)mem_mib << 20;
  uint64_t* mem = malloc(bytes ? bytes : 8);
  if (!mem) {
    fprintf(stderr, "bench-workload: cannot allocate %ld MiB\n", mem_mib);
    return 1;
  }
  /* Half-random pages: what compression sees in a real heap. */
  uint64_t x = 88172645463325252ull;
  for (size_t i = 0; i < bytes / 8; i++) {
    if ((i / 512) % 2 == 0) {
      x ^= x << 13, x ^= x >> 7, x ^= x << 17;
      mem[i] = x;
    } else {
      mem[i] = i;
    }
  }
  printf("ready\n");
  fflush(stdout);
  size_t pages = bytes / 4096, next_page = 0;
  double dirty_pages_per_ms = dirty_mib_s * 256.0 / 1000.0, owed = 0;
  double last = nowMs();
  struct timespec ms = {0, 1000000};
  for (;;) {
    nanosleep(&ms, NULL);
    double now = nowMs();
    if (now - last > 20) {
      printf("gap_ms %.0f\n", now - last);
      fflush(stdout);
    }
    last = now;
    for (owed += dirty_pages_per_ms; owed >= 1 && pages; owed -= 1) {
      mem[next_page * 512] += 1;  /* one word per 4 KiB page */
      next_page = (next_page + 1) % pages;
    }
  }
}
