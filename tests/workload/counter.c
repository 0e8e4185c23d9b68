/* The test and demo workload: keeps a counter in memory and, every interval,
 * prints "counter N" to stdout and writes N to a file (a volume). A restore
 * that lost memory would start again at 1; one that lost the volume or the
 * log would show a gap. Optionally holds M MiB of touched memory with a known
 * pattern, and answers SIGUSR1 by printing that memory's checksum.
 *
 *   counter [--file PATH] [--interval-ms N] [--mem-mib M]
 *
 * Built static (no libc in the image needed). */
#include <fcntl.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static volatile sig_atomic_t want_sum = 0;
static volatile sig_atomic_t want_exit = 0;
static void onUsr1(int sig) { (void)sig; want_sum = 1; }
/* As PID 1 of its container, a signal without a handler is ignored. */
static void onTerm(int sig) { (void)sig; want_exit = 1; }

static uint64_t checksum(const uint64_t* mem, size_t words) {
  uint64_t h = 1469598103934665603ull;
  for (size_t i = 0; i < words; i++) h = (h ^ mem[i]) * 1099511628211ull;
  return h;
}

int main(int argc, char** argv) {
  const char* file = NULL;
  long interval_ms = 100;
  long mem_mib = 0;
  for (int i = 1; i < argc; i++) {
    if (!strcmp(argv[i], "--file") && i + 1 < argc) file = argv[++i];
    else if (!strcmp(argv[i], "--interval-ms") && i + 1 < argc) interval_ms = atol(argv[++i]);
    else if (!strcmp(argv[i], "--mem-mib") && i + 1 < argc) mem_mib = atol(argv[++i]);
    else {
      fprintf(stderr, "usage: counter [--file PATH] [--interval-ms N] [--mem-mib M]\n");
      return 2;
    }
  }
  size_t words = (size_t)mem_mib * 1024 * 1024 / sizeof(uint64_t);
  uint64_t* mem = words ? malloc(words * sizeof(uint64_t)) : NULL;
  for (size_t i = 0; i < words; i++) mem[i] = i * 2654435761ull;
  signal(SIGUSR1, onUsr1);
  signal(SIGTERM, onTerm);
  signal(SIGINT, onTerm);
  setvbuf(stdout, NULL, _IOLBF, 0);

  unsigned long counter = 0;
  struct timespec tick = {interval_ms / 1000, (interval_ms % 1000) * 1000000L};
  while (!want_exit) {
    counter++;
    printf("counter %lu\n", counter);
    if (file) {
      int fd = open(file, O_WRONLY | O_CREAT | O_TRUNC, 0644);
      if (fd >= 0) {
        char buf[32];
        int n = snprintf(buf, sizeof buf, "%lu\n", counter);
        if (write(fd, buf, (size_t)n) != n) perror("write");
        close(fd);
      }
    }
    if (want_sum) {
      want_sum = 0;
      printf("checksum %016llx\n", (unsigned long long)checksum(mem, words));
    }
    nanosleep(&tick, NULL);
  }
  printf("stopping at %lu\n", counter);
  return 0;
}
