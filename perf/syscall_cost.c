// What a residency check costs on this machine: mincore(2) on one page of a shared file
// mapping, against preadv2(RWF_NOWAIT) of 1 byte and of 1 KiB (a page-cache read that fails
// instead of waiting for the disk) and a trivial syscall (getppid). 64 MiB file in the
// current directory, every page cached; one million calls each, strided over the file.
//
//   gcc -O2 perf/syscall_cost.c -o /tmp/syscall_cost && (cd target && /tmp/syscall_cost)
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdio.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#define FILE_BYTES (64L << 20)
#define CALLS 1000000L
#define PAGE 4096L

static double now_s(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return t.tv_sec + t.tv_nsec * 1e-9;
}

static long page_at(long i) { return (i * PAGE * 7) % FILE_BYTES; }

int main(void) {
  const char *path = "syscall_cost.tmp";
  int fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0644);
  static char chunk[1 << 20];
  for (long written = 0; written < FILE_BYTES; written += sizeof chunk)
    if (write(fd, chunk, sizeof chunk) != sizeof chunk) return perror("write"), 1;
  char *map = mmap(0, FILE_BYTES, PROT_READ, MAP_SHARED, fd, 0);
  if (map == MAP_FAILED) return perror("mmap"), 1;
  unsigned char resident;
  char buffer[1024];
  struct iovec iov = {buffer, 1};
  double start = now_s();
  for (long i = 0; i < CALLS; i++) mincore(map + page_at(i), PAGE, &resident);
  printf("mincore, 1 page:           %4.0f ns/call\n", (now_s() - start) / CALLS * 1e9);
  start = now_s();
  for (long i = 0; i < CALLS; i++) preadv2(fd, &iov, 1, page_at(i), RWF_NOWAIT);
  printf("preadv2 RWF_NOWAIT, 1 B:   %4.0f ns/call\n", (now_s() - start) / CALLS * 1e9);
  iov.iov_len = sizeof buffer;
  start = now_s();
  for (long i = 0; i < CALLS; i++) preadv2(fd, &iov, 1, page_at(i), RWF_NOWAIT);
  printf("preadv2 RWF_NOWAIT, 1 KiB: %4.0f ns/call\n", (now_s() - start) / CALLS * 1e9);
  start = now_s();
  for (long i = 0; i < CALLS; i++) syscall(SYS_getppid);
  printf("getppid:                   %4.0f ns/call\n", (now_s() - start) / CALLS * 1e9);
  unlink(path);
  return 0;
}
