/* A program that does its file work only through io_uring, for the io_uring integration tests.
 *
 *   uring-prog files PATH       liburing ring: read /etc/shadow, then create PATH and write to it
 *   uring-prog relative         liburing ring: open /etc as a directory, read "shadow" relative to it
 *   uring-prog sqpoll PATH      as `files`, on an IORING_SETUP_SQPOLL ring (no syscall submits)
 *   uring-prog nosqarray PATH   as `files`, on a ring set up with IORING_SETUP_NO_SQARRAY (the SQ
 *                               layout liburing >= 2.6 uses), driven without liburing's ring code
 *   uring-prog late GO PATH     sets up a liburing ring, waits until the file GO exists, then does what
 *                               `files` does (for a ring set up before the agent started)
 *   uring-prog bench N          N NOP requests, one submit-and-wait each; prints ns per request
 *
 * Every request is submitted alone and waited for; any unexpected result ends the program with status 1.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <liburing.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#ifndef IORING_SETUP_NO_SQARRAY
#define IORING_SETUP_NO_SQARRAY (1U << 16)
#endif

struct ring {
	int raw;
	struct io_uring lr;
	/* raw rings */
	int fd;
	unsigned *sq_tail, sq_mask;
	struct io_uring_sqe *sqes;
	unsigned *cq_head, *cq_tail, cq_mask;
	struct io_uring_cqe *cqes;
};

static unsigned long long next_data = 0x5a5a0000;

static void die(const char *what, int err)
{
	fprintf(stderr, "uring-prog: %s: %s\n", what, strerror(err < 0 ? -err : err));
	exit(1);
}

static void ring_init(struct ring *r, unsigned flags)
{
	memset(r, 0, sizeof(*r));
	struct io_uring_params p;
	memset(&p, 0, sizeof(p));
	p.flags = flags;
	if (flags & IORING_SETUP_SQPOLL)
		p.sq_thread_idle = 2000;
	int ret = io_uring_queue_init_params(8, &r->lr, &p);
	if (ret < 0)
		die("io_uring_queue_init_params", ret);
}

static void ring_init_raw(struct ring *r, unsigned flags)
{
	memset(r, 0, sizeof(*r));
	r->raw = 1;
	struct io_uring_params p;
	memset(&p, 0, sizeof(p));
	p.flags = flags;
	r->fd = (int)syscall(__NR_io_uring_setup, 8, &p);
	if (r->fd < 0)
		die("io_uring_setup", errno);
	if (!(p.features & IORING_FEAT_SINGLE_MMAP))
		die("IORING_FEAT_SINGLE_MMAP", EINVAL);
	size_t ring_size = p.cq_off.cqes + p.cq_entries * sizeof(struct io_uring_cqe);
	char *rp = mmap(NULL, ring_size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE, r->fd,
			IORING_OFF_SQ_RING);
	if (rp == MAP_FAILED)
		die("mmap sq ring", errno);
	void *sqes = mmap(NULL, p.sq_entries * sizeof(struct io_uring_sqe), PROT_READ | PROT_WRITE,
			  MAP_SHARED | MAP_POPULATE, r->fd, IORING_OFF_SQES);
	if (sqes == MAP_FAILED)
		die("mmap sqes", errno);
	r->sq_tail = (unsigned *)(rp + p.sq_off.tail);
	r->sq_mask = *(unsigned *)(rp + p.sq_off.ring_mask);
	r->sqes = sqes;
	r->cq_head = (unsigned *)(rp + p.cq_off.head);
	r->cq_tail = (unsigned *)(rp + p.cq_off.tail);
	r->cq_mask = *(unsigned *)(rp + p.cq_off.ring_mask);
	r->cqes = (struct io_uring_cqe *)(rp + p.cq_off.cqes);
}

static struct io_uring_sqe *get_sqe(struct ring *r)
{
	struct io_uring_sqe *sqe;
	if (r->raw) {
		unsigned tail = *r->sq_tail;
		sqe = &r->sqes[tail & r->sq_mask];
		memset(sqe, 0, sizeof(*sqe));
	} else {
		sqe = io_uring_get_sqe(&r->lr);
		if (!sqe)
			die("io_uring_get_sqe", EBUSY);
	}
	return sqe;
}

/* Submits the one prepared SQE and waits for its completion; returns the result. */
static int submit_wait(struct ring *r, struct io_uring_sqe *sqe)
{
	unsigned long long data = next_data++;
	io_uring_sqe_set_data64(sqe, data);
	int res;
	if (r->raw) {
		__atomic_store_n(r->sq_tail, *r->sq_tail + 1, __ATOMIC_RELEASE);
		long ret = syscall(__NR_io_uring_enter, r->fd, 1, 1, IORING_ENTER_GETEVENTS, NULL, 0);
		if (ret < 0)
			die("io_uring_enter", errno);
		unsigned head = *r->cq_head;
		if (head == __atomic_load_n(r->cq_tail, __ATOMIC_ACQUIRE))
			die("no completion", EAGAIN);
		struct io_uring_cqe *cqe = &r->cqes[head & r->cq_mask];
		if (cqe->user_data != data)
			die("completion of another request", EINVAL);
		res = cqe->res;
		__atomic_store_n(r->cq_head, head + 1, __ATOMIC_RELEASE);
	} else {
		int ret = io_uring_submit(&r->lr);
		if (ret < 0)
			die("io_uring_submit", ret);
		struct io_uring_cqe *cqe;
		ret = io_uring_wait_cqe(&r->lr, &cqe);
		if (ret < 0)
			die("io_uring_wait_cqe", ret);
		if (cqe->user_data != data)
			die("completion of another request", EINVAL);
		res = cqe->res;
		io_uring_cqe_seen(&r->lr, cqe);
	}
	return res;
}

static int do_openat(struct ring *r, int dirfd, const char *path, int flags, mode_t mode)
{
	struct io_uring_sqe *sqe = get_sqe(r);
	io_uring_prep_openat(sqe, dirfd, path, flags, mode);
	int fd = submit_wait(r, sqe);
	if (fd < 0) {
		fprintf(stderr, "uring-prog: openat %s\n", path);
		die("openat", fd);
	}
	return fd;
}

static void do_read(struct ring *r, int fd)
{
	char buf[64];
	struct io_uring_sqe *sqe = get_sqe(r);
	io_uring_prep_read(sqe, fd, buf, sizeof(buf), 0);
	int n = submit_wait(r, sqe);
	if (n < 0)
		die("read", n);
}

static void do_write(struct ring *r, int fd)
{
	static const char text[] = "written through io_uring\n";
	struct io_uring_sqe *sqe = get_sqe(r);
	io_uring_prep_write(sqe, fd, text, sizeof(text) - 1, 0);
	int n = submit_wait(r, sqe);
	if (n != (int)(sizeof(text) - 1))
		die("write", n < 0 ? n : EIO);
}

static void do_close(struct ring *r, int fd)
{
	struct io_uring_sqe *sqe = get_sqe(r);
	io_uring_prep_close(sqe, fd);
	int ret = submit_wait(r, sqe);
	if (ret < 0)
		die("close", ret);
}

static void files(struct ring *r, const char *path)
{
	int fd = do_openat(r, AT_FDCWD, "/etc/shadow", O_RDONLY, 0);
	do_read(r, fd);
	do_close(r, fd);
	fd = do_openat(r, AT_FDCWD, path, O_CREAT | O_WRONLY | O_TRUNC, 0600);
	do_write(r, fd);
	do_close(r, fd);
}

static void relative(struct ring *r)
{
	int dir = do_openat(r, AT_FDCWD, "/etc", O_RDONLY | O_DIRECTORY, 0);
	int fd = do_openat(r, dir, "shadow", O_RDONLY, 0);
	do_read(r, fd);
	do_close(r, fd);
	do_close(r, dir);
}

static void bench(struct ring *r, long n)
{
	struct timespec a, b;
	clock_gettime(CLOCK_MONOTONIC, &a);
	for (long i = 0; i < n; i++) {
		struct io_uring_sqe *sqe = get_sqe(r);
		io_uring_prep_nop(sqe);
		if (submit_wait(r, sqe) < 0)
			die("nop", EIO);
	}
	clock_gettime(CLOCK_MONOTONIC, &b);
	double ns = (b.tv_sec - a.tv_sec) * 1e9 + (b.tv_nsec - a.tv_nsec);
	printf("%.1f ns per request\n", ns / (double)n);
}

int main(int argc, char **argv)
{
	struct ring r;
	if (argc == 3 && strcmp(argv[1], "files") == 0) {
		ring_init(&r, 0);
		files(&r, argv[2]);
	} else if (argc == 2 && strcmp(argv[1], "relative") == 0) {
		ring_init(&r, 0);
		relative(&r);
	} else if (argc == 3 && strcmp(argv[1], "sqpoll") == 0) {
		ring_init(&r, IORING_SETUP_SQPOLL);
		files(&r, argv[2]);
	} else if (argc == 3 && strcmp(argv[1], "nosqarray") == 0) {
		ring_init_raw(&r, IORING_SETUP_NO_SQARRAY);
		files(&r, argv[2]);
	} else if (argc == 4 && strcmp(argv[1], "late") == 0) {
		ring_init(&r, 0);
		for (int i = 0; access(argv[2], F_OK) != 0; i++) {
			if (i == 6000)
				die("waiting for the go file", ETIMEDOUT);
			usleep(10000);
		}
		files(&r, argv[3]);
	} else if (argc == 3 && strcmp(argv[1], "bench") == 0) {
		ring_init(&r, 0);
		bench(&r, atol(argv[2]));
	} else {
		fprintf(stderr, "usage: uring-prog files|sqpoll|nosqarray PATH | relative | late GO PATH | bench N\n");
		return 2;
	}
	return 0;
}
