/* Workloads for the fault matrix's "real applications" (tests/integration/
 * fault_matrix_test.cc): each keeps state the kernel or a library holds for
 * it, checks that state itself every 100 ms and prints what it found, so a
 * migration that lost any of it shows in the container's log.
 *
 *   apps locks DIR     holds a flock(2) lock on DIR/flock and a POSIX
 *                      (fcntl) write lock on DIR/posix; a child forked each
 *                      time must find both taken by this process:
 *                      "locks held N" or "locks LOST: why"
 *   apps threads N     N threads, each counting its own counter; prints
 *                      "threads T moving M total S": T threads in
 *                      /proc/self/task, M of the N whose counter moved in
 *                      the last 2 s (generous: a loaded machine may starve
 *                      one for a while), S the sum of all counters (only
 *                      grows)
 *   apps sqlite DB     inserts rows into DB (WAL mode) all the time, one
 *                      transaction each, and prints "rows mem=N db=M": N rows
 *                      it committed by its own count, M what the database
 *                      says (equal, unless committed rows were lost)
 *   apps echo PORT [ADDR]
 *                      a TCP echo server on every address's PORT (ADDR:
 *                      on that one only, bound with IP_FREEBIND, so it
 *                      need not be the container's): each
 *                      connection gets back what it sends, byte for byte,
 *                      for as long as it stays open (a thread each); prints
 *                      "echo listening PORT" and "echo accepted N"
 *   apps dial IP PORT  every 200 ms a new connection to IP:PORT sends
 *                      "ping N\n" and prints "dial N ok" when the same line
 *                      comes back, "dial N failed: why" when not
 *
 * Built static (the image has no libc), with SQLite linked in. */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/wait.h>
#include <dirent.h>
#include <time.h>
#include <unistd.h>

static volatile sig_atomic_t want_exit = 0;
/* As PID 1 of its container, a signal without a handler is ignored. */
static void onTerm(int sig) { (void)sig; want_exit = 1; }

static void sleepMs(long ms) {
  struct timespec t = {ms / 1000, (ms % 1000) * 1000000L};
  nanosleep(&t, NULL);
}

/* --- locks --- */

/* In a child: 0 when both locks are seen taken by `holder`, else why not. */
static const char* checkLocks(const char* flock_path, const char* posix_path, pid_t holder) {
  int fd = open(flock_path, O_RDWR);
  if (fd < 0) return "cannot open the flock file";
  if (flock(fd, LOCK_EX | LOCK_NB) == 0) return "the flock lock was free";
  if (errno != EWOULDBLOCK) return "flock failed";
  close(fd);
  fd = open(posix_path, O_RDWR);
  if (fd < 0) return "cannot open the posix file";
  struct flock fl = {.l_type = F_WRLCK, .l_whence = SEEK_SET, .l_start = 0, .l_len = 0};
  if (fcntl(fd, F_GETLK, &fl) != 0) return "F_GETLK failed";
  if (fl.l_type == F_UNLCK) return "the posix lock was free";
  if (fl.l_pid != holder) return "the posix lock is held by another process";
  return NULL;
}

static int locks(const char* dir) {
  char flock_path[512], posix_path[512];
  snprintf(flock_path, sizeof flock_path, "%s/flock", dir);
  snprintf(posix_path, sizeof posix_path, "%s/posix", dir);
  int ffd = open(flock_path, O_RDWR | O_CREAT, 0644);
  int pfd = open(posix_path, O_RDWR | O_CREAT, 0644);
  if (ffd < 0 || pfd < 0) { perror("open"); return 1; }
  if (flock(ffd, LOCK_EX) != 0) { perror("flock"); return 1; }
  struct flock fl = {.l_type = F_WRLCK, .l_whence = SEEK_SET, .l_start = 0, .l_len = 0};
  if (fcntl(pfd, F_SETLK, &fl) != 0) { perror("fcntl"); return 1; }
  for (unsigned long n = 1; !want_exit; n++) {
    pid_t self = getpid(), child = fork();
    if (child == 0) {
      const char* why = checkLocks(flock_path, posix_path, self);
      if (why) printf("locks LOST: %s\n", why);
      else printf("locks held %lu\n", n);
      fflush(stdout);
      _exit(0);
    }
    if (child > 0) waitpid(child, NULL, 0);
    sleepMs(100);
  }
  return 0;
}

/* --- threads --- */

static volatile unsigned long* counts;

static void* countForever(void* arg) {
  volatile unsigned long* mine = &counts[(long)arg];
  for (;;) {
    __atomic_add_fetch(mine, 1, __ATOMIC_RELAXED);
    sleepMs(10);
  }
  return NULL;
}

static int taskCount(void) {
  DIR* d = opendir("/proc/self/task");
  if (!d) return -1;
  int n = 0;
  for (struct dirent* e; (e = readdir(d));) n += e->d_name[0] != '.';
  closedir(d);
  return n;
}

static double monotonicMs(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return t.tv_sec * 1e3 + t.tv_nsec / 1e6;
}

static int threads(long n) {
  counts = calloc((size_t)n, sizeof *counts);
  unsigned long* last = calloc((size_t)n, sizeof *last);
  double* moved_at = calloc((size_t)n, sizeof *moved_at);
  for (long i = 0; i < n; i++) {
    moved_at[i] = monotonicMs();
    pthread_t t;
    if (pthread_create(&t, NULL, countForever, (void*)i) != 0) { perror("pthread_create"); return 1; }
  }
  while (!want_exit) {
    sleepMs(100);
    unsigned long total = 0;
    long moving = 0;
    double now = monotonicMs();
    for (long i = 0; i < n; i++) {
      unsigned long c = __atomic_load_n(&counts[i], __ATOMIC_RELAXED);
      if (c != last[i]) moved_at[i] = now;
      moving += now - moved_at[i] < 2000;
      last[i] = c;
      total += c;
    }
    printf("threads %d moving %ld total %lu\n", taskCount(), moving, total);
    fflush(stdout);
  }
  return 0;
}

/* --- sqlite --- */

static void must(sqlite3* db, int rc, const char* what) {
  if (rc != SQLITE_OK && rc != SQLITE_DONE && rc != SQLITE_ROW) {
    fprintf(stderr, "sqlite: %s: %s\n", what, sqlite3_errmsg(db));
    exit(1);
  }
}

static long long countRows(sqlite3* db) {
  sqlite3_stmt* q;
  must(db, sqlite3_prepare_v2(db, "SELECT count(*) FROM t", -1, &q, NULL), "prepare count");
  must(db, sqlite3_step(q), "count");
  long long n = sqlite3_column_int64(q, 0);
  sqlite3_finalize(q);
  return n;
}

static int sqliteWriter(const char* path) {
  sqlite3* db;
  must(NULL, sqlite3_open(path, &db), "open");
  must(db, sqlite3_exec(db, "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL; "
                            "CREATE TABLE IF NOT EXISTS t (id INTEGER PRIMARY KEY, v TEXT)",
                        NULL, NULL, NULL),
       "setup");
  sqlite3_stmt* ins;
  must(db, sqlite3_prepare_v2(db, "INSERT INTO t (v) VALUES (hex(randomblob(64)))", -1, &ins, NULL),
       "prepare insert");
  long long committed = countRows(db);
  struct timespec last;
  clock_gettime(CLOCK_MONOTONIC, &last);
  while (!want_exit) {
    must(db, sqlite3_step(ins), "insert");
    sqlite3_reset(ins);
    committed++;
    sleepMs(2); /* a steady writer, not a benchmark: the database stays small */
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    if ((now.tv_sec - last.tv_sec) * 1000 + (now.tv_nsec - last.tv_nsec) / 1000000 >= 100) {
      last = now;
      printf("rows mem=%lld db=%lld\n", committed, countRows(db));
      fflush(stdout);
    }
  }
  sqlite3_finalize(ins);
  sqlite3_close(db);
  printf("sqlite closed at %lld\n", committed);
  return 0;
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

static int echoServer(int port, const char* addr) {
  int s = socket(AF_INET, SOCK_STREAM, 0), one = 1;
  setsockopt(s, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
  if (addr) {
    setsockopt(s, IPPROTO_IP, IP_FREEBIND, &one, sizeof one);
    inet_pton(AF_INET, addr, &a.sin_addr);
  }
  if (s < 0 || bind(s, (struct sockaddr*)&a, sizeof a) != 0 || listen(s, 64) != 0) {
    printf("echo cannot listen on %d: %s\n", port, strerror(errno));
    return 1;
  }
  printf("echo listening %d\n", port);
  for (long accepted = 1; !want_exit; ++accepted) {
    int c = accept(s, NULL, NULL);
    if (c < 0) {
      if (errno == EINTR) continue;
      printf("echo accept failed: %s\n", strerror(errno));
      return 1;
    }
    printf("echo accepted %ld\n", accepted);
    pthread_t t;
    pthread_create(&t, NULL, echoConnection, (void*)(long)c);
    pthread_detach(t);
  }
  return 0;
}

static int dial(const char* ip, int port) {
  for (long n = 1; !want_exit; ++n) {
    sleepMs(200);
    int s = socket(AF_INET, SOCK_STREAM, 0);
    struct timeval tv = {2, 0};
    setsockopt(s, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    setsockopt(s, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    inet_pton(AF_INET, ip, &a.sin_addr);
    char line[64], back[64] = {0};
    int len = snprintf(line, sizeof line, "ping %ld\n", n);
    const char* why = NULL;
    if (connect(s, (struct sockaddr*)&a, sizeof a) != 0) why = "connect";
    else if (write(s, line, (size_t)len) != len) why = "write";
    else {
      ssize_t got = 0, r;
      while (got < len && (r = read(s, back + got, (size_t)(len - got))) > 0) got += r;
      if (got != len || memcmp(back, line, (size_t)len) != 0) why = "read";
    }
    if (why) printf("dial %ld failed: %s: %s\n", n, why, strerror(errno));
    else printf("dial %ld ok\n", n);
    close(s);
  }
  return 0;
}

int main(int argc, char** argv) {
  signal(SIGTERM, onTerm);
  signal(SIGINT, onTerm);
  setvbuf(stdout, NULL, _IOLBF, 0);
  if (argc == 3 && !strcmp(argv[1], "locks")) return locks(argv[2]);
  if (argc == 3 && !strcmp(argv[1], "threads")) return threads(atol(argv[2]));
  if (argc == 3 && !strcmp(argv[1], "sqlite")) return sqliteWriter(argv[2]);
  if (argc == 3 && !strcmp(argv[1], "echo")) return echoServer(atoi(argv[2]), NULL);
  if (argc == 4 && !strcmp(argv[1], "echo")) return echoServer(atoi(argv[2]), argv[3]);
  if (argc == 4 && !strcmp(argv[1], "dial")) return dial(argv[2], atoi(argv[3]));
  fprintf(stderr, "usage: apps locks DIR | threads N | sqlite DB | echo PORT | dial IP PORT\n");
  return 2;
}
