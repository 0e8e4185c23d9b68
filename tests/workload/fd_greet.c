/* fd-greet: a socket-activated server. Accepts on fd 3 (LISTEN_FDS) and
 * answers each connection with one line naming what socket activation
 * handed it, then closes it. Static, for the test image. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

static const char* env(const char* k) {
  const char* v = getenv(k);
  return v ? v : "-";
}

int main(void) {
  printf("fd-greet: LISTEN_PID=%s LISTEN_FDS=%s LISTEN_FDNAMES=%s\n", env("LISTEN_PID"),
         env("LISTEN_FDS"), env("LISTEN_FDNAMES"));
  fflush(stdout);
  for (unsigned n = 1;; ++n) {
    int c = accept(3, NULL, NULL);
    if (c < 0) {
      perror("fd-greet: accept on fd 3");
      return 1;
    }
    char line[256];
    int len = snprintf(line, sizeof line, "greeting %u from pid %d: LISTEN_PID=%s LISTEN_FDS=%s LISTEN_FDNAMES=%s\n",
                       n, (int)getpid(), env("LISTEN_PID"), env("LISTEN_FDS"), env("LISTEN_FDNAMES"));
    if (write(c, line, (size_t)len) < 0) perror("fd-greet: write");
    close(c);
  }
}
