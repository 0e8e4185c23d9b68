/* sd-notify MSG...: sends "MSG\nMSG..." to $NOTIFY_SOCKET, as systemd-notify
 * does (a datagram; a leading '@' is the abstract namespace). Exits 1 with a
 * message when it cannot. Static, for the test image. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

int main(int argc, char** argv) {
  const char* path = getenv("NOTIFY_SOCKET");
  if (!path || !*path) {
    fprintf(stderr, "sd-notify: NOTIFY_SOCKET is not set\n");
    return 1;
  }
  struct sockaddr_un addr;
  memset(&addr, 0, sizeof addr);
  addr.sun_family = AF_UNIX;
  if (strlen(path) >= sizeof addr.sun_path) return 1;
  strcpy(addr.sun_path, path);
  if (addr.sun_path[0] == '@') addr.sun_path[0] = 0;
  char msg[4096] = "";
  for (int i = 1; i < argc; ++i) {
    if (strlen(msg) + strlen(argv[i]) + 2 > sizeof msg) return 1;
    if (i > 1) strcat(msg, "\n");
    strcat(msg, argv[i]);
  }
  int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (fd < 0 || sendto(fd, msg, strlen(msg), 0, (struct sockaddr*)&addr, sizeof addr) < 0) {
    perror("sd-notify");
    return 1;
  }
  close(fd);
  return 0;
}
