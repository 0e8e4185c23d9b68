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
 *
 * Built static (the image has no libc), with SQLite linked in. */
#include <errno.h>
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

int main(int argc, char** argv) {
  signal(SIGTERM, onTerm);
  signal(SIGINT, onTerm);
  setvbuf(stdout, NULL, _IOLBF, 0);
  if (argc == 3 && !strcmp(argv[1], "locks")) return locks(argv[2]);
  if (argc == 3 && !strcmp(argv[1], "threads")) return threads(atol(argv[2]));
  if (argc == 3 && !strcmp(argv[1], "sqlite")) return sqliteWriter(argv[2]);
  fprintf(stderr, "usage: apps locks DIR | threads N | sqlite DB\n");
  return 2;
}
