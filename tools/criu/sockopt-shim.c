/* Preloaded into the private CRIU 4.1.x by its wrapper (tools/install-deps.sh).
 *
 * Linux 6.16 restricted SO_PASSCRED and SO_PASSSEC to unix, netlink and
 * bluetooth sockets: getsockopt of them on any other socket now fails with
 * EOPNOTSUPP. CRIU 4.1.x reads both of every socket it dumps, so it cannot
 * dump a single TCP or UDP socket on such a kernel ("sockets: Can't get 1:34
 * opt: Operation not supported"). CRIU 4.2 reads them only where they exist
 * (upstream commit 4b7398595, "criu/sockets: Restrict SO_PASSCRED and
 * SO_PASSSEC to supported families"); this does the same from outside: where
 * the kernel says the option does not apply, it is off (0), which is also
 * what the restore then leaves alone. Every other call goes through as is. */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <sys/socket.h>

typedef int (*getsockopt_fn)(int, int, int, void*, socklen_t*);

int getsockopt(int fd, int level, int name, void* val, socklen_t* len) {
  static getsockopt_fn real;
  if (!real) real = (getsockopt_fn)dlsym(RTLD_NEXT, "getsockopt");
  int r = real(fd, level, name, val, len);
  if (r < 0 && errno == EOPNOTSUPP && level == SOL_SOCKET &&
      (name == SO_PASSCRED || name == SO_PASSSEC) && val && len && *len >= sizeof(int)) {
    *(int*)val = 0;
    *len = sizeof(int);
    return 0;
  }
  return r;
}
