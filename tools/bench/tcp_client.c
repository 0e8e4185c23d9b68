/* The benchmark's TCP client: holds one connection to IP:PORT, sends a
 * numbered line every 20 ms and waits for its echo, checking it. Runs until
 * SIGINT or SIGTERM, then prints one line:
 *   lines N max_pause_ms P error E
 * N lines echoed in order, P the longest wait for one echo (the pause a
 * migration caused, as the client sees it), E "none" or what went wrong
 * (a reset, a wrong echo). Exit status 0 when no error.
 *
 *   tcp-client IP PORT */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static volatile sig_atomic_t stop = 0;
static void onSignal(int sig) { (void)sig; stop = 1; }

static double nowMs(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

int main(int argc, char** argv) {
  if (argc != 3) {
    fprintf(stderr, "usage: tcp-client IP PORT\n");
    return 2;
  }
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = onSignal;  /* no SA_RESTART: a blocked read returns */
  sigaction(SIGINT, &sa, NULL);
  sigaction(SIGTERM, &sa, NULL);
  int s = socket(AF_INET, SOCK_STREAM, 0), one = 1;
  struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)atoi(argv[2]))};
  if (inet_pton(AF_INET, argv[1], &a.sin_addr) != 1) {
    fprintf(stderr, "tcp-client: '%s' is not an IPv4 address\n", argv[1]);
    return 2;
  }
  if (connect(s, (struct sockaddr*)&a, sizeof a) != 0) {
    printf("lines 0 max_pause_ms 0 error connect:%s\n", strerror(errno));
    return 1;
  }
  setsockopt(s, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  printf("connected\n");
  fflush(stdout);
  long n = 0;
  double max_pause = 0;
  char error[128] = "none";
  struct timespec gap = {0, 20 * 1000000L};
  while (!stop) {
    char line[32], got[32];
    int len = snprintf(line, sizeof line, "line %ld\n", n + 1);
    double t0 = nowMs();
    if (write(s, line, (size_t)len) != len) {
      if (!stop) snprintf(error, sizeof error, "write:%s", strerror(errno));
      break;
    }
    int have = 0;
    while (have < len) {
      ssize_t r = read(s, got + have, (size_t)(len - have));
      if (r <= 0) {
        if (!stop) snprintf(error, sizeof error, "read:%s", r == 0 ? "closed" : strerror(errno));
        break;
      }
      have += (int)r;
    }
    if (have < len) break;
    if (memcmp(line, got, (size_t)len) != 0) {
      snprintf(error, sizeof error, "wrong-echo-of-line-%ld", n + 1);
      break;
    }
    n++;
    double p = nowMs() - t0;
    if (p > max_pause) max_pause = p;
    nanosleep(&gap, NULL);
  }
  for (char* c = error; *c; c++) if (*c == ' ') *c = '_';  /* one field */
  printf("lines %ld max_pause_ms %.0f error %s\n", n, max_pause, error);
  return strcmp(error, "none") == 0 ? 0 : 1;
}
